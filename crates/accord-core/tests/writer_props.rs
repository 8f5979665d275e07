//! Write–read symmetry: whatever a writer accepts, the readers accept. For
//! each writer — events (`ChainWriter`), notes and cosignatures, signed
//! objects, handoff receipts, export seals, archive headers — arbitrary
//! input is offered; when the writer signs, its output must parse back to
//! itself, verify, and pass the chain and export verifiers in both
//! signature modes. Inputs include what readers refuse (deep nesting,
//! floats, out-of-range integers, controls and Unicode spaces in names,
//! oversized documents), so a writer that signs too much fails here.

use accord_core::archive::ArchiveVerifier;
use accord_core::export::{ExportVerifier, Seal};
use accord_core::handoff::{self, Receipt};
use accord_core::note::{Checkpoint, Note};
use accord_core::signed::SignedObject;
use accord_core::{
    ChainVerifier, ChainWriter, Event, Hash32, Head, Keypair, Map, SignatureMode, SignedEvent,
    Timestamp, Uuid, Value, event, jcs,
};
use proptest::prelude::*;

fn key() -> Keypair {
    Keypair::from_seed(&[0x17; 32]).unwrap()
}

fn t(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_795_000_000_000_000 + micros).unwrap()
}

fn nonce(i: u8) -> Uuid {
    uuid::Builder::from_random_bytes([i; 16]).into_uuid()
}

fn genesis(k: &Keypair) -> SignedEvent {
    Event::genesis(k.public(), t(0), nonce(0), Map::new())
        .sign(k)
        .unwrap()
}

/// Any JSON value: scalars (floats and huge integers included), strings
/// with controls and non-ASCII, arrays and objects, nested a little.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        "[\\x00-\\x7f é€😂\u{a0}\u{2028}]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\u{e9}\u{1F600}]{0,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `inner` wrapped in `levels` single-member objects.
fn nest(inner: Value, levels: usize) -> Value {
    (0..levels).fold(inner, |v, _| {
        let mut m = Map::new();
        m.insert("a".into(), v);
        Value::Object(m)
    })
}

/// A payload: any members, sometimes nested around the depth limit.
fn payload() -> impl Strategy<Value = Map<String, Value>> {
    (
        prop::collection::btree_map("[a-z_]{0,4}", json(), 0..4),
        prop::option::of((120usize..130, json())),
    )
        .prop_map(|(m, deep)| {
            let mut m: Map<String, Value> = m.into_iter().collect();
            if let Some((levels, v)) = deep {
                m.insert("deep".into(), nest(v, levels));
            }
            m
        })
}

/// The export of `events` with a seal, through the export verifier.
fn verify_export(k: &Keypair, events: &[SignedEvent], mode: SignatureMode) -> Result<u64, String> {
    let last = events.last().unwrap();
    let seal = Seal {
        agent_id: k.agent_id().clone(),
        count: events.len() as u64,
        head_hash: last.hash(),
        exported_at: last.event().timestamp.clone(),
    };
    let mut v = ExportVerifier::new(mode, true);
    for e in events {
        v.push_line(e.canonical()).map_err(|e| e.to_string())?;
    }
    v.push_line(&seal.sign(k)).map_err(|e| e.to_string())?;
    v.finish()
        .map(|r| r.summary.events)
        .map_err(|e| e.to_string())
}

/// Everything a reader does with an event the writer signed.
fn reads_back(k: &Keypair, chain: &[SignedEvent]) {
    for ev in chain {
        let back = SignedEvent::from_canonical(ev.canonical())
            .unwrap_or_else(|e| panic!("the writer signed an event no reader reads: {e}"));
        assert_eq!(&back, ev);
        assert!(ev.canonical().len() <= event::MAX_EVENT_BYTES);
        assert!(jcs::parse(ev.canonical()).is_ok());
    }
    for mode in [SignatureMode::Batch, SignatureMode::Strict] {
        let mut v = ChainVerifier::new(mode);
        for ev in chain {
            v.push_bytes(ev.canonical()).unwrap();
        }
        assert_eq!(v.finish().unwrap().events, chain.len() as u64);
        assert_eq!(verify_export(k, chain, mode), Ok(chain.len() as u64));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Events: what ChainWriter signs, every reader takes; and a payload
    /// within the rules (integers in range, nested at most 126) is signed.
    #[test]
    fn events_the_writer_signs_read_back(
        payloads in prop::collection::vec(payload(), 1..4),
        types in prop::collection::vec("[a-z.:/_\\- é]{0,5}|[a-z]{60,70}", 4),
    ) {
        let k = key();
        let g = genesis(&k);
        let mut w = ChainWriter::new(&k, Head::of(&g), t(1));
        let mut chain = vec![g];
        for (i, (p, ty)) in payloads.into_iter().zip(types).enumerate() {
            let within = p.values().all(|v| jcs::check_signable(v).is_ok())
                && p.values().map(jcs::depth).max().unwrap_or(0) < 126
                && !ty.is_empty()
                && ty.len() <= 64
                && ty != "genesis"
                && ty.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b));
            match w.append(nonce(i as u8 + 1), ty.clone(), p) {
                Ok(ev) => chain.push(ev),
                Err(e) => prop_assert!(!within, "a valid payload was refused ({ty:?}): {e}"),
            }
        }
        reads_back(&k, &chain);
    }

    /// Notes: what Note::sign and Note::cosign accept, Note::parse takes
    /// back unchanged and the signatures verify.
    #[test]
    fn notes_the_writer_signs_read_back(
        text in "[\\x00-\\x7f\u{85}\u{a0}\u{200b}\u{2028}\u{3000}\u{feff}é]{0,40}"
            .prop_map(|t| format!("{t}\n")),
        name in prop_oneof![
            "[a-z/.\u{7f}\u{180e}\u{200b}\u{feff}]{1,10}",
            "[\\x00-\\x7f\u{85}\u{a0}\u{180e}\u{200b}\u{2000}\u{3000}\u{feff}]{0,12}",
        ],
        witness in prop_oneof!["[a-z/]{1,6}", "[a-z+ \u{a0}\u{200b}\u{1}]{0,6}"],
        time in any::<u64>(),
    ) {
        let k = key();
        let Ok(mut note) = Note::sign(&text, &name, &k) else {
            // Refused: then the reader refuses such a note too.
            let line = format!("{text}\n\u{2014} {name} AAAAAAAA\n");
            prop_assert!(Note::parse(line.as_bytes()).is_err(), "a readable note was refused");
            return Ok(());
        };
        let back = Note::parse(&note.to_bytes())
            .unwrap_or_else(|e| panic!("signed a note no reader reads: {e}"));
        prop_assert_eq!(&back, &note);
        back.verify(&name, k.public()).unwrap();
        if note.cosign(&witness, &k, time).is_ok() {
            let back = Note::parse(&note.to_bytes())
                .unwrap_or_else(|e| panic!("cosigned a note no reader reads: {e}"));
            prop_assert_eq!(back.verify_cosignature(&witness, k.public()), Ok(time));
        }
    }

    /// Signed objects: what try_sign signs parses back and verifies.
    #[test]
    fn signed_objects_the_writer_signs_read_back(members in payload()) {
        let k = key();
        let mut members = members;
        members.insert("format".into(), "test-object/1".into());
        if let Ok(obj) = SignedObject::try_sign(members, &k) {
            let back = SignedObject::parse(obj.canonical(), "test-object/1")
                .unwrap_or_else(|e| panic!("signed an object no reader reads: {e}"));
            prop_assert!(back.verify(k.public()));
            prop_assert_eq!(back.canonical(), obj.canonical());
        }
    }

    /// Handoff receipts: what try_sign signs, the receiver parses.
    #[test]
    fn receipts_the_writer_signs_read_back(
        parent in prop::option::of("[ -~é]{0,40}|[a-z]{70000}"),
        size in prop_oneof![0u64..1 << 53, any::<u64>()],
        seq in prop_oneof![1u64..1 << 53, any::<u64>()],
    ) {
        let k = key();
        let r = Receipt {
            handoff_id: nonce(9),
            parent_task_id: parent,
            receiver: Keypair::from_seed(&[0x18; 32]).unwrap().agent_id().clone(),
            payload_sha256: Hash32::of(b"payload"),
            payload_size: size,
            seq,
            timestamp: t(5),
            prev_receipt_hash: Hash32::ZERO,
        };
        let within = size < 1 << 53 && seq < 1 << 53;
        match r.try_sign(&k) {
            Ok(obj) => {
                let (back, sender) = handoff::sender_of(obj.canonical())
                    .unwrap_or_else(|e| panic!("signed a receipt no receiver reads: {e}"));
                prop_assert_eq!(&sender, k.agent_id());
                prop_assert!(back.verify(k.public()));
            }
            Err(e) => prop_assert!(
                !within || r.parent_task_id.as_ref().is_some_and(|p| p.len() > 60_000),
                "a valid receipt was refused: {}", e
            ),
        }
    }
}

/// The event size limit holds at the writer exactly where the reader
/// applies it: around `MAX_EVENT_BYTES`, the writer signs an event iff it
/// is at most that long, and each one it signs reads back.
#[test]
fn the_event_size_limit_is_the_same_for_writer_and_reader() {
    let k = key();
    let g = genesis(&k);
    let probe = |len: usize| {
        let mut p = Map::new();
        p.insert("s".into(), Value::String("x".repeat(len)));
        ChainWriter::new(&k, Head::of(&g), t(1)).append(nonce(1), "big".into(), p)
    };
    let overhead = probe(0).unwrap().canonical().len();
    let fits = event::MAX_EVENT_BYTES - overhead;
    for len in [fits - 1, fits] {
        let ev = probe(len).unwrap();
        assert!(ev.canonical().len() <= event::MAX_EVENT_BYTES);
        reads_back(&k, &[g.clone(), ev]);
    }
    assert!(
        probe(fits + 1).is_err(),
        "an event over the limit was signed"
    );
}

/// Archive headers take their name from the genesis payload: any name the
/// event writer signs makes a header (and archive) readers accept.
#[test]
fn archive_headers_of_any_signed_name_read_back() {
    let k = key();
    for name in ["", "planner", "a\u{0}b", "\u{2028}", &"n".repeat(100_000)] {
        let header = accord_core::archive::header_line(k.public(), Some(name));
        let mut v = ArchiveVerifier::new(SignatureMode::Batch);
        v.push_line(&header)
            .unwrap_or_else(|e| panic!("header for name {:?}…: {e}", &name[..name.len().min(8)]));
    }
}

/// A checkpoint the agent signs opens under its key.
#[test]
fn checkpoints_the_writer_signs_open() {
    let k = key();
    for size in [0u64, 1, 1 << 53, u64::MAX] {
        let cp = Checkpoint {
            origin: Checkpoint::origin_of(k.agent_id()),
            size,
            root: Hash32::of(b"root"),
        };
        let note = cp.sign(&k).unwrap();
        let (back, _) = Checkpoint::open(&note.to_bytes(), k.public()).unwrap();
        assert_eq!(back, cp);
    }
}
