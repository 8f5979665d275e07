//! Co-signed sessions between agents (docs/PROTOCOL.md §15): the
//! handshake, co-signed interactions, session end, and payload hashing.
//!
//! Every message here is a [`SignedObject`] made by one agent with its own
//! key, so the protocol runs the same whether both agents live in one
//! process or talk over a network. This module only builds and checks
//! messages; who sends them and where events are stored is the caller's
//! business: [`crate::interaction::participant`] is the state machine that
//! runs these steps for one agent.
//!
//! Handshake, initiator I and responder R:
//! 1. I → R `accord-handshake-proposal/1`: session id, I's id and key, R's id,
//!    capabilities, a fresh nonce, time.
//! 2. R → I `accord-handshake-response/1`: checks 1, echoes the nonce, binds
//!    `proposal_hash`, agreed capabilities.
//! 3. I checks 2 and records `a2a.handshake` (proposal + response) in its
//!    chain; I → R `accord-handshake-confirm/1` binding `response_hash`.
//! 4. R checks 3 and records `a2a.handshake` (proposal + response + confirm).
//!
//! Each chain then holds the peer's signature over the handshake.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;
use crate::identity::{AgentId, Keypair, PublicKey};
use crate::jcs;
use crate::signed::{SignedError, SignedObject};
use crate::timestamp::Timestamp;
use crate::{Map, Uuid, Value};

/// Format of a handshake proposal.
pub const PROPOSAL: &str = "accord-handshake-proposal/1";
/// Format of a handshake response.
pub const RESPONSE: &str = "accord-handshake-response/1";
/// Format of a handshake confirmation.
pub const CONFIRM: &str = "accord-handshake-confirm/1";
/// Format of an interaction request (signed by the initiator).
pub const INTERACTION: &str = "accord-interaction/1";
/// Format of an interaction countersignature (signed by the responder).
pub const COUNTERSIGN: &str = "accord-countersign/1";
/// Format of a session end notice.
pub const END: &str = "accord-session-end/1";

/// Event type of a recorded handshake.
pub const HANDSHAKE_EVENT: &str = "a2a.handshake";
/// Event type of a session start.
pub const SESSION_START_EVENT: &str = "session.start";
/// Event type of a session end.
pub const SESSION_END_EVENT: &str = "session.end";
/// Event type of an interaction with a peer that runs no Accord.
pub const EXTERNAL_EVENT: &str = "a2a.external";

/// Default tolerated clock difference between peers: 5 minutes.
pub const DEFAULT_MAX_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

/// Why a session message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Malformed message.
    #[error(transparent)]
    Message(#[from] SignedError),
    /// `agent_id` does not derive from the key the message carries.
    #[error("{format}: agent id {id} does not derive from the public key it carries")]
    KeyMismatch {
        /// The message's format.
        format: &'static str,
        /// The claimed id.
        id: String,
    },
    /// Signature invalid.
    #[error("{0}: signature does not verify under the sender's key")]
    BadSignature(&'static str),
    /// Addressed to another agent.
    #[error("{format} is addressed to {to}, not to this agent ({me})")]
    NotForMe {
        /// The message's format.
        format: &'static str,
        /// Its addressee.
        to: String,
        /// This agent.
        me: String,
    },
    /// Timestamp outside the tolerated window.
    #[error(
        "{format} is timestamped {at}, more than {window_s} s from this agent's clock ({now}); refused as stale or from the future (check both clocks)"
    )]
    Stale {
        /// The message's format.
        format: &'static str,
        /// The message's time.
        at: String,
        /// This agent's time.
        now: String,
        /// The window, in seconds.
        window_s: i64,
    },
    /// The answer does not belong to the question (nonce, hash, ids).
    #[error("{format} does not answer this agent's {what}: {detail}")]
    Mismatch {
        /// The message's format.
        format: &'static str,
        /// What it should answer.
        what: &'static str,
        /// What differs.
        detail: String,
    },
    /// A proposal or request seen before.
    #[error("{0} replayed: this agent has already answered it")]
    Replay(&'static str),
    /// Interaction out of order.
    #[error(
        "interaction order {got} from {peer} in session {session}: expected {expected} (a message was replayed, lost or reordered)"
    )]
    Order {
        /// The session.
        session: String,
        /// The initiator.
        peer: String,
        /// The order received.
        got: u64,
        /// The order expected.
        expected: u64,
    },
    /// An interaction may not use a type the protocol records itself.
    #[error(
        "event type {0:?} is reserved for Accord's own records (a2a.*, session.*, handoff.*, checkpoint*, genesis); choose another"
    )]
    ReservedType(String),
    /// No completed handshake with this peer in this session.
    #[error(
        "no handshake with {peer} in session {session}: run the handshake before stamping interactions"
    )]
    NoHandshake {
        /// The session.
        session: String,
        /// The peer.
        peer: String,
    },
    /// A handshake with this peer in this session is recorded already: a
    /// second one would reset the order counters the chain's records follow.
    #[error("a handshake with {peer} in session {session} is already recorded")]
    HandshakeRecorded {
        /// The session.
        session: String,
        /// The peer.
        peer: String,
    },
    /// This agent never started the session.
    #[error("session {0} was never started by this agent")]
    NoSession(String),
    /// The session has ended: no more interactions in it.
    #[error("session {0} has ended; open a new session")]
    Ended(String),
}

/// Whether `t` is a type Accord records on its own (handshakes, sessions,
/// handoffs, checkpoints, genesis): an interaction may not carry it, or a
/// peer could plant records an auditor reads as the agent's own.
pub fn is_reserved_type(t: &str) -> bool {
    ["a2a.", "session.", "handoff.", "checkpoint"]
        .iter()
        .any(|p| t.starts_with(p))
        || t == "genesis"
}

/// Checks that `at` is within `max_skew` microseconds of `now`.
fn check_time(
    format: &'static str,
    at: &Timestamp,
    now: &Timestamp,
    max_skew: i64,
) -> Result<(), SessionError> {
    if (at.unix_micros() - now.unix_micros()).abs() > max_skew {
        return Err(SessionError::Stale {
            format,
            at: at.to_string(),
            now: now.to_string(),
            window_s: max_skew / 1_000_000,
        });
    }
    Ok(())
}

fn addressed(obj: &SignedObject, format: &'static str, me: &AgentId) -> Result<(), SessionError> {
    let to = obj.agent_id("to")?;
    if &to != me {
        return Err(SessionError::NotForMe {
            format,
            to: to.to_string(),
            me: me.to_string(),
        });
    }
    Ok(())
}

/// The sender's key, checked against the sender's id.
fn sender_key(obj: &SignedObject, format: &'static str) -> Result<PublicKey, SessionError> {
    let from = obj.agent_id("from")?;
    let key = obj.public_key("public_key")?;
    if from.check_key(&key).is_err() {
        return Err(SessionError::KeyMismatch {
            format,
            id: from.to_string(),
        });
    }
    if !obj.verify(&key) {
        return Err(SessionError::BadSignature(format));
    }
    Ok(key)
}

/// Parameters of a proposal.
#[derive(Debug, Clone)]
pub struct ProposalParams<'a> {
    /// The session.
    pub session_id: Uuid,
    /// The responder.
    pub to: &'a AgentId,
    /// Every participant of the session (informational, signed).
    pub participants: &'a [AgentId],
    /// Capabilities the initiator offers.
    pub capabilities: &'a [String],
    /// A fresh random nonce.
    pub nonce: Uuid,
    /// Now.
    pub timestamp: Timestamp,
}

/// Step 1: the initiator's signed proposal.
pub fn propose(key: &Keypair, p: &ProposalParams<'_>) -> Result<SignedObject, SessionError> {
    let mut m = Map::new();
    m.insert("capabilities".into(), strings(p.capabilities));
    m.insert("format".into(), PROPOSAL.into());
    m.insert("from".into(), key.agent_id().as_str().into());
    m.insert("nonce".into(), p.nonce.to_string().into());
    m.insert(
        "participants".into(),
        Value::Array(p.participants.iter().map(|a| a.as_str().into()).collect()),
    );
    m.insert("public_key".into(), key.public().to_b64().into());
    m.insert("session_id".into(), p.session_id.to_string().into());
    m.insert("timestamp".into(), p.timestamp.as_str().into());
    m.insert("to".into(), p.to.as_str().into());
    Ok(SignedObject::try_sign(m, key)?)
}

/// A proposal that passed [`check_proposal`].
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The signed message.
    pub message: SignedObject,
    /// The session.
    pub session_id: Uuid,
    /// The initiator.
    pub from: AgentId,
    /// The initiator's key.
    pub key: PublicKey,
    /// The nonce to echo.
    pub nonce: Uuid,
    /// Offered capabilities.
    pub capabilities: Vec<String>,
    /// Participants named by the initiator.
    pub participants: Vec<AgentId>,
}

/// Step 2a: the responder checks a proposal: signature under the key it
/// carries, id derived from that key, addressed to `me`, time within
/// `max_skew`. Replay (a nonce seen before) is the caller's check, since
/// only it keeps state.
pub fn check_proposal(
    text: &[u8],
    me: &AgentId,
    now: &Timestamp,
    max_skew: i64,
) -> Result<Proposal, SessionError> {
    let message = SignedObject::parse(text, PROPOSAL)?;
    let key = sender_key(&message, PROPOSAL)?;
    addressed(&message, PROPOSAL, me)?;
    check_time(PROPOSAL, &message.timestamp("timestamp")?, now, max_skew)?;
    let participants = message
        .strings("participants")?
        .iter()
        .map(|s| AgentId::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SignedError::Member {
            format: PROPOSAL.into(),
            member: "participants",
            problem: e.to_string(),
        })?;
    Ok(Proposal {
        session_id: message.uuid("session_id")?,
        from: message.agent_id("from")?,
        nonce: message.uuid("nonce")?,
        capabilities: message.strings("capabilities")?,
        participants,
        key,
        message,
    })
}

/// Step 2b: the responder's signed response, agreeing to the capabilities
/// both sides have (in the proposal's order).
pub fn respond(
    key: &Keypair,
    proposal: &Proposal,
    offered: &[String],
    timestamp: &Timestamp,
) -> Result<SignedObject, SessionError> {
    let agreed: Vec<String> = proposal
        .capabilities
        .iter()
        .filter(|c| offered.contains(c))
        .cloned()
        .collect();
    let mut m = Map::new();
    m.insert("capabilities".into(), strings(&agreed));
    m.insert("format".into(), RESPONSE.into());
    m.insert("from".into(), key.agent_id().as_str().into());
    m.insert("nonce".into(), proposal.nonce.to_string().into());
    m.insert(
        "proposal_hash".into(),
        proposal.message.hash().to_hex().into(),
    );
    m.insert("public_key".into(), key.public().to_b64().into());
    m.insert("session_id".into(), proposal.session_id.to_string().into());
    m.insert("timestamp".into(), timestamp.as_str().into());
    m.insert("to".into(), proposal.from.as_str().into());
    Ok(SignedObject::try_sign(m, key)?)
}

/// A response that passed [`check_response`].
#[derive(Debug, Clone)]
pub struct Response {
    /// The signed message.
    pub message: SignedObject,
    /// The responder's key.
    pub key: PublicKey,
    /// Agreed capabilities.
    pub capabilities: Vec<String>,
}

/// Step 3a: the initiator checks the response to its `proposal`: signed by
/// the agent it proposed to (key derives to that id), nonce echoed,
/// `proposal_hash` binds this very proposal, same session, no capability
/// it did not offer, time within `max_skew`.
pub fn check_response(
    text: &[u8],
    proposal: &SignedObject,
    now: &Timestamp,
    max_skew: i64,
) -> Result<Response, SessionError> {
    let message = SignedObject::parse(text, RESPONSE)?;
    let key = sender_key(&message, RESPONSE)?;
    let mismatch = |what: &'static str, detail: String| SessionError::Mismatch {
        format: RESPONSE,
        what,
        detail,
    };
    let me = proposal.agent_id("from")?;
    addressed(&message, RESPONSE, &me)?;
    let from = message.agent_id("from")?;
    if from != proposal.agent_id("to")? {
        return Err(mismatch(
            "proposal",
            format!("it comes from {from}, the proposal went to another agent"),
        ));
    }
    if message.str("nonce")? != proposal.str("nonce")? {
        return Err(mismatch("proposal", "the nonce is not the one sent".into()));
    }
    if message.hash_member("proposal_hash")? != proposal.hash() {
        return Err(mismatch(
            "proposal",
            "proposal_hash names another proposal".into(),
        ));
    }
    if message.str("session_id")? != proposal.str("session_id")? {
        return Err(mismatch("proposal", "another session id".into()));
    }
    let offered = proposal.strings("capabilities")?;
    let capabilities = message.strings("capabilities")?;
    if let Some(c) = capabilities.iter().find(|c| !offered.contains(c)) {
        return Err(mismatch(
            "proposal",
            format!("capability {c:?} was never offered"),
        ));
    }
    check_time(RESPONSE, &message.timestamp("timestamp")?, now, max_skew)?;
    Ok(Response {
        message,
        key,
        capabilities,
    })
}

/// Step 3b: the initiator's confirmation, binding the response.
pub fn confirm(
    key: &Keypair,
    response: &Response,
    timestamp: &Timestamp,
) -> Result<SignedObject, SessionError> {
    let mut m = Map::new();
    m.insert("format".into(), CONFIRM.into());
    m.insert("from".into(), key.agent_id().as_str().into());
    m.insert("public_key".into(), key.public().to_b64().into());
    m.insert(
        "response_hash".into(),
        response.message.hash().to_hex().into(),
    );
    if let Ok(s) = response.message.str("session_id") {
        m.insert("session_id".into(), s.into());
    }
    m.insert("timestamp".into(), timestamp.as_str().into());
    m.insert("to".into(), response.key.agent_id().as_str().into());
    Ok(SignedObject::try_sign(m, key)?)
}

/// Step 4a: the responder checks the confirmation of its `response`, which
/// must come from the proposal's initiator (same key).
pub fn check_confirm(
    text: &[u8],
    proposal: &Proposal,
    response: &SignedObject,
    now: &Timestamp,
    max_skew: i64,
) -> Result<SignedObject, SessionError> {
    let message = SignedObject::parse(text, CONFIRM)?;
    let key = sender_key(&message, CONFIRM)?;
    let mismatch = |detail: &str| SessionError::Mismatch {
        format: CONFIRM,
        what: "response",
        detail: detail.to_owned(),
    };
    if key != proposal.key {
        return Err(mismatch("signed by another agent than the proposal"));
    }
    addressed(&message, CONFIRM, &response.agent_id("from")?)?;
    if message.hash_member("response_hash")? != response.hash() {
        return Err(mismatch("response_hash names another response"));
    }
    if message.uuid("session_id")? != proposal.session_id {
        return Err(mismatch("another session id"));
    }
    check_time(CONFIRM, &message.timestamp("timestamp")?, now, max_skew)?;
    Ok(message)
}

/// Which side of an exchange an agent was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Proposed the handshake / started the interaction.
    Initiator,
    /// Answered it.
    Responder,
}

impl Role {
    /// `"initiator"` or `"responder"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
        }
    }
}

/// The payload of an `a2a.handshake` event. The initiator's holds the
/// proposal and the response; the responder's also the confirmation.
pub fn handshake_payload(
    role: Role,
    peer: &PublicKey,
    proposal: &SignedObject,
    response: &SignedObject,
    confirm: Option<&SignedObject>,
    capabilities: &[String],
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("capabilities".into(), strings(capabilities));
    if let Some(c) = confirm {
        m.insert("confirm".into(), c.to_value());
    }
    m.insert("peer".into(), peer.agent_id().as_str().into());
    m.insert("peer_public_key".into(), peer.to_b64().into());
    let peer_sig = match (role, confirm) {
        (Role::Initiator, _) => response.signature_b64(),
        (Role::Responder, Some(c)) => c.signature_b64(),
        (Role::Responder, None) => proposal.signature_b64(),
    };
    m.insert("peer_signature".into(), peer_sig.into());
    m.insert("proposal".into(), proposal.to_value());
    m.insert("response".into(), response.to_value());
    m.insert("role".into(), role.as_str().into());
    if let Ok(s) = proposal.str("session_id") {
        m.insert("session_id".into(), s.into());
    }
    m
}

/// What identifies one interaction; both chains record its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The session.
    pub session_id: Uuid,
    /// Who started it.
    pub initiator: AgentId,
    /// Who answered.
    pub responder: AgentId,
    /// The event type both chains record.
    pub event_type: String,
    /// SHA-256 of the canonical recorded payload (`data`).
    pub payload_hash: Hash32,
    /// 1, 2, ... per (session, initiator, responder).
    pub order: u64,
}

impl Descriptor {
    fn members(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("format".into(), INTERACTION.into());
        m.insert("initiator".into(), self.initiator.as_str().into());
        m.insert("order".into(), self.order.into());
        m.insert("payload_hash".into(), self.payload_hash.to_hex().into());
        m.insert("responder".into(), self.responder.as_str().into());
        m.insert("session_id".into(), self.session_id.to_string().into());
        m.insert("type".into(), self.event_type.as_str().into());
        m
    }

    /// `interaction_hash`: SHA-256 of the canonical descriptor members
    /// (`format`, `initiator`, `order`, `payload_hash`, `responder`,
    /// `session_id`, `type`).
    pub fn hash(&self) -> Hash32 {
        Hash32::of(&jcs::to_vec(&Value::Object(self.members())))
    }

    /// The initiator's signed request: the descriptor plus time.
    pub fn request(
        &self,
        key: &Keypair,
        timestamp: &Timestamp,
    ) -> Result<SignedObject, SessionError> {
        let mut m = self.members();
        m.insert("timestamp".into(), timestamp.as_str().into());
        Ok(SignedObject::try_sign(m, key)?)
    }

    /// Reads the descriptor back from a request.
    pub fn of_request(req: &SignedObject) -> Result<Self, SessionError> {
        Ok(Descriptor {
            session_id: req.uuid("session_id")?,
            initiator: req.agent_id("initiator")?,
            responder: req.agent_id("responder")?,
            event_type: req.str("type")?.to_owned(),
            payload_hash: req.hash_member("payload_hash")?,
            order: req.u64("order")?,
        })
    }
}

/// SHA-256 of the canonical form of a payload.
pub fn payload_hash(data: &Map<String, Value>) -> Hash32 {
    let mut out = Vec::new();
    jcs::write_object(&mut out, data);
    Hash32::of(&out)
}

/// A request that passed [`check_request`].
#[derive(Debug, Clone)]
pub struct Request {
    /// The signed message.
    pub message: SignedObject,
    /// What it describes.
    pub descriptor: Descriptor,
}

/// The responder checks an interaction request: signed by `initiator_key`
/// (learnt in the handshake), addressed to `me`, `data` is what
/// `payload_hash` names, order is `expected_order`, time within skew.
pub fn check_request(
    text: &[u8],
    data: &Map<String, Value>,
    me: &AgentId,
    initiator_key: &PublicKey,
    expected_order: u64,
    now: &Timestamp,
    max_skew: i64,
) -> Result<Request, SessionError> {
    let message = SignedObject::parse(text, INTERACTION)?;
    let descriptor = Descriptor::of_request(&message)?;
    if is_reserved_type(&descriptor.event_type) {
        return Err(SessionError::ReservedType(descriptor.event_type));
    }
    if descriptor.initiator != initiator_key.agent_id() || !message.verify(initiator_key) {
        return Err(SessionError::BadSignature(INTERACTION));
    }
    if &descriptor.responder != me {
        return Err(SessionError::NotForMe {
            format: INTERACTION,
            to: descriptor.responder.to_string(),
            me: me.to_string(),
        });
    }
    if payload_hash(data) != descriptor.payload_hash {
        return Err(SessionError::Mismatch {
            format: INTERACTION,
            what: "payload",
            detail: "payload_hash does not match the data sent".into(),
        });
    }
    if descriptor.order != expected_order {
        return Err(SessionError::Order {
            session: descriptor.session_id.to_string(),
            peer: descriptor.initiator.to_string(),
            got: descriptor.order,
            expected: expected_order,
        });
    }
    check_time(INTERACTION, &message.timestamp("timestamp")?, now, max_skew)?;
    Ok(Request {
        message,
        descriptor,
    })
}

/// The payload of a co-signed interaction event: the caller's `data` and
/// an `interaction` member tying it to the peer.
pub fn interaction_payload(
    role: Role,
    descriptor: &Descriptor,
    request: &SignedObject,
    countersign: Option<&SignedObject>,
    data: Map<String, Value>,
) -> Map<String, Value> {
    let peer = match role {
        Role::Initiator => &descriptor.responder,
        Role::Responder => &descriptor.initiator,
    };
    let mut i = Map::new();
    if let Some(c) = countersign {
        i.insert("countersign".into(), c.to_value());
    }
    i.insert("interaction_hash".into(), descriptor.hash().to_hex().into());
    i.insert("order".into(), descriptor.order.into());
    i.insert("peer".into(), peer.as_str().into());
    let peer_sig = match (role, countersign) {
        (Role::Responder, _) => request.signature_b64(),
        (Role::Initiator, Some(c)) => c.signature_b64(),
        (Role::Initiator, None) => String::new(),
    };
    i.insert("peer_signature".into(), peer_sig.into());
    i.insert("request".into(), request.to_value());
    i.insert("role".into(), role.as_str().into());
    i.insert(
        "session_id".into(),
        descriptor.session_id.to_string().into(),
    );
    let mut m = Map::new();
    m.insert("data".into(), Value::Object(data));
    m.insert("interaction".into(), Value::Object(i));
    m
}

/// The responder's countersignature, naming the event it recorded.
pub fn countersign(
    key: &Keypair,
    request: &Request,
    event_seq: u64,
    event_hash: &Hash32,
    timestamp: &Timestamp,
) -> Result<SignedObject, SessionError> {
    let mut m = Map::new();
    m.insert("event_hash".into(), event_hash.to_hex().into());
    m.insert("event_seq".into(), event_seq.into());
    m.insert("format".into(), COUNTERSIGN.into());
    m.insert(
        "initiator".into(),
        request.descriptor.initiator.as_str().into(),
    );
    m.insert(
        "interaction_hash".into(),
        request.descriptor.hash().to_hex().into(),
    );
    m.insert(
        "request_hash".into(),
        request.message.hash().to_hex().into(),
    );
    m.insert("responder".into(), key.agent_id().as_str().into());
    m.insert("timestamp".into(), timestamp.as_str().into());
    Ok(SignedObject::try_sign(m, key)?)
}

/// The initiator checks a countersignature of its `request`, made by the
/// responder's `key`.
pub fn check_countersign(
    text: &[u8],
    request: &SignedObject,
    descriptor: &Descriptor,
    key: &PublicKey,
) -> Result<SignedObject, SessionError> {
    let message = SignedObject::parse(text, COUNTERSIGN)?;
    if key.agent_id() != descriptor.responder || !message.verify(key) {
        return Err(SessionError::BadSignature(COUNTERSIGN));
    }
    let mismatch = |detail: &str| SessionError::Mismatch {
        format: COUNTERSIGN,
        what: "request",
        detail: detail.to_owned(),
    };
    if message.hash_member("interaction_hash")? != descriptor.hash() {
        return Err(mismatch("interaction_hash names another interaction"));
    }
    if message.hash_member("request_hash")? != request.hash() {
        return Err(mismatch("request_hash names another request"));
    }
    if message.agent_id("responder")? != descriptor.responder
        || message.agent_id("initiator")? != descriptor.initiator
    {
        return Err(mismatch("other agents"));
    }
    message.u64("event_seq")?;
    message.hash_member("event_hash")?;
    Ok(message)
}

/// A signed notice that `key`'s agent ends `session_id` with `to`.
pub fn end_notice(
    key: &Keypair,
    session_id: Uuid,
    to: &AgentId,
    timestamp: &Timestamp,
) -> Result<SignedObject, SessionError> {
    let mut m = Map::new();
    m.insert("format".into(), END.into());
    m.insert("from".into(), key.agent_id().as_str().into());
    m.insert("session_id".into(), session_id.to_string().into());
    m.insert("timestamp".into(), timestamp.as_str().into());
    m.insert("to".into(), to.as_str().into());
    Ok(SignedObject::try_sign(m, key)?)
}

/// Checks an end notice from `peer_key` addressed to `me`.
pub fn check_end(
    text: &[u8],
    me: &AgentId,
    peer_key: &PublicKey,
    now: &Timestamp,
    max_skew: i64,
) -> Result<(SignedObject, Uuid), SessionError> {
    let message = SignedObject::parse(text, END)?;
    if message.agent_id("from")? != peer_key.agent_id() || !message.verify(peer_key) {
        return Err(SessionError::BadSignature(END));
    }
    addressed(&message, END, me)?;
    check_time(END, &message.timestamp("timestamp")?, now, max_skew)?;
    let sid = message.uuid("session_id")?;
    Ok((message, sid))
}

/// Seed 000's payload hashing: every value whose key does not end in
/// `_hash` or `_id` is replaced by the hex SHA-256 of its content (the
/// UTF-8 bytes of a string, the canonical JSON of anything else), so raw
/// content never enters a chain unless the caller opts out. Keys ending in
/// `_hash`/`_id` are kept as given: they are already references.
pub fn auto_hash(data: Map<String, Value>) -> Map<String, Value> {
    data.into_iter()
        .map(|(k, v)| {
            if k.ends_with("_hash") || k.ends_with("_id") {
                return (k, v);
            }
            let h = match &v {
                Value::String(s) => Hash32::of(s.as_bytes()),
                other => Hash32::of(&jcs::to_vec(other)),
            };
            (k, Value::String(h.to_hex()))
        })
        .collect()
}

/// A record of an interaction with a peer that runs no Accord (so nothing
/// is co-signed): marked `external`, data hashed as in [`auto_hash`].
pub fn external_payload(peer_identifier: &str, data: Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("data".into(), Value::Object(auto_hash(data)));
    m.insert("external".into(), true.into());
    m.insert("peer_identifier".into(), peer_identifier.into());
    m.insert("unilateral".into(), true.into());
    m
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| s.as_str().into()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Keypair {
        Keypair::from_seed(&[b; 32]).expect("seed")
    }
    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_790_000_000_000_000 + s * 1_000_000).expect("time")
    }
    const SKEW: i64 = DEFAULT_MAX_SKEW_MICROS;

    fn proposal(i: &Keypair, r: &Keypair, nonce: u128, at: i64) -> SignedObject {
        propose(
            i,
            &ProposalParams {
                session_id: Uuid::from_u128(1),
                to: r.agent_id(),
                participants: &[i.agent_id().clone(), r.agent_id().clone()],
                capabilities: &["delegate".into(), "review".into()],
                nonce: Uuid::from_u128(nonce),
                timestamp: t(at),
            },
        )
        .unwrap()
    }

    #[test]
    fn handshake_runs_and_both_sides_hold_the_peer_signature() {
        let (i, r) = (key(1), key(2));
        let p = proposal(&i, &r, 9, 0);
        let checked = check_proposal(p.canonical(), r.agent_id(), &t(1), SKEW).expect("ok");
        let resp = respond(&r, &checked, &["review".into()], &t(1)).unwrap();
        let got = check_response(resp.canonical(), &p, &t(2), SKEW).expect("ok");
        assert_eq!(got.capabilities, vec!["review".to_owned()]);
        let c = confirm(&i, &got, &t(2)).unwrap();
        check_confirm(c.canonical(), &checked, &resp, &t(3), SKEW).expect("ok");
        let ev = handshake_payload(Role::Responder, i.public(), &p, &resp, Some(&c), &[]);
        assert_eq!(ev["peer_signature"], c.signature_b64().as_str());
    }

    #[test]
    fn handshake_refusals() {
        let (i, r, x) = (key(1), key(2), key(3));
        let p = proposal(&i, &r, 9, 0);
        // Addressed to someone else.
        assert!(matches!(
            check_proposal(p.canonical(), x.agent_id(), &t(0), SKEW),
            Err(SessionError::NotForMe { .. })
        ));
        // Stale.
        assert!(matches!(
            check_proposal(p.canonical(), r.agent_id(), &t(400), SKEW),
            Err(SessionError::Stale { .. })
        ));
        // Key that does not derive the id.
        let text = String::from_utf8(p.canonical().to_vec()).expect("utf8");
        let forged = text.replace(&i.public().to_b64(), &x.public().to_b64());
        assert!(matches!(
            check_proposal(forged.as_bytes(), r.agent_id(), &t(0), SKEW),
            Err(SessionError::KeyMismatch { .. })
        ));
        // Response with the wrong nonce, or to another proposal.
        let checked = check_proposal(p.canonical(), r.agent_id(), &t(0), SKEW).expect("ok");
        let other = proposal(&i, &r, 10, 0);
        let other_checked =
            check_proposal(other.canonical(), r.agent_id(), &t(0), SKEW).expect("ok");
        let wrong = respond(&r, &other_checked, &[], &t(0)).unwrap();
        assert!(matches!(
            check_response(wrong.canonical(), &p, &t(0), SKEW),
            Err(SessionError::Mismatch { .. })
        ));
        // A response signed by a third agent.
        let stranger = respond(&x, &checked, &[], &t(0)).unwrap();
        assert!(check_response(stranger.canonical(), &p, &t(0), SKEW).is_err());
    }

    #[test]
    fn interaction_request_checks() {
        let (i, r) = (key(1), key(2));
        let mut data = Map::new();
        data.insert("task".into(), "analyse".into());
        let data = auto_hash(data);
        let d = Descriptor {
            session_id: Uuid::from_u128(1),
            initiator: i.agent_id().clone(),
            responder: r.agent_id().clone(),
            event_type: "task.delegation".into(),
            payload_hash: payload_hash(&data),
            order: 1,
        };
        let req = d.request(&i, &t(0)).unwrap();
        let ok = check_request(
            req.canonical(),
            &data,
            r.agent_id(),
            i.public(),
            1,
            &t(0),
            SKEW,
        )
        .expect("ok");
        assert_eq!(ok.descriptor.hash(), d.hash());
        assert!(matches!(
            check_request(
                req.canonical(),
                &data,
                r.agent_id(),
                i.public(),
                2,
                &t(0),
                SKEW
            ),
            Err(SessionError::Order { .. })
        ));
        let mut other = data.clone();
        other.insert("x".into(), 1.into());
        assert!(matches!(
            check_request(
                req.canonical(),
                &other,
                r.agent_id(),
                i.public(),
                1,
                &t(0),
                SKEW
            ),
            Err(SessionError::Mismatch { .. })
        ));
        let cs = countersign(&r, &ok, 4, &Hash32::ZERO, &t(1)).unwrap();
        check_countersign(cs.canonical(), &req, &d, r.public()).expect("ok");
        assert!(check_countersign(cs.canonical(), &req, &d, i.public()).is_err());
    }

    #[test]
    fn auto_hash_keeps_references_and_hashes_content() {
        let mut data = Map::new();
        data.insert("task".into(), "analyse".into());
        data.insert("result_hash".into(), "abc".into());
        data.insert("task_id".into(), "T-1".into());
        data.insert("n".into(), 3.into());
        let h = auto_hash(data);
        assert_eq!(h["task"], Hash32::of(b"analyse").to_hex().as_str());
        assert_eq!(h["result_hash"], "abc");
        assert_eq!(h["task_id"], "T-1");
        assert_eq!(h["n"], Hash32::of(b"3").to_hex().as_str());
    }
}
