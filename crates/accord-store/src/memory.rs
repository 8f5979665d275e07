//! [`MemoryStore`]: an [`EventStore`] held in memory.
//!
//! It enforces every rule the SQLite store enforces on append (through the
//! same [`check_continuation`]), keeps the same tree index, state,
//! quarantine and checkpoints, and runs the same conformance suite
//! ([`crate::conformance`]). Nothing survives the process: it is for tests,
//! simulations and short-lived agents whose chains are exported before they
//! exit.

use std::collections::{BTreeMap, HashMap};

use accord_core::merkle::{self, MerkleError};
use accord_core::{AgentId, Hash32, SignedEvent};

use crate::{
    EventStore, Head, Quarantined, ScanFn, SideWrite, StateBuildFn, StoreError, TRANSPORT_PREFIX,
    check_continuation,
};

#[derive(Default)]
struct Chain {
    events: Vec<SignedEvent>,
    nodes: HashMap<(u32, u64), Hash32>,
    state: BTreeMap<String, Vec<u8>>,
    checkpoints: BTreeMap<u64, Vec<u8>>,
    quarantine: Vec<Quarantined>,
}

/// An in-memory [`EventStore`].
#[derive(Default)]
pub struct MemoryStore {
    chains: BTreeMap<AgentId, Chain>,
    next_quarantine_id: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

impl EventStore for MemoryStore {
    fn head(&self, agent: &AgentId) -> Result<Option<Head>, StoreError> {
        Ok(self
            .chains
            .get(agent)
            .and_then(|c| c.events.last())
            .map(Head::of))
    }

    fn append_with_state(
        &mut self,
        agent: &AgentId,
        keys: &[&str],
        build: &mut StateBuildFn<'_>,
    ) -> Result<Vec<SignedEvent>, StoreError> {
        let head = self.head(agent)?;
        let state: Vec<Option<Vec<u8>>> = keys
            .iter()
            .map(|k| {
                self.chains
                    .get(agent)
                    .and_then(|c| c.state.get(*k).cloned())
            })
            .collect();
        let (events, writes) = build(head.as_ref(), &state)?;
        if events.is_empty() {
            return Err(StoreError::Invalid("empty batch".into()));
        }
        check_continuation(agent, head.as_ref(), &events)?;
        // Everything that can fail is computed before anything changes, so
        // a refused batch leaves the store as it was.
        let chain = self.chains.entry(agent.clone()).or_default();
        let mut new_nodes = HashMap::new();
        for ev in &events {
            let completed = merkle::completed_nodes(
                ev.seq(),
                merkle::leaf_hash(ev.canonical()),
                &mut |level, index| {
                    new_nodes
                        .get(&(level, index))
                        .or_else(|| chain.nodes.get(&(level, index)))
                        .copied()
                        .ok_or_else(|| {
                            MerkleError::Storage(format!("tree node ({level}, {index}) is missing"))
                        })
                },
            )
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            for (level, index, hash) in completed {
                new_nodes.insert((level, index), hash);
            }
        }
        chain.nodes.extend(new_nodes);
        chain.events.extend(events.iter().cloned());
        for w in writes {
            match w {
                SideWrite::Remove { key } => {
                    chain.state.remove(&key);
                }
                SideWrite::Set { key, value } => {
                    chain.state.insert(key, value);
                }
                SideWrite::Quarantine {
                    received_at,
                    reason,
                    item,
                } => {
                    self.next_quarantine_id += 1;
                    chain.quarantine.push(Quarantined {
                        id: self.next_quarantine_id,
                        received_at,
                        reason,
                        item,
                    });
                }
            }
        }
        Ok(events)
    }

    fn tree_node(
        &self,
        agent: &AgentId,
        level: u32,
        index: u64,
    ) -> Result<Option<Hash32>, StoreError> {
        Ok(self
            .chains
            .get(agent)
            .and_then(|c| c.nodes.get(&(level, index)).copied()))
    }

    fn put_state(
        &mut self,
        agent: &AgentId,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        if !key.starts_with(TRANSPORT_PREFIX) {
            return Err(StoreError::Invalid(format!(
                "state key {key:?} follows the chain and changes only with an append"
            )));
        }
        let chain = self.chains.entry(agent.clone()).or_default();
        match value {
            Some(v) => chain.state.insert(key.to_owned(), v.to_vec()),
            None => chain.state.remove(key),
        };
        Ok(())
    }

    fn state(&self, agent: &AgentId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .chains
            .get(agent)
            .and_then(|c| c.state.get(key).cloned()))
    }

    fn quarantined(&self, agent: &AgentId) -> Result<Vec<Quarantined>, StoreError> {
        Ok(self
            .chains
            .get(agent)
            .map(|c| c.quarantine.clone())
            .unwrap_or_default())
    }

    fn scan(
        &self,
        agent: &AgentId,
        from: u64,
        to: Option<u64>,
        f: &mut ScanFn<'_>,
    ) -> Result<(), StoreError> {
        let Some(chain) = self.chains.get(agent) else {
            return Ok(());
        };
        let to = to.unwrap_or(u64::MAX);
        for ev in chain
            .events
            .iter()
            .skip(from.min(usize::MAX as u64) as usize)
        {
            if ev.seq() > to || f(ev.seq(), ev.canonical())?.is_break() {
                break;
            }
        }
        Ok(())
    }

    fn agents(&self) -> Result<Vec<AgentId>, StoreError> {
        Ok(self
            .chains
            .iter()
            .filter(|(_, c)| !c.events.is_empty())
            .map(|(a, _)| a.clone())
            .collect())
    }

    fn record_checkpoint(
        &mut self,
        agent: &AgentId,
        size: u64,
        note: &[u8],
    ) -> Result<(), StoreError> {
        let chain = self.chains.entry(agent.clone()).or_default();
        match chain.checkpoints.get(&size) {
            Some(old) if old == note => Ok(()),
            Some(_) => Err(StoreError::Invalid(format!(
                "a different checkpoint of size {size} is already recorded for {agent} (the chain was rewritten)"
            ))),
            None => {
                chain.checkpoints.insert(size, note.to_vec());
                Ok(())
            }
        }
    }

    fn checkpoints(&self, agent: &AgentId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .chains
            .get(agent)
            .map(|c| c.checkpoints.iter().map(|(s, n)| (*s, n.clone())).collect())
            .unwrap_or_default())
    }
}
