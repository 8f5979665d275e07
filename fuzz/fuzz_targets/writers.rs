//! Write–read symmetry for the writers: whatever a writer accepts from
//! arbitrary input, the readers accept. The first byte picks the writer:
//! 0 an event (`accord stamp --payload`: `payload_from_json`, then
//! `ChainWriter`), 1 a signed note and a cosignature, 2 a signed object, 3
//! a handoff receipt's parent task id. A panic here is a writer that signed
//! something no reader takes back.
#![no_main]
use accord_core::export::{ExportVerifier, Seal};
use accord_core::handoff::{self, Receipt};
use accord_core::note::Note;
use accord_core::signed::SignedObject;
use accord_core::{
    ChainVerifier, ChainWriter, Event, Hash32, Head, Keypair, Map, SignatureMode, SignedEvent,
    Timestamp, Uuid, Value, event,
};
use libfuzzer_sys::fuzz_target;

fn key() -> Keypair {
    Keypair::from_seed(&[0x17; 32]).expect("fixed seed")
}

fn t(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_795_000_000_000_000 + micros).expect("in range")
}

fn nonce(i: u8) -> Uuid {
    let mut b = [i; 16];
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Uuid::from_bytes(b)
}

fn event_writer(data: &[u8]) {
    let Ok(payload) = event::payload_from_json(data) else {
        return;
    };
    let k = key();
    let g = Event::genesis(k.public(), t(0), nonce(0), Map::new())
        .sign(&k)
        .expect("genesis");
    let Ok(ev) = ChainWriter::new(&k, Head::of(&g), t(1)).append(nonce(1), "fuzz".into(), payload)
    else {
        return;
    };
    let back = SignedEvent::from_canonical(ev.canonical()).expect("a signed event reads back");
    assert_eq!(back, ev);
    for mode in [SignatureMode::Batch, SignatureMode::Strict] {
        let mut v = ChainVerifier::new(mode);
        v.push_bytes(g.canonical()).expect("genesis verifies");
        v.push_bytes(ev.canonical()).expect("the event verifies");
        v.finish().expect("the chain verifies");
        let seal = Seal {
            agent_id: k.agent_id().clone(),
            count: 2,
            head_hash: ev.hash(),
            exported_at: t(2),
        };
        let mut x = ExportVerifier::new(mode, true);
        for line in [g.canonical(), ev.canonical(), &seal.sign(&k)] {
            x.push_line(line).expect("the export verifies");
        }
        x.finish().expect("the export verifies");
    }
}

fn note_writer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (name, rest) = text.split_once('|').unwrap_or(("n", &text));
    let (witness, body) = rest.split_once('|').unwrap_or(("w", rest));
    let k = key();
    let Ok(mut note) = Note::sign(&format!("{body}\n"), name, &k) else {
        return;
    };
    let back = Note::parse(&note.to_bytes()).expect("a signed note reads back");
    assert_eq!(back, note);
    back.verify(name, k.public())
        .expect("its signature verifies");
    if note.cosign(witness, &k, 7).is_ok() {
        let back = Note::parse(&note.to_bytes()).expect("a cosigned note reads back");
        assert_eq!(back.verify_cosignature(witness, k.public()), Ok(7));
    }
}

fn signed_writer(data: &[u8]) {
    let Ok(Value::Object(mut m)) = accord_core::jcs::parse(data) else {
        return;
    };
    m.insert("format".into(), "fuzz/1".into());
    let k = key();
    if let Ok(obj) = SignedObject::try_sign(m, &k) {
        let back =
            SignedObject::parse(obj.canonical(), "fuzz/1").expect("a signed object reads back");
        assert!(back.verify(k.public()));
    }
}

fn receipt_writer(data: &[u8]) {
    let k = key();
    let r = Receipt {
        handoff_id: nonce(3),
        parent_task_id: Some(String::from_utf8_lossy(data).into_owned()),
        receiver: Keypair::from_seed(&[0x18; 32])
            .expect("fixed seed")
            .agent_id()
            .clone(),
        payload_sha256: Hash32::of(data),
        payload_size: data.len() as u64,
        seq: u64::from(data.first().copied().unwrap_or(1)) << 50,
        timestamp: t(3),
        prev_receipt_hash: Hash32::ZERO,
    };
    if let Ok(obj) = r.try_sign(&k) {
        handoff::sender_of(obj.canonical()).expect("a signed receipt reads back");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => event_writer(rest),
        1 => note_writer(rest),
        2 => signed_writer(rest),
        _ => receipt_writer(rest),
    }
});
