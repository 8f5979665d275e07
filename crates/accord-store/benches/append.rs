//! Durable appends to the SQLite store: batches of 1000 events (one fsync
//! each) and single-event appends.
//!
//! `cargo bench -p accord-store --bench append`

use accord_core::keyfile::KdfParams;
use accord_core::{Map, Value};
use accord_store::Home;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn item(i: u64) -> (String, Map<String, Value>) {
    let mut m = Map::new();
    m.insert("task_id".into(), Value::from(format!("T-{}", i / 10)));
    m.insert("step".into(), Value::from(i));
    m.insert("tool".into(), Value::from("search"));
    ("tool_call".into(), m)
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Home::new(dir.path().join("a"))
        .init(None, None, KdfParams::DEFAULT)
        .unwrap();
    let mut g = c.benchmark_group("append");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1000));
    let mut i = 0u64;
    g.bench_function("batch_1000_durable", |b| {
        b.iter(|| {
            let items = (i..i + 1000).map(item).collect();
            i += 1000;
            agent.stamp_batch(items).unwrap()
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("single_durable", |b| {
        b.iter(|| {
            i += 1;
            agent.stamp_batch(vec![item(i)]).unwrap()
        })
    });
    g.finish();
}

criterion_group!(append, benches);
criterion_main!(append);
