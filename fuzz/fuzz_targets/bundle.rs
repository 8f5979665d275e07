//! Bundle and signed-message parsing: errors or round-trips, never panics.
#![no_main]
use accord_core::channel::{Bundle, SignedMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Bundle::parse(data) {
        assert_eq!(Bundle::parse(b.to_bytes()).expect("re-parses"), b);
    }
    let key = *accord_core::Keypair::from_seed(&[1; 32])
        .expect("fixed seed")
        .public();
    if let Ok(m) = SignedMessage::parse_and_verify(data, &key) {
        assert_eq!(m.to_bytes(), data);
    }
});
