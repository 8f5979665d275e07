//! Archive verification over arbitrary line sequences, RFC 3161 token
//! check included (accord-tsp, no trust anchors): never panics.
#![no_main]
use accord_core::SignatureMode;
use accord_tsp::archive::ArchiveTimestamps;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut v = ArchiveTimestamps::new().verifier(SignatureMode::Batch);
    for line in data.split(|&b| b == b'\n') {
        if v.push_line(line).is_err() {
            return;
        }
    }
    let _ = v.finish();
});
