//! The cross-chain audit on arbitrary chain files: never panic.
#![no_main]
use accord_core::audit::{self, ChainReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (a, b) = data.split_at(data.len() / 2);
    let read = |label: &str, bytes: &[u8]| {
        let mut r = ChainReader::new(label);
        for line in bytes.split(|c| *c == b'\n') {
            r.push_line(line);
        }
        r.finish()
    };
    let report = audit::audit(&[read("a", a), read("b", b)]);
    let _ = report.clean();
});
