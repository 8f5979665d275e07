//! Shared reading helpers: PEM or DER input, canonical DER, Ed25519
//! algorithm identifiers and signatures, extension hygiene.

use accord_core::{PublicKey, Signature};
use const_oid::ObjectIdentifier;
use der::asn1::BitString;
use x509_cert::ext::Extension;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

/// id-Ed25519 (RFC 8410).
pub(crate) const ID_ED25519: ObjectIdentifier = const_oid::db::rfc8410::ID_ED_25519;

/// The DER bytes of `input`: PEM with the given label, or DER as is.
pub(crate) fn der_bytes(input: &[u8], label: &'static str) -> Result<Vec<u8>, der::Error> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let (found, der) = der::pem::decode_vec(trimmed)?;
        if found != label {
            return Err(der::pem::Error::UnexpectedTypeLabel { expected: label }.into());
        }
        Ok(der)
    } else {
        Ok(input.to_vec())
    }
}

/// Whether an algorithm identifier is id-Ed25519 with absent parameters
/// (RFC 8410 §3: "the parameters MUST be absent").
pub(crate) fn is_ed25519(alg: &AlgorithmIdentifierOwned) -> bool {
    alg.oid == ID_ED25519 && alg.parameters.is_none()
}

/// A readable name of an OID.
pub(crate) fn oid_name(oid: &ObjectIdentifier) -> String {
    const_oid::db::DB
        .by_oid(oid)
        .map_or_else(|| oid.to_string(), |n| format!("{n} ({oid})"))
}

/// A readable name of an algorithm identifier.
pub(crate) fn alg_name(alg: &AlgorithmIdentifierOwned) -> String {
    if alg.oid == ID_ED25519 {
        "Ed25519 with parameters".into()
    } else {
        oid_name(&alg.oid)
    }
}

/// How an Ed25519 subject key was refused.
pub(crate) enum KeyProblem {
    /// Not id-Ed25519 (the algorithm's name).
    Algorithm(String),
    /// Not a valid strong key.
    Key(accord_core::IdentityError),
}

/// The Ed25519 key of a SubjectPublicKeyInfo.
pub(crate) fn ed25519_key(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, KeyProblem> {
    if !is_ed25519(&spki.algorithm) {
        return Err(KeyProblem::Algorithm(alg_name(&spki.algorithm)));
    }
    let raw: [u8; 32] = spki
        .subject_public_key
        .as_bytes()
        .and_then(|b| b.try_into().ok())
        .ok_or(KeyProblem::Key(accord_core::IdentityError::KeyEncoding))?;
    PublicKey::from_bytes(&raw).map_err(KeyProblem::Key)
}

/// Strict Ed25519 verification of a BIT STRING signature over `msg`.
pub(crate) fn verify(key: &PublicKey, msg: &[u8], sig: &BitString) -> bool {
    let Some(bytes) = sig.as_bytes() else {
        return false;
    };
    let Ok(raw) = <[u8; 64]>::try_from(bytes) else {
        return false;
    };
    key.verify_strict(msg, &Signature::from_bytes(&raw))
}

/// No extension twice (RFC 5280 §4.2), no critical extension outside
/// `known`; returns the offending OID and problem.
pub(crate) fn check_extensions(
    exts: Option<&Vec<Extension>>,
    known: &[ObjectIdentifier],
) -> Result<(), (String, &'static str)> {
    let exts: &[Extension] = exts.map_or(&[], Vec::as_slice);
    for (i, e) in exts.iter().enumerate() {
        if exts[..i].iter().any(|p| p.extn_id == e.extn_id) {
            return Err((
                oid_name(&e.extn_id),
                "appears more than once (RFC 5280 §4.2)",
            ));
        }
        if e.critical && !known.contains(&e.extn_id) {
            return Err((oid_name(&e.extn_id), "is critical and not understood"));
        }
    }
    Ok(())
}
