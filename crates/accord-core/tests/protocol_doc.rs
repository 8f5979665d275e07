//! Keeps docs/PROTOCOL.md honest: its worked examples must be, byte for byte,
//! what this code produces, and they must verify.
//!
//! # Convention
//!
//! A fenced code block whose info string contains a word of the form
//! `accord-example:NAME` (by convention after the language) is a checked
//! example, e.g.
//!
//! ````text
//! ```jsonl accord-example:export
//! {"agent_id":…}
//! ```
//! ````
//!
//! Its content is every line between the opening and the closing fence, each
//! followed by `\n` (so a JSON-lines block is exactly the file it shows).
//! Every NAME in [`expected_blocks`] must appear exactly once in the document,
//! and the document may contain no other `accord-example:` names.
//!
//! When a format change is intended, print the new blocks with
//! `cargo test -p accord-core --test protocol_doc -- --ignored --nocapture`
//! and paste them into the document.

use std::collections::BTreeMap;

use accord_core::export::{ExportVerifier, Seal};
use accord_core::keyfile::{self, KdfParams};
use accord_core::{
    Event, Hash32, Keypair, Map, Signature, SignatureMode, SignedEvent, Timestamp, Uuid, Value,
    chain, event, export, identity, jcs,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");
const MARK: &str = "accord-example:";

/// The example agent's Ed25519 seed (RFC 8032 secret key). Public test data.
const SEED: [u8; 32] = [1; 32];
/// Passphrase of the encrypted key file example.
const PASSPHRASE: &[u8] = b"correct horse battery staple";
/// Cheapest Argon2id parameters a key file may carry, so the example opens fast.
const EXAMPLE_KDF: KdfParams = KdfParams {
    m_cost_kib: 8 * 1024,
    t_cost: 1,
    p_cost: 1,
};

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).expect("example timestamp")
}

fn nonce(byte: u8) -> Uuid {
    uuid::Builder::from_random_bytes([byte; 16]).into_uuid()
}

fn object(json: &str) -> Map<String, Value> {
    match jcs::parse(json.as_bytes()).expect("example JSON") {
        Value::Object(m) => m,
        _ => panic!("not an object: {json}"),
    }
}

struct Examples {
    key: Keypair,
    genesis: SignedEvent,
    second: SignedEvent,
    seal: Seal,
    seal_line: Vec<u8>,
    keyfile_none: Vec<u8>,
    keyfile_argon2id: Vec<u8>,
}

/// Builds every example deterministically through the public API.
fn build() -> Examples {
    let key = Keypair::from_seed(&SEED).expect("seed");
    let genesis = Event::genesis(
        key.public(),
        ts("2026-11-24T10:15:02.000000Z"),
        nonce(0x11),
        object(r#"{"name":"planner"}"#),
    )
    .sign(&key)
    .expect("genesis");
    let second = Event {
        agent_id: key.agent_id().clone(),
        seq: 1,
        timestamp: ts("2026-11-24T10:15:03.250000Z"),
        nonce: nonce(0x22),
        event_type: "task.handoff".to_owned(),
        payload: object(
            r#"{"task_id":"T-1","attempt":2,"note":"résumé\nv2","to":{"role":"writer"}}"#,
        ),
        prev_hash: genesis.hash(),
        public_key: None,
    }
    .sign(&key)
    .expect("second event");
    let seal = Seal {
        agent_id: key.agent_id().clone(),
        count: 2,
        head_hash: second.hash(),
        exported_at: ts("2026-11-24T10:16:00.000000Z"),
    };
    let seal_line = seal.sign(&key);
    let created_at = ts("2026-11-24T10:15:02.000000Z");
    let keyfile_none = keyfile::seal(
        &key,
        Some("planner"),
        &created_at,
        None,
        EXAMPLE_KDF,
        [0; 16],
        [0; 12],
    )
    .expect("key file");
    let keyfile_argon2id = keyfile::seal(
        &key,
        Some("planner"),
        &created_at,
        Some(PASSPHRASE),
        EXAMPLE_KDF,
        [0x33; 16],
        [0x44; 12],
    )
    .expect("encrypted key file");
    Examples {
        key,
        genesis,
        second,
        seal,
        seal_line,
        keyfile_none,
        keyfile_argon2id,
    }
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8")
}

/// The content every checked block must have, by name.
fn expected_blocks(x: &Examples) -> BTreeMap<&'static str, String> {
    let pk = x.key.public();
    let mut m = BTreeMap::new();
    m.insert(
        "identity",
        format!(
            "seed (hex)           {}\npublic_key (hex)     {}\npublic_key           {}\nSHA-256(public_key)  {}\nagent_id             {}\nfingerprint          {}\n",
            hex::encode(SEED),
            hex::encode(pk.to_bytes()),
            pk.to_b64(),
            Hash32::of(&pk.to_bytes()).to_hex(),
            x.key.agent_id(),
            pk.fingerprint(),
        ),
    );
    m.insert(
        "genesis-signing-input",
        format!("{}\n", text(&x.genesis.signing_message())),
    );
    m.insert(
        "second-signing-input",
        format!("{}\n", text(&x.second.signing_message())),
    );
    m.insert(
        "hashes",
        format!(
            "seq 0  {}\nseq 1  {}\n",
            x.genesis.hash().to_hex(),
            x.second.hash().to_hex()
        ),
    );
    let mut seal_unsigned = match jcs::parse(&x.seal_line).expect("seal JSON") {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    seal_unsigned.remove("signature");
    m.insert(
        "seal-signing-input",
        format!("{}\n", text(&jcs::to_vec(&Value::Object(seal_unsigned)))),
    );
    m.insert(
        "export",
        format!(
            "{}\n{}\n{}\n",
            text(x.genesis.canonical()),
            text(x.second.canonical()),
            text(&x.seal_line)
        ),
    );
    m.insert("keyfile-none", text(&x.keyfile_none).to_owned());
    m.insert("keyfile-argon2id", text(&x.keyfile_argon2id).to_owned());
    m.insert(
        "limits",
        format!(
            "MAX_EVENT_BYTES      {}\nMAX_TYPE_LEN         {}\nMAX_SAFE_INTEGER     {}\nAGENT_ID_LEN         {}\nBATCH_SIZE           {}\nMAX_KEY_FILE_BYTES   {}\nKDF DEFAULT          m_cost_kib={} t_cost={} p_cost={}\n",
            event::MAX_EVENT_BYTES,
            event::MAX_TYPE_LEN,
            jcs::MAX_SAFE_INTEGER,
            identity::AGENT_ID_LEN,
            chain::BATCH_SIZE,
            keyfile::MAX_KEY_FILE_BYTES,
            KdfParams::DEFAULT.m_cost_kib,
            KdfParams::DEFAULT.t_cost,
            KdfParams::DEFAULT.p_cost,
        ),
    );
    m.insert(
        "formats",
        format!(
            "event      {}\ngenesis    {}\nseal       {}\nkey file   {}\n",
            event::EVENT_FORMAT,
            event::GENESIS_TYPE,
            export::SEAL_FORMAT,
            keyfile::KEY_FORMAT,
        ),
    );
    m
}

/// Extracts the checked blocks of a Markdown document (see the module docs).
fn extract_blocks(doc: &str) -> BTreeMap<String, String> {
    let mut blocks = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in doc.lines() {
        match current.as_mut() {
            Some((name, content)) => {
                if line.trim_end() == "```" {
                    let (name, content) = (std::mem::take(name), std::mem::take(content));
                    assert!(
                        blocks.insert(name.clone(), content).is_none(),
                        "docs/PROTOCOL.md: example {name:?} appears more than once"
                    );
                    current = None;
                } else {
                    content.push_str(line);
                    content.push('\n');
                }
            }
            None => {
                let Some(info) = line.strip_prefix("```") else {
                    continue;
                };
                if let Some(name) = info.split_whitespace().find_map(|w| w.strip_prefix(MARK)) {
                    current = Some((name.to_owned(), String::new()));
                }
            }
        }
    }
    assert!(
        current.is_none(),
        "docs/PROTOCOL.md: unterminated example block"
    );
    blocks
}

fn read_doc() -> String {
    std::fs::read_to_string(DOC).unwrap_or_else(|e| panic!("cannot read {DOC}: {e}"))
}

fn doc_block<'a>(blocks: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    blocks
        .get(name)
        .unwrap_or_else(|| panic!("docs/PROTOCOL.md has no `{MARK}{name}` block"))
}

/// The value on the line of a two-column block whose label is `label`
/// (label, at least two spaces, value).
fn field<'a>(block: &'a str, label: &str) -> &'a str {
    block
        .lines()
        .find_map(|l| l.strip_prefix(label).filter(|rest| rest.starts_with("  ")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no line {label:?} in {block:?}"))
}

#[test]
fn documented_examples_match_the_code_byte_for_byte() {
    let doc = read_doc();
    let found = extract_blocks(&doc);
    let expected = expected_blocks(&build());
    let mut problems = Vec::new();
    for (name, want) in &expected {
        match found.get(*name) {
            None => problems.push(format!("missing block `{MARK}{name}`; it should contain:\n{want}")),
            Some(have) if have != want => problems.push(format!(
                "block `{MARK}{name}` differs from the code.\n--- document:\n{have}--- code:\n{want}"
            )),
            Some(_) => {}
        }
    }
    for name in found.keys() {
        if !expected.contains_key(name.as_str()) {
            problems.push(format!(
                "unknown block `{MARK}{name}` (add it to expected_blocks or remove it)"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/PROTOCOL.md drifted from the code:\n\n{}",
        problems.join("\n\n")
    );
}

#[test]
fn documented_export_verifies_in_both_modes() {
    let blocks = extract_blocks(&read_doc());
    let export = doc_block(&blocks, "export");
    assert!(export.ends_with('\n') && !export.contains("\n\n") && !export.contains('\r'));
    let identity_block = doc_block(&blocks, "identity");
    let agent_id = accord_core::AgentId::parse(field(identity_block, "agent_id"))
        .expect("documented agent_id");
    for mode in [SignatureMode::Batch, SignatureMode::Strict] {
        let mut v = ExportVerifier::new(mode, true).expect_agent(agent_id.clone());
        for line in export.lines() {
            v.push_line(line.as_bytes())
                .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        }
        let report = v.finish().unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(report.summary.events, 2);
        assert_eq!(report.summary.agent_id, agent_id);
        let seal = report.seal.expect("sealed");
        assert_eq!(seal.count, 2);
        assert_eq!(seal.head_hash, report.summary.head_hash);
        assert_eq!(seal, build().seal);
    }
    // Without its seal line the export verifies only when a seal is not required.
    let events: Vec<&str> = export.lines().take(2).collect();
    let mut sealed = ExportVerifier::new(SignatureMode::Strict, true);
    let mut unsealed = ExportVerifier::new(SignatureMode::Strict, false);
    for line in &events {
        sealed.push_line(line.as_bytes()).unwrap();
        unsealed.push_line(line.as_bytes()).unwrap();
    }
    assert!(sealed.finish().is_err());
    assert!(unsealed.finish().is_ok());
}

/// Re-derives the documented values the way PROTOCOL.md describes them,
/// without going through the accord_core types that produced them.
#[test]
fn documented_values_follow_the_documented_rules() {
    let blocks = extract_blocks(&read_doc());
    let id = doc_block(&blocks, "identity");
    let key = Keypair::from_seed(&SEED).unwrap();

    // Identity: agent_id = first 32 chars of base58btc(SHA-256(raw key)).
    let seed: [u8; 32] = hex::decode(field(id, "seed (hex)"))
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(seed, SEED);
    let raw: [u8; 32] = hex::decode(field(id, "public_key (hex)"))
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(
        raw,
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes()
    );
    assert_eq!(URL_SAFE_NO_PAD.encode(raw), field(id, "public_key"));
    let digest = Sha256::digest(raw);
    assert_eq!(hex::encode(digest), field(id, "SHA-256(public_key)"));
    let b58 = bs58::encode(digest)
        .with_alphabet(bs58::Alphabet::BITCOIN)
        .into_string();
    assert_eq!(&b58[..32], field(id, "agent_id"));
    assert_eq!(field(id, "agent_id"), key.agent_id().as_str());
    let fp = hex::encode_upper(&digest[..10]);
    let fp = [&fp[0..4], &fp[4..8], &fp[8..12], &fp[12..16], &fp[16..20]].join("-");
    assert_eq!(fp, field(id, "fingerprint"));
    assert_eq!(fp, key.public().fingerprint());

    // Events: signing input = JCS of the event without `signature`; event
    // hash = SHA-256 of the whole line; prev_hash links; strict Ed25519.
    let vk = VerifyingKey::from_bytes(&raw).unwrap();
    let export = doc_block(&blocks, "export");
    let lines: Vec<&str> = export.lines().collect();
    assert_eq!(lines.len(), 3);
    let inputs = [
        doc_block(&blocks, "genesis-signing-input"),
        doc_block(&blocks, "second-signing-input"),
        doc_block(&blocks, "seal-signing-input"),
    ];
    let hashes = doc_block(&blocks, "hashes");
    let mut prev = "0".repeat(64);
    for (i, line) in lines.iter().enumerate() {
        let mut obj = match jcs::parse(line.as_bytes()).unwrap() {
            Value::Object(m) => m,
            _ => panic!("line {i} is not an object"),
        };
        assert_eq!(
            jcs::to_vec(&Value::Object(obj.clone())),
            line.as_bytes(),
            "line {i} is not JCS"
        );
        let sig_b64 = match obj.remove("signature") {
            Some(Value::String(s)) => s,
            _ => panic!("line {i} has no signature"),
        };
        let message = jcs::to_vec(&Value::Object(obj.clone()));
        assert_eq!(
            format!("{}\n", text(&message)),
            inputs[i],
            "signing input of line {i}"
        );
        let sig_bytes: [u8; 64] = URL_SAFE_NO_PAD
            .decode(&sig_b64)
            .unwrap()
            .try_into()
            .unwrap();
        vk.verify_strict(&message, &Signature::from_bytes(&sig_bytes))
            .unwrap_or_else(|e| panic!("line {i}: {e}"));
        if i < 2 {
            assert_eq!(obj["seq"], Value::from(i as u64));
            assert_eq!(obj["prev_hash"], Value::from(prev.clone()));
            assert_eq!(obj.contains_key("public_key"), i == 0);
            let h = hex::encode(Sha256::digest(line.as_bytes()));
            assert_eq!(field(hashes, &format!("seq {i}")), h);
            prev = h;
        } else {
            assert_eq!(obj["count"], Value::from(2u64));
            assert_eq!(obj["head_hash"], Value::from(prev.clone()));
        }
    }

    // Key files: both documented files open to the same key.
    let none = doc_block(&blocks, "keyfile-none");
    assert_eq!(
        keyfile::open(none.as_bytes(), None).unwrap().public(),
        key.public()
    );
    let enc = doc_block(&blocks, "keyfile-argon2id");
    let opened = keyfile::open(enc.as_bytes(), Some(PASSPHRASE)).unwrap();
    assert_eq!(opened.public(), key.public());
    assert!(keyfile::open(enc.as_bytes(), Some(b"wrong")).is_err());
}

/// Prints every checked block in Markdown, ready to paste into the document.
#[test]
#[ignore = "prints the examples for docs/PROTOCOL.md"]
fn print_examples() {
    for (name, content) in expected_blocks(&build()) {
        println!("```text {MARK}{name}\n{content}```\n");
    }
}
