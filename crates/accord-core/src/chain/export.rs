//! Chain exports: JSON lines, one canonical event per line, closed by a
//! signed seal line.
//!
//! A hash chain alone cannot show that its end is missing: dropping the last
//! events leaves a valid shorter chain. The seal (`accord-export-seal/1`),
//! signed by the agent at export time, states the event count and head hash,
//! so a truncated export no longer verifies.
//!
//! ```text
//! {"agent_id":…,"format":"accord-event/1",…,"seq":0,…,"type":"genesis"}
//! {"agent_id":…,"format":"accord-event/1",…,"seq":1,…}
//! {"agent_id":…,"count":2,"exported_at":…,"format":"accord-export-seal/1","head_hash":…,"signature":…}
//! ```

use ed25519_dalek::Signature;
use serde_json::{Map, Value};

use crate::chain::{ChainVerifier, Failure, SignatureMode, Summary};
use crate::event::{EventError, MAX_EVENT_BYTES, SignedEvent};
use crate::hash::Hash32;
use crate::identity::{AgentId, Keypair, decode_b64_exact, encode_b64};
use crate::jcs;
use crate::timestamp::Timestamp;

/// The `format` member of a seal.
pub const SEAL_FORMAT: &str = "accord-export-seal/1";

/// A signed statement of how long an exported chain is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// The chain's agent.
    pub agent_id: AgentId,
    /// Number of events in the export.
    pub count: u64,
    /// Hash of the last exported event.
    pub head_hash: Hash32,
    /// When the export was made.
    pub exported_at: Timestamp,
}

impl Seal {
    fn unsigned_value(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("agent_id".into(), self.agent_id.as_str().into());
        m.insert("count".into(), self.count.into());
        m.insert("exported_at".into(), self.exported_at.as_str().into());
        m.insert("format".into(), SEAL_FORMAT.into());
        m.insert("head_hash".into(), self.head_hash.to_hex().into());
        m
    }

    /// The signed seal line (canonical JSON, no newline).
    pub fn sign(&self, key: &Keypair) -> Vec<u8> {
        let mut m = self.unsigned_value();
        let sig = key.sign(&jcs::to_vec(&Value::Object(m.clone())));
        m.insert("signature".into(), encode_b64(&sig.to_bytes()).into());
        jcs::to_vec(&Value::Object(m))
    }
}

/// The outcome of verifying an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The chain.
    pub summary: Summary,
    /// The seal, if the export had one.
    pub seal: Option<Seal>,
}

/// Why an export failed to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// An event breaks the chain.
    #[error("line {line}: {failure}")]
    Chain {
        /// 1-based line number.
        line: u64,
        /// The first bad event.
        failure: Failure,
    },
    /// The seal is malformed, unsigned by the chain's key, or does not match
    /// the chain (events were removed or added after export).
    #[error("line {line}: export seal: {reason}")]
    Seal {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The export has no seal, so a missing tail cannot be ruled out.
    #[error(
        "the export has no seal line: events at its end may have been removed (re-export with `accord export`, or pass --allow-unsealed to check the events alone)"
    )]
    Unsealed,
    /// Something follows the seal.
    #[error("line {0}: content after the export seal")]
    AfterSeal(u64),
    /// A line is empty.
    #[error("line {0}: empty line (an export has one event per line)")]
    EmptyLine(u64),
}

/// Verifies an export line by line.
pub struct ExportVerifier {
    chain: ChainVerifier,
    line: u64,
    seal: Option<Seal>,
    require_seal: bool,
}

impl ExportVerifier {
    /// A verifier; `require_seal` makes a missing seal an error.
    pub fn new(mode: SignatureMode, require_seal: bool) -> Self {
        ExportVerifier {
            chain: ChainVerifier::new(mode),
            line: 0,
            seal: None,
            require_seal,
        }
    }

    /// Also require the chain to belong to `agent`.
    pub fn expect_agent(mut self, agent: AgentId) -> Self {
        self.chain = self.chain.expect_agent(agent);
        self
    }

    /// Events accepted so far.
    pub fn count(&self) -> u64 {
        self.chain.count()
    }

    /// Checks one line (without its line terminator).
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), ExportError> {
        self.line += 1;
        let n = self.line;
        if self.seal.is_some() {
            return Err(ExportError::AfterSeal(n));
        }
        if line.is_empty() {
            // As for every failure, a bad signature queued before this line
            // is the first failure and is named instead (PROTOCOL.md 4.1).
            self.chain.settle_now().map_err(chain_error)?;
            return Err(ExportError::EmptyLine(n));
        }
        if line.len() > MAX_EVENT_BYTES {
            let failure = self.chain.reject(EventError::TooLarge(line.len()));
            return Err(chain_error(failure));
        }
        // Events are the common case; only a line that is not an event is
        // tried as the seal (a payload may legitimately contain any text).
        let event_err = match SignedEvent::from_canonical(line) {
            Ok(ev) => return self.chain.push(&ev).map_err(chain_error),
            Err(e) => e,
        };
        match jcs::parse(line) {
            Ok(value) if value.get("format").and_then(Value::as_str) == Some(SEAL_FORMAT) => {
                let seal = self.check_seal(value, line)?;
                self.seal = Some(seal);
                Ok(())
            }
            _ => Err(chain_error(self.chain.reject(event_err))),
        }
    }

    /// Records a line that was too long to read (over [`MAX_EVENT_BYTES`])
    /// and returns the failure to report — an earlier bad signature still
    /// pending in the batch is named first.
    pub fn push_oversized(&mut self, len: usize) -> ExportError {
        self.line += 1;
        chain_error(self.chain.reject(EventError::TooLarge(len)))
    }

    fn check_seal(&mut self, value: Value, line: &[u8]) -> Result<Seal, ExportError> {
        let n = self.line;
        let err = |reason: String| ExportError::Seal { line: n, reason };
        let Value::Object(mut m) = value else {
            return Err(err("not an object".into()));
        };
        if jcs::to_vec(&Value::Object(m.clone())) != line {
            return Err(err("not in canonical form (edited)".into()));
        }
        let sig = match m.remove("signature") {
            Some(Value::String(s)) => decode_b64_exact::<64>(&s)
                .map(|b| Signature::from_bytes(&b))
                .ok_or_else(|| err("signature is not 64 bytes of base64url".into()))?,
            _ => return Err(err("missing signature".into())),
        };
        let message = jcs::to_vec(&Value::Object(m.clone()));
        let get_str = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        let agent_id = get_str("agent_id")
            .and_then(|s| AgentId::parse(&s).ok())
            .ok_or_else(|| err("bad agent_id".into()))?;
        let head_hash = get_str("head_hash")
            .and_then(|s| Hash32::from_hex(&s))
            .ok_or_else(|| err("bad head_hash".into()))?;
        let exported_at = get_str("exported_at")
            .and_then(|s| Timestamp::parse(&s).ok())
            .ok_or_else(|| err("bad exported_at".into()))?;
        let count = m
            .get("count")
            .and_then(Value::as_u64)
            .ok_or_else(|| err("bad count".into()))?;
        if m.len() != 5 {
            return Err(err("unexpected members".into()));
        }
        let seal = Seal {
            agent_id,
            count,
            head_hash,
            exported_at,
        };
        // Settle pending signatures first so an earlier bad event is named
        // before the seal.
        let key = *self
            .chain
            .public_key()
            .ok_or_else(|| err("seal before any event".into()))?;
        self.chain.settle_now().map_err(chain_error)?;
        if !key.verify_strict(&message, &sig) {
            return Err(err("signature does not verify under the chain's key".into()));
        }
        if seal.agent_id != key.agent_id() {
            return Err(err("seal names another agent".into()));
        }
        if seal.count != self.chain.count() || seal.head_hash != self.chain.head_hash() {
            return Err(err(format!(
                "seal says {} events ending in {}, the file has {} ending in {} (events were removed or added)",
                seal.count,
                seal.head_hash,
                self.chain.count(),
                self.chain.head_hash()
            )));
        }
        Ok(seal)
    }

    /// Finishes: settles signatures and checks the seal requirement.
    pub fn finish(self) -> Result<ExportReport, ExportError> {
        let summary = self.chain.finish().map_err(chain_error)?;
        if self.seal.is_none() && self.require_seal {
            return Err(ExportError::Unsealed);
        }
        Ok(ExportReport {
            summary,
            seal: self.seal,
        })
    }
}

/// Events occupy lines 1..=n (blank lines are refused), so an event's line
/// is its 0-based position + 1 — also when its bad signature is only
/// discovered when a later line settles the batch.
fn chain_error(failure: Failure) -> ExportError {
    ExportError::Chain {
        line: failure.index + 1,
        failure,
    }
}
