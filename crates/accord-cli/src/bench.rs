//! `accord bench`: throughput of the real paths (durable batched append,
//! store verification, export verification, single-append latency) next to
//! the Ed25519 floor measured on the same machine, single-threaded.

use std::io::BufWriter;
use std::time::{Duration, Instant};

use accord_core::export::ExportVerifier;
use accord_core::keyfile::KdfParams;
use accord_core::merkle::Nodes;
use accord_core::{Keypair, Map, SignatureMode, Value};
use accord_store::home::verify_store;
use accord_store::{EventStore, Home};
use clap::Args;
use serde_json::json;

use crate::exit::{CliError, Code};

/// Options of `accord bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Events to append and verify
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1_000..=10_000_000))]
    events: u64,
    /// Events per append transaction
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
    /// Single-event appends to time for latency
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=100_000))]
    single: u64,
    /// Machine-readable output
    #[arg(long)]
    json: bool,
}

fn payload(i: u64) -> Map<String, Value> {
    match json!({
        "task_id": format!("T-{}", i / 10),
        "step": i,
        "tool": "search",
        "input_hash": "5f0c6a1d9b7e43a2c8e1f0a9b3d2c4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2",
        "status": "ok"
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Runs the benchmark.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    let scratch = tempfile::tempdir()
        .map_err(|e| CliError::io(format!("cannot create a scratch directory: {e}")))?;
    let home = Home::new(scratch.path().join("agent"));
    let mut agent = home.init(Some("bench"), None, KdfParams::DEFAULT)?;
    let say = |s: &str| {
        if !args.json {
            eprintln!("{s}");
        }
    };

    // The crypto floor on this machine, one thread.
    say("measuring the Ed25519 floor…");
    let kp = Keypair::from_seed(&[42u8; 32]).map_err(|e| CliError::io(e.to_string()))?;
    let msg = vec![0x5au8; 400];
    let n_floor = 20_000u64;
    let t = Instant::now();
    let sigs: Vec<_> = (0..n_floor).map(|_| kp.sign(&msg)).collect();
    let sign_rate = per_sec(n_floor, t.elapsed());
    let t = Instant::now();
    let ok = sigs.iter().all(|s| kp.public().verify_strict(&msg, s));
    let verify_rate = per_sec(n_floor, t.elapsed());
    // What the default (batch) mode runs: the strict equation, 64 at a
    // time, with a table built once for the key (counted in the time).
    let t = Instant::now();
    let msgs: Vec<&[u8]> = (0..64).map(|_| msg.as_slice()).collect();
    let verifier = kp.public().verifier();
    let mut batch_ok = true;
    for chunk in sigs.chunks_exact(64) {
        batch_ok &= verifier.first_invalid(&msgs, chunk) == Ok(None);
    }
    let batch_rate = per_sec(n_floor / 64 * 64, t.elapsed());
    if !(ok && batch_ok) {
        return Err(CliError::new(
            Code::VerifyFailed,
            "floor signatures failed to verify",
        ));
    }

    say(&format!(
        "appending {} events in batches of {}…",
        args.events, args.batch
    ));
    let pb = crate::spinner("appending");
    let t = Instant::now();
    let mut done = 0u64;
    while done < args.events {
        let n = args.batch.min(args.events - done);
        let items = (done..done + n)
            .map(|i| ("tool_call".to_owned(), payload(i)))
            .collect();
        agent.stamp_batch(items)?;
        done += n;
        pb.set_position(done);
    }
    let append_time = t.elapsed();
    pb.finish_and_clear();

    say("verifying the store…");
    let id = agent.key().agent_id().clone();
    let t = Instant::now();
    let summary = verify_store(agent.store(), &id, SignatureMode::Batch, &mut |_| {})?
        .map_err(|f| CliError::new(Code::VerifyFailed, f.to_string()))?;
    let verify_time = t.elapsed();
    let t = Instant::now();
    verify_store(agent.store(), &id, SignatureMode::Strict, &mut |_| {})?
        .map_err(|f| CliError::new(Code::VerifyFailed, f.to_string()))?;
    let verify_strict_time = t.elapsed();

    say("exporting and verifying the export…");
    let mut export = Vec::new();
    agent.export(&mut BufWriter::new(&mut export), &mut |_| {})?;
    let t = Instant::now();
    let mut v = ExportVerifier::new(SignatureMode::Batch, true);
    for line in export.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        v.push_line(line)
            .map_err(|e| CliError::new(Code::VerifyFailed, e.to_string()))?;
    }
    v.finish()
        .map_err(|e| CliError::new(Code::VerifyFailed, e.to_string()))?;
    let export_verify_time = t.elapsed();

    say("checkpoint and proofs…");
    let t = Instant::now();
    let size = agent.tree()?.size();
    let (_, note) = agent.sign_checkpoint(size)?;
    let checkpoint_time = t.elapsed();
    let tree = agent.tree()?;
    let key = *agent.key().public();
    let seq = tree.size() / 2;
    let mut body = Vec::new();
    agent.store().scan(&id, seq, Some(seq), &mut |_, b| {
        body = b.to_vec();
        Ok(std::ops::ControlFlow::Break(()))
    })?;
    let event =
        accord_core::SignedEvent::from_canonical(&body).map_err(|e| CliError::io(e.to_string()))?;
    let t = Instant::now();
    let proof = tree
        .inclusion_proof(seq, tree.size())
        .map_err(|e| CliError::io(e.to_string()))?;
    let file = accord_core::proof::inclusion_file(&note, &event, &proof, &key);
    let prove_time = t.elapsed();
    let t = Instant::now();
    accord_core::proof::verify_file(&file, None, None)
        .map_err(|e| CliError::new(Code::VerifyFailed, e.to_string()))?;
    let verify_proof_time = t.elapsed();

    say("certifying and verifying an archive…");
    let t = Instant::now();
    let mut archive = Vec::new();
    agent.certify(&mut BufWriter::new(&mut archive), &mut |_| {})?;
    let certify_time = t.elapsed();
    let t = Instant::now();
    let mut av = accord_tsp::archive::ArchiveTimestamps::new().verifier(SignatureMode::Batch);
    for line in archive.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        av.push_line(line)
            .map_err(|e| CliError::new(Code::VerifyFailed, e.to_string()))?;
    }
    av.finish()
        .map_err(|e| CliError::new(Code::VerifyFailed, e.to_string()))?;
    let archive_verify_time = t.elapsed();

    say(&format!("timing {} single-event appends…", args.single));
    let mut lat: Vec<Duration> = Vec::with_capacity(args.single as usize);
    for i in 0..args.single {
        let t = Instant::now();
        agent.stamp("tool_call", payload(i))?;
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;

    let events = summary.events;
    let r = json!({
        "events": events,
        "batch": args.batch,
        "append_events_per_s": per_sec(args.events, append_time).round(),
        "verify_store_events_per_s": per_sec(events, verify_time).round(),
        "verify_store_strict_events_per_s": per_sec(events, verify_strict_time).round(),
        "verify_export_events_per_s": per_sec(events, export_verify_time).round(),
        "single_append_p50_us": pct(0.50).round(),
        "single_append_p99_us": pct(0.99).round(),
        "floor_sign_per_s": sign_rate.round(),
        "floor_verify_strict_per_s": verify_rate.round(),
        "floor_verify_batch64_per_s": batch_rate.round(),
        "export_bytes": export.len(),
        "checkpoint_ms": (checkpoint_time.as_secs_f64() * 1e3).round(),
        "certify_events_per_s": per_sec(events, certify_time).round(),
        "verify_archive_events_per_s": per_sec(events, archive_verify_time).round(),
        "archive_bytes": archive.len(),
        "inclusion_proof_file_us": (prove_time.as_secs_f64() * 1e6).round(),
        "verify_inclusion_proof_file_us": (verify_proof_time.as_secs_f64() * 1e6).round(),
    });
    if args.json {
        outln!("{r}");
        return Ok(());
    }
    let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
    outln!(
        "accord bench — {} events, one thread, durable (fsync per batch)",
        crate::group_digits(events)
    );
    outln!(
        "  append, batches of {:<6}  {:>10.0} events/s   (floor: Ed25519 sign {:.0}/s → {:.0}% of it)",
        args.batch,
        f("append_events_per_s"),
        sign_rate,
        100.0 * f("append_events_per_s") / sign_rate
    );
    outln!(
        "  verify store (batch)       {:>10.0} events/s   (floor: batch verify {:.0}/s → {:.0}% of it)",
        f("verify_store_events_per_s"),
        batch_rate,
        100.0 * f("verify_store_events_per_s") / batch_rate
    );
    outln!(
        "  verify store (--strict)    {:>10.0} events/s   (floor: strict verify {:.0}/s → {:.0}% of it)",
        f("verify_store_strict_events_per_s"),
        verify_rate,
        100.0 * f("verify_store_strict_events_per_s") / verify_rate
    );
    outln!(
        "  verify export file         {:>10.0} events/s",
        f("verify_export_events_per_s")
    );
    outln!(
        "  checkpoint (stored tree: read O(log n) nodes, sign, record)  {:.0} ms",
        f("checkpoint_ms")
    );
    outln!(
        "  certify archive            {:>10.0} events/s   (read, write, build the tree, seal, certify)",
        f("certify_events_per_s")
    );
    outln!(
        "  verify archive             {:>10.0} events/s   (chain, seal, tree, certification)",
        f("verify_archive_events_per_s")
    );
    outln!(
        "  inclusion proof file: make {:.0} µs, verify {:.0} µs (parse, checkpoint signature, event signature, path)",
        f("inclusion_proof_file_us"),
        f("verify_inclusion_proof_file_us")
    );
    outln!(
        "  single append latency      p50 {:.0} µs, p99 {:.0} µs (one transaction + fsync each)",
        f("single_append_p50_us"),
        f("single_append_p99_us")
    );
    Ok(())
}
