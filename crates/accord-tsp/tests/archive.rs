//! The RFC 3161 check of certified archives (`accord_tsp::archive`, plugged
//! into `accord_core::archive::ArchiveVerifier`): the corpus's archive cases
//! (`testdata/corpus/archive-*`, run by accord-core's `corpus` test without
//! a token checker) verified with the real one.

use std::path::PathBuf;

use accord_core::SignatureMode;
use accord_core::archive::{self, ArchiveError, ArchiveVerifier, TimestampCheck};
use accord_tsp::archive::{ArchiveTimestamps, timestamp_imprint};
use accord_tsp::{HashAlg, Imprint, MAX_TOKEN_BYTES, TspError, verify_token};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/corpus")
}

/// A corpus case: its expect header (`None` for a `known-failure` case:
/// there only the two verifiers are compared), its signature modes and its
/// body.
fn case(name: &str) -> (Option<String>, Vec<SignatureMode>, Vec<u8>) {
    let file = std::fs::read(corpus().join(name)).unwrap();
    let split = file
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("a header");
    let header = std::str::from_utf8(&file[..split]).unwrap();
    assert!(
        !header.contains("encoding: "),
        "{name}: encoded cases are not read here"
    );
    let expect = header
        .lines()
        .find_map(|l| l.strip_prefix("expect: "))
        .expect("an expect header")
        .to_owned();
    let known_failure = header.lines().any(|l| l.starts_with("known-failure: "));
    let modes = match header
        .lines()
        .find_map(|l| l.strip_prefix("signature-mode: "))
    {
        None => vec![SignatureMode::Strict, SignatureMode::Batch],
        Some("strict") => vec![SignatureMode::Strict],
        Some("batch") => vec![SignatureMode::Batch],
        Some(other) => panic!("{name}: signature-mode {other}"),
    };
    (
        (!known_failure).then_some(expect),
        modes,
        file[split + 2..].to_vec(),
    )
}

fn run<C: TimestampCheck>(
    mut v: ArchiveVerifier<C>,
    body: &[u8],
) -> Result<archive::ArchiveReport<C::Report>, ArchiveError> {
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    for line in body.split(|&b| b == b'\n') {
        v.push_line(line)?;
    }
    v.finish()
}

#[test]
fn the_archive_limit_is_the_token_limit() {
    assert_eq!(archive::MAX_TIMESTAMP_BYTES, MAX_TOKEN_BYTES);
}

#[test]
fn the_imprint_is_sha256_of_the_note_bytes() {
    let note = b"origin\n1\nroot\n\n\xe2\x80\x94 sig\n";
    let imprint = timestamp_imprint(note);
    assert_eq!(imprint, Imprint::of(HashAlg::Sha256, note));
    assert_eq!(
        imprint.digest(),
        archive::timestamp_digest(note).0.as_slice()
    );
}

#[test]
fn corpus_archives_verify_the_same_with_the_token_check() {
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("archive-"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        let (expect, modes, body) = case(name);
        for mode in modes {
            let without = run(ArchiveVerifier::new(mode), &body).map(|_| ());
            let with = run(ArchiveTimestamps::new().verifier(mode), &body);
            match (&without, &with) {
                (Ok(()), Ok(r)) => {
                    assert!(expect.as_deref().is_none_or(|e| e == "ok"), "{name}");
                    assert_eq!(r.timestamp, None, "{name}");
                }
                (Err(a), Err(b)) if a == b => {}
                (Err(a), Err(b)) => {
                    // Only the token check may differ: refused as not
                    // checked without it, refused as what it is with it.
                    assert_eq!(expect.as_deref(), Some("error timestamp-token"), "{name}");
                    let (a, b) = (a.to_string(), b.to_string());
                    assert!(a.contains("RFC 3161 timestamp: not checked"), "{name}: {a}");
                    let e = verify_token(
                        b"not a time-stamp token",
                        &Imprint::sha256([0; 32]),
                        None,
                        None,
                    )
                    .unwrap_err();
                    assert!(matches!(e, TspError::Malformed { .. }), "{e}");
                    assert_eq!(
                        b,
                        format!("line 5: certification: RFC 3161 timestamp: {e}"),
                        "{name}"
                    );
                }
                _ => panic!("{name} ({mode:?}): {without:?} / {:?}", with.map(|_| ())),
            }
        }
    }
}
