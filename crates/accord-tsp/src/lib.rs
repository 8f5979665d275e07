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
//! The RFC 3161 structures themselves are declared here with `der`'s derive
//! because `x509-tsp` 0.1 is built on the previous generation (`der` 0.7,
//! `cms` 0.2) and does not compile together with `cms` 0.3.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;

use std::fmt;
use std::time::Duration;

use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5280, rfc5911, rfc5912};
use der::asn1::{BitString, OctetString, Uint, Utf8StringRef};
use der::{Any, Decode, Encode, Sequence, Tag, Tagged};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::{GeneralName, GeneralNames};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName};
use x509_cert::serial_number::SerialNumber;

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};

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

// ---------------------------------------------------------------- ASN.1

/// RFC 3161 MessageImprint.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

/// RFC 3161 TimeStampReq.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampReq {
    version: u8,
    message_imprint: MessageImprint,
    #[asn1(optional = "true")]
    req_policy: Option<ObjectIdentifier>,
    #[asn1(optional = "true")]
    nonce: Option<Uint>,
    #[asn1(default = "Default::default")]
    cert_req: bool,
}

/// RFC 4210 PKIStatusInfo.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct PkiStatusInfo<'a> {
    status: Uint,
    #[asn1(optional = "true")]
    status_string: Option<Vec<Utf8StringRef<'a>>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// RFC 3161 TimeStampResp; the token is kept as its exact DER.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampResp<'a> {
    status: PkiStatusInfo<'a>,
    #[asn1(optional = "true")]
    time_stamp_token: Option<Any>,
}

/// RFC 3161 Accuracy.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct Accuracy {
    #[asn1(optional = "true")]
    seconds: Option<u64>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    millis: Option<u16>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    micros: Option<u16>,
}

/// RFC 3161 TSTInfo. `gen_time` is read raw: RFC 3161 allows fractional
/// seconds, which the DER GeneralizedTime type of `der` refuses. `policy`
/// too: `const-oid` refuses OIDs under 2.x with a second arc above 39
/// (such as the 2.999 example arc), which TSAs may use.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TstInfo {
    version: u8,
    policy: Any,
    message_imprint: MessageImprint,
    serial_number: Uint,
    gen_time: Any,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Uint>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// RFC 5035 IssuerSerial.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct IssuerSerial {
    issuer: GeneralNames,
    serial_number: SerialNumber,
}

/// RFC 2634 ESSCertID.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

/// RFC 2634 SigningCertificate.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Vec<Any>>,
}

/// RFC 5035 ESSCertIDv2 (hash algorithm SHA-256 when absent).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

/// RFC 5035 SigningCertificateV2.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Vec<Any>>,
}

// ---------------------------------------------------------------- requests and replies

/// The DER TimeStampReq for `imprint`: version 1, the caller's nonce,
/// certReq TRUE (so the token carries the TSA certificate), no policy.
pub fn request(imprint: &Imprint, nonce: &Nonce) -> Result<Vec<u8>, TspError> {
    let bad = |e: der::Error| TspError::Nonce(e.to_string());
    let req = TimeStampReq {
        version: 1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: imprint.alg.oid(),
                parameters: None,
            },
            hashed_message: OctetString::new(imprint.digest.clone()).map_err(bad)?,
        },
        req_policy: None,
        nonce: Some(Uint::new(nonce.as_bytes()).map_err(bad)?),
        cert_req: true,
    };
    req.to_der().map_err(bad)
}

/// The (imprint, nonce) of a DER TimeStampReq: what a reply must answer.
pub fn parse_request(der: &[u8]) -> Result<(Imprint, Option<Nonce>), TspError> {
    check_size("time-stamp request", der)?;
    let req = TimeStampReq::from_der(der).map_err(malformed("TimeStampReq"))?;
    let alg = HashAlg::from_oid(&req.message_imprint.hash_algorithm.oid).ok_or_else(|| {
        TspError::Unsupported(format!(
            "message imprint algorithm {}",
            oid_name(&req.message_imprint.hash_algorithm.oid)
        ))
    })?;
    let digest = req.message_imprint.hashed_message.as_bytes().to_vec();
    if digest.len() != alg.output_len() {
        return Err(TspError::Malformed {
            what: "TimeStampReq",
            reason: format!("{alg} imprint of {} bytes", digest.len()),
        });
    }
    Ok((
        Imprint { alg, digest },
        req.nonce.map(|n| Nonce::from_be(n.as_bytes())),
    ))
}

fn check_size(what: &'static str, der: &[u8]) -> Result<(), TspError> {
    if der.len() > MAX_TOKEN_BYTES {
        return Err(TspError::TooLarge {
            what,
            len: der.len(),
        });
    }
    Ok(())
}

/// Reads a DER TimeStampResp: the status must be granted (0) or
/// grantedWithMods (1); returns the token's exact DER bytes.
pub fn parse_response(der: &[u8]) -> Result<Vec<u8>, TspError> {
    check_size("time-stamp reply", der)?;
    let resp = TimeStampResp::from_der(der).map_err(malformed("TimeStampResp"))?;
    let status = resp.status.status.as_bytes();
    let code = match status {
        [] => Some(0),
        [b] => Some(*b),
        _ => None,
    };
    if !matches!(code, Some(0 | 1)) {
        let name = match code {
            Some(2) => "rejection".to_owned(),
            Some(3) => "waiting".to_owned(),
            Some(4) => "revocationWarning".to_owned(),
            Some(5) => "revocationNotification".to_owned(),
            _ => format!("unknown status {}", hex::encode(status)),
        };
        let mut detail = String::new();
        if let Some(bits) = &resp.status.fail_info {
            let names = fail_info_names(bits);
            if !names.is_empty() {
                detail.push_str(&format!(", failInfo {}", names.join(" ")));
            }
        }
        if let Some(text) = &resp.status.status_string {
            let t: Vec<&str> = text.iter().map(|s| s.as_str()).collect();
            detail.push_str(&format!(": \"{}\"", t.join("; ")));
        }
        return Err(TspError::Status {
            status: name,
            detail,
        });
    }
    let token = resp.time_stamp_token.ok_or(TspError::NoToken)?;
    token.to_der().map_err(malformed("TimeStampToken"))
}

fn fail_info_names(bits: &BitString) -> Vec<String> {
    const NAMES: [(usize, &str); 8] = [
        (0, "badAlg"),
        (2, "badRequest"),
        (5, "badDataFormat"),
        (14, "timeNotAvailable"),
        (15, "unacceptedPolicy"),
        (16, "unacceptedExtension"),
        (17, "addInfoNotAvailable"),
        (25, "systemFailure"),
    ];
    let set: Vec<usize> = bits
        .bits()
        .enumerate()
        .filter(|(_, b)| *b)
        .map(|(i, _)| i)
        .collect();
    set.iter()
        .map(|i| {
            NAMES
                .iter()
                .find(|(n, _)| n == i)
                .map_or_else(|| format!("bit{i}"), |(_, s)| (*s).to_owned())
        })
        .collect()
}

/// A bare token (`.tst`, a CMS ContentInfo) or a whole reply (`.tsr`): the
/// token's DER either way (a reply must be granted).
pub fn token_from_token_or_reply(der: &[u8]) -> Result<Vec<u8>, TspError> {
    check_size("time-stamp token", der)?;
    // A ContentInfo starts with an OID, a TimeStampResp with a SEQUENCE.
    if ContentInfo::from_der(der).is_ok() {
        return Ok(der.to_vec());
    }
    parse_response(der).map_err(|e| match e {
        TspError::Malformed { .. } => TspError::Malformed {
            what: "time-stamp token or reply",
            reason: "neither a CMS ContentInfo (.tst) nor a TimeStampResp (.tsr)".into(),
        },
        other => other,
    })
}

// ---------------------------------------------------------------- trust

/// Certificates the caller trusts (anchors) and may use to build a chain
/// (intermediates).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    anchors: Vec<Certificate>,
    intermediates: Vec<Certificate>,
}

impl Trust {
    /// Anchors from PEM (one or more certificates) or one DER certificate.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, TspError> {
        let anchors = parse_certs(bytes)?;
        Ok(Trust {
            anchors,
            intermediates: Vec::new(),
        })
    }

    /// Adds anchors from PEM or DER.
    pub fn add_anchors(&mut self, bytes: &[u8]) -> Result<(), TspError> {
        self.anchors.extend(parse_certs(bytes)?);
        self.check_count()
    }

    /// Adds untrusted intermediate certificates from PEM or DER, used only
    /// to build a chain.
    pub fn add_intermediates(&mut self, bytes: &[u8]) -> Result<(), TspError> {
        self.intermediates.extend(parse_certs(bytes)?);
        self.check_count()
    }

    /// How many anchors.
    pub fn anchor_count(&self) -> usize {
        self.anchors.len()
    }

    fn check_count(&self) -> Result<(), TspError> {
        if self.anchors.len() + self.intermediates.len() > MAX_CERTS {
            return Err(TspError::Anchors(format!(
                "more than {MAX_CERTS} certificates"
            )));
        }
        Ok(())
    }
}

fn parse_certs(bytes: &[u8]) -> Result<Vec<Certificate>, TspError> {
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(TspError::Anchors(format!(
            "{} bytes, more than {MAX_TOKEN_BYTES}",
            bytes.len()
        )));
    }
    let certs =
        if bytes.starts_with(b"-----BEGIN") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            Certificate::load_pem_chain(bytes)
                .map_err(|e| TspError::Anchors(format!("not a PEM certificate file: {e}")))?
        } else {
            vec![Certificate::from_der(bytes).map_err(|e| {
                TspError::Anchors(format!(
                    "not a DER or PEM X.509 certificate: {e} (give the TSA's CA certificate)"
                ))
            })?]
        };
    if certs.is_empty() {
        return Err(TspError::Anchors("no certificate in the file".into()));
    }
    if certs.len() > MAX_CERTS {
        return Err(TspError::Anchors(format!(
            "more than {MAX_CERTS} certificates"
        )));
    }
    Ok(certs)
}

// ---------------------------------------------------------------- verification

/// A token's time, as the TSA wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenTime {
    /// Since the Unix epoch.
    pub since_epoch: Duration,
    /// RFC 3339, UTC, with the fraction the TSA gave (`2026-11-24T10:15:02.123Z`).
    pub rfc3339: String,
}

impl fmt::Display for GenTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339)
    }
}

/// Whether the TSA certificate was chained to a trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainStatus {
    /// Chained to the anchor with this subject.
    Anchored {
        /// The anchor's subject.
        anchor: String,
        /// Certificates in the chain, TSA first, anchor last.
        length: usize,
    },
    /// No anchor was given: everything else was checked, but who the TSA
    /// is was not.
    NotChecked,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenReport {
    /// When the TSA time-stamped the imprint.
    pub gen_time: GenTime,
    /// The TSA certificate's subject (`CN=…,O=…`).
    pub tsa_subject: String,
    /// The token's serial number, hex.
    pub serial: String,
    /// The TSA policy OID under which it was issued.
    pub policy: String,
    /// The imprint's hash algorithm.
    pub hash_alg: HashAlg,
    /// The nonce in the token, if any.
    pub nonce: Option<Nonce>,
    /// The TSA's accuracy claim in microseconds, if given.
    pub accuracy_micros: Option<u64>,
    /// Whether the TSA was chained to an anchor.
    pub chain: ChainStatus,
}

/// Verifies a DER TimeStampToken offline (see the module documentation for
/// every check, in order). `nonce`: the one sent, when this token answers a
/// request of ours. `trust`: `None` checks everything that needs no anchor
/// and reports [`ChainStatus::NotChecked`].
pub fn verify_token(
    token: &[u8],
    expected: &Imprint,
    nonce: Option<&Nonce>,
    trust: Option<&Trust>,
) -> Result<TokenReport, TspError> {
    check_size("time-stamp token", token)?;
    let ci = ContentInfo::from_der(token).map_err(malformed("TimeStampToken (CMS ContentInfo)"))?;
    if ci.content_type != rfc5911::ID_SIGNED_DATA {
        return Err(TspError::NotToken(format!(
            "CMS content type is {}, not id-signedData",
            oid_name(&ci.content_type)
        )));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(malformed("CMS SignedData"))?;
    if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(TspError::NotToken(format!(
            "encapsulated content type is {}, not id-ct-TSTInfo",
            oid_name(&sd.encap_content_info.econtent_type)
        )));
    }
    if sd.version != cms::content_info::CmsVersion::V3 {
        return Err(TspError::NotToken(format!(
            "SignedData version {}, expected 3 for id-ct-TSTInfo",
            sd.version as u8
        )));
    }
    let tst_bytes: OctetString = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| TspError::NotToken("no encapsulated TSTInfo".into()))?
        .decode_as()
        .map_err(malformed("encapsulated TSTInfo"))?;
    let tst = TstInfo::from_der(tst_bytes.as_bytes()).map_err(malformed("TSTInfo"))?;
    if tst.version != 1 {
        return Err(TspError::NotToken(format!(
            "TSTInfo version {}, expected 1",
            tst.version
        )));
    }
    let gen_time = parse_gen_time(&tst.gen_time)?;
    // No TSTInfo extension is understood here; a critical one changes the
    // meaning of the token in a way this verifier cannot honour.
    if let Some(e) = tst.extensions.iter().flatten().find(|e| e.critical) {
        return Err(TspError::Unsupported(format!(
            "critical TSTInfo extension {} (a token whose critical extension is not understood is refused)",
            oid_name(&e.extn_id)
        )));
    }

    // 2. What was stamped, and for whom.
    let token_alg = &tst.message_imprint.hash_algorithm.oid;
    if *token_alg != expected.alg.oid() {
        return Err(TspError::ImprintAlgorithm {
            token: HashAlg::from_oid(token_alg)
                .map_or_else(|| oid_name(token_alg), |a| a.name().into()),
            expected: expected.alg.name().into(),
        });
    }
    let token_digest = tst.message_imprint.hashed_message.as_bytes();
    if token_digest != expected.digest.as_slice() {
        return Err(TspError::ImprintMismatch {
            token: hex::encode(token_digest),
            expected: hex::encode(&expected.digest),
        });
    }
    let token_nonce = tst.nonce.as_ref().map(|n| Nonce::from_be(n.as_bytes()));
    if let Some(want) = nonce {
        match &token_nonce {
            None => return Err(TspError::NonceMismatch("the token has no nonce".into())),
            Some(got) if got != want => {
                return Err(TspError::NonceMismatch(format!(
                    "the token's nonce is {}, the request's was {}",
                    got.to_hex(),
                    want.to_hex()
                )));
            }
            Some(_) => {}
        }
    }

    // 3. The one signer and its signed attributes.
    let signers: Vec<&SignerInfo> = sd.signer_infos.0.iter().collect();
    let [signer] = signers.as_slice() else {
        return Err(TspError::NotToken(format!(
            "{} signers, a time-stamp token has exactly one",
            signers.len()
        )));
    };
    let digest_alg = HashAlg::from_oid(&signer.digest_alg.oid).ok_or_else(|| {
        TspError::Unsupported(format!(
            "CMS digest algorithm {}",
            oid_name(&signer.digest_alg.oid)
        ))
    })?;
    // digestAlgorithms is outside the signature; require it to say exactly
    // what the signer used so no byte of the token goes unchecked.
    let listed: Vec<&AlgorithmIdentifierOwned> = sd.digest_algorithms.iter().collect();
    if listed.len() != 1 || *listed[0] != signer.digest_alg {
        return Err(TspError::NotToken(
            "SignedData digestAlgorithms does not list exactly the signer's digest algorithm"
                .into(),
        ));
    }
    // RFC 5652 §5.3: the version follows the signer identifier's form; it
    // is unsigned, so it must have its one valid value.
    let want_version = match signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(_) => cms::content_info::CmsVersion::V1,
        SignerIdentifier::SubjectKeyIdentifier(_) => cms::content_info::CmsVersion::V3,
    };
    if signer.version != want_version {
        return Err(TspError::NotToken(format!(
            "SignerInfo version {} does not fit its signer identifier",
            signer.version as u8
        )));
    }
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| TspError::SignedAttributes("absent (RFC 3161 requires them)".into()))?;
    let content_type: ObjectIdentifier =
        single_attr(attrs, rfc5911::ID_CONTENT_TYPE, "content-type")?;
    if content_type != ID_CT_TST_INFO {
        return Err(TspError::SignedAttributes(format!(
            "content-type is {}, not id-ct-TSTInfo",
            oid_name(&content_type)
        )));
    }
    let md: OctetString = single_attr(attrs, rfc5911::ID_MESSAGE_DIGEST, "message-digest")?;
    if md.as_bytes() != digest_alg.digest(tst_bytes.as_bytes()).as_slice() {
        return Err(TspError::SignedAttributes(
            "message-digest does not match the TSTInfo (the time-stamp content was changed)".into(),
        ));
    }

    // The certificate pool: embedded first, then the caller's.
    // The decoder sorts SET OF members, so the order of the (unsigned)
    // certificate set is not checked: PKCS#7 writers such as `openssl ts`
    // keep the signer's certificate first instead of sorting, and the order
    // carries no meaning.
    let mut embedded = Vec::new();
    if let Some(set) = &sd.certificates {
        for c in set.0.iter() {
            match c {
                CertificateChoices::Certificate(c) => embedded.push(c.clone()),
                CertificateChoices::Other(_) => {
                    return Err(TspError::Unsupported(
                        "non-X.509 certificate format in the token".into(),
                    ));
                }
            }
        }
    }
    if embedded.len() > MAX_EMBEDDED {
        return Err(TspError::NotToken(format!(
            "more than {MAX_EMBEDDED} embedded certificates"
        )));
    }
    let empty = Trust::default();
    let t = trust.unwrap_or(&empty);
    let pool: Vec<&Certificate> = embedded
        .iter()
        .chain(t.intermediates.iter())
        .chain(t.anchors.iter())
        .collect();
    let tsa = pool
        .iter()
        .copied()
        .find(|c| signer_matches(&signer.sid, c))
        .ok_or(TspError::SignerNotFound)?;
    let tsa_der = tsa.to_der().map_err(malformed("TSA certificate"))?;
    check_signing_certificate(attrs, tsa, &tsa_der)?;

    // 4. The signature itself, over the signed attributes exactly as
    // received (the decoder sorts SET OF members, so re-encoding `attrs`
    // would hide a reordering and refuse a signer that did not sort).
    let signed = raw_signed_attrs(&ci.content)?;
    let reparsed =
        x509_cert::attr::Attributes::from_der(&signed).map_err(malformed("signed attributes"))?;
    if reparsed != *attrs {
        return Err(TspError::Malformed {
            what: "signed attributes",
            reason: "the raw signed attributes differ from the decoded ones".into(),
        });
    }
    verify_cms_signature(
        tsa,
        &signer.signature_algorithm,
        digest_alg,
        &signed,
        signer.signature.as_bytes(),
    )?;

    // 5. The TSA certificate may sign time-stamps, and did so in time.
    let tsa_subject = tsa.tbs_certificate().subject().to_string();
    check_tsa_usage(tsa, &tsa_subject)?;
    check_tsa_name(tst.tsa.as_ref(), tsa, &tsa_subject)?;
    check_valid_at(tsa, &gen_time)?;

    // 6. Who the TSA is.
    let chain = match trust {
        Some(t) if !t.anchors.is_empty() => {
            let (anchor, path) = build_chain(tsa, &pool, t, &gen_time)?;
            let length = path.len();
            for (i, c) in embedded.iter().enumerate() {
                // Certificates on the path were verified by signature, and
                // copies of an anchor are the anchor: nothing left to check.
                if path.contains(&c) || t.anchors.contains(c) {
                    continue;
                }
                let ok = pool.iter().any(|issuer| {
                    issuer.tbs_certificate().subject() == c.tbs_certificate().issuer()
                        && verify_cert_signature(c, issuer).is_ok()
                });
                if !ok {
                    return Err(TspError::Chain(format!(
                        "certificate {} embedded in the token ({}) does not verify under any known certificate (changed, or its issuer is missing)",
                        i + 1,
                        c.tbs_certificate().subject()
                    )));
                }
            }
            ChainStatus::Anchored { anchor, length }
        }
        Some(_) => return Err(TspError::Anchors("no trust anchor given".into())),
        None => ChainStatus::NotChecked,
    };

    let accuracy_micros = tst.accuracy.as_ref().map(|a| {
        a.seconds
            .unwrap_or(0)
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(a.millis.unwrap_or(0)) * 1000)
            .saturating_add(u64::from(a.micros.unwrap_or(0)))
    });
    Ok(TokenReport {
        gen_time,
        tsa_subject,
        serial: hex::encode(tst.serial_number.as_bytes()),
        policy: oid_text(&tst.policy)?,
        hash_alg: expected.alg,
        nonce: token_nonce,
        accuracy_micros,
        chain,
    })
}

/// Verifies a reply to a request of ours: granted status, then the token
/// with the request's imprint and nonce. Returns the token's DER and its
/// report.
pub fn verify_response(
    reply: &[u8],
    expected: &Imprint,
    nonce: &Nonce,
    trust: Option<&Trust>,
) -> Result<(Vec<u8>, TokenReport), TspError> {
    let token = parse_response(reply)?;
    let report = verify_token(&token, expected, Some(nonce), trust)?;
    Ok((token, report))
}

/// One DER element, as received.
#[derive(Clone, Copy)]
struct DerElem<'a> {
    tag: u8,
    /// Tag, length and value.
    whole: &'a [u8],
    value: &'a [u8],
}

/// The DER element at the start of `input`, and what follows it. Single-
/// byte tags and definite lengths only, which is all a token that `der`
/// has already decoded can contain.
fn der_split(input: &[u8]) -> Option<(DerElem<'_>, &[u8])> {
    let (&tag, after_tag) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = after_tag.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, b| (l << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    let elem = DerElem {
        tag,
        whole: &input[..header + len],
        value: &rest[..len],
    };
    Some((elem, &rest[len..]))
}

/// The elements of a constructed value, in the order received.
fn der_children(mut value: &[u8]) -> Option<Vec<DerElem<'_>>> {
    let mut out = Vec::new();
    while !value.is_empty() {
        let (elem, rest) = der_split(value)?;
        out.push(elem);
        value = rest;
    }
    Some(out)
}

/// The one signer's signedAttrs exactly as received, with the [0] IMPLICIT
/// tag replaced by the SET OF tag, which is what the signature covers
/// (RFC 5652 §5.4). `signed_data` is the ContentInfo's content.
fn raw_signed_attrs(signed_data: &Any) -> Result<Vec<u8>, TspError> {
    let bad = || TspError::Malformed {
        what: "CMS SignedData",
        reason: "cannot locate the signed attributes".into(),
    };
    let sd = der_children(signed_data.value()).ok_or_else(bad)?;
    // The last field of SignedData is signerInfos, a SET OF one SignerInfo.
    let infos = sd.last().filter(|e| e.tag == 0x31).ok_or_else(bad)?;
    let infos = der_children(infos.value).ok_or_else(bad)?;
    let [info] = infos.as_slice() else {
        return Err(bad());
    };
    // version, sid, digestAlgorithm, [0] signedAttrs, ...
    let fields = der_children(info.value).ok_or_else(bad)?;
    let attrs = fields.get(3).filter(|e| e.tag == 0xa0).ok_or_else(bad)?;
    let mut out = attrs.whole.to_vec();
    out[0] = 0x31;
    Ok(out)
}

fn oid_name(oid: &ObjectIdentifier) -> String {
    const_oid::db::DB
        .by_oid(oid)
        .map_or_else(|| oid.to_string(), |n| format!("{n} ({oid})"))
}

/// The one value of the one attribute `oid`, decoded as `T`.
fn single_attr<T>(
    attrs: &x509_cert::attr::Attributes,
    oid: ObjectIdentifier,
    name: &str,
) -> Result<T, TspError>
where
    T: for<'a> Decode<'a>,
{
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let (Some(attr), None) = (found.next(), found.next()) else {
        return Err(TspError::SignedAttributes(format!(
            "{name} must appear exactly once"
        )));
    };
    let values: Vec<&Any> = attr.values.iter().collect();
    let [value] = values.as_slice() else {
        return Err(TspError::SignedAttributes(format!(
            "{name} must have exactly one value"
        )));
    };
    let der = value
        .to_der()
        .map_err(|e| TspError::SignedAttributes(format!("{name}: {e}")))?;
    T::from_der(&der).map_err(|_| TspError::SignedAttributes(format!("{name}: malformed value")))
}

fn signer_matches(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    let tbs = cert.tbs_certificate();
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            isn.issuer == *tbs.issuer() && isn.serial_number == *tbs.serial_number()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            matches!(tbs.get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>(),
                Ok(Some((_, own))) if own == *ski)
        }
    }
}

/// RFC 5035 / RFC 2634: the first ESSCertID(v2) must be the signer's; when
/// both attributes are present, both must say so.
fn check_signing_certificate(
    attrs: &x509_cert::attr::Attributes,
    tsa: &Certificate,
    tsa_der: &[u8],
) -> Result<(), TspError> {
    let has = |oid| attrs.iter().any(|a| a.oid == oid);
    let bad = |m: String| TspError::SigningCertificate(m);
    let (v1, v2) = (
        has(rfc5911::ID_AA_SIGNING_CERTIFICATE),
        has(rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2),
    );
    if !v1 && !v2 {
        return Err(bad(
            "absent: neither signing-certificate nor signing-certificate-v2 is signed (RFC 3161 §2.4.2)"
                .into(),
        ));
    }
    if v2 {
        let v2: SigningCertificateV2 = single_attr(
            attrs,
            rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2,
            "signing-certificate-v2",
        )?;
        let first = v2
            .certs
            .into_iter()
            .next()
            .ok_or_else(|| bad("no ESSCertIDv2".into()))?;
        let alg = match &first.hash_algorithm {
            None => HashAlg::Sha256,
            Some(a) => HashAlg::from_oid(&a.oid).ok_or_else(|| {
                TspError::Unsupported(format!("ESSCertIDv2 hash {}", oid_name(&a.oid)))
            })?,
        };
        check_ess_cert_id(
            "signing-certificate-v2",
            first.cert_hash.as_bytes(),
            &alg.digest(tsa_der),
            first.issuer_serial,
            tsa,
        )?;
    }
    if v1 {
        let v1: SigningCertificate = single_attr(
            attrs,
            rfc5911::ID_AA_SIGNING_CERTIFICATE,
            "signing-certificate",
        )?;
        let first = v1
            .certs
            .into_iter()
            .next()
            .ok_or_else(|| bad("no ESSCertID".into()))?;
        check_ess_cert_id(
            "signing-certificate",
            first.cert_hash.as_bytes(),
            &sha1::Sha1::digest(tsa_der),
            first.issuer_serial,
            tsa,
        )?;
    }
    Ok(())
}

/// One ESSCertID(v2): its hash, and its issuer and serial when given, name
/// the certificate that signed.
fn check_ess_cert_id(
    name: &str,
    hash: &[u8],
    expect: &[u8],
    issuer_serial: Option<IssuerSerial>,
    tsa: &Certificate,
) -> Result<(), TspError> {
    let tbs = tsa.tbs_certificate();
    if hash != expect {
        return Err(TspError::SigningCertificate(format!(
            "the certificate hash in {name} does not match the certificate that signed ({}); the token binds another TSA certificate",
            tbs.subject()
        )));
    }
    if let Some(is) = issuer_serial {
        let names_issuer = is
            .issuer
            .iter()
            .any(|g| matches!(g, GeneralName::DirectoryName(n) if n == tbs.issuer()));
        if !names_issuer || is.serial_number != *tbs.serial_number() {
            return Err(TspError::SigningCertificate(format!(
                "the issuer and serial number in {name} do not name the certificate that signed"
            )));
        }
    }
    Ok(())
}

/// A signature scheme this verifier implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// RSA PKCS#1 v1.5.
    Pkcs1(HashAlg),
    /// RSASSA-PSS with MGF1 over the same hash and a trailer field of 1.
    Pss(HashAlg, usize),
    /// ECDSA (P-256 or P-384, by the key).
    Ecdsa(HashAlg),
}

impl Scheme {
    fn hash(self) -> HashAlg {
        match self {
            Scheme::Pkcs1(h) | Scheme::Pss(h, _) | Scheme::Ecdsa(h) => h,
        }
    }
}

/// id-mgf1 (RFC 8017).
const ID_MGF_1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");

/// The signature scheme an algorithm identifier names; `rsaEncryption`
/// alone (as OpenSSL writes in CMS) takes its hash from `digest`.
fn scheme(alg: &AlgorithmIdentifierOwned, digest: HashAlg) -> Result<Scheme, TspError> {
    let o = alg.oid;
    let unsupported = || {
        TspError::Unsupported(format!(
            "signature algorithm {} (supported: ECDSA P-256/P-384, RSA PKCS#1 v1.5 and RSA-PSS with SHA-256/384/512)",
            oid_name(&o)
        ))
    };
    if o == rfc5912::ID_RSASSA_PSS {
        return pss_scheme(alg).ok_or_else(|| {
            TspError::Unsupported(
                "RSA-PSS parameters (supported: SHA-256/384/512 with MGF1 over the same hash, trailer field 1)"
                    .into(),
            )
        });
    }
    // These algorithms take no parameters (absent, or NULL for RSA); anything
    // else there is unsigned bytes nobody checks.
    let null_ok = alg.parameters.as_ref().is_none_or(|p| {
        p.tag() == Tag::Null
            && p.value().is_empty()
            && !o.as_bytes().starts_with(&[0x2a, 0x86, 0x48, 0xce, 0x3d])
    });
    if !null_ok {
        return Err(TspError::Unsupported(format!(
            "parameters on signature algorithm {}",
            oid_name(&o)
        )));
    }
    let r = if o == rfc5912::RSA_ENCRYPTION {
        Scheme::Pkcs1(digest)
    } else if o == rfc5912::SHA_256_WITH_RSA_ENCRYPTION {
        Scheme::Pkcs1(HashAlg::Sha256)
    } else if o == SHA_384_WITH_RSA {
        Scheme::Pkcs1(HashAlg::Sha384)
    } else if o == SHA_512_WITH_RSA {
        Scheme::Pkcs1(HashAlg::Sha512)
    } else if o == rfc5912::ECDSA_WITH_SHA_256 {
        Scheme::Ecdsa(HashAlg::Sha256)
    } else if o == ECDSA_WITH_SHA_384 {
        Scheme::Ecdsa(HashAlg::Sha384)
    } else if o == ECDSA_WITH_SHA_512 {
        Scheme::Ecdsa(HashAlg::Sha512)
    } else {
        return Err(unsupported());
    };
    Ok(r)
}

fn pss_scheme(alg: &AlgorithmIdentifierOwned) -> Option<Scheme> {
    let params: pkcs1::RsaPssParams<Any> = alg.parameters.as_ref()?.decode_as().ok()?;
    let hash = HashAlg::from_oid(&params.hash.oid)?;
    let mgf_hash = params.mask_gen.parameters.as_ref()?;
    if params.mask_gen.oid != ID_MGF_1
        || mgf_hash.oid != params.hash.oid
        || params.trailer_field != pkcs1::TrailerField::BC
    {
        return None;
    }
    Some(Scheme::Pss(hash, usize::from(params.salt_len)))
}

/// Verifies `sig` over `msg` with `key_cert`'s public key under `alg`.
fn verify_with(
    key_cert: &Certificate,
    alg: &AlgorithmIdentifierOwned,
    digest: HashAlg,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let scheme = scheme(alg, digest).map_err(|e| e.to_string())?;
    let spki = key_cert.tbs_certificate().subject_public_key_info();
    let prehash = scheme.hash().digest(msg);
    if let Scheme::Pkcs1(hash) | Scheme::Pss(hash, _) = scheme {
        if spki.algorithm.oid != rfc5912::RSA_ENCRYPTION {
            return Err("an RSA signature from a key that is not an rsaEncryption key".into());
        }
        use rsa::pkcs8::DecodePublicKey;
        use rsa::signature::hazmat::PrehashVerifier;
        use rsa::traits::PublicKeyParts;
        let der = spki.to_der().map_err(|e| e.to_string())?;
        let key = rsa::PublicKey::from_public_key_der(&der)
            .map_err(|e| format!("unusable RSA key: {e}"))?;
        if key.size() * 8 < MIN_RSA_BITS {
            return Err(format!(
                "RSA key of {} bits, fewer than {MIN_RSA_BITS}",
                key.size() * 8
            ));
        }
        let r = if let Scheme::Pss(_, salt) = scheme {
            let sig = rsa::pss::Signature::try_from(sig).map_err(|e| e.to_string())?;
            match hash {
                HashAlg::Sha256 => {
                    rsa::pss::VerifyingKey::<sha2::Sha256>::new_with_salt_len(key, salt)
                        .verify_prehash(&prehash, &sig)
                }
                HashAlg::Sha384 => {
                    rsa::pss::VerifyingKey::<sha2::Sha384>::new_with_salt_len(key, salt)
                        .verify_prehash(&prehash, &sig)
                }
                HashAlg::Sha512 => {
                    rsa::pss::VerifyingKey::<sha2::Sha512>::new_with_salt_len(key, salt)
                        .verify_prehash(&prehash, &sig)
                }
            }
        } else {
            let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| e.to_string())?;
            match hash {
                HashAlg::Sha256 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key)
                    .verify_prehash(&prehash, &sig),
                HashAlg::Sha384 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(key)
                    .verify_prehash(&prehash, &sig),
                HashAlg::Sha512 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(key)
                    .verify_prehash(&prehash, &sig),
            }
        };
        r.map_err(|_| "RSA signature mismatch".into())
    } else {
        use ecdsa::signature::hazmat::PrehashVerifier;
        if spki.algorithm.oid != rfc5912::ID_EC_PUBLIC_KEY {
            return Err("an ECDSA signature from a non-EC key".into());
        }
        let curve: ObjectIdentifier = spki
            .algorithm
            .parameters
            .as_ref()
            .ok_or("EC key without a named curve")?
            .decode_as()
            .map_err(|_| "EC key parameters are not a named curve")?;
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or("EC public key is not a whole number of bytes")?;
        if curve == SECP_256_R_1 {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| "invalid P-256 public key")?;
            let s =
                p256::ecdsa::Signature::from_der(sig).map_err(|_| "malformed ECDSA signature")?;
            vk.verify_prehash(&prehash, &s)
                .map_err(|_| "ECDSA signature mismatch".into())
        } else if curve == SECP_384_R_1 {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| "invalid P-384 public key")?;
            let s =
                p384::ecdsa::Signature::from_der(sig).map_err(|_| "malformed ECDSA signature")?;
            vk.verify_prehash(&prehash, &s)
                .map_err(|_| "ECDSA signature mismatch".into())
        } else {
            Err(format!(
                "unsupported EC curve {} (supported: P-256, P-384)",
                oid_name(&curve)
            ))
        }
    }
}

fn verify_cms_signature(
    tsa: &Certificate,
    alg: &AlgorithmIdentifierOwned,
    digest: HashAlg,
    signed_attrs: &[u8],
    sig: &[u8],
) -> Result<(), TspError> {
    scheme(alg, digest)?;
    verify_with(tsa, alg, digest, signed_attrs, sig).map_err(TspError::Signature)
}

fn verify_cert_signature(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    if cert.signature_algorithm() != cert.tbs_certificate().signature() {
        return Err("its two signature algorithm fields differ".into());
    }
    let tbs = cert.tbs_certificate().to_der().map_err(|e| e.to_string())?;
    let sig = cert
        .signature()
        .as_bytes()
        .ok_or("signature is not a whole number of bytes")?;
    // For certificates the algorithm always names its hash; the fallback
    // digest only matters for bare rsaEncryption, which certificates never use.
    verify_with(
        issuer,
        cert.signature_algorithm(),
        HashAlg::Sha256,
        &tbs,
        sig,
    )
}

fn time_string(d: Duration) -> String {
    i64::try_from(d.as_secs())
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|| format!("{}s after 1970", d.as_secs()))
}

fn check_valid_at(cert: &Certificate, at: &GenTime) -> Result<(), TspError> {
    let v = cert.tbs_certificate().validity();
    let (nb, na) = (
        v.not_before.to_unix_duration(),
        v.not_after.to_unix_duration(),
    );
    if at.since_epoch < nb || at.since_epoch > na {
        return Err(TspError::NotValidAtGenTime {
            subject: cert.tbs_certificate().subject().to_string(),
            gen_time: at.rfc3339.clone(),
            not_before: time_string(nb),
            not_after: time_string(na),
        });
    }
    Ok(())
}

/// Extensions this verifier understands; any other critical one makes the
/// certificate unusable, and so does any extension present twice (RFC 5280
/// §4.2: "a certificate MUST NOT include more than one instance of a
/// particular extension").
fn check_critical(cert: &Certificate) -> Result<(), String> {
    const KNOWN: [ObjectIdentifier; 5] = [
        rfc5280::ID_CE_BASIC_CONSTRAINTS,
        rfc5280::ID_CE_KEY_USAGE,
        rfc5280::ID_CE_EXT_KEY_USAGE,
        rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
        rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
    ];
    let exts: Vec<&x509_cert::ext::Extension> = cert
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .collect();
    for (i, e) in exts.iter().enumerate() {
        if exts[..i].iter().any(|p| p.extn_id == e.extn_id) {
            return Err(format!(
                "carries extension {} more than once (RFC 5280 §4.2)",
                oid_name(&e.extn_id)
            ));
        }
        if e.critical && !KNOWN.contains(&e.extn_id) {
            return Err(format!(
                "unsupported critical extension {}",
                oid_name(&e.extn_id)
            ));
        }
    }
    Ok(())
}

fn check_tsa_usage(tsa: &Certificate, subject: &str) -> Result<(), TspError> {
    let bad = |reason: String| TspError::TsaCertificate {
        subject: subject.to_owned(),
        reason,
    };
    // First, so that a duplicated extension is named as such rather than
    // reported as unreadable below.
    check_critical(tsa).map_err(bad)?;
    let tbs = tsa.tbs_certificate();
    match tbs.get_extension::<ExtendedKeyUsage>() {
        Ok(Some((critical, eku))) => {
            if !eku.0.contains(&rfc5280::ID_KP_TIME_STAMPING) {
                return Err(bad(
                    "extendedKeyUsage lacks id-kp-timeStamping: not a TSA certificate".into(),
                ));
            }
            if eku.0.len() != 1 {
                return Err(bad(
                    "extendedKeyUsage must be id-kp-timeStamping alone (RFC 3161 §2.3)".into(),
                ));
            }
            if !critical {
                return Err(bad(
                    "extendedKeyUsage timeStamping is not marked critical (RFC 3161 §2.3)".into(),
                ));
            }
        }
        Ok(None) => {
            return Err(bad(
                "no extendedKeyUsage: a TSA certificate must carry a critical id-kp-timeStamping (RFC 3161 §2.3)".into(),
            ));
        }
        Err(e) => return Err(bad(format!("extendedKeyUsage unreadable: {e}"))),
    }
    match tbs.get_extension::<KeyUsage>() {
        Ok(Some((_, ku))) if !(ku.digital_signature() || ku.non_repudiation()) => Err(bad(
            "keyUsage allows neither digitalSignature nor nonRepudiation".into(),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(bad(format!("keyUsage unreadable: {e}"))),
    }
}

/// RFC 3161 §2.4.2: the TSTInfo `tsa` field, when present, names the
/// certificate that verifies the token: its subject (as a directoryName,
/// compared exactly) or one of its subjectAltName entries.
fn check_tsa_name(
    name: Option<&GeneralName>,
    tsa: &Certificate,
    subject: &str,
) -> Result<(), TspError> {
    let Some(name) = name else {
        return Ok(());
    };
    let bad = |reason: String| TspError::TsaCertificate {
        subject: subject.to_owned(),
        reason,
    };
    let tbs = tsa.tbs_certificate();
    if matches!(name, GeneralName::DirectoryName(n) if n == tbs.subject()) {
        return Ok(());
    }
    let san = tbs
        .get_extension::<SubjectAltName>()
        .map_err(|e| bad(format!("subjectAltName unreadable: {e}")))?;
    if san.is_some_and(|(_, san)| san.0.contains(name)) {
        return Ok(());
    }
    let named = match name {
        GeneralName::DirectoryName(n) => n.to_string(),
        GeneralName::DnsName(n) => format!("DNS:{}", n.as_str()),
        GeneralName::Rfc822Name(n) => format!("email:{}", n.as_str()),
        GeneralName::UniformResourceIdentifier(n) => format!("URI:{}", n.as_str()),
        _ => "a name of another form".into(),
    };
    Err(bad(format!(
        "the token's tsa field names {named}, which is neither this certificate's subject nor one of its subjectAltName entries (RFC 3161 §2.4.2: another TSA's name on this signature)"
    )))
}

/// Walks from the TSA certificate to an anchor; returns the anchor's
/// subject and the path, TSA certificate first, anchor last.
fn build_chain<'c>(
    tsa: &'c Certificate,
    pool: &[&'c Certificate],
    trust: &Trust,
    at: &GenTime,
) -> Result<(String, Vec<&'c Certificate>), TspError> {
    let is_anchor = |c: &Certificate| trust.anchors.iter().any(|a| a == c);
    let mut chain: Vec<&Certificate> = vec![tsa];
    loop {
        let cur = *chain
            .last()
            .ok_or_else(|| TspError::Chain("empty".into()))?;
        if is_anchor(cur) {
            return Ok((cur.tbs_certificate().subject().to_string(), chain));
        }
        if chain.len() >= MAX_CHAIN {
            return Err(TspError::Chain(format!(
                "no trust anchor within {MAX_CHAIN} certificates"
            )));
        }
        let subject = cur.tbs_certificate().subject().to_string();
        if cur.tbs_certificate().subject() == cur.tbs_certificate().issuer()
            && verify_cert_signature(cur, cur).is_ok()
        {
            return Err(TspError::Chain(format!(
                "the chain ends at the self-signed {subject}, which is not among the trust anchors given (an untrusted TSA, or the wrong --tsa-ca; a CA of the same name with another key is not the same CA)"
            )));
        }
        let candidates: Vec<&Certificate> = pool
            .iter()
            .copied()
            .filter(|c| {
                c.tbs_certificate().subject() == cur.tbs_certificate().issuer()
                    && !chain.contains(c)
            })
            .collect();
        if candidates.is_empty() {
            return Err(TspError::Chain(format!(
                "{subject} was issued by {}, which is not among the trust anchors given (an untrusted TSA, or the wrong --tsa-ca)",
                cur.tbs_certificate().issuer()
            )));
        }
        // Prefer an anchor when several certificates share the name.
        let mut last_err = String::new();
        let mut next = None;
        for c in candidates
            .iter()
            .filter(|c| is_anchor(c))
            .chain(candidates.iter().filter(|c| !is_anchor(c)))
        {
            match verify_cert_signature(cur, c) {
                Ok(()) => {
                    next = Some(*c);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let issuer = next.ok_or_else(|| {
            TspError::Chain(format!(
                "the signature on {subject} does not verify under its issuer {} ({last_err})",
                cur.tbs_certificate().issuer()
            ))
        })?;
        let issuer_subject = issuer.tbs_certificate().subject().to_string();
        let ca_err = |r: &str| TspError::Chain(format!("{issuer_subject} {r}"));
        check_critical(issuer).map_err(|e| ca_err(&e))?;
        match issuer.tbs_certificate().get_extension::<BasicConstraints>() {
            Ok(Some((_, bc))) if bc.ca => {
                // Certificates strictly between this issuer and the TSA
                // certificate; pathLen bounds the CAs among them.
                let below = chain.len() - 1;
                if let Some(max) = bc.path_len_constraint
                    && below > usize::from(max)
                {
                    return Err(ca_err("has a path length constraint the chain exceeds"));
                }
            }
            _ => {
                return Err(ca_err(
                    "is not a CA (basicConstraints CA:TRUE missing) and cannot issue certificates",
                ));
            }
        }
        match issuer.tbs_certificate().get_extension::<KeyUsage>() {
            Ok(Some((_, ku))) if !ku.key_cert_sign() => {
                return Err(ca_err("has keyUsage without keyCertSign"));
            }
            Ok(_) => {}
            Err(e) => return Err(ca_err(&format!("has an unreadable keyUsage ({e})"))),
        }
        check_valid_at(issuer, at)?;
        chain.push(issuer);
    }
}

/// The dotted form of an OBJECT IDENTIFIER read raw (see [`TstInfo`]).
fn oid_text(any: &Any) -> Result<String, TspError> {
    let bad = |r: &str| TspError::Malformed {
        what: "TSTInfo policy",
        reason: r.to_owned(),
    };
    if any.tag() != Tag::ObjectIdentifier {
        return Err(bad("not an OBJECT IDENTIFIER"));
    }
    let bytes = any.value();
    if bytes.is_empty() || bytes.len() > 64 || bytes.last().is_some_and(|b| b & 0x80 != 0) {
        return Err(bad("truncated or too long"));
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut cur: u64 = 0;
    let mut fresh = true;
    for &b in bytes {
        if fresh && b == 0x80 {
            return Err(bad("non-minimal arc encoding"));
        }
        cur = cur
            .checked_mul(128)
            .map(|c| c | u64::from(b & 0x7f))
            .ok_or_else(|| bad("arc too large"))?;
        fresh = b & 0x80 == 0;
        if fresh {
            arcs.push(cur);
            cur = 0;
        }
    }
    let first = arcs[0];
    let (a, b) = match first {
        0..40 => (0, first),
        40..80 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut out = format!("{a}.{b}");
    for arc in &arcs[1..] {
        out.push_str(&format!(".{arc}"));
    }
    Ok(out)
}

/// Parses a GeneralizedTime as RFC 3161 §2.4.2 writes genTime:
/// `YYYYMMDDhhmmss[.s+]Z`, UTC, no trailing zeros in the fraction.
fn parse_gen_time(any: &Any) -> Result<GenTime, TspError> {
    let bad = |r: &str| TspError::Malformed {
        what: "TSTInfo genTime",
        reason: r.to_owned(),
    };
    if any.tag() != Tag::GeneralizedTime {
        return Err(bad("not a GeneralizedTime"));
    }
    let s = std::str::from_utf8(any.value()).map_err(|_| bad("not ASCII"))?;
    let body = s
        .strip_suffix('Z')
        .ok_or_else(|| bad("not UTC (no trailing Z)"))?;
    let (whole, frac) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected YYYYMMDDhhmmss"));
    }
    let num = |r: std::ops::Range<usize>| whole[r].parse::<u16>().map_err(|_| bad("bad digits"));
    let date = time::Date::from_calendar_date(
        i32::from(num(0..4)?),
        time::Month::try_from(num(4..6)? as u8).map_err(|_| bad("bad month"))?,
        num(6..8)? as u8,
    )
    .map_err(|_| bad("no such date"))?;
    let t = time::Time::from_hms(num(8..10)? as u8, num(10..12)? as u8, num(12..14)? as u8)
        .map_err(|_| bad("no such time of day"))?;
    let secs = date.with_time(t).assume_utc().unix_timestamp();
    let secs = u64::try_from(secs).map_err(|_| bad("before 1970"))?;
    let mut nanos = 0u32;
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) || f.ends_with('0')
        {
            return Err(bad("bad fraction of a second"));
        }
        nanos = format!("{f:0<9}")
            .parse()
            .map_err(|_| bad("bad fraction"))?;
    }
    let mut rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}",
        &whole[0..4],
        &whole[4..6],
        &whole[6..8],
        &whole[8..10],
        &whole[10..12],
        &whole[12..14]
    );
    if let Some(f) = frac {
        rfc3339.push('.');
        rfc3339.push_str(f);
    }
    rfc3339.push('Z');
    Ok(GenTime {
        since_epoch: Duration::new(secs, nanos),
        rfc3339,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
