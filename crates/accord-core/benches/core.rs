//! Core costs per event: sign, verify (strict and batched), canonicalise,
//! build+sign an event, parse an event, verify a chain.
//!
//! `cargo bench -p accord-core --bench core`

use std::hint::black_box;

use accord_core::{
    ChainVerifier, Event, Keypair, Map, SignatureMode, SignedEvent, Timestamp, Value, jcs,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn payload() -> Map<String, Value> {
    match serde_json::json!({
        "task_id": "T-104",
        "step": 7,
        "tool": "search",
        "input_hash": "5f0c6a1d9b7e43a2c8e1f0a9b3d2c4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2",
        "status": "ok"
    }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn chain(key: &Keypair, n: u64) -> Vec<SignedEvent> {
    let t = Timestamp::parse("2026-11-24T10:00:00.000000Z").unwrap();
    let nonce = |i: u64| {
        let mut b = [7u8; 16];
        b[..8].copy_from_slice(&i.to_le_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid()
    };
    let mut out = vec![
        Event::genesis(key.public(), t.clone(), nonce(0), Map::new())
            .sign(key)
            .unwrap(),
    ];
    for i in 1..n {
        let prev = out.last().unwrap();
        let ev = Event {
            agent_id: key.agent_id().clone(),
            seq: i,
            timestamp: t.clone(),
            nonce: nonce(i),
            event_type: "tool_call".into(),
            payload: payload(),
            prev_hash: prev.hash(),
            public_key: None,
        };
        out.push(ev.sign(key).unwrap());
    }
    out
}

fn benches(c: &mut Criterion) {
    let key = Keypair::from_seed(&[1u8; 32]).unwrap();
    let events = chain(&key, 1024);
    let sample = events[5].clone();
    let msg = sample.signing_message();

    let mut g = c.benchmark_group("ed25519");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign", |b| b.iter(|| key.sign(black_box(&msg))));
    let sig = key.sign(&msg);
    g.bench_function("verify_strict", |b| {
        b.iter(|| key.public().verify_strict(black_box(&msg), &sig))
    });
    g.throughput(Throughput::Elements(64));
    let msgs: Vec<&[u8]> = (0..64).map(|_| msg.as_slice()).collect();
    let sigs = vec![sig; 64];
    // What SignatureMode::Batch runs: the strict equation with the key's
    // table (built once per chain, outside the loop).
    let verifier = key.public().verifier();
    g.bench_function("verify_keyed_64", |b| {
        b.iter(|| verifier.first_invalid(black_box(&msgs), &sigs))
    });
    g.finish();

    let mut g = c.benchmark_group("jcs");
    let text = br#"{ "b": [1, 2.5, "x\u00e9"], "a": {"z": null, "y": true}, "task_id": "T-104", "step": 7 }"#;
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("canonicalize_small", |b| {
        b.iter(|| jcs::canonicalize(black_box(text)).unwrap())
    });
    let v = Value::Object(payload());
    g.bench_function("write_payload", |b| b.iter(|| jcs::to_vec(black_box(&v))));
    g.finish();

    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Elements(1));
    let template = sample.event().clone();
    g.bench_function("build_and_sign", |b| {
        b.iter_batched(
            || template.clone(),
            |e| e.sign(&key).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("parse_canonical", |b| {
        b.iter(|| SignedEvent::from_canonical(black_box(sample.canonical())).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("chain");
    g.throughput(Throughput::Elements(events.len() as u64));
    for (name, mode) in [
        ("verify_1024_batch", SignatureMode::Batch),
        ("verify_1024_strict", SignatureMode::Strict),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut v = ChainVerifier::new(mode);
                for e in &events {
                    v.push_bytes(e.canonical()).unwrap();
                }
                v.finish().unwrap()
            })
        });
    }
    g.finish();
}

/// RFC 9162 trees over a chain of 10^6 events: building all levels, and
/// making and checking inclusion and consistency proofs.
fn merkle_benches(c: &mut Criterion) {
    use accord_core::merkle::{Levels, Nodes, leaf_hash, verify_consistency, verify_inclusion};
    const N: u64 = 1_000_000;
    let leaves: Vec<_> = (0..N).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    let mut g = c.benchmark_group("merkle_1m");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    g.bench_function("build_levels", |b| {
        b.iter(|| Levels::new(black_box(leaves.clone())))
    });
    let tree = Levels::new(leaves.clone());
    let root = tree.root(N).unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("root", |b| b.iter(|| tree.root(black_box(N)).unwrap()));
    g.bench_function("inclusion_proof", |b| {
        b.iter(|| tree.inclusion_proof(black_box(654_321), N).unwrap())
    });
    let incl = tree.inclusion_proof(654_321, N).unwrap();
    g.bench_function("verify_inclusion", |b| {
        b.iter(|| verify_inclusion(654_321, N, &leaves[654_321], black_box(&incl), &root).unwrap())
    });
    g.bench_function("consistency_proof", |b| {
        b.iter(|| tree.consistency_proof(black_box(777_777), N).unwrap())
    });
    let cons = tree.consistency_proof(777_777, N).unwrap();
    let old = tree.root(777_777).unwrap();
    g.bench_function("verify_consistency", |b| {
        b.iter(|| verify_consistency(777_777, N, &old, &root, black_box(&cons)).unwrap())
    });
    g.finish();
}

criterion_group!(core, benches, merkle_benches);
criterion_main!(core);
