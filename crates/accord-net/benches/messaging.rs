//! Messaging benchmarks: session setup, the per-message channel cost next
//! to its Ed25519 floor, and 1 KiB messages end to end through the
//! in-process hub and the TCP hub on loopback (throughput with criterion,
//! then p50/p99 latency printed by a separate pass).
//!
//! `cargo bench -p accord-net --bench messaging`; figures in
//! docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use accord_core::Keypair;
use accord_core::channel::{Bundle, Draft, ExchangeSecret, Session};
use accord_core::{Map, Timestamp, Uuid};
use accord_net::{Agent, AgentOptions, HubServer, Limits, LocalHub};
use criterion::{Criterion, Throughput};
use rand_core::UnwrapErr;

const BATCH: u64 = 1000;

fn text_1k() -> String {
    "x".repeat(1024)
}

fn bundle_pair() -> (Keypair, Keypair, ExchangeSecret, Bundle) {
    let s = Keypair::from_seed(&[1; 32]).unwrap();
    let r = Keypair::from_seed(&[2; 32]).unwrap();
    let x = ExchangeSecret::generate(&[3; 32]);
    let b = Bundle::sign(
        &r,
        &x,
        Timestamp::parse("2026-01-01T00:00:00.000000Z").unwrap(),
        Timestamp::parse("2026-01-03T00:00:00.000000Z").unwrap(),
    );
    (s, r, x, b)
}

fn draft(text: &str) -> Draft {
    Draft {
        id: Uuid::nil(),
        timestamp_ms: 1,
        msg_type: "message".into(),
        text: text.into(),
        payload: Map::new(),
    }
}

fn core_benches(c: &mut Criterion) {
    let (s, r, x, bundle) = bundle_pair();
    let mut g = c.benchmark_group("channel");
    g.bench_function("session_setup (HPKE both sides)", |b| {
        b.iter(|| {
            let mut tx = Session::initiate(
                s.agent_id(),
                &bundle,
                [7; 16],
                0,
                &mut UnwrapErr(getrandom::SysRng),
            )
            .unwrap();
            let (env, _) = tx.seal(&s, draft("")).unwrap();
            Session::respond(r.agent_id(), &x, &env, 0).unwrap()
        })
    });
    let text = text_1k();
    g.throughput(Throughput::Elements(1));
    g.bench_function("seal+open 1 KiB (sign, AES-GCM, verify)", |b| {
        let mut tx = Session::initiate(
            s.agent_id(),
            &bundle,
            [8; 16],
            0,
            &mut UnwrapErr(getrandom::SysRng),
        )
        .unwrap();
        let (first, _) = tx.seal(&s, draft(&text)).unwrap();
        let mut rx = Session::respond(r.agent_id(), &x, &first, 0).unwrap();
        b.iter(|| {
            let (env, _) = tx.seal(&s, draft(&text)).unwrap();
            rx.open(&env, s.public()).unwrap()
        })
    });
    let msg = vec![b'x'; 1300];
    g.bench_function("floor: Ed25519 sign + strict verify of 1.3 KB", |b| {
        b.iter(|| {
            let sig = s.sign(&msg);
            assert!(s.public().verify_strict(&msg, &sig));
        })
    });
    g.finish();
}

struct Pair {
    _dir: tempfile::TempDir,
    alice: Agent,
    bob: Agent,
    rx: tokio::sync::mpsc::UnboundedReceiver<accord_core::channel::SignedMessage>,
}

async fn pair(hub: accord_net::agent::HubAddr, record: bool) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let opts = AgentOptions { record };
    let alice = Agent::init(&dir.path().join("a"), None, None, opts).unwrap();
    let bob = Agent::init(&dir.path().join("b"), None, None, opts).unwrap();
    alice.attach(hub.clone()).await.unwrap();
    bob.attach(hub).await.unwrap();
    let rx = bob.subscribe();
    // First message opens the session; not measured.
    alice
        .send(bob.agent_id().as_str(), "warm-up")
        .await
        .unwrap();
    let mut p = Pair {
        _dir: dir,
        alice,
        bob,
        rx,
    };
    p.rx.recv().await.unwrap();
    p
}

/// Concurrent senders per burst: sends are pipelined (each awaits the
/// hub's verdict, several are in flight), as an agent busy with many tasks
/// would send.
const SENDERS: u64 = 8;

/// Sends `n` messages from `SENDERS` tasks and waits until all arrived.
async fn burst(p: &mut Pair, n: u64, text: &str) -> Duration {
    let start = Instant::now();
    let to = p.bob.agent_id().to_string();
    let mut tasks = Vec::new();
    for _ in 0..SENDERS {
        let (a, to, text) = (p.alice.clone(), to.clone(), text.to_owned());
        tasks.push(tokio::spawn(async move {
            for _ in 0..n / SENDERS {
                a.send(&to, &text).await.unwrap();
            }
        }));
    }
    for _ in 0..(n / SENDERS) * SENDERS {
        tokio::time::timeout(Duration::from_secs(30), p.rx.recv())
            .await
            .expect("messages lost")
            .unwrap();
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

async fn latencies(p: &mut Pair, n: usize, text: &str) -> (Duration, Duration) {
    let to = p.bob.agent_id().to_string();
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        p.alice.send(&to, text).await.unwrap();
        p.rx.recv().await.unwrap();
        v.push(t.elapsed());
    }
    v.sort();
    (v[n / 2], v[n * 99 / 100])
}

fn hub_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = text_1k();
    let local = LocalHub::new().unwrap();
    let tcp_addr = rt.block_on(async {
        let server = HubServer::bind("127.0.0.1:0", None, Limits::default())
            .await
            .unwrap();
        let addr = server.local_addr().unwrap().to_string();
        tokio::spawn(server.run());
        addr
    });
    let mut g = c.benchmark_group("hub");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for (name, addr, record) in [
        (
            "in-process 1 KiB",
            accord_net::agent::HubAddr::from(&local),
            true,
        ),
        (
            "in-process 1 KiB, chain recording off",
            (&local).into(),
            false,
        ),
        ("tcp loopback 1 KiB", tcp_addr.clone().into(), true),
    ] {
        let mut p = rt.block_on(pair(addr, record));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(burst(&mut p, BATCH, &text));
                }
                total
            })
        });
    }
    g.finish();

    println!("\nlatency, 1 KiB, send -> handler, one message at a time (2000 samples):");
    for (name, addr) in [
        ("in-process", accord_net::agent::HubAddr::from(&local)),
        ("tcp loopback", tcp_addr.into()),
    ] {
        let mut p = rt.block_on(pair(addr, true));
        let (p50, p99) = rt.block_on(latencies(&mut p, 2000, &text));
        println!("  {name:<14} p50 {p50:?}  p99 {p99:?}");
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    core_benches(&mut c);
    hub_benches(&mut c);
    c.final_summary();
}
