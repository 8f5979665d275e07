//! rcgen adapters: an `accord_core::Keypair` as rcgen's signer, an agent's
//! public key as rcgen's subject key, key identifiers, times.

use accord_core::{Hash32, Keypair, PublicKey, Timestamp};
use rcgen::{PKCS_ED25519, PublicKeyData, SignatureAlgorithm, SigningKey};
use time::OffsetDateTime;

use crate::error::CaError;

/// Signs with an Accord identity key (pure Ed25519, RFC 8032).
pub(crate) struct Signer<'k> {
    key: &'k Keypair,
    public: [u8; 32],
}

impl<'k> Signer<'k> {
    pub(crate) fn new(key: &'k Keypair) -> Self {
        Signer {
            key,
            public: key.public().to_bytes(),
        }
    }
}

impl PublicKeyData for Signer<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

impl SigningKey for Signer<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// An agent's Ed25519 public key, the subject key of its certificate.
pub(crate) struct Subject([u8; 32]);

impl Subject {
    pub(crate) fn new(key: &PublicKey) -> Self {
        Subject(key.to_bytes())
    }
}

impl PublicKeyData for Subject {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

/// Key identifier, RFC 7093 §2 method 1: the leftmost 160 bits of SHA-256
/// of the subjectPublicKey bits (the 32 raw key bytes for Ed25519).
pub(crate) fn key_id(key: &PublicKey) -> Vec<u8> {
    Hash32::of(&key.to_bytes()).0[..20].to_vec()
}

/// An Accord timestamp as an X.509 time (whole seconds, rounded down).
pub(crate) fn to_offset(t: &Timestamp) -> Result<OffsetDateTime, CaError> {
    let secs = t.unix_micros().div_euclid(1_000_000);
    if secs < 0 {
        return Err(CaError::Time(t.as_str().to_owned()));
    }
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| CaError::Time(t.as_str().to_owned()))
}

/// Seconds since the epoch of a timestamp (rounded down).
pub(crate) fn secs(t: &Timestamp) -> i64 {
    t.unix_micros().div_euclid(1_000_000)
}

/// RFC 3339 text of a time in seconds since the epoch, for messages.
pub(crate) fn time_text(secs: i64) -> String {
    secs.checked_mul(1_000_000)
        .and_then(|m| Timestamp::from_unix_micros(m).ok())
        .map(|t| t.as_str().to_owned())
        .unwrap_or_else(|| format!("{secs} s after 1970"))
}
