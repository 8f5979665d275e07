//! RFC 8785: any input either errors or canonicalises to a fixed point.
#![no_main]
use accord_core::jcs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(canonical) = jcs::canonicalize(data) {
        let again = jcs::canonicalize(&canonical).expect("canonical output must parse");
        assert_eq!(again, canonical, "canonicalisation is not idempotent");
    }
});
