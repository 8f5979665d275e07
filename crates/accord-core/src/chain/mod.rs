//! Chain verification: a streaming verifier that takes events in order and
//! names the first one that breaks a rule.
//!
//! Checked for every event: canonical form, format, agent_id equal to the
//! genesis agent_id, seq continuity from 0, `prev_hash` equal to the previous
//! event's hash, nonce unique in the chain, timestamp not earlier than the
//! previous one, and the Ed25519 signature under the genesis key (whose
//! derivation of the agent_id is checked too).
//!
//! Signatures are verified in batches (see [`SignatureMode`]); structural
//! checks run immediately, and before a structural failure is reported the
//! pending batch is settled, so the failure named is always the first bad
//! event in chain order.

pub mod event;
pub mod export;

use std::collections::HashMap;
use std::fmt;

use ed25519_dalek::Signature;

use crate::event::{Event, EventError, SignedEvent};
use crate::hash::Hash32;
use crate::identity::{AgentId, KeyVerifier, Keypair, PublicKey};
use crate::timestamp::Timestamp;
use crate::{Map, Uuid, Value};

/// A write that lands in the same transaction as an append, so protocol
/// state never disagrees with the chain it is derived from.
///
/// Exhaustive on purpose: every store applies every kind, so a new kind
/// must fail to compile in each store until it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SideWrite {
    /// Removes a state value (no error when absent).
    Remove {
        /// The key.
        key: String,
    },
    /// Sets a state value.
    Set {
        /// The key (e.g. `handoff/in/<sender>`).
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// Adds an item to the quarantine.
    Quarantine {
        /// When it arrived (Accord timestamp).
        received_at: String,
        /// Why it was refused.
        reason: String,
        /// The refused bytes, as received.
        item: Vec<u8>,
    },
}

/// The last event of a chain: what the next event is built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Its seq (the chain holds `seq + 1` events).
    pub seq: u64,
    /// Its event hash (the next event's `prev_hash`).
    pub hash: Hash32,
    /// Its timestamp (the next event's may not be earlier).
    pub timestamp: Timestamp,
}

impl Head {
    /// The head of a chain whose last event is `ev`.
    pub fn of(ev: &SignedEvent) -> Self {
        Head {
            seq: ev.seq(),
            hash: ev.hash(),
            timestamp: ev.event().timestamp.clone(),
        }
    }
}

/// Builds the next signed events of a chain from its head: this is where
/// every event after genesis is signed.
///
/// The writer assigns `seq` and `prev_hash` and takes the time and nonces
/// from its caller (the store side reads the clock and the RNG), so a chain
/// written here is reproducible in tests. A clock that steps back does not
/// break the chain's non-decreasing time rule: the chain keeps its last time.
pub struct ChainWriter<'k> {
    key: &'k Keypair,
    head: Head,
}

impl<'k> ChainWriter<'k> {
    /// A writer continuing the chain whose head is `head`, at time `now`.
    pub fn new(key: &'k Keypair, head: Head, now: Timestamp) -> Self {
        let mut head = head;
        if now > head.timestamp {
            head.timestamp = now;
        }
        ChainWriter { key, head }
    }

    /// The seq the next event gets.
    pub fn next_seq(&self) -> u64 {
        self.head.seq + 1
    }

    /// Signs the next event.
    pub fn append(
        &mut self,
        nonce: Uuid,
        event_type: String,
        payload: Map<String, Value>,
    ) -> Result<SignedEvent, EventError> {
        let ev = Event {
            agent_id: self.key.agent_id().clone(),
            seq: self.head.seq + 1,
            timestamp: self.head.timestamp.clone(),
            nonce,
            event_type,
            payload,
            prev_hash: self.head.hash,
            public_key: None,
        }
        .sign(self.key)?;
        self.head.seq = ev.seq();
        self.head.hash = ev.hash();
        Ok(ev)
    }
}

/// How signatures are checked. Both modes compute the one validity rule of
/// PROTOCOL.md 1.3 (strict verification) and give the same answer for
/// every signature; they differ only in speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SignatureMode {
    /// Signatures are checked [`BATCH_SIZE`] at a time with a
    /// [`KeyVerifier`](crate::identity::KeyVerifier): the strict equation
    /// with tables of multiples of the base point and the chain's key and
    /// one shared field inversion per batch; its signature checks run about
    /// 3.5× as fast as `Strict`'s
    /// (docs/BENCHMARKS.md). Not a probabilistic batch equation: the answer
    /// is exactly `Strict`'s.
    #[default]
    Batch,
    /// Every signature checked alone with ed25519-dalek's `verify_strict`,
    /// the reference implementation of the rule (a cross-check of `Batch`).
    Strict,
}

/// Signatures per batch.
pub const BATCH_SIZE: usize = 64;

/// What was wrong with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The event could not be parsed or is not canonical.
    Event(EventError),
    /// The first event is not a genesis event.
    NoGenesis,
    /// The event belongs to another agent.
    AgentMismatch {
        /// The chain's agent.
        expected: AgentId,
        /// The event's agent_id.
        found: AgentId,
    },
    /// seq is not previous + 1 (a gap, a duplicate or a reordering).
    Seq {
        /// What it should be.
        expected: u64,
        /// What it is.
        found: u64,
    },
    /// prev_hash is not the previous event's hash.
    PrevHash {
        /// Hash of the previous event.
        expected: Hash32,
        /// The event's prev_hash.
        found: Hash32,
    },
    /// The signature does not verify under the genesis key.
    Signature,
    /// The nonce was already used.
    DuplicateNonce {
        /// seq of the earlier event with the same nonce.
        first_seq: u64,
    },
    /// The timestamp is earlier than the previous event's.
    TimeWentBack {
        /// Previous event's timestamp.
        previous: Timestamp,
        /// This event's timestamp.
        this: Timestamp,
    },
    /// The chain does not belong to the agent the caller expected.
    WrongAgent {
        /// Expected agent.
        expected: AgentId,
        /// Genesis agent.
        found: AgentId,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Event(e) => write!(f, "{e}"),
            Reason::NoGenesis => write!(f, "the chain does not start with a genesis event (seq 0)"),
            Reason::AgentMismatch { expected, found } => {
                write!(
                    f,
                    "agent_id {found} does not match the chain's agent {expected}"
                )
            }
            Reason::Seq { expected, found } => write!(
                f,
                "seq is {found}, expected {expected} (an event is missing, duplicated or out of order)"
            ),
            Reason::PrevHash { expected, found } => write!(
                f,
                "prev_hash {found} does not match the previous event's hash {expected} (the previous event was changed, removed or replaced)"
            ),
            Reason::Signature => write!(
                f,
                "signature does not verify under the agent's public key (content was changed)"
            ),
            Reason::DuplicateNonce { first_seq } => {
                write!(
                    f,
                    "nonce already used by event seq {first_seq} (replayed event)"
                )
            }
            Reason::TimeWentBack { previous, this } => {
                write!(
                    f,
                    "timestamp {this} is earlier than the previous event's {previous}"
                )
            }
            Reason::WrongAgent { expected, found } => {
                write!(
                    f,
                    "this chain belongs to agent {found}, not the expected {expected}"
                )
            }
        }
    }
}

/// The first bad event of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// 0-based position of the event in the input (line index for exports).
    pub index: u64,
    /// The event's seq; when the event could not be parsed, the seq it
    /// should have had.
    pub seq: u64,
    /// Why it is bad.
    pub reason: Reason,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event seq {}: {}", self.seq, self.reason)
    }
}

impl std::error::Error for Failure {}

/// What a verified chain contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The chain's agent.
    pub agent_id: AgentId,
    /// The genesis key.
    pub public_key: PublicKey,
    /// Number of events.
    pub events: u64,
    /// Hash of the last event (the chain head).
    pub head_hash: Hash32,
    /// Timestamp of the first event.
    pub first_timestamp: Timestamp,
    /// Timestamp of the last event.
    pub last_timestamp: Timestamp,
}

struct Pending {
    index: u64,
    seq: u64,
    message: Vec<u8>,
    signature: Signature,
}

/// Streaming chain verifier. Feed events in order with [`push`](Self::push)
/// (or raw lines with [`push_bytes`](Self::push_bytes)), then call
/// [`finish`](Self::finish).
pub struct ChainVerifier {
    mode: SignatureMode,
    expected_agent: Option<AgentId>,
    key: Option<PublicKey>,
    agent: Option<AgentId>,
    next_seq: u64,
    prev_hash: Hash32,
    first_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
    // Keyed by the 128-bit nonce: O(1) per event, where a scan of earlier
    // nonces would make verification quadratic in chain length.
    nonces: HashMap<u128, u64>,
    pending: Vec<Pending>,
    // Built for the chain's key at the first full batch (Batch mode only).
    fast: Option<KeyVerifier>,
    failed: Option<Failure>,
}

impl ChainVerifier {
    /// A verifier for any agent's chain.
    pub fn new(mode: SignatureMode) -> Self {
        ChainVerifier {
            mode,
            expected_agent: None,
            key: None,
            agent: None,
            next_seq: 0,
            prev_hash: Hash32::ZERO,
            first_ts: None,
            last_ts: None,
            nonces: HashMap::new(),
            pending: Vec::with_capacity(BATCH_SIZE),
            fast: None,
            failed: None,
        }
    }

    /// A verifier that carries on after `head`, an already verified event of
    /// the chain of `key`: the next event pushed must have seq `head.seq + 1`.
    /// Nonces are checked for uniqueness only among the events pushed here
    /// (the ones before `head` are not known to it).
    pub fn resume(mode: SignatureMode, key: PublicKey, head: &Head) -> Self {
        let agent = key.agent_id();
        ChainVerifier {
            mode,
            expected_agent: Some(agent.clone()),
            key: Some(key),
            agent: Some(agent),
            next_seq: head.seq + 1,
            prev_hash: head.hash,
            first_ts: Some(head.timestamp.clone()),
            last_ts: Some(head.timestamp.clone()),
            nonces: HashMap::new(),
            pending: Vec::with_capacity(BATCH_SIZE),
            fast: None,
            failed: None,
        }
    }

    /// Also require the chain to belong to `agent`.
    pub fn expect_agent(mut self, agent: AgentId) -> Self {
        self.expected_agent = Some(agent);
        self
    }

    /// Number of events accepted so far (signatures may still be pending).
    pub fn count(&self) -> u64 {
        self.next_seq
    }

    /// Hash of the last event pushed.
    pub fn head_hash(&self) -> Hash32 {
        self.prev_hash
    }

    /// The genesis key, once the genesis event was pushed.
    pub fn public_key(&self) -> Option<&PublicKey> {
        self.key.as_ref()
    }

    /// Parses and checks one event from its canonical bytes.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        match SignedEvent::from_canonical(bytes) {
            Ok(ev) => self.push(&ev),
            Err(e) => Err(self.reject(e)),
        }
    }

    /// Records that the next event could not be parsed, and returns the
    /// failure to report (an earlier bad signature, if any, comes first).
    pub fn reject(&mut self, e: EventError) -> Failure {
        if let Some(f) = &self.failed {
            return f.clone();
        }
        self.fail(self.next_seq, Reason::Event(e))
    }

    /// Verifies every pending signature now.
    pub fn settle_now(&mut self) -> Result<(), Failure> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        self.settle()
    }

    /// Checks one event.
    pub fn push(&mut self, ev: &SignedEvent) -> Result<(), Failure> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        let e = ev.event();
        let seq = e.seq;
        if self.next_seq == 0 {
            // The event parsed, so a seq-0 event has a key deriving its agent_id.
            let Some(key) = e.public_key.filter(|_| seq == 0) else {
                return Err(self.fail(seq, Reason::NoGenesis));
            };
            if let Some(expected) = &self.expected_agent
                && *expected != e.agent_id
            {
                return Err(self.fail(
                    seq,
                    Reason::WrongAgent {
                        expected: expected.clone(),
                        found: e.agent_id.clone(),
                    },
                ));
            }
            self.key = Some(key);
            self.agent = Some(e.agent_id.clone());
            self.first_ts = Some(e.timestamp.clone());
        } else {
            if let Some(agent) = &self.agent
                && *agent != e.agent_id
            {
                let expected = agent.clone();
                return Err(self.fail(
                    seq,
                    Reason::AgentMismatch {
                        expected,
                        found: e.agent_id.clone(),
                    },
                ));
            }
            if seq != self.next_seq {
                return Err(self.fail(
                    seq,
                    Reason::Seq {
                        expected: self.next_seq,
                        found: seq,
                    },
                ));
            }
        }
        if e.prev_hash != self.prev_hash {
            return Err(self.fail(
                seq,
                Reason::PrevHash {
                    expected: self.prev_hash,
                    found: e.prev_hash,
                },
            ));
        }
        if let Some(prev) = &self.last_ts
            && e.timestamp < *prev
        {
            return Err(self.fail(
                seq,
                Reason::TimeWentBack {
                    previous: prev.clone(),
                    this: e.timestamp.clone(),
                },
            ));
        }
        if let Some(&first_seq) = self.nonces.get(&e.nonce.as_u128()) {
            return Err(self.fail(seq, Reason::DuplicateNonce { first_seq }));
        }
        self.nonces.insert(e.nonce.as_u128(), seq);
        self.pending.push(Pending {
            index: self.next_seq,
            seq,
            message: ev.signing_message(),
            signature: *ev.signature(),
        });
        self.next_seq += 1;
        self.prev_hash = ev.hash();
        self.last_ts = Some(e.timestamp.clone());
        if self.pending.len() >= BATCH_SIZE {
            self.settle()?;
        }
        Ok(())
    }

    /// Verifies the pending signatures; on failure names the first bad one.
    fn settle(&mut self) -> Result<(), Failure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some(key) = self.key else {
            return Ok(());
        };
        // A short tail is cheaper checked alone than with a table built for
        // it; both give the same answer.
        if self.mode == SignatureMode::Batch
            && self.fast.is_none()
            && self.pending.len() >= BATCH_SIZE
        {
            self.fast = Some(key.verifier());
        }
        let bad = match &self.fast {
            Some(fast) => {
                let msgs: Vec<&[u8]> = self.pending.iter().map(|p| p.message.as_slice()).collect();
                let sigs: Vec<Signature> = self.pending.iter().map(|p| p.signature).collect();
                fast.first_invalid(&msgs, &sigs).ok().flatten()
            }
            None => self
                .pending
                .iter()
                .position(|p| !key.verify_strict(&p.message, &p.signature)),
        };
        let bad = bad.map(|i| (self.pending[i].index, self.pending[i].seq));
        self.pending.clear();
        if let Some((index, seq)) = bad {
            let f = Failure {
                index,
                seq,
                reason: Reason::Signature,
            };
            self.failed = Some(f.clone());
            return Err(f);
        }
        Ok(())
    }

    fn fail(&mut self, seq: u64, reason: Reason) -> Failure {
        // An earlier event with a bad signature outranks this failure.
        if let Err(earlier) = self.settle() {
            return earlier;
        }
        let f = Failure {
            index: self.next_seq,
            seq,
            reason,
        };
        self.failed = Some(f.clone());
        f
    }

    /// Settles the last batch and returns the summary. An empty input is a
    /// failure (there is no genesis).
    pub fn finish(mut self) -> Result<Summary, Failure> {
        if let Some(f) = self.failed.take() {
            return Err(f);
        }
        self.settle()?;
        match (self.agent, self.key, self.first_ts, self.last_ts) {
            (Some(agent_id), Some(public_key), Some(first_timestamp), Some(last_timestamp)) => {
                Ok(Summary {
                    agent_id,
                    public_key,
                    events: self.next_seq,
                    head_hash: self.prev_hash,
                    first_timestamp,
                    last_timestamp,
                })
            }
            _ => Err(Failure {
                index: 0,
                seq: 0,
                reason: Reason::NoGenesis,
            }),
        }
    }
}
