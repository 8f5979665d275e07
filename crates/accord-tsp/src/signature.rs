//! Signature schemes (ECDSA P-256 / P-384, RSA PKCS#1 v1.5 and PSS) and
//! their checks: the CMS signature over the signed attributes and a
//! certificate's signature under its issuer.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;
use der::{Any, Encode, Tag, Tagged};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::asn1::oid_name;
use crate::{
    ECDSA_WITH_SHA_384, ECDSA_WITH_SHA_512, HashAlg, MIN_RSA_BITS, SECP_256_R_1, SECP_384_R_1,
    SHA_384_WITH_RSA, SHA_512_WITH_RSA, TspError,
};

/// A signature scheme this verifier implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
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
pub(crate) const ID_MGF_1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");

/// The signature scheme an algorithm identifier names; `rsaEncryption`
/// alone (as OpenSSL writes in CMS) takes its hash from `digest`.
pub(crate) fn scheme(alg: &AlgorithmIdentifierOwned, digest: HashAlg) -> Result<Scheme, TspError> {
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

pub(crate) fn pss_scheme(alg: &AlgorithmIdentifierOwned) -> Option<Scheme> {
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
pub(crate) fn verify_with(
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

pub(crate) fn verify_cms_signature(
    tsa: &Certificate,
    alg: &AlgorithmIdentifierOwned,
    digest: HashAlg,
    signed_attrs: &[u8],
    sig: &[u8],
) -> Result<(), TspError> {
    scheme(alg, digest)?;
    verify_with(tsa, alg, digest, signed_attrs, sig).map_err(TspError::Signature)
}

pub(crate) fn verify_cert_signature(
    cert: &Certificate,
    issuer: &Certificate,
) -> Result<(), String> {
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
