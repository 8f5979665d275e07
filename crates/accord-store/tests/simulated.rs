//! Sessions, handoffs and chains with no SQLite, no sockets and no wall
//! clock: agents over [`MemoryStore`]s, all on one [`ManualEnv`], driven to
//! chosen instants. The same seeds give the same chains, byte for byte.

use std::sync::Arc;

use accord_core::handoff::{DEFAULT_WINDOW_MICROS, HandoffError};
use accord_core::session::SessionError;
use accord_core::{Keypair, Map, SignatureMode, Timestamp, Value};
use accord_store::home::verify_store;
use accord_store::participant::{Participant, ParticipantError, Session, Wire};
use accord_store::{Agent, EventStore, ManualEnv, MemoryStore};

const START: i64 = 1_800_000_000_000_000;

fn clock(seed: u64) -> ManualEnv {
    ManualEnv::new(&Timestamp::from_unix_micros(START).unwrap(), seed)
}

fn agent(n: u8, name: &str, env: &ManualEnv) -> Agent<MemoryStore> {
    let key = Keypair::from_seed(&[n; 32]).unwrap();
    Agent::create_in(key, MemoryStore::new(), Some(name), Arc::new(env.clone())).unwrap()
}

fn data(k: &str, v: &str) -> Map<String, Value> {
    Map::from_iter([(k.to_owned(), Value::from(v))])
}

fn export(a: &Agent<MemoryStore>) -> Vec<u8> {
    let mut out = Vec::new();
    a.export(&mut out, &mut |_| {}).unwrap();
    out
}

/// A three-agent session on a virtual clock: one minute between steps.
fn run(seed: u64) -> Vec<Vec<u8>> {
    let env = clock(seed);
    let members: Vec<Participant<MemoryStore>> = ["planner", "executor", "reviewer"]
        .iter()
        .zip(1u8..)
        .map(|(name, n)| Participant::new(agent(n, name, &env), vec!["review".into()]))
        .collect();
    let ids: Vec<_> = members.iter().map(|m| m.id().clone()).collect();
    env.advance_secs(60);
    let mut s = Session::start(members).unwrap();
    env.advance_secs(60);
    s.stamp(&ids[0], &ids[1], "task.delegation", data("task", "T-1"))
        .unwrap();
    env.advance_secs(60);
    s.stamp(&ids[1], &ids[2], "task.completed", data("result", "ok"))
        .unwrap();
    env.advance_secs(60);
    let agents: Vec<Agent<MemoryStore>> = s
        .end()
        .unwrap()
        .into_iter()
        .map(Participant::into_agent)
        .collect();
    for a in &agents {
        let s = verify_store(
            a.store(),
            a.key().agent_id(),
            SignatureMode::Strict,
            &mut |_| {},
        )
        .unwrap()
        .expect("every chain verifies");
        assert_eq!(
            s.last_timestamp,
            Timestamp::from_unix_micros(START + 240_000_000).unwrap(),
            "events carry the virtual time"
        );
    }
    agents.iter().map(export).collect()
}

#[test]
fn a_session_runs_on_memory_stores_and_a_virtual_clock() {
    let chains = run(7);
    assert_eq!(chains.len(), 3);
    // Exports end with a seal whose time is the clock's too: same seed,
    // same bytes.
    assert_eq!(run(7), chains, "the same seed gives the same chains");
    assert_ne!(run(8), chains, "another seed gives other nonces");
}

/// The handshake's clock window (±300 s) decided at chosen instants.
#[test]
fn a_proposal_older_than_the_clock_window_is_refused() {
    for (delay, accepted) in [(299, true), (301, false)] {
        let env = clock(1);
        let mut a = Participant::new(agent(1, "a", &env), vec![]);
        let mut b = Participant::new(agent(2, "b", &env), vec![]);
        let sid = a.agent().nonce().unwrap();
        let ids = [a.id().clone(), b.id().clone()];
        a.open_session(sid, &ids).unwrap();
        b.open_session(sid, &ids).unwrap();
        let proposal = a.propose(sid, &ids[1], &ids).unwrap();
        env.advance_secs(delay);
        match b.handle(proposal) {
            Ok(Wire::Response(_)) => assert!(accepted, "a proposal {delay} s old was answered"),
            Err(ParticipantError::Protocol(SessionError::Stale { .. })) => {
                assert!(!accepted, "a proposal {delay} s old was refused")
            }
            other => panic!("unexpected: {other:?}"),
        }
    }
}

/// A handoff receipt is accepted inside its window and quarantined after
/// it, at instants the test chooses.
#[test]
fn a_handoff_expires_on_the_virtual_clock() {
    for (delay, accepted) in [(10, true), (DEFAULT_WINDOW_MICROS / 1_000_000 + 1, false)] {
        let env = clock(2);
        let mut sender = agent(1, "sender", &env);
        let mut receiver = agent(2, "receiver", &env);
        let payload = b"quarterly figures".to_vec();
        let (receipt, _) = sender
            .send_handoff(
                receiver.key().agent_id(),
                &mut payload.as_slice(),
                Some("T-9"),
            )
            .unwrap();
        env.advance_secs(delay);
        let verdict = receiver
            .accept_handoff(
                receipt.canonical(),
                &mut payload.as_slice(),
                Some(sender.key().agent_id()),
                DEFAULT_WINDOW_MICROS,
            )
            .unwrap();
        match verdict {
            Ok((a, _)) => {
                assert!(accepted, "accepted {delay} s late");
                assert_eq!(a.seq, 1);
            }
            Err(refused) => {
                assert!(!accepted, "refused after {delay} s: {}", refused.reason);
                assert!(matches!(refused.reason, HandoffError::Expired { .. }));
                let q = receiver
                    .store()
                    .quarantined(receiver.key().agent_id())
                    .unwrap();
                assert_eq!(q.len(), 1, "the refused receipt is quarantined");
            }
        }
        // Either way the receiver's chain records the decision and verifies.
        let id = receiver.key().agent_id().clone();
        assert!(
            verify_store(receiver.store(), &id, SignatureMode::Strict, &mut |_| {})
                .unwrap()
                .is_ok()
        );
    }
}

/// A replayed handshake proposal is refused, with no wall clock involved.
#[test]
fn a_replayed_proposal_is_refused() {
    let env = clock(3);
    let mut a = Participant::new(agent(1, "a", &env), vec![]);
    let mut b = Participant::new(agent(2, "b", &env), vec![]);
    let sid = a.agent().nonce().unwrap();
    let ids = [a.id().clone(), b.id().clone()];
    a.open_session(sid, &ids).unwrap();
    b.open_session(sid, &ids).unwrap();
    let proposal = a.propose(sid, &ids[1], &ids).unwrap();
    let Wire::Response(r) = b.handle(proposal.clone()).unwrap() else {
        panic!("no response");
    };
    let confirm = a.on_response(&r).unwrap();
    b.handle(confirm).unwrap();
    env.advance_secs(5);
    let again = b.handle(proposal);
    assert!(
        again.is_err(),
        "a replayed proposal must be refused: {again:?}"
    );
}
