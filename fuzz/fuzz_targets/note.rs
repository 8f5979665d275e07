//! Signed notes and checkpoints: parse errors or round-trips; never panics.
#![no_main]
use accord_core::note::{Checkpoint, Note};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = Note::parse(data) {
        let again =
            Note::parse(&note.to_bytes()).expect("a parsed note serialises to a parsable note");
        assert_eq!(again, note);
        if let Ok(cp) = Checkpoint::parse_text(&note.text) {
            assert_eq!(cp.text(), note.text, "checkpoint bodies have one spelling");
        }
    }
});
