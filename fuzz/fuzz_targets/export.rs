//! Export verification over arbitrary line sequences: never panics.
#![no_main]
use accord_core::SignatureMode;
use accord_core::export::ExportVerifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mode = if data.first().is_some_and(|b| b & 1 == 1) {
        SignatureMode::Strict
    } else {
        SignatureMode::Batch
    };
    let mut v = ExportVerifier::new(mode, true);
    for line in data.split(|&b| b == b'\n') {
        if v.push_line(line).is_err() {
            return;
        }
    }
    let _ = v.finish();
});
