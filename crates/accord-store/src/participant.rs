//! One agent's side of co-signed sessions (`accord_core::session`), over
//! any transport, and [`Session`], N agents in one process.
//!
//! A [`Participant`] signs only with its own key. It answers what peers
//! send ([`Participant::handle`]) and starts exchanges itself
//! ([`Participant::propose`], [`Participant::request`]); the [`Wire`]
//! messages between the two are what a transport carries (one JSON line
//! each). Session progress (peer keys, interaction order, counts) is kept
//! in the store's state, written in the same transaction as the events it
//! follows from, so a participant that restarts carries on where it was.

use std::collections::HashMap;

use accord_core::session::{
    self, DEFAULT_MAX_SKEW_MICROS, Descriptor, HANDSHAKE_EVENT, ProposalParams, Role,
    SESSION_END_EVENT, SESSION_START_EVENT, SessionError,
};
use accord_core::signed::SignedObject;
use accord_core::{AgentId, Hash32, Map, PublicKey, SignedEvent, Uuid, Value, jcs};
use serde::{Deserialize, Serialize};

use crate::home::{Agent, HomeError};
use crate::sqlite::SqliteStore;
use crate::{EventStore, SideWrite, StoreError};

/// Largest wire message, in bytes of JSON text.
pub const MAX_WIRE_BYTES: usize = 1024 * 1024;

/// Largest interaction `data`, in bytes of canonical JSON: it is signed
/// into both chains, so a peer must not be able to make them grow at will.
pub const MAX_DATA_BYTES: usize = 64 * 1024;

/// Most handshakes answered and awaiting confirmation at once; older ones
/// expire after the clock window.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// Session failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParticipantError {
    /// The peer's message was refused.
    #[error(transparent)]
    Protocol(#[from] SessionError),
    /// The agent's home failed.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The peer answered with an error.
    #[error("peer refused: {0}")]
    Peer(String),
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

impl From<StoreError> for ParticipantError {
    fn from(e: StoreError) -> Self {
        ParticipantError::Home(HomeError::Store(e))
    }
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

fn session_key(sid: &Uuid) -> String {
    format!("session/{sid}")
}

fn peer_key(sid: &Uuid, peer: &AgentId) -> String {
    format!("session/{sid}/peer/{peer}")
}

fn seen_key(proposal_hash: &Hash32) -> String {
    format!("session/seen/{proposal_hash}")
}

fn confirmed_key(response_hash: &Hash32) -> String {
    format!("session/confirmed/{response_hash}")
}

/// Where a transport keeps a request to `peer` until its countersignature
/// is recorded (cleared in the same transaction as the initiator's event).
pub fn pending_request_key(sid: &Uuid, peer: &AgentId) -> String {
    format!("{}session/{sid}/pending/{peer}", crate::TRANSPORT_PREFIX)
}

/// Where a transport keeps a handshake confirmation to `peer` until the
/// peer acknowledges it.
pub fn pending_confirm_key(sid: &Uuid, peer: &AgentId) -> String {
    format!("{}session/{sid}/confirm/{peer}", crate::TRANSPORT_PREFIX)
}

fn decode<T: for<'de> Deserialize<'de>>(b: &Option<Vec<u8>>) -> Result<Option<T>, StoreError> {
    b.as_ref()
        .map(|b| {
            serde_json::from_slice(b)
                .map_err(|e| StoreError::Corrupt(format!("session state entry: {e}")))
        })
        .transpose()
}

fn encode<T: Serialize>(key: String, v: &T) -> SideWrite {
    SideWrite::Set {
        key,
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

/// One agent taking part in sessions.
pub struct Participant<S: EventStore = SqliteStore> {
    agent: Agent<S>,
    capabilities: Vec<String>,
    max_skew: i64,
    /// Proposals sent, by (session, peer).
    proposed: HashMap<(Uuid, AgentId), SignedObject>,
    /// Responses sent and awaiting confirmation, by (session, initiator).
    answered: HashMap<(Uuid, AgentId), (session::Proposal, SignedObject, i64)>,
    /// When set, only these agents may open a handshake with this one.
    allowed: Option<Vec<AgentId>>,
    /// Peer keys already decoded: decoding checks the point is torsion-free,
    /// a scalar multiplication that would otherwise be paid per message.
    keys: HashMap<String, PublicKey>,
}

impl<S: EventStore> Participant<S> {
    /// Wraps an opened agent; `capabilities` are those it offers.
    pub fn new(agent: Agent<S>, capabilities: Vec<String>) -> Self {
        Participant {
            agent,
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

    /// Sets the tolerated clock difference with peers.
    pub fn with_max_skew(mut self, micros: i64) -> Self {
        self.max_skew = micros;
        self
    }

    /// The agent.
    pub fn agent(&self) -> &Agent<S> {
        &self.agent
    }

    /// The agent, mutably (e.g. to keep transport state in its store).
    pub fn agent_mut(&mut self) -> &mut Agent<S> {
        &mut self.agent
    }

    /// Gives the agent back.
    pub fn into_agent(self) -> Agent<S> {
        self.agent
    }

    /// The agent's id.
    pub fn id(&self) -> &AgentId {
        self.agent.key().agent_id()
    }

    /// Records `session.start` for `session_id` (once) with its
    /// participants.
    pub fn open_session(
        &mut self,
        session_id: Uuid,
        participants: &[AgentId],
    ) -> Result<(), ParticipantError> {
        let skey = session_key(&session_id);
        let names: Vec<String> = participants.iter().map(|a| a.to_string()).collect();
        let mut already_open = false;
        let started = self.agent.now()?.unix_micros();
        let result = self.agent.stamp_with_state(&[&skey], &mut |_, _, state| {
            if state[0].is_some() {
                // Already open: nothing to record. An empty batch is refused
                // by the store, so signal it and stop.
                already_open = true;
                return Err(StoreError::Invalid("session already open".into()));
            }
            Ok((
                vec![(
                    SESSION_START_EVENT.to_owned(),
                    start_payload(&session_id, &names),
                )],
                vec![encode(skey.clone(), &new_session(&names, started))],
            ))
        });
        match result {
            Ok(_) => Ok(()),
            Err(_) if already_open => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Handshake step 1 towards `peer`.
    pub fn propose(
        &mut self,
        session_id: Uuid,
        peer: &AgentId,
        participants: &[AgentId],
    ) -> Result<Wire, ParticipantError> {
        let p = session::propose(
            self.agent.key(),
            &ProposalParams {
                session_id,
                to: peer,
                participants,
                capabilities: &self.capabilities,
                nonce: self.agent.nonce()?,
                timestamp: self.agent.now()?,
            },
        );
        self.proposed.insert((session_id, peer.clone()), p.clone());
        Ok(Wire::Proposal(p))
    }

    /// Handshake step 3: checks the peer's response to a proposal this
    /// participant sent, records the handshake, and returns the
    /// confirmation to send.
    pub fn on_response(&mut self, response: &SignedObject) -> Result<Wire, ParticipantError> {
        let sid = response.uuid("session_id").map_err(SessionError::from)?;
        let from = response.agent_id("from").map_err(SessionError::from)?;
        let proposal = self
            .proposed
            .get(&(sid, from.clone()))
            .ok_or_else(|| {
                ParticipantError::Unexpected(format!(
                    "a handshake response from {from} in session {sid}, but no proposal was sent to it"
                ))
            })?
            .clone();
        let resp = session::check_response(
            response.canonical(),
            &proposal,
            &self.agent.now()?,
            self.max_skew,
        )?;
        let confirm = session::confirm(self.agent.key(), &resp, &self.agent.now()?);
        let payload = session::handshake_payload(
            Role::Initiator,
            &resp.key,
            &proposal,
            &resp.message,
            None,
            &resp.capabilities,
        );
        let participants = proposal.strings("participants").unwrap_or_default();
        self.record_handshake(sid, &resp.key, payload, &participants, None)?;
        self.proposed.remove(&(sid, from));
        Ok(Wire::Confirm(confirm))
    }

    fn record_handshake(
        &mut self,
        sid: Uuid,
        peer: &PublicKey,
        payload: Map<String, Value>,
        participants: &[String],
        seen: Option<(Hash32, Hash32)>,
    ) -> Result<(), ParticipantError> {
        let skey = session_key(&sid);
        let pkey = peer_key(&sid, &peer.agent_id());
        let seen_k =
            seen.map(|(proposal, response)| (seen_key(&proposal), confirmed_key(&response)));
        let mut keys = vec![skey.as_str(), pkey.as_str()];
        if let Some((k, _)) = &seen_k {
            keys.push(k);
        }
        let started = self.agent.now()?.unix_micros();
        self.agent.stamp_with_state(&keys, &mut |_, _, state| {
            if state.get(2).is_some_and(Option::is_some) {
                return Err(StoreError::Invalid(
                    "handshake proposal replayed: this agent has already completed it".into(),
                ));
            }
            if state[1].is_some() {
                // One handshake per peer and session: a second one would
                // reset the order counters the chain's records follow.
                return Err(StoreError::Invalid(format!(
                    "a handshake with {} in session {sid} is already recorded",
                    peer.agent_id()
                )));
            }
            let mut items = Vec::new();
            let mut writes = Vec::new();
            if state[0].is_none() {
                items.push((
                    SESSION_START_EVENT.to_owned(),
                    start_payload(&sid, participants),
                ));
                writes.push(encode(skey.clone(), &new_session(participants, started)));
            }
            items.push((HANDSHAKE_EVENT.to_owned(), payload.clone()));
            writes.push(encode(
                pkey.clone(),
                &PeerState {
                    public_key: peer.to_b64(),
                    sent: 0,
                    received: 0,
                    last_request: None,
                },
            ));
            if let Some((seen, confirmed)) = &seen_k {
                for k in [seen, confirmed] {
                    writes.push(SideWrite::Set {
                        key: k.clone(),
                        value: b"1".to_vec(),
                    });
                }
            }
            Ok((items, writes))
        })?;
        Ok(())
    }

    /// Answers a message from a peer. Refusals come back as
    /// [`Wire::Error`] (to send to the peer) and as the error.
    pub fn handle(&mut self, msg: Wire) -> Result<Wire, ParticipantError> {
        match msg {
            Wire::Proposal(p) => self.on_proposal(&p),
            Wire::Confirm(c) => self.on_confirm(&c),
            Wire::Interaction { request, data } => self.on_interaction(&request, data),
            Wire::End(e) => self.on_end(&e),
            other => Err(ParticipantError::Unexpected(format!(
                "{} is not a request a participant answers",
                String::from_utf8_lossy(&other.to_line())
                    .chars()
                    .take(80)
                    .collect::<String>()
            ))),
        }
    }

    fn on_proposal(&mut self, p: &SignedObject) -> Result<Wire, ParticipantError> {
        let me = self.id().clone();
        let now_ts = self.agent.now()?;
        let proposal = session::check_proposal(p.canonical(), &me, &now_ts, self.max_skew)?;
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
        let horizon = now_ts.unix_micros() - self.max_skew;
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
            || self
                .agent
                .store()
                .state(&me, &seen_key(&proposal.message.hash()))?
                .is_some();
        if replay {
            return Err(SessionError::Replay(session::PROPOSAL).into());
        }
        if self
            .agent
            .store()
            .state(&me, &peer_key(&proposal.session_id, &proposal.from))?
            .is_some()
        {
            return Err(SessionError::Replay(session::PROPOSAL).into());
        }
        let response = session::respond(
            self.agent.key(),
            &proposal,
            &self.capabilities,
            &self.agent.now()?,
        );
        self.answered
            .insert(pending, (proposal, response.clone(), now_ts.unix_micros()));
        Ok(Wire::Response(response))
    }

    fn on_confirm(&mut self, c: &SignedObject) -> Result<Wire, ParticipantError> {
        let sid = c.uuid("session_id").map_err(SessionError::from)?;
        let from = c.agent_id("from").map_err(SessionError::from)?;
        if !self.answered.contains_key(&(sid, from.clone()))
            && let Ok(h) = c.hash_member("response_hash")
            && self
                .agent
                .store()
                .state(self.id(), &confirmed_key(&h))?
                .is_some()
        {
            // A confirmation sent again (its acknowledgement was lost):
            // the handshake is recorded already.
            return Ok(Wire::Ack);
        }
        let (proposal, response, _) = self.answered.get(&(sid, from.clone())).cloned().ok_or_else(
            || {
                ParticipantError::Unexpected(format!(
                    "a confirmation from {from} for session {sid}, but no handshake with it is pending"
                ))
            },
        )?;
        let confirm = session::check_confirm(
            c.canonical(),
            &proposal,
            &response,
            &self.agent.now()?,
            self.max_skew,
        )?;
        let capabilities = response.strings("capabilities").unwrap_or_default();
        let payload = session::handshake_payload(
            Role::Responder,
            &proposal.key,
            &proposal.message,
            &response,
            Some(&confirm),
            &capabilities,
        );
        let participants: Vec<String> = proposal
            .participants
            .iter()
            .map(|a| a.to_string())
            .collect();
        self.record_handshake(
            sid,
            &proposal.key,
            payload,
            &participants,
            Some((proposal.message.hash(), response.hash())),
        )?;
        self.answered.remove(&(sid, from));
        Ok(Wire::Ack)
    }

    fn peer(
        &mut self,
        sid: &Uuid,
        peer: &AgentId,
    ) -> Result<(PeerState, PublicKey), ParticipantError> {
        let state: Option<PeerState> =
            decode(&self.agent.store().state(self.id(), &peer_key(sid, peer))?)?;
        let state = state.ok_or_else(|| SessionError::NoHandshake {
            session: sid.to_string(),
            peer: peer.to_string(),
        })?;
        let key = match self.keys.get(&state.public_key) {
            Some(k) => *k,
            None => {
                let k = PublicKey::from_b64(&state.public_key)
                    .map_err(|e| StoreError::Corrupt(format!("session state: {e}")))?;
                self.keys.insert(state.public_key.clone(), k);
                k
            }
        };
        if &key.agent_id() != peer {
            return Err(StoreError::Corrupt(format!(
                "session state: the key recorded for {peer} belongs to another agent"
            ))
            .into());
        }
        Ok((state, key))
    }

    /// Starts a co-signed interaction with `peer`: returns the request to
    /// send. `data` is hashed per [`session::auto_hash`] unless `raw`.
    pub fn request(
        &mut self,
        session_id: Uuid,
        peer: &AgentId,
        event_type: &str,
        data: Map<String, Value>,
        raw: bool,
    ) -> Result<Wire, ParticipantError> {
        accord_core::event::check_type(event_type, 1)
            .map_err(|e| ParticipantError::Input(format!("event type {event_type:?}: {e}")))?;
        if session::is_reserved_type(event_type) {
            return Err(ParticipantError::Input(
                SessionError::ReservedType(event_type.to_owned()).to_string(),
            ));
        }
        let (state, _) = self.peer(&session_id, peer)?;
        self.check_open(&session_id)?;
        let data = if raw { data } else { session::auto_hash(data) };
        check_data_size(&data)?;
        let d = Descriptor {
            session_id,
            initiator: self.id().clone(),
            responder: peer.clone(),
            event_type: event_type.to_owned(),
            payload_hash: session::payload_hash(&data),
            order: state.sent + 1,
        };
        let request = d.request(self.agent.key(), &self.agent.now()?);
        Ok(Wire::Interaction { request, data })
    }

    fn on_interaction(
        &mut self,
        request: &SignedObject,
        data: Map<String, Value>,
    ) -> Result<Wire, ParticipantError> {
        check_data_size(&data)?;
        let d = Descriptor::of_request(request)?;
        let (peer_state, key) = self.peer(&d.session_id, &d.initiator)?;
        if let Some((hash, seq)) = &peer_state.last_request
            && *hash == request.hash().to_hex()
        {
            return self.countersign_again(request, &data, &key, peer_state.received, *seq);
        }
        self.check_open(&d.session_id)?;
        let me = self.id().clone();
        let max_skew = self.max_skew;
        let pkey = peer_key(&d.session_id, &d.initiator);
        let skey = session_key(&d.session_id);
        let mut checked = None;
        let now = self.agent.now()?;
        let events = self
            .agent
            .stamp_with_state(&[&pkey, &skey], &mut |_, seq, state| {
                let mut peer: PeerState = decode(&state[0])?
                    .ok_or_else(|| StoreError::Invalid("no handshake with this peer".into()))?;
                let mut sess: SessionState = decode(&state[1])?
                    .ok_or_else(|| StoreError::Invalid("no such session".into()))?;
                if sess.ended {
                    return Err(StoreError::Invalid(format!(
                        "session {} has ended",
                        d.session_id
                    )));
                }
                let req = match session::check_request(
                    request.canonical(),
                    &data,
                    &me,
                    &key,
                    peer.received + 1,
                    &now,
                    max_skew,
                ) {
                    Ok(r) => r,
                    Err(e) => {
                        checked = Some(Err(e));
                        return Err(StoreError::Invalid("refused".into()));
                    }
                };
                peer.received = req.descriptor.order;
                peer.last_request = Some((req.message.hash().to_hex(), seq));
                sess.interactions += 1;
                let payload = session::interaction_payload(
                    Role::Responder,
                    &req.descriptor,
                    &req.message,
                    None,
                    data.clone(),
                );
                let ty = req.descriptor.event_type.clone();
                checked = Some(Ok(req));
                Ok((
                    vec![(ty, payload)],
                    vec![encode(pkey.clone(), &peer), encode(skey.clone(), &sess)],
                ))
            });
        let req = match (checked, events) {
            (Some(Ok(req)), Ok(events)) => {
                let ev = events
                    .into_iter()
                    .next()
                    .ok_or_else(|| HomeError::Io("nothing recorded".into()))?;
                (req, ev)
            }
            (Some(Err(e)), _) => return Err(e.into()),
            (_, Err(e)) => return Err(e.into()),
            (None, Ok(_)) => return Err(HomeError::Io("the request was not checked".into()).into()),
        };
        let (req, ev) = req;
        let cs = session::countersign(
            self.agent.key(),
            &req,
            ev.seq(),
            &ev.hash(),
            &self.agent.now()?,
        );
        Ok(Wire::Countersign(cs))
    }

    /// The last order this agent initiated towards `peer` in the session,
    /// `None` when no handshake with it is recorded.
    pub fn progress(&self, sid: &Uuid, peer: &AgentId) -> Result<Option<u64>, ParticipantError> {
        let state: Option<PeerState> =
            decode(&self.agent.store().state(self.id(), &peer_key(sid, peer))?)?;
        Ok(state.map(|s| s.sent))
    }

    /// Refuses new interactions in a session this agent has ended.
    fn check_open(&self, sid: &Uuid) -> Result<(), ParticipantError> {
        let sess: Option<SessionState> =
            decode(&self.agent.store().state(self.id(), &session_key(sid))?)?;
        match sess {
            Some(s) if s.ended => Err(ParticipantError::Input(format!(
                "session {sid} has ended; open a new session"
            ))),
            _ => Ok(()),
        }
    }

    /// Answers a retried request (same bytes as the last one accepted from
    /// this peer) with a fresh countersignature naming the event recorded
    /// the first time; nothing new is recorded.
    fn countersign_again(
        &mut self,
        request: &SignedObject,
        data: &Map<String, Value>,
        key: &PublicKey,
        order: u64,
        seq: u64,
    ) -> Result<Wire, ParticipantError> {
        let me = self.id().clone();
        // Checked as the first time (signature, addressee, data); the time
        // window is not applied again: the request was accepted in time.
        let req = session::check_request(
            request.canonical(),
            data,
            &me,
            key,
            order,
            &request.timestamp("timestamp").map_err(SessionError::from)?,
            self.max_skew,
        )?;
        let mut recorded = None;
        self.agent
            .store()
            .scan(&me, seq, Some(seq), &mut |_, body| {
                recorded = Some(SignedEvent::from_canonical(body)?);
                Ok(std::ops::ControlFlow::Break(()))
            })?;
        let ev = recorded.ok_or_else(|| {
            StoreError::Corrupt(format!(
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
            return Err(StoreError::Corrupt(format!(
                "event seq {seq} is not the interaction the last request asked for"
            ))
            .into());
        }
        let cs = session::countersign(
            self.agent.key(),
            &req,
            ev.seq(),
            &ev.hash(),
            &self.agent.now()?,
        );
        Ok(Wire::Countersign(cs))
    }

    /// Completes an interaction this participant requested: checks the
    /// countersignature and records the initiator's event.
    pub fn on_countersign(
        &mut self,
        request: &Wire,
        countersign: &SignedObject,
    ) -> Result<Stamped, ParticipantError> {
        let Wire::Interaction { request, data } = request else {
            return Err(ParticipantError::Unexpected(
                "on_countersign needs the interaction request it answers".into(),
            ));
        };
        let d = Descriptor::of_request(request)?;
        let (_, key) = self.peer(&d.session_id, &d.responder)?;
        let cs = session::check_countersign(countersign.canonical(), request, &d, &key)?;
        let pkey = peer_key(&d.session_id, &d.responder);
        let skey = session_key(&d.session_id);
        let payload =
            session::interaction_payload(Role::Initiator, &d, request, Some(&cs), data.clone());
        let events = self
            .agent
            .stamp_with_state(&[&pkey, &skey], &mut |_, _, state| {
                let mut peer: PeerState = decode(&state[0])?
                    .ok_or_else(|| StoreError::Invalid("no handshake with this peer".into()))?;
                let mut sess: SessionState = decode(&state[1])?
                    .ok_or_else(|| StoreError::Invalid("no such session".into()))?;
                if d.order != peer.sent + 1 {
                    return Err(StoreError::Invalid(format!(
                        "interaction order {} was already used with {}",
                        d.order, d.responder
                    )));
                }
                peer.sent = d.order;
                sess.interactions += 1;
                Ok((
                    vec![(d.event_type.clone(), payload.clone())],
                    vec![
                        encode(pkey.clone(), &peer),
                        encode(skey.clone(), &sess),
                        SideWrite::Remove {
                            key: pending_request_key(&d.session_id, &d.responder),
                        },
                    ],
                ))
            })?;
        let event = events
            .into_iter()
            .next()
            .ok_or_else(|| HomeError::Io("nothing recorded".into()))?;
        Ok(Stamped {
            interaction_hash: d.hash(),
            event,
            countersign: cs,
        })
    }

    /// Records `session.end` in this agent's chain and returns the notices
    /// to send to each peer it completed a handshake with.
    pub fn end(
        &mut self,
        session_id: Uuid,
        peers: &[AgentId],
    ) -> Result<Vec<(AgentId, Wire)>, ParticipantError> {
        self.record_end(session_id)?;
        let now = self.agent.now()?;
        Ok(peers
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    Wire::End(session::end_notice(self.agent.key(), session_id, p, &now)),
                )
            })
            .collect())
    }

    fn on_end(&mut self, notice: &SignedObject) -> Result<Wire, ParticipantError> {
        let sid = notice.uuid("session_id").map_err(SessionError::from)?;
        let from = notice.agent_id("from").map_err(SessionError::from)?;
        let (_, key) = self.peer(&sid, &from)?;
        let me = self.id().clone();
        session::check_end(
            notice.canonical(),
            &me,
            &key,
            &self.agent.now()?,
            self.max_skew,
        )?;
        self.record_end(sid)?;
        Ok(Wire::Ack)
    }

    fn record_end(&mut self, sid: Uuid) -> Result<(), ParticipantError> {
        let skey = session_key(&sid);
        let now_ts = self.agent.now()?;
        let mut already = false;
        let result = self.agent.stamp_with_state(&[&skey], &mut |_, _, state| {
            let mut sess: SessionState = decode(&state[0])?.ok_or_else(|| {
                StoreError::Invalid(format!("session {sid} was never started by this agent"))
            })?;
            if sess.ended {
                already = true;
                return Err(StoreError::Invalid("session already ended".into()));
            }
            sess.ended = true;
            let mut p = Map::new();
            p.insert(
                "duration_ms".into(),
                ((now_ts.unix_micros() - sess.started_micros).max(0) / 1000).into(),
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
            Ok((
                vec![(SESSION_END_EVENT.to_owned(), p)],
                vec![encode(skey.clone(), &sess)],
            ))
        });
        match result {
            Ok(_) => Ok(()),
            Err(_) if already => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Records an interaction with a peer that runs no Accord: marked
    /// external and unilateral, data hashed.
    pub fn record_external(
        &mut self,
        peer_identifier: &str,
        data: Map<String, Value>,
    ) -> Result<SignedEvent, ParticipantError> {
        Ok(self.agent.stamp(
            session::EXTERNAL_EVENT,
            session::external_payload(peer_identifier, data),
        )?)
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

/// N participants in one process, talking through direct calls (the
/// in-process transport). Every message still goes through [`Wire`]
/// encoding, so this runs exactly what a network transport runs.
pub struct Session<S: EventStore = SqliteStore> {
    id: Uuid,
    members: Vec<Participant<S>>,
}

fn relay<S: EventStore>(to: &mut Participant<S>, msg: &Wire) -> Result<Wire, ParticipantError> {
    let line = msg.to_line();
    let parsed = Wire::parse(&line).map_err(ParticipantError::Unexpected)?;
    let reply = to.handle(parsed)?;
    Wire::parse(&reply.to_line()).map_err(ParticipantError::Unexpected)
}

impl<S: EventStore> Session<S> {
    /// Starts a session: records `session.start` in every chain, then runs
    /// the N(N−1)/2 pairwise handshakes (lower index initiates).
    pub fn start(mut members: Vec<Participant<S>>) -> Result<Self, ParticipantError> {
        let id = members
            .first()
            .ok_or_else(|| ParticipantError::Input("a session needs members".into()))?
            .agent
            .nonce()?;
        let ids: Vec<AgentId> = members.iter().map(|m| m.id().clone()).collect();
        for m in members.iter_mut() {
            m.open_session(id, &ids)?;
        }
        for i in 0..members.len() {
            for j in i + 1..members.len() {
                let (a, b) = members.split_at_mut(j);
                let (init, resp) = (&mut a[i], &mut b[0]);
                let proposal = init.propose(id, resp.id(), &ids)?;
                let Wire::Response(r) = relay(resp, &proposal)? else {
                    return Err(ParticipantError::Unexpected("expected a response".into()));
                };
                let confirm = init.on_response(&r)?;
                relay(resp, &confirm)?;
            }
        }
        Ok(Session { id, members })
    }

    /// The session id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The participants.
    pub fn members(&self) -> &[Participant<S>] {
        &self.members
    }

    fn index(&self, who: &AgentId) -> Result<usize, ParticipantError> {
        self.members
            .iter()
            .position(|m| m.id() == who)
            .ok_or_else(|| ParticipantError::Unexpected(format!("{who} is not in this session")))
    }

    /// A co-signed interaction from `from` to `to`, recorded in both chains.
    pub fn stamp(
        &mut self,
        from: &AgentId,
        to: &AgentId,
        event_type: &str,
        data: Map<String, Value>,
    ) -> Result<Stamped, ParticipantError> {
        let (i, j) = (self.index(from)?, self.index(to)?);
        if i == j {
            return Err(ParticipantError::Unexpected(
                "an interaction needs two different agents".into(),
            ));
        }
        let request = self.members[i].request(self.id, to, event_type, data, false)?;
        let reply = relay(&mut self.members[j], &request)?;
        let Wire::Countersign(cs) = reply else {
            return Err(ParticipantError::Unexpected(
                "expected a countersignature".into(),
            ));
        };
        self.members[i].on_countersign(&request, &cs)
    }

    /// Records `session.end` in every chain and returns the participants.
    pub fn end(mut self) -> Result<Vec<Participant<S>>, ParticipantError> {
        for m in self.members.iter_mut() {
            m.record_end(self.id)?;
        }
        Ok(self.members)
    }
}
