//! `accord demo`: the whole foundation in one run, on scratch files.

use std::fs;
use std::io::BufWriter;

use accord_core::archive::ArchiveVerifier;
use accord_core::export::ExportVerifier;
use accord_core::keyfile::KdfParams;
use accord_core::{Map, SignatureMode, Value};
use accord_core::{SignedEvent, proof};
use accord_store::home::verify_store;
use accord_store::{EventStore, Home};
use serde_json::json;

use crate::exit::{CliError, Code};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Runs the demo; fails (exit 1) if any tampering goes unnoticed.
pub fn run() -> Result<(), CliError> {
    let scratch = tempfile::tempdir()
        .map_err(|e| CliError::io(format!("cannot create a scratch directory: {e}")))?;
    let home = Home::new(scratch.path().join("agent"));

    println!("1. Create an agent (throwaway key, unencrypted; real agents use `accord init`)");
    // KdfParams only matter for encrypted keys; this one is not encrypted.
    let mut agent = home.init(Some("demo-planner"), None, KdfParams::DEFAULT)?;
    let id = agent.key().agent_id().clone();
    println!("   agent_id     {id}");
    println!("   fingerprint  {}", agent.key().public().fingerprint());

    println!("\n2. Stamp what the agent does: each event signed and linked to the previous one");
    let steps = [
        (
            "task_received",
            json!({"task_id": "T-1042", "from": "user", "summary": "quarterly risk report"}),
        ),
        (
            "tool_call",
            json!({"task_id": "T-1042", "tool": "sql", "query_hash": "9f2c41e0"}),
        ),
        (
            "tool_result",
            json!({"task_id": "T-1042", "rows": 1204, "amount_cents": 1250000}),
        ),
        (
            "handoff_prepared",
            json!({"task_id": "T-1042", "to": "executor", "pages": 12}),
        ),
        (
            "task_completed",
            json!({"task_id": "T-1042", "status": "done"}),
        ),
    ];
    for (t, p) in steps {
        let ev = agent.stamp(t, obj(p))?;
        println!(
            "   seq {}  {:<17} {}",
            ev.seq(),
            t,
            &ev.hash().to_hex()[..16]
        );
    }

    println!("\n3. Verify the agent's own store");
    match verify_store(agent.store(), &id, SignatureMode::Batch, &mut |_| {})? {
        Ok(s) => println!(
            "   chain verified — {} events, head {}",
            s.events,
            &s.head_hash.to_hex()[..16]
        ),
        Err(f) => {
            return Err(CliError::new(
                Code::VerifyFailed,
                format!("demo chain failed to verify: {f}"),
            ));
        }
    }

    println!("\n4. Export it (JSON lines + signed seal) and verify the file offline");
    let export_path = scratch.path().join("chain.jsonl");
    {
        let file = fs::File::create(&export_path).map_err(|e| CliError::io(e.to_string()))?;
        let mut w = BufWriter::new(file);
        agent.export(&mut w, &mut |_| {})?;
    }
    let original = crate::read_file(&export_path)?;
    let check = |bytes: &[u8]| -> Result<String, String> {
        let mut v = ExportVerifier::new(SignatureMode::Batch, true);
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            v.push_line(line).map_err(|e| e.to_string())?;
        }
        v.finish()
            .map(|r| format!("{} events, seal valid", r.summary.events))
            .map_err(|e| e.to_string())
    };
    match check(&original) {
        Ok(s) => println!("   {} — {s}", export_path.display()),
        Err(e) => {
            return Err(CliError::new(
                Code::VerifyFailed,
                format!("demo export failed to verify: {e}"),
            ));
        }
    }

    println!("\n5. Tamper with a copy: change one number in event seq 3 (rows 1204 -> 1205)");
    let text = String::from_utf8_lossy(&original).into_owned();
    let edited = text.replacen("\"rows\":1204", "\"rows\":1205", 1);
    let mut all_caught = true;
    match check(edited.as_bytes()) {
        Err(e) => println!("   caught: {e}"),
        Ok(_) => {
            all_caught = false;
            println!("   NOT caught");
        }
    }

    println!("\n6. Tamper again: drop the last event (a truncated history)");
    let mut lines: Vec<&str> = text.lines().collect();
    let seal = lines.pop().unwrap_or_default();
    lines.pop();
    lines.push(seal);
    match check(lines.join("\n").as_bytes()) {
        Err(e) => println!("   caught: {e}"),
        Ok(_) => {
            all_caught = false;
            println!("   NOT caught");
        }
    }

    println!("\n7. Prove one event to a third party without the rest of the log");
    let tree = agent.tree()?;
    let (cp, note) = agent.sign_checkpoint(&tree, tree.size())?;
    let proof = tree
        .inclusion_proof(3, cp.size)
        .map_err(|e| CliError::io(e.to_string()))?;
    let mut event3 = None;
    agent.store().scan(&id, 3, Some(3), &mut |_, b| {
        event3 = Some(b.to_vec());
        Ok(std::ops::ControlFlow::Break(()))
    })?;
    let event3 = SignedEvent::from_canonical(&event3.unwrap_or_default())
        .map_err(|e| CliError::io(e.to_string()))?;
    let file = proof::inclusion_file(&note, &event3, &proof, agent.key().public());
    match proof::verify_file(&file, Some(&id), None) {
        Ok(_) => println!(
            "   checkpoint: {} events, root {}…\n   proof for seq 3: {} hashes, {} bytes in all — verified",
            cp.size,
            &cp.root.to_hex()[..16],
            proof.len(),
            file.len()
        ),
        Err(e) => {
            return Err(CliError::new(
                Code::VerifyFailed,
                format!("demo proof failed: {e}"),
            ));
        }
    }

    println!("\n8. Certify the log into one archive and verify it offline");
    let mut archive = Vec::new();
    agent.certify(&mut archive, &mut |_| {})?;
    let mut v = ArchiveVerifier::new(SignatureMode::Batch);
    let checked = archive
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .try_for_each(|l| v.push_line(l))
        .map_err(|e| e.to_string())
        .and_then(|()| v.finish().map_err(|e| e.to_string()));
    match checked {
        Ok(r) => println!(
            "   archive of {} bytes — {} events, seal and certification valid",
            archive.len(),
            r.export.summary.events
        ),
        Err(e) => {
            return Err(CliError::new(
                Code::VerifyFailed,
                format!("demo archive failed: {e}"),
            ));
        }
    }

    crate::net::demo_exchange(scratch.path())?;

    if !all_caught {
        return Err(CliError::new(
            Code::VerifyFailed,
            "demo: tampering went unnoticed",
        ));
    }
    println!(
        "\nDone. Try it on your own agent: accord init, stamp, export, verify, checkpoint, prove, certify; accord hub serve, send, listen, chat."
    );
    Ok(())
}
