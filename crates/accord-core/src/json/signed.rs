//! Signed JSON objects: the shape shared by every protocol message that is
//! not a chain event (handshake messages, countersignatures, handoff
//! receipts).
//!
//! A signed object is a JSON object with a `format` member naming what it
//! is and a `signature` member: Ed25519, unpadded base64url, over the RFC
//! 8785 canonical form of every *other* member. Its hash is SHA-256 of the
//! canonical form *including* the signature, so a hash names one signed
//! statement, not just its content.

use crate::hash::Hash32;
use crate::identity::{AgentId, Keypair, PublicKey, decode_b64_exact, encode_b64};
use crate::jcs;
use crate::timestamp::Timestamp;
use crate::{Map, Signature, Value};

/// Largest signed object accepted, in bytes of JSON text. Handshake
/// messages and receipts are well under 4 KiB; the bound keeps a hostile
/// peer from making a verifier allocate without limit.
pub const MAX_SIGNED_BYTES: usize = 64 * 1024;

/// Why a signed object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignedError {
    /// Larger than [`MAX_SIGNED_BYTES`].
    #[error("message is {0} bytes, the limit is {MAX_SIGNED_BYTES}")]
    TooLarge(usize),
    /// Not RFC 8785-signable JSON (syntax, duplicate keys, floats, ...).
    #[error("not a valid message: {0}")]
    Json(String),
    /// Valid JSON but not an object.
    #[error("not a valid message: expected a JSON object")]
    NotObject,
    /// `format` is not the one expected.
    #[error("expected a {expected} message, got {found:?}")]
    Format {
        /// The format the caller expects.
        expected: &'static str,
        /// The `format` member found (empty when missing).
        found: String,
    },
    /// A member is missing or has the wrong type or form.
    #[error("{format}: member {member:?} {problem}")]
    Member {
        /// The message's format.
        format: String,
        /// The member.
        member: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The signature does not verify under the key that should have made it.
    #[error("{0}: signature does not verify under the signer's key")]
    BadSignature(&'static str),
}

/// A parsed signed object: its members (without `signature`) and signature.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedObject {
    members: Map<String, Value>,
    signature: Signature,
    canonical: Vec<u8>,
}

impl SignedObject {
    /// Signs `members` (which must not contain `signature`) with `key`.
    pub fn sign(mut members: Map<String, Value>, key: &Keypair) -> Self {
        members.remove("signature");
        let mut message = Vec::new();
        jcs::write_object(&mut message, &members);
        let signature = key.sign(&message);
        let canonical = with_signature(&members, &signature);
        SignedObject {
            members,
            signature,
            canonical,
        }
    }

    /// As [`sign`](Self::sign), but refuses members a reader of the result
    /// would refuse ([`parse`](Self::parse)): a missing or non-string
    /// `format`, a float or an integer beyond ±(2^53−1), nesting beyond
    /// [`jcs::MAX_DEPTH`], a result over [`MAX_SIGNED_BYTES`]. Every
    /// object it returns parses back to itself.
    pub fn try_sign(mut members: Map<String, Value>, key: &Keypair) -> Result<Self, SignedError> {
        members.remove("signature");
        let doc = Value::Object(members);
        // The signed object is one level, and so is the object around the
        // signature: the same count the reader's parser makes.
        if jcs::depth(&doc) > jcs::MAX_DEPTH {
            return Err(SignedError::Json(format!(
                "nested more than {} levels of arrays and objects, the limit (PROTOCOL.md 2)",
                jcs::MAX_DEPTH
            )));
        }
        jcs::check_signable(&doc).map_err(|e| SignedError::Json(e.to_string()))?;
        let Value::Object(members) = doc else {
            return Err(SignedError::NotObject);
        };
        if !members.get("format").is_some_and(Value::is_string) {
            return Err(SignedError::Member {
                format: String::new(),
                member: "format",
                problem: "is missing or not a string".into(),
            });
        }
        let obj = Self::sign(members, key);
        if obj.canonical.len() > MAX_SIGNED_BYTES {
            return Err(SignedError::TooLarge(obj.canonical.len()));
        }
        Ok(obj)
    }

    /// Parses JSON text of an object of format `format`. The signature is
    /// decoded but not verified: the caller knows which key must have made
    /// it ([`SignedObject::verify`]).
    pub fn parse(text: &[u8], format: &'static str) -> Result<Self, SignedError> {
        if text.len() > MAX_SIGNED_BYTES {
            return Err(SignedError::TooLarge(text.len()));
        }
        let value = jcs::parse(text).map_err(|e| SignedError::Json(e.to_string()))?;
        Self::from_value(value, format)
    }

    /// As [`SignedObject::parse`], from an already parsed value (e.g. an
    /// object embedded in an event payload).
    pub fn from_value(value: Value, format: &'static str) -> Result<Self, SignedError> {
        jcs::check_signable(&value).map_err(|e| SignedError::Json(e.to_string()))?;
        let Value::Object(mut members) = value else {
            return Err(SignedError::NotObject);
        };
        let found = members.get("format").and_then(Value::as_str).unwrap_or("");
        if found != format {
            return Err(SignedError::Format {
                expected: format,
                found: found.to_owned(),
            });
        }
        let signature = match members.remove("signature") {
            Some(Value::String(s)) => decode_b64_exact::<64>(&s)
                .map(|b| Signature::from_bytes(&b))
                .ok_or_else(|| SignedError::Member {
                    format: format.to_owned(),
                    member: "signature",
                    problem: "is not 64 bytes of unpadded base64url".into(),
                })?,
            _ => {
                return Err(SignedError::Member {
                    format: format.to_owned(),
                    member: "signature",
                    problem: "is missing".into(),
                });
            }
        };
        let canonical = with_signature(&members, &signature);
        if canonical.len() > MAX_SIGNED_BYTES {
            return Err(SignedError::TooLarge(canonical.len()));
        }
        Ok(SignedObject {
            members,
            signature,
            canonical,
        })
    }

    /// The members other than `signature`.
    pub fn members(&self) -> &Map<String, Value> {
        &self.members
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The signature in unpadded base64url.
    pub fn signature_b64(&self) -> String {
        encode_b64(&self.signature.to_bytes())
    }

    /// Canonical JSON of the whole object, signature included.
    pub fn canonical(&self) -> &[u8] {
        &self.canonical
    }

    /// The object as a JSON value, signature included.
    pub fn to_value(&self) -> Value {
        let mut m = self.members.clone();
        m.insert("signature".into(), self.signature_b64().into());
        Value::Object(m)
    }

    /// SHA-256 of [`SignedObject::canonical`].
    pub fn hash(&self) -> Hash32 {
        Hash32::of(&self.canonical)
    }

    /// Whether the signature verifies (RFC 8032 strict) under `key`.
    pub fn verify(&self, key: &PublicKey) -> bool {
        let mut message = Vec::new();
        jcs::write_object(&mut message, &self.members);
        key.verify_strict(&message, &self.signature)
    }

    /// The `format` member.
    pub fn format(&self) -> &str {
        self.members
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// A string member.
    pub fn str(&self, member: &'static str) -> Result<&str, SignedError> {
        self.members
            .get(member)
            .and_then(Value::as_str)
            .ok_or_else(|| self.missing(member, "is missing or not a string"))
    }

    /// A non-negative integer member.
    pub fn u64(&self, member: &'static str) -> Result<u64, SignedError> {
        self.members
            .get(member)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.missing(member, "is missing or not a non-negative integer"))
    }

    /// A member holding an agent id.
    pub fn agent_id(&self, member: &'static str) -> Result<AgentId, SignedError> {
        AgentId::parse(self.str(member)?).map_err(|e| self.missing(member, &e.to_string()))
    }

    /// A member holding a public key (base64url).
    pub fn public_key(&self, member: &'static str) -> Result<PublicKey, SignedError> {
        PublicKey::from_b64(self.str(member)?).map_err(|e| self.missing(member, &e.to_string()))
    }

    /// A member holding a 64-hex-digit SHA-256 hash.
    pub fn hash_member(&self, member: &'static str) -> Result<Hash32, SignedError> {
        Hash32::from_hex(self.str(member)?)
            .ok_or_else(|| self.missing(member, "is not 64 lowercase hex digits"))
    }

    /// A member holding an Accord timestamp.
    pub fn timestamp(&self, member: &'static str) -> Result<Timestamp, SignedError> {
        Timestamp::parse(self.str(member)?).map_err(|e| self.missing(member, &e.to_string()))
    }

    /// A member holding a UUID.
    pub fn uuid(&self, member: &'static str) -> Result<uuid::Uuid, SignedError> {
        uuid::Uuid::parse_str(self.str(member)?).map_err(|_| self.missing(member, "is not a UUID"))
    }

    /// A member holding an array of strings.
    pub fn strings(&self, member: &'static str) -> Result<Vec<String>, SignedError> {
        let bad = || self.missing(member, "is missing or not an array of strings");
        self.members
            .get(member)
            .and_then(Value::as_array)
            .ok_or_else(bad)?
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect()
    }

    fn missing(&self, member: &'static str, problem: &str) -> SignedError {
        SignedError::Member {
            format: self.format().to_owned(),
            member,
            problem: problem.to_owned(),
        }
    }
}

fn with_signature(members: &Map<String, Value>, signature: &Signature) -> Vec<u8> {
    let mut m = members.clone();
    m.insert("signature".into(), encode_b64(&signature.to_bytes()).into());
    jcs::to_vec(&Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Keypair {
        Keypair::from_seed(&[b; 32]).expect("seed")
    }

    #[test]
    fn sign_parse_verify_round_trip() {
        let mut m = Map::new();
        m.insert("format".into(), "t/1".into());
        m.insert("n".into(), 7.into());
        let k = key(1);
        let obj = SignedObject::sign(m, &k);
        let back = SignedObject::parse(obj.canonical(), "t/1").expect("parses");
        assert_eq!(back, obj);
        assert!(back.verify(k.public()));
        assert!(!back.verify(key(2).public()));
        assert_eq!(back.u64("n"), Ok(7));
        assert!(back.str("n").is_err());
    }

    #[test]
    fn edited_member_breaks_signature_and_wrong_format_is_named() {
        let mut m = Map::new();
        m.insert("format".into(), "t/1".into());
        m.insert("n".into(), 7.into());
        let k = key(1);
        let obj = SignedObject::sign(m, &k);
        let text = String::from_utf8(obj.canonical().to_vec()).expect("utf8");
        let edited = text.replace("\"n\":7", "\"n\":8");
        let back = SignedObject::parse(edited.as_bytes(), "t/1").expect("parses");
        assert!(!back.verify(k.public()));
        assert!(matches!(
            SignedObject::parse(text.as_bytes(), "u/1"),
            Err(SignedError::Format { .. })
        ));
        assert!(matches!(
            SignedObject::parse(&vec![b' '; MAX_SIGNED_BYTES + 1], "t/1"),
            Err(SignedError::TooLarge(_))
        ));
    }
}
