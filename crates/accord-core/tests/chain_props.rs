//! Property tests: every chain Accord builds verifies, and every edit of an
//! export — a flipped byte, a deleted, duplicated or moved line — is caught.

use accord_core::export::{ExportVerifier, Seal};
use accord_core::{
    ChainVerifier, Event, Hash32, Keypair, Map, SignatureMode, SignedEvent, Timestamp, Uuid, Value,
};
use proptest::prelude::*;

fn build_chain(seed: u8, payloads: &[(String, i64)]) -> (Keypair, Vec<SignedEvent>) {
    let key = Keypair::from_seed(&[seed; 32]).unwrap();
    let t0 = 1_795_000_000_000_000i64;
    let nonce = |i: usize| {
        let mut b = [seed; 16];
        b[..8].copy_from_slice(&(i as u64).to_le_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid()
    };
    let mut events = vec![
        Event::genesis(
            key.public(),
            Timestamp::from_unix_micros(t0).unwrap(),
            nonce(0),
            Map::new(),
        )
        .sign(&key)
        .unwrap(),
    ];
    for (i, (text, n)) in payloads.iter().enumerate() {
        let prev = events.last().unwrap();
        let mut payload = Map::new();
        payload.insert("text".into(), Value::String(text.clone()));
        payload.insert("n".into(), Value::from(*n));
        let ev = Event {
            agent_id: key.agent_id().clone(),
            seq: prev.seq() + 1,
            // Equal timestamps are allowed (non-decreasing).
            timestamp: Timestamp::from_unix_micros(t0 + (i as i64 / 2)).unwrap(),
            nonce: nonce(i + 1),
            event_type: format!("step.{}", i % 3),
            payload,
            prev_hash: prev.hash(),
            public_key: None,
        }
        .sign(&key)
        .unwrap();
        events.push(ev);
    }
    (key, events)
}

fn export_lines(key: &Keypair, events: &[SignedEvent]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = events.iter().map(|e| e.canonical().to_vec()).collect();
    let last = events.last().unwrap();
    let seal = Seal {
        agent_id: key.agent_id().clone(),
        count: events.len() as u64,
        head_hash: last.hash(),
        exported_at: Timestamp::from_unix_micros(1_795_000_100_000_000).unwrap(),
    };
    lines.push(seal.sign(key));
    lines
}

fn verify_lines(lines: &[Vec<u8>], mode: SignatureMode) -> Result<u64, String> {
    let mut v = ExportVerifier::new(mode, true);
    for l in lines {
        v.push_line(l).map_err(|e| e.to_string())?;
    }
    v.finish()
        .map(|r| r.summary.events)
        .map_err(|e| e.to_string())
}

fn payloads() -> impl Strategy<Value = Vec<(String, i64)>> {
    prop::collection::vec(
        ("[ -~é€😂\\n\"\\\\]{0,12}", -(1i64 << 53) + 1..(1i64 << 53)),
        0..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_built_chain_verifies(seed in 1u8..255, p in payloads()) {
        let (key, events) = build_chain(seed, &p);
        let lines = export_lines(&key, &events);
        for mode in [SignatureMode::Batch, SignatureMode::Strict] {
            prop_assert_eq!(verify_lines(&lines, mode), Ok(events.len() as u64));
        }
        let mut v = ChainVerifier::new(SignatureMode::Batch);
        for e in &events {
            v.push_bytes(e.canonical()).unwrap();
        }
        let s = v.finish().unwrap();
        prop_assert_eq!(s.head_hash, events.last().unwrap().hash());
        prop_assert_eq!(&s.agent_id, key.agent_id());
    }

    #[test]
    fn any_flipped_byte_is_detected(seed in 1u8..255, p in payloads(), pick in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let (key, events) = build_chain(seed, &p);
        let mut lines = export_lines(&key, &events);
        let i = pick.index(lines.len());
        let j = at.index(lines[i].len());
        lines[i][j] ^= mask;
        prop_assert!(verify_lines(&lines, SignatureMode::Batch).is_err(), "flip line {} byte {} undetected", i, j);
        prop_assert!(verify_lines(&lines, SignatureMode::Strict).is_err());
    }

    #[test]
    fn deleted_duplicated_or_moved_lines_are_detected(seed in 1u8..255, p in payloads(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>(), op in 0u8..3) {
        let (key, events) = build_chain(seed, &p);
        let mut lines = export_lines(&key, &events);
        let i = a.index(lines.len());
        let j = b.index(lines.len());
        match op {
            0 => { lines.remove(i); }
            1 => { let l = lines[i].clone(); lines.insert(j, l); }
            _ => {
                prop_assume!(lines[i] != lines[j]);
                lines.swap(i, j);
            }
        }
        prop_assert!(verify_lines(&lines, SignatureMode::Batch).is_err(), "op {} at {},{} undetected", op, i, j);
    }
}

#[test]
fn first_bad_event_is_named_even_inside_a_batch() {
    let p: Vec<(String, i64)> = (0..200).map(|i| (format!("e{i}"), i)).collect();
    let (key, events) = build_chain(9, &p);
    let mut lines = export_lines(&key, &events);
    // Change content of event 70 (signature fails) and remove event 80 (same batch of 64):
    // event 70 must be named even though its batch settles later.
    let s = String::from_utf8(lines[70].clone())
        .unwrap()
        .replace("\"e69\"", "\"eX9\"");
    lines[70] = s.into_bytes();
    lines.remove(80);
    let err = verify_lines(&lines, SignatureMode::Batch).unwrap_err();
    assert!(err.starts_with("line 71: event seq 70: signature"), "{err}");
}

#[test]
fn a_chain_cannot_be_reattributed_or_restarted() {
    let (key, events) = build_chain(5, &[("a".into(), 1), ("b".into(), 2)]);
    let (other, _) = build_chain(6, &[]);
    // Another agent's genesis cannot head this chain.
    let other_genesis = Event::genesis(
        other.public(),
        events[0].event().timestamp.clone(),
        Uuid::nil(),
        Map::new(),
    );
    assert!(
        other_genesis.sign(&other).is_err(),
        "a nil UUID is not a v4 nonce"
    );
    let mut v = ChainVerifier::new(SignatureMode::Batch).expect_agent(other.agent_id().clone());
    assert!(v.push(&events[0]).is_err());
    // A chain that starts at seq 1 (genesis removed) is refused.
    let mut v = ChainVerifier::new(SignatureMode::Batch);
    assert!(v.push(&events[1]).is_err());
    // An empty chain does not verify.
    assert!(ChainVerifier::new(SignatureMode::Batch).finish().is_err());
    // Events signed by the right key but for a different prev are refused.
    let forged = Event {
        prev_hash: Hash32::of(b"elsewhere"),
        ..events[2].event().clone()
    }
    .sign(&key)
    .unwrap();
    let mut v = ChainVerifier::new(SignatureMode::Batch);
    v.push(&events[0]).unwrap();
    v.push(&events[1]).unwrap();
    let f = v.push(&forged).unwrap_err();
    assert_eq!(f.seq, 2);
    assert!(f.to_string().contains("prev_hash"), "{f}");
}

#[test]
fn replayed_nonce_and_time_going_back_are_refused() {
    let (key, events) = build_chain(7, &[("a".into(), 1), ("b".into(), 2)]);
    let replay = Event {
        seq: 3,
        prev_hash: events[2].hash(),
        ..events[1].event().clone()
    };
    let replay = Event {
        timestamp: events[2].event().timestamp.clone(),
        ..replay
    }
    .sign(&key)
    .unwrap();
    let mut v = ChainVerifier::new(SignatureMode::Batch);
    for e in &events {
        v.push(e).unwrap();
    }
    let f = v.push(&replay).unwrap_err();
    assert!(
        f.to_string().contains("nonce already used by event seq 1"),
        "{f}"
    );

    let back = Event {
        seq: 3,
        prev_hash: events[2].hash(),
        nonce: uuid::Builder::from_random_bytes([0xaa; 16]).into_uuid(),
        timestamp: Timestamp::from_unix_micros(1_000_000_000_000_000).unwrap(),
        ..events[2].event().clone()
    }
    .sign(&key)
    .unwrap();
    let mut v = ChainVerifier::new(SignatureMode::Strict);
    for e in &events {
        v.push(e).unwrap();
    }
    let f = v.push(&back).unwrap_err();
    assert!(f.to_string().contains("earlier than the previous"), "{f}");
}
