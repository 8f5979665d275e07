//! Archive verification over arbitrary line sequences: never panics.
#![no_main]
use accord_core::SignatureMode;
use accord_core::archive::ArchiveVerifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut v = ArchiveVerifier::new(SignatureMode::Batch);
    for line in data.split(|&b| b == b'\n') {
        if v.push_line(line).is_err() {
            return;
        }
    }
    let _ = v.finish();
});
