//! `accord handoff send|accept` and `accord quarantine list|show`.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use accord_core::AgentId;
use accord_core::handoff::DEFAULT_WINDOW_MICROS;
use accord_core::signed::MAX_SIGNED_BYTES;
use accord_store::{EventStore, Home};
use serde_json::json;

use crate::exit::{CliError, Code};
use crate::{AtomicOutput, open_agent, printable, write_output, write_to};

fn open_payload(path: &Path) -> Result<BufReader<File>, CliError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| CliError::input(format!("cannot open payload {}: {e}", path.display())))
}

fn agent_id(s: &str, what: &str) -> Result<AgentId, CliError> {
    AgentId::parse(s).map_err(|e| CliError::input(format!("{what} {s:?}: {e}")))
}

/// `accord handoff send`.
pub fn send(
    home: &Home,
    to: &str,
    payload: &Path,
    parent_task: Option<&str>,
    out: Option<&Path>,
    force: bool,
) -> Result<(), CliError> {
    let receiver = agent_id(to, "--to")?;
    if let Some(p) = parent_task
        && (p.is_empty() || p.len() > 256 || p.chars().any(char::is_control))
    {
        return Err(CliError::input(
            "--parent-task must be 1-256 characters without control characters",
        ));
    }
    let mut agent = open_agent(home)?;
    if &receiver == agent.key().agent_id() {
        return Err(CliError::input("--to names this agent itself"));
    }
    let mut reader = open_payload(payload)?;
    // Open the output before recording, so a refused output file does not
    // leave a recorded receipt nobody received.
    let file = out.map(|p| AtomicOutput::create(p, force)).transpose()?;
    let (receipt, event) = agent.send_handoff(&receiver, &mut reader, parent_task)?;
    match file {
        Some(f) => write_to(f, receipt.canonical())?,
        None => write_output(None, force, receipt.canonical())?,
    }
    if out.is_some() {
        eprintln!(
            "handoff {} to {receiver}: seq {}, {} bytes, sha256 {}; recorded as event seq {}",
            receipt.str("handoff_id").unwrap_or("?"),
            receipt.u64("seq").unwrap_or(0),
            receipt.u64("payload_size").unwrap_or(0),
            receipt.str("payload_sha256").unwrap_or("?"),
            event.seq()
        );
    }
    Ok(())
}

/// `accord handoff accept`.
pub fn accept(
    home: &Home,
    receipt: &Path,
    payload: &Path,
    from: Option<&str>,
    window_s: u64,
    json: bool,
) -> Result<(), CliError> {
    let expect = from.map(|f| agent_id(f, "--from")).transpose()?;
    let text = crate::input::read_all(Some(receipt), MAX_SIGNED_BYTES + 2)?;
    // The receipt as sent, without the line end(s) a file or mail adds.
    let text = text.trim_ascii_end();
    let window = i64::try_from(window_s.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    let mut agent = open_agent(home)?;
    let mut reader = open_payload(payload)?;
    match agent.accept_handoff(text, &mut reader, expect.as_ref(), window)? {
        Ok((a, event)) => {
            if json {
                outln!(
                    "{}",
                    json!({
                        "accepted": true,
                        "handoff_id": a.handoff_id.to_string(),
                        "sender": a.sender.as_str(),
                        "seq": a.seq,
                        "receipt_hash": a.receipt.hash().to_hex(),
                        "event_seq": event.seq(),
                        "warning": a.warning,
                    })
                );
            } else {
                if let Some(w) = &a.warning {
                    eprintln!("warning: {}", printable(w));
                }
                outln!(
                    "accepted handoff {} from {} (seq {}): payload verified; recorded as event seq {}",
                    a.handoff_id,
                    a.sender,
                    a.seq,
                    event.seq()
                );
            }
            Ok(())
        }
        Err(refused) => {
            if json {
                outln!(
                    "{}",
                    json!({
                        "accepted": false,
                        "reason": refused.reason.to_string(),
                        "quarantine_id": refused.quarantine_id,
                        "event_seq": refused.event.seq(),
                    })
                );
            }
            Err(CliError::new(
                Code::VerifyFailed,
                format!(
                    "handoff refused: {}; the receipt is quarantined as #{} (accord quarantine show {}) and the refusal recorded as event seq {}. Do not act on the payload.",
                    refused.reason,
                    refused.quarantine_id,
                    refused.quarantine_id,
                    refused.event.seq()
                ),
            ))
        }
    }
}

/// `accord quarantine list`.
pub fn list(home: &Home, json: bool) -> Result<(), CliError> {
    let info = home.info()?;
    let store = home.open_store()?;
    let items = store.quarantined(&info.agent_id)?;
    if json {
        let v: Vec<_> = items
            .iter()
            .map(|q| {
                json!({
                    "id": q.id,
                    "received_at": q.received_at,
                    "reason": q.reason,
                    "bytes": q.item.len(),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    if items.is_empty() {
        outln!("quarantine is empty");
    }
    for q in &items {
        outln!("#{:<4} {}  {}", q.id, q.received_at, printable(&q.reason));
    }
    Ok(())
}

/// `accord quarantine show N`.
pub fn show(home: &Home, id: u64, json: bool) -> Result<(), CliError> {
    let info = home.info()?;
    let store = home.open_store()?;
    let items = store.quarantined(&info.agent_id)?;
    let q = items.iter().find(|q| q.id == id).ok_or_else(|| {
        CliError::input(format!(
            "no quarantine entry #{id} ({} entries; see `accord quarantine list`)",
            items.len()
        ))
    })?;
    let text = String::from_utf8_lossy(&q.item);
    if json {
        outln!(
            "{}",
            json!({
                "id": q.id,
                "received_at": q.received_at,
                "reason": q.reason,
                "item": text,
            })
        );
    } else {
        outln!("#{}  received {}", q.id, q.received_at);
        outln!("reason: {}", printable(&q.reason));
        outln!("{}", printable(&text));
    }
    Ok(())
}

/// Default `--window` in seconds.
pub const DEFAULT_WINDOW_S: u64 = (DEFAULT_WINDOW_MICROS / 1_000_000) as u64;
