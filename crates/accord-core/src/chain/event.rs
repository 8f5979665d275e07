//! Signed, hash-chained events (`accord-event/1`).
//!
//! An event is a JSON object with exactly these members (RFC 8785 order):
//!
//! | member       | value                                                         |
//! |--------------|---------------------------------------------------------------|
//! | `agent_id`   | the chain's agent_id                                          |
//! | `format`     | `"accord-event/1"` (format version and signature domain)      |
//! | `nonce`      | UUIDv4, lower-case hyphenated                                 |
//! | `payload`    | a JSON object; integers only, within ±(2^53−1)                |
//! | `prev_hash`  | [`event hash`](SignedEvent::hash) of the previous event; 64 zeros for genesis |
//! | `public_key` | genesis only: the agent's Ed25519 key, unpadded base64url     |
//! | `seq`        | 0 for genesis, then +1                                         |
//! | `signature`  | Ed25519 over the canonical form of every other member          |
//! | `timestamp`  | [`Timestamp`] form                                             |
//! | `type`       | `"genesis"` at seq 0; otherwise 1–64 chars of `[A-Za-z0-9_.:/-]` |
//!
//! The event hash is SHA-256 of the canonical bytes *including* the signature,
//! and it is defined once, here ([`SignedEvent::hash`]).

use std::borrow::Cow;

use ed25519_dalek::Signature;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::hash::Hash32;
use crate::identity::{AgentId, IdentityError, Keypair, PublicKey, decode_b64_exact, encode_b64};
use crate::jcs::{self, JcsError};
use crate::timestamp::{Timestamp, TimestampError};

/// The `format` member of every event.
pub const EVENT_FORMAT: &str = "accord-event/1";
/// The type of the event at seq 0.
pub const GENESIS_TYPE: &str = "genesis";
/// Largest canonical event accepted, in bytes (signature included).
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Longest event type.
pub const MAX_TYPE_LEN: usize = 64;

/// Why an event could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not JSON, or a member has the wrong type or syntax.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// Valid JSON, but not byte-for-byte the canonical form of its content.
    #[error("event bytes are not in RFC 8785 canonical form (edited or re-serialised)")]
    NotCanonical,
    /// The `format` member names a format this build does not know.
    #[error("unknown event format {0:?} (this build reads {EVENT_FORMAT:?})")]
    UnknownFormat(String),
    /// Larger than [`MAX_EVENT_BYTES`].
    #[error("event is {0} bytes; the limit is {MAX_EVENT_BYTES}")]
    TooLarge(usize),
    /// The payload is not a JSON object or holds a float / out-of-range integer.
    #[error("payload: {0}")]
    Payload(String),
    /// The type is empty, too long, reserved or has characters outside `[A-Za-z0-9_.:/-]`.
    #[error(
        "event type {0:?} is invalid: use 1-64 characters of A-Z a-z 0-9 _ . : / - (\"genesis\" is reserved for seq 0)"
    )]
    Type(String),
    /// Genesis / public_key rules broken.
    #[error("{0}")]
    Genesis(String),
    /// A key or id problem.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Bad timestamp.
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
}

impl From<JcsError> for EventError {
    fn from(e: JcsError) -> Self {
        match e {
            JcsError::Syntax(m) => EventError::Malformed(m),
            other => EventError::Payload(other.to_string()),
        }
    }
}

/// The unsigned content of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The chain's agent.
    pub agent_id: AgentId,
    /// Position in the chain; 0 is genesis.
    pub seq: u64,
    /// When the agent recorded it.
    pub timestamp: Timestamp,
    /// Random UUIDv4, unique within the chain.
    pub nonce: Uuid,
    /// What happened.
    pub event_type: String,
    /// Details (a JSON object).
    pub payload: Map<String, Value>,
    /// Hash of the previous event; [`Hash32::ZERO`] for genesis.
    pub prev_hash: Hash32,
    /// The agent's key; present in genesis only.
    pub public_key: Option<PublicKey>,
}

/// Checks an event type's syntax (see the module table).
pub fn check_type(t: &str, seq: u64) -> Result<(), EventError> {
    let ok_chars = !t.is_empty()
        && t.len() <= MAX_TYPE_LEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b));
    let reserved_ok = (seq == 0) == (t == GENESIS_TYPE);
    if ok_chars && reserved_ok {
        Ok(())
    } else {
        Err(EventError::Type(t.chars().take(80).collect()))
    }
}

impl Event {
    /// The genesis event of a new chain.
    pub fn genesis(
        key: &PublicKey,
        timestamp: Timestamp,
        nonce: Uuid,
        payload: Map<String, Value>,
    ) -> Self {
        Event {
            agent_id: key.agent_id(),
            seq: 0,
            timestamp,
            nonce,
            event_type: GENESIS_TYPE.to_owned(),
            payload,
            prev_hash: Hash32::ZERO,
            public_key: Some(*key),
        }
    }

    /// Checks every rule that does not need the previous event: format of
    /// each member, the genesis/public_key pairing, a signable payload.
    pub fn check(&self) -> Result<(), EventError> {
        if self.seq > jcs::MAX_SAFE_INTEGER {
            return Err(EventError::Malformed(
                "seq must be an integer in 0..2^53".into(),
            ));
        }
        check_type(&self.event_type, self.seq)?;
        if self.nonce.get_version_num() != 4 || self.nonce.get_variant() != uuid::Variant::RFC4122 {
            return Err(EventError::Malformed("nonce is not a UUIDv4".into()));
        }
        match (&self.public_key, self.seq) {
            (Some(k), 0) => self.agent_id.check_key(k)?,
            (None, 0) => {
                return Err(EventError::Genesis(
                    "genesis event has no public_key".into(),
                ));
            }
            (Some(_), _) => {
                return Err(EventError::Genesis(
                    "public_key is allowed only in the genesis event".into(),
                ));
            }
            (None, _) => {}
        }
        if self.seq == 0 && self.prev_hash != Hash32::ZERO {
            return Err(EventError::Genesis(
                "genesis prev_hash must be 64 zeros".into(),
            ));
        }
        // The event object is one level itself: a payload that fits the
        // limit alone can still make an event no reader accepts.
        let levels = self.payload.values().map(jcs::depth).max().unwrap_or(0) + 1;
        if levels >= jcs::MAX_DEPTH {
            return Err(EventError::Payload(format!(
                "the payload is nested {levels}+ levels; an event may be nested at most {} levels, so its payload at most {} (PROTOCOL.md 2)",
                jcs::MAX_DEPTH,
                jcs::MAX_DEPTH - 1
            )));
        }
        for v in self.payload.values() {
            jcs::check_signable(v).map_err(|e| EventError::Payload(e.to_string()))?;
        }
        Ok(())
    }

    /// Signs the event. The key must be the chain's key.
    pub fn sign(self, key: &Keypair) -> Result<SignedEvent, EventError> {
        if &self.agent_id != key.agent_id() {
            return Err(EventError::Identity(IdentityError::AgentIdMismatch {
                claimed: self.agent_id.to_string(),
                derived: key.agent_id().to_string(),
            }));
        }
        self.check()?;
        let mut message = Vec::with_capacity(256 + self.payload.len() * 32);
        let split = write_unsigned(&mut message, &self);
        let signature = key.sign(&message);
        let canonical = splice_signature(&message, split, &signature);
        if canonical.len() > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge(canonical.len()));
        }
        let hash = Hash32::of(&canonical);
        Ok(SignedEvent {
            event: self,
            signature,
            canonical,
            sig_at: split,
            hash,
        })
    }
}

/// Writes the canonical form without the signature member and returns the
/// offset where `,"signature":…` belongs (right after `seq`, as RFC 8785 orders
/// the members). Member names are written in sorted order by hand so the
/// event is canonicalised once, not built as a map and sorted.
fn write_unsigned(out: &mut Vec<u8>, e: &Event) -> usize {
    out.extend_from_slice(b"{\"agent_id\":");
    jcs::write_str(out, e.agent_id.as_str());
    out.extend_from_slice(b",\"format\":\"");
    out.extend_from_slice(EVENT_FORMAT.as_bytes());
    out.extend_from_slice(b"\",\"nonce\":\"");
    out.extend_from_slice(
        e.nonce
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.extend_from_slice(b"\",\"payload\":");
    jcs::write_object(out, &e.payload);
    out.extend_from_slice(b",\"prev_hash\":\"");
    out.extend_from_slice(e.prev_hash.to_hex().as_bytes());
    out.push(b'"');
    if let Some(k) = &e.public_key {
        out.extend_from_slice(b",\"public_key\":\"");
        out.extend_from_slice(k.to_b64().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(e.seq.to_string().as_bytes());
    let split = out.len();
    out.extend_from_slice(b",\"timestamp\":");
    jcs::write_str(out, e.timestamp.as_str());
    out.extend_from_slice(b",\"type\":");
    jcs::write_str(out, &e.event_type);
    out.push(b'}');
    split
}

/// Length of `,"signature":"…"` — 14 + 86 base64url characters + 1.
const SIG_MEMBER_LEN: usize = 14 + 86 + 1;

fn splice_signature(message: &[u8], split: usize, sig: &Signature) -> Vec<u8> {
    let sig_b64 = encode_b64(&sig.to_bytes());
    let mut full = Vec::with_capacity(message.len() + 16 + sig_b64.len());
    full.extend_from_slice(&message[..split]);
    full.extend_from_slice(b",\"signature\":\"");
    full.extend_from_slice(sig_b64.as_bytes());
    full.push(b'"');
    full.extend_from_slice(&message[split..]);
    full
}

/// An event with its signature, its canonical bytes and its hash.
///
/// Built by [`Event::sign`] or parsed by [`SignedEvent::from_canonical`];
/// parsing checks form, not the signature (chains verify signatures in
/// batches, see [`crate::chain`]).
#[derive(Debug, Clone)]
pub struct SignedEvent {
    event: Event,
    signature: Signature,
    canonical: Vec<u8>,
    sig_at: usize,
    hash: Hash32,
}

impl PartialEq for SignedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl SignedEvent {
    /// Parses one event from its canonical bytes, refusing anything that is
    /// not exactly canonical.
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, EventError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge(bytes.len()));
        }
        // A typed, borrowing parse: serde's derive refuses duplicate and
        // unknown members, the payload goes through the strict JCS parser,
        // and the re-serialisation below proves the bytes were canonical.
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let wire = Wire::deserialize(&mut de)
            .and_then(|w| de.end().map(|()| w))
            .map_err(|e| EventError::Malformed(jcs::syntax_message(&e)))?;
        if wire.format != EVENT_FORMAT {
            return Err(EventError::UnknownFormat(wire.format.into_owned()));
        }
        let agent_id = AgentId::parse(&wire.agent_id)?;
        let nonce = parse_nonce(&wire.nonce)?;
        let prev_hash = Hash32::from_hex(&wire.prev_hash).ok_or_else(|| {
            EventError::Malformed("prev_hash is not 64 lower-case hex characters".into())
        })?;
        let public_key = wire
            .public_key
            .as_deref()
            .map(PublicKey::from_b64)
            .transpose()?;
        if wire.seq > jcs::MAX_SAFE_INTEGER {
            return Err(EventError::Malformed(
                "seq must be an integer in 0..2^53".into(),
            ));
        }
        let signature = decode_b64_exact::<64>(&wire.signature)
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| {
                EventError::Malformed("signature is not 64 bytes of unpadded base64url".into())
            })?;
        let event = Event {
            agent_id,
            seq: wire.seq,
            timestamp: Timestamp::parse(&wire.timestamp)?,
            nonce,
            event_type: wire.event_type.into_owned(),
            payload: wire.payload,
            prev_hash,
            public_key,
        };
        event.check()?;
        let mut message = Vec::with_capacity(bytes.len());
        let sig_at = write_unsigned(&mut message, &event);
        let canonical = splice_signature(&message, sig_at, &signature);
        if canonical != bytes {
            return Err(EventError::NotCanonical);
        }
        Ok(SignedEvent {
            hash: Hash32::of(&canonical),
            event,
            signature,
            canonical,
            sig_at,
        })
    }

    /// The content.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// Position in the chain.
    pub fn seq(&self) -> u64 {
        self.event.seq
    }

    /// The Ed25519 signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The canonical bytes (what is stored and exported, one line each).
    pub fn canonical(&self) -> &[u8] {
        &self.canonical
    }

    /// The event hash: SHA-256 of [`canonical`](Self::canonical). The next
    /// event's `prev_hash` is this value.
    pub fn hash(&self) -> Hash32 {
        self.hash
    }

    /// The bytes the signature covers: the canonical form without the
    /// `signature` member.
    pub fn signing_message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.canonical.len() - SIG_MEMBER_LEN);
        m.extend_from_slice(&self.canonical[..self.sig_at]);
        m.extend_from_slice(&self.canonical[self.sig_at + SIG_MEMBER_LEN..]);
        m
    }

    /// Verifies the signature alone under `key`, strictly.
    pub fn verify_signature(&self, key: &PublicKey) -> bool {
        key.verify_strict(&self.signing_message(), &self.signature)
    }
}

/// The members of an event as they appear on the wire.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(borrow)]
    agent_id: Cow<'a, str>,
    #[serde(borrow)]
    format: Cow<'a, str>,
    #[serde(borrow)]
    nonce: Cow<'a, str>,
    #[serde(deserialize_with = "jcs::deserialize_object")]
    payload: Map<String, Value>,
    #[serde(borrow)]
    prev_hash: Cow<'a, str>,
    #[serde(borrow, default)]
    public_key: Option<Cow<'a, str>>,
    seq: u64,
    #[serde(borrow)]
    signature: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    event_type: Cow<'a, str>,
}

fn parse_nonce(s: &str) -> Result<Uuid, EventError> {
    let bad = || EventError::Malformed("nonce is not a lower-case hyphenated UUID".into());
    // Uuid::try_parse also takes braced, URN and upper-case forms; signed
    // bytes need one spelling, so require exactly 36 lower-case characters.
    if s.len() != 36 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    Uuid::try_parse(s).map_err(|_| bad())
}

/// Builds a payload object from JSON text: it must be an object, with no
/// duplicate keys, no floats and no integer beyond ±(2^53−1).
pub fn payload_from_json(text: &[u8]) -> Result<Map<String, Value>, EventError> {
    match jcs::parse(text).map_err(|e| EventError::Payload(e.to_string()))? {
        Value::Object(m) => {
            for v in m.values() {
                jcs::check_signable(v).map_err(|e| EventError::Payload(e.to_string()))?;
            }
            Ok(m)
        }
        other => Err(EventError::Payload(format!(
            "must be a JSON object, got {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp() -> Keypair {
        Keypair::from_seed(&[3u8; 32]).unwrap()
    }

    fn ts(n: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_795_000_000_000_000 + n).unwrap()
    }

    fn nonce(n: u8) -> Uuid {
        uuid::Builder::from_random_bytes([n; 16]).into_uuid()
    }

    #[test]
    fn sign_parse_round_trip() {
        let k = kp();
        let g = Event::genesis(k.public(), ts(0), nonce(1), Map::new())
            .sign(&k)
            .unwrap();
        let parsed = SignedEvent::from_canonical(g.canonical()).unwrap();
        assert_eq!(parsed, g);
        assert_eq!(parsed.hash(), Hash32::of(g.canonical()));
        assert!(parsed.verify_signature(k.public()));
        // The canonical form is what a generic JCS implementation produces.
        assert_eq!(jcs::canonicalize(g.canonical()).unwrap(), g.canonical());
        let mut v: Value = serde_json::from_slice(g.canonical()).unwrap();
        v.as_object_mut().unwrap().remove("signature");
        assert_eq!(jcs::to_vec(&v), g.signing_message());
    }

    #[test]
    fn non_canonical_and_unknown_members_are_refused() {
        let k = kp();
        let g = Event::genesis(k.public(), ts(0), nonce(1), Map::new())
            .sign(&k)
            .unwrap();
        let text = String::from_utf8(g.canonical().to_vec()).unwrap();
        let spaced = text.replacen(",", ", ", 1);
        assert_eq!(
            SignedEvent::from_canonical(spaced.as_bytes()),
            Err(EventError::NotCanonical)
        );
        let dup = text.replacen("{", "{\"seq\":0,", 1);
        assert!(
            matches!(SignedEvent::from_canonical(dup.as_bytes()), Err(EventError::Malformed(m)) if m.contains("duplicate field `seq`"))
        );
        let extra = text.replacen("{", "{\"a\":1,", 1);
        assert!(
            matches!(SignedEvent::from_canonical(extra.as_bytes()), Err(EventError::Malformed(m)) if m.contains("unknown field `a`"))
        );
    }

    #[test]
    fn genesis_rules() {
        let k = kp();
        let mut e = Event::genesis(k.public(), ts(0), nonce(1), Map::new());
        e.event_type = "hello".into();
        assert!(matches!(e.clone().sign(&k), Err(EventError::Type(_))));
        e.event_type = GENESIS_TYPE.into();
        e.seq = 1;
        assert!(e.clone().sign(&k).is_err());
        let other = Keypair::from_seed(&[4u8; 32]).unwrap();
        let e = Event::genesis(other.public(), ts(0), nonce(1), Map::new());
        assert!(e.sign(&k).is_err());
    }

    #[test]
    fn payload_rules() {
        assert!(payload_from_json(br#"{"n":1,"s":"x"}"#).is_ok());
        for bad in [
            &br#"[1]"#[..],
            b"\"x\"",
            br#"{"f":1.5}"#,
            br#"{"a":1,"a":2}"#,
            b"{",
            br#"{"n":9007199254740992}"#,
        ] {
            assert!(
                payload_from_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
