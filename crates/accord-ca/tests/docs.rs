//! docs/PROTOCOL.md section 21 states the limits this crate enforces, with
//! the values the code has.

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");

fn section(doc: &str) -> &str {
    let start = doc
        .find("\n## 21. Controller (agent CA)")
        .expect("PROTOCOL.md has section 21");
    let end = doc[start + 1..]
        .find("\n## ")
        .map_or(doc.len(), |e| start + 1 + e);
    &doc[start..end]
}

/// The stated values not found in `doc` (whitespace-normalised).
fn stated(doc: &str) -> Vec<String> {
    let doc = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    vec![
        format!("`MAX_INPUT_BYTES` = {}", accord_ca::MAX_INPUT_BYTES),
        format!("`MAX_CRL_ENTRIES` = {}", accord_ca::MAX_CRL_ENTRIES),
        format!("{} s (`FUTURE_SKEW`)", accord_ca::FUTURE_SKEW.as_secs()),
        format!("default {} s", accord_ca::DEFAULT_LEAF_LIFETIME.as_secs()),
        format!(
            "at most {} days",
            accord_ca::MAX_LEAF_LIFETIME.as_secs() / 86400
        ),
        format!(
            "default {} days, at most {}",
            accord_ca::DEFAULT_CA_LIFETIME.as_secs() / 86400,
            accord_ca::MAX_CA_LIFETIME.as_secs() / 86400
        ),
    ]
    .into_iter()
    .filter(|s| !doc.contains(s.as_str()))
    .collect()
}

#[test]
fn section_21_states_the_limits_of_the_code() {
    let doc = std::fs::read_to_string(DOC).expect("docs/PROTOCOL.md");
    let missing = stated(section(&doc));
    assert!(
        missing.is_empty(),
        "PROTOCOL.md 21 does not say: {missing:?}"
    );
}

/// The check can fail: a drifted value is noticed.
#[test]
fn a_drifted_value_is_noticed() {
    let doc = std::fs::read_to_string(DOC).expect("docs/PROTOCOL.md");
    let drifted = doc.replace("`MAX_CRL_ENTRIES` = 100000", "`MAX_CRL_ENTRIES` = 1000");
    assert_ne!(drifted, doc);
    assert_eq!(stated(section(&drifted)).len(), 1);
}
