//! `accord timestamp verify | request`: RFC 3161 tokens from any TSA, and
//! the trust-anchor loading shared with `accord certify` / `accord verify`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use accord_tsp::{self as tsp, ChainStatus, Imprint, Nonce, TokenReport, Trust, TspError};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::exit::{CliError, Code};
use crate::{AtomicOutput, input, printable, tsa};

/// `accord timestamp …`
#[derive(Subcommand)]
pub enum TimestampCommand {
    /// Verify an RFC 3161 token (.tst) or reply (.tsr) from any TSA, offline
    Verify(VerifyArgs),
    /// Ask a TSA to time-stamp FILE (SHA-256), verify the reply, write the token
    Request(RequestArgs),
}

/// `accord timestamp verify`
#[derive(Args)]
pub struct VerifyArgs {
    /// The token (DER CMS, .tst) or a whole reply (DER TimeStampResp, .tsr)
    token: PathBuf,
    /// Hex digest of the time-stamped data (SHA-256, SHA-384 or SHA-512, by length)
    #[arg(long, value_name = "HEX")]
    digest: String,
    /// Trust anchor(s): the TSA's CA certificate, PEM (several allowed) or DER
    #[arg(long, value_name = "CERT.pem")]
    tsa_ca: PathBuf,
    /// Nonce the request carried (hex); the token must carry the same
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
    /// Machine-readable JSON output
    #[arg(long)]
    json: bool,
}

/// `accord timestamp request`
#[derive(Args)]
pub struct RequestArgs {
    /// TSA URL (http://…)
    #[arg(long, value_name = "URL")]
    tsa: String,
    /// Trust anchor(s) the reply must chain to (PEM or DER)
    #[arg(long, value_name = "CERT.pem")]
    tsa_ca: PathBuf,
    /// The file to time-stamp (hashed with SHA-256 as a stream; it is not sent)
    file: PathBuf,
    /// Where to write the token [default: FILE.tst]
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Replace an existing output file
    #[arg(long)]
    force: bool,
    /// Machine-readable JSON output
    #[arg(long)]
    json: bool,
}

/// Runs `accord timestamp …`.
pub fn run(cmd: TimestampCommand) -> Result<(), CliError> {
    match cmd {
        TimestampCommand::Verify(a) => verify(a),
        TimestampCommand::Request(a) => request(a),
    }
}

/// Loads trust anchors from `path` (exit 3 when unreadable or not a
/// certificate).
pub fn load_trust(path: &Path) -> Result<Trust, CliError> {
    let bytes = input::read_all(Some(path), tsp::MAX_TOKEN_BYTES)?;
    Trust::from_pem_or_der(&bytes)
        .map_err(|e| CliError::input(format!("--tsa-ca {}: {e}", path.display())))
}

/// "timestamp valid (T, by TSA)": the line both `verify` commands print.
pub fn summary(r: &TokenReport) -> String {
    format!(
        "timestamp valid ({}, by {})",
        r.gen_time,
        printable(&r.tsa_subject)
    )
}

/// The JSON fields of a verified token.
pub fn report_json(r: &TokenReport) -> serde_json::Value {
    let (anchored, anchor) = match &r.chain {
        ChainStatus::Anchored { anchor, .. } => (true, Some(anchor.clone())),
        _ => (false, None),
    };
    json!({
        "gen_time": r.gen_time.rfc3339,
        "tsa": r.tsa_subject,
        "serial": r.serial,
        "policy": r.policy,
        "hash_alg": r.hash_alg.name(),
        "nonce": r.nonce.as_ref().map(Nonce::to_hex),
        "accuracy_micros": r.accuracy_micros,
        "chain_checked": anchored,
        "anchor": anchor,
    })
}

fn details(r: &TokenReport) -> String {
    let anchor = match &r.chain {
        ChainStatus::Anchored { anchor, length } => {
            format!("{} ({length} certificates)", printable(anchor))
        }
        _ => "NOT CHECKED".into(),
    };
    format!(
        "  serial {}  policy {}  imprint {}\n  anchor {anchor}",
        r.serial, r.policy, r.hash_alg
    )
}

/// The exit code for a token that does not verify: a bad anchor file is
/// bad input, everything else a failed verification.
fn verify_error(e: TspError) -> CliError {
    match e {
        TspError::Anchors(_) | TspError::Nonce(_) => CliError::input(e.to_string()),
        _ => CliError::new(
            Code::VerifyFailed,
            format!("timestamp verification FAILED: {e}"),
        ),
    }
}

fn verify(a: VerifyArgs) -> Result<(), CliError> {
    let digest = hex::decode(a.digest.trim()).map_err(|e| {
        CliError::input(format!(
            "--digest: not hex: {e} (give the data's SHA-256 as 64 hex digits)"
        ))
    })?;
    let imprint =
        Imprint::from_digest(&digest).map_err(|e| CliError::input(format!("--digest: {e}")))?;
    let nonce = a
        .nonce
        .as_deref()
        .map(Nonce::from_hex)
        .transpose()
        .map_err(|e| CliError::input(format!("--nonce: {e}")))?;
    let trust = load_trust(&a.tsa_ca)?;
    let bytes = input::read_all(Some(&a.token), tsp::MAX_TOKEN_BYTES)?;
    let result = tsp::token_from_token_or_reply(&bytes)
        .and_then(|t| tsp::verify_token(&t, &imprint, nonce.as_ref(), Some(&trust)));
    match result {
        Ok(r) => {
            if a.json {
                let mut v = report_json(&r);
                v["ok"] = true.into();
                outln!("{v}");
            } else {
                outln!("{}\n{}", summary(&r), details(&r));
            }
            Ok(())
        }
        Err(e) => {
            let err = verify_error(e);
            if a.json && err.code == Code::VerifyFailed {
                outln!("{}", json!({"ok": false, "reason": err.message}));
            }
            Err(err)
        }
    }
}

fn request(a: RequestArgs) -> Result<(), CliError> {
    tsa::check_url(&a.tsa)?;
    let trust = load_trust(&a.tsa_ca)?;
    let imprint = Imprint::sha256(hash_file(&a.file)?);
    let out = a.out.clone().unwrap_or_else(|| {
        let mut p = a.file.clone().into_os_string();
        p.push(".tst");
        PathBuf::from(p)
    });
    // Refuse an existing output before asking the TSA for anything.
    if out.exists() && !a.force {
        return Err(CliError::io(format!(
            "cannot create {}: it exists (pass --force to replace it)",
            out.display()
        )));
    }
    let (token, report) = tsa::request(&a.tsa, &imprint, &trust)?;
    let mut f = AtomicOutput::create(&out, a.force)?;
    f.write_all(&token)
        .map_err(|e| CliError::io(format!("cannot write {}: {e}", out.display())))?;
    f.commit()?;
    if a.json {
        let mut v = report_json(&report);
        v["ok"] = true.into();
        v["token"] = out.display().to_string().into();
        v["digest"] = hex::encode(imprint.digest()).into();
        outln!("{v}");
    } else {
        outln!(
            "{}\n{}\n  token written to {}\n  check it anywhere with: accord timestamp verify {} --digest {} --tsa-ca {}",
            summary(&report),
            details(&report),
            out.display(),
            out.display(),
            hex::encode(imprint.digest()),
            a.tsa_ca.display()
        );
    }
    Ok(())
}

/// SHA-256 of a file, read as a stream (any size).
fn hash_file(path: &Path) -> Result<[u8; 32], CliError> {
    let mut f = File::open(path)
        .map_err(|e| CliError::input(format!("cannot open {}: {e}", path.display())))?;
    let mut h = accord_core::hash::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(CliError::input(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        }
    }
    Ok(h.finish().0)
}

/// `accord certify --tsa`: asks the TSA for a token over the signed
/// checkpoint note and keeps what happened for the caller.
pub struct Stamper<'a> {
    url: &'a str,
    trust: Trust,
    /// Why the last request failed, with its exit code.
    pub error: Option<CliError>,
    /// The verified token's report.
    pub report: Option<TokenReport>,
}

impl<'a> Stamper<'a> {
    /// A stamper for the TSA at `url`, whose replies must chain to `trust`
    /// (a URL this client cannot use is refused here, before any work).
    pub fn new(url: &'a str, trust: Trust) -> Result<Self, CliError> {
        tsa::check_url(url)?;
        Ok(Stamper {
            url,
            trust,
            error: None,
            report: None,
        })
    }

    /// Requests and verifies a token over SHA-256 of `note` (the exact
    /// checkpoint bytes the certification carries).
    pub fn ask(&mut self, note: &[u8]) -> Result<Vec<u8>, String> {
        let imprint = accord_tsp::archive::timestamp_imprint(note);
        match tsa::request(self.url, &imprint, &self.trust) {
            Ok((token, report)) => {
                self.report = Some(report);
                Ok(token)
            }
            Err(e) => {
                let msg = e.message.clone();
                self.error = Some(e);
                Err(msg)
            }
        }
    }
}

/// How `accord verify FILE` reports an archive's time-stamp.
pub struct ArchiveTimestamp<'a> {
    report: Option<&'a TokenReport>,
    path: &'a Path,
}

impl<'a> ArchiveTimestamp<'a> {
    /// For an archive's verified token (or none).
    pub fn new(report: Option<&'a TokenReport>, path: &'a Path) -> Self {
        ArchiveTimestamp { report, path }
    }

    fn anchored(&self) -> bool {
        matches!(
            self.report.map(|r| &r.chain),
            Some(ChainStatus::Anchored { .. })
        )
    }

    /// The end of the "archive verified — …" line.
    pub fn headline(&self) -> String {
        match self.report {
            None => "no RFC 3161 timestamp".into(),
            Some(r) if self.anchored() => summary(r),
            Some(_) => "RFC 3161 timestamp present but its TSA NOT CHECKED (no --tsa-ca)".into(),
        }
    }

    /// Extra lines after the certification time (each with its `\n`).
    pub fn details(&self) -> String {
        match self.report {
            None => String::new(),
            Some(r) if self.anchored() => format!("\n{}", details(r)),
            Some(r) => format!(
                "\n  timestamp {} by {}: imprint, signature and TSA certificate verified; \
                 whether that TSA is one you trust was NOT checked\n  to check it: accord verify {} --tsa-ca TSA-CA.pem",
                r.gen_time,
                printable(&r.tsa_subject),
                self.path.display()
            ),
        }
    }

    /// A warning on stderr when the token's TSA went unchecked.
    pub fn warn(&self) {
        if self.report.is_some() && !self.anchored() {
            eprintln!(
                "warning: the archive's RFC 3161 timestamp was not checked against a trust anchor; pass --tsa-ca to prove its time"
            );
        }
    }

    /// The `timestamp` member of `--json` output (`null` without a token).
    pub fn json(&self) -> serde_json::Value {
        self.report.map_or(serde_json::Value::Null, report_json)
    }
}
