//! Handoff receipts on arbitrary input: never panic, never accept one not
//! signed by its sender.
#![no_main]
use accord_core::handoff::{self, Expectation, LastAccepted};
use accord_core::{Hash32, Keypair, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let me = Keypair::from_seed(&[2; 32]).expect("fixed seed");
    let now = Timestamp::from_unix_micros(1_790_000_000_000_000).expect("time");
    let Ok((obj, _)) = handoff::sender_of(data) else {
        return;
    };
    for last in [
        None,
        Some(LastAccepted {
            seq: 1,
            hash: Hash32::ZERO,
        }),
    ] {
        let exp = Expectation {
            me: me.agent_id(),
            sender: None,
            payload: (Hash32::of(b"doc"), 3),
            now: &now,
            window_micros: handoff::DEFAULT_WINDOW_MICROS,
            last,
        };
        if let Ok(a) = handoff::verify(obj.clone(), &exp) {
            let key = a.receipt.public_key("sender_key").expect("checked");
            assert!(a.receipt.verify(&key));
        }
    }
});
