//! Sending and accepting handoffs (`accord-handoff/1` receipts) from an
//! agent's home: payloads hashed as streams, receipts recorded in the
//! chain, refused receipts quarantined — all in the same transaction as the
//! state (per-peer sequence numbers) they advance.

use std::io::Read;

use accord_core::handoff::{
    self, Accepted, Expectation, HandoffError, LastAccepted, Receipt, SENT_EVENT,
};
use accord_core::hash::Hasher;
use accord_core::signed::SignedObject;
use accord_core::{AgentId, Hash32, SignedEvent};

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

fn decode_last(bytes: &[u8]) -> Result<LastAccepted, StoreError> {
    LastAccepted::from_bytes(bytes)
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
        let state_key = handoff::outbox_key(receiver);
        let (handoff_id, timestamp) = (self.nonce()?, self.now()?);
        let events = self.stamp_with_state(&[&state_key], &mut |key, _, state| {
            let last = state[0].as_deref().map(decode_last).transpose()?;
            let sent = handoff::send(
                key,
                Receipt {
                    handoff_id,
                    parent_task_id: parent_task_id.map(str::to_owned),
                    receiver: receiver.clone(),
                    payload_sha256,
                    payload_size,
                    seq: 0,
                    timestamp: timestamp.clone(),
                    prev_receipt_hash: Hash32::ZERO,
                },
                last.as_ref(),
            )
            .map_err(|e| StoreError::Invalid(format!("the receipt cannot be made: {e}")))?;
            let write = SideWrite::Set {
                key: state_key.clone(),
                value: sent.last.to_bytes(),
            };
            receipt = Some(sent.receipt);
            Ok((vec![(SENT_EVENT.to_owned(), sent.payload)], vec![write]))
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
        // The sender is named before anything is verified, only to read the
        // state the decision needs; `decide` verifies everything.
        let state_key = handoff::sender_of(receipt_text)
            .ok()
            .map(|(_, s)| handoff::inbox_key(&s));
        let keys: Vec<&str> = state_key.iter().map(String::as_str).collect();
        let mut outcome: Option<Result<Accepted, HandoffError>> = None;
        let received_at = self.now()?;
        let events = self.stamp_with_state(&keys, &mut |_, _, state| {
            let last = match state.first() {
                Some(Some(b)) => Some(decode_last(b)?),
                _ => None,
            };
            let decision = handoff::decide(
                receipt_text,
                &Expectation {
                    me: &me,
                    sender: expect_sender,
                    payload: digest,
                    now: &received_at,
                    window_micros,
                    last,
                },
            );
            let write = match &decision.last {
                Some((sender, last)) => SideWrite::Set {
                    key: handoff::inbox_key(sender),
                    value: last.to_bytes(),
                },
                None => SideWrite::Quarantine {
                    received_at: received_at.to_string(),
                    reason: decision
                        .verdict
                        .as_ref()
                        .err()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    item: receipt_text.to_vec(),
                },
            };
            outcome = Some(decision.verdict);
            Ok((
                vec![(decision.event_type.to_owned(), decision.payload)],
                vec![write],
            ))
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
