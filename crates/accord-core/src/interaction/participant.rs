//! One agent's side of co-signed sessions as a state machine with no I/O:
//! the handshake, interactions and their countersignatures, session end.
//!
//! [`Participant`] takes what arrives (a [`Wire`] message, the caller's
//! request), the time, a nonce and the agent's key, and returns a [`Step`]:
//! the records to append atomically (a [`Commit`]) and what to do once
//! they are durable ([`Participant::complete`]: the message to send, the
//! stamped interaction). Persisted session state (peer keys, interaction
//! order, counts) is read through a [`Ledger`] the driver implements over
//! its store; [`Commit::apply`] runs under the store's write lock with the
//! current values of [`Commit::keys`], so a decision taken from them (an
//! order, a replay check) cannot race another writer of the same chain.
//! `accord_store::participant` is the driver over any event store; a test
//! can drive two machines with a map as the ledger and a vector as the
//! chain.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::chain::SideWrite;
use crate::event::{SignedEvent, check_type};
use crate::hash::Hash32;
use crate::identity::{AgentId, Keypair, PublicKey};
use crate::jcs;
use crate::session::{
    self, DEFAULT_MAX_SKEW_MICROS, Descriptor, HANDSHAKE_EVENT, Proposal, ProposalParams, Request,
    Role, SESSION_END_EVENT, SESSION_START_EVENT, SessionError,
};
use crate::signed::SignedObject;
use crate::timestamp::Timestamp;
use crate::{Map, Uuid, Value};

/// Largest wire message, in bytes of JSON text.
pub const MAX_WIRE_BYTES: usize = 1024 * 1024;

/// Largest interaction `data`, in bytes of canonical JSON: it is signed
/// into both chains, so a peer must not be able to make them grow at will.
pub const MAX_DATA_BYTES: usize = 64 * 1024;

/// Most handshakes answered and awaiting confirmation at once; older ones
/// expire after the clock window.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// A failure of the driver's storage, as the machine sees it: the driver
/// puts its own error inside and can take it back out with
/// [`LedgerError::into_inner`].
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct LedgerError(Box<dyn std::error::Error + Send + Sync>);

impl LedgerError {
    /// Wraps the driver's error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        LedgerError(Box::new(e))
    }

    /// The driver's error.
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync> {
        self.0
    }
}

/// What the machine reads of the agent's persisted state: values kept with
/// the chain (written by [`Commit`]s) and the chain's own events.
pub trait Ledger {
    /// The state value at `key`, `None` when absent.
    fn state(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError>;
    /// The agent's event at `seq`, `None` when the chain is shorter.
    fn event(&self, seq: u64) -> Result<Option<SignedEvent>, LedgerError>;
}

/// Why a session step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParticipantError {
    /// The peer's message, or what it asks, was refused by the protocol.
    #[error(transparent)]
    Protocol(#[from] SessionError),
    /// The driver's storage failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Persisted state contradicts itself or the chain.
    #[error("session state is corrupt: {0}")]
    Corrupt(String),
    /// A message arrived that does not fit the exchange.
    #[error("unexpected message: {0}")]
    Unexpected(String),
    /// The caller's request is invalid (e.g. an event type).
    #[error("{0}")]
    Input(String),
    /// The peer is not on this participant's allow-list, or too many
    /// handshakes are pending.
    #[error("refused: {0}")]
    Refused(String),
}

/// A message between participants: one JSON object per line,
/// `{"kind": ..., "message": {signed object}, "data": {...}}`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Wire {
    /// Handshake step 1.
    Proposal(SignedObject),
    /// Handshake step 2.
    Response(SignedObject),
    /// Handshake step 3.
    Confirm(SignedObject),
    /// An interaction request with the data it hashes.
    Interaction {
        /// The initiator's signed request.
        request: SignedObject,
        /// The payload, as recorded.
        data: Map<String, Value>,
    },
    /// The responder's countersignature.
    Countersign(SignedObject),
    /// A session end notice.
    End(SignedObject),
    /// Done; nothing to return.
    Ack,
    /// The message was refused.
    Error(String),
}

impl Wire {
    /// The JSON line (no newline).
    pub fn to_line(&self) -> Vec<u8> {
        let mut m = Map::new();
        let (kind, message) = match self {
            Wire::Proposal(o) => ("proposal", Some(o)),
            Wire::Response(o) => ("response", Some(o)),
            Wire::Confirm(o) => ("confirm", Some(o)),
            Wire::Interaction { request, data } => {
                m.insert("data".into(), Value::Object(data.clone()));
                ("interaction", Some(request))
            }
            Wire::Countersign(o) => ("countersign", Some(o)),
            Wire::End(o) => ("end", Some(o)),
            Wire::Ack => ("ack", None),
            Wire::Error(e) => {
                m.insert("error".into(), e.as_str().into());
                ("error", None)
            }
        };
        m.insert("kind".into(), kind.into());
        if let Some(o) = message {
            m.insert("message".into(), o.to_value());
        }
        jcs::to_vec(&Value::Object(m))
    }

    /// Parses a line; every problem is an error naming it.
    pub fn parse(line: &[u8]) -> Result<Wire, String> {
        if line.len() > MAX_WIRE_BYTES {
            return Err(format!(
                "message of {} bytes exceeds the {MAX_WIRE_BYTES}-byte limit",
                line.len()
            ));
        }
        let Value::Object(mut m) = jcs::parse(line).map_err(|e| format!("not JSON: {e}"))? else {
            return Err("not a JSON object".into());
        };
        let kind = m
            .get("kind")
            .and_then(Value::as_str)
            .ok_or("no \"kind\"")?
            .to_owned();
        let msg = |m: &mut Map<String, Value>, format: &'static str| {
            let v = m.remove("message").ok_or("no \"message\"")?;
            SignedObject::from_value(v, format).map_err(|e| e.to_string())
        };
        Ok(match kind.as_str() {
            "proposal" => Wire::Proposal(msg(&mut m, session::PROPOSAL)?),
            "response" => Wire::Response(msg(&mut m, session::RESPONSE)?),
            "confirm" => Wire::Confirm(msg(&mut m, session::CONFIRM)?),
            "interaction" => {
                let request = msg(&mut m, session::INTERACTION)?;
                let Some(Value::Object(data)) = m.remove("data") else {
                    return Err("interaction without a \"data\" object".into());
                };
                Wire::Interaction { request, data }
            }
            "countersign" => Wire::Countersign(msg(&mut m, session::COUNTERSIGN)?),
            "end" => Wire::End(msg(&mut m, session::END)?),
            "ack" => Wire::Ack,
            "error" => Wire::Error(
                m.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unspecified")
                    .to_owned(),
            ),
            other => return Err(format!("unknown kind {other:?}")),
        })
    }
}

/// What a participant keeps about one peer in one session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PeerState {
    public_key: String,
    /// Last order this agent initiated towards the peer.
    sent: u64,
    /// Last order received from the peer.
    received: u64,
    /// Hash of the last request accepted from the peer and the seq of the
    /// event recorded for it: a retried request (its countersignature was
    /// lost) gets the same countersignature again instead of a refusal.
    #[serde(default)]
    last_request: Option<(String, u64)>,
}

/// What a participant keeps about one session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionState {
    started_micros: i64,
    participants: Vec<String>,
    interactions: u64,
    ended: bool,
}

/// State key of a session.
pub fn session_key(sid: &Uuid) -> String {
    format!("session/{sid}")
}

/// State key of a peer in a session.
pub fn peer_key(sid: &Uuid, peer: &AgentId) -> String {
    format!("session/{sid}/peer/{peer}")
}

fn seen_key(proposal_hash: &Hash32) -> String {
    format!("session/seen/{proposal_hash}")
}

fn confirmed_key(response_hash: &Hash32) -> String {
    format!("session/confirmed/{response_hash}")
}

fn decode<T: for<'de> Deserialize<'de>>(
    b: Option<&Vec<u8>>,
    key: &str,
) -> Result<Option<T>, ParticipantError> {
    b.map(|b| {
        serde_json::from_slice(b)
            .map_err(|e| ParticipantError::Corrupt(format!("state entry {key:?}: {e}")))
    })
    .transpose()
}

fn encode<T: Serialize>(key: &str, v: &T) -> SideWrite {
    SideWrite::Set {
        key: key.to_owned(),
        // Both state types are plain structs of strings and integers, which
        // serde_json always encodes.
        value: serde_json::to_vec(v).unwrap_or_default(),
    }
}

/// The result of a co-signed interaction, seen from the initiator.
#[derive(Debug, Clone)]
pub struct Stamped {
    /// The interaction hash both chains record.
    pub interaction_hash: Hash32,
    /// The initiator's event.
    pub event: SignedEvent,
    /// The responder's countersignature (names its event).
    pub countersign: SignedObject,
}

/// What one append of a step holds: events (type, payload) in order, and
/// the state writes that land in the same transaction.
#[derive(Debug, Clone)]
pub struct Record {
    /// The events to sign and append, in order.
    pub events: Vec<(String, Map<String, Value>)>,
    /// The state writes.
    pub writes: Vec<SideWrite>,
}

/// Records a step asks its driver to append atomically: read the values of
/// [`Commit::keys`] under the store's write lock, call [`Commit::apply`]
/// with them, and append what it returns in one transaction.
#[derive(Debug, Clone)]
#[must_use]
pub struct Commit {
    keys: Vec<String>,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Open {
        sid: Uuid,
        participants: Vec<String>,
        started: i64,
    },
    Handshake {
        sid: Uuid,
        peer: PublicKey,
        payload: Map<String, Value>,
        participants: Vec<String>,
        started: i64,
        replay_guard: bool,
    },
    /// The responder records a request it checked.
    Answer {
        descriptor: Descriptor,
        request_hash: Hash32,
        payload: Map<String, Value>,
    },
    /// The initiator records a countersigned interaction.
    Countersigned {
        descriptor: Descriptor,
        payload: Map<String, Value>,
    },
    End {
        sid: Uuid,
        at: i64,
    },
}

impl Commit {
    /// The state keys [`Commit::apply`] needs, in the order it takes them.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The interaction this commit records, when it records one (the
    /// initiator's countersigned event or the responder's answer).
    pub fn interaction(&self) -> Option<&Descriptor> {
        match &self.op {
            Op::Answer { descriptor, .. } | Op::Countersigned { descriptor, .. } => {
                Some(descriptor)
            }
            _ => None,
        }
    }

    /// The events and state writes to append, given the current values of
    /// [`Commit::keys`] and the seq the first event will get. `Ok(None)`:
    /// nothing needs recording (the session is already open or ended).
    pub fn apply(
        &self,
        next_seq: u64,
        state: &[Option<Vec<u8>>],
    ) -> Result<Option<Record>, ParticipantError> {
        let at = |i: usize| state.get(i).and_then(Option::as_ref);
        match &self.op {
            Op::Open {
                sid,
                participants,
                started,
            } => {
                if at(0).is_some() {
                    return Ok(None);
                }
                Ok(Some(Record {
                    events: vec![(
                        SESSION_START_EVENT.to_owned(),
                        start_payload(sid, participants),
                    )],
                    writes: vec![encode(&self.keys[0], &new_session(participants, *started))],
                }))
            }
            Op::Handshake {
                sid,
                peer,
                payload,
                participants,
                started,
                replay_guard,
            } => {
                if *replay_guard && at(2).is_some() {
                    return Err(SessionError::Replay(session::PROPOSAL).into());
                }
                if at(1).is_some() {
                    // One handshake per peer and session: a second one would
                    // reset the order counters the chain's records follow.
                    return Err(SessionError::HandshakeRecorded {
                        session: sid.to_string(),
                        peer: peer.agent_id().to_string(),
                    }
                    .into());
                }
                let mut events = Vec::new();
                let mut writes = Vec::new();
                if at(0).is_none() {
                    events.push((
                        SESSION_START_EVENT.to_owned(),
                        start_payload(sid, participants),
                    ));
                    writes.push(encode(&self.keys[0], &new_session(participants, *started)));
                }
                events.push((HANDSHAKE_EVENT.to_owned(), payload.clone()));
                writes.push(encode(
                    &self.keys[1],
                    &PeerState {
                        public_key: peer.to_b64(),
                        sent: 0,
                        received: 0,
                        last_request: None,
                    },
                ));
                for k in self.keys.iter().skip(2) {
                    writes.push(SideWrite::Set {
                        key: k.clone(),
                        value: b"1".to_vec(),
                    });
                }
                Ok(Some(Record { events, writes }))
            }
            Op::Answer {
                descriptor: d,
                request_hash,
                payload,
            } => {
                let (mut peer, mut sess) = self.peer_and_session(d, &d.initiator, state)?;
                let expected = peer.received + 1;
                if d.order != expected {
                    return Err(SessionError::Order {
                        session: d.session_id.to_string(),
                        peer: d.initiator.to_string(),
                        got: d.order,
                        expected,
                    }
                    .into());
                }
                peer.received = d.order;
                peer.last_request = Some((request_hash.to_hex(), next_seq));
                sess.interactions += 1;
                Ok(Some(Record {
                    events: vec![(d.event_type.clone(), payload.clone())],
                    writes: vec![encode(&self.keys[0], &peer), encode(&self.keys[1], &sess)],
                }))
            }
            Op::Countersigned {
                descriptor: d,
                payload,
            } => {
                let (mut peer, mut sess) = self.peer_and_session(d, &d.responder, state)?;
                if d.order != peer.sent + 1 {
                    return Err(ParticipantError::Unexpected(format!(
                        "interaction order {} was already used with {}",
                        d.order, d.responder
                    )));
                }
                peer.sent = d.order;
                sess.interactions += 1;
                Ok(Some(Record {
                    events: vec![(d.event_type.clone(), payload.clone())],
                    writes: vec![encode(&self.keys[0], &peer), encode(&self.keys[1], &sess)],
                }))
            }
            Op::End { sid, at: now } => {
                let mut sess: SessionState = decode(at(0), &self.keys[0])?
                    .ok_or_else(|| SessionError::NoSession(sid.to_string()))?;
                if sess.ended {
                    return Ok(None);
                }
                sess.ended = true;
                let mut p = Map::new();
                p.insert(
                    "duration_ms".into(),
                    ((now - sess.started_micros).max(0) / 1000).into(),
                );
                p.insert("interactions".into(), sess.interactions.into());
                p.insert(
                    "participants".into(),
                    Value::Array(
                        sess.participants
                            .iter()
                            .map(|s| s.as_str().into())
                            .collect(),
                    ),
                );
                p.insert("session_id".into(), sid.to_string().into());
                Ok(Some(Record {
                    events: vec![(SESSION_END_EVENT.to_owned(), p)],
                    writes: vec![encode(&self.keys[0], &sess)],
                }))
            }
        }
    }

    /// The peer and session states an interaction record updates: keys 0
    /// and 1, both present, the session not ended.
    fn peer_and_session(
        &self,
        d: &Descriptor,
        peer: &AgentId,
        state: &[Option<Vec<u8>>],
    ) -> Result<(PeerState, SessionState), ParticipantError> {
        let at = |i: usize| state.get(i).and_then(Option::as_ref);
        let peer_state: PeerState =
            decode(at(0), &self.keys[0])?.ok_or_else(|| SessionError::NoHandshake {
                session: d.session_id.to_string(),
                peer: peer.to_string(),
            })?;
        let sess: SessionState = decode(at(1), &self.keys[1])?
            .ok_or_else(|| SessionError::NoSession(d.session_id.to_string()))?;
        if sess.ended {
            return Err(SessionError::Ended(d.session_id.to_string()).into());
        }
        Ok((peer_state, sess))
    }
}

/// What a step leaves to do once its [`Commit`] is durable; pass it to
/// [`Participant::complete`].
#[derive(Debug)]
#[must_use]
pub struct After(Then);

#[derive(Debug)]
enum Then {
    Nothing,
    Reply(Wire),
    Confirmed {
        pending: (Uuid, AgentId),
        confirm: Wire,
    },
    Acknowledged {
        pending: (Uuid, AgentId),
    },
    Countersign(Box<Request>),
    Stamped {
        interaction_hash: Hash32,
        countersign: SignedObject,
    },
    Notices(Vec<(AgentId, Wire)>),
}

/// One transition's result: records to append (if any), then what to do.
#[derive(Debug)]
#[must_use]
pub struct Step {
    /// What to append atomically before [`Step::after`] is completed.
    pub commit: Option<Commit>,
    /// Hand to [`Participant::complete`] with the events the commit appended.
    pub after: After,
}

impl Step {
    fn reply(w: Wire) -> Self {
        Step {
            commit: None,
            after: After(Then::Reply(w)),
        }
    }
}

/// What a completed step produced.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Nothing to send.
    Done,
    /// The message to send back (or on).
    Reply(Wire),
    /// An interaction this agent initiated, now in both chains.
    Stamped(Box<Stamped>),
    /// Session end notices, one per peer.
    Notices(Vec<(AgentId, Wire)>),
}

/// One agent taking part in sessions: the handshake, interaction and
/// session-end state machine, without storage, clock or randomness.
#[derive(Debug)]
pub struct Participant {
    id: AgentId,
    capabilities: Vec<String>,
    max_skew: i64,
    /// Proposals sent, by (session, peer).
    proposed: HashMap<(Uuid, AgentId), SignedObject>,
    /// Responses sent and awaiting confirmation, by (session, initiator).
    answered: HashMap<(Uuid, AgentId), (Proposal, SignedObject, i64)>,
    /// When set, only these agents may open a handshake with this one.
    allowed: Option<Vec<AgentId>>,
    /// Peer keys already decoded: decoding checks the point is torsion-free,
    /// a scalar multiplication that would otherwise be paid per message.
    keys: HashMap<String, PublicKey>,
}

impl Participant {
    /// The machine of agent `id`, offering `capabilities`.
    pub fn new(id: AgentId, capabilities: Vec<String>) -> Self {
        Participant {
            id,
            capabilities,
            max_skew: DEFAULT_MAX_SKEW_MICROS,
            proposed: HashMap::new(),
            answered: HashMap::new(),
            allowed: None,
            keys: HashMap::new(),
        }
    }

    /// Accepts handshakes only from `peers`.
    pub fn with_allowed(mut self, peers: Vec<AgentId>) -> Self {
        self.allowed = Some(peers);
        self
    }

    /// Sets the tolerated clock difference with peers, in microseconds.
    pub fn with_max_skew(mut self, micros: i64) -> Self {
        self.max_skew = micros;
        self
    }

    /// The agent's id.
    pub fn id(&self) -> &AgentId {
        &self.id
    }

    /// Records `session.start` for `session_id` (once) with its
    /// participants.
    pub fn open_session(
        &self,
        session_id: Uuid,
        participants: &[AgentId],
        now: &Timestamp,
    ) -> Commit {
        Commit {
            keys: vec![session_key(&session_id)],
            op: Op::Open {
                sid: session_id,
                participants: names(participants),
                started: now.unix_micros(),
            },
        }
    }

    /// Handshake step 1 towards `peer`: the proposal to send.
    pub fn propose(
        &mut self,
        key: &Keypair,
        session_id: Uuid,
        peer: &AgentId,
        participants: &[AgentId],
        nonce: Uuid,
        now: &Timestamp,
    ) -> Result<Wire, ParticipantError> {
        let p = session::propose(
            key,
            &ProposalParams {
                session_id,
                to: peer,
                participants,
                capabilities: &self.capabilities,
                nonce,
                timestamp: now.clone(),
            },
        )?;
        self.proposed.insert((session_id, peer.clone()), p.clone());
        Ok(Wire::Proposal(p))
    }

    /// Handshake step 3: checks the peer's response to a proposal this
    /// participant sent; the step records the handshake and completes to
    /// the confirmation to send.
    pub fn on_response(
        &mut self,
        key: &Keypair,
        response: &SignedObject,
        now: &Timestamp,
    ) -> Result<Step, ParticipantError> {
        let sid = response.uuid("session_id").map_err(SessionError::from)?;
        let from = response.agent_id("from").map_err(SessionError::from)?;
        let proposal = self.proposed.get(&(sid, from.clone())).ok_or_else(|| {
            ParticipantError::Unexpected(format!(
                "a handshake response from {from} in session {sid}, but no proposal was sent to it"
            ))
        })?;
        let resp = session::check_response(response.canonical(), proposal, now, self.max_skew)?;
        let confirm = session::confirm(key, &resp, now)?;
        let payload = session::handshake_payload(
            Role::Initiator,
            &resp.key,
            proposal,
            &resp.message,
            None,
            &resp.capabilities,
        );
        let participants = proposal.strings("participants").unwrap_or_default();
        Ok(Step {
            commit: Some(handshake_commit(
                sid,
                resp.key,
                payload,
                participants,
                now,
                None,
            )),
            after: After(Then::Confirmed {
                pending: (sid, from),
                confirm: Wire::Confirm(confirm),
            }),
        })
    }

    /// Answers a message from a peer (proposal, confirmation, interaction
    /// request, end notice).
    pub fn handle(
        &mut self,
        key: &Keypair,
        msg: Wire,
        ledger: &dyn Ledger,
        now: &Timestamp,
    ) -> Result<Step, ParticipantError> {
        match msg {
            Wire::Proposal(p) => self.on_proposal(key, &p, ledger, now),
            Wire::Confirm(c) => self.on_confirm(&c, ledger, now),
            Wire::Interaction { request, data } => {
                self.on_interaction(key, &request, data, ledger, now)
            }
            Wire::End(e) => self.on_end(&e, ledger, now),
            other => Err(ParticipantError::Unexpected(format!(
                "{} is not a request a participant answers",
                String::from_utf8_lossy(&other.to_line())
                    .chars()
                    .take(80)
                    .collect::<String>()
            ))),
        }
    }

    fn on_proposal(
        &mut self,
        key: &Keypair,
        p: &SignedObject,
        ledger: &dyn Ledger,
        now: &Timestamp,
    ) -> Result<Step, ParticipantError> {
        let proposal = session::check_proposal(p.canonical(), &self.id, now, self.max_skew)?;
        if let Some(allowed) = &self.allowed
            && !allowed.contains(&proposal.from)
        {
            return Err(ParticipantError::Refused(format!(
                "{} is not among the agents this one accepts handshakes from",
                proposal.from
            )));
        }
        let pending = (proposal.session_id, proposal.from.clone());
        // Unconfirmed handshakes expire with the clock window, and there is
        // a cap on how many may wait: strangers cannot fill memory.
        let horizon = now.unix_micros() - self.max_skew;
        self.answered.retain(|_, (_, _, at)| *at >= horizon);
        if self.answered.len() >= MAX_PENDING_HANDSHAKES && !self.answered.contains_key(&pending) {
            return Err(ParticipantError::Refused(
                "too many handshakes are awaiting confirmation; try again later".into(),
            ));
        }
        let replay = self
            .answered
            .get(&pending)
            .is_some_and(|(old, _, _)| old.nonce == proposal.nonce)
            || ledger.state(&seen_key(&proposal.message.hash()))?.is_some()
            || ledger
                .state(&peer_key(&proposal.session_id, &proposal.from))?
                .is_some();
        if replay {
            return Err(SessionError::Replay(session::PROPOSAL).into());
        }
        let response = session::respond(key, &proposal, &self.capabilities, now)?;
        self.answered
            .insert(pending, (proposal, response.clone(), now.unix_micros()));
        Ok(Step::reply(Wire::Response(response)))
    }

    fn on_confirm(
        &mut self,
        c: &SignedObject,
        ledger: &dyn Ledger,
        now: &Timestamp,
    ) -> Result<Step, ParticipantError> {
        let sid = c.uuid("session_id").map_err(SessionError::from)?;
        let from = c.agent_id("from").map_err(SessionError::from)?;
        let pending = (sid, from);
        let Some((proposal, response, _)) = self.answered.get(&pending) else {
            if let Ok(h) = c.hash_member("response_hash")
                && ledger.state(&confirmed_key(&h))?.is_some()
            {
                // A confirmation sent again (its acknowledgement was lost):
                // the handshake is recorded already.
                return Ok(Step::reply(Wire::Ack));
            }
            return Err(ParticipantError::Unexpected(format!(
                "a confirmation from {} for session {sid}, but no handshake with it is pending",
                pending.1
            )));
        };
        let confirm =
            session::check_confirm(c.canonical(), proposal, response, now, self.max_skew)?;
        let capabilities = response.strings("capabilities").unwrap_or_default();
        let payload = session::handshake_payload(
            Role::Responder,
            &proposal.key,
            &proposal.message,
            response,
            Some(&confirm),
            &capabilities,
        );
        let commit = handshake_commit(
            sid,
            proposal.key,
            payload,
            names(&proposal.participants),
            now,
            Some((proposal.message.hash(), response.hash())),
        );
        Ok(Step {
            commit: Some(commit),
            after: After(Then::Acknowledged { pending }),
        })
    }

    /// The peer's state and key, from the ledger.
    fn peer(
        &mut self,
        ledger: &dyn Ledger,
        sid: &Uuid,
        peer: &AgentId,
    ) -> Result<(PeerState, PublicKey), ParticipantError> {
        let k = peer_key(sid, peer);
        let state: PeerState =
            decode(ledger.state(&k)?.as_ref(), &k)?.ok_or_else(|| SessionError::NoHandshake {
                session: sid.to_string(),
                peer: peer.to_string(),
            })?;
        let key = match self.keys.get(&state.public_key) {
            Some(key) => *key,
            None => {
                let key = PublicKey::from_b64(&state.public_key)
                    .map_err(|e| ParticipantError::Corrupt(format!("{k:?}: {e}")))?;
                self.keys.insert(state.public_key.clone(), key);
                key
            }
        };
        if &key.agent_id() != peer {
            return Err(ParticipantError::Corrupt(format!(
                "the key recorded for {peer} belongs to another agent"
            )));
        }
        Ok((state, key))
    }

    /// The last order this agent initiated towards `peer` in the session,
    /// `None` when no handshake with it is recorded.
    pub fn progress(
        &self,
        ledger: &dyn Ledger,
        sid: &Uuid,
        peer: &AgentId,
    ) -> Result<Option<u64>, ParticipantError> {
        let k = peer_key(sid, peer);
        let state: Option<PeerState> = decode(ledger.state(&k)?.as_ref(), &k)?;
        Ok(state.map(|s| s.sent))
    }

    /// Refuses new interactions in a session this agent has ended.
    fn check_open(&self, ledger: &dyn Ledger, sid: &Uuid) -> Result<(), ParticipantError> {
        let k = session_key(sid);
        let sess: Option<SessionState> = decode(ledger.state(&k)?.as_ref(), &k)?;
        match sess {
            Some(s) if s.ended => Err(ParticipantError::Input(format!(
                "session {sid} has ended; open a new session"
            ))),
            _ => Ok(()),
        }
    }

    /// Starts a co-signed interaction with `peer`: the request to send.
    /// `data` is hashed per [`session::auto_hash`] unless `raw`.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &mut self,
        key: &Keypair,
        session_id: Uuid,
        peer: &AgentId,
        event_type: &str,
        data: Map<String, Value>,
        raw: bool,
        ledger: &dyn Ledger,
        now: &Timestamp,
    ) -> Result<Wire, ParticipantError> {
        check_type(event_type, 1)
            .map_err(|e| ParticipantError::Input(format!("event type {event_type:?}: {e}")))?;
        if session::is_reserved_type(event_type) {
            return Err(ParticipantError::Input(
                SessionError::ReservedType(event_type.to_owned()).to_string(),
            ));
        }
        let (state, _) = self.peer(ledger, &session_id, peer)?;
        self.check_open(ledger, &session_id)?;
        let data = if raw { data } else { session::auto_hash(data) };
        check_data_size(&data)?;
        let d = Descriptor {
            session_id,
            initiator: self.id.clone(),
            responder: peer.clone(),
            event_type: event_type.to_owned(),
            payload_hash: session::payload_hash(&data),
            order: state.sent + 1,
        };
        let request = d.request(key, now)?;
        Ok(Wire::Interaction { request, data })
    }

    fn on_interaction(
        &mut self,
        key: &Keypair,
        request: &SignedObject,
        data: Map<String, Value>,
        ledger: &dyn Ledger,
        now: &Timestamp,
    ) -> Result<Step, ParticipantError> {
        check_data_size(&data)?;
        let d = Descriptor::of_request(request)?;
        let (peer_state, peer_key_) = self.peer(ledger, &d.session_id, &d.initiator)?;
        if let Some((hash, seq)) = &peer_state.last_request
            && *hash == request.hash().to_hex()
        {
            let cs = self.countersign_again(
                key,
                request,
                &data,
                &peer_key_,
                peer_state.received,
                *seq,
                ledger,
                now,
            )?;
            return Ok(Step::reply(cs));
        }
        self.check_open(ledger, &d.session_id)?;
        // Checked in full against the state read now; the commit checks the
        // order again under the write lock, where another process may have
        // moved it.
        let req = session::check_request(
            request.canonical(),
            &data,
            &self.id,
            &peer_key_,
            peer_state.received + 1,
            now,
            self.max_skew,
        )?;
        let payload = session::interaction_payload(
            Role::Responder,
            &req.descriptor,
            &req.message,
            None,
            data,
        );
        let commit = Commit {
            keys: vec![
                peer_key(&d.session_id, &d.initiator),
                session_key(&d.session_id),
            ],
            op: Op::Answer {
                descriptor: req.descriptor.clone(),
                request_hash: req.message.hash(),
                payload,
            },
        };
        Ok(Step {
            commit: Some(commit),
            after: After(Then::Countersign(Box::new(req))),
        })
    }

    /// Answers a retried request (same bytes as the last one accepted from
    /// this peer) with a fresh countersignature naming the event recorded
    /// the first time; nothing new is recorded.
    #[allow(clippy::too_many_arguments)]
    fn countersign_again(
        &self,
        key: &Keypair,
        request: &SignedObject,
        data: &Map<String, Value>,
        peer: &PublicKey,
        order: u64,
        seq: u64,
        ledger: &dyn Ledger,
        now: &Timestamp,
    ) -> Result<Wire, ParticipantError> {
        // Checked as the first time (signature, addressee, data); the time
        // window is not applied again: the request was accepted in time.
        let req = session::check_request(
            request.canonical(),
            data,
            &self.id,
            peer,
            order,
            &request.timestamp("timestamp").map_err(SessionError::from)?,
            self.max_skew,
        )?;
        let ev = ledger.event(seq)?.ok_or_else(|| {
            ParticipantError::Corrupt(format!(
                "the event seq {seq} recorded for the last request is missing"
            ))
        })?;
        let names_it = ev
            .event()
            .payload
            .get("interaction")
            .and_then(|i| i.get("interaction_hash"))
            .and_then(Value::as_str)
            == Some(req.descriptor.hash().to_hex().as_str());
        if !names_it {
            return Err(ParticipantError::Corrupt(format!(
                "event seq {seq} is not the interaction the last request asked for"
            )));
        }
        Ok(Wire::Countersign(session::countersign(
            key,
            &req,
            ev.seq(),
            &ev.hash(),
            now,
        )?))
    }

    /// Completes an interaction this participant requested: checks the
    /// countersignature; the step records the initiator's event and
    /// completes to [`Outcome::Stamped`].
    pub fn on_countersign(
        &mut self,
        request: &Wire,
        countersign: &SignedObject,
        ledger: &dyn Ledger,
    ) -> Result<Step, ParticipantError> {
        let Wire::Interaction { request, data } = request else {
            return Err(ParticipantError::Unexpected(
                "on_countersign needs the interaction request it answers".into(),
            ));
        };
        let d = Descriptor::of_request(request)?;
        let (_, key) = self.peer(ledger, &d.session_id, &d.responder)?;
        let cs = session::check_countersign(countersign.canonical(), request, &d, &key)?;
        let payload =
            session::interaction_payload(Role::Initiator, &d, request, Some(&cs), data.clone());
        Ok(Step {
            commit: Some(Commit {
                keys: vec![
                    peer_key(&d.session_id, &d.responder),
                    session_key(&d.session_id),
                ],
                op: Op::Countersigned {
                    descriptor: d.clone(),
                    payload,
                },
            }),
            after: After(Then::Stamped {
                interaction_hash: d.hash(),
                countersign: cs,
            }),
        })
    }

    /// Records `session.end` in this agent's chain (once); the step
    /// completes to the notices to send to `peers`.
    pub fn end(
        &self,
        key: &Keypair,
        session_id: Uuid,
        peers: &[AgentId],
        now: &Timestamp,
    ) -> Result<Step, ParticipantError> {
        let notices = peers
            .iter()
            .map(|p| {
                Ok((
                    p.clone(),
                    Wire::End(session::end_notice(key, session_id, p, now)?),
                ))
            })
            .collect::<Result<_, ParticipantError>>()?;
        Ok(Step {
            commit: Some(end_commit(session_id, now)),
            after: After(Then::Notices(notices)),
        })
    }

    fn on_end(
        &mut self,
        notice: &SignedObject,
        ledger: &dyn Ledger,
        now: &Timestamp,
    ) -> Result<Step, ParticipantError> {
        let sid = notice.uuid("session_id").map_err(SessionError::from)?;
        let from = notice.agent_id("from").map_err(SessionError::from)?;
        let (_, key) = self.peer(ledger, &sid, &from)?;
        session::check_end(notice.canonical(), &self.id, &key, now, self.max_skew)?;
        Ok(Step {
            commit: Some(end_commit(sid, now)),
            after: After(Then::Reply(Wire::Ack)),
        })
    }

    /// Finishes a step once its commit is durable: `recorded` holds the
    /// events the commit appended (empty when it had none, or recorded
    /// nothing because the session was already open or ended).
    pub fn complete(
        &mut self,
        key: &Keypair,
        after: After,
        recorded: &[SignedEvent],
        now: &Timestamp,
    ) -> Result<Outcome, ParticipantError> {
        let last = || {
            recorded.last().cloned().ok_or_else(|| {
                ParticipantError::Corrupt("the interaction's event was not recorded".into())
            })
        };
        Ok(match after.0 {
            Then::Nothing => Outcome::Done,
            Then::Reply(w) => Outcome::Reply(w),
            Then::Confirmed { pending, confirm } => {
                self.proposed.remove(&pending);
                Outcome::Reply(confirm)
            }
            Then::Acknowledged { pending } => {
                self.answered.remove(&pending);
                Outcome::Reply(Wire::Ack)
            }
            Then::Countersign(req) => {
                let ev = last()?;
                // Fixed-size members: it cannot exceed a reader's limits.
                Outcome::Reply(Wire::Countersign(session::countersign(
                    key,
                    &req,
                    ev.seq(),
                    &ev.hash(),
                    now,
                )?))
            }
            Then::Stamped {
                interaction_hash,
                countersign,
            } => Outcome::Stamped(Box::new(Stamped {
                interaction_hash,
                event: last()?,
                countersign,
            })),
            Then::Notices(n) => Outcome::Notices(n),
        })
    }
}

impl After {
    /// Nothing left to do.
    pub fn nothing() -> Self {
        After(Then::Nothing)
    }
}

fn names(ids: &[AgentId]) -> Vec<String> {
    ids.iter().map(|a| a.to_string()).collect()
}

fn handshake_commit(
    sid: Uuid,
    peer: PublicKey,
    payload: Map<String, Value>,
    participants: Vec<String>,
    now: &Timestamp,
    seen: Option<(Hash32, Hash32)>,
) -> Commit {
    let mut keys = vec![session_key(&sid), peer_key(&sid, &peer.agent_id())];
    if let Some((proposal, response)) = &seen {
        keys.push(seen_key(proposal));
        keys.push(confirmed_key(response));
    }
    Commit {
        keys,
        op: Op::Handshake {
            sid,
            peer,
            payload,
            participants,
            started: now.unix_micros(),
            replay_guard: seen.is_some(),
        },
    }
}

fn end_commit(sid: Uuid, now: &Timestamp) -> Commit {
    Commit {
        keys: vec![session_key(&sid)],
        op: Op::End {
            sid,
            at: now.unix_micros(),
        },
    }
}

fn check_data_size(data: &Map<String, Value>) -> Result<(), ParticipantError> {
    let mut out = Vec::new();
    jcs::write_object(&mut out, data);
    if out.len() > MAX_DATA_BYTES {
        return Err(ParticipantError::Input(format!(
            "interaction data is {} bytes of canonical JSON, the limit is {MAX_DATA_BYTES}: record a hash of it instead",
            out.len()
        )));
    }
    Ok(())
}

fn start_payload(sid: &Uuid, participants: &[String]) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert(
        "participants".into(),
        Value::Array(participants.iter().map(|s| s.as_str().into()).collect()),
    );
    p.insert("session_id".into(), sid.to_string().into());
    p
}

fn new_session(participants: &[String], started_micros: i64) -> SessionState {
    SessionState {
        started_micros,
        participants: participants.to_vec(),
        interactions: 0,
        ended: false,
    }
}
