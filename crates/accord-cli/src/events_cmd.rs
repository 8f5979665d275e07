//! `accord stamp`, `log`, `export`, `verify` and `jcs`: the chain itself.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use accord_core::archive::ArchiveVerifier;
use accord_core::export::ExportVerifier;
use accord_core::merkle::Nodes;
use accord_core::{Map, SignatureMode, SignedEvent, Value, event, jcs};
use accord_store::home;
use accord_store::{EventStore, Home};
use accord_tsp::archive::ArchiveTimestamps;
use serde_json::json;

use crate::common::{AtomicOutput, ignore_broken_pipe, spinner};
use crate::exit::{CliError, Code};
use crate::identity_cmd::open_agent;
use crate::text::{group_digits, printable, truncate};
use crate::{StampArgs, input, out, text, timestamp_cmd};

pub(crate) fn cmd_jcs(file: Option<&Path>) -> Result<(), CliError> {
    let text = input::read_all(file, input::MAX_JCS_INPUT)?;
    let canonical = jcs::canonicalize(&text)?;
    let mut out = out::Stdout;
    out.write_all(&canonical)
        .and_then(|_| out.write_all(b"\n"))
        .map_err(|e| CliError::io(format!("cannot write output: {e}")))
}

pub(crate) fn cmd_stamp(home: &Home, args: StampArgs) -> Result<(), CliError> {
    if args.stdin {
        return stamp_stdin(home, args.batch as usize, args.out.json);
    }
    let event_type = args.event_type.unwrap_or_default();
    let payload: Map<String, Value> = match (&args.payload, &args.payload_file) {
        (Some(p), _) => event::payload_from_json(p.as_bytes())?,
        (None, Some(f)) => {
            event::payload_from_json(&input::read_all(Some(f), event::MAX_EVENT_BYTES)?)
                .map_err(|e| CliError::input(format!("{}: {e}", f.display())))?
        }
        (None, None) => Map::new(),
    };
    event::check_type(&event_type, 1)?;
    let mut agent = open_agent(home)?;
    let ev = agent.stamp(&event_type, payload)?;
    print_event(&ev, args.out.json);
    Ok(())
}

pub(crate) fn stamp_stdin(home: &Home, batch: usize, json: bool) -> Result<(), CliError> {
    let mut agent = open_agent(home)?;
    let stdin = io::stdin();
    let mut lines = input::Lines::new(stdin.lock(), event::MAX_EVENT_BYTES);
    let mut pending = Vec::with_capacity(batch);
    let (mut total, mut first, mut last) = (0u64, None, None);
    let progress = spinner("appending");
    loop {
        let line = lines.next_line()?;
        if let Some((n, text)) = &line {
            pending.push(input::parse_stamp_line(text).map_err(|e| {
                CliError::input(format!(
                    "stdin line {n}: {e}; {total} events from earlier lines were appended, none from this batch"
                ))
            })?);
        }
        if pending.len() >= batch || (line.is_none() && !pending.is_empty()) {
            let events = agent.stamp_batch(std::mem::take(&mut pending))?;
            total += events.len() as u64;
            first = first.or_else(|| events.first().map(SignedEvent::seq));
            last = events.last().map(SignedEvent::seq);
            progress.set_position(total);
        }
        if line.is_none() {
            break;
        }
    }
    progress.finish_and_clear();
    if json {
        outln!(
            "{}",
            json!({ "appended": total, "first_seq": first, "last_seq": last })
        );
    } else {
        match (first, last) {
            (Some(a), Some(b)) => outln!("appended {total} events (seq {a}..={b})"),
            _ => outln!("appended 0 events (stdin was empty)"),
        }
    }
    Ok(())
}

pub(crate) fn cmd_log(home: &Home, from: u64, to: Option<u64>, json: bool) -> Result<(), CliError> {
    let info = home.info()?;
    let store = home.open_store()?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut err = None;
    store.scan(&info.agent_id, from, to, &mut |seq, body| {
        let res = if json {
            let shown = text::json_printable(&String::from_utf8_lossy(body));
            out.write_all(shown.as_bytes())
                .and_then(|_| out.write_all(b"\n"))
        } else {
            match SignedEvent::from_canonical(body) {
                Ok(ev) => {
                    let e = ev.event();
                    let payload =
                        String::from_utf8_lossy(&jcs::to_vec(&Value::Object(e.payload.clone())))
                            .into_owned();
                    writeln!(
                        out,
                        "{:>6}  {}  {:<20}  {}  {}",
                        e.seq,
                        e.timestamp,
                        e.event_type,
                        &ev.hash().to_hex()[..12],
                        printable(&truncate(&payload, 100))
                    )
                }
                // The row is shown with the reason it does not read as an
                // event (`--json` prints its bytes).
                Err(e) => writeln!(
                    out,
                    "{seq:>6}  <not a readable event: {}; see `accord verify`, `accord log --json`>",
                    printable(&e.to_string())
                ),
            }
        };
        if let Err(e) = res {
            // A closed pipe (e.g. `| head`) is a normal way to stop reading.
            err = Some(e);
            return Ok(std::ops::ControlFlow::Break(()));
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    match err.map(|e| e.kind()) {
        None => out.flush().or_else(ignore_broken_pipe),
        Some(io::ErrorKind::BrokenPipe) => Ok(()),
        Some(k) => Err(io::Error::from(k)),
    }
    .map_err(|e| CliError::io(format!("cannot write output: {e}")))
}

pub(crate) fn cmd_export(home: &Home, out: Option<&Path>, force: bool) -> Result<(), CliError> {
    let agent = open_agent(home)?;
    let progress = spinner("exporting");
    let mut tick = |n| progress.set_position(n);
    let count = match out {
        Some(path) => {
            let mut file = AtomicOutput::create(path, force)?;
            let mut w = BufWriter::new(&mut file);
            let written = agent.export(&mut w, &mut tick);
            let flushed = w.into_inner().map(drop).map_err(|e| {
                CliError::io(format!("cannot write {}: {}", path.display(), e.error()))
            });
            match (written, flushed) {
                (Ok(n), Ok(())) => {
                    file.commit()?;
                    n
                }
                // The events before an unreadable one, sealed: a valid
                // export of its own, kept, and the command still fails.
                (Err(e @ accord_store::HomeError::ExportStopped { .. }), Ok(())) => {
                    file.commit()?;
                    progress.finish_and_clear();
                    return Err(e.into());
                }
                // Dropping `file` removes the temporary file: no partial
                // export is left under the requested name.
                (Err(e), _) => return Err(e.into()),
                (_, Err(e)) => return Err(e),
            }
        }
        None => {
            let mut w = BufWriter::new(out::Stdout);
            agent.export(&mut w, &mut tick)?
        }
    };
    progress.finish_and_clear();
    if let Some(p) = out {
        eprintln!(
            "exported {count} events and a signed seal to {}",
            p.display()
        );
    }
    Ok(())
}

pub(crate) fn cmd_verify_store(
    home: &Home,
    mode: SignatureMode,
    json: bool,
) -> Result<(), CliError> {
    let info = home.info()?;
    let store = home.open_store()?;
    store.quick_check()?;
    let progress = spinner("verifying");
    // One pass: the events, the tree recomputed from them, and every
    // checkpoint the agent signed before (recorded in the store, and the
    // copy in the home, which names a rollback that took the store's own
    // record along).
    let result = home::check_chain(&store, &info.public_key, Some(home.dir()), mode, &mut |n| {
        progress.set_position(n)
    });
    progress.finish_and_clear();
    let report = match result {
        Ok(Ok(report)) => report,
        Ok(Err(f)) => return report_failure(json, f.seq, None, &f.reason.to_string()),
        Err(accord_store::HomeError::Contradiction(m)) => {
            return report_failure_msg(json, None, None, &m);
        }
        Err(e) => return Err(e.into()),
    };
    // The tree index the store keeps for proofs must agree with the events.
    let stored = home::stored_tree(&store, &info.agent_id)?;
    let n = report.tree.size();
    if stored.size() != n || stored.root(n).ok() != Some(report.tree.root()) {
        return Err(CliError::new(
            Code::Store,
            format!(
                "the store's tree index disagrees with its {n} events (the merkle table is damaged); the events themselves verify: export them with `accord export`"
            ),
        ));
    }
    let k = report.checkpoints.recorded();
    let latest = report.checkpoints.latest();
    let last = match latest {
        Some(cp) => format!("; last signed checkpoint: {} of {n} events", cp.size),
        None => "; no checkpoint signed yet".to_owned(),
    };
    report_ok(
        json,
        &report.summary,
        None,
        &format!(
            "store {} ({k} recorded checkpoint{} consistent{last})",
            store.path().display(),
            if k == 1 { "" } else { "s" }
        ),
        Map::from_iter([
            ("recorded_checkpoints".to_owned(), Value::from(k)),
            (
                "last_signed_checkpoint".to_owned(),
                latest.map_or(Value::Null, |cp| Value::from(cp.size)),
            ),
        ]),
    );
    Ok(())
}

pub(crate) fn cmd_verify_file(
    path: &Path,
    mode: SignatureMode,
    require_seal: bool,
    tsa_ca: Option<&Path>,
    json: bool,
) -> Result<(), CliError> {
    let trust = tsa_ca.map(timestamp_cmd::load_trust).transpose()?;
    let file = File::open(path)
        .map_err(|e| CliError::input(format!("cannot open {}: {e}", path.display())))?;
    let mut lines = input::Lines::new(io::BufReader::new(file), event::MAX_EVENT_BYTES);
    let mut verifier = ExportVerifier::new(mode, require_seal);
    let progress = spinner("verifying");
    let fail = |e: accord_core::ExportError| -> Result<(), CliError> {
        use accord_core::ExportError as E;
        match &e {
            E::Chain { line, failure } => {
                report_failure(json, failure.seq, Some(*line), &failure.reason.to_string())
            }
            E::Seal { line, reason } => {
                report_failure_msg(json, None, Some(*line), &format!("export seal: {reason}"))
            }
            E::EmptyLine(line) => report_failure_msg(
                json,
                None,
                Some(*line),
                "empty line (an export has one event per line)",
            ),
            E::AfterSeal(line) => {
                report_failure_msg(json, None, Some(*line), "content after the export seal")
            }
            _ => report_failure_msg(json, None, None, &e.to_string()),
        }
    };
    let mut first = true;
    loop {
        let line = match lines.next_line() {
            Ok(Some((_, text))) => text,
            Ok(None) => break,
            Err(input::LineError::TooLong { len, .. }) => {
                progress.finish_and_clear();
                return fail(verifier.push_oversized(len));
            }
            Err(e) => {
                progress.finish_and_clear();
                return Err(e.into());
            }
        };
        if std::mem::take(&mut first) {
            if ArchiveVerifier::is_archive(&line) {
                progress.finish_and_clear();
                return verify_archive(lines, &line, mode, trust, json, path);
            }
            if trust.is_some() {
                progress.finish_and_clear();
                return Err(CliError::input(format!(
                    "--tsa-ca: {} is an export, not a certified archive; exports carry no RFC 3161 timestamp",
                    path.display()
                )));
            }
        }
        if let Err(e) = verifier.push_line(&line) {
            progress.finish_and_clear();
            return fail(e);
        }
        let n = verifier.count();
        if n.is_multiple_of(4096) {
            progress.set_position(n);
        }
    }
    progress.finish_and_clear();
    match verifier.finish() {
        Ok(report) => {
            report_ok(
                json,
                &report.summary,
                Some(report.seal.is_some()),
                &path.display().to_string(),
                Map::new(),
            );
            Ok(())
        }
        Err(e) => fail(e),
    }
}

pub(crate) fn verify_archive<R: io::BufRead>(
    mut lines: input::Lines<R>,
    header: &[u8],
    mode: SignatureMode,
    trust: Option<accord_tsp::Trust>,
    json: bool,
    path: &Path,
) -> Result<(), CliError> {
    let anchored = trust.is_some();
    let mut v = ArchiveTimestamps::with_optional_trust(trust).verifier(mode);
    let progress = spinner("verifying archive");
    let fail = |e: String| -> Result<(), CliError> { report_failure_msg(json, None, None, &e) };
    if let Err(e) = v.push_line(header) {
        return fail(e.to_string());
    }
    loop {
        let line = match lines.next_line() {
            Ok(Some((_, text))) => text,
            Ok(None) => break,
            Err(input::LineError::TooLong { len, .. }) => {
                progress.finish_and_clear();
                return fail(v.push_oversized(len).to_string());
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = v.push_line(&line) {
            progress.finish_and_clear();
            return fail(e.to_string());
        }
        if v.count().is_multiple_of(4096) {
            progress.set_position(v.count());
        }
    }
    progress.finish_and_clear();
    let r = match v.finish() {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let s = &r.export.summary;
    if anchored && r.timestamp.is_none() {
        return report_failure_msg(
            json,
            None,
            None,
            "--tsa-ca was given but the archive carries no RFC 3161 timestamp (its time is only the agent's claim)",
        );
    }
    let ts = timestamp_cmd::ArchiveTimestamp::new(r.timestamp.as_ref(), path);
    if json {
        outln!(
            "{}",
            json!({
                "ok": true, "kind": "archive", "agent_id": s.agent_id.as_str(), "name": r.name,
                "events": s.events, "head_hash": s.head_hash.to_hex(),
                "checkpoint_size": r.checkpoint.size, "checkpoint_root": r.checkpoint.root.to_hex(),
                "certified_at": r.certified_at.as_str(), "timestamp": ts.json(),
            })
        );
    } else {
        outln!(
            "archive verified — {} events, 0 anomalies, seal and certification valid, {}\n  agent {}{}\n  checkpoint size {} root {}\n  certified by the agent at {} (its own clock){}\n  file {}",
            group_digits(s.events),
            ts.headline(),
            s.agent_id,
            r.name
                .as_deref()
                .map(|n| format!(" ({})", printable(n)))
                .unwrap_or_default(),
            r.checkpoint.size,
            r.checkpoint.root,
            r.certified_at,
            ts.details(),
            path.display()
        );
        ts.warn();
    }
    Ok(())
}

pub(crate) fn report_ok(
    json: bool,
    s: &accord_core::Summary,
    sealed: Option<bool>,
    what: &str,
    extra: Map<String, Value>,
) {
    if json {
        let mut v = json!({
            "ok": true,
            "agent_id": s.agent_id.as_str(),
            "events": s.events,
            "head_hash": s.head_hash.to_hex(),
            "first_timestamp": s.first_timestamp.as_str(),
            "last_timestamp": s.last_timestamp.as_str(),
            "sealed": sealed,
        });
        if let Value::Object(m) = &mut v {
            m.extend(extra);
        }
        outln!("{v}");
    } else {
        let seal = match sealed {
            Some(true) => ", seal valid",
            Some(false) => ", NOT sealed (its end cannot be proven)",
            None => "",
        };
        outln!(
            "chain verified — {} events, 0 anomalies{seal}\n  agent {}\n  head  {}\n  from  {}",
            group_digits(s.events),
            s.agent_id,
            s.head_hash,
            what
        );
    }
}

pub(crate) fn report_failure(
    json: bool,
    seq: u64,
    line: Option<u64>,
    reason: &str,
) -> Result<(), CliError> {
    report_failure_msg(json, Some(seq), line, reason)
}

pub(crate) fn report_failure_msg(
    json: bool,
    seq: Option<u64>,
    line: Option<u64>,
    reason: &str,
) -> Result<(), CliError> {
    let mut msg = String::from("verification FAILED");
    if let Some(s) = seq {
        msg.push_str(&format!(" at event seq {s}"));
    }
    if let Some(l) = line {
        msg.push_str(&format!(" (line {l})"));
    }
    msg.push_str(&format!(": {reason}"));
    if json {
        outln!(
            "{}",
            json!({ "ok": false, "seq": seq, "line": line, "reason": reason })
        );
    }
    Err(CliError::new(Code::VerifyFailed, msg))
}

pub(crate) fn print_event(ev: &SignedEvent, json: bool) {
    if json {
        outln!(
            "{}",
            text::json_printable(&String::from_utf8_lossy(ev.canonical()))
        );
    } else {
        let e = ev.event();
        outln!("seq {}  {}  {}", e.seq, e.timestamp, e.event_type);
        outln!("hash {}", ev.hash());
        outln!("{}", printable(&String::from_utf8_lossy(ev.canonical())));
    }
}
