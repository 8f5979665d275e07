//! End-to-end encrypted agent messaging (`accord-channel/1`), sans-I/O.
//!
//! The construction is HPKE (RFC 9180) with signed ephemerals:
//!
//! * Every agent publishes a **bundle** (`accord-bundle/1`): its Ed25519
//!   identity key and a short-lived X25519 *exchange key*, signed by the
//!   identity key. Exchange keys rotate; deleting an old private half is
//!   what gives forward secrecy.
//! * A sender opens a **session** with one HPKE base-mode setup
//!   (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) to the
//!   recipient's exchange key. The `info` binds the format, session id, both
//!   agent ids and the exchange key id. Two directional keys and base nonces
//!   come from the HPKE exporter, so the recipient can answer in the same
//!   session without a round trip, and the first message needs no handshake
//!   (the recipient may be offline).
//! * Each **envelope** carries an explicit sequence number; the AES-256-GCM
//!   nonce is `base_nonce XOR seq` (TLS 1.3 style) and the associated data is
//!   the canonical header. Inside the ciphertext is a **signed message**
//!   (`accord-message/1`): the sender's Ed25519 signature over everything,
//!   so the recipient keeps third-party-verifiable proof of who said what.
//! * The receiver keeps a 64-message **replay window** per session and
//!   direction, which the network layer persists before handing a message
//!   to its handlers.
//!
//! Nothing here reads the clock or draws randomness of its own: session ids,
//! HPKE randomness, message ids and times come in as arguments.
//! `docs/PROTOCOL.md` §18 is the byte-level specification.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use ed25519_dalek::Signature;
use hkdf::Hkdf;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::hash::Hash32;
use crate::identity::{AgentId, IdentityError, Keypair, PublicKey, decode_b64_exact, encode_b64};
use crate::jcs;
use crate::timestamp::Timestamp;

/// `format` of a bundle.
pub const BUNDLE_FORMAT: &str = "accord-bundle/1";
/// `format` of a signed inner message.
pub const MESSAGE_FORMAT: &str = "accord-message/1";
/// `format` member of the HPKE `info` (the channel's domain separator).
pub const CHANNEL_FORMAT: &str = "accord-channel/1";
/// The envelope's `v` member.
pub const ENVELOPE_VERSION: u64 = 1;
/// Largest bundle accepted, in bytes.
pub const MAX_BUNDLE_BYTES: usize = 4 * 1024;
/// Largest signed inner message (the plaintext), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 512 * 1024;
/// Largest envelope accepted, in bytes: the plaintext limit after AEAD tag
/// and base64url expansion, plus room for the header.
pub const MAX_ENVELOPE_BYTES: usize = (MAX_MESSAGE_BYTES + 16).div_ceil(3) * 4 + 1024;
/// Messages per direction before a session must be replaced.
pub const MAX_SESSION_MESSAGES: u64 = 1 << 20;
/// Age after which a sender opens a new session (milliseconds).
pub const MAX_SESSION_AGE_MS: u64 = 60 * 60 * 1000;
/// Width of the replay window: a message may arrive up to this many
/// positions behind the highest sequence number seen and still be accepted once.
pub const REPLAY_WINDOW: u64 = 64;
/// Longest message `type`.
pub const MAX_TYPE_LEN: usize = 64;

/// `,"signature":"`, the start of the signature member in canonical form.
const SIG_PREFIX: &[u8] = b",\"signature\":\"";
/// Length of `,"signature":"…"`: the prefix, 86 base64url characters, a quote.
const SIG_MEMBER_LEN: usize = 14 + 86 + 1;
const EXPORT_S2R: &[u8] = b"accord-channel/1 key s2r";
const EXPORT_R2S: &[u8] = b"accord-channel/1 key r2s";
const AT_REST_SALT: &[u8] = b"accord-channel-at-rest/1";

/// Why a bundle, envelope or message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// Not JSON of the expected shape; the message says which member.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being parsed (bundle, envelope, message).
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Larger than its limit.
    #[error("{what} is {len} bytes; the limit is {max}")]
    TooLarge {
        /// What was being parsed.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A key or id problem (the bundle's key does not derive its agent_id, …).
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The bundle's signature does not verify under its own identity key.
    #[error("bundle signature does not verify: the bundle was altered or forged")]
    BundleSignature,
    /// The bundle's validity period has ended (or not begun).
    #[error(
        "bundle of {agent_id} is valid from {created} to {expires}, not at {now}: fetch a fresh bundle"
    )]
    BundleExpired {
        /// Whose bundle.
        agent_id: String,
        /// Start of validity.
        created: String,
        /// End of validity.
        expires: String,
        /// The time it was checked at.
        now: String,
    },
    /// AES-GCM refused the ciphertext: it was altered, truncated, or is not
    /// for this session and direction.
    #[error(
        "authentication failed: the envelope was altered, truncated, or sealed under other keys"
    )]
    AuthenticationFailed,
    /// The inner message's signature does not verify under the sender's
    /// (pinned) identity key.
    #[error("the message signature does not verify under {0}'s identity key")]
    BadSignature(String),
    /// The envelope header and the signed message inside disagree, or the
    /// envelope is not for this session, peer or direction.
    #[error("envelope does not match its session: {0}")]
    Mismatch(String),
    /// A sequence number already seen in this session and direction.
    #[error("replay detected: message {seq} of session {session_id} was already received")]
    Replay {
        /// The session.
        session_id: String,
        /// The repeated sequence number.
        seq: u64,
    },
    /// A sequence number older than the replay window.
    #[error(
        "message {seq} of session {session_id} is older than the replay window (highest seen {highest}); it cannot be checked for replay and is refused"
    )]
    TooOld {
        /// The session.
        session_id: String,
        /// The refused sequence number.
        seq: u64,
        /// Highest sequence number seen.
        highest: u64,
    },
    /// The session has sent its maximum number of messages.
    #[error("session {0} has reached its message limit; open a new session")]
    SessionExhausted(String),
    /// HPKE setup failed (e.g. a low-order exchange key).
    #[error("key agreement failed: {0}")]
    KeyAgreement(#[source] hpke::HpkeError),
    /// The message content is not acceptable (type syntax, payload numbers).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// Stored secret state could not be decrypted or parsed.
    #[error("stored channel state does not decrypt under this agent's key (corrupt or foreign)")]
    AtRest,
}

fn malformed(what: &'static str, detail: impl Into<String>) -> ChannelError {
    ChannelError::Malformed {
        what,
        detail: detail.into(),
    }
}

// ------------------------------------------------------------------ keys

/// The identifier of an exchange key: the first 12 bytes of
/// SHA-256(`"accord-exchange-key/1"` ‖ 0x00 ‖ key), unpadded base64url
/// (16 characters).
pub fn exchange_key_id(public: &[u8; 32]) -> String {
    let mut buf = Vec::with_capacity(54);
    buf.extend_from_slice(b"accord-exchange-key/1\0");
    buf.extend_from_slice(public);
    encode_b64(&Hash32::of(&buf).0[..12])
}

/// An X25519 exchange key pair (the private half is zeroised on drop).
pub struct ExchangeSecret {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    id: String,
}

impl ExchangeSecret {
    /// Derives a key pair from 32 bytes of fresh randomness (RFC 9180
    /// `DeriveKeyPair`).
    pub fn generate(ikm: &[u8; 32]) -> Self {
        let (sk, pk) = X25519HkdfSha256::derive_keypair(ikm);
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&sk.to_bytes());
        let mut public = [0u8; 32];
        public.copy_from_slice(&pk.to_bytes());
        ExchangeSecret {
            secret,
            id: exchange_key_id(&public),
            public,
        }
    }

    /// Rebuilds a key pair from its stored private half.
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<Self, ChannelError> {
        let sk = <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(bytes)
            .map_err(ChannelError::KeyAgreement)?;
        let pk = X25519HkdfSha256::sk_to_pk(&sk);
        let mut public = [0u8; 32];
        public.copy_from_slice(&pk.to_bytes());
        Ok(ExchangeSecret {
            secret: Zeroizing::new(*bytes),
            id: exchange_key_id(&public),
            public,
        })
    }

    /// The private half, for encrypted storage.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The public half.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// The key's [`exchange_key_id`].
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for ExchangeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExchangeSecret({})", self.id)
    }
}

// ---------------------------------------------------------------- bundle

/// A verified `accord-bundle/1`: an agent's identity key and its current
/// exchange key, signed by the identity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    agent_id: AgentId,
    public_key: PublicKey,
    exchange_key: [u8; 32],
    exchange_key_id: String,
    created: Timestamp,
    expires: Timestamp,
    canonical: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleWire {
    format: String,
    agent_id: String,
    public_key: String,
    exchange_key: String,
    exchange_key_id: String,
    created: String,
    expires: String,
    signature: String,
}

impl Bundle {
    /// Signs a bundle for `exchange` valid from `created` to `expires`.
    pub fn sign(
        key: &Keypair,
        exchange: &ExchangeSecret,
        created: Timestamp,
        expires: Timestamp,
    ) -> Bundle {
        let mut doc = Map::new();
        doc.insert("format".into(), BUNDLE_FORMAT.into());
        doc.insert("agent_id".into(), key.agent_id().as_str().into());
        doc.insert("public_key".into(), key.public().to_b64().into());
        doc.insert("exchange_key".into(), encode_b64(exchange.public()).into());
        doc.insert("exchange_key_id".into(), exchange.id().into());
        doc.insert("created".into(), created.as_str().into());
        doc.insert("expires".into(), expires.as_str().into());
        let sig = key.sign(&jcs::to_vec(&Value::Object(doc.clone())));
        doc.insert("signature".into(), encode_b64(&sig.to_bytes()).into());
        Bundle {
            agent_id: key.agent_id().clone(),
            public_key: *key.public(),
            exchange_key: *exchange.public(),
            exchange_key_id: exchange.id().to_owned(),
            created,
            expires,
            canonical: jcs::to_vec(&Value::Object(doc)),
        }
    }

    /// Parses and verifies a bundle: its form, that `agent_id` derives from
    /// `public_key`, that `exchange_key_id` names `exchange_key`, and the
    /// signature. Expiry is checked separately ([`Bundle::check_valid_at`])
    /// because it needs the time.
    pub fn parse(bytes: &[u8]) -> Result<Bundle, ChannelError> {
        const WHAT: &str = "bundle";
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(ChannelError::TooLarge {
                what: WHAT,
                len: bytes.len(),
                max: MAX_BUNDLE_BYTES,
            });
        }
        let value = jcs::parse(bytes).map_err(|e| malformed(WHAT, e.to_string()))?;
        let wire: BundleWire =
            serde_json::from_value(value.clone()).map_err(|e| malformed(WHAT, e.to_string()))?;
        if wire.format != BUNDLE_FORMAT {
            return Err(malformed(
                WHAT,
                format!("format {:?}, expected {BUNDLE_FORMAT:?}", wire.format),
            ));
        }
        let agent_id = AgentId::parse(&wire.agent_id)?;
        let public_key = PublicKey::from_b64(&wire.public_key)?;
        agent_id.check_key(&public_key)?;
        let exchange_key = decode_b64_exact::<32>(&wire.exchange_key)
            .ok_or_else(|| malformed(WHAT, "exchange_key is not 32 bytes of base64url"))?;
        if exchange_key_id(&exchange_key) != wire.exchange_key_id {
            return Err(malformed(
                WHAT,
                "exchange_key_id does not name exchange_key",
            ));
        }
        let created =
            Timestamp::parse(&wire.created).map_err(|e| malformed(WHAT, e.to_string()))?;
        let expires =
            Timestamp::parse(&wire.expires).map_err(|e| malformed(WHAT, e.to_string()))?;
        if expires <= created {
            return Err(malformed(WHAT, "expires is not after created"));
        }
        let sig = decode_b64_exact::<64>(&wire.signature)
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| malformed(WHAT, "signature is not 64 bytes of base64url"))?;
        let Value::Object(mut doc) = value else {
            return Err(malformed(WHAT, "not an object"));
        };
        doc.remove("signature");
        if !public_key.verify_strict(&jcs::to_vec(&Value::Object(doc)), &sig) {
            return Err(ChannelError::BundleSignature);
        }
        Ok(Bundle {
            agent_id,
            public_key,
            exchange_key,
            exchange_key_id: wire.exchange_key_id,
            created,
            expires,
            canonical: jcs::canonicalize(bytes).map_err(|e| malformed(WHAT, e.to_string()))?,
        })
    }

    /// Fails unless `now` is within `created..expires`.
    pub fn check_valid_at(&self, now: &Timestamp) -> Result<(), ChannelError> {
        if *now >= self.created && *now < self.expires {
            Ok(())
        } else {
            Err(ChannelError::BundleExpired {
                agent_id: self.agent_id.to_string(),
                created: self.created.to_string(),
                expires: self.expires.to_string(),
                now: now.to_string(),
            })
        }
    }

    /// The agent.
    pub fn agent_id(&self) -> &AgentId {
        &self.agent_id
    }
    /// The agent's identity key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    /// The X25519 exchange key.
    pub fn exchange_key(&self) -> &[u8; 32] {
        &self.exchange_key
    }
    /// The exchange key's id.
    pub fn exchange_key_id(&self) -> &str {
        &self.exchange_key_id
    }
    /// Start of validity.
    pub fn created(&self) -> &Timestamp {
        &self.created
    }
    /// End of validity.
    pub fn expires(&self) -> &Timestamp {
        &self.expires
    }
    /// The canonical JSON bytes (what is published and hashed).
    pub fn to_bytes(&self) -> &[u8] {
        &self.canonical
    }
    /// The bundle as a JSON value.
    pub fn to_value(&self) -> Value {
        jcs::parse(&self.canonical).unwrap_or(Value::Null)
    }
}

// -------------------------------------------------------------- envelope

/// Which way a message travels within a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the session's initiator to its responder (`"s2r"`).
    S2R,
    /// From the responder back to the initiator (`"r2s"`).
    R2S,
}

impl Direction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::S2R => "s2r",
            Direction::R2S => "r2s",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "s2r" => Some(Direction::S2R),
            "r2s" => Some(Direction::R2S),
            _ => None,
        }
    }
}

/// A sealed envelope: everything a hub sees.
///
/// Initiator-to-responder envelopes carry `enc` (the HPKE encapsulated key)
/// and `exchange_key_id`, so any one of them can open the session; replies
/// carry neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The session.
    pub session_id: String,
    /// The sender.
    pub from: AgentId,
    /// The recipient.
    pub to: AgentId,
    /// Sequence number within the session and direction.
    pub seq: u64,
    /// HPKE encapsulated key (initiator → responder only).
    pub enc: Option<[u8; 32]>,
    /// Which exchange key of the recipient `enc` is for (initiator →
    /// responder only).
    pub exchange_key_id: Option<String>,
    /// AES-256-GCM ciphertext and tag of the signed message.
    pub ciphertext: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeWire<'a> {
    v: u64,
    #[serde(borrow)]
    session_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    from: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    to: std::borrow::Cow<'a, str>,
    seq: u64,
    #[serde(borrow, default)]
    enc: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    exchange_key_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    ciphertext: std::borrow::Cow<'a, str>,
}

fn check_session_id(s: &str) -> bool {
    s.len() == 22 && decode_b64_exact::<16>(s).is_some()
}

impl Envelope {
    /// Which direction the envelope travels (from the presence of `enc`).
    pub fn direction(&self) -> Direction {
        if self.enc.is_some() {
            Direction::S2R
        } else {
            Direction::R2S
        }
    }

    /// The associated data: canonical JSON of every header member (all but
    /// `ciphertext`).
    pub fn aad(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        if let Some(enc) = &self.enc {
            out.extend_from_slice(b"\"enc\":\"");
            out.extend_from_slice(encode_b64(enc).as_bytes());
            out.extend_from_slice(b"\",");
        }
        if let Some(id) = &self.exchange_key_id {
            out.extend_from_slice(b"\"exchange_key_id\":");
            jcs::write_str(&mut out, id);
            out.push(b',');
        }
        out.extend_from_slice(b"\"from\":");
        jcs::write_str(&mut out, self.from.as_str());
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(self.seq.to_string().as_bytes());
        out.extend_from_slice(b",\"session_id\":");
        jcs::write_str(&mut out, &self.session_id);
        out.extend_from_slice(b",\"to\":");
        jcs::write_str(&mut out, self.to.as_str());
        out.extend_from_slice(b",\"v\":1}");
        out
    }

    /// The canonical JSON form sent to the hub.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ciphertext.len() * 4 / 3 + 300);
        out.extend_from_slice(b"{\"ciphertext\":\"");
        out.extend_from_slice(encode_b64(&self.ciphertext).as_bytes());
        out.extend_from_slice(b"\",");
        // The rest of the header is exactly the AAD without its opening brace.
        out.extend_from_slice(&self.aad()[1..]);
        out
    }

    /// The envelope as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.to_bytes()).unwrap_or(Value::Null)
    }

    /// Parses an envelope (form only; opening it checks the rest). Member
    /// order and whitespace are free; unknown or duplicate members are refused.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, ChannelError> {
        const WHAT: &str = "envelope";
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(ChannelError::TooLarge {
                what: WHAT,
                len: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let wire: EnvelopeWire<'_> =
            serde_json::from_slice(bytes).map_err(|e| malformed(WHAT, e.to_string()))?;
        Self::from_wire(wire)
    }

    /// Parses an envelope from an already parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Envelope, ChannelError> {
        let wire =
            EnvelopeWire::deserialize(value).map_err(|e| malformed("envelope", e.to_string()))?;
        Self::from_wire(wire)
    }

    fn from_wire(wire: EnvelopeWire<'_>) -> Result<Envelope, ChannelError> {
        const WHAT: &str = "envelope";
        if wire.v != ENVELOPE_VERSION {
            return Err(malformed(
                WHAT,
                format!("version {} (this build reads 1)", wire.v),
            ));
        }
        if !check_session_id(&wire.session_id) {
            return Err(malformed(WHAT, "session_id is not 16 bytes of base64url"));
        }
        if wire.seq >= MAX_SESSION_MESSAGES {
            return Err(malformed(WHAT, "seq beyond the session limit"));
        }
        let enc = match &wire.enc {
            Some(e) => Some(
                decode_b64_exact::<32>(e)
                    .ok_or_else(|| malformed(WHAT, "enc is not 32 bytes of base64url"))?,
            ),
            None => None,
        };
        if enc.is_some() != wire.exchange_key_id.is_some() {
            return Err(malformed(
                WHAT,
                "enc and exchange_key_id come together or not at all",
            ));
        }
        if let Some(id) = &wire.exchange_key_id
            && decode_b64_exact::<12>(id).is_none()
        {
            return Err(malformed(
                WHAT,
                "exchange_key_id is not 12 bytes of base64url",
            ));
        }
        let ciphertext = base64_decode(&wire.ciphertext)
            .ok_or_else(|| malformed(WHAT, "ciphertext is not base64url"))?;
        if ciphertext.len() < 16 {
            return Err(malformed(WHAT, "ciphertext is shorter than the AEAD tag"));
        }
        Ok(Envelope {
            session_id: wire.session_id.into_owned(),
            from: AgentId::parse(&wire.from)?,
            to: AgentId::parse(&wire.to)?,
            seq: wire.seq,
            enc,
            exchange_key_id: wire.exchange_key_id.map(|c| c.into_owned()),
            ciphertext,
        })
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    // One spelling per value, as everywhere else in Accord.
    (encode_b64(&bytes) == s).then_some(bytes)
}

// --------------------------------------------------------------- message

/// The content of a message, before it is signed.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Message id (UUIDv4).
    pub id: Uuid,
    /// Milliseconds since the Unix epoch, by the sender's clock.
    pub timestamp_ms: u64,
    /// Message type: 1–64 characters of `[A-Za-z0-9_.:/-]`; `"message"` by default.
    pub msg_type: String,
    /// Text.
    pub text: String,
    /// Structured content (a JSON object; integers only, within ±(2^53−1)).
    pub payload: Map<String, Value>,
}

/// A message as signed by its sender: `accord-message/1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Message id.
    pub id: Uuid,
    /// Sender.
    pub from: AgentId,
    /// Recipient.
    pub to: AgentId,
    /// Session.
    pub session_id: String,
    /// Sequence number in the session and direction.
    pub seq: u64,
    /// Direction in the session.
    pub direction: Direction,
    /// Sender's time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Message type.
    pub msg_type: String,
    /// Text.
    pub text: String,
    /// Structured content.
    pub payload: Map<String, Value>,
}

/// A signed message with its canonical bytes and their SHA-256 (what chains record).
#[derive(Debug, Clone, PartialEq)]
pub struct SignedMessage {
    message: Message,
    signature: Signature,
    canonical: Vec<u8>,
    hash: Hash32,
}

fn check_msg_type(t: &str) -> Result<(), ChannelError> {
    let ok = !t.is_empty()
        && t.len() <= MAX_TYPE_LEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ChannelError::InvalidMessage(format!(
            "type {:?}: use 1-64 characters of A-Z a-z 0-9 _ . : / -",
            t.chars().take(80).collect::<String>()
        )))
    }
}

impl Message {
    /// Writes the canonical form without `signature` and returns the offset
    /// where `,"signature":…` belongs (after `session_id`, in RFC 8785
    /// order). Member names are written in sorted order by hand so a
    /// message is canonicalised once, not built as a map and sorted.
    fn write_unsigned(&self, out: &mut Vec<u8>) -> usize {
        out.extend_from_slice(b"{\"direction\":\"");
        out.extend_from_slice(self.direction.as_str().as_bytes());
        out.extend_from_slice(b"\",\"format\":\"");
        out.extend_from_slice(MESSAGE_FORMAT.as_bytes());
        out.extend_from_slice(b"\",\"from\":");
        jcs::write_str(out, self.from.as_str());
        out.extend_from_slice(b",\"id\":\"");
        out.extend_from_slice(
            self.id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"payload\":");
        jcs::write_object(out, &self.payload);
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(self.seq.to_string().as_bytes());
        out.extend_from_slice(b",\"session_id\":");
        jcs::write_str(out, &self.session_id);
        let split = out.len();
        out.extend_from_slice(b",\"text\":");
        jcs::write_str(out, &self.text);
        out.extend_from_slice(b",\"timestamp_ms\":");
        out.extend_from_slice(self.timestamp_ms.to_string().as_bytes());
        out.extend_from_slice(b",\"to\":");
        jcs::write_str(out, self.to.as_str());
        out.extend_from_slice(b",\"type\":");
        jcs::write_str(out, &self.msg_type);
        out.push(b'}');
        split
    }

    fn check(&self) -> Result<(), ChannelError> {
        check_msg_type(&self.msg_type)?;
        if self.timestamp_ms > jcs::MAX_SAFE_INTEGER {
            return Err(ChannelError::InvalidMessage(
                "timestamp_ms beyond 2^53".into(),
            ));
        }
        for v in self.payload.values() {
            jcs::check_signable(v).map_err(|e| ChannelError::InvalidMessage(e.to_string()))?;
        }
        Ok(())
    }

    /// Signs the message with the sender's key.
    pub fn sign(self, key: &Keypair) -> Result<SignedMessage, ChannelError> {
        if &self.from != key.agent_id() {
            return Err(ChannelError::Mismatch(
                "the signing key is not the sender's".into(),
            ));
        }
        self.check()?;
        let mut unsigned = Vec::with_capacity(512 + self.text.len());
        let split = self.write_unsigned(&mut unsigned);
        let signature = key.sign(&unsigned);
        let mut canonical = Vec::with_capacity(unsigned.len() + SIG_MEMBER_LEN);
        canonical.extend_from_slice(&unsigned[..split]);
        canonical.extend_from_slice(SIG_PREFIX);
        canonical.extend_from_slice(encode_b64(&signature.to_bytes()).as_bytes());
        canonical.push(b'"');
        canonical.extend_from_slice(&unsigned[split..]);
        if canonical.len() > MAX_MESSAGE_BYTES {
            return Err(ChannelError::TooLarge {
                what: "message",
                len: canonical.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let hash = Hash32::of(&canonical);
        Ok(SignedMessage {
            message: self,
            signature,
            canonical,
            hash,
        })
    }
}

impl SignedMessage {
    /// Parses a signed message from its canonical bytes and verifies the
    /// signature under `key` (the sender's pinned identity key).
    pub fn parse_and_verify(bytes: &[u8], key: &PublicKey) -> Result<SignedMessage, ChannelError> {
        const WHAT: &str = "message";
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(ChannelError::TooLarge {
                what: WHAT,
                len: bytes.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let value = jcs::parse(bytes).map_err(|e| malformed(WHAT, e.to_string()))?;
        // One byte string per message, so its hash (what chains record) is
        // well defined.
        if jcs::to_vec(&value) != bytes {
            return Err(malformed(WHAT, "not in RFC 8785 canonical form"));
        }
        let Value::Object(mut map) = value else {
            return Err(malformed(WHAT, "not an object"));
        };
        let take_str = |map: &mut Map<String, Value>, k: &str| -> Result<String, ChannelError> {
            match map.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(malformed(WHAT, format!("{k} must be a string"))),
            }
        };
        let take_u64 = |map: &Map<String, Value>, k: &str| -> Result<u64, ChannelError> {
            map.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| malformed(WHAT, format!("{k} must be a non-negative integer")))
        };
        const MEMBERS: [&str; 12] = [
            "direction",
            "format",
            "from",
            "id",
            "payload",
            "seq",
            "session_id",
            "signature",
            "text",
            "timestamp_ms",
            "to",
            "type",
        ];
        if map.len() != MEMBERS.len() || !MEMBERS.iter().all(|k| map.contains_key(*k)) {
            return Err(malformed(
                WHAT,
                format!("members must be exactly {}", MEMBERS.join(", ")),
            ));
        }
        if take_str(&mut map, "format")? != MESSAGE_FORMAT {
            return Err(malformed(WHAT, format!("format is not {MESSAGE_FORMAT:?}")));
        }
        let sig_text = take_str(&mut map, "signature")?;
        let signature = decode_b64_exact::<64>(&sig_text)
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| malformed(WHAT, "signature is not 64 bytes of base64url"))?;
        let id_text = take_str(&mut map, "id")?;
        let id = Uuid::try_parse(&id_text)
            .ok()
            .filter(|u| u.hyphenated().to_string() == id_text)
            .ok_or_else(|| malformed(WHAT, "id is not a lower-case hyphenated UUID"))?;
        let direction = Direction::parse(&take_str(&mut map, "direction")?)
            .ok_or_else(|| malformed(WHAT, "direction must be \"s2r\" or \"r2s\""))?;
        let payload = match map.get("payload") {
            Some(Value::Object(p)) => p.clone(),
            _ => return Err(malformed(WHAT, "payload must be an object")),
        };
        let message = Message {
            id,
            from: AgentId::parse(&take_str(&mut map, "from")?)?,
            to: AgentId::parse(&take_str(&mut map, "to")?)?,
            session_id: take_str(&mut map, "session_id")?,
            seq: take_u64(&map, "seq")?,
            direction,
            timestamp_ms: take_u64(&map, "timestamp_ms")?,
            msg_type: take_str(&mut map, "type")?,
            text: take_str(&mut map, "text")?,
            payload,
        };
        message.check()?;
        // The signing input is the canonical bytes without the signature
        // member. In canonical form that member is the last occurrence of
        // `,"signature":"`: only text, timestamp_ms, to and type follow it,
        // and none can hold an unescaped quote.
        let pos = bytes
            .windows(SIG_PREFIX.len())
            .rposition(|w| w == SIG_PREFIX)
            .ok_or_else(|| malformed(WHAT, "no signature member"))?;
        let end = pos + SIG_MEMBER_LEN;
        if bytes.get(pos + SIG_PREFIX.len()..end - 1) != Some(sig_text.as_bytes()) {
            return Err(malformed(WHAT, "signature member out of place"));
        }
        let mut unsigned = Vec::with_capacity(bytes.len());
        unsigned.extend_from_slice(&bytes[..pos]);
        unsigned.extend_from_slice(&bytes[end..]);
        if !key.verify_strict(&unsigned, &signature) {
            return Err(ChannelError::BadSignature(message.from.to_string()));
        }
        Ok(SignedMessage {
            message,
            signature,
            canonical: bytes.to_vec(),
            hash: Hash32::of(bytes),
        })
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }
    /// The sender's signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
    /// The canonical bytes (signature included): third-party-verifiable proof.
    pub fn to_bytes(&self) -> &[u8] {
        &self.canonical
    }
    /// SHA-256 of the canonical bytes: what chains record.
    pub fn hash(&self) -> Hash32 {
        self.hash
    }
}

// --------------------------------------------------------- replay window

/// A sliding replay window: the highest sequence number seen and a bitmap of
/// the [`REPLAY_WINDOW`] numbers below it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    /// One more than the highest sequence number accepted; 0 when none was.
    pub top: u64,
    /// Bit `i` is set when `top - 1 - i` was accepted.
    pub bitmap: u64,
}

/// What the window says about a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowCheck {
    /// Not seen before and within (or beyond) the window.
    Fresh,
    /// Already accepted.
    Replay,
    /// Below the window: cannot be told apart from a replay.
    TooOld,
}

impl ReplayWindow {
    /// Classifies `seq` without changing the window.
    pub fn check(&self, seq: u64) -> WindowCheck {
        if seq >= self.top {
            return WindowCheck::Fresh;
        }
        let behind = self.top - 1 - seq;
        if behind >= REPLAY_WINDOW {
            WindowCheck::TooOld
        } else if self.bitmap & (1 << behind) != 0 {
            WindowCheck::Replay
        } else {
            WindowCheck::Fresh
        }
    }

    /// Marks `seq` as accepted. Call only after [`ReplayWindow::check`] said
    /// [`WindowCheck::Fresh`] and the message authenticated.
    pub fn accept(&mut self, seq: u64) {
        if seq >= self.top {
            let shift = seq + 1 - self.top;
            self.bitmap = if shift >= 64 { 0 } else { self.bitmap << shift };
            self.bitmap |= 1;
            self.top = seq + 1;
        } else {
            let behind = self.top - 1 - seq;
            if behind < REPLAY_WINDOW {
                self.bitmap |= 1 << behind;
            }
        }
    }
}

// --------------------------------------------------------------- session

/// The side of a session this agent is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opened the session (sends `s2r`).
    Initiator,
    /// Accepted it (sends `r2s`).
    Responder,
}

#[derive(Clone)]
struct DirKeys {
    key: Zeroizing<[u8; 32]>,
    base_nonce: [u8; 12],
    cipher: Aes256Gcm,
}

impl DirKeys {
    fn from_export(okm: &[u8; 44]) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&okm[..32]);
        let mut base_nonce = [0u8; 12];
        base_nonce.copy_from_slice(&okm[32..]);
        let cipher = Aes256Gcm::new((&*key).into());
        DirKeys {
            key,
            base_nonce,
            cipher,
        }
    }

    fn nonce(&self, seq: u64) -> [u8; 12] {
        let mut n = self.base_nonce;
        for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }
}

/// One session between two agents: directional keys, the next sequence
/// number to send and the replay window of the receiving direction.
#[derive(Clone)]
pub struct Session {
    id: String,
    local: AgentId,
    peer: AgentId,
    role: Role,
    exchange_key_id: String,
    enc: [u8; 32],
    send: DirKeys,
    recv: DirKeys,
    next_seq: u64,
    window: ReplayWindow,
    created_ms: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("role", &self.role)
            .field("next_seq", &self.next_seq)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The HPKE `info`: canonical JSON binding the format, the session, both
/// agents and the exchange key.
pub fn hpke_info(session_id: &str, from: &AgentId, to: &AgentId, exchange_key_id: &str) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("exchange_key_id".into(), exchange_key_id.into());
    m.insert("format".into(), CHANNEL_FORMAT.into());
    m.insert("from".into(), from.as_str().into());
    m.insert("session_id".into(), session_id.into());
    m.insert("to".into(), to.as_str().into());
    jcs::to_vec(&Value::Object(m))
}

fn export_keys<C>(export: C) -> Result<(DirKeys, DirKeys), ChannelError>
where
    C: Fn(&[u8], &mut [u8]) -> Result<(), hpke::HpkeError>,
{
    let mut s2r = Zeroizing::new([0u8; 44]);
    let mut r2s = Zeroizing::new([0u8; 44]);
    export(EXPORT_S2R, &mut *s2r).map_err(ChannelError::KeyAgreement)?;
    export(EXPORT_R2S, &mut *r2s).map_err(ChannelError::KeyAgreement)?;
    Ok((DirKeys::from_export(&s2r), DirKeys::from_export(&r2s)))
}

impl Session {
    /// Opens a session to the owner of `peer` (already verified and pinned
    /// by the caller). `session_id` is 16 random bytes; `rng` supplies the
    /// HPKE ephemeral key.
    pub fn initiate<R: CryptoRng + ?Sized>(
        local: &AgentId,
        peer: &Bundle,
        session_id: [u8; 16],
        now_ms: u64,
        rng: &mut R,
    ) -> Result<Session, ChannelError> {
        let id = encode_b64(&session_id);
        let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(peer.exchange_key())
            .map_err(ChannelError::KeyAgreement)?;
        let info = hpke_info(&id, local, peer.agent_id(), peer.exchange_key_id());
        let mut rng = RngAdapter(rng);
        let (enc, ctx) = hpke::setup_sender_with_rng::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeS::Base,
            &pk,
            &info,
            &mut rng,
        )
        .map_err(ChannelError::KeyAgreement)?;
        let (s2r, r2s) = export_keys(|c, out| ctx.export(c, out))?;
        let mut enc_bytes = [0u8; 32];
        enc_bytes.copy_from_slice(&enc.to_bytes());
        Ok(Session {
            id,
            local: local.clone(),
            peer: peer.agent_id().clone(),
            role: Role::Initiator,
            exchange_key_id: peer.exchange_key_id().to_owned(),
            enc: enc_bytes,
            send: s2r,
            recv: r2s,
            next_seq: 0,
            window: ReplayWindow::default(),
            created_ms: now_ms,
        })
    }

    /// Accepts a session from the first envelope of it that arrives (any
    /// initiator-to-responder envelope works). `secret` is the exchange key
    /// named by the envelope's `exchange_key_id`.
    pub fn respond(
        local: &AgentId,
        secret: &ExchangeSecret,
        envelope: &Envelope,
        now_ms: u64,
    ) -> Result<Session, ChannelError> {
        let (Some(enc), Some(key_id)) = (&envelope.enc, &envelope.exchange_key_id) else {
            return Err(ChannelError::Mismatch(
                "a reply envelope for a session this agent does not have".into(),
            ));
        };
        if key_id != secret.id() {
            return Err(ChannelError::Mismatch(
                "the exchange key does not match the envelope's exchange_key_id".into(),
            ));
        }
        if &envelope.to != local {
            return Err(ChannelError::Mismatch(format!(
                "envelope is addressed to {}, not to this agent",
                envelope.to
            )));
        }
        let sk = <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(secret.secret_bytes())
            .map_err(ChannelError::KeyAgreement)?;
        let enc_key = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(enc)
            .map_err(ChannelError::KeyAgreement)?;
        let info = hpke_info(&envelope.session_id, &envelope.from, local, key_id);
        let ctx = hpke::setup_receiver::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &sk,
            &enc_key,
            &info,
        )
        .map_err(ChannelError::KeyAgreement)?;
        let (s2r, r2s) = export_keys(|c, out| ctx.export(c, out))?;
        Ok(Session {
            id: envelope.session_id.clone(),
            local: local.clone(),
            peer: envelope.from.clone(),
            role: Role::Responder,
            exchange_key_id: key_id.clone(),
            enc: *enc,
            send: r2s,
            recv: s2r,
            next_seq: 0,
            window: ReplayWindow::default(),
            created_ms: now_ms,
        })
    }

    /// Signs `draft` as the next message of this session and seals it.
    pub fn seal(
        &mut self,
        key: &Keypair,
        draft: Draft,
    ) -> Result<(Envelope, SignedMessage), ChannelError> {
        if self.next_seq >= MAX_SESSION_MESSAGES {
            return Err(ChannelError::SessionExhausted(self.id.clone()));
        }
        let seq = self.next_seq;
        let direction = self.send_direction();
        let signed = Message {
            id: draft.id,
            from: self.local.clone(),
            to: self.peer.clone(),
            session_id: self.id.clone(),
            seq,
            direction,
            timestamp_ms: draft.timestamp_ms,
            msg_type: draft.msg_type,
            text: draft.text,
            payload: draft.payload,
        }
        .sign(key)?;
        let mut envelope = Envelope {
            session_id: self.id.clone(),
            from: self.local.clone(),
            to: self.peer.clone(),
            seq,
            enc: None,
            exchange_key_id: None,
            ciphertext: Vec::new(),
        };
        if self.role == Role::Initiator {
            envelope.enc = Some(self.enc);
            envelope.exchange_key_id = Some(self.exchange_key_id.clone());
        }
        let aad = envelope.aad();
        envelope.ciphertext = self
            .send
            .cipher
            .encrypt(
                &Nonce::from(self.send.nonce(seq)),
                Payload {
                    msg: signed.to_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| ChannelError::InvalidMessage("encryption failed".into()))?;
        // Only now: a failed seal must not burn a sequence number silently,
        // but a sealed one must never be reused (nonce reuse).
        self.next_seq += 1;
        Ok((envelope, signed))
    }

    /// Classifies an envelope's sequence number against the replay window
    /// without decrypting (cheap rejection of replays).
    pub fn check_replay(&self, seq: u64) -> Result<(), ChannelError> {
        match self.window.check(seq) {
            WindowCheck::Fresh => Ok(()),
            WindowCheck::Replay => Err(ChannelError::Replay {
                session_id: self.id.clone(),
                seq,
            }),
            WindowCheck::TooOld => Err(ChannelError::TooOld {
                session_id: self.id.clone(),
                seq,
                highest: self.window.top.saturating_sub(1),
            }),
        }
    }

    /// Opens an envelope of this session: header checks, replay window,
    /// AES-256-GCM, the inner signature under `peer_key` (the pinned key of
    /// the peer), inner members equal to the header's. On success the
    /// sequence number is marked in the replay window; the caller persists
    /// the window ([`Session::window`]) before acting on the message.
    pub fn open(
        &mut self,
        envelope: &Envelope,
        peer_key: &PublicKey,
    ) -> Result<SignedMessage, ChannelError> {
        if envelope.session_id != self.id {
            return Err(ChannelError::Mismatch("another session's envelope".into()));
        }
        if envelope.from != self.peer || envelope.to != self.local {
            return Err(ChannelError::Mismatch(format!(
                "envelope is from {} to {}, the session is between {} and {}",
                envelope.from, envelope.to, self.peer, self.local
            )));
        }
        let want = self.recv_direction();
        if envelope.direction() != want {
            return Err(ChannelError::Mismatch(format!(
                "envelope travels {}, this side receives {}",
                envelope.direction().as_str(),
                want.as_str()
            )));
        }
        if want == Direction::S2R
            && (envelope.enc != Some(self.enc)
                || envelope.exchange_key_id.as_deref() != Some(self.exchange_key_id.as_str()))
        {
            return Err(ChannelError::Mismatch(
                "enc or exchange_key_id differs from the session's".into(),
            ));
        }
        self.check_replay(envelope.seq)?;
        let plaintext = Zeroizing::new(
            self.recv
                .cipher
                .decrypt(
                    &Nonce::from(self.recv.nonce(envelope.seq)),
                    Payload {
                        msg: &envelope.ciphertext,
                        aad: &envelope.aad(),
                    },
                )
                .map_err(|_| ChannelError::AuthenticationFailed)?,
        );
        let signed = SignedMessage::parse_and_verify(&plaintext, peer_key)?;
        let m = signed.message();
        if m.from != envelope.from
            || m.to != envelope.to
            || m.session_id != envelope.session_id
            || m.seq != envelope.seq
            || m.direction != want
        {
            return Err(ChannelError::Mismatch(
                "the signed message's from/to/session_id/seq/direction differ from the envelope's"
                    .into(),
            ));
        }
        self.window.accept(envelope.seq);
        Ok(signed)
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// This agent.
    pub fn local(&self) -> &AgentId {
        &self.local
    }
    /// The other agent.
    pub fn peer(&self) -> &AgentId {
        &self.peer
    }
    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// When the session was opened or accepted (ms since the epoch).
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }
    /// The next sequence number this side will send.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    /// Sets the next sequence number to send (restoring persisted state;
    /// never lower it, or nonces repeat).
    pub fn set_next_seq(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }
    /// The receiving direction's replay window.
    pub fn window(&self) -> ReplayWindow {
        self.window
    }
    /// Restores a persisted replay window.
    pub fn set_window(&mut self, window: ReplayWindow) {
        self.window = window;
    }
    /// The direction this side sends.
    pub fn send_direction(&self) -> Direction {
        match self.role {
            Role::Initiator => Direction::S2R,
            Role::Responder => Direction::R2S,
        }
    }
    /// The direction this side receives.
    pub fn recv_direction(&self) -> Direction {
        match self.role {
            Role::Initiator => Direction::R2S,
            Role::Responder => Direction::S2R,
        }
    }
    /// Whether a sender should open a new session instead of using this one.
    pub fn should_replace(&self, now_ms: u64) -> bool {
        self.next_seq >= MAX_SESSION_MESSAGES
            || now_ms.saturating_sub(self.created_ms) >= MAX_SESSION_AGE_MS
    }

    /// The session's secret state (keys included), for encrypted storage
    /// only ([`AtRestKey`]). Sequence numbers and the window are stored
    /// separately because they change with every message.
    pub fn secret_state(&self) -> Zeroizing<Vec<u8>> {
        let mut m = Map::new();
        m.insert("id".into(), self.id.clone().into());
        m.insert("local".into(), self.local.as_str().into());
        m.insert("peer".into(), self.peer.as_str().into());
        m.insert(
            "role".into(),
            match self.role {
                Role::Initiator => "initiator",
                Role::Responder => "responder",
            }
            .into(),
        );
        m.insert(
            "exchange_key_id".into(),
            self.exchange_key_id.clone().into(),
        );
        m.insert("enc".into(), encode_b64(&self.enc).into());
        m.insert("send_key".into(), encode_b64(&*self.send.key).into());
        m.insert(
            "send_nonce".into(),
            encode_b64(&self.send.base_nonce).into(),
        );
        m.insert("recv_key".into(), encode_b64(&*self.recv.key).into());
        m.insert(
            "recv_nonce".into(),
            encode_b64(&self.recv.base_nonce).into(),
        );
        m.insert("created_ms".into(), self.created_ms.into());
        let mut doc = Value::Object(m);
        let out = Zeroizing::new(jcs::to_vec(&doc));
        // The base64 copies of the keys must not outlive this call either.
        if let Value::Object(m) = &mut doc {
            for v in m.values_mut() {
                if let Value::String(s) = v {
                    s.zeroize();
                }
            }
        }
        out
    }

    /// Restores a session from [`Session::secret_state`].
    pub fn from_secret_state(bytes: &[u8]) -> Result<Session, ChannelError> {
        let v = jcs::parse(bytes).map_err(|_| ChannelError::AtRest)?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).ok_or(ChannelError::AtRest);
        let key = |k: &str, n: &str| -> Result<DirKeys, ChannelError> {
            let key = decode_b64_exact::<32>(s(k)?).ok_or(ChannelError::AtRest)?;
            let nonce = decode_b64_exact::<12>(s(n)?).ok_or(ChannelError::AtRest)?;
            let mut okm = Zeroizing::new([0u8; 44]);
            okm[..32].copy_from_slice(&key);
            okm[32..].copy_from_slice(&nonce);
            Ok(DirKeys::from_export(&okm))
        };
        Ok(Session {
            id: s("id")?.to_owned(),
            local: AgentId::parse(s("local")?)?,
            peer: AgentId::parse(s("peer")?)?,
            role: match s("role")? {
                "initiator" => Role::Initiator,
                "responder" => Role::Responder,
                _ => return Err(ChannelError::AtRest),
            },
            exchange_key_id: s("exchange_key_id")?.to_owned(),
            enc: decode_b64_exact::<32>(s("enc")?).ok_or(ChannelError::AtRest)?,
            send: key("send_key", "send_nonce")?,
            recv: key("recv_key", "recv_nonce")?,
            next_seq: 0,
            window: ReplayWindow::default(),
            created_ms: v
                .get("created_ms")
                .and_then(Value::as_u64)
                .ok_or(ChannelError::AtRest)?,
        })
    }
}

/// Adapts a `?Sized` RNG reference to the `Sized` one hpke wants.
struct RngAdapter<'a, R: ?Sized>(&'a mut R);

impl<R: rand_core::TryRng + ?Sized> rand_core::TryRng for RngAdapter<'_, R> {
    type Error = R::Error;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.0.try_next_u32()
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0.try_next_u64()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.try_fill_bytes(dst)
    }
}

impl<R: rand_core::TryCryptoRng + ?Sized> rand_core::TryCryptoRng for RngAdapter<'_, R> {}

// --------------------------------------------------------------- at rest

/// The key that encrypts an agent's channel secrets at rest (exchange key
/// private halves, session keys): HKDF-SHA256 of the identity seed, so only
/// the holder of the identity key can read them.
pub struct AtRestKey(Aes256Gcm);

impl AtRestKey {
    /// Derives the key from the agent's identity key.
    pub fn derive(key: &Keypair) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(AT_REST_SALT), key.seed().as_ref());
        let mut okm = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF's limit; the expand cannot fail.
        let _ = hk.expand(key.agent_id().as_str().as_bytes(), &mut *okm);
        AtRestKey(Aes256Gcm::new((&*okm).into()))
    }

    /// Encrypts `plaintext` bound to `aad` (e.g. table and row id) under a
    /// fresh random `nonce`; returns nonce ‖ ciphertext.
    pub fn seal(
        &self,
        nonce: [u8; 12],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ChannelError> {
        let ct = self
            .0
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| ChannelError::AtRest)?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts what [`AtRestKey::seal`] produced with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, ChannelError> {
        if sealed.len() < 28 {
            return Err(ChannelError::AtRest);
        }
        let (nonce, ct) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| ChannelError::AtRest)?;
        self.0
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| ChannelError::AtRest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic RNG for tests (SHA-256 in counter mode).
    struct TestRng(u64);
    impl rand_core::TryRng for TestRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            let mut b = [0u8; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for chunk in dst.chunks_mut(32) {
                self.0 += 1;
                let h = Hash32::of(&self.0.to_le_bytes());
                chunk.copy_from_slice(&h.0[..chunk.len()]);
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for TestRng {}

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    struct Party {
        key: Keypair,
        exchange: ExchangeSecret,
        bundle: Bundle,
    }

    fn party(seed: u8) -> Party {
        let key = Keypair::from_seed(&[seed; 32]).unwrap();
        let exchange = ExchangeSecret::generate(&[seed.wrapping_add(100); 32]);
        let bundle = Bundle::sign(
            &key,
            &exchange,
            ts("2026-01-01T00:00:00.000000Z"),
            ts("2026-01-03T00:00:00.000000Z"),
        );
        Party {
            key,
            exchange,
            bundle,
        }
    }

    fn draft(n: u64, text: &str) -> Draft {
        Draft {
            id: uuid::Builder::from_random_bytes([n as u8; 16]).into_uuid(),
            timestamp_ms: 1_767_225_600_000 + n,
            msg_type: "message".into(),
            text: text.into(),
            payload: Map::new(),
        }
    }

    fn pair() -> (Party, Party, Session, Session, Envelope) {
        let (s, r) = (party(1), party(2));
        let bundle = Bundle::parse(r.bundle.to_bytes()).unwrap();
        let mut tx =
            Session::initiate(s.key.agent_id(), &bundle, [9; 16], 0, &mut TestRng(0)).unwrap();
        let (env, _) = tx.seal(&s.key, draft(0, "hello")).unwrap();
        let env = Envelope::parse(&env.to_bytes()).unwrap();
        let rx = Session::respond(r.key.agent_id(), &r.exchange, &env, 0).unwrap();
        (s, r, tx, rx, env)
    }

    #[test]
    fn bundle_round_trip_and_checks() {
        let p = party(1);
        let parsed = Bundle::parse(p.bundle.to_bytes()).unwrap();
        assert_eq!(parsed, p.bundle);
        assert!(
            parsed
                .check_valid_at(&ts("2026-01-02T00:00:00.000000Z"))
                .is_ok()
        );
        assert!(matches!(
            parsed.check_valid_at(&ts("2026-01-03T00:00:00.000000Z")),
            Err(ChannelError::BundleExpired { .. })
        ));
        // A hub that swaps the exchange key breaks the signature.
        let other = ExchangeSecret::generate(&[55; 32]);
        let text = String::from_utf8(p.bundle.to_bytes().to_vec()).unwrap();
        let swapped = text
            .replace(
                &encode_b64(p.exchange.public()),
                &encode_b64(other.public()),
            )
            .replace(p.exchange.id(), other.id());
        assert_eq!(
            Bundle::parse(swapped.as_bytes()),
            Err(ChannelError::BundleSignature)
        );
        // Re-signed by another identity under the first agent's id: refused.
        let mallory = party(3);
        let forged = String::from_utf8(mallory.bundle.to_bytes().to_vec())
            .unwrap()
            .replace(mallory.key.agent_id().as_str(), p.key.agent_id().as_str());
        assert!(matches!(
            Bundle::parse(forged.as_bytes()),
            Err(ChannelError::Identity(
                IdentityError::AgentIdMismatch { .. }
            ))
        ));
        assert!(Bundle::parse(b"{}").is_err());
        assert!(Bundle::parse(&vec![b' '; MAX_BUNDLE_BYTES + 1]).is_err());
    }

    #[test]
    fn both_directions_round_trip() {
        let (s, r, mut tx, mut rx, env) = pair();
        let first = rx.open(&env, s.key.public()).unwrap();
        assert_eq!(first.message().text, "hello");
        assert_eq!(first.message().direction, Direction::S2R);
        assert_eq!(first.hash(), Hash32::of(first.to_bytes()));
        let (reply, _) = rx.seal(&r.key, draft(1, "hi back")).unwrap();
        assert!(reply.enc.is_none());
        let got = tx
            .open(&Envelope::parse(&reply.to_bytes()).unwrap(), r.key.public())
            .unwrap();
        assert_eq!(got.message().text, "hi back");
        assert_eq!(got.message().direction, Direction::R2S);
        // The signed message is verifiable by a third party on its own.
        SignedMessage::parse_and_verify(got.to_bytes(), r.key.public()).unwrap();
        // The plaintext does not appear in the envelope.
        assert!(!String::from_utf8_lossy(&reply.to_bytes()).contains("hi back"));
    }

    #[test]
    fn replays_reorders_and_old_messages() {
        let (s, _r, mut tx, mut rx, env) = pair();
        rx.open(&env, s.key.public()).unwrap();
        assert!(matches!(
            rx.open(&env, s.key.public()),
            Err(ChannelError::Replay { seq: 0, .. })
        ));
        let envs: Vec<Envelope> = (1..=70)
            .map(|i| tx.seal(&s.key, draft(i, "x")).unwrap().0)
            .collect();
        // Out of order within the window: accepted once each.
        rx.open(&envs[5], s.key.public()).unwrap();
        rx.open(&envs[2], s.key.public()).unwrap();
        assert!(matches!(
            rx.open(&envs[2], s.key.public()),
            Err(ChannelError::Replay { .. })
        ));
        rx.open(&envs[69], s.key.public()).unwrap();
        // envs[0] is seq 1; the highest is 70: 69 behind, outside the window.
        assert!(matches!(
            rx.open(&envs[0], s.key.public()),
            Err(ChannelError::TooOld { .. })
        ));
        rx.open(&envs[10], s.key.public()).unwrap();
        // Window state survives a save/restore.
        let mut restored = Session::from_secret_state(&rx.secret_state()).unwrap();
        restored.set_window(rx.window());
        assert!(matches!(
            restored.open(&envs[10], s.key.public()),
            Err(ChannelError::Replay { .. })
        ));
        restored.open(&envs[11], s.key.public()).unwrap();
    }

    #[test]
    fn tampering_is_detected() {
        let (s, r, _tx, rx, env) = pair();
        // Flip each byte of the ciphertext in turn (sampled).
        for i in (0..env.ciphertext.len()).step_by(7) {
            let mut bad = env.clone();
            bad.ciphertext[i] ^= 0x01;
            assert_eq!(
                rx.clone().open(&bad, s.key.public()),
                Err(ChannelError::AuthenticationFailed)
            );
        }
        let mut truncated = env.clone();
        truncated.ciphertext.truncate(env.ciphertext.len() - 1);
        assert_eq!(
            rx.clone().open(&truncated, s.key.public()),
            Err(ChannelError::AuthenticationFailed)
        );
        // A changed header member fails authentication (AAD) or the
        // session checks.
        let mut reseq = env.clone();
        reseq.seq = 5;
        assert_eq!(
            rx.clone().open(&reseq, s.key.public()),
            Err(ChannelError::AuthenticationFailed)
        );
        // The right ciphertext under the wrong (e.g. substituted) key.
        assert!(matches!(
            rx.clone().open(&env, r.key.public()),
            Err(ChannelError::BadSignature(_))
        ));
        // A session opened to a substituted exchange key cannot be read by
        // the real recipient.
        let mallory = ExchangeSecret::generate(&[77; 32]);
        let fake = Bundle::sign(
            &r.key,
            &mallory,
            ts("2026-01-01T00:00:00.000000Z"),
            ts("2026-01-03T00:00:00.000000Z"),
        );
        let mut tx2 =
            Session::initiate(s.key.agent_id(), &fake, [3; 16], 0, &mut TestRng(5)).unwrap();
        let (env2, _) = tx2.seal(&s.key, draft(0, "secret")).unwrap();
        assert!(Session::respond(r.key.agent_id(), &r.exchange, &env2, 0).is_err());
        // Nothing passes once garbage is fed in.
        for bad in [&b""[..], b"{}", b"[1]", b"\xff", b"{\"v\":1}"] {
            assert!(Envelope::parse(bad).is_err());
        }
    }

    #[test]
    fn window_matches_a_model() {
        // The bitmap window against a set-based model, over a pseudo-random
        // arrival order.
        let mut w = ReplayWindow::default();
        let mut seen = std::collections::BTreeSet::new();
        let mut rng = TestRng(42);
        for _ in 0..5000 {
            let seq = rand_core::TryRng::try_next_u64(&mut rng).unwrap() % 300;
            let highest = seen.iter().next_back().copied();
            let expect = match highest {
                Some(h) if seq + REPLAY_WINDOW <= h => WindowCheck::TooOld,
                _ if seen.contains(&seq) => WindowCheck::Replay,
                _ => WindowCheck::Fresh,
            };
            assert_eq!(w.check(seq), expect, "seq {seq} highest {highest:?}");
            if expect == WindowCheck::Fresh {
                w.accept(seq);
                seen.insert(seq);
            }
        }
    }

    #[test]
    fn at_rest_round_trip() {
        let key = Keypair::from_seed(&[4; 32]).unwrap();
        let k = AtRestKey::derive(&key);
        let sealed = k.seal([1; 12], b"row", b"secret").unwrap();
        assert_eq!(&*k.open(b"row", &sealed).unwrap(), b"secret");
        assert_eq!(k.open(b"other", &sealed), Err(ChannelError::AtRest));
        let other = AtRestKey::derive(&Keypair::from_seed(&[5; 32]).unwrap());
        assert!(other.open(b"row", &sealed).is_err());
    }

    #[test]
    fn message_rules() {
        let s = party(1);
        let m = Message {
            id: Uuid::nil(),
            from: s.key.agent_id().clone(),
            to: s.key.agent_id().clone(),
            session_id: encode_b64(&[0; 16]),
            seq: 0,
            direction: Direction::S2R,
            timestamp_ms: 1,
            msg_type: "bad type".into(),
            text: String::new(),
            payload: Map::new(),
        };
        assert!(matches!(
            m.clone().sign(&s.key),
            Err(ChannelError::InvalidMessage(_))
        ));
        let mut float = m.clone();
        float.msg_type = "message".into();
        float.payload.insert("x".into(), serde_json::json!(1.5));
        assert!(float.sign(&s.key).is_err());
        let mut ok = m;
        ok.msg_type = "message".into();
        // A payload member named "signature" (and a text full of quotes)
        // does not confuse where the real signature member is.
        ok.payload
            .insert("signature".into(), Value::from("A".repeat(86)));
        ok.text = "\",\"signature\":\"".into();
        let signed = ok.sign(&s.key).unwrap();
        assert_eq!(
            SignedMessage::parse_and_verify(signed.to_bytes(), s.key.public()).unwrap(),
            signed
        );
        let text = String::from_utf8(signed.to_bytes().to_vec()).unwrap();
        let edited = text.replace("\"seq\":0", "\"seq\":1");
        assert!(matches!(
            SignedMessage::parse_and_verify(edited.as_bytes(), s.key.public()),
            Err(ChannelError::BadSignature(_))
        ));
    }
}
