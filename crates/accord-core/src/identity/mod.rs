//! Agent identity: Ed25519 keys, the derived `agent_id` and the fingerprint.

pub mod keyfile;

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::hash::Hash32;

/// Length of an `agent_id` in characters.
pub const AGENT_ID_LEN: usize = 32;

/// Why a key or identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Not 43 characters of unpadded base64url, or not 32 bytes.
    #[error("public key is not 32 bytes of unpadded base64url")]
    KeyEncoding,
    /// Not a canonical encoding of a point on the curve.
    #[error("public key is not a valid Ed25519 point in canonical encoding")]
    InvalidPoint,
    /// A small-order point (any signature "verifies" under it), or a point
    /// with a small-order component.
    #[error("public key is a weak Ed25519 point (small order, or with a small-order component)")]
    WeakKey,
    /// Not 32 base58btc characters.
    #[error("agent_id must be 32 base58btc characters, got {0:?}")]
    AgentIdSyntax(String),
    /// The key does not derive the claimed agent_id.
    #[error("public key derives agent_id {derived}, not {claimed}")]
    AgentIdMismatch {
        /// What the document claims.
        claimed: String,
        /// What the key derives.
        derived: String,
    },
}

/// An Ed25519 public key: canonically encoded, in the prime-order subgroup.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Accepts 32 bytes only if they canonically encode a point of the
    /// prime-order subgroup (no small-order component).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, IdentityError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| IdentityError::InvalidPoint)?;
        // dalek keeps the caller's bytes; a non-canonical y (≥ p) decompresses
        // to the same point, so compare the re-compressed form.
        if key.to_edwards().compress().to_bytes() != *bytes {
            return Err(IdentityError::InvalidPoint);
        }
        // Torsion-free, not merely "not small order": a key with a
        // small-order component makes batch and single verification disagree
        // (and no honest key generator produces one).
        if key.is_weak() || !key.to_edwards().is_torsion_free() {
            return Err(IdentityError::WeakKey);
        }
        Ok(PublicKey(key))
    }

    /// Parses the unpadded base64url form used in Accord documents.
    pub fn from_b64(s: &str) -> Result<Self, IdentityError> {
        let raw = decode_b64_exact::<32>(s).ok_or(IdentityError::KeyEncoding)?;
        Self::from_bytes(&raw)
    }

    /// Raw 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Unpadded base64url, the form in Accord documents and `accord id`.
    pub fn to_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    /// The agent_id this key derives.
    pub fn agent_id(&self) -> AgentId {
        AgentId::derive(self)
    }

    /// Fingerprint for reading aloud.
    pub fn fingerprint(&self) -> String {
        fingerprint(self)
    }

    /// Strict single-signature verification (RFC 8032 with canonical `s`,
    /// no small-order `R`, cofactorless equation).
    pub fn verify_strict(&self, msg: &[u8], sig: &Signature) -> bool {
        self.0.verify_strict(msg, sig).is_ok()
    }

    /// A verifier for many signatures under this key that computes exactly
    /// the predicate of [`verify_strict`](Self::verify_strict), faster: see
    /// [`KeyVerifier`]. Building it costs about as much as 20–30 strict
    /// verifications (4,096 point additions), so it pays from a few dozen
    /// signatures on.
    pub fn verifier(&self) -> KeyVerifier {
        KeyVerifier::new(*self)
    }
}

/// Strict Ed25519 verification (1.3) of many signatures under one key.
///
/// Accord has one signature validity rule: a signature `(R, s)` over `M` is
/// valid under a key `A` (a canonical, torsion-free point, 1.4) exactly when
/// `s < ℓ`, and `R` is byte for byte the encoding of `[s]B − [k]A` with
/// `k = SHA-512(R ‖ A ‖ M) mod ℓ`, and that point is not the identity.
/// This is ed25519-dalek's `verify_strict` (which rejects a small-order `R`
/// and compares encodings), and what OpenSSL, BoringSSL, Go and libsodium
/// compute for such keys. A probabilistic batch equation cannot give the
/// same answers: it is cofactored, so it accepts an `R` with a small-order
/// component that the strict rule refuses (and a cofactorless batch would
/// accept or refuse such an `R` depending on its random coefficients).
///
/// This verifier evaluates the strict equation itself, signature by
/// signature, with speed-ups that do not change the answer: `[s]B` and
/// `[k](−A)` come from tables of multiples precomputed once (for `B` once
/// per process, for `−A` once per verifier), so each signature costs 64
/// point additions and no doublings; and the results of a whole slice are
/// encoded with one shared field inversion. The arithmetic is variable
/// time, which is fine: every input of verification is public. So every
/// answer is the answer of `verify_strict`, deterministically, for every
/// input.
pub struct KeyVerifier {
    key: PublicKey,
    minus_a: Radix256,
}

/// `[d·256^j]P` for every window `j` (0..32) and digit `d` (1..=128): a
/// scalar below 2^253 in signed radix-256 digits is then at most 32 table
/// additions. 32 × 128 points, 640 KiB; built with 4,096 additions.
struct Radix256(Vec<[EdwardsPoint; 128]>);

impl Radix256 {
    fn new(p: &EdwardsPoint) -> Self {
        let mut rows = Vec::with_capacity(32);
        let mut base = *p;
        for _ in 0..32 {
            let mut row = [EdwardsPoint::default(); 128];
            row[0] = base;
            for i in 1..128 {
                row[i] = row[i - 1] + base;
            }
            // 256 · base, the next window's base.
            base = row[127] + row[127];
            rows.push(row);
        }
        Radix256(rows)
    }

    /// Adds `[s]P` to `acc` (variable time).
    fn add_mul(&self, acc: &mut EdwardsPoint, s: &Scalar) {
        let mut carry = 0i16;
        for (row, &byte) in self.0.iter().zip(s.as_bytes()) {
            // Signed digits in −128..128. The top byte of a reduced scalar
            // is below 0x20, so the last digit never carries out.
            let mut d = i16::from(byte) + carry;
            carry = 0;
            if d >= 128 {
                d -= 256;
                carry = 1;
            }
            match d {
                1.. => *acc += row[(d - 1) as usize],
                ..0 => *acc -= row[(-d - 1) as usize],
                0 => {}
            }
        }
    }
}

/// The base point's table, built on first use.
fn base_table() -> &'static Radix256 {
    static TABLE: std::sync::OnceLock<Radix256> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| Radix256::new(&ED25519_BASEPOINT_POINT))
}

impl KeyVerifier {
    /// Precomputes the table of `−A` for `key`.
    pub fn new(key: PublicKey) -> Self {
        let minus_a = Radix256::new(&-key.0.to_edwards());
        KeyVerifier { key, minus_a }
    }

    /// The key signatures are checked under.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// `[s]B − [k]A` for one signature, or `None` if `s` is not canonical.
    fn expected_r(&self, msg: &[u8], sig: &Signature) -> Option<EdwardsPoint> {
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(*sig.s_bytes()))?;
        let mut h = Sha512::new();
        h.update(sig.r_bytes());
        h.update(self.key.0.as_bytes());
        h.update(msg);
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        let mut r = EdwardsPoint::default();
        base_table().add_mul(&mut r, &s);
        self.minus_a.add_mul(&mut r, &k);
        Some(r)
    }

    /// Verifies one signature: the same answer as
    /// [`PublicKey::verify_strict`].
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> bool {
        self.first_invalid(&[msg], std::slice::from_ref(sig)) == Ok(None)
    }

    /// Verifies `sigs[i]` over `msgs[i]` for every `i` and returns the
    /// index of the first signature that `verify_strict` refuses, or
    /// `Ok(None)` if it accepts them all. `Err(())` if the two slices differ
    /// in length.
    #[allow(clippy::result_unit_err)]
    pub fn first_invalid(&self, msgs: &[&[u8]], sigs: &[Signature]) -> Result<Option<usize>, ()> {
        if msgs.len() != sigs.len() {
            return Err(());
        }
        let mut points = Vec::with_capacity(sigs.len());
        for (i, (msg, sig)) in msgs.iter().zip(sigs).enumerate() {
            match self.expected_r(msg, sig) {
                Some(p) => points.push(p),
                None => {
                    // The answer for the earlier ones is still needed.
                    return Ok(self.check(&points, sigs).or(Some(i)));
                }
            }
        }
        Ok(self.check(&points, sigs))
    }

    /// Compares the encodings of `points[i]` with `sigs[i]`'s `R`.
    fn check(&self, points: &[EdwardsPoint], sigs: &[Signature]) -> Option<usize> {
        let encoded = EdwardsPoint::compress_batch_alloc(points);
        encoded
            .iter()
            .zip(points)
            .zip(sigs)
            .position(|((enc, p), sig)| {
                // A small-order R that equals [s]B − [k]A is the identity:
                // verify_strict refuses it.
                enc.as_bytes() != sig.r_bytes() || p.is_identity()
            })
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_b64())
    }
}

/// An agent's identifier: the first 32 characters of
/// base58btc(SHA-256(raw public key)).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(String);

impl AgentId {
    /// Derives the agent_id of a key.
    pub fn derive(key: &PublicKey) -> Self {
        let digest = Hash32::of(&key.to_bytes());
        let mut s = bs58::encode(digest.0).into_string();
        // SHA-256 output in base58 is 43–44 characters; the first 32 carry
        // ~187 bits, ample against second preimages.
        s.truncate(AGENT_ID_LEN);
        AgentId(s)
    }

    /// Checks the syntax (32 characters of the Bitcoin base58 alphabet).
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        if s.len() == AGENT_ID_LEN && s.bytes().all(|b| ALPHABET.contains(&b)) {
            Ok(AgentId(s.to_owned()))
        } else {
            Err(IdentityError::AgentIdSyntax(s.chars().take(64).collect()))
        }
    }

    /// Checks that `key` derives this id.
    pub fn check_key(&self, key: &PublicKey) -> Result<(), IdentityError> {
        let derived = key.agent_id();
        if derived == *self {
            Ok(())
        } else {
            Err(IdentityError::AgentIdMismatch {
                claimed: self.0.clone(),
                derived: derived.0,
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({})", self.0)
    }
}

/// Fingerprint: the first 10 bytes of SHA-256(public key) as five groups of
/// four upper-case hex digits, e.g. `3F2A-9C01-77B4-E0D2-51AA` — 80 bits,
/// short enough to compare over the phone.
pub fn fingerprint(key: &PublicKey) -> String {
    let digest = Hash32::of(&key.to_bytes());
    let hex = hex::encode_upper(&digest.0[..10]);
    hex.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("-")
}

/// An agent's signing key together with its public key and agent_id.
pub struct Keypair {
    signing: SigningKey,
    public: PublicKey,
    agent_id: AgentId,
}

impl Keypair {
    /// Generates a fresh key pair from a cryptographic RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        loop {
            let signing = SigningKey::generate(rng);
            // A seed whose public key is weak is astronomically unlikely, but
            // the check costs nothing and keeps the invariant unconditional.
            if let Ok(kp) = Self::from_seed(&signing.to_bytes()) {
                return kp;
            }
        }
    }

    /// Rebuilds a key pair from its 32-byte seed (RFC 8032 secret key).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, IdentityError> {
        let signing = SigningKey::from_bytes(seed);
        let public = PublicKey::from_bytes(&signing.verifying_key().to_bytes())?;
        let agent_id = public.agent_id();
        Ok(Keypair {
            signing,
            public,
            agent_id,
        })
    }

    /// The 32-byte seed, zeroised when dropped.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The agent_id.
    pub fn agent_id(&self) -> &AgentId {
        &self.agent_id
    }

    /// Signs `msg` (pure Ed25519, RFC 8032).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        self.signing.sign(msg)
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.agent_id)
    }
}

/// Decodes unpadded base64url into exactly `N` bytes, refusing any other
/// length or a non-canonical final character.
pub(crate) fn decode_b64_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    let arr: [u8; N] = bytes.try_into().ok()?;
    // base64 decoders may ignore trailing bits; one spelling per value.
    (URL_SAFE_NO_PAD.encode(arr) == s).then_some(arr)
}

/// Encodes bytes as unpadded base64url.
pub(crate) fn encode_b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_is_deterministic_and_checked() {
        let kp = Keypair::from_seed(&[7u8; 32]).unwrap();
        let again = Keypair::from_seed(&[7u8; 32]).unwrap();
        assert_eq!(kp.agent_id(), again.agent_id());
        assert_eq!(kp.agent_id().as_str().len(), 32);
        assert!(AgentId::parse(kp.agent_id().as_str()).is_ok());
        let other = Keypair::from_seed(&[8u8; 32]).unwrap();
        assert!(kp.agent_id().check_key(other.public()).is_err());
        assert!(AgentId::parse("0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl").is_err());
        let fp = kp.public().fingerprint();
        assert_eq!(fp.len(), 24);
        assert_eq!(fp.matches('-').count(), 4);
    }

    #[test]
    fn weak_and_noncanonical_keys_are_refused() {
        // The identity point (y = 1) is of small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            PublicKey::from_bytes(&identity),
            Err(IdentityError::WeakKey)
        );
        // y = p + 1 is a non-canonical encoding of the same point.
        let mut noncanon = [0xffu8; 32];
        noncanon[0] = 0xee;
        noncanon[31] = 0x7f;
        assert!(PublicKey::from_bytes(&noncanon).is_err());
        let kp = Keypair::from_seed(&[1u8; 32]).unwrap();
        let b64 = kp.public().to_b64();
        assert_eq!(PublicKey::from_b64(&b64).unwrap(), *kp.public());
        assert!(PublicKey::from_b64(&format!("{b64}A")).is_err());
    }
}
