//! Accord storage: the [`EventStore`] trait, its SQLite implementation (the
//! embedded default) and the agent home directory (key file + store).
//!
//! The store enforces the chain's structure on every append — seq continuity,
//! `prev_hash` linkage, one agent per chain, genesis at seq 0 — inside one
//! write transaction, so no fork or gap can be written even by two processes
//! appending at once. Signatures are not re-verified on append (they were just
//! made by the agent's own key); `verify` checks them.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use accord_core::keyfile::KdfParams;
//! use accord_core::{Map, SignatureMode, Value};
//! use accord_store::Home;
//! use accord_store::home::verify_store;
//!
//! let dir = tempfile::tempdir()?;
//! let home = Home::new(dir.path().join("planner"));
//! let mut agent = home.init(Some("planner"), Some(b"passphrase".as_slice()), KdfParams::DEFAULT)?;
//!
//! let mut payload = Map::new();
//! payload.insert("task_id".into(), Value::from("T-1"));
//! let event = agent.stamp("task_received", payload)?;
//! assert_eq!(event.seq(), 1);
//!
//! let summary = verify_store(agent.store(), agent.key().agent_id(), SignatureMode::Batch, &mut |_| {})?
//!     .expect("an untouched chain verifies");
//! assert_eq!(summary.events, 2); // genesis + one event
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod conformance;
pub mod env;
pub mod handoffs;
pub mod home;
pub mod memory;
pub mod participant;
pub mod schema;
pub mod sqlite;

use std::ops::ControlFlow;

use accord_core::{AgentId, EventError, Hash32, SignedEvent};

pub use env::{Env, ManualEnv, SystemEnv};
pub use home::{Agent, Home, HomeError};
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

pub use accord_core::Head;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store file does not exist.
    #[error("no event store at {0} (run `accord init` first, or check --home)")]
    NotFound(String),
    /// The file exists but is not an Accord store; it was left untouched.
    #[error("{path} is not an Accord event store ({reason}); it was left untouched")]
    NotAStore {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The store is damaged; nothing was written.
    #[error(
        "event store is corrupt: {0}; it was left untouched (restore it from a backup or an export)"
    )]
    Corrupt(String),
    /// Someone else appended first; the batch was not written.
    #[error(
        "chain head moved: expected to append seq {expected}, but the store's next seq is {found}"
    )]
    Conflict {
        /// The seq the batch starts with.
        expected: u64,
        /// The seq the store expects.
        found: u64,
    },
    /// The batch breaks a chain rule; nothing was written.
    #[error("append refused: {0}")]
    Invalid(String),
    /// An event failed to build.
    #[error(transparent)]
    Event(#[from] EventError),
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Filesystem error.
    #[error("{0}")]
    Io(String),
}

/// Builds the events of one append from the chain's current head.
pub type BuildFn<'a> = dyn FnMut(Option<&Head>) -> Result<Vec<SignedEvent>, StoreError> + 'a;

/// Receives each scanned event's seq and canonical bytes; returns
/// `ControlFlow::Break` to stop the scan early.
pub type ScanFn<'a> = dyn FnMut(u64, &[u8]) -> Result<ControlFlow<()>, StoreError> + 'a;

/// Builds the events of one append and the state it changes, from the
/// chain's head and the current values of the state keys asked for.
pub type StateBuildFn<'a> = dyn FnMut(
        Option<&Head>,
        &[Option<Vec<u8>>],
    ) -> Result<(Vec<SignedEvent>, Vec<SideWrite>), StoreError>
    + 'a;

pub use accord_core::chain::SideWrite;

/// As [`StateBuildFn`], also returning the RFC 9162 leaf hash of each event
/// built (`merkle::leaf_hash` of its canonical bytes), in order.
pub type LeafBuildFn<'a> = dyn FnMut(
        Option<&Head>,
        &[Option<Vec<u8>>],
    ) -> Result<(Vec<SignedEvent>, Vec<SideWrite>, Vec<Hash32>), StoreError>
    + 'a;

/// The state keys [`EventStore::put_state`] may write.
pub const TRANSPORT_PREFIX: &str = "transport/";

/// A quarantined item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Its number in this store (1, 2, ...).
    pub id: u64,
    /// When it arrived.
    pub received_at: String,
    /// Why it was refused.
    pub reason: String,
    /// The refused bytes.
    pub item: Vec<u8>,
}

/// An append-only store of agents' chains.
pub trait EventStore {
    /// The head of `agent`'s chain, `None` when it has no events.
    fn head(&self, agent: &AgentId) -> Result<Option<Head>, StoreError>;

    /// Appends the events `build` returns, atomically. `build` runs while the
    /// store holds its write lock and sees the current head, so events built
    /// from it cannot conflict with a concurrent writer. All events must
    /// belong to `agent` and continue its chain; otherwise nothing is written.
    fn append_with(
        &mut self,
        agent: &AgentId,
        build: &mut BuildFn<'_>,
    ) -> Result<Vec<SignedEvent>, StoreError> {
        self.append_with_state(agent, &[], &mut |head, _| Ok((build(head)?, Vec::new())))
    }

    /// As [`EventStore::append_with`], also reading the state `keys` under
    /// the write lock and writing `build`'s [`SideWrite`]s in the same
    /// transaction.
    fn append_with_state(
        &mut self,
        agent: &AgentId,
        keys: &[&str],
        build: &mut StateBuildFn<'_>,
    ) -> Result<Vec<SignedEvent>, StoreError>;

    /// As [`EventStore::append_with_state`], for a caller that hashes the
    /// events it builds anyway (an agent keeps the tree of its own chain):
    /// `build` also returns each event's leaf hash, and a store may index
    /// the tree from them instead of hashing every event a second time.
    /// They are trusted as given: a wrong one damages the index, which the
    /// agent's verification and `accord verify` report (the index is never
    /// a trust anchor). The default hashes the events itself.
    fn append_with_leaves(
        &mut self,
        agent: &AgentId,
        keys: &[&str],
        build: &mut LeafBuildFn<'_>,
    ) -> Result<Vec<SignedEvent>, StoreError> {
        self.append_with_state(agent, keys, &mut |head, state| {
            build(head, state).map(|(events, writes, _)| (events, writes))
        })
    }

    /// The root of the perfect subtree of `agent`'s RFC 9162 tree at
    /// `level` and `index` (leaves `[index·2^level, (index+1)·2^level)`),
    /// `None` when that subtree is not complete yet. Kept as events are
    /// appended.
    fn tree_node(
        &self,
        agent: &AgentId,
        level: u32,
        index: u64,
    ) -> Result<Option<Hash32>, StoreError>;

    /// Sets (or, with `None`, removes) a state value outside any append,
    /// for state that is not derived from the chain (e.g. a request sent
    /// but not yet answered). Only keys under [`TRANSPORT_PREFIX`] may be
    /// written this way: every other key follows the chain and changes
    /// only with an append.
    fn put_state(
        &mut self,
        agent: &AgentId,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), StoreError>;

    /// A state value of `agent`.
    fn state(&self, agent: &AgentId, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// `agent`'s quarantine, oldest first.
    fn quarantined(&self, agent: &AgentId) -> Result<Vec<Quarantined>, StoreError>;

    /// Appends already built events, atomically ([`StoreError::Conflict`]
    /// when the chain moved since they were built).
    fn append(&mut self, events: &[SignedEvent]) -> Result<Head, StoreError> {
        let first = events
            .first()
            .ok_or_else(|| StoreError::Invalid("empty batch".into()))?;
        let agent = first.event().agent_id.clone();
        let written = self.append_with(&agent, &mut |_| Ok(events.to_vec()))?;
        written
            .last()
            .map(Head::of)
            .ok_or_else(|| StoreError::Invalid("empty batch".into()))
    }

    /// Calls `f` with the seq and canonical bytes of events `from..=to` (to
    /// the end when `to` is `None`), in seq order, until `f` says stop.
    fn scan(
        &self,
        agent: &AgentId,
        from: u64,
        to: Option<u64>,
        f: &mut ScanFn<'_>,
    ) -> Result<(), StoreError>;

    /// Agents with a chain in this store.
    fn agents(&self) -> Result<Vec<AgentId>, StoreError>;

    /// Records a signed checkpoint (C2SP note) of `agent`'s chain at `size`
    /// events. Recording the same note twice is a no-op; a different note
    /// for a size already recorded is refused (it would mean two histories).
    fn record_checkpoint(
        &mut self,
        agent: &AgentId,
        size: u64,
        note: &[u8],
    ) -> Result<(), StoreError>;

    /// All recorded checkpoints of `agent`, by size.
    fn checkpoints(&self, agent: &AgentId) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// The id of `agent`'s latest quarantine entry holding `item`, received
    /// at `received_at`.
    fn quarantine_id(
        &self,
        agent: &AgentId,
        received_at: &str,
        item: &[u8],
    ) -> Result<Option<u64>, StoreError> {
        Ok(self
            .quarantined(agent)?
            .iter()
            .rev()
            .find(|q| q.received_at == received_at && q.item == item)
            .map(|q| q.id))
    }

    /// Checks the storage itself (below the chain's rules), e.g. SQLite's
    /// page-level consistency; an agent runs it before it first writes.
    /// Stores with nothing to check accept.
    fn integrity_check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Checks that `events` continue a chain whose head is `head`.
pub fn check_continuation(
    agent: &AgentId,
    head: Option<&Head>,
    events: &[SignedEvent],
) -> Result<(), StoreError> {
    let (mut next_seq, mut prev_hash, mut prev_ts) = match head {
        Some(h) => (h.seq + 1, h.hash, Some(h.timestamp.clone())),
        None => (0, Hash32::ZERO, None),
    };
    for ev in events {
        let e = ev.event();
        if &e.agent_id != agent {
            return Err(StoreError::Invalid(format!(
                "event seq {} belongs to agent {}, not {agent}",
                e.seq, e.agent_id
            )));
        }
        if e.seq != next_seq {
            return Err(StoreError::Conflict {
                expected: e.seq,
                found: next_seq,
            });
        }
        if e.prev_hash != prev_hash {
            return Err(StoreError::Invalid(format!(
                "event seq {} has prev_hash {}, the chain's head hash is {prev_hash}",
                e.seq, e.prev_hash
            )));
        }
        if let Some(t) = &prev_ts
            && e.timestamp < *t
        {
            return Err(StoreError::Invalid(format!(
                "event seq {} is timestamped {} before its predecessor {t}",
                e.seq, e.timestamp
            )));
        }
        // Parsing and signing both enforce that seq 0 is a genesis carrying
        // the key that derives agent_id, so that holds here too.
        next_seq += 1;
        prev_hash = ev.hash();
        prev_ts = Some(e.timestamp.clone());
    }
    Ok(())
}
