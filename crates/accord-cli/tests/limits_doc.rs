//! Limits are defined once, in code: the table of docs/PROTOCOL.md section
//! 13 must list exactly the constants below, each with the value the code
//! enforces.

use std::collections::BTreeMap;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");

fn code_limits() -> BTreeMap<&'static str, u128> {
    use accord_core::keyfile::KdfParams;
    use accord_core::{channel, event, handoff, identity, jcs, note, proof, session, signed};
    use accord_store::participant;
    use accord_tsp as tsp;
    let i = |v: i64| u128::try_from(v).expect("limits are positive");
    BTreeMap::from([
        ("MAX_EVENT_BYTES", event::MAX_EVENT_BYTES as u128),
        ("MAX_TYPE_LEN", event::MAX_TYPE_LEN as u128),
        ("MAX_SAFE_INTEGER", jcs::MAX_SAFE_INTEGER as u128),
        ("AGENT_ID_LEN", identity::AGENT_ID_LEN as u128),
        ("BATCH_SIZE", accord_core::chain::BATCH_SIZE as u128),
        (
            "MAX_KEY_FILE_BYTES",
            accord_core::keyfile::MAX_KEY_FILE_BYTES as u128,
        ),
        ("MIN_M_COST_KIB", KdfParams::MIN_M_COST_KIB as u128),
        ("MAX_M_COST_KIB", KdfParams::MAX_M_COST_KIB as u128),
        ("MAX_T_COST", KdfParams::MAX_T_COST as u128),
        ("MAX_P_COST", KdfParams::MAX_P_COST as u128),
        ("MAX_NOTE_BYTES", note::MAX_NOTE_BYTES as u128),
        ("MAX_SIGNATURES", note::MAX_SIGNATURES as u128),
        ("MAX_PROOF_BYTES", proof::MAX_PROOF_BYTES as u128),
        ("MAX_TOKEN_BYTES", tsp::MAX_TOKEN_BYTES as u128),
        ("MAX_EMBEDDED", tsp::MAX_EMBEDDED as u128),
        ("MAX_CERTS", tsp::MAX_CERTS as u128),
        ("MAX_CHAIN", tsp::MAX_CHAIN as u128),
        ("MIN_RSA_BITS", tsp::MIN_RSA_BITS as u128),
        ("Nonce::MIN_BYTES", tsp::Nonce::MIN_BYTES as u128),
        ("Nonce::MAX_BYTES", tsp::Nonce::MAX_BYTES as u128),
        ("MAX_SIGNED_BYTES", signed::MAX_SIGNED_BYTES as u128),
        ("MAX_WIRE_BYTES", participant::MAX_WIRE_BYTES as u128),
        ("MAX_DATA_BYTES", participant::MAX_DATA_BYTES as u128),
        (
            "MAX_PENDING_HANDSHAKES",
            participant::MAX_PENDING_HANDSHAKES as u128,
        ),
        (
            "DEFAULT_MAX_SKEW_MICROS",
            i(session::DEFAULT_MAX_SKEW_MICROS),
        ),
        ("DEFAULT_WINDOW_MICROS", i(handoff::DEFAULT_WINDOW_MICROS)),
        ("FUTURE_SKEW_MICROS", i(handoff::FUTURE_SKEW_MICROS)),
        ("MAX_BUNDLE_BYTES", channel::MAX_BUNDLE_BYTES as u128),
        ("MAX_MESSAGE_BYTES", channel::MAX_MESSAGE_BYTES as u128),
        ("MAX_ENVELOPE_BYTES", channel::MAX_ENVELOPE_BYTES as u128),
        (
            "MAX_SESSION_MESSAGES",
            channel::MAX_SESSION_MESSAGES as u128,
        ),
        ("MAX_SESSION_AGE_MS", channel::MAX_SESSION_AGE_MS as u128),
        ("REPLAY_WINDOW", channel::REPLAY_WINDOW as u128),
        ("MAX_FRAME", accord_net::frame::MAX_FRAME as u128),
        ("MAX_UNACKED", accord_net::hub::MAX_UNACKED as u128),
    ])
}

/// The rows `| \`NAME\` | VALUE | …` of section 13's table.
fn documented_limits(doc: &str) -> BTreeMap<String, u128> {
    let start = doc
        .find("\n## 13. Limits")
        .expect("PROTOCOL.md has section 13");
    let end = doc[start..]
        .find("\n## 14.")
        .map_or(doc.len(), |e| start + e);
    let mut rows = BTreeMap::new();
    for line in doc[start..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let name = cells[1].trim_matches('`').to_owned();
        let value = cells[2].parse::<u128>().unwrap_or_else(|_| {
            panic!(
                "PROTOCOL.md 13: {name}'s value {:?} is not an integer",
                cells[2]
            )
        });
        assert!(
            rows.insert(name.clone(), value).is_none(),
            "{name} is listed twice"
        );
    }
    rows
}

#[test]
fn protocol_limits_table_matches_the_constants() {
    let doc = std::fs::read_to_string(DOC).expect("docs/PROTOCOL.md");
    let documented = documented_limits(&doc);
    let code = code_limits();
    let mut problems = Vec::new();
    for (name, value) in &code {
        match documented.get(*name) {
            None => problems.push(format!("{name} = {value} is not in the table")),
            Some(d) if d != value => {
                problems.push(format!("{name}: the table says {d}, the code {value}"))
            }
            Some(_) => {}
        }
    }
    for name in documented.keys() {
        if !code.contains_key(name.as_str()) {
            problems.push(format!(
                "{name} is in the table but this test does not know it"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/PROTOCOL.md section 13 drifted from the code:\n{}",
        problems.join("\n")
    );
}

/// The check above must be able to fail: a changed value is noticed.
#[test]
fn a_drifted_value_is_noticed() {
    let doc = std::fs::read_to_string(DOC).expect("docs/PROTOCOL.md");
    let drifted = doc.replace("| `MAX_FRAME` | 1048576 |", "| `MAX_FRAME` | 1048575 |");
    assert_ne!(drifted, doc);
    assert_ne!(
        documented_limits(&drifted).get("MAX_FRAME"),
        code_limits().get("MAX_FRAME").copied().as_ref()
    );
}
