//! `accord checkpoint`, `prove`, `verify-proof` and `certify`: making a chain
//! provable to others.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use accord_core::merkle::Nodes;
use accord_core::{AgentId, SignedEvent, note, proof};
use accord_store::{EventStore, Home};
use serde_json::json;

use crate::common::{AtomicOutput, spinner, write_output};
use crate::exit::{CliError, Code};
use crate::identity_cmd::open_agent;
use crate::text::{group_digits, printable};
use crate::{ProveArgs, input, timestamp_cmd};

pub(crate) fn cmd_certify(
    home: &Home,
    out: Option<&Path>,
    force: bool,
    tsa: Option<&str>,
    tsa_ca: Option<&Path>,
) -> Result<(), CliError> {
    let mut stamper = match (tsa, tsa_ca) {
        (Some(url), Some(ca)) => Some(timestamp_cmd::Stamper::new(
            url,
            timestamp_cmd::load_trust(ca)?,
        )?),
        _ => None,
    };
    let mut agent = open_agent(home)?;
    verify_before_signing(&mut agent)?;
    let progress = spinner("certifying");
    let mut tick = |n| progress.set_position(n);
    let path = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{}.accord", agent.key().agent_id())));
    let mut file = AtomicOutput::create(&path, force)?;
    let mut w = BufWriter::new(&mut file);
    let result = match stamper.as_mut() {
        Some(s) => agent.certify_with(&mut w, &mut tick, Some(&mut |note: &[u8]| s.ask(note))),
        None => agent.certify(&mut w, &mut tick),
    };
    let flushed = w
        .into_inner()
        .map(drop)
        .map_err(|e| CliError::io(format!("cannot write {}: {}", path.display(), e.error())));
    let (count, cp) = match result {
        Ok(r) => r,
        Err(e) => {
            // Dropping `file` removes the temporary file: no partial
            // archive is left under the requested name.
            drop(file);
            // A TSA failure keeps its own exit code (network, verification).
            return Err(stamper
                .as_mut()
                .and_then(|s| s.error.take())
                .unwrap_or_else(|| e.into()));
        }
    };
    flushed?;
    file.commit()?;
    progress.finish_and_clear();
    outln!(
        "certified {} events of {} into {}\n  checkpoint size {} root {}\n  check it anywhere with: accord verify {}",
        group_digits(count),
        agent.key().agent_id(),
        path.display(),
        cp.size,
        cp.root,
        path.display()
    );
    if let Some(r) = stamper.as_ref().and_then(|s| s.report.as_ref()) {
        outln!(
            "  {} — RFC 3161 token over the checkpoint\n  verify the time with: accord verify {} --tsa-ca {}",
            timestamp_cmd::summary(r),
            path.display(),
            tsa_ca
                .map(Path::display)
                .map_or_else(String::new, |p| p.to_string())
        );
    }
    Ok(())
}

/// An agent signs checkpoints only over a chain it has just verified (and
/// `sign_checkpoint` also checks it against every checkpoint signed before).
pub(crate) fn verify_before_signing(agent: &mut accord_store::Agent) -> Result<(), CliError> {
    let progress = spinner("verifying the chain before signing");
    let result = agent.verify_own(&mut |n| progress.set_position(n));
    progress.finish_and_clear();
    Ok(result?)
}

pub(crate) fn cmd_checkpoint(home: &Home, json: bool) -> Result<(), CliError> {
    let mut agent = open_agent(home)?;
    verify_before_signing(&mut agent)?;
    let (cp, note) = agent.checkpoint()?;
    let text = String::from_utf8_lossy(&note.to_bytes()).into_owned();
    if json {
        outln!(
            "{}",
            json!({
                "origin": cp.origin,
                "size": cp.size,
                "root": cp.root.to_hex(),
                "note": text,
                "verifier_key": accord_core::note::verifier_key(&cp.origin, agent.key().public()),
            })
        );
    } else {
        out!("{text}");
    }
    Ok(())
}

pub(crate) fn cmd_prove(home: &Home, args: ProveArgs) -> Result<(), CliError> {
    let mut agent = open_agent(home)?;
    verify_before_signing(&mut agent)?;
    let size = agent.tree()?.size();
    let (cp, note) = agent.sign_checkpoint(size)?;
    let old = match args.from {
        Some(from) => Some(agent.sign_checkpoint(from)?),
        None => None,
    };
    let key = *agent.key().public();
    let tree = agent.tree()?;
    let file = match (args.seq, old) {
        (Some(seq), _) => {
            let proof = tree
                .inclusion_proof(seq, cp.size)
                .map_err(|e| CliError::input(e.to_string()))?;
            let mut body = None;
            let id = agent.key().agent_id().clone();
            agent.store().scan(&id, seq, Some(seq), &mut |_, b| {
                body = Some(b.to_vec());
                Ok(std::ops::ControlFlow::Break(()))
            })?;
            let body = body.ok_or_else(|| CliError::input(format!("no event with seq {seq}")))?;
            let event = SignedEvent::from_canonical(&body)
                .map_err(|e| CliError::new(Code::Store, e.to_string()))?;
            proof::inclusion_file(&note, &event, &proof, &key)
        }
        (None, Some((old_cp, old_note))) => {
            let proof = tree
                .consistency_proof(old_cp.size, cp.size)
                .map_err(|e| CliError::input(e.to_string()))?;
            proof::consistency_file(&old_note, &note, &proof, &key)
        }
        (None, None) => return Err(CliError::input("give SEQ or --from SIZE")),
    };
    // The proof comes from the store's tree index: check it before handing
    // it out, so a damaged index is reported here, not by a third party.
    proof::verify_file(&file, Some(agent.key().agent_id()), None).map_err(|e| {
        CliError::new(
            Code::Store,
            format!("the store's tree index produced a proof that does not verify ({e}); the store is damaged: run `accord verify`"),
        )
    })?;
    write_output(args.out.as_deref(), args.force, &file)
}

pub(crate) fn cmd_verify_proof(
    path: &Path,
    agent: Option<&str>,
    against: Option<&Path>,
    json: bool,
) -> Result<(), CliError> {
    let bytes = input::read_all(Some(path), proof::MAX_PROOF_BYTES)?;
    let expect = agent
        .map(AgentId::parse)
        .transpose()
        .map_err(|e| CliError::input(format!("--agent: {e}")))?;
    let kept = against
        .map(|p| input::read_all(Some(p), note::MAX_NOTE_BYTES))
        .transpose()?;
    match proof::verify_file(&bytes, expect.as_ref(), kept.as_deref()) {
        Ok(proof::Verified::Inclusion { checkpoint, event }) => {
            if json {
                outln!(
                    "{}",
                    json!({"ok": true, "kind": "inclusion", "origin": checkpoint.origin, "size": checkpoint.size,
                           "root": checkpoint.root.to_hex(), "seq": event.seq(), "event_hash": event.hash().to_hex()})
                );
            } else {
                outln!(
                    "proof verified — event seq {} ({}) is entry {} of {} in the log of {}
  root {}",
                    event.seq(),
                    printable(&event.event().event_type),
                    event.seq(),
                    group_digits(checkpoint.size),
                    event.event().agent_id,
                    checkpoint.root
                );
            }
            Ok(())
        }
        Ok(proof::Verified::Consistency { old, new }) => {
            if json {
                outln!(
                    "{}",
                    json!({"ok": true, "kind": "consistency", "origin": new.origin, "old_size": old.size,
                           "old_root": old.root.to_hex(), "new_size": new.size, "new_root": new.root.to_hex()})
                );
            } else {
                outln!(
                    "proof verified — the log at {} events extends the log at {} events (append-only)
  origin {}",
                    group_digits(new.size),
                    group_digits(old.size),
                    new.origin
                );
            }
            Ok(())
        }
        Err(proof::ProofError::Fork {
            size,
            root1,
            root2,
            evidence,
        }) => {
            let msg = format!(
                "FORK: the agent signed two different checkpoints of size {size} (roots {root1} and {root2})"
            );
            if json {
                outln!(
                    "{}",
                    json!({"ok": false, "fork": true, "reason": msg, "evidence": [evidence.0, evidence.1]})
                );
            } else {
                eprintln!(
                    "evidence (both signed by the agent):\n{}\n{}",
                    evidence.0, evidence.1
                );
            }
            Err(CliError::new(Code::VerifyFailed, msg))
        }
        Err(e) => {
            if json {
                outln!("{}", json!({"ok": false, "reason": e.to_string()}));
            }
            Err(CliError::new(
                Code::VerifyFailed,
                format!("proof FAILED: {e}"),
            ))
        }
    }
}
