//! Key file parsing: never panics; an unencrypted file that opens yields
//! the key its header names (open refuses a secret that does not match).
#![no_main]
use accord_core::keyfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = keyfile::inspect(data) {
        // Encrypted files are not opened: Argon2 would dominate the run.
        if !info.encrypted {
            if let Ok(key) = keyfile::open(data, None) {
                assert_eq!(key.agent_id(), &info.agent_id);
            }
        }
    }
});
