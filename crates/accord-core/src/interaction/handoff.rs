//! Handoff receipts (`accord-handoff/1`, docs/PROTOCOL.md §16): a sender's
//! signed statement that it handed a payload to a receiver, checked by the
//! receiver before it acts on the payload.
//!
//! Receipts from one sender to one receiver form their own chain: `seq`
//! counts 1, 2, ... and `prev_receipt_hash` is the hash of the previous
//! receipt to the same receiver (64 zeros for the first), so a receiver
//! detects replays, gaps and substituted receipts without seeing the
//! sender's whole log.

use crate::hash::Hash32;
use crate::identity::{AgentId, Keypair, PublicKey};
use crate::signed::{SignedError, SignedObject};
use crate::timestamp::Timestamp;
use crate::{Map, Uuid, Value};

/// The `format` of a receipt.
pub const RECEIPT: &str = "accord-handoff/1";
/// Event type the sender records.
pub const SENT_EVENT: &str = "handoff.sent";
/// Event type the receiver records on acceptance.
pub const ACCEPTED_EVENT: &str = "handoff.accepted";
/// Event type the receiver records when a receipt fails verification.
pub const QUARANTINED_EVENT: &str = "handoff.quarantined";
/// Default acceptance window: a receipt older than this (or this far in
/// the future) is refused: 24 hours.
pub const DEFAULT_WINDOW_MICROS: i64 = 24 * 3600 * 1_000_000;
/// Tolerated clock difference for receipts dated in the future: 5 minutes.
pub const FUTURE_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

/// What a sender states in a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Unique id of this handoff.
    pub handoff_id: Uuid,
    /// The task this handoff belongs to, if any.
    pub parent_task_id: Option<String>,
    /// The receiver.
    pub receiver: AgentId,
    /// SHA-256 of the payload bytes.
    pub payload_sha256: Hash32,
    /// Payload length in bytes.
    pub payload_size: u64,
    /// 1, 2, ... per (sender, receiver).
    pub seq: u64,
    /// When it was sent.
    pub timestamp: Timestamp,
    /// Hash of the previous receipt to the same receiver (zeros for seq 1).
    pub prev_receipt_hash: Hash32,
}

impl Receipt {
    /// Signs the receipt, refusing one its receiver could not read (16.2
    /// step 1 applies the limits of signed objects: `seq` and
    /// `payload_size` within 2^53−1, the whole receipt within
    /// [`MAX_SIGNED_BYTES`](crate::signed::MAX_SIGNED_BYTES)): the receipt
    /// it returns parses back to itself.
    pub fn try_sign(&self, key: &Keypair) -> Result<SignedObject, HandoffError> {
        let obj = self.sign(key);
        let back = SignedObject::parse(obj.canonical(), RECEIPT)?;
        back.agent_id("sender")?;
        Ok(back)
    }

    /// Signs the receipt with the sender's key. It does not check limits;
    /// see [`try_sign`](Self::try_sign).
    pub fn sign(&self, key: &Keypair) -> SignedObject {
        let mut m = Map::new();
        m.insert("format".into(), RECEIPT.into());
        m.insert("handoff_id".into(), self.handoff_id.to_string().into());
        m.insert(
            "parent_task_id".into(),
            self.parent_task_id
                .as_deref()
                .map_or(Value::Null, Value::from),
        );
        m.insert("payload_sha256".into(), self.payload_sha256.to_hex().into());
        m.insert("payload_size".into(), self.payload_size.into());
        m.insert(
            "prev_receipt_hash".into(),
            self.prev_receipt_hash.to_hex().into(),
        );
        m.insert("receiver".into(), self.receiver.as_str().into());
        m.insert("sender".into(), key.agent_id().as_str().into());
        m.insert("sender_key".into(), key.public().to_b64().into());
        m.insert("seq".into(), self.seq.into());
        m.insert("timestamp".into(), self.timestamp.as_str().into());
        SignedObject::sign(m, key)
    }
}

/// Why a receipt was refused (and quarantined).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandoffError {
    /// Not a well-formed receipt.
    #[error("malformed receipt: {0}")]
    Malformed(#[from] SignedError),
    /// The sender id does not derive from the key in the receipt.
    #[error(
        "sender {0} does not derive from sender_key: the receipt claims someone else's identity"
    )]
    SenderKey(String),
    /// The signature does not verify.
    #[error("the sender's signature does not verify: the receipt was altered or forged")]
    BadSignature,
    /// The sender is not the one the receiver expected.
    #[error("receipt is from {got}, expected a handoff from {expected}")]
    UnexpectedSender {
        /// The expected sender.
        expected: String,
        /// The receipt's sender.
        got: String,
    },
    /// Addressed to another agent.
    #[error("receipt is addressed to {to}, not to this agent ({me})")]
    NotForMe {
        /// The receipt's receiver.
        to: String,
        /// This agent.
        me: String,
    },
    /// The payload is not the one the receipt names.
    #[error(
        "payload does not match the receipt: the receipt names {expected_size} bytes with SHA-256 {expected}, the file has {got_size} bytes with SHA-256 {got}"
    )]
    PayloadMismatch {
        /// Hash in the receipt.
        expected: String,
        /// Size in the receipt.
        expected_size: u64,
        /// Hash of the payload given.
        got: String,
        /// Size of the payload given.
        got_size: u64,
    },
    /// Receipt seq already accepted (or older).
    #[error(
        "replay: receipt seq {seq} from {sender}, but seq {last} was already accepted from this sender"
    )]
    Replay {
        /// The sender.
        sender: String,
        /// The receipt's seq.
        seq: u64,
        /// The last accepted.
        last: u64,
    },
    /// The previous-receipt link does not match what was accepted.
    #[error(
        "receipt seq {seq} links to a previous receipt {got}, but the receipt accepted before it is {expected}: the sender's receipt history was altered"
    )]
    BrokenLink {
        /// The receipt's seq.
        seq: u64,
        /// The hash the receiver holds.
        expected: String,
        /// The receipt's `prev_receipt_hash`.
        got: String,
    },
    /// Receipt time outside the window.
    #[error(
        "receipt timestamped {at} is outside the acceptance window ({now} minus {window_s} s to plus {skew_s} s); ask the sender for a fresh handoff or widen --window"
    )]
    Expired {
        /// The receipt's time.
        at: String,
        /// Now.
        now: String,
        /// Window in seconds.
        window_s: i64,
        /// Future skew in seconds.
        skew_s: i64,
    },
}

/// The last receipt a receiver accepted from a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastAccepted {
    /// Its seq.
    pub seq: u64,
    /// Its hash.
    pub hash: Hash32,
}

/// What the receiver checks a receipt against.
#[derive(Debug, Clone)]
pub struct Expectation<'a> {
    /// This agent.
    pub me: &'a AgentId,
    /// The sender the caller expects, if it knows.
    pub sender: Option<&'a AgentId>,
    /// SHA-256 and size of the payload received.
    pub payload: (Hash32, u64),
    /// Now.
    pub now: &'a Timestamp,
    /// How old a receipt may be, in microseconds.
    pub window_micros: i64,
    /// The last receipt accepted from this receipt's sender, looked up by
    /// the caller with [`sender_of`].
    pub last: Option<LastAccepted>,
}

/// A receipt that passed every check.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The signed receipt.
    pub receipt: SignedObject,
    /// Its sender.
    pub sender: AgentId,
    /// Its seq.
    pub seq: u64,
    /// Its handoff id.
    pub handoff_id: Uuid,
    /// Set when receipts from this sender were skipped (a gap): the
    /// previous-receipt link could not be checked.
    pub warning: Option<String>,
}

/// Parses a receipt far enough to know its claimed sender (to look up
/// [`LastAccepted`]); nothing is verified yet.
pub fn sender_of(text: &[u8]) -> Result<(SignedObject, AgentId), HandoffError> {
    let obj = SignedObject::parse(text, RECEIPT)?;
    let sender = obj.agent_id("sender")?;
    Ok((obj, sender))
}

/// Verifies a receipt before the receiver acts, in this order: form, sender
/// key, signature, expected sender, receiver, payload hash and size, time
/// window, sequence and previous-receipt link.
pub fn verify(receipt: SignedObject, exp: &Expectation<'_>) -> Result<Accepted, HandoffError> {
    let sender = receipt.agent_id("sender")?;
    let key: PublicKey = receipt.public_key("sender_key")?;
    if sender.check_key(&key).is_err() {
        return Err(HandoffError::SenderKey(sender.to_string()));
    }
    if !receipt.verify(&key) {
        return Err(HandoffError::BadSignature);
    }
    if let Some(expected) = exp.sender
        && expected != &sender
    {
        return Err(HandoffError::UnexpectedSender {
            expected: expected.to_string(),
            got: sender.to_string(),
        });
    }
    let receiver = receipt.agent_id("receiver")?;
    if &receiver != exp.me {
        return Err(HandoffError::NotForMe {
            to: receiver.to_string(),
            me: exp.me.to_string(),
        });
    }
    let hash = receipt.hash_member("payload_sha256")?;
    let size = receipt.u64("payload_size")?;
    if (hash, size) != exp.payload {
        return Err(HandoffError::PayloadMismatch {
            expected: hash.to_hex(),
            expected_size: size,
            got: exp.payload.0.to_hex(),
            got_size: exp.payload.1,
        });
    }
    let at = receipt.timestamp("timestamp")?;
    let age = exp.now.unix_micros() - at.unix_micros();
    if age > exp.window_micros || -age > FUTURE_SKEW_MICROS {
        return Err(HandoffError::Expired {
            at: at.to_string(),
            now: exp.now.to_string(),
            window_s: exp.window_micros / 1_000_000,
            skew_s: FUTURE_SKEW_MICROS / 1_000_000,
        });
    }
    let seq = receipt.u64("seq")?;
    if seq == 0 {
        return Err(HandoffError::Malformed(SignedError::Member {
            format: RECEIPT.into(),
            member: "seq",
            problem: "must be 1 or more".into(),
        }));
    }
    let prev = receipt.hash_member("prev_receipt_hash")?;
    let (last_seq, last_hash) = exp
        .last
        .as_ref()
        .map_or((0, Hash32::ZERO), |l| (l.seq, l.hash));
    let warning = if seq <= last_seq {
        return Err(HandoffError::Replay {
            sender: sender.to_string(),
            seq,
            last: last_seq,
        });
    } else if seq == last_seq + 1 {
        if prev != last_hash {
            return Err(HandoffError::BrokenLink {
                seq,
                expected: last_hash.to_hex(),
                got: prev.to_hex(),
            });
        }
        None
    } else {
        Some(format!(
            "gap: receipts {} to {} from {sender} were never accepted here; the previous-receipt link could not be checked",
            last_seq + 1,
            seq - 1
        ))
    };
    let handoff_id = receipt.uuid("handoff_id")?;
    Ok(Accepted {
        receipt,
        sender,
        seq,
        handoff_id,
        warning,
    })
}

/// State key under which a sender keeps the last receipt it sent to
/// `receiver`.
pub fn outbox_key(receiver: &AgentId) -> String {
    format!("handoff/out/{receiver}")
}

/// State key under which a receiver keeps the last receipt it accepted
/// from `sender`.
pub fn inbox_key(sender: &AgentId) -> String {
    format!("handoff/in/{sender}")
}

impl LastAccepted {
    /// The state value: `{seq} {hash}`.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!("{} {}", self.seq, self.hash).into_bytes()
    }

    /// Parses a state value written by [`LastAccepted::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (s, h) = std::str::from_utf8(bytes).ok()?.split_once(' ')?;
        Some(LastAccepted {
            seq: s.parse().ok()?,
            hash: Hash32::from_hex(h)?,
        })
    }
}

/// What the sender's step records: the receipt, its `handoff.sent` event
/// and the state write that advances the pair's receipt chain.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The signed receipt to hand over with the payload.
    pub receipt: SignedObject,
    /// The event payload of `handoff.sent`.
    pub payload: Map<String, Value>,
    /// The new last receipt to `receiver`, to store under [`outbox_key`].
    pub last: LastAccepted,
}

/// Builds the sender's record of a handoff: `receipt` with `seq` and
/// `prev_receipt_hash` taken from `last` (the previous receipt to the same
/// receiver, `None` for the first), signed by `key`. Refuses a receipt its
/// receiver's reader would refuse (see [`Receipt::try_sign`]).
pub fn send(
    key: &Keypair,
    mut receipt: Receipt,
    last: Option<&LastAccepted>,
) -> Result<Sent, HandoffError> {
    (receipt.seq, receipt.prev_receipt_hash) = match last {
        Some(l) => (l.seq + 1, l.hash),
        None => (1, Hash32::ZERO),
    };
    let r = receipt.try_sign(key)?;
    let mut p = Map::new();
    p.insert("handoff_id".into(), receipt.handoff_id.to_string().into());
    p.insert(
        "parent_task_id".into(),
        receipt
            .parent_task_id
            .as_deref()
            .map_or(Value::Null, Value::from),
    );
    p.insert(
        "payload_sha256".into(),
        receipt.payload_sha256.to_hex().into(),
    );
    p.insert("payload_size".into(), receipt.payload_size.into());
    p.insert("receipt".into(), r.to_value());
    p.insert("receipt_hash".into(), r.hash().to_hex().into());
    p.insert("receiver".into(), receipt.receiver.as_str().into());
    p.insert("seq".into(), receipt.seq.into());
    Ok(Sent {
        last: LastAccepted {
            seq: receipt.seq,
            hash: r.hash(),
        },
        receipt: r,
        payload: p,
    })
}

/// The receiver's decision on one receipt, and what it records either way.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Accepted, or why not.
    pub verdict: Result<Accepted, HandoffError>,
    /// `handoff.accepted` or `handoff.quarantined`.
    pub event_type: &'static str,
    /// The event payload.
    pub payload: Map<String, Value>,
    /// On acceptance, the new last receipt from the sender, to store under
    /// [`inbox_key`]; on refusal `None` (the receipt goes to quarantine).
    pub last: Option<(AgentId, LastAccepted)>,
}

/// Decides on a receipt received as `text`: verifies it (see [`verify`])
/// against `exp`, whose `last` the caller read under [`inbox_key`] of the
/// sender [`sender_of`] named, and builds the record of the decision.
pub fn decide(text: &[u8], exp: &Expectation<'_>) -> Decision {
    let parsed = sender_of(text);
    let verdict = match &parsed {
        Err(e) => Err(e.clone()),
        Ok((obj, _)) => verify(obj.clone(), exp),
    };
    let mut p = Map::new();
    match &verdict {
        Ok(a) => {
            p.insert("handoff_id".into(), a.handoff_id.to_string().into());
            p.insert("payload_sha256".into(), exp.payload.0.to_hex().into());
            p.insert("payload_size".into(), exp.payload.1.into());
            p.insert("receipt".into(), a.receipt.to_value());
            p.insert("receipt_hash".into(), a.receipt.hash().to_hex().into());
            p.insert("sender".into(), a.sender.as_str().into());
            p.insert("seq".into(), a.seq.into());
            if let Some(w) = &a.warning {
                p.insert("warning".into(), w.as_str().into());
            }
            let last = LastAccepted {
                seq: a.seq,
                hash: a.receipt.hash(),
            };
            Decision {
                last: Some((a.sender.clone(), last)),
                verdict,
                event_type: ACCEPTED_EVENT,
                payload: p,
            }
        }
        Err(e) => {
            p.insert("reason".into(), e.to_string().into());
            p.insert("receipt_sha256".into(), Hash32::of(text).to_hex().into());
            if let Ok((obj, sender)) = &parsed {
                p.insert("sender".into(), sender.as_str().into());
                // Informational: whether the refused receipt was really
                // signed by the sender it names (the audit relies on the
                // sender's own chain instead).
                let signed = obj
                    .public_key("sender_key")
                    .is_ok_and(|k| sender.check_key(&k).is_ok() && obj.verify(&k));
                p.insert("signature_valid".into(), signed.into());
            }
            Decision {
                last: None,
                verdict,
                event_type: QUARANTINED_EVENT,
                payload: p,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Keypair {
        Keypair::from_seed(&[b; 32]).expect("seed")
    }
    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_790_000_000_000_000 + s * 1_000_000).expect("time")
    }

    fn receipt(to: &AgentId, seq: u64, prev: Hash32) -> Receipt {
        Receipt {
            handoff_id: Uuid::from_u128(seq as u128),
            parent_task_id: Some("T-1".into()),
            receiver: to.clone(),
            payload_sha256: Hash32::of(b"doc"),
            payload_size: 3,
            seq,
            timestamp: t(0),
            prev_receipt_hash: prev,
        }
    }

    fn exp<'a>(me: &'a AgentId, now: &'a Timestamp, last: Option<LastAccepted>) -> Expectation<'a> {
        Expectation {
            me,
            sender: None,
            payload: (Hash32::of(b"doc"), 3),
            now,
            window_micros: DEFAULT_WINDOW_MICROS,
            last,
        }
    }

    #[test]
    fn chain_of_receipts_accepts_in_order_and_refuses_replay_and_broken_links() {
        let (s, r) = (key(1), key(2));
        let now = t(10);
        let r1 = receipt(r.agent_id(), 1, Hash32::ZERO).sign(&s);
        let a1 = verify(r1.clone(), &exp(r.agent_id(), &now, None)).expect("first");
        assert_eq!(a1.warning, None);
        let last = LastAccepted {
            seq: 1,
            hash: r1.hash(),
        };
        let r2 = receipt(r.agent_id(), 2, r1.hash()).sign(&s);
        verify(r2, &exp(r.agent_id(), &now, Some(last.clone()))).expect("second");
        assert!(matches!(
            verify(r1.clone(), &exp(r.agent_id(), &now, Some(last.clone()))),
            Err(HandoffError::Replay { .. })
        ));
        let forged_link = receipt(r.agent_id(), 2, Hash32::of(b"x")).sign(&s);
        assert!(matches!(
            verify(forged_link, &exp(r.agent_id(), &now, Some(last.clone()))),
            Err(HandoffError::BrokenLink { .. })
        ));
        let gap = receipt(r.agent_id(), 5, Hash32::of(b"x")).sign(&s);
        let g = verify(gap, &exp(r.agent_id(), &now, Some(last))).expect("gap accepted");
        assert!(g.warning.expect("warned").contains("gap"));
    }

    #[test]
    fn refusals_name_the_problem() {
        let (s, r, x) = (key(1), key(2), key(3));
        let now = t(10);
        let r1 = receipt(r.agent_id(), 1, Hash32::ZERO).sign(&s);
        assert!(matches!(
            verify(r1.clone(), &exp(x.agent_id(), &now, None)),
            Err(HandoffError::NotForMe { .. })
        ));
        let mut e = exp(r.agent_id(), &now, None);
        e.payload = (Hash32::of(b"other"), 5);
        assert!(matches!(
            verify(r1.clone(), &e),
            Err(HandoffError::PayloadMismatch { .. })
        ));
        let late = t(10 + DEFAULT_WINDOW_MICROS / 1_000_000 + 1);
        assert!(matches!(
            verify(r1.clone(), &exp(r.agent_id(), &late, None)),
            Err(HandoffError::Expired { .. })
        ));
        let text = String::from_utf8(r1.canonical().to_vec()).expect("utf8");
        let edited = text.replace("\"payload_size\":3", "\"payload_size\":4");
        let (obj, _) = sender_of(edited.as_bytes()).expect("parses");
        assert_eq!(
            verify(obj, &exp(r.agent_id(), &now, None)).unwrap_err(),
            HandoffError::BadSignature
        );
    }
}
