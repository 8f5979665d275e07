//! The conformance suite every [`EventStore`] runs.
//!
//! An implementation passes when [`run`] returns for stores made by its
//! factory: each check takes a fresh, empty store and panics with a message
//! naming the rule it found broken. The SQLite and in-memory stores run it in
//! this crate's tests; a new backend (PostgreSQL, …) runs it in its own.
//!
//! The events are built from fixed seeds, times and nonces, so a failure
//! reproduces exactly.

use std::ops::ControlFlow;

use accord_core::merkle::{self, Nodes};
use accord_core::note::Checkpoint;
use accord_core::{
    AgentId, ChainWriter, Event, Hash32, Head, Keypair, Map, SignedEvent, Timestamp, Uuid, Value,
};

use crate::{EventStore, SideWrite, StoreError, TRANSPORT_PREFIX};

/// One named rule and the check that tries to break it.
type Check = (&'static str, fn(&mut dyn EventStore));

/// Runs every check, each on a store from `fresh`.
pub fn run<S: EventStore>(fresh: &mut dyn FnMut() -> S) {
    let checks: &[Check] = &[
        ("an empty store", empty_store),
        ("appending and reading", append_and_scan),
        (
            "refused batches write nothing",
            refused_batches_write_nothing,
        ),
        ("the build function sees the head", build_sees_the_head),
        ("state moves with the chain", state_moves_with_the_chain),
        ("transport state", transport_state),
        ("the quarantine", quarantine),
        ("the tree index", tree_index),
        ("recorded checkpoints", checkpoints),
        ("chains of several agents", several_agents),
    ];
    for (name, check) in checks {
        let mut store = fresh();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&mut store)));
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("event store conformance: {name}: {msg}");
        }
    }
}

/// A fixed test agent (the seed is public test data).
fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32]).expect("a valid seed")
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000 + second * 1_000_000).expect("a valid time")
}

fn nonce(n: u128) -> Uuid {
    uuid::Builder::from_random_bytes(n.to_be_bytes()).into_uuid()
}

fn genesis(key: &Keypair) -> SignedEvent {
    Event::genesis(key.public(), at(0), nonce(0), Map::new())
        .sign(key)
        .expect("genesis signs")
}

/// `n` events continuing `head`, one second later.
fn events_after(key: &Keypair, head: &Head, n: usize) -> Vec<SignedEvent> {
    let mut w = ChainWriter::new(key, head.clone(), at(head.seq as i64 + 1));
    (0..n)
        .map(|i| {
            let mut p = Map::new();
            p.insert("i".into(), Value::from(i as u64));
            w.append(
                nonce(((head.seq + 1) as u128) << 32 | i as u128),
                "tick".into(),
                p,
            )
            .expect("event signs")
        })
        .collect()
}

/// A chain of `n` events (genesis included) for `key` in `store`.
fn chain(store: &mut dyn EventStore, key: &Keypair, n: usize) -> Vec<SignedEvent> {
    let mut all = vec![genesis(key)];
    store.append(&all).expect("genesis appends");
    while all.len() < n {
        let head = Head::of(all.last().expect("not empty"));
        let batch = events_after(key, &head, (n - all.len()).min(7));
        store.append(&batch).expect("a continuing batch appends");
        all.extend(batch);
    }
    all
}

fn read_all(store: &dyn EventStore, agent: &AgentId, from: u64, to: Option<u64>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    store
        .scan(agent, from, to, &mut |seq, body| {
            assert_eq!(seq, from + out.len() as u64, "scan yields seqs in order");
            out.push(body.to_vec());
            Ok(ControlFlow::Continue(()))
        })
        .expect("scan");
    out
}

fn empty_store(store: &mut dyn EventStore) {
    let agent = key(1).agent_id().clone();
    assert_eq!(store.head(&agent).unwrap(), None, "no head");
    assert!(store.agents().unwrap().is_empty(), "no agents");
    assert!(
        read_all(store, &agent, 0, None).is_empty(),
        "nothing to scan"
    );
    assert_eq!(store.tree_node(&agent, 0, 0).unwrap(), None, "no tree");
    assert!(
        store.checkpoints(&agent).unwrap().is_empty(),
        "no checkpoints"
    );
    assert!(
        store.quarantined(&agent).unwrap().is_empty(),
        "no quarantine"
    );
    assert_eq!(
        store.state(&agent, "transport/x").unwrap(),
        None,
        "no state"
    );
}

fn append_and_scan(store: &mut dyn EventStore) {
    let k = key(1);
    let events = chain(store, &k, 20);
    let agent = k.agent_id();
    assert_eq!(
        store.head(agent).unwrap(),
        Some(Head::of(&events[19])),
        "head"
    );
    let bodies = read_all(store, agent, 0, None);
    assert_eq!(bodies.len(), 20, "every event is read back");
    for (ev, body) in events.iter().zip(&bodies) {
        assert_eq!(
            ev.canonical(),
            body.as_slice(),
            "bytes read back as appended"
        );
    }
    assert_eq!(
        read_all(store, agent, 5, Some(9)).len(),
        5,
        "a range reads from..=to"
    );
    assert_eq!(
        read_all(store, agent, 19, Some(100)).len(),
        1,
        "to beyond the head"
    );
    assert!(
        read_all(store, agent, 20, None).is_empty(),
        "from beyond the head"
    );
    let mut seen = 0;
    store
        .scan(agent, 0, None, &mut |_, _| {
            seen += 1;
            Ok(if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
    assert_eq!(seen, 3, "scan stops when told");
    assert_eq!(store.agents().unwrap(), vec![agent.clone()], "agents");
}

fn refused_batches_write_nothing(store: &mut dyn EventStore) {
    let k = key(1);
    let events = chain(store, &k, 4);
    let agent = k.agent_id();
    let head = Head::of(&events[3]);
    let before = read_all(store, agent, 0, None);
    let good = events_after(&k, &head, 3);

    // A batch whose third event does not continue the second: nothing lands.
    let mut broken = good.clone();
    broken[2] = events_after(&k, &Head::of(&good[0]), 1).remove(0);
    let e = store.append(&broken).unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict { .. } | StoreError::Invalid(_)),
        "a gap inside a batch: {e}"
    );
    assert_eq!(
        read_all(store, agent, 0, None),
        before,
        "a refused batch writes nothing"
    );

    // A stale batch (built on an older head) is a conflict.
    let stale = events_after(&k, &Head::of(&events[2]), 1);
    let e = store.append(&stale).unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict { .. }),
        "a stale batch: {e}"
    );

    // The right seq with another prev_hash is refused.
    let mut other_head = head.clone();
    other_head.hash = Hash32::of(b"another history");
    let forked = events_after(&k, &other_head, 1);
    let e = store.append(&forked).unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "a fork: {e}");

    // Time may not go back.
    let mut w = ChainWriter::new(
        &k,
        Head {
            timestamp: at(-100),
            ..head.clone()
        },
        at(-100),
    );
    let early = w.append(nonce(999), "tick".into(), Map::new()).unwrap();
    let e = store.append(&[early]).unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "time going back: {e}");

    // Another agent's event is not part of this chain.
    let other = key(2);
    let foreign = events_after(&other, &head, 1);
    let e = store
        .append_with(agent, &mut |_| Ok(foreign.clone()))
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Invalid(_)),
        "another agent's event: {e}"
    );

    // An empty batch and a failing build write nothing.
    assert!(
        store.append_with(agent, &mut |_| Ok(Vec::new())).is_err(),
        "empty batch"
    );
    let e = store
        .append_with(agent, &mut |_| {
            Err(StoreError::Invalid("build failed".into()))
        })
        .unwrap_err();
    assert!(
        e.to_string().contains("build failed"),
        "the build's error is returned: {e}"
    );
    assert_eq!(
        read_all(store, agent, 0, None),
        before,
        "nothing was written"
    );
    assert_eq!(
        store.head(agent).unwrap(),
        Some(head),
        "the head did not move"
    );

    // A second genesis is refused.
    let e = store.append(&[genesis(&k)]).unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict { .. }),
        "a second genesis: {e}"
    );

    store.append(&good).expect("the good batch still appends");
}

fn build_sees_the_head(store: &mut dyn EventStore) {
    let k = key(1);
    let agent = k.agent_id().clone();
    let mut saw = None;
    let g = genesis(&k);
    store
        .append_with(&agent, &mut |head| {
            saw = Some(head.cloned());
            Ok(vec![g.clone()])
        })
        .unwrap();
    assert_eq!(saw, Some(None), "an empty chain has no head");
    let written = store
        .append_with(&agent, &mut |head| {
            let head = head.expect("a head after genesis");
            assert_eq!(head, &Head::of(&g), "the build sees the current head");
            Ok(events_after(&k, head, 2))
        })
        .unwrap();
    assert_eq!(written.len(), 2, "the built events are returned");
    assert_eq!(written[1].seq(), 2);
}

fn state_moves_with_the_chain(store: &mut dyn EventStore) {
    let k = key(1);
    let events = chain(store, &k, 2);
    let agent = k.agent_id();
    let head = Head::of(&events[1]);
    let mut seen = Vec::new();
    store
        .append_with_state(agent, &["handoff/a", "handoff/b"], &mut |h, state| {
            seen = state.to_vec();
            Ok((
                events_after(&k, h.expect("head"), 1),
                vec![
                    SideWrite::Set {
                        key: "handoff/a".into(),
                        value: b"1".to_vec(),
                    },
                    SideWrite::Set {
                        key: "handoff/b".into(),
                        value: b"2".to_vec(),
                    },
                ],
            ))
        })
        .unwrap();
    assert_eq!(seen, vec![None, None], "absent keys read as None");
    assert_eq!(
        store.state(agent, "handoff/a").unwrap(),
        Some(b"1".to_vec())
    );
    // A refused append drops its state writes too.
    let stale = events_after(&k, &head, 1);
    let e = store
        .append_with_state(agent, &["handoff/a"], &mut |_, _| {
            Ok((
                stale.clone(),
                vec![SideWrite::Set {
                    key: "handoff/a".into(),
                    value: b"lost".to_vec(),
                }],
            ))
        })
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
    assert_eq!(
        store.state(agent, "handoff/a").unwrap(),
        Some(b"1".to_vec()),
        "state written with a refused batch must not land"
    );
    store
        .append_with_state(agent, &["handoff/a", "handoff/b"], &mut |h, state| {
            assert_eq!(
                state,
                [Some(b"1".to_vec()), Some(b"2".to_vec())],
                "values read back"
            );
            Ok((
                events_after(&k, h.expect("head"), 1),
                vec![SideWrite::Remove {
                    key: "handoff/a".into(),
                }],
            ))
        })
        .unwrap();
    assert_eq!(store.state(agent, "handoff/a").unwrap(), None, "removed");
    assert_eq!(
        store.state(agent, "handoff/b").unwrap(),
        Some(b"2".to_vec())
    );
}

fn transport_state(store: &mut dyn EventStore) {
    let k = key(1);
    chain(store, &k, 1);
    let agent = k.agent_id();
    let key = format!("{TRANSPORT_PREFIX}pending");
    store.put_state(agent, &key, Some(b"v")).unwrap();
    assert_eq!(store.state(agent, &key).unwrap(), Some(b"v".to_vec()));
    store.put_state(agent, &key, Some(b"w")).unwrap();
    assert_eq!(
        store.state(agent, &key).unwrap(),
        Some(b"w".to_vec()),
        "replaced"
    );
    store.put_state(agent, &key, None).unwrap();
    assert_eq!(store.state(agent, &key).unwrap(), None, "removed");
    store.put_state(agent, &key, None).unwrap();
    let e = store
        .put_state(agent, "handoff/in/x", Some(b"v"))
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Invalid(_)),
        "chain state outside an append: {e}"
    );
    assert_eq!(store.state(agent, "handoff/in/x").unwrap(), None);
}

fn quarantine(store: &mut dyn EventStore) {
    let k = key(1);
    chain(store, &k, 1);
    let agent = k.agent_id();
    for (i, reason) in ["bad signature", "replay"].iter().enumerate() {
        store
            .append_with_state(agent, &[], &mut |h, _| {
                Ok((
                    events_after(&k, h.expect("head"), 1),
                    vec![SideWrite::Quarantine {
                        received_at: at(i as i64).to_string(),
                        reason: (*reason).into(),
                        item: vec![i as u8; 3],
                    }],
                ))
            })
            .unwrap();
    }
    let q = store.quarantined(agent).unwrap();
    assert_eq!(q.len(), 2, "both items kept");
    assert_eq!(q[0].reason, "bad signature", "oldest first");
    assert_eq!(q[1].item, vec![1u8; 3]);
    assert!(q[0].id < q[1].id, "ids increase");
    assert!(
        store.quarantined(key(2).agent_id()).unwrap().is_empty(),
        "per agent"
    );
}

struct StoreNodes<'a>(&'a dyn EventStore, &'a AgentId, u64);

impl Nodes for StoreNodes<'_> {
    fn size(&self) -> u64 {
        self.2
    }
    fn node(&self, level: u32, index: u64) -> Result<Hash32, merkle::MerkleError> {
        self.0
            .tree_node(self.1, level, index)
            .map_err(|e| merkle::MerkleError::Storage(e.to_string()))?
            .ok_or_else(|| merkle::MerkleError::Storage(format!("no node ({level}, {index})")))
    }
}

fn tree_index(store: &mut dyn EventStore) {
    let k = key(1);
    let events = chain(store, &k, 37);
    let agent = k.agent_id();
    let leaves: Vec<Hash32> = events
        .iter()
        .map(|e| merkle::leaf_hash(e.canonical()))
        .collect();
    let nodes = StoreNodes(store, agent, 37);
    for size in 1..=37u64 {
        assert_eq!(
            nodes.root(size).unwrap(),
            merkle::root_of(&leaves[..size as usize]),
            "root of {size} events from the index"
        );
    }
    assert_eq!(
        store.tree_node(agent, 0, 36).unwrap(),
        Some(leaves[36]),
        "level 0 holds the leaf hashes"
    );
    assert_eq!(
        store.tree_node(agent, 0, 37).unwrap(),
        None,
        "no leaf beyond the chain"
    );
    assert_eq!(
        store.tree_node(agent, 3, 4).unwrap(),
        None,
        "an incomplete subtree (leaves 32..40 of 37) is absent"
    );
}

fn checkpoints(store: &mut dyn EventStore) {
    let k = key(1);
    let events = chain(store, &k, 5);
    let agent = k.agent_id();
    let note = |size: u64, root: Hash32| {
        Checkpoint {
            origin: Checkpoint::origin_of(agent),
            size,
            root,
        }
        .sign(&k)
        .expect("a checkpoint signs")
        .to_bytes()
    };
    let leaves: Vec<Hash32> = events
        .iter()
        .map(|e| merkle::leaf_hash(e.canonical()))
        .collect();
    let five = note(5, merkle::root_of(&leaves));
    let three = note(3, merkle::root_of(&leaves[..3]));
    store.record_checkpoint(agent, 5, &five).unwrap();
    store.record_checkpoint(agent, 3, &three).unwrap();
    store
        .record_checkpoint(agent, 5, &five)
        .expect("recording the same note again is a no-op");
    let e = store
        .record_checkpoint(agent, 5, &note(5, Hash32::ZERO))
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Invalid(_)),
        "another note of a recorded size: {e}"
    );
    assert_eq!(
        store.checkpoints(agent).unwrap(),
        vec![(3, three), (5, five)],
        "listed by size, the refused note absent"
    );
}

fn several_agents(store: &mut dyn EventStore) {
    let (a, b) = (key(1), key(2));
    chain(store, &a, 9);
    chain(store, &b, 4);
    assert_eq!(store.head(a.agent_id()).unwrap().map(|h| h.seq), Some(8));
    assert_eq!(store.head(b.agent_id()).unwrap().map(|h| h.seq), Some(3));
    assert_eq!(
        read_all(store, b.agent_id(), 0, None).len(),
        4,
        "chains do not mix"
    );
    let mut agents = store.agents().unwrap();
    let mut want = vec![a.agent_id().clone(), b.agent_id().clone()];
    agents.sort();
    want.sort();
    assert_eq!(agents, want);
    let e = store
        .append(&events_after(
            &a,
            &store.head(b.agent_id()).unwrap().unwrap(),
            1,
        ))
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict { .. } | StoreError::Invalid(_)),
        "a's event on b's head: {e}"
    );
}
