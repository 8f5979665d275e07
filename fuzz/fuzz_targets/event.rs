//! Event parsing: errors or round-trips byte for byte.
#![no_main]
use accord_core::SignedEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = SignedEvent::from_canonical(data) {
        assert_eq!(ev.canonical(), data);
        let _ = ev.verify_signature(ev.event().public_key.as_ref().unwrap_or(&dummy_key()));
    }
});

fn dummy_key() -> accord_core::PublicKey {
    *accord_core::Keypair::from_seed(&[1; 32])
        .expect("fixed seed")
        .public()
}
