//! Proof files and witness checks on arbitrary input: never panic.
#![no_main]
use accord_core::{Keypair, proof};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = proof::verify_file(data, None, None);
    let (a, b) = data.split_at(data.len() / 2);
    let _ = proof::verify_file(a, None, Some(b));
    let key = Keypair::from_seed(&[1; 32]).expect("fixed seed");
    let _ = proof::witness_check(a, key.public(), Some(b));
});
