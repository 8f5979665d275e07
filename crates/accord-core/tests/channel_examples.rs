//! Prints the channel examples of docs/PROTOCOL.md §18 (fixed public test
//! seeds, times and randomness):
//! `cargo test -p accord-core --test channel_examples -- --ignored --nocapture`.
//! Also checks, always, that they open.

use accord_core::channel::{Bundle, Draft, Envelope, ExchangeSecret, Session, SignedMessage};
use accord_core::{Keypair, Map, Timestamp, Uuid, Value};

struct Counter(u8);
impl rand_core::TryRng for Counter {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0 = self.0.wrapping_add(1);
        dst.fill(self.0);
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Counter {}

fn examples() -> (Bundle, Envelope, SignedMessage, Vec<u8>) {
    let alice = Keypair::from_seed(&[1; 32]).unwrap();
    let bob = Keypair::from_seed(&[2; 32]).unwrap();
    let x = ExchangeSecret::generate(&[3; 32]);
    let bundle = Bundle::sign(
        &bob,
        &x,
        Timestamp::parse("2026-11-24T10:00:00.000000Z").unwrap(),
        Timestamp::parse("2026-11-26T10:00:00.000000Z").unwrap(),
    );
    let mut tx = Session::initiate(alice.agent_id(), &bundle, [4; 16], 0, &mut Counter(0)).unwrap();
    let mut payload = Map::new();
    payload.insert("task_id".into(), Value::from(42));
    let (env, signed) = tx
        .seal(
            &alice,
            Draft {
                id: Uuid::parse_str("7f2c1e4a-9b3d-4c5e-8f60-1a2b3c4d5e6f").unwrap(),
                timestamp_ms: 1_795_514_400_000,
                msg_type: "task".into(),
                text: "summarise Q3".into(),
                payload,
            },
        )
        .unwrap();
    let info = accord_core::channel::hpke_info(
        &env.session_id,
        alice.agent_id(),
        bob.agent_id(),
        bundle.exchange_key_id(),
    );
    let mut rx = Session::respond(bob.agent_id(), &x, &env, 0).unwrap();
    assert_eq!(rx.open(&env, alice.public()).unwrap(), signed);
    (bundle, env, signed, info)
}

/// Every example line printed by `print_examples` appears verbatim in
/// docs/PROTOCOL.md §18, so the document shows what the code produces.
#[test]
fn examples_open_and_match_the_document() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/PROTOCOL.md"
    ))
    .unwrap();
    let (bundle, env, signed, info) = examples();
    for (what, line) in [
        ("bundle", bundle.to_bytes().to_vec()),
        ("info", info),
        ("message", signed.to_bytes().to_vec()),
        ("hash", signed.hash().to_hex().into_bytes()),
        ("aad", env.aad()),
        ("envelope", env.to_bytes()),
    ] {
        let line = String::from_utf8(line).unwrap();
        assert!(
            doc.lines().any(|l| l == line),
            "the {what} example in PROTOCOL.md §18 is not what the code produces:\n{line}"
        );
    }
}

#[test]
#[ignore]
fn print_examples() {
    let (bundle, env, signed, info) = examples();
    println!("BUNDLE\n{}", String::from_utf8_lossy(bundle.to_bytes()));
    println!("INFO\n{}", String::from_utf8_lossy(&info));
    println!("MESSAGE\n{}", String::from_utf8_lossy(signed.to_bytes()));
    println!("HASH\n{}", signed.hash());
    println!("AAD\n{}", String::from_utf8_lossy(&env.aad()));
    println!("ENVELOPE\n{}", String::from_utf8_lossy(&env.to_bytes()));
}
