//! Accord time-stamps: RFC 3161 time-stamp tokens (requests, replies and
//! offline verification) with the CMS SignedData and X.509 certificate path
//! building they need, kept out of `accord-core` so that verifiers that need
//! no timestamps do not compile RSA, P-256/384, CMS and X.509.
//!
//! Sans-I/O like the core: no network, no files, no clock, no RNG. The
//! caller brings the nonce (from its own RNG), sends the request, and hands
//! the reply back. Verification needs no clock either: the time it checks
//! against comes in with the token, as its own `genTime` (what a time-stamp
//! asserts), and every certificate is checked at that time.
//!
//! Limits: inputs of at most [`MAX_TOKEN_BYTES`]; at most [`MAX_EMBEDDED`]
//! certificates embedded in a token, [`MAX_CERTS`] anchors and
//! intermediates from the caller, chains of at most [`MAX_CHAIN`]
//! certificates; RSA keys of at least [`MIN_RSA_BITS`] bits. Revocation
//! (CRL, OCSP) is not checked.
//!
//! [`archive`] plugs the token check into `accord-core`'s certified-archive
//! verifier ([`accord_core::archive::TimestampCheck`]); the dependency runs
//! this way only (core never depends on this crate).
//!
//! Inside, private modules follow the layers: `asn1` (the RFC 3161
//! structures and raw DER reads), `request` (requests and replies), `token`
//! (verification, steps 1–5 below), `signature` (ECDSA and RSA checks) and
//! `x509` (trust anchors, the TSA certificate, path building: step 6).
//! Everything public is at the crate root.
//!
//! [`verify_token`] checks, in this order (each failure is its own
//! [`TspError`] variant):
//!
//! 1. size (at most [`MAX_TOKEN_BYTES`]) and DER structure: a CMS
//!    `ContentInfo` of type id-signedData, whose SignedData encapsulates
//!    id-ct-TSTInfo and has exactly one signer;
//! 2. the TSTInfo: version 1, no critical extension (none is understood),
//!    message imprint equal to the expected one (same hash algorithm, same
//!    bytes), nonce equal to the expected one when one is given;
//! 3. the signed attributes: present; content-type = id-ct-TSTInfo;
//!    message-digest = hash of the encapsulated TSTInfo under the signer's
//!    digest algorithm; a signing-certificate (ESSCertID, SHA-1) or
//!    signing-certificate-v2 (ESSCertIDv2, its hash, SHA-256 by default)
//!    attribute, and each one present has as first entry the hash of the
//!    signer certificate;
//! 4. the CMS signature over the signed attributes exactly as received
//!    (re-tagged as the SET OF they are; not re-encoded, which would sort
//!    them) under the signer certificate's key: ECDSA P-256 / P-384 with
//!    SHA-256/384/512, RSA PKCS#1 v1.5 or RSASSA-PSS with SHA-256/384/512
//!    (2048 bits or more);
//! 5. the TSA certificate: no extension twice, no unknown critical one;
//!    extendedKeyUsage present, critical and exactly id-kp-timeStamping
//!    (RFC 3161 §2.3); keyUsage, when present, decodes and allows
//!    digitalSignature or nonRepudiation; named by the TSTInfo `tsa` field
//!    when there is one (subject or subjectAltName); valid at genTime;
//! 6. with trust anchors: a chain from the TSA certificate to one anchor
//!    through the certificates embedded in the token and the caller's
//!    intermediates, each signature verified, each certificate (anchor
//!    included) valid at genTime, each issuer with basicConstraints
//!    CA:TRUE (and a keyUsage that decodes and has keyCertSign, when
//!    present), path length constraints respected, no extension twice and
//!    no unknown critical extension; every other certificate embedded in
//!    the token must verify under a certificate of that pool too, so a
//!    changed byte in any of them is caught.
//!    Without anchors, the chain is reported as not checked
//!    ([`ChainStatus::NotChecked`]).
//!
//! Revocation (CRL, OCSP) is not checked.
//!
//! ASN.1, CMS and X.509 come from the RustCrypto `der`, `cms`, `x509-cert`
//! and `spki` crates; signatures from `p256`, `p384`, `ecdsa` and `rsa`.
//! The RFC 3161 structures themselves are declared in this crate with
//! `der`'s derive because `x509-tsp` 0.1 is built on the previous
//! generation (`der` 0.7, `cms` 0.2) and does not compile together with
//! `cms` 0.3.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;
mod asn1;
mod request;
mod signature;
mod token;
mod x509;

pub use request::{parse_request, parse_response, request, token_from_token_or_reply};
pub use token::{ChainStatus, GenTime, TokenReport, verify_response, verify_token};
pub use x509::Trust;

use std::fmt;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;
use sha2::Digest;

/// Largest token or reply accepted, in bytes. Real tokens are a few KiB;
/// the bound keeps hostile input from costing memory or time.
pub const MAX_TOKEN_BYTES: usize = 1 << 20;
/// Largest chain walked from the TSA certificate to an anchor.
pub const MAX_CHAIN: usize = 8;
/// Most anchors plus intermediates a caller may give.
pub const MAX_CERTS: usize = 64;
/// Most certificates a token may embed (real ones carry 1 to 4); bounds
/// the signature checks a hostile token can cause.
pub const MAX_EMBEDDED: usize = 16;
/// id-ct-TSTInfo (1.2.840.113549.1.9.16.1.4).
const ID_CT_TST_INFO: ObjectIdentifier = const_oid::db::rfc3161::ID_CT_TST_INFO;
const ID_SHA_384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA_512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ECDSA_WITH_SHA_384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_WITH_SHA_512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const SHA_384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA_512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const SECP_256_R_1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP_384_R_1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Why a time-stamp request, reply or token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TspError {
    /// The input is larger than [`MAX_TOKEN_BYTES`].
    #[error(
        "{what} is {len} bytes, more than the {MAX_TOKEN_BYTES} accepted (is this really an RFC 3161 token?)"
    )]
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// Its size.
        len: usize,
    },
    /// The bytes are not the DER structure expected.
    #[error("{what} is not valid DER: {reason} (expected a DER-encoded RFC 3161 {what})")]
    Malformed {
        /// The structure being decoded.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The caller's nonce is unusable.
    #[error("nonce: {0}")]
    Nonce(String),
    /// The TSA refused the request.
    #[error("the TSA answered {status}{detail} (the request was not time-stamped)")]
    Status {
        /// PKIStatus name.
        status: String,
        /// failInfo names and status text, with a leading separator.
        detail: String,
    },
    /// A granted reply without a token.
    #[error("the TSA granted the request but sent no time-stamp token")]
    NoToken,
    /// The token is not CMS SignedData over id-ct-TSTInfo.
    #[error("not a time-stamp token: {0}")]
    NotToken(String),
    /// The token is time-stamped under another hash algorithm.
    #[error(
        "message imprint uses {token}, expected {expected} (hash the data with {token}, or ask the TSA for {expected})"
    )]
    ImprintAlgorithm {
        /// Algorithm in the token.
        token: String,
        /// Algorithm expected.
        expected: String,
    },
    /// The token time-stamps other data.
    #[error(
        "message imprint {token} does not match the expected digest {expected} (the token time-stamps other data)"
    )]
    ImprintMismatch {
        /// Hex digest in the token.
        token: String,
        /// Hex digest expected.
        expected: String,
    },
    /// The token's nonce is missing or not the one sent.
    #[error("nonce: {0} (the reply does not answer this request: replayed or mixed up)")]
    NonceMismatch(String),
    /// Signed attributes are missing or wrong.
    #[error("signed attributes: {0}")]
    SignedAttributes(String),
    /// The signing-certificate attribute does not identify the signer.
    #[error("signing-certificate attribute: {0}")]
    SigningCertificate(String),
    /// The signer certificate is not in the token nor given.
    #[error(
        "the TSA certificate named by the signer is neither in the token nor among the given certificates (pass it with the trust anchors or intermediates)"
    )]
    SignerNotFound,
    /// An algorithm this verifier does not implement.
    #[error("unsupported {0}")]
    Unsupported(String),
    /// The CMS signature does not verify.
    #[error("the TSA's signature over the signed attributes does not verify: {0}")]
    Signature(String),
    /// The TSA certificate may not sign time-stamps.
    #[error("TSA certificate {subject}: {reason}")]
    TsaCertificate {
        /// Subject of the TSA certificate.
        subject: String,
        /// What is wrong.
        reason: String,
    },
    /// A certificate was not valid when the token was made.
    #[error(
        "certificate {subject} was not valid at the token's time {gen_time} (valid {not_before} to {not_after})"
    )]
    NotValidAtGenTime {
        /// Subject.
        subject: String,
        /// Token time.
        gen_time: String,
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },
    /// The chain to a trust anchor cannot be built or verified.
    #[error("certificate chain: {0}")]
    Chain(String),
    /// The trust anchors or intermediates given by the caller are unusable.
    #[error("trust anchors: {0}")]
    Anchors(String),
}

fn malformed(what: &'static str) -> impl Fn(der::Error) -> TspError {
    move |e| TspError::Malformed {
        what,
        reason: e.to_string(),
    }
}

/// The hash algorithms a message imprint may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// The algorithm's object identifier.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            HashAlg::Sha256 => rfc5912::ID_SHA_256,
            HashAlg::Sha384 => ID_SHA_384,
            HashAlg::Sha512 => ID_SHA_512,
        }
    }

    /// The algorithm named by `oid`, if supported.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512]
            .into_iter()
            .find(|a| a.oid() == *oid)
    }

    /// The algorithm whose digests are `len` bytes long.
    pub fn from_len(len: usize) -> Option<Self> {
        match len {
            32 => Some(HashAlg::Sha256),
            48 => Some(HashAlg::Sha384),
            64 => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// Name as written in messages (`SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is time-stamped: a hash algorithm and the digest of the data under
/// it (the data itself never leaves the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imprint {
    alg: HashAlg,
    digest: Vec<u8>,
}

impl Imprint {
    /// The SHA-256 imprint of data whose digest is `digest`.
    pub fn sha256(digest: [u8; 32]) -> Self {
        Imprint {
            alg: HashAlg::Sha256,
            digest: digest.to_vec(),
        }
    }

    /// The imprint of `data` under `alg` (hashes it).
    pub fn of(alg: HashAlg, data: &[u8]) -> Self {
        Imprint {
            alg,
            digest: alg.digest(data),
        }
    }

    /// An imprint from a digest already computed; its length picks the
    /// algorithm (32 bytes SHA-256, 48 SHA-384, 64 SHA-512).
    pub fn from_digest(digest: &[u8]) -> Result<Self, TspError> {
        let alg = HashAlg::from_len(digest.len()).ok_or_else(|| {
            TspError::Unsupported(format!(
                "digest length {} bytes (give a SHA-256, SHA-384 or SHA-512 digest: 32, 48 or 64 bytes)",
                digest.len()
            ))
        })?;
        Ok(Imprint {
            alg,
            digest: digest.to_vec(),
        })
    }

    /// The hash algorithm.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The digest bytes.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }
}

/// A request nonce: a positive integer, kept as big-endian bytes without
/// leading zeros (the form both sides compare).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce(Vec<u8>);

impl Nonce {
    /// Fewest random bytes accepted for a fresh nonce (64 bits).
    pub const MIN_BYTES: usize = 8;
    /// Most bytes accepted (RFC 3161 TSAs must handle 160-bit integers;
    /// 32 bytes leaves room).
    pub const MAX_BYTES: usize = 32;

    /// A nonce from `random` bytes drawn by the caller (8 to 32 bytes).
    pub fn from_random(random: &[u8]) -> Result<Self, TspError> {
        if !(Self::MIN_BYTES..=Self::MAX_BYTES).contains(&random.len()) {
            return Err(TspError::Nonce(format!(
                "{} random bytes given; use {} to {}",
                random.len(),
                Self::MIN_BYTES,
                Self::MAX_BYTES
            )));
        }
        Ok(Self::from_be(random))
    }

    /// A nonce written as hex (any length up to 32 bytes; leading zeros are
    /// not significant).
    pub fn from_hex(s: &str) -> Result<Self, TspError> {
        let bytes = hex::decode(s)
            .map_err(|e| TspError::Nonce(format!("not hex: {e} (give the nonce as hex digits)")))?;
        if bytes.is_empty() || bytes.len() > Self::MAX_BYTES {
            return Err(TspError::Nonce(format!(
                "{} bytes; a nonce has 1 to {}",
                bytes.len(),
                Self::MAX_BYTES
            )));
        }
        Ok(Self::from_be(&bytes))
    }

    fn from_be(bytes: &[u8]) -> Self {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        Nonce(bytes[start..].to_vec())
    }

    /// Big-endian bytes without leading zeros (empty for zero).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex of [`Nonce::as_bytes`] (`"00"` for zero).
    pub fn to_hex(&self) -> String {
        if self.0.is_empty() {
            "00".into()
        } else {
            hex::encode(&self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use der::{Any, Tag};

    use super::*;
    use crate::asn1::{der_children, der_split, oid_text, parse_gen_time};
    use crate::token::raw_signed_attrs;

    #[test]
    fn request_round_trips() {
        let imprint = Imprint::sha256([7; 32]);
        let nonce = Nonce::from_random(&[0, 0x80, 1, 2, 3, 4, 5, 6]).unwrap();
        let der = request(&imprint, &nonce).unwrap();
        let (i, n) = parse_request(&der).unwrap();
        assert_eq!(i, imprint);
        assert_eq!(n.unwrap().to_hex(), "80010203040506");
        // certReq TRUE is encoded (DEFAULT FALSE would be omitted).
        assert!(der.ends_with(&[0x01, 0x01, 0xff]));
    }

    #[test]
    fn nonce_bounds() {
        assert!(Nonce::from_random(&[1; 7]).is_err());
        assert!(Nonce::from_random(&[1; 33]).is_err());
        assert_eq!(Nonce::from_hex("000102").unwrap().to_hex(), "0102");
        assert!(Nonce::from_hex("zz").is_err());
    }

    #[test]
    fn gen_time_forms() {
        let any = |s: &str| Any::new(Tag::GeneralizedTime, s.as_bytes().to_vec()).unwrap();
        let t = parse_gen_time(&any("20261124101502.25Z")).unwrap();
        assert_eq!(t.rfc3339, "2026-11-24T10:15:02.25Z");
        assert_eq!(t.since_epoch, Duration::new(1795515302, 250_000_000));
        assert_eq!(
            parse_gen_time(&any("20261124101502Z")).unwrap().rfc3339,
            "2026-11-24T10:15:02Z"
        );
        for bad in [
            "20261124101502",
            "20261124101502.250Z",
            "20261324101502Z",
            "2026112410150Z",
            "20261124101502.Z",
            "20261124101502+0100",
        ] {
            assert!(parse_gen_time(&any(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostile_input_is_refused_without_panic() {
        let imprint = Imprint::sha256([0; 32]);
        for input in [
            &[][..],
            &[0x30][..],
            &[0x30, 0x80][..],
            &[0x30, 0x03, 0x02, 0x01, 0x00][..],
            &[0xff; 64][..],
        ] {
            assert!(verify_token(input, &imprint, None, None).is_err());
            assert!(parse_response(input).is_err());
            assert!(token_from_token_or_reply(input).is_err());
        }
        let big = vec![0x30; MAX_TOKEN_BYTES + 1];
        assert!(matches!(
            verify_token(&big, &imprint, None, None),
            Err(TspError::TooLarge { .. })
        ));
    }

    #[test]
    fn rejection_status_is_named() {
        // TimeStampResp { status { rejection, "no", failInfo badAlg } }
        let der = [
            0x30, 0x0f, 0x30, 0x0d, 0x02, 0x01, 0x02, 0x30, 0x04, 0x0c, 0x02, b'n', b'o', 0x03,
            0x02, 0x07, 0x80,
        ];
        let e = parse_response(&der).unwrap_err().to_string();
        assert!(
            e.contains("rejection") && e.contains("badAlg") && e.contains("\"no\""),
            "{e}"
        );
    }

    #[test]
    fn policy_oids_beyond_const_oid() {
        let any = |b: &[u8]| Any::new(Tag::ObjectIdentifier, b.to_vec()).unwrap();
        assert_eq!(oid_text(&any(&[0x88, 0x37, 0x01])).unwrap(), "2.999.1");
        assert_eq!(oid_text(&any(&[0x2a, 0x03, 0x04])).unwrap(), "1.2.3.4");
        assert!(oid_text(&any(&[0x88])).is_err());
        assert!(oid_text(&any(&[0x80, 0x01])).is_err());
    }

    #[test]
    fn raw_der_walk() {
        let (e, rest) = der_split(&[0x30, 0x02, 0x05, 0x00, 0xff]).unwrap();
        assert_eq!(
            (e.tag, e.whole, e.value, rest),
            (0x30, &[0x30, 2, 5, 0][..], &[5, 0][..], &[0xff][..])
        );
        let long = [&[0x04, 0x81, 0x80][..], &[7; 0x80]].concat();
        assert_eq!(der_split(&long).unwrap().0.value.len(), 0x80);
        for bad in [
            &[][..],
            &[0x30][..],
            &[0x30, 0x03, 0x00][..],
            &[0x1f, 0x01, 0x00][..],
            &[0x30, 0x80, 0x00, 0x00][..],
            &[0x30, 0x85, 1, 1, 1, 1, 1][..],
        ] {
            assert!(der_children(bad).is_none() || bad.is_empty(), "{bad:?}");
        }
        // Signed attributes are found only where a SignerInfo has them.
        let any = |v: &[u8]| Any::new(Tag::Sequence, v.to_vec()).unwrap();
        assert!(raw_signed_attrs(&any(&[0x02, 0x01, 0x03])).is_err());
        let si = [
            0x30, 0x0b, 0x02, 0x01, 0x01, 0x30, 0x00, 0x30, 0x00, 0xa0, 0x02, 0x30, 0x00,
        ];
        let sd = [&[0x02, 0x01, 0x03, 0x31, 0x0d][..], &si].concat();
        assert_eq!(
            raw_signed_attrs(&any(&sd)).unwrap(),
            [0x31, 0x02, 0x30, 0x00]
        );
    }

    #[test]
    fn imprint_lengths() {
        assert_eq!(
            Imprint::from_digest(&[0; 48]).unwrap().alg(),
            HashAlg::Sha384
        );
        assert!(Imprint::from_digest(&[0; 20]).is_err());
    }
}
