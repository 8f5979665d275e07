//! `accord cosign`: this agent witnesses another agent's checkpoint.
//!
//! The witness keeps no separate state: every cosignature is an event
//! (`checkpoint_cosigned`) in its own chain, and the last one for a log is
//! what the next checkpoint of that log must be consistent with.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use std::io::Write;

use accord_core::note::{self, Checkpoint, Note};
use accord_core::{Map, PublicKey, SignedEvent, Value, proof};
use accord_store::{EventStore, Home, StoreError};

use crate::exit::{CliError, Code};
use crate::{AtomicOutput, input, open_agent, verify_before_signing, write_to};

/// Where the cosigned note goes: a file opened up front (written
/// atomically), or stdout.
enum Output {
    File(AtomicOutput),
    Stdout,
}

impl Output {
    fn open(out: Option<&Path>, force: bool) -> Result<Self, CliError> {
        let Some(path) = out else {
            return Ok(Output::Stdout);
        };
        Ok(Output::File(AtomicOutput::create(path, force)?))
    }

    fn write(self, bytes: &[u8]) -> Result<(), CliError> {
        match self {
            Output::File(f) => write_to(f, bytes),
            Output::Stdout => {
                let mut o = crate::out::Stdout;
                o.write_all(bytes)
                    .and_then(|_| o.write_all(b"\n"))
                    .map_err(|e| CliError::io(format!("cannot write output: {e}")))
            }
        }
    }
}

/// Event type recording a cosignature in the witness's chain.
pub const COSIGNED_TYPE: &str = "checkpoint_cosigned";

/// Runs `accord cosign`.
pub fn cosign(
    home: &Home,
    file: &Path,
    log_key: &str,
    out: Option<&Path>,
    force: bool,
) -> Result<(), CliError> {
    let log_key =
        PublicKey::from_b64(log_key).map_err(|e| CliError::input(format!("--log-key: {e}")))?;
    let bytes = input::read_all(Some(file), proof::MAX_PROOF_BYTES)?;
    let mut agent = open_agent(home)?;
    if agent.key().agent_id() == &log_key.agent_id() {
        return Err(CliError::input("an agent cannot witness its own log"));
    }
    // The witness's memory is its chain: it must verify before it is used.
    verify_before_signing(&mut agent)?;
    // (verify_own also checks it against the checkpoints the witness signed
    // of itself: removed events would otherwise make it forget what it
    // cosigned.)
    let origin = Checkpoint::origin_of(&log_key.agent_id());
    let last = last_cosigned(&agent, &origin)?;
    let (cp, note) = proof::witness_check(&bytes, &log_key, last.as_deref().map(str::as_bytes))
        .map_err(|e| CliError::new(Code::VerifyFailed, format!("not cosigned: {e}")))?;
    // Keep only the log's own (verified) signature: lines added by whoever
    // relayed the note must not grow what the witness stores and signs.
    let mut note = note.only_signature(
        &cp.origin,
        note::key_id(&cp.origin, note::SIG_ED25519, &log_key),
    );
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CliError::io("system clock is before 1970"))?
        .as_secs();
    let name = Checkpoint::origin_of(agent.key().agent_id());
    note.cosign(&name, agent.key(), time)
        .map_err(|e| CliError::io(e.to_string()))?;
    let text = String::from_utf8_lossy(&note.to_bytes()).into_owned();
    let mut payload = Map::new();
    payload.insert("origin".into(), Value::from(cp.origin.clone()));
    payload.insert("size".into(), Value::from(cp.size));
    payload.insert("root".into(), Value::from(cp.root.to_hex()));
    payload.insert("log_public_key".into(), Value::from(log_key.to_b64()));
    payload.insert("note".into(), Value::from(text.clone()));
    // Open the output before recording, so a refused output file does not
    // leave a recorded cosignature nobody received.
    // Dropped on an error, the output removes its temporary file.
    let sink = Output::open(out, force)?;
    agent.stamp(COSIGNED_TYPE, payload)?;
    eprintln!(
        "cosigned {} at size {} as {name}{}",
        cp.origin,
        cp.size,
        match &last {
            None => " (first checkpoint seen from this log: trusted on first use)",
            Some(_) => " (consistent with the last one cosigned)",
        }
    );
    sink.write(text.trim_end().as_bytes())
}

/// Event type recording, in the log's own chain, a witness's cosignature
/// of one of its checkpoints.
pub const WITNESSED_TYPE: &str = "checkpoint_witnessed";

/// Runs `accord checkpoint --add-cosignature FILE --witness-key KEY`: checks
/// that FILE is a checkpoint this agent signed and recorded, cosigned
/// (C2SP cosignature/v1) by the witness's key, and records the cosignature
/// in this agent's chain, so the log keeps the evidence that others saw it.
pub fn record_cosignature(
    home: &Home,
    file: &Path,
    witness_key: &str,
    json: bool,
) -> Result<(), CliError> {
    let witness = PublicKey::from_b64(witness_key)
        .map_err(|e| CliError::input(format!("--witness-key: {e}")))?;
    let bytes = input::read_all(Some(file), note::MAX_NOTE_BYTES)?;
    let mut agent = open_agent(home)?;
    let me = *agent.key().public();
    if witness == me {
        return Err(CliError::input("an agent cannot witness its own log"));
    }
    let refused = |why: String| CliError::new(Code::VerifyFailed, why);
    let (cp, note) = Checkpoint::open(&bytes, &me)
        .map_err(|e| refused(format!("not a checkpoint signed by this agent: {e}")))?;
    let recorded = agent
        .store()
        .checkpoints(&me.agent_id())?
        .into_iter()
        .find(|(size, _)| *size == cp.size);
    let same = recorded
        .and_then(|(_, n)| Checkpoint::open(&n, &me).ok())
        .is_some_and(|(r, _)| r.root == cp.root);
    if !same {
        return Err(refused(format!(
            "this agent never recorded a checkpoint of size {} with root {}: the cosignature is for another history",
            cp.size, cp.root
        )));
    }
    let name = Checkpoint::origin_of(&witness.agent_id());
    let time = note.verify_cosignature(&name, &witness).map_err(|e| {
        refused(format!(
            "no valid cosignature by {}: {e}",
            witness.agent_id()
        ))
    })?;
    let mut payload = Map::new();
    payload.insert("cosigned_at".into(), Value::from(time));
    payload.insert(
        "note".into(),
        Value::from(String::from_utf8_lossy(&bytes).into_owned()),
    );
    payload.insert("root".into(), Value::from(cp.root.to_hex()));
    payload.insert("size".into(), Value::from(cp.size));
    payload.insert("witness".into(), Value::from(witness.agent_id().as_str()));
    payload.insert("witness_public_key".into(), Value::from(witness.to_b64()));
    let ev = agent.stamp(WITNESSED_TYPE, payload)?;
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "size": cp.size,
                "root": cp.root.to_hex(),
                "witness": witness.agent_id().as_str(),
                "cosigned_at": time,
                "event_seq": ev.seq(),
            })
        );
    } else {
        outln!(
            "recorded {}'s cosignature of checkpoint size {} (cosigned at unix time {time}) as event seq {}",
            witness.agent_id(),
            cp.size,
            ev.seq()
        );
    }
    Ok(())
}

/// The note of the largest checkpoint of `origin` this agent cosigned.
fn last_cosigned(agent: &accord_store::Agent, origin: &str) -> Result<Option<String>, CliError> {
    let id = agent.key().agent_id().clone();
    let mut best: Option<(u64, String)> = None;
    agent.store().scan(&id, 1, None, &mut |_, body| {
        // Cheap filter before parsing: most events are not cosignatures.
        if !body
            .windows(COSIGNED_TYPE.len())
            .any(|w| w == COSIGNED_TYPE.as_bytes())
        {
            return Ok(std::ops::ControlFlow::Continue(()));
        }
        let ev = SignedEvent::from_canonical(body)?;
        let e = ev.event();
        if e.event_type == COSIGNED_TYPE
            && e.payload.get("origin").and_then(Value::as_str) == Some(origin)
        {
            // The size that counts is the one inside the signed note.
            let note = e
                .payload
                .get("note")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let size = Note::parse(note.as_bytes())
                .ok()
                .and_then(|n| Checkpoint::parse_text(&n.text).ok())
                .map(|cp| cp.size)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("event seq {}: unreadable cosigned note", e.seq))
                })?;
            if best.as_ref().is_none_or(|(s, _)| size >= *s) {
                best = Some((size, note.to_owned()));
            }
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(best.map(|(_, n)| n))
}
