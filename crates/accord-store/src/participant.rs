//! One agent's side of co-signed sessions over an event store: the
//! driver of [`accord_core::participant`], and [`Session`], N agents in one
//! process.
//!
//! The state machine (what to check, record and answer for each message)
//! is `accord_core::participant::Participant`; this [`Participant`] gives
//! it the agent's key, time and nonces, reads its state from the store,
//! and appends each step's [`Commit`] atomically with the state it
//! changes, so a participant that restarts carries on where it was. The
//! [`Wire`] messages between participants are what a transport carries
//! (one JSON line each).

use accord_core::participant::{self as machine, Commit, Ledger, LedgerError, Outcome, Step};
use accord_core::signed::SignedObject;
use accord_core::{AgentId, Map, SignedEvent, Uuid, Value, session};

pub use accord_core::participant::{
    MAX_DATA_BYTES, MAX_PENDING_HANDSHAKES, MAX_WIRE_BYTES, Stamped, Wire,
};
pub use accord_core::session::SessionError;

use crate::home::{Agent, HomeError};
use crate::sqlite::SqliteStore;
use crate::{EventStore, SideWrite, StoreError};

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

impl From<machine::ParticipantError> for ParticipantError {
    fn from(e: machine::ParticipantError) -> Self {
        use machine::ParticipantError as M;
        match e {
            M::Protocol(e) => ParticipantError::Protocol(e),
            // The ledger is this driver's store: its errors come back as
            // they were raised.
            M::Ledger(e) => match e.into_inner().downcast::<StoreError>() {
                Ok(e) => (*e).into(),
                Err(other) => ParticipantError::Home(HomeError::Io(other.to_string())),
            },
            M::Corrupt(m) => StoreError::Corrupt(m).into(),
            M::Unexpected(m) => ParticipantError::Unexpected(m),
            M::Input(m) => ParticipantError::Input(m),
            M::Refused(m) => ParticipantError::Refused(m),
            other => ParticipantError::Unexpected(other.to_string()),
        }
    }
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

/// The store as the machine's [`Ledger`]: one agent's state and events.
struct StoreLedger<'a, S> {
    store: &'a S,
    agent: &'a AgentId,
}

impl<S: EventStore> Ledger for StoreLedger<'_, S> {
    fn state(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.store.state(self.agent, key).map_err(LedgerError::new)
    }

    fn event(&self, seq: u64) -> Result<Option<SignedEvent>, LedgerError> {
        let mut found = None;
        self.store
            .scan(self.agent, seq, Some(seq), &mut |_, body| {
                found = Some(SignedEvent::from_canonical(body)?);
                Ok(std::ops::ControlFlow::Break(()))
            })
            .map_err(LedgerError::new)?;
        Ok(found)
    }
}

/// One agent taking part in sessions, its state kept in its store.
pub struct Participant<S: EventStore = SqliteStore> {
    agent: Agent<S>,
    machine: machine::Participant,
}

impl<S: EventStore> Participant<S> {
    /// Wraps an opened agent; `capabilities` are those it offers.
    pub fn new(agent: Agent<S>, capabilities: Vec<String>) -> Self {
        let machine = machine::Participant::new(agent.key().agent_id().clone(), capabilities);
        Participant { agent, machine }
    }

    /// Accepts handshakes only from `peers`.
    pub fn with_allowed(mut self, peers: Vec<AgentId>) -> Self {
        self.machine = self.machine.with_allowed(peers);
        self
    }

    /// Sets the tolerated clock difference with peers.
    pub fn with_max_skew(mut self, micros: i64) -> Self {
        self.machine = self.machine.with_max_skew(micros);
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

    /// Appends what `commit` records, with `extra` state writes, in one
    /// transaction; the events appended (none when nothing needed
    /// recording).
    fn commit(
        &mut self,
        commit: &Commit,
        extra: &[SideWrite],
    ) -> Result<Vec<SignedEvent>, ParticipantError> {
        let keys: Vec<&str> = commit.keys().iter().map(String::as_str).collect();
        let mut nothing = false;
        let mut refused = None;
        let result = self.agent.stamp_with_state(&keys, &mut |_, seq, state| {
            nothing = false;
            refused = None;
            match commit.apply(seq, state) {
                Ok(Some(record)) => {
                    let mut writes = record.writes;
                    writes.extend(extra.iter().cloned());
                    Ok((record.events, writes))
                }
                // The store refuses an empty batch: stop the transaction
                // and report success with nothing appended.
                Ok(None) => {
                    nothing = true;
                    Err(StoreError::Invalid("nothing to record".into()))
                }
                Err(e) => {
                    let message = e.to_string();
                    refused = Some(e);
                    Err(StoreError::Invalid(message))
                }
            }
        });
        match (result, refused) {
            (Ok(events), _) => Ok(events),
            (Err(_), Some(e)) => Err(e.into()),
            (Err(_), None) if nothing => Ok(Vec::new()),
            (Err(e), None) => Err(e.into()),
        }
    }

    /// Runs a step: its commit, then its completion.
    fn run(&mut self, step: Step, extra: &[SideWrite]) -> Result<Outcome, ParticipantError> {
        let recorded = match &step.commit {
            Some(c) => self.commit(c, extra)?,
            None => Vec::new(),
        };
        let now = self.agent.now()?;
        Ok(self
            .machine
            .complete(self.agent.key(), step.after, &recorded, &now)?)
    }

    fn reply(&mut self, step: Step) -> Result<Wire, ParticipantError> {
        match self.run(step, &[])? {
            Outcome::Reply(w) => Ok(w),
            Outcome::Done => Ok(Wire::Ack),
            other => Err(ParticipantError::Unexpected(format!(
                "a step meant to answer a message produced {other:?}"
            ))),
        }
    }

    /// Records `session.start` for `session_id` (once) with its
    /// participants.
    pub fn open_session(
        &mut self,
        session_id: Uuid,
        participants: &[AgentId],
    ) -> Result<(), ParticipantError> {
        let now = self.agent.now()?;
        let commit = self.machine.open_session(session_id, participants, &now);
        self.commit(&commit, &[])?;
        Ok(())
    }

    /// Handshake step 1 towards `peer`.
    pub fn propose(
        &mut self,
        session_id: Uuid,
        peer: &AgentId,
        participants: &[AgentId],
    ) -> Result<Wire, ParticipantError> {
        let nonce = self.agent.nonce()?;
        let now = self.agent.now()?;
        Ok(self.machine.propose(
            self.agent.key(),
            session_id,
            peer,
            participants,
            nonce,
            &now,
        )?)
    }

    /// Handshake step 3: checks the peer's response to a proposal this
    /// participant sent, records the handshake, and returns the
    /// confirmation to send.
    pub fn on_response(&mut self, response: &SignedObject) -> Result<Wire, ParticipantError> {
        let now = self.agent.now()?;
        let step = self.machine.on_response(self.agent.key(), response, &now)?;
        self.reply(step)
    }

    /// Answers a message from a peer. Refusals come back as
    /// [`Wire::Error`] (to send to the peer) and as the error.
    pub fn handle(&mut self, msg: Wire) -> Result<Wire, ParticipantError> {
        let now = self.agent.now()?;
        let ledger = StoreLedger {
            store: self.agent.store(),
            agent: self.agent.key().agent_id(),
        };
        let step = self.machine.handle(self.agent.key(), msg, &ledger, &now)?;
        self.reply(step)
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
        let now = self.agent.now()?;
        let ledger = StoreLedger {
            store: self.agent.store(),
            agent: self.agent.key().agent_id(),
        };
        Ok(self.machine.request(
            self.agent.key(),
            session_id,
            peer,
            event_type,
            data,
            raw,
            &ledger,
            &now,
        )?)
    }

    /// The last order this agent initiated towards `peer` in the session,
    /// `None` when no handshake with it is recorded.
    pub fn progress(&self, sid: &Uuid, peer: &AgentId) -> Result<Option<u64>, ParticipantError> {
        let ledger = StoreLedger {
            store: self.agent.store(),
            agent: self.agent.key().agent_id(),
        };
        Ok(self.machine.progress(&ledger, sid, peer)?)
    }

    /// Completes an interaction this participant requested: checks the
    /// countersignature and records the initiator's event (clearing the
    /// transport's copy of the request in the same transaction).
    pub fn on_countersign(
        &mut self,
        request: &Wire,
        countersign: &SignedObject,
    ) -> Result<Stamped, ParticipantError> {
        let ledger = StoreLedger {
            store: self.agent.store(),
            agent: self.agent.key().agent_id(),
        };
        let step = self.machine.on_countersign(request, countersign, &ledger)?;
        // The transport's copy of the request goes in the same transaction.
        let clear: Vec<SideWrite> = step
            .commit
            .as_ref()
            .and_then(Commit::interaction)
            .map(|d| SideWrite::Remove {
                key: pending_request_key(&d.session_id, &d.responder),
            })
            .into_iter()
            .collect();
        match self.run(step, &clear)? {
            Outcome::Stamped(s) => Ok(*s),
            other => Err(ParticipantError::Unexpected(format!(
                "a countersignature produced {other:?}"
            ))),
        }
    }

    /// Records `session.end` in this agent's chain and returns the notices
    /// to send to each peer it completed a handshake with.
    pub fn end(
        &mut self,
        session_id: Uuid,
        peers: &[AgentId],
    ) -> Result<Vec<(AgentId, Wire)>, ParticipantError> {
        let now = self.agent.now()?;
        let step = self
            .machine
            .end(self.agent.key(), session_id, peers, &now)?;
        match self.run(step, &[])? {
            Outcome::Notices(n) => Ok(n),
            other => Err(ParticipantError::Unexpected(format!(
                "ending a session produced {other:?}"
            ))),
        }
    }

    fn record_end(&mut self, sid: Uuid) -> Result<(), ParticipantError> {
        self.end(sid, &[]).map(drop)
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
