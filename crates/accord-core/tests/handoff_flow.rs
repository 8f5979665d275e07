//! Handoffs between two agents with no store or clock: the sender's and
//! receiver's records built by `handoff::send` and `handoff::decide`, the
//! state they keep passed along by hand, at instants the test chooses.

use accord_core::handoff::{
    self, ACCEPTED_EVENT, DEFAULT_WINDOW_MICROS, Expectation, HandoffError, LastAccepted,
    QUARANTINED_EVENT, Receipt,
};
use accord_core::{Hash32, Keypair, Timestamp, Uuid};

fn at(s: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000 + s * 1_000_000).unwrap()
}

fn id(n: u8) -> Uuid {
    uuid::Builder::from_random_bytes([n; 16]).into_uuid()
}

struct Pair {
    sender: Keypair,
    receiver: Keypair,
    /// The sender's state under `outbox_key(receiver)`.
    outbox: Option<Vec<u8>>,
    /// The receiver's state under `inbox_key(sender)`.
    inbox: Option<Vec<u8>>,
}

impl Pair {
    fn send(&mut self, payload: &[u8], t: i64, n: u8) -> Vec<u8> {
        let last = self
            .outbox
            .as_deref()
            .map(|b| LastAccepted::from_bytes(b).unwrap());
        let sent = handoff::send(
            &self.sender,
            Receipt {
                handoff_id: id(n),
                parent_task_id: Some("task-1".into()),
                receiver: self.receiver.agent_id().clone(),
                payload_sha256: Hash32::of(payload),
                payload_size: payload.len() as u64,
                seq: 0,
                timestamp: at(t),
                prev_receipt_hash: Hash32::ZERO,
            },
            last.as_ref(),
        )
        .expect("a receipt within the limits");
        assert_eq!(sent.payload["seq"], sent.last.seq);
        assert_eq!(sent.payload["receipt_hash"], sent.receipt.hash().to_hex());
        self.outbox = Some(sent.last.to_bytes());
        sent.receipt.canonical().to_vec()
    }

    fn accept(&mut self, text: &[u8], payload: &[u8], t: i64) -> handoff::Decision {
        let last = self
            .inbox
            .as_deref()
            .map(|b| LastAccepted::from_bytes(b).unwrap());
        let now = at(t);
        let d = handoff::decide(
            text,
            &Expectation {
                me: self.receiver.agent_id(),
                sender: Some(self.sender.agent_id()),
                payload: (Hash32::of(payload), payload.len() as u64),
                now: &now,
                window_micros: DEFAULT_WINDOW_MICROS,
                last,
            },
        );
        if let Some((who, last)) = &d.last {
            assert_eq!(who, self.sender.agent_id());
            self.inbox = Some(last.to_bytes());
        }
        d
    }
}

#[test]
fn receipts_chain_and_the_receiver_refuses_what_does_not_fit() {
    let mut p = Pair {
        sender: Keypair::from_seed(&[1; 32]).unwrap(),
        receiver: Keypair::from_seed(&[2; 32]).unwrap(),
        outbox: None,
        inbox: None,
    };
    let r1 = p.send(b"one", 10, 1);
    let r2 = p.send(b"two", 20, 2);
    let r3 = p.send(b"three", 30, 3);

    let d = p.accept(&r1, b"one", 40);
    assert_eq!(d.event_type, ACCEPTED_EVENT);
    assert_eq!(d.verdict.as_ref().unwrap().seq, 1);

    // The wrong payload is refused and quarantined; nothing advances.
    let d = p.accept(&r2, b"tampered", 41);
    assert_eq!(d.event_type, QUARANTINED_EVENT);
    assert!(matches!(
        d.verdict,
        Err(HandoffError::PayloadMismatch { .. })
    ));
    assert_eq!(d.payload["signature_valid"], true);
    assert!(d.last.is_none());

    let d = p.accept(&r2, b"two", 42);
    assert!(d.verdict.is_ok(), "{:?}", d.verdict);
    // Replayed: refused.
    let d = p.accept(&r2, b"two", 43);
    assert!(matches!(
        d.verdict,
        Err(HandoffError::Replay {
            seq: 2,
            last: 2,
            ..
        })
    ));

    // A day and a second after it was sent, r3 is too old.
    let d = p.accept(&r3, b"three", 30 + 24 * 3600 + 1);
    assert!(
        matches!(d.verdict, Err(HandoffError::Expired { .. })),
        "{:?}",
        d.verdict
    );
    let d = p.accept(&r3, b"three", 30 + 24 * 3600);
    assert!(d.verdict.is_ok(), "{:?}", d.verdict);

    // Not a receipt at all: quarantined with its hash.
    let d = p.accept(b"{\"format\":\"nope\"}", b"", 50);
    assert_eq!(d.event_type, QUARANTINED_EVENT);
    assert!(d.payload.contains_key("receipt_sha256"));
}

#[test]
fn a_skipped_receipt_is_accepted_with_a_warning() {
    let mut p = Pair {
        sender: Keypair::from_seed(&[3; 32]).unwrap(),
        receiver: Keypair::from_seed(&[4; 32]).unwrap(),
        outbox: None,
        inbox: None,
    };
    let _r1 = p.send(b"a", 1, 1);
    let r2 = p.send(b"b", 2, 2);
    let d = p.accept(&r2, b"b", 3);
    let a = d.verdict.expect("accepted");
    assert!(
        a.warning.as_deref().unwrap().contains("gap"),
        "{:?}",
        a.warning
    );
    assert!(d.payload.contains_key("warning"));
}
