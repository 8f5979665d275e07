//! Sending and accepting handoffs (`accord-handoff/1` receipts) from an
//! agent's home: payloads hashed as streams, receipts recorded in the
//! chain, refused receipts quarantined — all in the same transaction as the
//! state (per-peer sequence numbers) they advance.

use std::io::Read;

use accord_core::handoff::{
    self, ACCEPTED_EVENT, Accepted, Expectation, HandoffError, LastAccepted, QUARANTINED_EVENT,
    Receipt, SENT_EVENT,
};
use accord_core::hash::Hasher;
use accord_core::signed::SignedObject;
use accord_core::{AgentId, Hash32, Map, SignedEvent, Value};

use crate::home::{Agent, HomeError};
use crate::{EventStore, SideWrite, StoreError};

/// Read buffer for payload hashing: memory stays constant whatever the
/// payload's size.
const CHUNK: usize = 256 * 1024;

/// SHA-256 and length of everything `r` yields, read in fixed-size chunks.
pub fn hash_stream(r: &mut dyn Read) -> std::io::Result<(Hash32, u64)> {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok((h.finish(), n)),
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn out_key(receiver: &AgentId) -> String {
    format!("handoff/out/{receiver}")
}

fn in_key(sender: &AgentId) -> String {
    format!("handoff/in/{sender}")
}

/// `{seq} {hash}` — the last receipt of one (sender, receiver) pair.
fn encode_last(seq: u64, hash: &Hash32) -> Vec<u8> {
    format!("{seq} {hash}").into_bytes()
}

fn decode_last(bytes: &[u8]) -> Result<LastAccepted, StoreError> {
    let text = std::str::from_utf8(bytes).ok();
    text.and_then(|t| t.split_once(' '))
        .and_then(|(s, h)| {
            Some(LastAccepted {
                seq: s.parse().ok()?,
                hash: Hash32::from_hex(h)?,
            })
        })
        .ok_or_else(|| StoreError::Corrupt("handoff state entry is damaged".into()))
}

/// A receipt that was refused: why, and where it went.
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub reason: HandoffError,
    /// Its number in the quarantine.
    pub quarantine_id: u64,
    /// The `handoff.quarantined` event recorded in the chain.
    pub event: SignedEvent,
}

impl<S: EventStore> Agent<S> {
    /// Hands `payload` to `receiver`: hashes it as a stream, signs a receipt
    /// continuing this agent's receipts to that receiver, and records it
    /// (`handoff.sent`). Returns the receipt and the event.
    pub fn send_handoff(
        &mut self,
        receiver: &AgentId,
        payload: &mut dyn Read,
        parent_task_id: Option<&str>,
    ) -> Result<(SignedObject, SignedEvent), HomeError> {
        let (payload_sha256, payload_size) =
            hash_stream(payload).map_err(|e| HomeError::Io(format!("reading the payload: {e}")))?;
        let mut receipt = None;
        let state_key = out_key(receiver);
        let (handoff_id, timestamp) = (self.nonce()?, self.now()?);
        let events = self.stamp_with_state(&[&state_key], &mut |key, _, state| {
            let (seq, prev) = match &state[0] {
                Some(b) => {
                    let l = decode_last(b)?;
                    (l.seq + 1, l.hash)
                }
                None => (1, Hash32::ZERO),
            };
            let r = Receipt {
                handoff_id,
                parent_task_id: parent_task_id.map(str::to_owned),
                receiver: receiver.clone(),
                payload_sha256,
                payload_size,
                seq,
                timestamp: timestamp.clone(),
                prev_receipt_hash: prev,
            }
            .sign(key);
            let mut p = Map::new();
            p.insert(
                "handoff_id".into(),
                r.str("handoff_id").unwrap_or("").into(),
            );
            p.insert(
                "parent_task_id".into(),
                parent_task_id.map_or(Value::Null, Value::from),
            );
            p.insert("payload_sha256".into(), payload_sha256.to_hex().into());
            p.insert("payload_size".into(), payload_size.into());
            p.insert("receipt".into(), r.to_value());
            p.insert("receipt_hash".into(), r.hash().to_hex().into());
            p.insert("receiver".into(), receiver.as_str().into());
            p.insert("seq".into(), seq.into());
            let write = SideWrite::Set {
                key: state_key.clone(),
                value: encode_last(seq, &r.hash()),
            };
            receipt = Some(r);
            Ok((vec![(SENT_EVENT.to_owned(), p)], vec![write]))
        })?;
        let event = events.into_iter().next();
        match (receipt, event) {
            (Some(r), Some(e)) => Ok((r, e)),
            _ => Err(HomeError::Io("the receipt was not recorded".into())),
        }
    }

    /// Verifies a receipt and its payload before anything acts on it. On
    /// success records `handoff.accepted`; on failure records
    /// `handoff.quarantined` and stores the receipt in the quarantine with
    /// the reason. The outer error is a storage failure (nothing recorded).
    pub fn accept_handoff(
        &mut self,
        receipt_text: &[u8],
        payload: &mut dyn Read,
        expect_sender: Option<&AgentId>,
        window_micros: i64,
    ) -> Result<Result<(Accepted, SignedEvent), Refused>, HomeError> {
        let digest =
            hash_stream(payload).map_err(|e| HomeError::Io(format!("reading the payload: {e}")))?;
        let me = self.key().agent_id().clone();
        let parsed = handoff::sender_of(receipt_text);
        let state_key = parsed.as_ref().ok().map(|(_, s)| in_key(s));
        let keys: Vec<&str> = state_key.iter().map(String::as_str).collect();
        let mut outcome: Option<Result<Accepted, HandoffError>> = None;
        let received_at = self.now()?;
        let events = self.stamp_with_state(&keys, &mut |_, _, state| {
            let verdict = match &parsed {
                Err(e) => Err(e.clone()),
                Ok((obj, _)) => {
                    let last = match state.first() {
                        Some(Some(b)) => Some(decode_last(b)?),
                        _ => None,
                    };
                    let now = &received_at;
                    handoff::verify(
                        obj.clone(),
                        &Expectation {
                            me: &me,
                            sender: expect_sender,
                            payload: digest,
                            now,
                            window_micros,
                            last,
                        },
                    )
                }
            };
            let mut p = Map::new();
            let result = match &verdict {
                Ok(a) => {
                    p.insert("handoff_id".into(), a.handoff_id.to_string().into());
                    p.insert("payload_sha256".into(), digest.0.to_hex().into());
                    p.insert("payload_size".into(), digest.1.into());
                    p.insert("receipt".into(), a.receipt.to_value());
                    p.insert("receipt_hash".into(), a.receipt.hash().to_hex().into());
                    p.insert("sender".into(), a.sender.as_str().into());
                    p.insert("seq".into(), a.seq.into());
                    if let Some(w) = &a.warning {
                        p.insert("warning".into(), w.as_str().into());
                    }
                    let write = SideWrite::Set {
                        key: in_key(&a.sender),
                        value: encode_last(a.seq, &a.receipt.hash()),
                    };
                    (ACCEPTED_EVENT, vec![write])
                }
                Err(e) => {
                    p.insert("reason".into(), e.to_string().into());
                    p.insert(
                        "receipt_sha256".into(),
                        Hash32::of(receipt_text).to_hex().into(),
                    );
                    if let Ok((obj, sender)) = &parsed {
                        p.insert("sender".into(), sender.as_str().into());
                        // Informational: whether the refused receipt was
                        // really signed by the sender it names (the audit
                        // relies on the sender's own chain instead).
                        let signed = obj
                            .public_key("sender_key")
                            .is_ok_and(|k| sender.check_key(&k).is_ok() && obj.verify(&k));
                        p.insert("signature_valid".into(), signed.into());
                    }
                    let write = SideWrite::Quarantine {
                        received_at: received_at.to_string(),
                        reason: e.to_string(),
                        item: receipt_text.to_vec(),
                    };
                    (QUARANTINED_EVENT, vec![write])
                }
            };
            outcome = Some(verdict);
            Ok((vec![(result.0.to_owned(), p)], result.1))
        })?;
        let event = events
            .into_iter()
            .next()
            .ok_or_else(|| HomeError::Io("nothing was recorded".into()))?;
        match outcome {
            Some(Ok(a)) => Ok(Ok((a, event))),
            Some(Err(reason)) => {
                let quarantine_id = self
                    .store()
                    .quarantine_id(&me, received_at.as_str(), receipt_text)?
                    .ok_or_else(|| HomeError::Io("the quarantine entry is missing".into()))?;
                Ok(Err(Refused {
                    reason,
                    quarantine_id,
                    event,
                }))
            }
            None => Err(HomeError::Io("the receipt was not checked".into())),
        }
    }
}
