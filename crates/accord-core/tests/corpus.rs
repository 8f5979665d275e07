//! The conformance corpus of Accord's own formats (`testdata/corpus/`, see
//! its README.md), in the style of the C2SP/CCTV `age` test kit: one file per
//! case, a short `key: value` header, a blank line, then the case bytes.
//!
//! * `corpus` (always runs): reads every case, runs the check its `format`
//!   names and compares the outcome with `expect`, error kind included. All
//!   disagreements are collected and reported together; cases marked
//!   `known-failure:` are printed instead of failing, and fail the test when
//!   they unexpectedly pass.
//! * `generate_corpus` (ignored): writes the corpus from fixed public test
//!   seeds, times and nonces (no randomness, no clock):
//!   `cargo test -p accord-core --test corpus -- --ignored generate_corpus`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use accord_core::archive::{self, ArchiveError, ArchiveVerifier};
use accord_core::chain::Reason;
use accord_core::channel::{Bundle, ChannelError, Draft, Envelope, ExchangeSecret, Session};
use accord_core::export::{ExportError, ExportVerifier, Seal};
use accord_core::handoff::{self, Expectation, HandoffError, LastAccepted, Receipt};
use accord_core::jcs::{self, JcsError};
use accord_core::merkle::{self, MerkleError};
use accord_core::note::{Checkpoint, Note, NoteError};
use accord_core::proof::{self, ProofError, Verified};
use accord_core::signed::{SignedError, SignedObject};
use accord_core::{
    AgentId, Event, EventError, Hash32, IdentityError, Keypair, Map, PublicKey, SignatureMode,
    SignedEvent, Timestamp, Uuid, Value,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256, Sha512};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/corpus");
/// A corpus with fewer cases than this is treated as deleted or broken.
const MIN_CASES: usize = 50;

// =====================================================================
// Case files
// =====================================================================

/// One case: header lines (in order) and the bytes under test.
struct Case {
    name: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Case {
    fn parse(name: &str, file: &[u8]) -> Result<Case, String> {
        let mut headers = Vec::new();
        let mut rest = file;
        loop {
            let nl = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or("the header does not end in a blank line")?;
            let line = std::str::from_utf8(&rest[..nl]).map_err(|_| "header is not UTF-8")?;
            rest = &rest[nl + 1..];
            if line.is_empty() {
                break;
            }
            let (k, v) = line
                .split_once(": ")
                .ok_or_else(|| format!("header line {line:?} is not `key: value`"))?;
            headers.push((k.to_owned(), v.to_owned()));
        }
        let mut case = Case {
            name: name.to_owned(),
            headers,
            body: rest.to_vec(),
        };
        if case.get("encoding") == Some("base64") {
            let text: String = String::from_utf8_lossy(&case.body)
                .split_whitespace()
                .collect();
            case.body = STANDARD
                .decode(text)
                .map_err(|e| format!("encoding: base64: {e}"))?;
        }
        Ok(case)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn need(&self, key: &str) -> Result<&str, String> {
        self.get(key)
            .ok_or_else(|| format!("runner: header {key:?} missing"))
    }
}

// =====================================================================
// The runner
// =====================================================================

/// What a check returns: `Ok` or the error kind (README.md lists them).
/// Problems of the case file itself start with `runner:` and never match an
/// expected kind.
type Outcome = Result<(), String>;

fn b64url_key(s: &str) -> Result<PublicKey, String> {
    PublicKey::from_b64(s).map_err(|e| format!("runner: bad key header: {e}"))
}

fn agent_header(s: &str) -> Result<AgentId, String> {
    AgentId::parse(s).map_err(|e| format!("runner: bad agent header: {e}"))
}

fn timestamp_header(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse(s).map_err(|e| format!("runner: bad time header: {e}"))
}

fn seed_header(s: &str) -> Result<[u8; 32], String> {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("runner: {s:?} is not 32 bytes of hex"))
}

fn modes(case: &Case) -> Result<Vec<SignatureMode>, String> {
    match case.get("signature-mode").unwrap_or("both") {
        "both" => Ok(vec![SignatureMode::Strict, SignatureMode::Batch]),
        "strict" => Ok(vec![SignatureMode::Strict]),
        "batch" => Ok(vec![SignatureMode::Batch]),
        other => Err(format!("runner: signature-mode {other:?}")),
    }
}

/// Splits at LF the way `accord verify FILE` does: a final line without LF
/// is a line, nothing after a final LF is not, CR is kept.
fn lines(body: &[u8]) -> Vec<&[u8]> {
    if body.is_empty() {
        return Vec::new();
    }
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    body.split(|&b| b == b'\n').collect()
}

fn run(case: &Case, dir: &Path) -> Outcome {
    match case.need("format")? {
        "jcs" => check_jcs(case),
        "event" => check_event(case),
        "export" => check_per_mode(case, check_export),
        "archive" => check_per_mode(case, check_archive),
        "inclusion-proof" | "consistency-proof" => check_proof(case, dir),
        "note" => check_note(case),
        "checkpoint" => check_checkpoint(case),
        "receipt" => check_receipt(case),
        "signed-object" => check_signed_object(case),
        "bundle" => check_bundle(case),
        "envelope" => check_envelope(case, dir),
        "stamp" => check_stamp(case),
        other => Err(format!("runner: unknown format {other:?}")),
    }
}

/// Runs `check` once per signature mode; all modes must agree.
fn check_per_mode(case: &Case, check: fn(&Case, SignatureMode) -> Outcome) -> Outcome {
    let mut results = Vec::new();
    for mode in modes(case)? {
        results.push((mode, check(case, mode)));
    }
    let first = results[0].1.clone();
    if results.iter().all(|(_, r)| *r == first) {
        first
    } else {
        Err(format!(
            "modes disagree: {}",
            results
                .iter()
                .map(|(m, r)| format!("{m:?} -> {}", show(r)))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

fn show(r: &Outcome) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(k) => format!("error {k}"),
    }
}

/// `jcs`: the bytes are a signable canonical document (section 2): strict
/// JSON, every number an integer within ±(2^53−1), and byte for byte its own
/// RFC 8785 form.
fn check_jcs(case: &Case) -> Outcome {
    let value = jcs::parse(&case.body).map_err(|e| jcs_kind(&e))?;
    jcs::check_signable(&value).map_err(|e| jcs_kind(&e))?;
    if jcs::to_vec(&value) != case.body {
        return Err("canonical".into());
    }
    Ok(())
}

/// `event`: parses as one event (4.1 step 1) and its signature verifies
/// strictly under the chain key: the genesis event's own `public_key`, or
/// the `key` header for any other event (whose `agent_id` must derive from
/// it).
fn check_event(case: &Case) -> Outcome {
    let ev = SignedEvent::from_canonical(&case.body).map_err(|e| event_kind(&e))?;
    let key = match (&ev.event().public_key, case.get("key")) {
        (_, Some(k)) => b64url_key(k)?,
        (Some(k), None) => *k,
        (None, None) => return Err("runner: a non-genesis event needs a key header".into()),
    };
    if ev.event().agent_id != key.agent_id() {
        return Err("agent-id".into());
    }
    if !ev.verify_signature(&key) {
        return Err("signature".into());
    }
    Ok(())
}

fn export_verifier(case: &Case, mode: SignatureMode) -> Result<ExportVerifier, String> {
    let unsealed = case.get("allow-unsealed") == Some("true");
    let mut v = ExportVerifier::new(mode, !unsealed);
    if let Some(a) = case.get("expect-agent") {
        v = v.expect_agent(agent_header(a)?);
    }
    Ok(v)
}

/// `export`: the whole file verifies as an export (5.3).
fn check_export(case: &Case, mode: SignatureMode) -> Outcome {
    let mut v = export_verifier(case, mode)?;
    let result = (|| {
        for line in lines(&case.body) {
            v.push_line(line)?;
        }
        v.finish().map(|_| ())
    })();
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let line = match &e {
                ExportError::Chain { line, .. }
                | ExportError::Seal { line, .. }
                | ExportError::AfterSeal(line)
                | ExportError::EmptyLine(line) => Some(*line),
                _ => None,
            };
            check_line(case, line)?;
            Err(export_kind(&e))
        }
    }
}

/// With a `line` header, the failure must be reported on that line.
fn check_line(case: &Case, line: Option<u64>) -> Result<(), String> {
    match (case.get("line"), line) {
        (None, _) => Ok(()),
        (Some(want), got) if got.map(|g| g.to_string()).as_deref() == Some(want) => Ok(()),
        (Some(want), got) => Err(format!(
            "reported on line {got:?}, the case says line {want}"
        )),
    }
}

/// `archive`: the whole file verifies as a certified archive (12.4).
fn check_archive(case: &Case, mode: SignatureMode) -> Outcome {
    let all = lines(&case.body);
    let mut v = ArchiveVerifier::new(mode);
    let result = (|| {
        for line in &all {
            v.push_line(line)?;
        }
        v.finish().map(|_| ())
    })();
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            let line = text
                .strip_prefix("line ")
                .and_then(|t| t.split(':').next())
                .and_then(|n| n.parse().ok());
            check_line(case, line)?;
            Err(match e {
                ArchiveError::Export(_) => archive_export_kind(&all, mode),
                other => archive_kind(&other),
            })
        }
    }
}

/// `ArchiveError::Export` carries the export error as text; the kind is
/// recovered by verifying the archive's embedded export (lines 2 … seal,
/// which is exactly what the archive verifier does) with `ExportVerifier`.
fn archive_export_kind(all: &[&[u8]], mode: SignatureMode) -> String {
    let agent = all
        .first()
        .and_then(|h| serde_json::from_slice::<Value>(h).ok())
        .and_then(|h| h.get("agent_id")?.as_str().map(str::to_owned))
        .and_then(|a| AgentId::parse(&a).ok());
    let Some(agent) = agent else {
        return "archive-export".into();
    };
    let mut v = ExportVerifier::new(mode, true).expect_agent(agent);
    for line in &all[1..] {
        if let Err(e) = v.push_line(line) {
            return export_kind(&e);
        }
    }
    match v.finish() {
        Err(e) => export_kind(&e),
        Ok(_) => "archive-export".into(),
    }
}

/// `inclusion-proof`, `consistency-proof`: `proof::verify_file` (10.5) with
/// `expect-agent` as `--agent` and the body of case `against-file` as
/// `--against`; the proof must be of the kind its `format` names.
fn check_proof(case: &Case, dir: &Path) -> Outcome {
    let expect = case.get("expect-agent").map(agent_header).transpose()?;
    let against = match case.get("against-file") {
        Some(f) => Some(read_case(dir, f)?.body),
        None => None,
    };
    let verified = proof::verify_file(&case.body, expect.as_ref(), against.as_deref())
        .map_err(|e| proof_kind(&e))?;
    match (case.need("format")?, verified) {
        ("inclusion-proof", Verified::Inclusion { .. })
        | ("consistency-proof", Verified::Consistency { .. }) => Ok(()),
        _ => Err("unknown-format".into()),
    }
}

fn read_case(dir: &Path, name: &str) -> Result<Case, String> {
    let bytes = std::fs::read(dir.join(name)).map_err(|e| format!("runner: {name}: {e}"))?;
    Case::parse(name, &bytes).map_err(|e| format!("runner: {name}: {e}"))
}

/// `note`: `Note::parse` (9.3), then, with `name` and `key`, the plain
/// Ed25519 signature by that key (`Note::verify`), and with `cosigner-name`
/// and `cosigner-key` the `cosignature/v1` line (`Note::verify_cosignature`),
/// whose time must equal `cosignature-time` when that header is given.
fn check_note(case: &Case) -> Outcome {
    let note = Note::parse(&case.body).map_err(|e| note_kind(&e))?;
    if let (Some(name), Some(key)) = (case.get("name"), case.get("key")) {
        note.verify(name, &b64url_key(key)?)
            .map_err(|e| note_kind(&e))?;
    }
    if let (Some(name), Some(key)) = (case.get("cosigner-name"), case.get("cosigner-key")) {
        let t = note
            .verify_cosignature(name, &b64url_key(key)?)
            .map_err(|e| note_kind(&e))?;
        if let Some(want) = case.get("cosignature-time")
            && want != t.to_string()
        {
            return Err(format!(
                "runner: cosignature time {t}, the case says {want}"
            ));
        }
    }
    Ok(())
}

/// `checkpoint`: `Checkpoint::open(note, key)` (9.3); with `size` and
/// `root` (hex) headers, the checkpoint must say exactly that.
fn check_checkpoint(case: &Case) -> Outcome {
    let (cp, _) =
        Checkpoint::open(&case.body, &b64url_key(case.need("key")?)?).map_err(|e| note_kind(&e))?;
    if let Some(size) = case.get("size")
        && size != cp.size.to_string()
    {
        return Err(format!("runner: size {}, the case says {size}", cp.size));
    }
    if let Some(root) = case.get("root")
        && root != cp.root.to_hex()
    {
        return Err(format!("runner: root {}, the case says {root}", cp.root));
    }
    Ok(())
}

/// `receipt`: the receiver's checks of 16.2 (`handoff::verify`) for the
/// agent `receiver`, a payload of `payload-sha256`/`payload-size`, at `now`,
/// with `window-seconds` (default 86400), `expect-sender` and the last
/// accepted receipt (`last-seq`, `last-hash`) when given.
fn check_receipt(case: &Case) -> Outcome {
    let me = agent_header(case.need("receiver")?)?;
    let now = timestamp_header(case.need("now")?)?;
    let sender = case.get("expect-sender").map(agent_header).transpose()?;
    let payload_hash = Hash32::from_hex(case.need("payload-sha256")?)
        .ok_or("runner: payload-sha256 is not hex")?;
    let payload_size: u64 = case
        .need("payload-size")?
        .parse()
        .map_err(|_| "runner: payload-size")?;
    let window_micros = match case.get("window-seconds") {
        Some(w) => w.parse::<i64>().map_err(|_| "runner: window-seconds")? * 1_000_000,
        None => handoff::DEFAULT_WINDOW_MICROS,
    };
    let last = match (case.get("last-seq"), case.get("last-hash")) {
        (Some(s), Some(h)) => Some(LastAccepted {
            seq: s.parse().map_err(|_| "runner: last-seq")?,
            hash: Hash32::from_hex(h).ok_or("runner: last-hash")?,
        }),
        _ => None,
    };
    let (obj, _) = handoff::sender_of(&case.body).map_err(|e| handoff_kind(&e))?;
    let exp = Expectation {
        me: &me,
        sender: sender.as_ref(),
        payload: (payload_hash, payload_size),
        now: &now,
        window_micros,
        last,
    };
    let accepted = handoff::verify(obj, &exp).map_err(|e| handoff_kind(&e))?;
    match (case.get("warning"), accepted.warning) {
        (None, None) => Ok(()),
        (Some(w), Some(got)) if got.starts_with(w) => Ok(()),
        (want, got) => Err(format!("runner: warning {got:?}, the case says {want:?}")),
    }
}

/// `signed-object`: `SignedObject::parse(text, signed-format)` (section 14)
/// and a strict signature check under `key`; with `hash`, the object hash
/// (over the re-computed canonical form) must be that.
fn check_signed_object(case: &Case) -> Outcome {
    let format: &'static str = Box::leak(case.need("signed-format")?.to_owned().into_boxed_str());
    let obj = SignedObject::parse(&case.body, format).map_err(|e| signed_kind(&e))?;
    if !obj.verify(&b64url_key(case.need("key")?)?) {
        return Err("signature".into());
    }
    if let Some(h) = case.get("hash")
        && h != obj.hash().to_hex()
    {
        return Err(format!(
            "runner: object hash {}, the case says {h}",
            obj.hash()
        ));
    }
    Ok(())
}

/// `bundle`: `Bundle::parse` (18.1) and, with `now`, `check_valid_at`; with
/// `expect-agent`, the bundle's `agent_id` must be it.
fn check_bundle(case: &Case) -> Outcome {
    let bundle = Bundle::parse(&case.body).map_err(|e| channel_kind(&e))?;
    if let Some(now) = case.get("now") {
        bundle
            .check_valid_at(&timestamp_header(now)?)
            .map_err(|e| channel_kind(&e))?;
    }
    if let Some(a) = case.get("expect-agent")
        && bundle.agent_id() != &agent_header(a)?
    {
        return Err("wrong-agent".into());
    }
    Ok(())
}

/// `envelope`: the recipient of seed `recipient-seed`, holding the exchange
/// key derived from `exchange-ikm`, parses the envelope, sets the session up
/// as responder (from `previous-file` when given, whose envelope is opened
/// first in the same session) and opens it with `sender-key` as the sender's
/// pinned identity key (18.5 steps 3–8).
fn check_envelope(case: &Case, dir: &Path) -> Outcome {
    let me = Keypair::from_seed(&seed_header(case.need("recipient-seed")?)?)
        .map_err(|e| format!("runner: {e}"))?;
    let secret = ExchangeSecret::generate(&seed_header(case.need("exchange-ikm")?)?);
    let sender = b64url_key(case.need("sender-key")?)?;
    let mut session = None;
    if let Some(prev) = case.get("previous-file") {
        let prev = read_case(dir, prev)?;
        let env = Envelope::parse(&prev.body).map_err(|e| format!("runner: previous: {e}"))?;
        let mut s = Session::respond(me.agent_id(), &secret, &env, 0)
            .map_err(|e| format!("runner: previous: {e}"))?;
        s.open(&env, &sender)
            .map_err(|e| format!("runner: previous: {e}"))?;
        session = Some(s);
    }
    let env = Envelope::parse(&case.body).map_err(|e| channel_kind(&e))?;
    let mut session = match session {
        Some(s) => s,
        None => Session::respond(me.agent_id(), &secret, &env, 0).map_err(|e| channel_kind(&e))?,
    };
    session.open(&env, &sender).map_err(|e| channel_kind(&e))?;
    Ok(())
}

/// `stamp`: the bytes are a payload text given to `accord stamp`: the
/// writer's checks (`event::payload_from_json`, then `Event::sign` as the
/// event at seq 1 of the chain of `seed`). A payload the writer accepts must
/// give an event that readers accept (4.1 step 1); when it does not, the
/// outcome is `unreadable`, which no case expects.
fn check_stamp(case: &Case) -> Outcome {
    let key = Keypair::from_seed(&seed_header(case.need("seed")?)?)
        .map_err(|e| format!("runner: {e}"))?;
    let payload = accord_core::event::payload_from_json(&case.body).map_err(|e| event_kind(&e))?;
    let signed = Event {
        agent_id: key.agent_id().clone(),
        seq: 1,
        timestamp: Timestamp::parse("2026-11-24T10:15:03.250000Z").unwrap(),
        nonce: Uuid::parse_str("22222222-2222-4222-a222-222222222222").unwrap(),
        event_type: "task.step".into(),
        payload,
        prev_hash: Hash32::ZERO,
        public_key: None,
    }
    .sign(&key)
    .map_err(|e| event_kind(&e))?;
    match SignedEvent::from_canonical(signed.canonical()) {
        Ok(_) => Ok(()),
        Err(_) => Err("unreadable".into()),
    }
}

// ---------------------------------------------------------------------
// Error kinds: the one place where accord-core's errors become the kind
// strings of the corpus. Where a variant carries only a message (errors
// flattened to text by the library), the few classes PROTOCOL.md names
// separately are told apart by the message.
// ---------------------------------------------------------------------

/// JSON-level failures that arrive as text.
fn json_text_kind(m: &str) -> Option<&'static str> {
    if m.contains("duplicate key") || m.contains("duplicate field") {
        Some("duplicate-key")
    } else if m.contains("recursion limit") || m.contains("nesting") || m.contains("nested") {
        Some("depth")
    } else if m.contains("is not an integer; signed documents") {
        Some("float")
    } else if m.contains("is outside ±(2^53−1)") {
        Some("number-range")
    } else {
        None
    }
}

fn jcs_kind(e: &JcsError) -> String {
    match e {
        JcsError::Syntax(m) => json_text_kind(m).unwrap_or("parse").into(),
        JcsError::Float { .. } => "float".into(),
        JcsError::IntegerRange { .. } => "number-range".into(),
        other => format!("unclassified({other})"),
    }
}

fn identity_kind(e: &IdentityError) -> String {
    match e {
        IdentityError::AgentIdMismatch { .. } => "agent-id".into(),
        IdentityError::AgentIdSyntax(_) => "parse".into(),
        IdentityError::KeyEncoding | IdentityError::InvalidPoint | IdentityError::WeakKey => {
            "key".into()
        }
        other => format!("unclassified({other})"),
    }
}

fn event_kind(e: &EventError) -> String {
    match e {
        EventError::Malformed(m) | EventError::Payload(m) => {
            json_text_kind(m).unwrap_or("parse").into()
        }
        EventError::NotCanonical => "canonical".into(),
        EventError::UnknownFormat(_) => "unknown-format".into(),
        EventError::TooLarge(_) => "too-large".into(),
        EventError::Type(_) => "type".into(),
        EventError::Genesis(_) => "genesis".into(),
        EventError::Identity(i) => identity_kind(i),
        EventError::Timestamp(_) => "timestamp".into(),
        other => format!("unclassified({other})"),
    }
}

fn reason_kind(r: &Reason) -> String {
    match r {
        Reason::Event(e) => event_kind(e),
        Reason::NoGenesis => "no-genesis".into(),
        Reason::AgentMismatch { .. } => "agent-mismatch".into(),
        Reason::Seq { .. } => "seq".into(),
        Reason::PrevHash { .. } => "prev-hash".into(),
        Reason::Signature => "signature".into(),
        Reason::DuplicateNonce { .. } => "duplicate-nonce".into(),
        Reason::TimeWentBack { .. } => "timestamp-order".into(),
        Reason::WrongAgent { .. } => "wrong-agent".into(),
        other => format!("unclassified({other})"),
    }
}

fn export_kind(e: &ExportError) -> String {
    match e {
        ExportError::Chain { failure, .. } => reason_kind(&failure.reason),
        ExportError::Seal { .. } => "seal".into(),
        ExportError::Unsealed => "unsealed".into(),
        ExportError::AfterSeal(_) => "after-seal".into(),
        ExportError::EmptyLine(_) => "empty-line".into(),
        other => format!("unclassified({other})"),
    }
}

fn archive_kind(e: &ArchiveError) -> String {
    match e {
        ArchiveError::Header(_) => "archive-header".into(),
        ArchiveError::Export(_) => "archive-export".into(),
        ArchiveError::Certification { reason, .. } => {
            if reason.contains("archive_digest does not match") {
                "archive-digest".into()
            } else if reason.contains("signature does not verify under the archive's key") {
                "certification-signature".into()
            } else if reason.contains("does not match the archived events") {
                "checkpoint-mismatch".into()
            } else if reason.starts_with("RFC 3161 timestamp")
                || reason.contains("timestamp is not canonical")
            {
                "timestamp-token".into()
            } else {
                "certification".into()
            }
        }
        ArchiveError::Truncated => "truncated".into(),
        ArchiveError::Trailing(_) => "trailing".into(),
        other => format!("unclassified({other})"),
    }
}

fn note_kind(e: &NoteError) -> String {
    match e {
        NoteError::Malformed(m) if m.starts_with("larger than") => "too-large".into(),
        NoteError::Malformed(_) | NoteError::KeyName { .. } => "note-parse".into(),
        NoteError::Checkpoint(m) if m.contains("is not the log of agent") => "origin".into(),
        NoteError::Checkpoint(_) => "checkpoint-body".into(),
        NoteError::NotSigned(_) => "unknown-key".into(),
        NoteError::BadSignature(_) => "note-signature".into(),
        other => format!("unclassified({other})"),
    }
}

fn proof_kind(e: &ProofError) -> String {
    match e {
        ProofError::Malformed(m) if m.contains("is larger than \"new\"") => "sizes".into(),
        ProofError::Malformed(m) if m.contains("the kept checkpoint has size") => "sizes".into(),
        ProofError::Malformed(m) if m == "larger than 4 MiB" => "too-large".into(),
        ProofError::Malformed(m) if m.starts_with("unknown format") => "unknown-format".into(),
        ProofError::Malformed(m) => json_text_kind(m).unwrap_or("parse").into(),
        ProofError::Checkpoint(n) => note_kind(n),
        ProofError::WrongAgent { .. } => "wrong-agent".into(),
        ProofError::Event(_) => "proof-event".into(),
        ProofError::Merkle(MerkleError::RootMismatch) => "merkle-root".into(),
        ProofError::Merkle(_) => "proof".into(),
        ProofError::Fork { .. } => "fork".into(),
        other => format!("unclassified({other})"),
    }
}

fn signed_kind(e: &SignedError) -> String {
    match e {
        SignedError::TooLarge(_) => "too-large".into(),
        SignedError::Json(m) => json_text_kind(m).unwrap_or("parse").into(),
        SignedError::NotObject => "parse".into(),
        SignedError::Format { .. } => "unknown-format".into(),
        SignedError::Member { .. } => "member".into(),
        SignedError::BadSignature(_) => "signature".into(),
        other => format!("unclassified({other})"),
    }
}

fn handoff_kind(e: &HandoffError) -> String {
    match e {
        HandoffError::Malformed(s) => signed_kind(s),
        HandoffError::SenderKey(_) => "agent-id".into(),
        HandoffError::BadSignature => "signature".into(),
        HandoffError::UnexpectedSender { .. } => "wrong-sender".into(),
        HandoffError::NotForMe { .. } => "wrong-receiver".into(),
        HandoffError::PayloadMismatch { .. } => "payload".into(),
        HandoffError::Replay { .. } => "replay".into(),
        HandoffError::BrokenLink { .. } => "prev-receipt".into(),
        HandoffError::Expired { .. } => "expired".into(),
        other => format!("unclassified({other})"),
    }
}

fn channel_kind(e: &ChannelError) -> String {
    match e {
        ChannelError::Malformed { detail, .. } => json_text_kind(detail).unwrap_or("parse").into(),
        ChannelError::TooLarge { .. } => "too-large".into(),
        ChannelError::Identity(i) => identity_kind(i),
        ChannelError::BundleSignature => "bundle-signature".into(),
        ChannelError::BundleExpired { .. } => "expired".into(),
        ChannelError::AuthenticationFailed => "aead".into(),
        ChannelError::BadSignature(_) => "message-signature".into(),
        ChannelError::Mismatch(_) => "mismatch".into(),
        ChannelError::Replay { .. } | ChannelError::TooOld { .. } => "replay".into(),
        ChannelError::KeyAgreement(_) => "key-agreement".into(),
        ChannelError::InvalidMessage(_) => "invalid-message".into(),
        other => format!("unclassified({other})"),
    }
}

// ---------------------------------------------------------------------

fn case_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus directory {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".md") || n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn corpus() {
    let dir = Path::new(CORPUS);
    let files = case_files(dir);
    assert!(
        files.len() >= MIN_CASES,
        "{} holds {} cases; expected at least {MIN_CASES} (was the corpus deleted? regenerate it \
         with `cargo test -p accord-core --test corpus -- --ignored generate_corpus`)",
        dir.display(),
        files.len()
    );
    let mut mismatches = Vec::new();
    let mut known = Vec::new();
    let mut per_format: BTreeMap<String, usize> = BTreeMap::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let case = match Case::parse(&name, &bytes) {
            Ok(c) => c,
            Err(e) => {
                mismatches.push(format!("{name}: cannot read the case: {e}"));
                continue;
            }
        };
        *per_format
            .entry(case.get("format").unwrap_or("?").to_owned())
            .or_default() += 1;
        let Some(expect) = case.get("expect") else {
            mismatches.push(format!("{name}: no `expect` header"));
            continue;
        };
        let got = run(&case, dir);
        let agrees = match (expect, &got) {
            ("ok", Ok(())) => true,
            (e, Err(kind)) => e.strip_prefix("error ") == Some(kind.as_str()),
            _ => false,
        };
        match (case.get("known-failure"), agrees) {
            (None, true) => {}
            (None, false) => mismatches.push(format!(
                "{}: expected {expect}, got {}",
                case.name,
                show(&got)
            )),
            (Some(why), false) => known.push(format!(
                "{}: expected {expect}, got {} (known failure: {why})",
                case.name,
                show(&got)
            )),
            (Some(why), true) => mismatches.push(format!(
                "{}: marked `known-failure: {why}` but now gives the expected outcome; remove the marker",
                case.name
            )),
        }
    }
    println!("corpus: {} cases {per_format:?}", files.len());
    for k in &known {
        println!("KNOWN FAILURE {k}");
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} corpus cases disagree:\n  {}",
        mismatches.len(),
        files.len(),
        mismatches.join("\n  ")
    );
}

// =====================================================================
// The generator
// =====================================================================

/// Public test seeds (never use them for anything real): the example agent
/// of docs/PROTOCOL.md ("planner"), the example witness and bundle owner,
/// the example handoff receiver ("executor"), and an outsider.
const SEED_A: [u8; 32] = [1; 32];
const SEED_B: [u8; 32] = [2; 32];
const SEED_C: [u8; 32] = [3; 32];
const SEED_D: [u8; 32] = [5; 32];
/// `ikm` of B's exchange key (as in PROTOCOL.md 18.1) and of another one.
const IKM_B: [u8; 32] = [3; 32];
const IKM_OTHER: [u8; 32] = [6; 32];

fn kp(seed: &[u8; 32]) -> Keypair {
    Keypair::from_seed(seed).unwrap()
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn nonce(b: u8) -> Uuid {
    uuid::Builder::from_random_bytes([b; 16]).into_uuid()
}

fn payload(json: &str) -> Map<String, Value> {
    accord_core::event::payload_from_json(json.as_bytes()).unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Replaces the first `from` by `to`, which must be there.
#[track_caller]
fn subst(text: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = std::str::from_utf8(text).unwrap();
    assert!(s.contains(from), "{from:?} not in {s}");
    s.replacen(from, to, 1).into_bytes()
}

/// The members of a JSON object text.
fn members(bytes: &[u8]) -> Map<String, Value> {
    serde_json::from_slice(bytes).unwrap()
}

/// Signs an arbitrary object the way every Accord document is signed:
/// Ed25519 over JCS without `signature`, then JCS with it. Lets the
/// generator make documents the library refuses to write.
fn craft(key: &Keypair, mut m: Map<String, Value>) -> Vec<u8> {
    m.remove("signature");
    let sig = key.sign(&jcs::to_vec(&Value::Object(m.clone())));
    m.insert("signature".into(), b64url(&sig.to_bytes()).into());
    jcs::to_vec(&Value::Object(m))
}

/// `craft` with one member changed.
fn recraft(key: &Keypair, doc: &[u8], member: &str, value: Value) -> Vec<u8> {
    let mut m = members(doc);
    m.insert(member.into(), value);
    craft(key, m)
}

/// An event object with the signature replaced by `sig`.
fn with_signature(doc: &[u8], sig: &[u8; 64]) -> Vec<u8> {
    let mut m = members(doc);
    m.insert("signature".into(), b64url(sig).into());
    jcs::to_vec(&Value::Object(m))
}

fn next_event(
    key: &Keypair,
    prev: &SignedEvent,
    time: &str,
    n: u8,
    event_type: &str,
    body: &str,
) -> SignedEvent {
    Event {
        agent_id: key.agent_id().clone(),
        seq: prev.seq() + 1,
        timestamp: ts(time),
        nonce: nonce(n),
        event_type: event_type.into(),
        payload: payload(body),
        prev_hash: prev.hash(),
        public_key: None,
    }
    .sign(key)
    .unwrap()
}

/// The example chain of PROTOCOL.md (3.4, 3.5), continued to `n` events.
fn chain_a(n: usize) -> Vec<SignedEvent> {
    let a = kp(&SEED_A);
    let mut v = vec![
        Event::genesis(
            a.public(),
            ts("2026-11-24T10:15:02.000000Z"),
            nonce(0x11),
            payload(r#"{"name":"planner"}"#),
        )
        .sign(&a)
        .unwrap(),
    ];
    v.push(next_event(
        &a,
        &v[0],
        "2026-11-24T10:15:03.250000Z",
        0x22,
        "task.handoff",
        r#"{"task_id":"T-1","attempt":2,"note":"résumé\nv2","to":{"role":"writer"}}"#,
    ));
    for i in 2..n {
        let e = next_event(
            &a,
            &v[i - 1],
            &format!("2026-11-24T10:15:{:02}.000000Z", 3 + i),
            0x30 + i as u8,
            "task.step",
            &format!(r#"{{"step":{i}}}"#),
        );
        v.push(e);
    }
    v
}

const EXPORTED_AT: &str = "2026-11-24T10:16:00.000000Z";

fn seal_line(key: &Keypair, count: u64, last: &[u8]) -> Vec<u8> {
    Seal {
        agent_id: key.agent_id().clone(),
        count,
        head_hash: Hash32::of(last),
        exported_at: ts(EXPORTED_AT),
    }
    .sign(key)
}

/// Joins lines, each followed by LF.
fn join(lines: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// An export of raw event lines, sealed by `key` over exactly those lines.
fn sealed(key: &Keypair, events: &[&[u8]]) -> Vec<u8> {
    let seal = seal_line(key, events.len() as u64, events.last().unwrap());
    let mut all = events.to_vec();
    all.push(&seal);
    join(&all)
}

fn canon(events: &[SignedEvent]) -> Vec<&[u8]> {
    events.iter().map(SignedEvent::canonical).collect()
}

fn leaves(events: &[&[u8]]) -> Vec<Hash32> {
    events.iter().map(|e| merkle::leaf_hash(e)).collect()
}

fn checkpoint(key: &Keypair, size: u64, root: Hash32) -> Note {
    Checkpoint {
        origin: Checkpoint::origin_of(key.agent_id()),
        size,
        root,
    }
    .sign(key)
    .unwrap()
}

fn checkpoint_of(key: &Keypair, events: &[&[u8]]) -> Note {
    checkpoint(key, events.len() as u64, merkle::root_of(&leaves(events)))
}

// ------------------------------------------------- scalar arithmetic mod L

/// Little-endian 256-bit integers, just enough to build signatures that the
/// library would never make (a small-order component in R, S ≥ L).
type U256 = [u64; 4];

const ORDER_L: U256 = [
    0x5812_631a_5cf5_d3ed,
    0x14de_f9de_a2f7_9cd6,
    0,
    0x1000_0000_0000_0000,
];
const FIELD_P: U256 = [
    0xffff_ffff_ffff_ffed,
    0xffff_ffff_ffff_ffff,
    0xffff_ffff_ffff_ffff,
    0x7fff_ffff_ffff_ffff,
];

fn u256(bytes: &[u8; 32]) -> U256 {
    let mut r = [0u64; 4];
    for (i, limb) in r.iter_mut().enumerate() {
        *limb = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
    }
    r
}

fn u256_bytes(a: &U256) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, limb) in a.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
    }
    out
}

fn geq(a: &U256, b: &U256) -> bool {
    for i in (0..4).rev() {
        if a[i] != b[i] {
            return a[i] > b[i];
        }
    }
    true
}

fn sub(a: &U256, b: &U256) -> U256 {
    let mut r = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        r[i] = d;
        borrow = b1 || b2;
    }
    r
}

fn add(a: &U256, b: &U256) -> U256 {
    let mut r = [0u64; 4];
    let mut carry = false;
    for i in 0..4 {
        let (s, c1) = a[i].overflowing_add(b[i]);
        let (s, c2) = s.overflowing_add(u64::from(carry));
        r[i] = s;
        carry = c1 || c2;
    }
    assert!(!carry);
    r
}

/// (a + b) mod L for a, b < L.
fn add_mod_l(a: &U256, b: &U256) -> U256 {
    let s = add(a, b);
    if geq(&s, &ORDER_L) {
        sub(&s, &ORDER_L)
    } else {
        s
    }
}

/// A little-endian byte string of any length, reduced mod L.
fn mod_l(bytes: &[u8]) -> U256 {
    let mut acc = [0u64; 4];
    for byte in bytes.iter().rev() {
        for bit in (0..8).rev() {
            acc = add_mod_l(&acc, &acc);
            if byte >> bit & 1 == 1 {
                acc = add_mod_l(&acc, &[1, 0, 0, 0]);
            }
        }
    }
    acc
}

fn mul_mod_l(a: &U256, b: &U256) -> U256 {
    let mut acc = [0u64; 4];
    for i in (0..256).rev() {
        acc = add_mod_l(&acc, &acc);
        if b[i / 64] >> (i % 64) & 1 == 1 {
            acc = add_mod_l(&acc, a);
        }
    }
    acc
}

fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// An Ed25519 signature of `msg` by `seed` whose R is the honest R plus the
/// point of order 2, (0, −1), with S computed for that R: the cofactorless
/// equation is off by exactly that torsion point, so strict verification
/// (1.3) refuses it, while a random-linear-combination batch check accepts
/// it whenever the signature's coefficient is even. Only the key holder can
/// make one.
fn torsion_signature(seed: &[u8; 32], msg: &[u8]) -> [u8; 64] {
    let key = kp(seed);
    let h = sha512(&[seed]);
    let mut scalar = [0u8; 32];
    scalar.copy_from_slice(&h[..32]);
    scalar[0] &= 248;
    scalar[31] &= 127;
    scalar[31] |= 64;
    let a = mod_l(&scalar);
    let r = mod_l(&sha512(&[&h[32..], msg]));
    let honest = key.sign(msg).to_bytes();
    let big_a = key.public().to_bytes();
    // Self-check of the arithmetic against the library's signature.
    let k = mod_l(&sha512(&[&honest[..32], &big_a, msg]));
    assert_eq!(
        u256_bytes(&add_mod_l(&r, &mul_mod_l(&k, &a))),
        honest[32..],
        "scalar arithmetic"
    );
    // R + (0, −1) = (−x, −y): negate y mod p and flip the sign bit of x.
    let mut r_bytes: [u8; 32] = honest[..32].try_into().unwrap();
    let sign = r_bytes[31] & 0x80;
    r_bytes[31] &= 0x7f;
    let mut r2 = u256_bytes(&sub(&FIELD_P, &u256(&r_bytes)));
    r2[31] |= sign ^ 0x80;
    let k2 = mod_l(&sha512(&[&r2, &big_a, msg]));
    let s2 = add_mod_l(&r, &mul_mod_l(&k2, &a));
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r2);
    sig[32..].copy_from_slice(&u256_bytes(&s2));
    sig
}

/// The same signature with S + L in place of S (a non-canonical scalar).
fn non_canonical_s(sig: &[u8; 64]) -> [u8; 64] {
    let mut out = *sig;
    let s = add(&u256(sig[32..].try_into().unwrap()), &ORDER_L);
    out[32..].copy_from_slice(&u256_bytes(&s));
    out
}

// ------------------------------------------------------------- the files

struct Corpus {
    files: BTreeMap<String, Vec<u8>>,
}

impl Corpus {
    /// Adds case `name`: `expect` is "ok" or an error kind.
    #[track_caller]
    fn add(
        &mut self,
        name: &str,
        format: &str,
        expect: &str,
        comment: &str,
        extra: &[(&str, String)],
        body: &[u8],
    ) {
        assert!(!comment.contains('\n') && !name.contains('/'));
        let expect = if expect == "ok" {
            "ok".to_owned()
        } else {
            format!("error {expect}")
        };
        let mut out = format!("expect: {expect}\nformat: {format}\ncomment: {comment}\n");
        for (k, v) in extra {
            assert!(!v.contains('\n'));
            out.push_str(&format!("{k}: {v}\n"));
        }
        out.push('\n');
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        assert!(
            self.files.insert(name.to_owned(), bytes).is_none(),
            "duplicate case {name}"
        );
    }
}

fn h(k: &'static str, v: impl Into<String>) -> (&'static str, String) {
    (k, v.into())
}

/// The spec-gap cases are refused with messages that name the rule, not
/// a neighbouring one (a float index is not "missing", a space in a key
/// name is named by its code point, a limit is named with its value).
#[test]
fn spec_gap_cases_have_precise_messages() {
    let dir = Path::new(CORPUS);
    let body = |name: &str| read_case(dir, name).unwrap().body;
    let proof_err = |name: &str| {
        proof::verify_file(&body(name), None, None)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = proof_err("inclusion-bad-index-float");
    assert!(
        e.contains("index 3.0 is not a non-negative integer") && !e.contains("missing"),
        "{e}"
    );
    let e = proof_err("inclusion-bad-index-negative");
    assert!(e.contains("index -3 is not a non-negative integer"), "{e}");
    let e = proof_err("inclusion-bad-unknown-member-beyond-double");
    assert!(e.contains("beyond the IEEE-754 double range"), "{e}");
    let e = jcs::parse(&body("jcs-bad-beyond-double"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("beyond the IEEE-754 double range"), "{e}");
    for (name, cp) in [
        ("note-bad-key-name-nbsp", "U+00A0"),
        ("note-bad-key-name-nel", "U+0085"),
        ("note-bad-key-name-en-quad", "U+2000"),
        ("note-bad-key-name-ideographic-space", "U+3000"),
    ] {
        let e = Note::parse(&body(name)).unwrap_err().to_string();
        assert!(e.contains(&format!("{cp}, a Unicode space")), "{name}: {e}");
    }
    let e = Note::parse(&body("note-bad-unit-separator"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("control character U+001F"), "{e}");
    let e = SignedEvent::from_canonical(&body("event-bad-depth-128"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nested more than 127 levels"), "{e}");
}

#[test]
#[ignore = "writes testdata/corpus; run explicitly to regenerate"]
fn generate_corpus() {
    let mut c = Corpus {
        files: BTreeMap::new(),
    };
    gen_jcs(&mut c);
    gen_events(&mut c);
    gen_exports(&mut c);
    gen_archives(&mut c);
    gen_proofs(&mut c);
    gen_notes(&mut c);
    gen_receipts(&mut c);
    gen_signed_objects(&mut c);
    gen_channel(&mut c);
    gen_stamp(&mut c);

    let dir = Path::new(CORPUS);
    std::fs::create_dir_all(dir).unwrap();
    for old in case_files(dir) {
        std::fs::remove_file(old).unwrap();
    }
    for (name, bytes) in &c.files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    println!("wrote {} cases to {}", c.files.len(), dir.display());
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn gen_jcs(c: &mut Corpus) {
    let canon = |t: &str| jcs::canonicalize(t.as_bytes()).unwrap();
    let f = "jcs";
    c.add(
        "jcs-ok-simple",
        f,
        "ok",
        "a canonical document: sorted members, no whitespace, literals",
        &[],
        br#"{"a":1,"b":[true,false,null],"c":"x"}"#,
    );
    let sorted = canon("{\"\u{fb33}\":1,\"\u{1f602}\":2,\"a\":3}");
    assert_eq!(
        sorted,
        "{\"a\":3,\"\u{1f602}\":2,\"\u{fb33}\":1}".as_bytes()
    );
    c.add(
        "jcs-ok-utf16-order",
        f,
        "ok",
        "member names sort by UTF-16 code units: U+1F602 (surrogates D83D DE02) before U+FB33",
        &[],
        &sorted,
    );
    let escapes = canon(r#"{"s":"\u0001\b\t\n\f\r\"\\\/\u00e9\u2028\u007f"}"#);
    c.add(
        "jcs-ok-string-escapes",
        f,
        "ok",
        "the short escapes, \\u0001 in lower-case hex, and / é U+2028 U+007F written as themselves",
        &[],
        &escapes,
    );
    c.add(
        "jcs-ok-safe-integers",
        f,
        "ok",
        "the largest integers a signed document may carry, ±(2^53−1)",
        &[],
        br#"{"max":9007199254740991,"min":-9007199254740991}"#,
    );
    c.add(
        "jcs-ok-depth-127",
        f,
        "ok",
        "127 nested arrays: the nesting limit of section 2 exactly",
        &[],
        nested(127).as_bytes(),
    );
    c.add(
        "jcs-bad-depth-128",
        f,
        "depth",
        "128 nested arrays: one beyond the nesting limit",
        &[],
        nested(128).as_bytes(),
    );
    c.add(
        "jcs-bad-whitespace",
        f,
        "canonical",
        "a space after the colon",
        &[],
        br#"{"a": 1}"#,
    );
    c.add(
        "jcs-bad-member-order",
        f,
        "canonical",
        "members not sorted",
        &[],
        br#"{"b":1,"a":2}"#,
    );
    c.add(
        "jcs-bad-unicode-escape",
        f,
        "canonical",
        "e-acute written as \\u00e9 instead of itself",
        &[],
        br#"{"s":"\u00e9"}"#,
    );
    c.add(
        "jcs-bad-trailing-newline",
        f,
        "canonical",
        "valid JSON followed by a newline: not its own canonical form",
        &[],
        b"{\"a\":1}\n",
    );
    c.add(
        "jcs-bad-duplicate-key",
        f,
        "duplicate-key",
        "a duplicate member name one level down",
        &[],
        br#"{"a":{"b":1,"b":1}}"#,
    );
    c.add(
        "jcs-bad-beyond-double",
        f,
        "parse",
        "1e400 is beyond the IEEE-754 double range: not a JSON text Accord reads (2)",
        &[],
        br#"{"a":1e400}"#,
    );
    c.add(
        "jcs-bad-float",
        f,
        "float",
        "a fraction",
        &[],
        br#"{"a":1.5}"#,
    );
    c.add(
        "jcs-bad-float-integral",
        f,
        "float",
        "1.0 is a float even though its value is integral",
        &[],
        br#"{"a":1.0}"#,
    );
    c.add(
        "jcs-bad-exponent",
        f,
        "float",
        "an exponent",
        &[],
        br#"{"a":1e2}"#,
    );
    c.add(
        "jcs-bad-negative-zero",
        f,
        "float",
        "-0, which section 2 refuses in signed documents (a JSON parser reads it as the double -0.0)",
        &[],
        br#"{"a":-0}"#,
    );
    c.add(
        "jcs-bad-integer-too-large",
        f,
        "number-range",
        "2^53, one beyond the largest safe integer",
        &[],
        br#"{"a":9007199254740992}"#,
    );
    c.add(
        "jcs-bad-integer-too-small",
        f,
        "number-range",
        "−2^53",
        &[],
        br#"{"a":[-9007199254740992]}"#,
    );
    c.add(
        "jcs-bad-leading-zero",
        f,
        "parse",
        "a number with a leading zero",
        &[],
        br#"{"a":01}"#,
    );
    c.add(
        "jcs-bad-trailing-comma",
        f,
        "parse",
        "a trailing comma",
        &[],
        b"[1,]",
    );
    c.add(
        "jcs-bad-lone-surrogate",
        f,
        "parse",
        "an unpaired surrogate escape",
        &[],
        br#"{"s":"\ud800"}"#,
    );
    c.add(
        "jcs-bad-invalid-utf8",
        f,
        "parse",
        "a string holding the byte 0xFF",
        &[],
        b"{\"s\":\"\xff\"}",
    );
    c.add(
        "jcs-bad-bom",
        f,
        "parse",
        "a UTF-8 byte-order mark before the value",
        &[],
        b"\xef\xbb\xbf{}",
    );
    c.add(
        "jcs-bad-two-values",
        f,
        "parse",
        "a second value after the first",
        &[],
        b"{}{}",
    );
}

fn gen_events(c: &mut Corpus) {
    let a = kp(&SEED_A);
    let b = kp(&SEED_B);
    let chain = chain_a(2);
    let (g, e1) = (chain[0].canonical(), chain[1].canonical());
    let key_a = h("key", a.public().to_b64());
    let f = "event";
    c.add(
        "event-ok-genesis",
        f,
        "ok",
        "the genesis event of PROTOCOL.md 3.4, verified under its own public_key",
        &[],
        g,
    );
    c.add(
        "event-ok-second",
        f,
        "ok",
        "the second event of PROTOCOL.md 3.5 under the chain key",
        std::slice::from_ref(&key_a),
        e1,
    );
    let long_type = "t".repeat(64);
    let ok64 = recraft(&a, e1, "type", long_type.clone().into());
    c.add(
        "event-ok-type-64",
        f,
        "ok",
        "a type of exactly 64 characters (MAX_TYPE_LEN)",
        std::slice::from_ref(&key_a),
        &ok64,
    );
    // Nesting: the event object is level 1, its payload level 2.
    let deep = |levels: usize| {
        let text = format!(r#"{{"deep":{}}}"#, nested(levels - 2));
        let mut m = members(e1);
        // serde_json's own parser has the same limit; build the value by hand.
        let mut v = Value::Array(vec![]);
        for _ in 1..levels - 2 {
            v = Value::Array(vec![v]);
        }
        let mut p = Map::new();
        p.insert("deep".into(), v);
        m.insert("payload".into(), Value::Object(p));
        let bytes = craft(&a, m);
        assert!(String::from_utf8_lossy(&bytes).contains(&text));
        bytes
    };
    c.add("event-ok-depth-127", f, "ok", "an event whose text is nested 127 levels deep (event, payload, 125 arrays): exactly the limit", std::slice::from_ref(&key_a), &deep(127));
    c.add(
        "event-bad-depth-128",
        f,
        "depth",
        "an event nested 128 levels deep (payload nested 127): one beyond the limit",
        std::slice::from_ref(&key_a),
        &deep(128),
    );

    let sig = members(e1)["signature"].as_str().unwrap().to_owned();
    let mut flipped = sig.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    c.add(
        "event-bad-signature",
        f,
        "signature",
        "one character of the signature changed",
        std::slice::from_ref(&key_a),
        &subst(e1, &sig, std::str::from_utf8(&flipped).unwrap()),
    );
    c.add(
        "event-bad-tampered-payload",
        f,
        "signature",
        "payload changed after signing (still canonical)",
        std::slice::from_ref(&key_a),
        &subst(e1, "\"attempt\":2", "\"attempt\":3"),
    );
    c.add(
        "event-bad-signed-by-other-key",
        f,
        "signature",
        "a genesis event signed by another key than its public_key",
        &[],
        &craft(&b, members(g)),
    );
    c.add(
        "event-bad-whitespace",
        f,
        "canonical",
        "a space after a comma",
        &[],
        &subst(g, ",\"format\"", ", \"format\""),
    );
    let mut swapped = members(e1);
    let seq = swapped.remove("seq").unwrap();
    let mut reordered = String::from("{\"seq\":");
    reordered.push_str(&seq.to_string());
    for (k, v) in &swapped {
        reordered.push(',');
        reordered.push_str(&String::from_utf8(jcs::to_vec(&Value::String(k.clone()))).unwrap());
        reordered.push(':');
        reordered.push_str(&String::from_utf8(jcs::to_vec(v)).unwrap());
    }
    reordered.push('}');
    c.add(
        "event-bad-member-order",
        f,
        "canonical",
        "the same members, seq moved first",
        std::slice::from_ref(&key_a),
        reordered.as_bytes(),
    );
    c.add(
        "event-bad-unicode-escape",
        f,
        "canonical",
        "é of the payload written as \\u00e9",
        std::slice::from_ref(&key_a),
        &subst(e1, "résumé", "r\\u00e9sumé"),
    );
    c.add(
        "event-bad-trailing-newline",
        f,
        "canonical",
        "the canonical bytes followed by LF",
        &[],
        &[g, b"\n"].concat(),
    );
    c.add(
        "event-bad-crlf",
        f,
        "canonical",
        "the canonical bytes followed by CR (an export line of a CRLF file)",
        &[],
        &[g, b"\r"].concat(),
    );
    c.add(
        "event-bad-duplicate-member",
        f,
        "duplicate-key",
        "seq twice",
        std::slice::from_ref(&key_a),
        &subst(e1, "\"seq\":1,", "\"seq\":1,\"seq\":1,"),
    );
    c.add(
        "event-bad-duplicate-payload-key",
        f,
        "duplicate-key",
        "a payload with a member name twice",
        std::slice::from_ref(&key_a),
        &subst(e1, "\"attempt\":2,", "\"attempt\":2,\"attempt\":2,"),
    );
    c.add(
        "event-bad-unknown-member",
        f,
        "parse",
        "an extra member, signed",
        std::slice::from_ref(&key_a),
        &recraft(&a, e1, "extra", 1.into()),
    );
    let mut missing = members(e1);
    missing.remove("nonce");
    c.add(
        "event-bad-missing-member",
        f,
        "parse",
        "no nonce, signed",
        std::slice::from_ref(&key_a),
        &craft(&a, missing),
    );
    c.add(
        "event-bad-unknown-format",
        f,
        "unknown-format",
        "format accord-event/2, signed",
        std::slice::from_ref(&key_a),
        &recraft(&a, e1, "format", "accord-event/2".into()),
    );
    let with_payload = |p: &str| {
        let mut m = members(e1);
        m.insert("payload".into(), serde_json::from_str(p).unwrap());
        craft(&a, m)
    };
    c.add(
        "event-bad-integer-too-large",
        f,
        "number-range",
        "a payload integer of 2^53",
        std::slice::from_ref(&key_a),
        &subst(
            &with_payload(r#"{"n":1}"#),
            "\"n\":1",
            "\"n\":9007199254740992",
        ),
    );
    c.add(
        "event-bad-integer-too-small",
        f,
        "number-range",
        "a payload integer of −2^53 inside an array",
        std::slice::from_ref(&key_a),
        &subst(
            &with_payload(r#"{"n":[1]}"#),
            "\"n\":[1]",
            "\"n\":[-9007199254740992]",
        ),
    );
    c.add(
        "event-bad-float",
        f,
        "float",
        "a payload number 1.5",
        std::slice::from_ref(&key_a),
        &subst(&with_payload(r#"{"n":1}"#), "\"n\":1", "\"n\":1.5"),
    );
    c.add(
        "event-bad-float-integral",
        f,
        "float",
        "a payload number 1.0",
        std::slice::from_ref(&key_a),
        &subst(&with_payload(r#"{"n":1}"#), "\"n\":1", "\"n\":1.0"),
    );
    c.add(
        "event-bad-exponent",
        f,
        "float",
        "a payload number 1e2",
        std::slice::from_ref(&key_a),
        &subst(&with_payload(r#"{"n":1}"#), "\"n\":1", "\"n\":1e2"),
    );
    c.add(
        "event-bad-seq-too-large",
        f,
        "parse",
        "seq 2^53, signed",
        std::slice::from_ref(&key_a),
        &subst(
            &recraft(&a, e1, "seq", 7.into()),
            "\"seq\":7",
            "\"seq\":9007199254740992",
        ),
    );
    c.add(
        "event-bad-type-65",
        f,
        "type",
        "a type of 65 characters",
        std::slice::from_ref(&key_a),
        &recraft(&a, e1, "type", format!("{long_type}t").into()),
    );
    c.add(
        "event-bad-type-character",
        f,
        "type",
        "a space in the type",
        std::slice::from_ref(&key_a),
        &recraft(&a, e1, "type", "task handoff".into()),
    );
    c.add(
        "event-bad-type-empty",
        f,
        "type",
        "an empty type",
        std::slice::from_ref(&key_a),
        &recraft(&a, e1, "type", "".into()),
    );
    c.add(
        "event-bad-genesis-type-later",
        f,
        "type",
        "type genesis at seq 1",
        std::slice::from_ref(&key_a),
        &recraft(&a, e1, "type", "genesis".into()),
    );
    c.add(
        "event-bad-agent-id-derivation",
        f,
        "agent-id",
        "a genesis event whose agent_id is another key's, signed by its public_key",
        &[],
        &recraft(&a, g, "agent_id", b.agent_id().as_str().into()),
    );
    c.add(
        "event-bad-agent-id-other-chain",
        f,
        "agent-id",
        "a valid event of agent A checked under the key of agent B",
        &[h("key", b.public().to_b64())],
        e1,
    );
    c.add(
        "event-bad-agent-id-syntax",
        f,
        "parse",
        "an agent_id with the character 0 (not base58btc)",
        std::slice::from_ref(&key_a),
        &recraft(
            &a,
            e1,
            "agent_id",
            "0XmjKEd9A96KhoMX94zWJmd28dcPisbW".into(),
        ),
    );
    // A small-order public key (the identity point) with the agent_id it derives.
    let mut ident = [0u8; 32];
    ident[0] = 1;
    let weak_id = bs58::encode(Sha256::digest(ident)).into_string()[..32].to_owned();
    let mut weak = members(g);
    weak.insert("public_key".into(), b64url(&ident).into());
    weak.insert("agent_id".into(), weak_id.into());
    c.add(
        "event-bad-weak-key",
        f,
        "key",
        "a genesis public_key of small order (the identity point) and the agent_id it derives",
        &[],
        &craft(&a, weak),
    );
    let mut noncanon = [0xffu8; 32];
    noncanon[0] = 0xee;
    noncanon[31] = 0x7f;
    c.add(
        "event-bad-key-encoding",
        f,
        "key",
        "a genesis public_key with y = p + 1 (non-canonical field element)",
        &[],
        &recraft(&a, g, "public_key", b64url(&noncanon).into()),
    );
    let mut no_key = members(g);
    no_key.remove("public_key");
    c.add(
        "event-bad-genesis-without-key",
        f,
        "genesis",
        "a genesis event without public_key",
        std::slice::from_ref(&key_a),
        &craft(&a, no_key),
    );
    c.add(
        "event-bad-key-after-genesis",
        f,
        "genesis",
        "public_key in the event at seq 1",
        std::slice::from_ref(&key_a),
        &recraft(&a, e1, "public_key", a.public().to_b64().into()),
    );
    c.add(
        "event-bad-genesis-prev-hash",
        f,
        "genesis",
        "a genesis prev_hash that is not all zeros",
        &[],
        &recraft(&a, g, "prev_hash", "01".repeat(32).into()),
    );
    c.add(
        "event-bad-prev-hash-upper-case",
        f,
        "parse",
        "prev_hash in upper-case hex",
        std::slice::from_ref(&key_a),
        &recraft(
            &a,
            e1,
            "prev_hash",
            chain[0].hash().to_hex().to_uppercase().into(),
        ),
    );
    c.add(
        "event-bad-nonce-version",
        f,
        "parse",
        "a UUID of version 1 as nonce",
        std::slice::from_ref(&key_a),
        &recraft(
            &a,
            e1,
            "nonce",
            "22222222-2222-1222-a222-222222222222".into(),
        ),
    );
    c.add(
        "event-bad-nonce-upper-case",
        f,
        "parse",
        "a nonce in upper-case hex",
        std::slice::from_ref(&key_a),
        &recraft(
            &a,
            e1,
            "nonce",
            "AAAAAAAA-2222-4222-A222-222222222222".into(),
        ),
    );
    c.add(
        "event-bad-timestamp-form",
        f,
        "timestamp",
        "a timestamp with three fractional digits",
        std::slice::from_ref(&key_a),
        &recraft(&a, e1, "timestamp", "2026-11-24T10:15:03.250Z".into()),
    );
    c.add(
        "event-bad-timestamp-date",
        f,
        "timestamp",
        "a timestamp on 30 February",
        std::slice::from_ref(&key_a),
        &recraft(&a, e1, "timestamp", "2026-02-30T10:15:03.250000Z".into()),
    );
    c.add(
        "event-bad-signature-padding",
        f,
        "parse",
        "the signature written with = padding",
        std::slice::from_ref(&key_a),
        &subst(e1, &format!("{sig}\""), &format!("{sig}==\"")),
    );
    c.add(
        "event-bad-signature-trailing-bits",
        f,
        "parse",
        "the last signature character with non-zero unused bits",
        std::slice::from_ref(&key_a),
        &{
            let mut s = sig.clone().into_bytes();
            let last = s.len() - 1;
            // 86 characters carry 516 bits for 512: the last character's low 4 bits are unused.
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let pos = alphabet.iter().position(|&ch| ch == s[last]).unwrap();
            s[last] = alphabet[pos | 1];
            subst(e1, &sig, std::str::from_utf8(&s).unwrap())
        },
    );
    // Signatures the strict rule of 1.3 refuses.
    let msg = chain[1].signing_message();
    let torsion = torsion_signature(&SEED_A, &msg);
    c.add("event-bad-small-order-r-component", f, "signature",
        "R = honest R + the point of order 2, S computed for it: refused by strict verification (1.3)", std::slice::from_ref(&key_a),
        &with_signature(e1, &torsion));
    let honest: [u8; 64] = chain[1].signature().to_bytes();
    c.add(
        "event-bad-non-canonical-s",
        f,
        "signature",
        "the valid signature with S + L in place of S",
        std::slice::from_ref(&key_a),
        &with_signature(e1, &non_canonical_s(&honest)),
    );
    let mut small_r = [0u8; 64];
    small_r[0] = 1;
    c.add(
        "event-bad-small-order-r",
        f,
        "signature",
        "R the identity point (small order), S = 0",
        std::slice::from_ref(&key_a),
        &with_signature(e1, &small_r),
    );
}

/// Event seq 1 of the example chain with a signature that has a small-order
/// component in R (see [`torsion_signature`]), ground (deterministically, by
/// the payload) until ed25519-dalek's batch check of exactly the chain's two
/// signatures accepts it.
fn torsion_event() -> Vec<u8> {
    let a = kp(&SEED_A);
    let two = chain_a(2);
    let mut found = None;
    for attempt in 0..64u32 {
        let unsigned = next_event(
            &a,
            &two[0],
            "2026-11-24T10:15:03.250000Z",
            0x22,
            "task.handoff",
            &format!(r#"{{"attempt":{attempt}}}"#),
        );
        let msg = unsigned.signing_message();
        let sig = torsion_signature(&SEED_A, &msg);
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&a.public().to_bytes()).unwrap();
        let msgs: [&[u8]; 2] = [&two[0].signing_message(), &msg];
        let sigs = [
            *two[0].signature(),
            ed25519_dalek::Signature::from_bytes(&sig),
        ];
        if ed25519_dalek::verify_batch(&msgs, &sigs, &[vk, vk]).is_ok() {
            found = Some(with_signature(unsigned.canonical(), &sig));
            break;
        }
    }
    found.expect("no attempt made the batch check accept")
}

fn gen_exports(c: &mut Corpus) {
    let a = kp(&SEED_A);
    let b = kp(&SEED_B);
    let f = "export";
    let two = chain_a(2);
    let doc_export = sealed(&a, &canon(&two));
    c.add(
        "export-ok-example",
        f,
        "ok",
        "the export of PROTOCOL.md 5.4",
        &[],
        &doc_export,
    );
    let five = chain_a(5);
    let ev = canon(&five);
    c.add(
        "export-ok-five",
        f,
        "ok",
        "five events and their seal",
        &[],
        &sealed(&a, &ev),
    );
    c.add(
        "export-ok-final-line-without-lf",
        f,
        "ok",
        "the seal line without its LF (accepted)",
        &[],
        doc_export.strip_suffix(b"\n").unwrap(),
    );
    c.add(
        "export-ok-expected-agent",
        f,
        "ok",
        "the example export, pinned to its agent",
        &[h("expect-agent", a.agent_id().as_str())],
        &doc_export,
    );
    c.add(
        "export-ok-unsealed-allowed",
        f,
        "ok",
        "no seal, verified with allow-unsealed",
        &[h("allow-unsealed", "true")],
        &join(&ev),
    );
    c.add(
        "export-bad-unsealed",
        f,
        "unsealed",
        "five events without a seal",
        &[],
        &join(&ev),
    );
    let seal5 = seal_line(&a, 5, ev[4]);
    c.add(
        "export-bad-truncated",
        f,
        "seal",
        "the last event removed, the seal kept",
        &[h("line", "5")],
        &join(&[ev[0], ev[1], ev[2], ev[3], &seal5]),
    );
    let full = sealed(&a, &ev);
    c.add(
        "export-bad-truncated-mid-line",
        f,
        "parse",
        "the file cut in the middle of the seal line",
        &[h("line", "6")],
        &full[..full.len() - 40],
    );
    c.add(
        "export-bad-reordered",
        f,
        "seq",
        "events 2 and 3 swapped",
        &[h("line", "3")],
        &sealed(&a, &[ev[0], ev[1], ev[3], ev[2], ev[4]]),
    );
    let bad_link = recraft(
        &a,
        ev[2],
        "prev_hash",
        Hash32::of(b"not the previous event").to_hex().into(),
    );
    c.add(
        "export-bad-prev-hash",
        f,
        "prev-hash",
        "event 2 re-signed with a prev_hash that is not the hash of event 1",
        &[h("line", "3")],
        &sealed(&a, &[ev[0], ev[1], &bad_link]),
    );
    c.add(
        "export-bad-seq-gap",
        f,
        "seq",
        "event seq 2 removed (seq jumps from 1 to 3)",
        &[h("line", "3")],
        &sealed(&a, &[ev[0], ev[1], ev[3], ev[4]]),
    );
    let e2 = next_event(
        &a,
        &five[1],
        "2026-11-24T10:15:05.000000Z",
        0x22,
        "task.step",
        r#"{"step":2}"#,
    );
    c.add(
        "export-bad-duplicate-nonce",
        f,
        "duplicate-nonce",
        "event 2 reuses the nonce of event 1",
        &[h("line", "3")],
        &sealed(&a, &[ev[0], ev[1], e2.canonical()]),
    );
    let back = next_event(
        &a,
        &five[1],
        "2026-11-24T10:15:03.249999Z",
        0x32,
        "task.step",
        r#"{"step":2}"#,
    );
    c.add(
        "export-bad-timestamp-backwards",
        f,
        "timestamp-order",
        "event 2 dated one microsecond before event 1",
        &[h("line", "3")],
        &sealed(&a, &[ev[0], ev[1], back.canonical()]),
    );
    let same = next_event(
        &a,
        &five[1],
        "2026-11-24T10:15:03.250000Z",
        0x32,
        "task.step",
        r#"{"step":2}"#,
    );
    c.add(
        "export-ok-timestamp-equal",
        f,
        "ok",
        "event 2 dated exactly as event 1 (equal is allowed)",
        &[],
        &sealed(&a, &[ev[0], ev[1], same.canonical()]),
    );
    let mut bad_seal = seal5.clone();
    let pos = bad_seal.len() - 10;
    bad_seal[pos] = if bad_seal[pos] == b'A' { b'B' } else { b'A' };
    c.add(
        "export-bad-seal-signature",
        f,
        "seal",
        "one character of the seal's signature changed",
        &[h("line", "6")],
        &join(&[ev[0], ev[1], ev[2], ev[3], ev[4], &bad_seal]),
    );
    c.add(
        "export-bad-seal-count",
        f,
        "seal",
        "a seal signed over count 4 for five events",
        &[h("line", "6")],
        &join(&[
            ev[0],
            ev[1],
            ev[2],
            ev[3],
            ev[4],
            &recraft(&a, &seal5, "count", 4.into()),
        ]),
    );
    c.add(
        "export-bad-seal-other-key",
        f,
        "seal",
        "a seal signed by another key",
        &[h("line", "6")],
        &join(&[
            ev[0],
            ev[1],
            ev[2],
            ev[3],
            ev[4],
            &craft(&b, members(&seal5)),
        ]),
    );
    c.add(
        "export-bad-seal-non-canonical",
        f,
        "seal",
        "the seal with a space inserted",
        &[h("line", "6")],
        &join(&[
            ev[0],
            ev[1],
            ev[2],
            ev[3],
            ev[4],
            &subst(&seal5, ",\"count\"", ", \"count\""),
        ]),
    );
    c.add(
        "export-bad-trailing-garbage",
        f,
        "after-seal",
        "a line after the seal",
        &[h("line", "7")],
        &[full.as_slice(), b"garbage\n"].concat(),
    );
    c.add(
        "export-bad-blank-line",
        f,
        "empty-line",
        "a blank line between two events",
        &[h("line", "2")],
        &join(&[ev[0], b"", ev[1], ev[2], ev[3], ev[4], &seal5]),
    );
    let crlf: Vec<u8> = full
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .flat_map(|l| [l, b"\r\n"].concat())
        .collect();
    c.add(
        "export-bad-crlf",
        f,
        "canonical",
        "CRLF line ends: each line keeps a CR and is not canonical",
        &[h("line", "1")],
        &crlf,
    );
    c.add(
        "export-bad-no-genesis",
        f,
        "no-genesis",
        "the export starts at event seq 1",
        &[h("line", "1")],
        &sealed(&a, &[ev[1], ev[2]]),
    );
    c.add(
        "export-bad-empty",
        f,
        "no-genesis",
        "an empty file",
        &[],
        b"",
    );
    c.add(
        "export-bad-seal-first",
        f,
        "seal",
        "a seal before any event",
        &[h("line", "1")],
        &join(&[&seal5, ev[0]]),
    );
    c.add(
        "export-bad-wrong-agent",
        f,
        "wrong-agent",
        "a valid export of agent A, expected to be agent B's",
        &[h("expect-agent", b.agent_id().as_str()), h("line", "1")],
        &doc_export,
    );
    // An event of B's chain, linked into A's.
    let foreign = Event {
        agent_id: b.agent_id().clone(),
        seq: 2,
        timestamp: ts("2026-11-24T10:15:05.000000Z"),
        nonce: nonce(0x32),
        event_type: "task.step".into(),
        payload: payload("{}"),
        prev_hash: five[1].hash(),
        public_key: None,
    }
    .sign(&b)
    .unwrap();
    c.add(
        "export-bad-agent-mismatch",
        f,
        "agent-mismatch",
        "event 2 belongs to another agent (signed by it, linked to event 1)",
        &[h("line", "3")],
        &sealed(&a, &[ev[0], ev[1], foreign.canonical()]),
    );
    let second_genesis = recraft(&a, ev[0], "nonce", nonce(0x99).to_string().into());
    c.add(
        "export-bad-second-genesis",
        f,
        "seq",
        "a second genesis event after the first",
        &[h("line", "2")],
        &sealed(&a, &[ev[0], &second_genesis]),
    );
    let tampered = subst(ev[1], "\"attempt\":2", "\"attempt\":3");
    c.add(
        "export-bad-event-signature",
        f,
        "signature",
        "event 1's payload changed after signing",
        &[h("line", "2")],
        &join(&[ev[0], &tampered, &seal_line(&a, 2, &tampered)]),
    );
    c.add("export-bad-signature-before-gap", f, "signature",
        "a bad signature at line 2 and a seq gap at line 4: the earlier bad signature is reported first", &[h("line", "2")],
        &join(&[ev[0], &tampered, ev[2], ev[4], &seal_line(&a, 4, ev[4])]));

    let torsion = torsion_event();
    let torsion_export = join(&[ev[0], &torsion, &seal_line(&a, 2, &torsion)]);
    c.add("export-bad-small-order-r-strict", f, "signature",
        "event 1's signature has a small-order component in R (its key holder made it): strict verification refuses it", &[h("signature-mode", "strict"), h("line", "2")],
        &torsion_export);
    let mut batch = c.files["export-bad-small-order-r-strict"].clone();
    batch = subst(&batch, "signature-mode: strict", "signature-mode: batch");
    batch = subst(
        &batch,
        "strict verification refuses it",
        "batch verification must refuse it too (1.3 is normative)",
    );
    c.files
        .insert("export-bad-small-order-r-batch".into(), batch);
}

/// A certified archive of raw event lines: header, events, seal,
/// certification over a checkpoint of `cp_events` (normally the same).
fn archive_of(key: &Keypair, name: Option<&str>, events: &[&[u8]], cp_events: &[&[u8]]) -> Vec<u8> {
    let mut out = archive::header_line(key.public(), name);
    out.push(b'\n');
    out.extend_from_slice(&sealed(key, events));
    let note = checkpoint_of(key, cp_events);
    let cert = archive::certification_line(
        key,
        &Hash32::of(&out),
        &note,
        &ts("2026-11-24T10:16:00.250000Z"),
    );
    out.extend_from_slice(&cert);
    out.push(b'\n');
    out
}

/// Replaces line `i` (0-based) of a file of LF-terminated lines.
fn replace_line(file: &[u8], i: usize, line: &[u8]) -> Vec<u8> {
    let mut all: Vec<&[u8]> = lines(file);
    all[i] = line;
    join(&all)
}

fn gen_archives(c: &mut Corpus) {
    let a = kp(&SEED_A);
    let b = kp(&SEED_B);
    let f = "archive";
    let two = chain_a(2);
    let doc = archive_of(&a, Some("planner"), &canon(&two), &canon(&two));
    c.add(
        "archive-ok-example",
        f,
        "ok",
        "the archive of PROTOCOL.md 12.5, without an RFC 3161 timestamp",
        &[],
        &doc,
    );
    let five = chain_a(5);
    let ev = canon(&five);
    let five_archive = archive_of(&a, None, &ev, &ev);
    c.add(
        "archive-ok-five-unnamed",
        f,
        "ok",
        "five events, name null",
        &[],
        &five_archive,
    );
    let all = lines(&doc);
    let header = all[0];
    c.add(
        "archive-bad-tampered-header",
        f,
        "archive-digest",
        "the header's name changed: only archive_digest covers it",
        &[h("line", "5")],
        &replace_line(&doc, 0, &subst(header, "\"planner\"", "\"plannex\"")),
    );
    let other_header = archive::header_line(b.public(), Some("planner"));
    c.add(
        "archive-bad-header-other-agent",
        f,
        "wrong-agent",
        "the header names another agent than the chain's",
        &[h("line", "2")],
        &replace_line(&doc, 0, &other_header),
    );
    c.add(
        "archive-bad-header-agent-id",
        f,
        "archive-header",
        "a header whose agent_id does not derive from its public_key",
        &[h("line", "1")],
        &replace_line(
            &doc,
            0,
            &subst(header, a.agent_id().as_str(), b.agent_id().as_str()),
        ),
    );
    c.add(
        "archive-bad-header-non-canonical",
        f,
        "archive-header",
        "a space in the header",
        &[h("line", "1")],
        &replace_line(&doc, 0, &subst(header, ",\"format\"", ", \"format\"")),
    );
    let cert = all[4];
    c.add(
        "archive-bad-tampered-certification",
        f,
        "certification-signature",
        "certified_at changed in the certification",
        &[h("line", "5")],
        &replace_line(
            &doc,
            4,
            &subst(cert, "10:16:00.250000Z", "10:16:00.250001Z"),
        ),
    );
    c.add(
        "archive-bad-certification-non-canonical",
        f,
        "certification",
        "a space in the certification line",
        &[h("line", "5")],
        &replace_line(&doc, 4, &subst(cert, ",\"format\"", ", \"format\"")),
    );
    c.add(
        "archive-bad-tampered-event",
        f,
        "signature",
        "event 1's payload changed",
        &[h("line", "3")],
        &replace_line(&doc, 2, &subst(all[2], "\"attempt\":2", "\"attempt\":3")),
    );
    c.add(
        "archive-bad-tampered-seal",
        f,
        "seal",
        "the seal's exported_at changed",
        &[h("line", "4")],
        &replace_line(
            &doc,
            3,
            &subst(all[3], "10:16:00.000000Z", "10:16:01.000000Z"),
        ),
    );
    c.add(
        "archive-bad-truncated",
        f,
        "truncated",
        "the certification line removed",
        &[],
        &join(&all[..4]),
    );
    c.add(
        "archive-bad-trailing-line",
        f,
        "trailing",
        "a line after the certification",
        &[h("line", "6")],
        &[doc.as_slice(), b"{}\n"].concat(),
    );
    c.add(
        "archive-bad-checkpoint-mismatch",
        f,
        "checkpoint-mismatch",
        "five events certified with a (validly signed) checkpoint of the first four",
        &[h("line", "8")],
        &archive_of(&a, None, &ev, &ev[..4]),
    );
    let torsion = torsion_event();
    let strict_case = archive_of(&a, Some("planner"), &[ev[0], &torsion], &[ev[0], &torsion]);
    c.add(
        "archive-bad-small-order-r-strict",
        f,
        "signature",
        "event 1's signature has a small-order component in R (its key holder made it): strict verification refuses it",
        &[h("signature-mode", "strict"), h("line", "3")],
        &strict_case,
    );
    c.add(
        "archive-bad-small-order-r-batch",
        f,
        "signature",
        "event 1's signature has a small-order component in R: batch verification must refuse it too (1.3 is normative)",
        &[
            h("signature-mode", "batch"),
            h("line", "3"),
        ],
        &strict_case,
    );
    // A certification with a "timestamp" that is not an RFC 3161 token,
    // re-signed by the agent (so only the token is wrong).
    let mut m = members(cert);
    m.insert("timestamp".into(), b64url(b"not a time-stamp token").into());
    c.add(
        "archive-bad-timestamp-token",
        f,
        "timestamp-token",
        "a timestamp member that is not a DER TimeStampToken (certification re-signed)",
        &[h("line", "5")],
        &replace_line(&doc, 4, &craft(&a, m)),
    );
}

fn gen_proofs(c: &mut Corpus) {
    let a = kp(&SEED_A);
    let b = kp(&SEED_B);
    let five = chain_a(5);
    let ev = canon(&five);
    let lv = leaves(&ev);
    let cp5 = checkpoint_of(&a, &ev);
    let cp4 = checkpoint_of(&a, &ev[..4]);
    let cp3 = checkpoint_of(&a, &ev[..3]);
    let fi = "inclusion-proof";
    let incl = |cp: &Note, i: usize, path: &[Hash32]| {
        proof::inclusion_file(cp, &five[i], path, a.public())
    };
    let path3 = merkle::inclusion_proof(&lv, 3).unwrap();
    let good = incl(&cp5, 3, &path3);
    c.add(
        "inclusion-ok",
        fi,
        "ok",
        "event seq 3 in the checkpoint of size 5",
        &[h("expect-agent", a.agent_id().as_str())],
        &good,
    );
    let two = chain_a(2);
    let doc_incl = proof::inclusion_file(
        &checkpoint_of(&a, &canon(&two)),
        &two[1],
        &merkle::inclusion_proof(&leaves(&canon(&two)), 1).unwrap(),
        a.public(),
    );
    c.add(
        "inclusion-ok-example",
        fi,
        "ok",
        "the inclusion proof of PROTOCOL.md 10.7",
        &[],
        &doc_incl,
    );
    c.add(
        "inclusion-ok-genesis-last-leaf",
        fi,
        "ok",
        "event seq 4, the last leaf (an odd tree)",
        &[],
        &incl(&cp5, 4, &merkle::inclusion_proof(&lv, 4).unwrap()),
    );
    let spaced = subst(&good, ",\"format\"", ",\n  \"format\"");
    c.add("inclusion-ok-not-canonical", fi, "ok", "whitespace and an unknown member: proof files need not be canonical and unknown members are ignored", &[],
        &subst(&spaced, "{", "{\"comment\":\"x\", "));
    let wrong_root = checkpoint(&a, 5, merkle::root_of(&lv[..4]));
    c.add(
        "inclusion-bad-wrong-root",
        fi,
        "merkle-root",
        "the path of seq 3 under a (validly signed) checkpoint of size 5 with another root",
        &[],
        &incl(&wrong_root, 3, &path3),
    );
    c.add(
        "inclusion-bad-wrong-size",
        fi,
        "proof",
        "the path of seq 3 in a tree of 5 under the checkpoint of size 4",
        &[],
        &incl(&cp4, 3, &path3),
    );
    let mut tampered = path3.clone();
    tampered[0].0[0] ^= 1;
    c.add(
        "inclusion-bad-tampered-path",
        fi,
        "merkle-root",
        "one bit of the first path hash flipped",
        &[],
        &incl(&cp5, 3, &tampered),
    );
    c.add(
        "inclusion-bad-short-path",
        fi,
        "proof",
        "the last path hash removed",
        &[],
        &incl(&cp5, 3, &path3[..path3.len() - 1]),
    );
    c.add(
        "inclusion-bad-index-outside",
        fi,
        "proof",
        "event seq 3 in the checkpoint of size 3",
        &[],
        &incl(&cp3, 3, &path3),
    );
    c.add(
        "inclusion-bad-index-mismatch",
        fi,
        "proof-event",
        "index 2 for the event of seq 3",
        &[],
        &subst(&good, "\"index\":3", "\"index\":2"),
    );
    c.add(
        "inclusion-bad-tampered-event",
        fi,
        "proof-event",
        "the event's payload changed (\"step\":3 to 4)",
        &[],
        &subst(&good, "\\\"step\\\":3", "\\\"step\\\":4"),
    );
    let mut bad_sig = cp5.clone();
    bad_sig.signatures[0].signature[5] ^= 1;
    c.add(
        "inclusion-bad-checkpoint-signature",
        fi,
        "note-signature",
        "the checkpoint's signature changed",
        &[],
        &incl(&bad_sig, 3, &path3),
    );
    let mut other_key = members(&good);
    other_key.insert("public_key".into(), b.public().to_b64().into());
    c.add(
        "inclusion-bad-other-key",
        fi,
        "origin",
        "public_key of another agent: the checkpoint is not that agent's log",
        &[],
        &jcs::to_vec(&Value::Object(other_key)),
    );
    c.add(
        "inclusion-bad-wrong-agent",
        fi,
        "wrong-agent",
        "a valid proof of agent A pinned to agent B",
        &[h("expect-agent", b.agent_id().as_str())],
        &good,
    );
    c.add(
        "inclusion-bad-duplicate-member",
        fi,
        "duplicate-key",
        "index given twice",
        &[],
        &subst(&good, "\"index\":3,", "\"index\":3,\"index\":3,"),
    );
    c.add(
        "inclusion-bad-index-float",
        fi,
        "parse",
        "\"index\":3.0 — a number, but not an integer literal: refused as such, not as a missing index",
        &[],
        &subst(&good, "\"index\":3,", "\"index\":3.0,"),
    );
    c.add(
        "inclusion-bad-index-negative",
        fi,
        "parse",
        "\"index\":-3",
        &[],
        &subst(&good, "\"index\":3,", "\"index\":-3,"),
    );
    c.add(
        "inclusion-bad-unknown-member-beyond-double",
        fi,
        "parse",
        "an unknown member holding 1e400, beyond the IEEE-754 double range: the JSON is refused (2)",
        &[],
        &subst(&good, "\"index\":3,", "\"index\":3,\"x\":1e400,"),
    );
    c.add(
        "inclusion-ok-unknown-member-large-double",
        fi,
        "ok",
        "an unknown member holding 1e308, within the IEEE-754 double range: ignored",
        &[],
        &subst(&good, "\"index\":3,", "\"index\":3,\"x\":1e308,"),
    );
    c.add(
        "inclusion-bad-proof-hash-length",
        fi,
        "parse",
        "a proof hash of 31 bytes",
        &[],
        &subst(
            &good,
            &format!("\"{}\"", STANDARD.encode(path3[0].0)),
            &format!("\"{}\"", STANDARD.encode(&path3[0].0[..31])),
        ),
    );

    let fc = "consistency-proof";
    let cons = |old: &Note, new: &Note, path: &[Hash32]| {
        proof::consistency_file(old, new, path, a.public())
    };
    let p35 = merkle::consistency_proof(&lv, 3).unwrap();
    let good = cons(&cp3, &cp5, &p35);
    c.add(
        "consistency-ok",
        fc,
        "ok",
        "from size 3 to size 5",
        &[h("expect-agent", a.agent_id().as_str())],
        &good,
    );
    let l2 = leaves(&canon(&two));
    c.add(
        "consistency-ok-example",
        fc,
        "ok",
        "the consistency proof of PROTOCOL.md 10.7 (size 1 to 2)",
        &[],
        &proof::consistency_file(
            &checkpoint_of(&a, &canon(&two)[..1]),
            &checkpoint_of(&a, &canon(&two)),
            &merkle::consistency_proof(&l2, 1).unwrap(),
            a.public(),
        ),
    );
    c.add(
        "consistency-ok-equal-sizes",
        fc,
        "ok",
        "size 5 to size 5: an empty proof",
        &[],
        &cons(&cp5, &cp5, &[]),
    );
    c.add(
        "consistency-ok-against-kept",
        fc,
        "ok",
        "from size 3 to 5, verified against the kept checkpoint of size 3",
        &[h("against-file", "checkpoint-ok-size-3")],
        &good,
    );
    let wrong_new = checkpoint(&a, 5, merkle::root_of(&lv[..4]));
    c.add(
        "consistency-bad-wrong-root",
        fc,
        "merkle-root",
        "the proof from 3 to 5 under a new checkpoint of size 5 with another root",
        &[],
        &cons(&cp3, &wrong_new, &p35),
    );
    c.add(
        "consistency-bad-wrong-size",
        fc,
        "proof",
        "the proof from 3 to 5 presented as a proof from 3 to 4",
        &[],
        &cons(&cp3, &cp4, &p35),
    );
    let mut tampered = p35.clone();
    tampered[1].0[31] ^= 0x80;
    c.add(
        "consistency-bad-tampered-path",
        fc,
        "merkle-root",
        "one bit of the second proof hash flipped",
        &[],
        &cons(&cp3, &cp5, &tampered),
    );
    c.add(
        "consistency-bad-old-larger",
        fc,
        "sizes",
        "old of size 5, new of size 3",
        &[],
        &cons(&cp5, &cp3, &p35),
    );
    c.add(
        "consistency-bad-equal-sizes-nonempty",
        fc,
        "proof",
        "size 5 to 5 with a non-empty proof",
        &[],
        &cons(&cp5, &cp5, &p35),
    );
    let forked = checkpoint(&a, 5, Hash32::of(b"another history"));
    c.add(
        "consistency-bad-fork",
        fc,
        "fork",
        "old and new of size 5 with different roots, both signed by the agent",
        &[],
        &cons(&cp5, &forked, &[]),
    );
    let forked3 = checkpoint(&a, 3, Hash32::of(b"another history"));
    c.add(
        "consistency-bad-fork-against-kept",
        fc,
        "fork",
        "a proof from a size-3 checkpoint whose root differs from the kept one",
        &[h("against-file", "checkpoint-ok-size-3")],
        &cons(&forked3, &cp5, &p35),
    );
    c.add(
        "consistency-bad-against-other-size",
        fc,
        "sizes",
        "a proof from size 4 against a kept checkpoint of size 3",
        &[h("against-file", "checkpoint-ok-size-3")],
        &cons(&cp4, &cp5, &merkle::consistency_proof(&lv, 4).unwrap()),
    );
    c.add(
        "consistency-bad-unknown-format",
        fc,
        "unknown-format",
        "format accord-consistency-proof/2",
        &[],
        &subst(
            &good,
            "accord-consistency-proof/1",
            "accord-consistency-proof/2",
        ),
    );
    c.add(
        "consistency-bad-inclusion-given",
        fc,
        "unknown-format",
        "a valid inclusion proof where a consistency proof is expected",
        &[],
        &incl(&cp5, 3, &path3),
    );
}

fn gen_notes(c: &mut Corpus) {
    let a = kp(&SEED_A);
    let b = kp(&SEED_B);
    let five = chain_a(5);
    let ev = canon(&five);
    let two = chain_a(2);
    let doc_cp = checkpoint_of(&a, &canon(&two)).to_bytes();
    let origin = Checkpoint::origin_of(a.agent_id());
    let key_a = h("key", a.public().to_b64());
    let fc = "checkpoint";
    c.add(
        "checkpoint-ok-example",
        fc,
        "ok",
        "the checkpoint of PROTOCOL.md 9.6",
        &[
            key_a.clone(),
            h("size", "2"),
            h("root", merkle::root_of(&leaves(&canon(&two))).to_hex()),
        ],
        &doc_cp,
    );
    c.add(
        "checkpoint-ok-size-3",
        fc,
        "ok",
        "the checkpoint of the first three events (kept checkpoint of the consistency cases)",
        &[key_a.clone(), h("size", "3")],
        &checkpoint_of(&a, &ev[..3]).to_bytes(),
    );
    let mut cosigned = checkpoint_of(&a, &canon(&two));
    let witness = Checkpoint::origin_of(b.agent_id());
    cosigned.cosign(&witness, &b, 1_795_515_360).unwrap();
    let cosigned = cosigned.to_bytes();
    c.add(
        "checkpoint-ok-cosigned",
        fc,
        "ok",
        "the checkpoint with a witness cosignature line (ignored by Checkpoint::open)",
        std::slice::from_ref(&key_a),
        &cosigned,
    );
    let text = checkpoint_of(&a, &canon(&two)).text;
    let by_b = Note::sign(&text, "example.com/other", &b).unwrap();
    let mut two_lines = by_b.clone();
    two_lines
        .signatures
        .extend(Note::parse(&doc_cp).unwrap().signatures);
    c.add(
        "checkpoint-ok-other-line-first",
        fc,
        "ok",
        "another key's signature line before the agent's",
        std::slice::from_ref(&key_a),
        &two_lines.to_bytes(),
    );
    c.add(
        "checkpoint-bad-signature",
        fc,
        "note-signature",
        "the root changed after signing",
        std::slice::from_ref(&key_a),
        &subst(&doc_cp, "Z3nSAOaI", "Z3nSAOaJ"),
    );
    let impostor = Note::sign(&text, &origin, &b).unwrap();
    c.add(
        "checkpoint-bad-unknown-key",
        fc,
        "unknown-key",
        "signed under the agent's name by another key (another key ID)",
        std::slice::from_ref(&key_a),
        &impostor.to_bytes(),
    );
    c.add(
        "checkpoint-bad-other-agent",
        fc,
        "origin",
        "a valid checkpoint of agent A opened with agent B's key",
        &[h("key", b.public().to_b64())],
        &doc_cp,
    );
    let body = |t: &str| Note::sign(t, &origin, &a).unwrap().to_bytes();
    let root_b64 = STANDARD.encode(merkle::root_of(&leaves(&canon(&two))).0);
    c.add(
        "checkpoint-bad-extension-line",
        fc,
        "checkpoint-body",
        "a fourth (extension) line in the body, signed",
        std::slice::from_ref(&key_a),
        &body(&format!("{origin}\n2\n{root_b64}\nextension\n")),
    );
    c.add(
        "checkpoint-bad-leading-zero",
        fc,
        "checkpoint-body",
        "size written 02, signed",
        std::slice::from_ref(&key_a),
        &body(&format!("{origin}\n02\n{root_b64}\n")),
    );
    c.add(
        "checkpoint-bad-size-overflow",
        fc,
        "checkpoint-body",
        "size 2^64, signed",
        std::slice::from_ref(&key_a),
        &body(&format!("{origin}\n18446744073709551616\n{root_b64}\n")),
    );
    c.add(
        "checkpoint-bad-root-length",
        fc,
        "checkpoint-body",
        "a root of 31 bytes, signed",
        std::slice::from_ref(&key_a),
        &body(&format!("{origin}\n2\n{}\n", STANDARD.encode([7u8; 31]))),
    );

    let fnote = "note";
    let name = h("name", origin.clone());
    c.add(
        "note-ok-checkpoint",
        fnote,
        "ok",
        "the example checkpoint as a signed note, verified by name and key",
        &[name.clone(), key_a.clone()],
        &doc_cp,
    );
    let cosigner = [
        h("cosigner-name", witness.clone()),
        h("cosigner-key", b.public().to_b64()),
        h("cosignature-time", "1795515360"),
    ];
    c.add("note-ok-cosignature", fnote, "ok", "the cosigned checkpoint of PROTOCOL.md 11.5: the agent's signature and the witness's cosignature/v1 line", &[&[name.clone(), key_a.clone()][..], &cosigner[..]].concat(), &cosigned);
    let mut parsed = Note::parse(&cosigned).unwrap();
    parsed.signatures[1].signature[7] ^= 1;
    c.add(
        "note-bad-cosignature-time",
        fnote,
        "note-signature",
        "the cosignature's time changed by one second",
        &cosigner,
        &parsed.to_bytes(),
    );
    c.add(
        "note-bad-signature",
        fnote,
        "note-signature",
        "one byte of the signature changed",
        &[name.clone(), key_a.clone()],
        &{
            let mut n = Note::parse(&doc_cp).unwrap();
            n.signatures[0].signature[0] ^= 1;
            n.to_bytes()
        },
    );
    c.add(
        "note-bad-unknown-key",
        fnote,
        "unknown-key",
        "no signature line by the key asked for",
        &[name.clone(), h("key", b.public().to_b64())],
        &doc_cp,
    );
    let many = |n: usize| {
        let mut note = Note::parse(&doc_cp).unwrap();
        for i in 1..n {
            let other = kp(&[0x40 + i as u8; 32]);
            note.signatures.extend(
                Note::sign(&text, &format!("witness{i}"), &other)
                    .unwrap()
                    .signatures,
            );
        }
        note.to_bytes()
    };
    c.add(
        "note-ok-64-signatures",
        fnote,
        "ok",
        "64 signature lines (MAX_SIGNATURES)",
        &[name.clone(), key_a.clone()],
        &many(64),
    );
    c.add(
        "note-bad-65-signatures",
        fnote,
        "note-parse",
        "65 signature lines, one beyond MAX_SIGNATURES",
        &[name.clone(), key_a.clone()],
        &many(65),
    );
    c.add(
        "note-bad-no-blank-line",
        fnote,
        "note-parse",
        "the blank line between text and signatures removed",
        &[],
        &subst(&doc_cp, "\n\n", "\n"),
    );
    c.add(
        "note-bad-cr",
        fnote,
        "note-parse",
        "a CR before the first newline",
        &[],
        &subst(&doc_cp, "\n", "\r\n"),
    );
    c.add(
        "note-bad-no-final-newline",
        fnote,
        "note-parse",
        "the signature block does not end in a newline",
        &[],
        doc_cp.strip_suffix(b"\n").unwrap(),
    );
    c.add(
        "note-bad-no-em-dash",
        fnote,
        "note-parse",
        "a signature line starting with a hyphen instead of an em dash",
        &[],
        &subst(&doc_cp, "\u{2014} ", "- "),
    );
    c.add(
        "note-bad-base64-padding",
        fnote,
        "note-parse",
        "a signature with its = padding removed",
        &[],
        &subst(&doc_cp, "Qc=\n", "Qc\n"),
    );
    c.add(
        "note-bad-key-name-plus",
        fnote,
        "note-parse",
        "a key name containing +",
        &[],
        &subst(&doc_cp, "\u{2014} accord/agent/", "\u{2014} accord+agent/"),
    );
    // 9.1 / 9.3 follow c2sp.org/signed-note: key names refuse the Unicode
    // White_Space characters (Go's unicode.IsSpace), nothing else; notes
    // refuse controls below U+0020 but newline, not DEL.
    for (case, c_, what) in [
        ("note-bad-key-name-nbsp", '\u{a0}', "U+00A0 NO-BREAK SPACE"),
        ("note-bad-key-name-nel", '\u{85}', "U+0085 NEXT LINE"),
        ("note-bad-key-name-en-quad", '\u{2000}', "U+2000 EN QUAD"),
        (
            "note-bad-key-name-ideographic-space",
            '\u{3000}',
            "U+3000 IDEOGRAPHIC SPACE",
        ),
    ] {
        let n = format!("accord{c_}witness");
        c.add(
            case,
            fnote,
            "note-parse",
            &format!("a key name containing {what}, a Unicode space (White_Space)"),
            &[],
            format!("{text}\n\u{2014} {n} AAAAAAAA\n").as_bytes(),
        );
    }
    for (case, c_, what) in [
        (
            "note-ok-key-name-zero-width-space",
            '\u{200b}',
            "U+200B ZERO WIDTH SPACE",
        ),
        (
            "note-ok-key-name-bom",
            '\u{feff}',
            "U+FEFF ZERO WIDTH NO-BREAK SPACE",
        ),
        (
            "note-ok-key-name-mongolian-vowel-separator",
            '\u{180e}',
            "U+180E MONGOLIAN VOWEL SEPARATOR",
        ),
    ] {
        let n = format!("accord{c_}witness");
        let note = Note::sign(&text, &n, &a).unwrap();
        c.add(
            case,
            fnote,
            "ok",
            &format!(
                "a key name containing {what}, not White_Space: a valid name, and its line verifies"
            ),
            &[h("name", &n), key_a.clone()],
            &note.to_bytes(),
        );
    }
    let del_text = format!("{text}free text with DEL \u{7f} and a C1 control \u{80}\n");
    c.add(
        "note-ok-del-in-text",
        fnote,
        "ok",
        "DEL (U+007F) and U+0080 in the text: not controls below U+0020, so accepted",
        &[name.clone(), key_a.clone()],
        &Note::sign(&del_text, &origin, &a).unwrap().to_bytes(),
    );
    c.add(
        "note-bad-unit-separator",
        fnote,
        "note-parse",
        "U+001F in the text, the last control character below U+0020",
        &[],
        &subst(&doc_cp, "\n", "\u{1f}\n"),
    );
    c.add(
        "note-bad-short-signature",
        fnote,
        "note-parse",
        "a signature line of 4 bytes (a key ID and nothing else)",
        &[],
        format!("{text}\n\u{2014} {origin} AAAAAA==\n").as_bytes(),
    );
    let mut big = doc_cp.clone();
    big.splice(0..0, std::iter::repeat_n(b'x', 65_537 - doc_cp.len()));
    c.add(
        "note-bad-too-large",
        fnote,
        "too-large",
        "65,537 bytes, one beyond MAX_NOTE_BYTES",
        &[],
        &big,
    );
}

const HANDOFF_PAYLOAD: &[u8] = b"Q3 risk report: liquidity, FX exposure, vendor concentration.\n";

fn gen_receipts(c: &mut Corpus) {
    let a = kp(&SEED_A);
    let cc = kp(&SEED_C);
    let d = kp(&SEED_D);
    let f = "receipt";
    let receipt = |seq: u64, prev: Hash32, time: &str| {
        Receipt {
            handoff_id: nonce(0x77),
            parent_task_id: Some("T-1".into()),
            receiver: cc.agent_id().clone(),
            payload_sha256: Hash32::of(HANDOFF_PAYLOAD),
            payload_size: HANDOFF_PAYLOAD.len() as u64,
            seq,
            timestamp: ts(time),
            prev_receipt_hash: prev,
        }
        .sign(&a)
    };
    const AT: &str = "2026-11-24T10:25:00.000000Z";
    let first = receipt(1, Hash32::ZERO, AT);
    let doc = first.canonical().to_vec();
    let base = |now: &str| {
        vec![
            h("receiver", cc.agent_id().as_str()),
            h("payload-sha256", Hash32::of(HANDOFF_PAYLOAD).to_hex()),
            h("payload-size", HANDOFF_PAYLOAD.len().to_string()),
            h("now", now),
        ]
    };
    let with = |now: &str, more: &[(&'static str, String)]| {
        let mut v = base(now);
        for (k, val) in more {
            v.retain(|(kk, _)| kk != k);
            v.push((k, val.clone()));
        }
        v
    };
    let soon = "2026-11-24T10:26:00.000000Z";
    c.add(
        "receipt-ok-example",
        f,
        "ok",
        "the receipt of PROTOCOL.md 16.2, accepted by its receiver a minute later",
        &base(soon),
        &doc,
    );
    c.add(
        "receipt-ok-final-newline",
        f,
        "ok",
        "the receipt line with its LF (readers allow trailing whitespace)",
        &base(soon),
        &[doc.as_slice(), b"\n"].concat(),
    );
    c.add(
        "receipt-ok-not-canonical",
        f,
        "ok",
        "the receipt with whitespace between members: signed objects need not be canonical",
        &base(soon),
        &subst(&doc, ",\"handoff_id\"", ", \"handoff_id\""),
    );
    c.add(
        "receipt-ok-window-edge",
        f,
        "ok",
        "exactly 86,400 s old: the end of the default window",
        &base("2026-11-25T10:25:00.000000Z"),
        &doc,
    );
    c.add(
        "receipt-bad-expired",
        f,
        "expired",
        "86,400 s and one microsecond old",
        &base("2026-11-25T10:25:00.000001Z"),
        &doc,
    );
    c.add(
        "receipt-bad-expired-short-window",
        f,
        "expired",
        "61 s old with a window of 60 s",
        &with("2026-11-24T10:26:01.000000Z", &[h("window-seconds", "60")]),
        &doc,
    );
    c.add(
        "receipt-ok-future-within-skew",
        f,
        "ok",
        "dated exactly 300 s in the future",
        &base("2026-11-24T10:20:00.000000Z"),
        &doc,
    );
    c.add(
        "receipt-bad-future-beyond-skew",
        f,
        "expired",
        "dated 300 s and one microsecond in the future",
        &base("2026-11-24T10:19:59.999999Z"),
        &doc,
    );
    c.add(
        "receipt-bad-tampered-payload-hash",
        f,
        "signature",
        "payload_sha256 changed after signing (to the hash the receiver computed)",
        &with(
            soon,
            &[h("payload-sha256", Hash32::of(b"other payload").to_hex())],
        ),
        &subst(
            &doc,
            &Hash32::of(HANDOFF_PAYLOAD).to_hex(),
            &Hash32::of(b"other payload").to_hex(),
        ),
    );
    c.add(
        "receipt-bad-payload-mismatch",
        f,
        "payload",
        "a valid receipt for another payload than the one received",
        &with(
            soon,
            &[h("payload-sha256", Hash32::of(b"other payload").to_hex())],
        ),
        &doc,
    );
    c.add(
        "receipt-bad-payload-size",
        f,
        "payload",
        "the payload received is one byte shorter",
        &with(
            soon,
            &[h("payload-size", (HANDOFF_PAYLOAD.len() - 1).to_string())],
        ),
        &doc,
    );
    c.add(
        "receipt-bad-wrong-receiver",
        f,
        "wrong-receiver",
        "a valid receipt addressed to another agent",
        &with(soon, &[h("receiver", d.agent_id().as_str())]),
        &doc,
    );
    c.add(
        "receipt-bad-wrong-sender",
        f,
        "wrong-sender",
        "a valid receipt from an agent other than the one expected",
        &with(soon, &[h("expect-sender", d.agent_id().as_str())]),
        &doc,
    );
    c.add(
        "receipt-ok-expected-sender",
        f,
        "ok",
        "the expected sender",
        &with(soon, &[h("expect-sender", a.agent_id().as_str())]),
        &doc,
    );
    c.add(
        "receipt-bad-sender-not-derived",
        f,
        "agent-id",
        "sender names another agent than sender_key derives (signed by sender_key)",
        &base(soon),
        &recraft(&a, &doc, "sender", d.agent_id().as_str().into()),
    );
    c.add(
        "receipt-bad-signed-by-other",
        f,
        "signature",
        "sender and sender_key of A, signed by D",
        &base(soon),
        &craft(&d, members(&doc)),
    );
    c.add(
        "receipt-bad-replay",
        f,
        "replay",
        "seq 1 when seq 1 was already accepted",
        &with(
            soon,
            &[h("last-seq", "1"), h("last-hash", first.hash().to_hex())],
        ),
        &doc,
    );
    let second = receipt(2, first.hash(), "2026-11-24T10:25:30.000000Z");
    c.add(
        "receipt-ok-second",
        f,
        "ok",
        "seq 2 linked to the accepted seq 1",
        &with(
            soon,
            &[h("last-seq", "1"), h("last-hash", first.hash().to_hex())],
        ),
        second.canonical(),
    );
    let relinked = receipt(
        2,
        Hash32::of(b"another receipt"),
        "2026-11-24T10:25:30.000000Z",
    );
    c.add(
        "receipt-bad-broken-link",
        f,
        "prev-receipt",
        "seq 2 whose prev_receipt_hash is not the accepted receipt's hash",
        &with(
            soon,
            &[h("last-seq", "1"), h("last-hash", first.hash().to_hex())],
        ),
        relinked.canonical(),
    );
    let third = receipt(3, Hash32::of(b"unseen"), "2026-11-24T10:25:40.000000Z");
    c.add(
        "receipt-ok-gap",
        f,
        "ok",
        "seq 3 after seq 1: accepted with a gap warning",
        &with(
            soon,
            &[
                h("last-seq", "1"),
                h("last-hash", first.hash().to_hex()),
                h("warning", "gap: receipts 2 to 2"),
            ],
        ),
        third.canonical(),
    );
    c.add(
        "receipt-bad-seq-zero",
        f,
        "member",
        "seq 0, signed",
        &base(soon),
        &recraft(&a, &doc, "seq", 0.into()),
    );
    c.add(
        "receipt-bad-wrong-format",
        f,
        "unknown-format",
        "format accord-handoff/2, signed",
        &base(soon),
        &recraft(&a, &doc, "format", "accord-handoff/2".into()),
    );
    c.add(
        "receipt-bad-float",
        f,
        "float",
        "payload_size written 62.0",
        &base(soon),
        &subst(&doc, "\"payload_size\":62", "\"payload_size\":62.0"),
    );
    c.add(
        "receipt-bad-duplicate-member",
        f,
        "duplicate-key",
        "receiver given twice",
        &base(soon),
        &subst(
            &doc,
            "\"receiver\"",
            &format!("\"receiver\":\"{}\",\"receiver\"", d.agent_id()),
        ),
    );
}

fn gen_signed_objects(c: &mut Corpus) {
    let a = kp(&SEED_A);
    let b = kp(&SEED_B);
    let f = "signed-object";
    let fmt = "accord-corpus-test/1";
    let mut m = Map::new();
    m.insert("format".into(), fmt.into());
    m.insert("agent".into(), a.agent_id().as_str().into());
    m.insert("count".into(), 3.into());
    m.insert(
        "items".into(),
        serde_json::json!(["x", {"y": null, "z": [true]}]),
    );
    m.insert("note".into(), "é\u{2028}".into());
    let obj = SignedObject::sign(m, &a);
    let text = obj.canonical().to_vec();
    let hash = obj.hash().to_hex();
    let base = vec![h("signed-format", fmt), h("key", a.public().to_b64())];
    let with_hash = [base.clone(), vec![h("hash", hash.clone())]].concat();
    c.add(
        "signed-ok",
        f,
        "ok",
        "a canonical signed object, and its object hash",
        &with_hash,
        &text,
    );
    let respelled = subst(
        &subst(&text, "\"count\":3", "\"count\" : 3"),
        "é",
        "\\u00e9",
    );
    c.add("signed-ok-respelled", f, "ok", "whitespace and a \\u escape: same object, same hash (hash over the re-computed canonical form)", &with_hash, &respelled);
    c.add(
        "signed-ok-unknown-member",
        f,
        "ok",
        "an extra member covered by the signature",
        &base,
        &recraft(&a, &text, "extra", "kept".into()),
    );
    c.add(
        "signed-bad-signature",
        f,
        "signature",
        "count changed after signing",
        &base,
        &subst(&text, "\"count\":3", "\"count\":4"),
    );
    c.add(
        "signed-bad-other-key",
        f,
        "signature",
        "verified under another key",
        &[h("signed-format", fmt), h("key", b.public().to_b64())],
        &text,
    );
    let mut unsigned = members(&text);
    unsigned.remove("signature");
    c.add(
        "signed-bad-no-signature",
        f,
        "member",
        "no signature member",
        &base,
        &jcs::to_vec(&Value::Object(unsigned)),
    );
    let sig = members(&text)["signature"].as_str().unwrap().to_owned();
    c.add(
        "signed-bad-signature-padded",
        f,
        "member",
        "the signature with = padding",
        &base,
        &subst(&text, &sig, &format!("{sig}==")),
    );
    c.add(
        "signed-bad-format",
        f,
        "unknown-format",
        "read as another format",
        &[
            h("signed-format", "accord-handoff/1"),
            h("key", a.public().to_b64()),
        ],
        &text,
    );
    c.add(
        "signed-bad-not-object",
        f,
        "parse",
        "a JSON array",
        &base,
        b"[1,2,3]",
    );
    c.add(
        "signed-bad-float",
        f,
        "float",
        "a float member (signed as an integer, respelled)",
        &base,
        &subst(&text, "\"count\":3", "\"count\":3.0"),
    );
    c.add(
        "signed-bad-number-range",
        f,
        "number-range",
        "an integer beyond 2^53−1",
        &base,
        &subst(&text, "\"count\":3", "\"count\":9007199254740993"),
    );
    let mut big = text.clone();
    big.splice(
        1..1,
        format!("\"pad\":\"{}\",", "x".repeat(65_536 - text.len())).into_bytes(),
    );
    c.add(
        "signed-bad-too-large",
        f,
        "too-large",
        "a text of more than MAX_SIGNED_BYTES (65,536)",
        &base,
        &big,
    );
}

/// The deterministic "RNG" of the channel examples of PROTOCOL.md 18: every
/// call fills the buffer with the next byte value (1, 2, …).
struct Counter(u8);
impl rand_core::TryRng for Counter {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0 = self.0.wrapping_add(1);
        dst.fill(self.0);
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Counter {}

fn gen_channel(c: &mut Corpus) {
    let a = kp(&SEED_A);
    let b = kp(&SEED_B);
    let d = kp(&SEED_D);
    let x = ExchangeSecret::generate(&IKM_B);
    let created = ts("2026-11-24T10:00:00.000000Z");
    let expires = ts("2026-11-26T10:00:00.000000Z");
    let bundle = Bundle::sign(&b, &x, created.clone(), expires.clone());
    let doc = bundle.to_bytes().to_vec();
    let f = "bundle";
    let now = |t: &str| h("now", t);
    c.add(
        "bundle-ok-example",
        f,
        "ok",
        "the bundle of PROTOCOL.md 18.1, inside its validity",
        &[
            now("2026-11-24T10:15:00.000000Z"),
            h("expect-agent", b.agent_id().as_str()),
        ],
        &doc,
    );
    c.add(
        "bundle-ok-created",
        f,
        "ok",
        "checked at exactly created (validity includes it)",
        &[now("2026-11-24T10:00:00.000000Z")],
        &doc,
    );
    c.add(
        "bundle-bad-expired",
        f,
        "expired",
        "checked at exactly expires (validity excludes it)",
        &[now("2026-11-26T10:00:00.000000Z")],
        &doc,
    );
    c.add(
        "bundle-bad-not-yet-valid",
        f,
        "expired",
        "checked one microsecond before created",
        &[now("2026-11-24T09:59:59.999999Z")],
        &doc,
    );
    c.add(
        "bundle-ok-not-canonical",
        f,
        "ok",
        "whitespace between members (the signature covers the canonical form)",
        &[],
        &subst(&doc, ",\"created\"", ", \"created\""),
    );
    c.add(
        "bundle-bad-signature",
        f,
        "bundle-signature",
        "expires moved a day later after signing",
        &[],
        &subst(&doc, "2026-11-26T10", "2026-11-27T10"),
    );
    c.add(
        "bundle-bad-signed-by-other",
        f,
        "bundle-signature",
        "signed by another key than its public_key",
        &[],
        &craft(&a, members(&doc)),
    );
    let other_x = ExchangeSecret::generate(&IKM_OTHER);
    c.add(
        "bundle-bad-exchange-key-id",
        f,
        "parse",
        "another exchange_key under the old exchange_key_id, signed",
        &[],
        &recraft(&b, &doc, "exchange_key", b64url(other_x.public()).into()),
    );
    c.add(
        "bundle-bad-agent-id",
        f,
        "agent-id",
        "agent_id of another key, signed",
        &[],
        &recraft(&b, &doc, "agent_id", a.agent_id().as_str().into()),
    );
    c.add(
        "bundle-bad-expires-before-created",
        f,
        "parse",
        "expires equal to created, signed",
        &[],
        &recraft(&b, &doc, "expires", created.as_str().into()),
    );
    c.add(
        "bundle-bad-unknown-member",
        f,
        "parse",
        "an extra member, signed",
        &[],
        &recraft(&b, &doc, "extra", 1.into()),
    );
    c.add(
        "bundle-bad-duplicate-member",
        f,
        "duplicate-key",
        "created twice",
        &[],
        &subst(
            &doc,
            "\"created\"",
            "\"created\":\"2026-11-24T10:00:00.000000Z\",\"created\"",
        ),
    );
    c.add(
        "bundle-bad-wrong-agent",
        f,
        "wrong-agent",
        "a valid bundle of B where A's was asked for",
        &[h("expect-agent", a.agent_id().as_str())],
        &doc,
    );

    // Envelopes: the session of PROTOCOL.md 18.2/18.3, A to B.
    let mut tx = Session::initiate(a.agent_id(), &bundle, [4; 16], 0, &mut Counter(0)).unwrap();
    let mut send = |id: &str, text: &str| {
        let mut payload = Map::new();
        payload.insert("task_id".into(), Value::from(42));
        tx.seal(
            &a,
            Draft {
                id: Uuid::parse_str(id).unwrap(),
                timestamp_ms: 1_795_514_400_000,
                msg_type: "task".into(),
                text: text.into(),
                payload,
            },
        )
        .unwrap()
        .0
        .to_bytes()
    };
    let first = send("7f2c1e4a-9b3d-4c5e-8f60-1a2b3c4d5e6f", "summarise Q3");
    let second = send("7f2c1e4a-9b3d-4c5e-8f60-1a2b3c4d5e70", "and Q4");
    let f = "envelope";
    let hex32 = |s: &[u8; 32]| hex::encode(s);
    let base = vec![
        h("recipient-seed", hex32(&SEED_B)),
        h("exchange-ikm", hex32(&IKM_B)),
        h("sender-key", a.public().to_b64()),
    ];
    let with = |more: &[(&'static str, String)]| {
        let mut v = base.clone();
        for (k, val) in more {
            v.retain(|(kk, _)| kk != k);
            v.push((k, val.clone()));
        }
        v
    };
    c.add(
        "envelope-ok-example",
        f,
        "ok",
        "the first envelope of PROTOCOL.md 18.3, opened by its recipient",
        &base,
        &first,
    );
    c.add(
        "envelope-ok-second",
        f,
        "ok",
        "the second envelope of the session, after the first",
        &with(&[h("previous-file", "envelope-ok-example")]),
        &second,
    );
    c.add(
        "envelope-ok-second-alone",
        f,
        "ok",
        "the second envelope opens the session by itself (every s2r envelope carries enc)",
        &base,
        &second,
    );
    let ct = members(&first)["ciphertext"].as_str().unwrap().to_owned();
    let mut flipped = ct.clone().into_bytes();
    flipped[20] = if flipped[20] == b'A' { b'B' } else { b'A' };
    c.add(
        "envelope-bad-tampered-ciphertext",
        f,
        "aead",
        "one character of the ciphertext changed",
        &base,
        &subst(&first, &ct, std::str::from_utf8(&flipped).unwrap()),
    );
    c.add(
        "envelope-bad-truncated-ciphertext",
        f,
        "aead",
        "the ciphertext's last 16 characters removed",
        &base,
        &subst(&first, &ct, &ct[..ct.len() - 16]),
    );
    c.add(
        "envelope-bad-tampered-seq",
        f,
        "aead",
        "the header's seq changed to 5 (AAD and nonce change)",
        &base,
        &subst(&first, "\"seq\":0", "\"seq\":5"),
    );
    c.add(
        "envelope-bad-wrong-recipient",
        f,
        "mismatch",
        "opened by an agent that is not its to",
        &with(&[h("recipient-seed", hex32(&SEED_D))]),
        &first,
    );
    c.add(
        "envelope-bad-other-exchange-key",
        f,
        "mismatch",
        "the recipient holds another exchange key than exchange_key_id names",
        &with(&[h("exchange-ikm", hex32(&IKM_OTHER))]),
        &first,
    );
    c.add(
        "envelope-bad-sender-key",
        f,
        "message-signature",
        "the sender's pinned key is another agent's",
        &with(&[h("sender-key", d.public().to_b64())]),
        &first,
    );
    c.add(
        "envelope-bad-replay",
        f,
        "replay",
        "the first envelope again after it was opened",
        &with(&[h("previous-file", "envelope-ok-example")]),
        &first,
    );
    c.add(
        "envelope-bad-unknown-member",
        f,
        "parse",
        "an extra member",
        &base,
        &subst(&first, "{", "{\"extra\":1,"),
    );
    c.add(
        "envelope-bad-session-id",
        f,
        "parse",
        "a session_id of 15 bytes",
        &base,
        &subst(&first, "BAQEBAQEBAQEBAQEBAQEBA", "BAQEBAQEBAQEBAQEBAQE"),
    );
    c.add(
        "envelope-bad-enc-without-key-id",
        f,
        "parse",
        "enc without exchange_key_id",
        &base,
        &{
            let mut m = members(&first);
            m.remove("exchange_key_id");
            jcs::to_vec(&Value::Object(m))
        },
    );
    c.add(
        "envelope-bad-version",
        f,
        "parse",
        "v 2",
        &base,
        &subst(&first, "\"v\":1", "\"v\":2"),
    );
}

fn nested_object(levels: usize) -> String {
    // {"a":{"a":…{}…}}: `levels` objects.
    format!(
        "{}{{}}{}",
        "{\"a\":".repeat(levels - 1),
        "}".repeat(levels - 1)
    )
}

fn gen_stamp(c: &mut Corpus) {
    let f = "stamp";
    let seed = [h("seed", hex::encode(SEED_A))];
    c.add(
        "stamp-ok-simple",
        f,
        "ok",
        "a payload object with an integer and a string",
        &seed,
        br#"{"n":1,"s":"x"}"#,
    );
    c.add(
        "stamp-ok-depth-126",
        f,
        "ok",
        "a payload nested 126 levels: its event is nested 127, the limit",
        &seed,
        nested_object(126).as_bytes(),
    );
    c.add("stamp-bad-depth-127", f, "depth",
        "a payload nested 127 levels: readable alone, but its event would be nested 128 levels, beyond the limit, so the writer must refuse it",
        &seed,
        nested_object(127).as_bytes());
    c.add(
        "stamp-bad-depth-128",
        f,
        "depth",
        "a payload nested 128 levels: refused as JSON",
        &seed,
        nested_object(128).as_bytes(),
    );
    c.add(
        "stamp-bad-float",
        f,
        "float",
        "a payload with a float",
        &seed,
        br#"{"n":0.5}"#,
    );
    c.add(
        "stamp-bad-integer-too-large",
        f,
        "number-range",
        "a payload integer of 2^53",
        &seed,
        br#"{"n":9007199254740992}"#,
    );
    c.add(
        "stamp-bad-duplicate-key",
        f,
        "duplicate-key",
        "a payload with a member twice",
        &seed,
        br#"{"n":1,"n":2}"#,
    );
    c.add(
        "stamp-bad-not-object",
        f,
        "parse",
        "a payload that is an array",
        &seed,
        b"[1]",
    );
}
