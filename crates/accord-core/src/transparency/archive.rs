//! Certified archives (`accord-archive/1`): one file that verifies offline
//! with nothing else.
//!
//! ```text
//! {"agent_id":…,"format":"accord-archive/1","name":…,"public_key":…}        header (identity)
//! {…event seq 0…}                                                          the export: events…
//! {…event seq n−1…}
//! {…"format":"accord-export-seal/1"…}                                      …and its seal
//! {"archive_digest":…,"certified_at":…,"checkpoint":"<note>","format":"accord-certification/1","signature":…[,"timestamp":…]}
//! ```
//!
//! `archive_digest` is SHA-256 over every byte before the certification line
//! (header, events and seal, each with its `\n`); the certification is
//! signed by the agent (Ed25519 over the canonical form of its other
//! members) and carries a C2SP checkpoint whose size and RFC 9162 root must
//! equal those of the archived events. A changed byte anywhere breaks the
//! chain, the seal, the digest, the checkpoint or the signature.
//!
//! The optional `timestamp` member is an RFC 3161 token (DER, unpadded
//! base64url) whose message imprint is SHA-256 of the exact bytes of the
//! `checkpoint` string (the signed note, UTF-8, final `\n` included). Both
//! the note and the token sit inside the certification the agent signs, so
//! a changed byte in either breaks that signature as well.
//!
//! The token itself is checked through [`TimestampCheck`], which the
//! `accord-tsp` crate implements (`accord_tsp::archive`), so that the core
//! compiles no CMS, X.509 or RSA. An [`ArchiveVerifier`] without one refuses
//! any archive that carries a token ([`NoTimestampCheck`]): an archive it
//! accepts never has an unchecked timestamp.

use std::convert::Infallible;
use std::fmt;

use ed25519_dalek::Signature;
use serde_json::{Map, Value};

use crate::chain::SignatureMode;
use crate::export::{ExportError, ExportReport, ExportVerifier};
use crate::hash::{Hash32, Hasher};
use crate::identity::{AgentId, Keypair, PublicKey, decode_b64_exact, encode_b64};
use crate::jcs;
use crate::merkle::{self, Tree};
use crate::note::{Checkpoint, Note};
use crate::timestamp::Timestamp;

/// `format` of the header line.
pub const ARCHIVE_FORMAT: &str = "accord-archive/1";
/// `format` of the certification line.
pub const CERTIFICATION_FORMAT: &str = "accord-certification/1";
/// Most bytes an archive's decoded `timestamp` may have; equal to
/// `accord_tsp::MAX_TOKEN_BYTES` (a test there checks it).
pub const MAX_TIMESTAMP_BYTES: usize = 1 << 20;

/// Checks the RFC 3161 token of an archive's certification; `accord-tsp`
/// implements it (`accord_tsp::archive::ArchiveTimestamps`).
pub trait TimestampCheck {
    /// What a verified token reports.
    type Report;
    /// Why a token was refused; the verifier reports it as
    /// "line N: certification: RFC 3161 timestamp: {error}".
    type Error: fmt::Display;

    /// Verifies `token` (DER, at most [`MAX_TIMESTAMP_BYTES`]) as a
    /// time-stamp, without a nonce, over the SHA-256 `digest` of the
    /// checkpoint note's bytes ([`timestamp_digest`]).
    fn check(&self, token: &[u8], digest: &Hash32) -> Result<Self::Report, Self::Error>;
}

/// The [`TimestampCheck`] of [`ArchiveVerifier::new`]: no RFC 3161 verifier
/// is built in, so every token is refused (an archive without one verifies).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTimestampCheck;

/// Why [`NoTimestampCheck`] refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "not checked: this verifier has no RFC 3161 token checker (accord-tsp's accord_tsp::archive provides one)"
)]
pub struct TimestampNotChecked;

impl TimestampCheck for NoTimestampCheck {
    type Report = Infallible;
    type Error = TimestampNotChecked;

    fn check(&self, _token: &[u8], _digest: &Hash32) -> Result<Infallible, TimestampNotChecked> {
        Err(TimestampNotChecked)
    }
}

/// Why an archive does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The header line is missing or wrong.
    #[error("line 1: archive header: {0}")]
    Header(String),
    /// The chain or seal inside is broken (line numbers are the archive's).
    #[error("{0}")]
    Export(String),
    /// The certification line is wrong.
    #[error("line {line}: certification: {reason}")]
    Certification {
        /// 1-based line.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file ends before the certification line.
    #[error("the archive ends without a certification line (truncated)")]
    Truncated,
    /// Something follows the certification line.
    #[error("line {0}: content after the certification line")]
    Trailing(u64),
}

/// Writes the header line of an archive.
pub fn header_line(key: &PublicKey, name: Option<&str>) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("agent_id".into(), key.agent_id().as_str().into());
    m.insert("format".into(), ARCHIVE_FORMAT.into());
    m.insert("name".into(), name.map_or(Value::Null, Into::into));
    m.insert("public_key".into(), key.to_b64().into());
    jcs::to_vec(&Value::Object(m))
}

/// Writes the certification line over `digest` (SHA-256 of everything
/// before it) and the signed `checkpoint`.
pub fn certification_line(
    key: &Keypair,
    digest: &Hash32,
    checkpoint: &Note,
    certified_at: &Timestamp,
) -> Vec<u8> {
    certification_line_with_timestamp(key, digest, checkpoint, certified_at, None)
}

/// The digest an archive's RFC 3161 token must carry as its (SHA-256)
/// message imprint: SHA-256 of the checkpoint note's bytes exactly as the
/// certification line carries them.
pub fn timestamp_digest(checkpoint_note: &[u8]) -> Hash32 {
    Hash32::of(checkpoint_note)
}

/// [`certification_line`] with an optional RFC 3161 token (DER) over
/// [`timestamp_digest`] of the checkpoint; the token is covered by the
/// certification signature.
pub fn certification_line_with_timestamp(
    key: &Keypair,
    digest: &Hash32,
    checkpoint: &Note,
    certified_at: &Timestamp,
    timestamp: Option<&[u8]>,
) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("archive_digest".into(), digest.to_hex().into());
    m.insert("certified_at".into(), certified_at.as_str().into());
    m.insert(
        "checkpoint".into(),
        String::from_utf8_lossy(&checkpoint.to_bytes())
            .into_owned()
            .into(),
    );
    m.insert("format".into(), CERTIFICATION_FORMAT.into());
    if let Some(token) = timestamp {
        m.insert("timestamp".into(), encode_b64(token).into());
    }
    let sig = key.sign(&jcs::to_vec(&Value::Object(m.clone())));
    m.insert("signature".into(), encode_b64(&sig.to_bytes()).into());
    jcs::to_vec(&Value::Object(m))
}

/// What a verified archive holds; `T` is the report of the verifier's
/// [`TimestampCheck`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveReport<T = Infallible> {
    /// The chain inside (with its seal).
    pub export: ExportReport,
    /// The agent's name from the header.
    pub name: Option<String>,
    /// The certified checkpoint.
    pub checkpoint: Checkpoint,
    /// When the agent certified the archive (its own claim).
    pub certified_at: Timestamp,
    /// The RFC 3161 time-stamp over the checkpoint, when the archive has
    /// one (verified by the [`TimestampCheck`]; with `accord-tsp`'s, its
    /// report says whether the TSA was chained to a trust anchor).
    pub timestamp: Option<T>,
}

/// Verifies an archive line by line (lines without their `\n`); `C`
/// checks its RFC 3161 token, if it has one.
pub struct ArchiveVerifier<C: TimestampCheck = NoTimestampCheck> {
    line: u64,
    key: Option<PublicKey>,
    name: Option<String>,
    export: Option<ExportVerifier>,
    sealed: bool,
    tree: Tree,
    digest: Hasher,
    certified: Option<(Checkpoint, Timestamp, Option<C::Report>)>,
    mode: SignatureMode,
    timestamp_check: C,
}

impl ArchiveVerifier {
    /// A verifier without an RFC 3161 token checker: archives that carry a
    /// token are refused ([`NoTimestampCheck`]); see
    /// [`ArchiveVerifier::with_timestamp_check`].
    pub fn new(mode: SignatureMode) -> Self {
        ArchiveVerifier::with_timestamp_check(mode, NoTimestampCheck)
    }

    /// Whether `first_line` is an archive header (to tell archives from
    /// plain exports).
    pub fn is_archive(first_line: &[u8]) -> bool {
        jcs::parse(first_line)
            .ok()
            .and_then(|v| {
                v.get("format")
                    .and_then(Value::as_str)
                    .map(|f| f == ARCHIVE_FORMAT)
            })
            .unwrap_or(false)
    }
}

impl<C: TimestampCheck> ArchiveVerifier<C> {
    /// A verifier that checks the archive's RFC 3161 token, if it has one,
    /// with `check` (`accord_tsp::archive::ArchiveTimestamps`, with or
    /// without trust anchors).
    pub fn with_timestamp_check(mode: SignatureMode, check: C) -> Self {
        ArchiveVerifier {
            line: 0,
            key: None,
            name: None,
            export: None,
            sealed: false,
            tree: Tree::new(),
            digest: Hasher::new(),
            certified: None,
            mode,
            timestamp_check: check,
        }
    }

    /// Events accepted so far.
    pub fn count(&self) -> u64 {
        self.export.as_ref().map_or(0, ExportVerifier::count)
    }

    /// Checks one line.
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), ArchiveError> {
        self.line += 1;
        let n = self.line;
        if self.certified.is_some() {
            return Err(ArchiveError::Trailing(n));
        }
        if n == 1 {
            self.header(line)?;
        } else if !self.sealed {
            let export = self.export.as_mut().ok_or(ArchiveError::Truncated)?;
            let before = export.count();
            export.push_line(line).map_err(|e| shift_lines(e, 1))?;
            if export.count() > before {
                self.tree.push(merkle::leaf_hash(line));
            } else {
                // A line that adds no event is the seal.
                self.sealed = true;
            }
        } else {
            return self.certification(line);
        }
        self.digest.update(line);
        self.digest.update(b"\n");
        Ok(())
    }

    /// Records a line too long to read and returns the failure to report;
    /// inside the events, an earlier bad signature still pending is named
    /// first.
    pub fn push_oversized(&mut self, len: usize) -> ArchiveError {
        self.line += 1;
        match self.export.as_mut() {
            Some(export) if !self.sealed && self.certified.is_none() => {
                shift_lines(export.push_oversized(len), 1)
            }
            _ => ArchiveError::Export(format!(
                "line {}: {len}+ bytes, longer than any archive line may be",
                self.line
            )),
        }
    }

    fn header(&mut self, line: &[u8]) -> Result<(), ArchiveError> {
        let bad = |m: &str| ArchiveError::Header(m.to_owned());
        let Value::Object(m) = jcs::parse(line).map_err(|e| ArchiveError::Header(e.to_string()))?
        else {
            return Err(bad("not a JSON object"));
        };
        if jcs::to_vec(&Value::Object(m.clone())) != line {
            return Err(bad("not in canonical form"));
        }
        if m.get("format").and_then(Value::as_str) != Some(ARCHIVE_FORMAT) {
            return Err(bad("not an accord-archive/1 file"));
        }
        let key = m
            .get("public_key")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("missing public_key"))
            .and_then(|k| {
                PublicKey::from_b64(k).map_err(|e| ArchiveError::Header(e.to_string()))
            })?;
        let agent = m
            .get("agent_id")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("missing agent_id"))
            .and_then(|a| AgentId::parse(a).map_err(|e| ArchiveError::Header(e.to_string())))?;
        agent
            .check_key(&key)
            .map_err(|e| ArchiveError::Header(e.to_string()))?;
        self.name = match m.get("name") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(_) => return Err(bad("name must be a string or null")),
        };
        if m.len() != 4 {
            return Err(bad("unexpected members"));
        }
        self.export = Some(ExportVerifier::new(self.mode, true).expect_agent(agent));
        self.key = Some(key);
        Ok(())
    }

    fn certification(&mut self, line: &[u8]) -> Result<(), ArchiveError> {
        let n = self.line;
        let bad = |reason: String| ArchiveError::Certification { line: n, reason };
        let key = self.key.ok_or_else(|| bad("no header".into()))?;
        let Value::Object(mut m) = jcs::parse(line).map_err(|e| bad(e.to_string()))? else {
            return Err(bad("not a JSON object".into()));
        };
        if jcs::to_vec(&Value::Object(m.clone())) != line {
            return Err(bad("not in canonical form".into()));
        }
        let sig = m
            .remove("signature")
            .and_then(|v| v.as_str().and_then(decode_b64_exact::<64>))
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| bad("missing or malformed signature".into()))?;
        // The token is checked before the signature that also covers it, so
        // a changed token byte is reported as what it broke in the token.
        let timestamp = match m.get("timestamp") {
            None => None,
            Some(v) => {
                let token = v
                    .as_str()
                    .and_then(decode_b64_token)
                    .ok_or_else(|| bad("timestamp is not canonical unpadded base64url".into()))?;
                let note = m
                    .get("checkpoint")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("missing checkpoint".into()))?;
                let report = self
                    .timestamp_check
                    .check(&token, &timestamp_digest(note.as_bytes()))
                    .map_err(|e| bad(format!("RFC 3161 timestamp: {e}")))?;
                Some(report)
            }
        };
        if !key.verify_strict(&jcs::to_vec(&Value::Object(m.clone())), &sig) {
            return Err(bad(
                "signature does not verify under the archive's key".into()
            ));
        }
        let s = |k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("missing {k}")))
        };
        let has_token = m.contains_key("timestamp");
        if s("format")? != CERTIFICATION_FORMAT || m.len() != 4 + usize::from(has_token) {
            return Err(bad("not an accord-certification/1 line".into()));
        }
        let digest = self.digest.finish();
        if Hash32::from_hex(s("archive_digest")?) != Some(digest) {
            return Err(bad("archive_digest does not match the archive's content (a line before it was changed)".into()));
        }
        let certified_at = Timestamp::parse(s("certified_at")?).map_err(|e| bad(e.to_string()))?;
        let (cp, _) =
            Checkpoint::open(s("checkpoint")?.as_bytes(), &key).map_err(|e| bad(e.to_string()))?;
        if cp.size != self.tree.size() || cp.root != self.tree.root() {
            return Err(bad(format!(
                "checkpoint (size {}, root {}) does not match the archived events (size {}, root {})",
                cp.size,
                cp.root,
                self.tree.size(),
                self.tree.root()
            )));
        }
        self.certified = Some((cp, certified_at, timestamp));
        Ok(())
    }

    /// Finishes: the certification line must have been seen.
    pub fn finish(self) -> Result<ArchiveReport<C::Report>, ArchiveError> {
        let (checkpoint, certified_at, timestamp) =
            self.certified.ok_or(ArchiveError::Truncated)?;
        let export = self
            .export
            .ok_or(ArchiveError::Truncated)?
            .finish()
            .map_err(|e| shift_lines(e, 1))?;
        Ok(ArchiveReport {
            export,
            name: self.name,
            checkpoint,
            certified_at,
            timestamp,
        })
    }
}

/// Decodes unpadded base64url, refusing any other spelling of the same
/// bytes (so the signed line has one form) and more than a token may be.
fn decode_b64_token(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    if s.len() > MAX_TIMESTAMP_BYTES.div_ceil(3) * 4 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    (encode_b64(&bytes) == s).then_some(bytes)
}

/// Export errors count lines from the first event; the archive has a header
/// line before it.
fn shift_lines(e: ExportError, by: u64) -> ArchiveError {
    let msg = match &e {
        ExportError::Chain { line, failure } => format!("line {}: {failure}", line + by),
        ExportError::Seal { line, reason } => format!("line {}: export seal: {reason}", line + by),
        ExportError::AfterSeal(l) => format!("line {}: content after the export seal", l + by),
        ExportError::EmptyLine(l) => format!("line {}: empty line", l + by),
        other => other.to_string(),
    };
    ArchiveError::Export(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::export::Seal;
    use sha2::{Digest, Sha256};

    /// A one-event archive whose certification carries `timestamp` as the
    /// raw JSON value given (or none).
    fn archive(timestamp: Option<Value>) -> Vec<u8> {
        let key = Keypair::from_seed(&[9; 32]).unwrap();
        let t = Timestamp::parse("2026-11-24T10:00:00.000000Z").unwrap();
        let genesis = Event::genesis(
            key.public(),
            t.clone(),
            uuid::Builder::from_random_bytes([1; 16]).into_uuid(),
            Map::new(),
        )
        .sign(&key)
        .unwrap();
        let mut out = header_line(key.public(), None);
        out.push(b'\n');
        out.extend_from_slice(genesis.canonical());
        out.push(b'\n');
        let seal = Seal {
            agent_id: key.agent_id().clone(),
            count: 1,
            head_hash: genesis.hash(),
            exported_at: t.clone(),
        };
        out.extend_from_slice(&seal.sign(&key));
        out.push(b'\n');
        let mut tree = Tree::new();
        tree.push(merkle::leaf_hash(genesis.canonical()));
        let note = Checkpoint {
            origin: Checkpoint::origin_of(key.agent_id()),
            size: 1,
            root: tree.root(),
        }
        .sign(&key)
        .unwrap();
        let digest = Hash32::of(&out);
        let line = match timestamp {
            None => certification_line(&key, &digest, &note, &t),
            Some(v) => {
                // Re-sign with an arbitrary member value, as a forger with
                // the key could.
                let Value::Object(mut m) =
                    jcs::parse(&certification_line(&key, &digest, &note, &t)).unwrap()
                else {
                    unreachable!()
                };
                m.remove("signature");
                m.insert("timestamp".into(), v);
                let sig = key.sign(&jcs::to_vec(&Value::Object(m.clone())));
                m.insert("signature".into(), encode_b64(&sig.to_bytes()).into());
                jcs::to_vec(&Value::Object(m))
            }
        };
        out.extend_from_slice(&line);
        out.push(b'\n');
        out
    }

    fn verify(bytes: &[u8]) -> Result<ArchiveReport, ArchiveError> {
        let mut v = ArchiveVerifier::new(SignatureMode::Strict);
        for line in bytes.strip_suffix(b"\n").unwrap().split(|b| *b == b'\n') {
            v.push_line(line)?;
        }
        v.finish()
    }

    #[test]
    fn archives_without_a_token_still_verify() {
        let r = verify(&archive(None)).unwrap();
        assert_eq!(r.timestamp, None);
    }

    #[test]
    fn a_bad_token_is_named_even_under_a_valid_signature() {
        for (value, needle) in [
            (
                Value::from(encode_b64(b"not a token")),
                "RFC 3161 timestamp: ",
            ),
            (Value::from("AB="), "not canonical unpadded base64url"),
            (Value::from("AB"), "not canonical unpadded base64url"),
            (Value::from(5), "not canonical unpadded base64url"),
            (Value::Null, "not canonical unpadded base64url"),
        ] {
            let e = verify(&archive(Some(value.clone())))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("line 4: certification: ") && e.contains(needle),
                "{value}: {e}"
            );
        }
    }

    #[test]
    fn the_imprint_is_sha256_of_the_note_bytes() {
        let note = b"origin\n1\nroot\n\n\xe2\x80\x94 sig\n";
        assert_eq!(
            timestamp_digest(note).0,
            <[u8; 32]>::from(Sha256::digest(note))
        );
    }

    #[test]
    fn without_a_checker_a_token_is_refused() {
        let e = verify(&archive(Some(encode_b64(b"any bytes").into())))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "line 4: certification: RFC 3161 timestamp: not checked: this verifier has no RFC 3161 token checker (accord-tsp's accord_tsp::archive provides one)"
        );
    }
}
