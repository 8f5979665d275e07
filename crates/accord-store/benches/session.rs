//! Co-signed sessions and handoffs through real (durable) stores, and the
//! handshake's cryptography alone for comparison with the Ed25519 floor.
//!
//! `cargo bench -p accord-store --bench session`

use accord_core::handoff::DEFAULT_WINDOW_MICROS;
use accord_core::keyfile::KdfParams;
use accord_core::session::{self, ProposalParams};
use accord_core::{Keypair, Map, Timestamp, Uuid, Value};
use accord_store::participant::{Participant, Session, Wire};
use accord_store::{Agent, Home};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn agent(dir: &std::path::Path, name: &str) -> Agent {
    Home::new(dir.join(name))
        .init(Some(name), None, KdfParams::DEFAULT)
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("session");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));

    // The four messages of a handshake, signed and checked, no storage.
    let (ki, kr) = (
        Keypair::from_seed(&[1; 32]).unwrap(),
        Keypair::from_seed(&[2; 32]).unwrap(),
    );
    let now = Timestamp::from_unix_micros(1_790_000_000_000_000).unwrap();
    let ids = [ki.agent_id().clone(), kr.agent_id().clone()];
    let mut n = 0u128;
    g.bench_function("handshake_crypto_only", |b| {
        b.iter(|| {
            n += 1;
            let p = session::propose(
                &ki,
                &ProposalParams {
                    session_id: Uuid::from_u128(n),
                    to: kr.agent_id(),
                    participants: &ids,
                    capabilities: &[],
                    nonce: Uuid::from_u128(n),
                    timestamp: now.clone(),
                },
            )
            .unwrap();
            let cp =
                session::check_proposal(p.canonical(), kr.agent_id(), &now, i64::MAX / 2).unwrap();
            let r = session::respond(&kr, &cp, &[], &now).unwrap();
            let cr = session::check_response(r.canonical(), &p, &now, i64::MAX / 2).unwrap();
            let c = session::confirm(&ki, &cr, &now).unwrap();
            session::check_confirm(c.canonical(), &cp, &r, &now, i64::MAX / 2).unwrap()
        })
    });

    // A full handshake between two stores: session.start and a2a.handshake
    // recorded durably on both sides.
    let mut a = Participant::new(agent(dir.path(), "a"), vec![]);
    let mut b = Participant::new(agent(dir.path(), "b"), vec![]);
    let pair = [a.id().clone(), b.id().clone()];
    g.bench_function("handshake_durable", |bch| {
        bch.iter(|| {
            let sid = accord_store::home::nonce().unwrap();
            a.open_session(sid, &pair).unwrap();
            let p = a.propose(sid, &pair[1], &pair).unwrap();
            let Wire::Response(r) = b.handle(p).unwrap() else {
                panic!("response")
            };
            let c = a.on_response(&r).unwrap();
            b.handle(c).unwrap()
        })
    });

    // A co-signed stamp: request, countersignature, one durable event in
    // each chain.
    let members = vec![
        Participant::new(agent(dir.path(), "x"), vec![]),
        Participant::new(agent(dir.path(), "y"), vec![]),
    ];
    let xy: Vec<_> = members.iter().map(|m| m.id().clone()).collect();
    let mut s = Session::start(members).unwrap();
    let mut data = Map::new();
    data.insert("task_id".into(), Value::from("T-1"));
    data.insert("task".into(), Value::from("summarise the quarterly report"));
    g.bench_function("cosigned_stamp_durable", |bch| {
        bch.iter(|| {
            s.stamp(&xy[0], &xy[1], "task.delegation", data.clone())
                .unwrap()
        })
    });

    // A handoff of 1 KiB: receipt signed and recorded, verified and
    // accepted by the receiver.
    let mut snd = agent(dir.path(), "snd");
    let mut rcv = agent(dir.path(), "rcv");
    let rid = rcv.key().agent_id().clone();
    let doc = vec![42u8; 1024];
    g.bench_function("handoff_send_accept_1k", |bch| {
        bch.iter(|| {
            let (r, _) = snd.send_handoff(&rid, &mut doc.as_slice(), None).unwrap();
            rcv.accept_handoff(
                r.canonical(),
                &mut doc.as_slice(),
                None,
                DEFAULT_WINDOW_MICROS,
            )
            .unwrap()
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(session_benches, benches);
criterion_main!(session_benches);
