//! `accord audit` and `accord trust`: verify exported chains, match their
//! co-signed records, score the agents.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use accord_core::archive::ArchiveVerifier;
use accord_core::audit::{self, ChainReader, Report, Severity};
use accord_core::event;
use serde_json::json;

use crate::exit::{CliError, Code};
use crate::input::{LineError, Lines};
use crate::printable;

/// Reads and audits the chain files.
pub fn audit_files(files: &[PathBuf]) -> Result<Report, CliError> {
    let mut records = Vec::with_capacity(files.len());
    for path in files {
        records.push(read_chain(path)?);
    }
    Ok(audit::audit(&records))
}

fn read_chain(path: &Path) -> Result<audit::ChainRecord, CliError> {
    let label = path.display().to_string();
    let file =
        File::open(path).map_err(|e| CliError::input(format!("cannot open {label}: {e}")))?;
    let mut lines = Lines::new(BufReader::new(file), event::MAX_EVENT_BYTES);
    let mut reader = ChainReader::new(&label);
    let mut first = true;
    loop {
        match lines.next_line() {
            Ok(Some((_, line))) => {
                if std::mem::take(&mut first) && ArchiveVerifier::is_archive(&line) {
                    return Err(CliError::input(format!(
                        "{label} is a certified archive; audit exported chains (`accord export`), or check the archive with `accord verify`"
                    )));
                }
                reader.push_line(&line);
            }
            Ok(None) => break,
            Err(LineError::TooLong { len, .. }) => {
                reader.push_oversized(len);
                break;
            }
            Err(LineError::Read(m)) => return Err(CliError::io(format!("{label}: {m}"))),
        }
    }
    Ok(reader.finish())
}

/// `accord audit FILE...`.
pub fn cmd_audit(files: &[PathBuf], json: bool, jsonl: bool) -> Result<(), CliError> {
    let report = audit_files(files)?;
    if jsonl {
        for f in &report.findings {
            outln!("{}", serde_json::to_string(f).unwrap_or_default());
        }
    } else if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_report(&report);
    }
    if report.clean() {
        Ok(())
    } else {
        let errors = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        Err(CliError::new(
            Code::VerifyFailed,
            format!("audit failed: {errors} error finding(s)"),
        ))
    }
}

/// Prints a human summary of an audit.
pub fn print_report(report: &Report) {
    for c in &report.chains {
        outln!(
            "{} {}  {}  {} events, {} co-signed",
            if c.verified { "ok  " } else { "FAIL" },
            printable(&c.chain),
            c.agent_id.as_deref().unwrap_or("?"),
            c.events,
            c.cosigned
        );
    }
    outln!("{} co-signed records matched across chains", report.matched);
    for f in &report.findings {
        let sev = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        let at = f.seq.map(|s| format!(" seq {s}")).unwrap_or_default();
        outln!(
            "{sev}: {}{at}: {} [{}]",
            printable(&f.chain),
            printable(&f.message),
            f.kind
        );
    }
    if report.clean() {
        outln!("audit clean: every co-signed record has a valid counterpart");
    }
}

/// `accord trust FILE...`.
pub fn cmd_trust(files: &[PathBuf], json: bool) -> Result<(), CliError> {
    let report = audit_files(files)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "formula": "integrity × Σ wᵢ·cᵢ / Σ wᵢ over components with data; weights cosignature 0.4, handoffs 0.3, age 0.15, activity 0.15",
                "agents": report.trust,
            }))
            .unwrap_or_default()
        );
        return Ok(());
    }
    let show = |c: Option<f64>| c.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
    for t in &report.trust {
        let c = &t.components;
        outln!("{}  trust {:.3}", t.agent_id, t.score);
        outln!("  integrity    {:.3}", c.integrity);
        outln!("  cosignature  {}", show(c.cosignature));
        outln!("  handoffs     {}", show(c.handoffs));
        outln!("  age          {:.3}", c.age);
        outln!("  activity     {:.3}", c.activity);
    }
    if report.trust.is_empty() {
        return Err(CliError::new(
            Code::VerifyFailed,
            "no chain could be read far enough to score its agent",
        ));
    }
    Ok(())
}
