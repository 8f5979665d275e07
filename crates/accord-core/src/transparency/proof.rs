//! Self-contained proof files, verifiable offline with only the agent's
//! public key (which the file carries; the verifier checks it derives the
//! agent_id the checkpoint's origin names, and may pin the agent_id).
//!
//! `accord-inclusion-proof/1` — one event is in the log:
//!
//! ```text
//! {"checkpoint":"<signed note>","event":"<the event's canonical JSON, as a string>",
//!  "format":"accord-inclusion-proof/1","index":N,"proof":["<base64>",…],"public_key":"<base64url>"}
//! ```
//!
//! `accord-consistency-proof/1` — the newer checkpoint extends the older one:
//!
//! ```text
//! {"format":"accord-consistency-proof/1","new":"<signed note>","old":"<signed note>",
//!  "proof":["<base64>",…],"public_key":"<base64url>"}
//! ```
//!
//! Both are RFC 8785 canonical JSON; hashes in `proof` are standard base64
//! (as in checkpoints).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::event::SignedEvent;
use crate::hash::Hash32;
use crate::identity::{AgentId, PublicKey};
use crate::jcs;
use crate::merkle::{self, MerkleError};
use crate::note::{Checkpoint, Note, NoteError};

/// `format` of inclusion proofs.
pub const INCLUSION_FORMAT: &str = "accord-inclusion-proof/1";
/// `format` of consistency proofs.
pub const CONSISTENCY_FORMAT: &str = "accord-consistency-proof/1";
/// Largest proof file accepted.
pub const MAX_PROOF_BYTES: usize = 4 << 20;

/// Why a proof file does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Not a proof file this build reads.
    #[error("malformed proof file: {0}")]
    Malformed(String),
    /// A checkpoint does not open under the key.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    /// The key does not belong to the expected agent.
    #[error("the proof is for agent {found}, not {expected}")]
    WrongAgent {
        /// Pinned agent.
        expected: AgentId,
        /// Agent of the proof's key.
        found: AgentId,
    },
    /// The event is not the one at `index`, or its signature fails.
    #[error("event: {0}")]
    Event(String),
    /// The Merkle proof does not hold.
    #[error("merkle proof: {0}")]
    Merkle(#[from] MerkleError),
    /// A witness already cosigned a checkpoint of this log, and the new one
    /// arrives without a consistency proof from it.
    #[error(
        "the last cosigned checkpoint of this log has size {0}: ask the agent for `accord prove --from {0}`"
    )]
    NeedProof(u64),
    /// The new checkpoint is older than one already cosigned (a rollback).
    #[error(
        "checkpoint size {new} is smaller than the size {last} already cosigned (the log went back)"
    )]
    Rollback {
        /// Last cosigned size.
        last: u64,
        /// Offered size.
        new: u64,
    },
    /// Two checkpoints of the same size with different roots, both validly
    /// signed by the agent: it has shown two histories.
    #[error(
        "FORK: the agent signed two different checkpoints of size {size} (roots {root1} and {root2})"
    )]
    Fork {
        /// The size both checkpoints claim.
        size: u64,
        /// One root.
        root1: Hash32,
        /// The other root.
        root2: Hash32,
        /// The two signed notes, as evidence.
        evidence: Box<(String, String)>,
    },
}

/// What a verified proof established.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    /// `event` is entry `index` of the log at `checkpoint`.
    Inclusion {
        /// The checkpoint.
        checkpoint: Checkpoint,
        /// The event.
        event: Box<SignedEvent>,
    },
    /// The log at `new` extends the log at `old`.
    Consistency {
        /// The older checkpoint.
        old: Checkpoint,
        /// The newer checkpoint.
        new: Checkpoint,
    },
}

/// What kind of JSON value `v` is, for error messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn b64_list(hashes: &[Hash32]) -> Value {
    Value::Array(
        hashes
            .iter()
            .map(|h| Value::String(STANDARD.encode(h.0)))
            .collect(),
    )
}

/// Writes an inclusion proof file.
pub fn inclusion_file(
    checkpoint: &Note,
    event: &SignedEvent,
    proof: &[Hash32],
    key: &PublicKey,
) -> Vec<u8> {
    let mut m = Map::new();
    m.insert(
        "checkpoint".into(),
        String::from_utf8_lossy(&checkpoint.to_bytes())
            .into_owned()
            .into(),
    );
    m.insert(
        "event".into(),
        String::from_utf8_lossy(event.canonical())
            .into_owned()
            .into(),
    );
    m.insert("format".into(), INCLUSION_FORMAT.into());
    m.insert("index".into(), event.seq().into());
    m.insert("proof".into(), b64_list(proof));
    m.insert("public_key".into(), key.to_b64().into());
    jcs::to_vec(&Value::Object(m))
}

/// Writes a consistency proof file.
pub fn consistency_file(old: &Note, new: &Note, proof: &[Hash32], key: &PublicKey) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("format".into(), CONSISTENCY_FORMAT.into());
    m.insert(
        "new".into(),
        String::from_utf8_lossy(&new.to_bytes()).into_owned().into(),
    );
    m.insert(
        "old".into(),
        String::from_utf8_lossy(&old.to_bytes()).into_owned().into(),
    );
    m.insert("proof".into(), b64_list(proof));
    m.insert("public_key".into(), key.to_b64().into());
    jcs::to_vec(&Value::Object(m))
}

/// Verifies a proof file. `expect` pins the agent; `against` replaces the
/// file's older checkpoint by one the verifier kept (fork detection).
pub fn verify_file(
    bytes: &[u8],
    expect: Option<&AgentId>,
    against: Option<&[u8]>,
) -> Result<Verified, ProofError> {
    let bad = |m: &str| ProofError::Malformed(m.to_owned());
    if bytes.len() > MAX_PROOF_BYTES {
        return Err(bad("larger than 4 MiB"));
    }
    let Value::Object(m) = jcs::parse(bytes).map_err(|e| ProofError::Malformed(e.to_string()))?
    else {
        return Err(bad("not a JSON object"));
    };
    let s = |k: &str| match m.get(k) {
        None => Err(ProofError::Malformed(format!("missing string {k:?}"))),
        Some(Value::String(v)) => Ok(v.as_str()),
        Some(other) => Err(ProofError::Malformed(format!(
            "{k:?} must be a string, not {}",
            json_kind(other)
        ))),
    };
    let key =
        PublicKey::from_b64(s("public_key")?).map_err(|e| ProofError::Malformed(e.to_string()))?;
    if let Some(expected) = expect
        && *expected != key.agent_id()
    {
        return Err(ProofError::WrongAgent {
            expected: expected.clone(),
            found: key.agent_id(),
        });
    }
    let proof: Vec<Hash32> = m
        .get("proof")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("missing proof array"))?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|s| STANDARD.decode(s).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(Hash32)
                .ok_or_else(|| bad("a proof hash is not 32 bytes of base64"))
        })
        .collect::<Result<_, _>>()?;
    match s("format")? {
        INCLUSION_FORMAT => {
            if against.is_some() {
                return Err(bad(
                    "--against applies to consistency proofs, not inclusion proofs",
                ));
            }
            let (cp, _) = Checkpoint::open(s("checkpoint")?.as_bytes(), &key)?;
            let index = match m.get("index") {
                None => return Err(bad("missing index")),
                Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                    ProofError::Malformed(format!(
                        "index {n} is not a non-negative integer written without fraction or exponent (PROTOCOL.md 10.5)"
                    ))
                })?,
                Some(other) => {
                    return Err(ProofError::Malformed(format!(
                        "index must be a non-negative integer, not {}",
                        json_kind(other)
                    )));
                }
            };
            let event_bytes = s("event")?.as_bytes();
            let event = SignedEvent::from_canonical(event_bytes)
                .map_err(|e| ProofError::Event(e.to_string()))?;
            if event.seq() != index {
                return Err(ProofError::Event(format!(
                    "event has seq {}, the proof is for index {index}",
                    event.seq()
                )));
            }
            if event.event().agent_id != key.agent_id() || !event.verify_signature(&key) {
                return Err(ProofError::Event("not signed by the agent's key".into()));
            }
            merkle::verify_inclusion(
                index,
                cp.size,
                &merkle::leaf_hash(event_bytes),
                &proof,
                &cp.root,
            )?;
            Ok(Verified::Inclusion {
                checkpoint: cp,
                event: Box::new(event),
            })
        }
        CONSISTENCY_FORMAT => {
            let old_text = s("old")?;
            let new_text = s("new")?;
            let (old, _) = Checkpoint::open(old_text.as_bytes(), &key)?;
            let (new, _) = Checkpoint::open(new_text.as_bytes(), &key)?;
            if old.size > new.size {
                return Err(bad("\"old\" is larger than \"new\""));
            }
            if old.size == new.size && old.root != new.root {
                return Err(ProofError::Fork {
                    size: old.size,
                    root1: old.root,
                    root2: new.root,
                    evidence: Box::new((old_text.to_owned(), new_text.to_owned())),
                });
            }
            if let Some(kept) = against {
                let kept_text = std::str::from_utf8(kept)
                    .map_err(|_| bad("the kept checkpoint is not UTF-8"))?;
                let (k, _) = Checkpoint::open(kept_text.as_bytes(), &key)?;
                if k.size != old.size {
                    return Err(bad(&format!(
                        "the proof starts at size {}, the kept checkpoint has size {}: ask for `accord prove --from {}`",
                        old.size, k.size, k.size
                    )));
                }
                // Two checkpoints of one size with different roots, both
                // signed by the agent: conclusive, whatever the proof says.
                if k.root != old.root {
                    return Err(ProofError::Fork {
                        size: k.size,
                        root1: k.root,
                        root2: old.root,
                        evidence: Box::new((kept_text.to_owned(), old_text.to_owned())),
                    });
                }
            }
            // The proof hashes are not signed: a proof that fails only shows
            // that this file does not prove consistency, not that the agent
            // forked (anyone can flip a bit in an honest proof).
            merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof)?;
            Ok(Verified::Consistency { old, new })
        }
        other => Err(ProofError::Malformed(format!("unknown format {other:?}"))),
    }
}

/// What a witness checks before cosigning (c2sp.org/tlog-witness style):
/// `file` is a signed checkpoint note or a consistency proof file of the log
/// whose key is `log_key`; `last` is the last checkpoint of that log the
/// witness cosigned (as a signed note). Returns the checkpoint to cosign and
/// its note.
///
/// The first checkpoint of a log is accepted as is (trust on first use).
/// After that, a checkpoint of the same size and root is accepted again; any
/// other needs a consistency proof from the last size, and a smaller size is
/// a rollback.
pub fn witness_check(
    file: &[u8],
    log_key: &PublicKey,
    last: Option<&[u8]>,
) -> Result<(Checkpoint, Note), ProofError> {
    let last = last.map(|n| Checkpoint::open(n, log_key)).transpose()?;
    let is_json = file.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !is_json {
        let (cp, note) = Checkpoint::open(file, log_key)?;
        return match last {
            None => Ok((cp, note)),
            Some((l, _)) if l == cp => Ok((cp, note)),
            Some((l, ln)) if l.size == cp.size => Err(ProofError::Fork {
                size: l.size,
                root1: l.root,
                root2: cp.root,
                evidence: Box::new((
                    String::from_utf8_lossy(&ln.to_bytes()).into_owned(),
                    String::from_utf8_lossy(file).into_owned(),
                )),
            }),
            Some((l, _)) if cp.size < l.size => Err(ProofError::Rollback {
                last: l.size,
                new: cp.size,
            }),
            Some((l, _)) => Err(ProofError::NeedProof(l.size)),
        };
    }
    let expect = log_key.agent_id();
    let against = last.as_ref().map(|(_, n)| n.to_bytes());
    if let Some((l, _)) = &last {
        // The proof's own `old` must start where the witness left off.
        let Value::Object(m) =
            jcs::parse(file).map_err(|e| ProofError::Malformed(e.to_string()))?
        else {
            return Err(ProofError::Malformed("not a JSON object".into()));
        };
        let new_text = m
            .get("new")
            .and_then(Value::as_str)
            .ok_or_else(|| ProofError::Malformed("missing new".into()))?;
        let (new, _) = Checkpoint::open(new_text.as_bytes(), log_key)?;
        if new.size < l.size {
            return Err(ProofError::Rollback {
                last: l.size,
                new: new.size,
            });
        }
    }
    match verify_file(file, Some(&expect), against.as_deref())? {
        Verified::Consistency { new, .. } => {
            let Value::Object(m) =
                jcs::parse(file).map_err(|e| ProofError::Malformed(e.to_string()))?
            else {
                return Err(ProofError::Malformed("not a JSON object".into()));
            };
            let new_text = m.get("new").and_then(Value::as_str).unwrap_or_default();
            let (_, note) = Checkpoint::open(new_text.as_bytes(), log_key)?;
            Ok((new, note))
        }
        Verified::Inclusion { .. } => Err(ProofError::Malformed(
            "an inclusion proof cannot be cosigned: give a checkpoint or a consistency proof"
                .into(),
        )),
    }
}
