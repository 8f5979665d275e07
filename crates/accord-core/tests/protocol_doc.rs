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

use accord_core::archive::{self, ArchiveVerifier};
use accord_core::export::{ExportVerifier, Seal};
use accord_core::keyfile::{self, KdfParams};
use accord_core::merkle::{self, leaf_hash, root_of};
use accord_core::note::{self, Checkpoint, Note, verifier_key};
use accord_core::proof::{self, Verified};
use accord_core::{
    Event, Hash32, Keypair, Map, Signature, SignatureMode, SignedEvent, Timestamp, Uuid, Value,
    chain, event, export, identity, jcs,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");
const MARK: &str = "accord-example:";

/// The example agent's Ed25519 seed (RFC 8032 secret key). Public test data.
const SEED: [u8; 32] = [1; 32];
/// The example witness's seed (`accord cosign` examples). Public test data.
const WITNESS_SEED: [u8; 32] = [2; 32];
/// POSIX time of the example cosignature (2026-11-24T10:16:00Z).
const COSIGNED_AT: u64 = 1_795_515_360;
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
    /// Leaf hashes of the two example events (leaf index = seq).
    leaves: Vec<Hash32>,
    /// The signed checkpoint of the two example events.
    checkpoint: Note,
    /// `accord-inclusion-proof/1` of the second event in that checkpoint.
    inclusion: Vec<u8>,
    /// `accord-consistency-proof/1` from the genesis-only log to that checkpoint.
    consistency: Vec<u8>,
    /// The example witness (`accord cosign`).
    witness: Keypair,
    /// The checkpoint, cosigned by the witness at [`COSIGNED_AT`].
    cosigned: Note,
    /// `accord-archive/1` of the example export, certified with the checkpoint.
    archive: Vec<u8>,
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
    // Checkpoints: the leaves are the events' canonical bytes in seq order.
    let leaves = vec![
        leaf_hash(genesis.canonical()),
        leaf_hash(second.canonical()),
    ];
    let checkpoint_at = |size: usize| {
        Checkpoint {
            origin: Checkpoint::origin_of(key.agent_id()),
            size: size as u64,
            root: root_of(&leaves[..size]),
        }
        .sign(&key)
        .expect("checkpoint")
    };
    let checkpoint = checkpoint_at(2);
    let inclusion = proof::inclusion_file(
        &checkpoint,
        &second,
        &merkle::inclusion_proof(&leaves, 1).expect("inclusion proof"),
        key.public(),
    );
    let consistency = proof::consistency_file(
        &checkpoint_at(1),
        &checkpoint,
        &merkle::consistency_proof(&leaves, 1).expect("consistency proof"),
        key.public(),
    );
    // A witness cosigns the checkpoint under its own key name.
    let witness = Keypair::from_seed(&WITNESS_SEED).expect("witness seed");
    let mut cosigned = checkpoint.clone();
    cosigned
        .cosign(
            &Checkpoint::origin_of(witness.agent_id()),
            &witness,
            COSIGNED_AT,
        )
        .expect("cosignature");
    // The archive: header, the export's lines, then the certification over
    // SHA-256 of every byte before it.
    let mut archive = archive::header_line(key.public(), Some("planner"));
    archive.push(b'\n');
    for line in [genesis.canonical(), second.canonical(), &seal_line] {
        archive.extend_from_slice(line);
        archive.push(b'\n');
    }
    let certification = archive::certification_line(
        &key,
        &Hash32::of(&archive),
        &checkpoint,
        &ts("2026-11-24T10:16:00.250000Z"),
    );
    archive.extend_from_slice(&certification);
    archive.push(b'\n');
    Examples {
        key,
        genesis,
        second,
        seal,
        seal_line,
        keyfile_none,
        keyfile_argon2id,
        leaves,
        checkpoint,
        inclusion,
        consistency,
        witness,
        cosigned,
        archive,
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
        "merkle",
        format!(
            "leaf 0         {}\nleaf 1         {}\nroot 1         {}\nroot 2         {}\nroot 2 base64  {}\nempty root     {}\n",
            x.leaves[0].to_hex(),
            x.leaves[1].to_hex(),
            root_of(&x.leaves[..1]).to_hex(),
            root_of(&x.leaves).to_hex(),
            STANDARD.encode(root_of(&x.leaves).0),
            merkle::empty_root().to_hex(),
        ),
    );
    let origin = Checkpoint::origin_of(x.key.agent_id());
    m.insert(
        "verifier-key",
        format!(
            "key name      {origin}\nkey ID        {}\nverifier key  {}\n",
            hex::encode(note::key_id(&origin, note::SIG_ED25519, pk)),
            verifier_key(&origin, pk),
        ),
    );
    m.insert("checkpoint", text(&x.checkpoint.to_bytes()).to_owned());
    // `accord prove` ends the file with a newline, as a block does.
    m.insert("inclusion-proof", format!("{}\n", text(&x.inclusion)));
    m.insert("consistency-proof", format!("{}\n", text(&x.consistency)));
    let wpk = x.witness.public();
    let wname = Checkpoint::origin_of(x.witness.agent_id());
    m.insert(
        "witness",
        format!(
            "seed (hex)           {}\npublic_key           {}\nagent_id             {}\nkey name             {wname}\ncosignature key ID   {}\ntime                 {COSIGNED_AT}\n",
            hex::encode(WITNESS_SEED),
            wpk.to_b64(),
            x.witness.agent_id(),
            hex::encode(note::key_id(&wname, note::SIG_COSIGNATURE_V1, wpk)),
        ),
    );
    m.insert(
        "cosigned-checkpoint",
        text(&x.cosigned.to_bytes()).to_owned(),
    );
    m.insert("archive", text(&x.archive).to_owned());
    m.insert(
        "limits",
        format!(
            "MAX_EVENT_BYTES      {}\nMAX_TYPE_LEN         {}\nMAX_SAFE_INTEGER     {}\nAGENT_ID_LEN         {}\nBATCH_SIZE           {}\nMAX_KEY_FILE_BYTES   {}\nKDF DEFAULT          m_cost_kib={} t_cost={} p_cost={}\nMAX_NOTE_BYTES       {}\nMAX_SIGNATURES       {}\nMAX_PROOF_BYTES      {}\n",
            event::MAX_EVENT_BYTES,
            event::MAX_TYPE_LEN,
            jcs::MAX_SAFE_INTEGER,
            identity::AGENT_ID_LEN,
            chain::BATCH_SIZE,
            keyfile::MAX_KEY_FILE_BYTES,
            KdfParams::DEFAULT.m_cost_kib,
            KdfParams::DEFAULT.t_cost,
            KdfParams::DEFAULT.p_cost,
            note::MAX_NOTE_BYTES,
            note::MAX_SIGNATURES,
            proof::MAX_PROOF_BYTES,
        ),
    );
    m.insert(
        "formats",
        format!(
            "event              {}\ngenesis            {}\nseal               {}\nkey file           {}\ninclusion proof    {}\nconsistency proof  {}\narchive header     {}\ncertification      {}\n",
            event::EVENT_FORMAT,
            event::GENESIS_TYPE,
            export::SEAL_FORMAT,
            keyfile::KEY_FORMAT,
            proof::INCLUSION_FORMAT,
            proof::CONSISTENCY_FORMAT,
            archive::ARCHIVE_FORMAT,
            archive::CERTIFICATION_FORMAT,
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

/// Re-derives the documented Merkle tree, checkpoint and verifier key from
/// the documented export with `sha2`, `base64` and `ed25519-dalek` only, the
/// way PROTOCOL.md 8 and 9 describe them, then opens the checkpoint and
/// verifies both proof files through the public API.
#[test]
fn documented_checkpoint_and_proofs_follow_the_documented_rules() {
    let blocks = extract_blocks(&read_doc());
    let key = Keypair::from_seed(&SEED).unwrap();
    let raw = key.public().to_bytes();
    let agent_id = field(doc_block(&blocks, "identity"), "agent_id");
    let sha = |parts: &[&[u8]]| -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    };

    // Leaves: SHA-256(0x00 ‖ event line); node: SHA-256(0x01 ‖ left ‖ right).
    let tree = doc_block(&blocks, "merkle");
    let export = doc_block(&blocks, "export");
    let lines: Vec<&str> = export.lines().take(2).collect();
    let leaf: Vec<[u8; 32]> = lines.iter().map(|l| sha(&[&[0], l.as_bytes()])).collect();
    assert_eq!(field(tree, "leaf 0"), hex::encode(leaf[0]));
    assert_eq!(field(tree, "leaf 1"), hex::encode(leaf[1]));
    assert_eq!(field(tree, "root 1"), hex::encode(leaf[0]));
    let root = sha(&[&[1], &leaf[0], &leaf[1]]);
    assert_eq!(field(tree, "root 2"), hex::encode(root));
    assert_eq!(field(tree, "root 2 base64"), STANDARD.encode(root));
    assert_eq!(field(tree, "empty root"), hex::encode(sha(&[])));

    // Key name, key ID = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4], verifier key.
    let vk_block = doc_block(&blocks, "verifier-key");
    let origin = format!("accord/agent/{agent_id}");
    assert_eq!(field(vk_block, "key name"), origin);
    let key_id = &sha(&[origin.as_bytes(), b"\n", &[0x01], &raw])[..4];
    assert_eq!(field(vk_block, "key ID"), hex::encode(key_id));
    let mut material = vec![0x01];
    material.extend_from_slice(&raw);
    assert_eq!(
        field(vk_block, "verifier key"),
        format!(
            "{origin}+{}+{}",
            hex::encode(key_id),
            STANDARD.encode(&material)
        )
    );

    // The note: three body lines, a blank line, one signature line whose
    // base64 is key ID ‖ Ed25519(body).
    let cp = doc_block(&blocks, "checkpoint");
    let body = format!("{origin}\n2\n{}\n", STANDARD.encode(root));
    let sig_line = cp
        .strip_prefix(&format!("{body}\n"))
        .expect("checkpoint body")
        .strip_suffix('\n')
        .expect("final newline");
    let sig_b64 = sig_line
        .strip_prefix(&format!("\u{2014} {origin} "))
        .expect("signature line");
    let sig = STANDARD.decode(sig_b64).unwrap();
    assert_eq!(sig.len(), 68);
    assert_eq!(&sig[..4], key_id);
    VerifyingKey::from_bytes(&raw)
        .unwrap()
        .verify_strict(
            body.as_bytes(),
            &Signature::from_bytes(&sig[4..].try_into().unwrap()),
        )
        .expect("checkpoint signature");

    // The same note through the public API.
    let (opened, _) = Checkpoint::open(cp.as_bytes(), key.public()).expect("Checkpoint::open");
    assert_eq!(
        opened,
        Checkpoint {
            origin: origin.clone(),
            size: 2,
            root: Hash32(root),
        }
    );
    let other = Keypair::from_seed(&[2; 32]).unwrap();
    assert!(Checkpoint::open(cp.as_bytes(), other.public()).is_err());

    // Both proof files verify, pinned to the example agent.
    let agent = accord_core::AgentId::parse(agent_id).unwrap();
    let inclusion = doc_block(&blocks, "inclusion-proof");
    match proof::verify_file(inclusion.as_bytes(), Some(&agent), None) {
        Ok(Verified::Inclusion { checkpoint, event }) => {
            assert_eq!(checkpoint, opened);
            assert_eq!(event.canonical(), lines[1].as_bytes());
        }
        other => panic!("inclusion proof: {other:?}"),
    }
    let Value::Object(file) = jcs::parse(inclusion.as_bytes()).unwrap() else {
        panic!("inclusion proof is not an object")
    };
    assert_eq!(file["proof"], Value::from(vec![STANDARD.encode(leaf[0])]));
    assert_eq!(file["checkpoint"], Value::from(cp));
    let consistency = doc_block(&blocks, "consistency-proof");
    match proof::verify_file(consistency.as_bytes(), Some(&agent), None) {
        Ok(Verified::Consistency { old, new }) => {
            assert_eq!((old.size, old.root), (1, Hash32(leaf[0])));
            assert_eq!(new, opened);
        }
        other => panic!("consistency proof: {other:?}"),
    }
    let Value::Object(file) = jcs::parse(consistency.as_bytes()).unwrap() else {
        panic!("consistency proof is not an object")
    };
    assert_eq!(file["proof"], Value::from(vec![STANDARD.encode(leaf[1])]));
    // Against a kept checkpoint of size 1 that is not the real one: a fork.
    let forged = Checkpoint {
        origin,
        size: 1,
        root: Hash32(sha(&[b"another history"])),
    }
    .sign(&key)
    .unwrap()
    .to_bytes();
    assert!(matches!(
        proof::verify_file(consistency.as_bytes(), Some(&agent), Some(&forged)),
        Err(proof::ProofError::Fork { .. })
    ));
}

/// Checks the documented cosignature (PROTOCOL.md 11) with `sha2`, `base64`
/// and `ed25519-dalek` only, then through `Note::verify_cosignature`.
#[test]
fn documented_cosignature_follows_the_documented_rules() {
    let blocks = extract_blocks(&read_doc());
    let w = doc_block(&blocks, "witness");
    let seed: [u8; 32] = hex::decode(field(w, "seed (hex)"))
        .unwrap()
        .try_into()
        .unwrap();
    let raw = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    assert_eq!(URL_SAFE_NO_PAD.encode(raw), field(w, "public_key"));
    let b58 = bs58::encode(Sha256::digest(raw))
        .with_alphabet(bs58::Alphabet::BITCOIN)
        .into_string();
    assert_eq!(&b58[..32], field(w, "agent_id"));
    let name = format!("accord/agent/{}", &b58[..32]);
    assert_eq!(field(w, "key name"), name);
    // Key ID of a cosignature: SHA-256(name ‖ 0x0A ‖ 0x04 ‖ key)[:4].
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0a, 0x04]);
    h.update(raw);
    let key_id = h.finalize()[..4].to_vec();
    assert_eq!(field(w, "cosignature key ID"), hex::encode(&key_id));
    let time: u64 = field(w, "time").parse().unwrap();

    // The cosigned note is the agent's note with one more line appended.
    let checkpoint = doc_block(&blocks, "checkpoint");
    let cosigned = doc_block(&blocks, "cosigned-checkpoint");
    let line = cosigned
        .strip_prefix(checkpoint)
        .expect("the agent's note, unchanged, comes first")
        .strip_suffix('\n')
        .unwrap();
    let b64 = line
        .strip_prefix(&format!("\u{2014} {name} "))
        .expect("cosignature line");
    let bytes = STANDARD.decode(b64).unwrap();
    assert_eq!(bytes.len(), 76);
    assert_eq!(&bytes[..4], key_id.as_slice());
    assert_eq!(u64::from_be_bytes(bytes[4..12].try_into().unwrap()), time);
    let body = &checkpoint[..checkpoint.find("\n\n").unwrap() + 1];
    let message = format!("cosignature/v1\ntime {time}\n{body}");
    VerifyingKey::from_bytes(&raw)
        .unwrap()
        .verify_strict(
            message.as_bytes(),
            &Signature::from_bytes(&bytes[12..].try_into().unwrap()),
        )
        .expect("cosignature");

    // Through the public API: the cosignature verifies, the agent's own
    // signature still does, and neither stands in for the other.
    let key = Keypair::from_seed(&SEED).unwrap();
    let witness = Keypair::from_seed(&seed).unwrap();
    let note = Note::parse(cosigned.as_bytes()).unwrap();
    assert_eq!(note.verify_cosignature(&name, witness.public()), Ok(time));
    assert!(Checkpoint::open(cosigned.as_bytes(), key.public()).is_ok());
    let origin = Checkpoint::origin_of(key.agent_id());
    assert!(note.verify_cosignature(&origin, key.public()).is_err());
    assert!(note.verify(&name, witness.public()).is_err());
}

/// Re-derives the documented archive (PROTOCOL.md 12): header, the export of
/// 5.4, and a certification whose digest, signature and checkpoint follow
/// the documented rules; then verifies it with `ArchiveVerifier`.
#[test]
fn documented_archive_follows_the_documented_rules() {
    let blocks = extract_blocks(&read_doc());
    let key = Keypair::from_seed(&SEED).unwrap();
    let archive = doc_block(&blocks, "archive");
    let lines: Vec<&str> = archive.lines().collect();
    assert_eq!(lines.len(), 5);
    let export: Vec<&str> = doc_block(&blocks, "export").lines().collect();
    assert_eq!(&lines[1..4], export.as_slice());
    let id = doc_block(&blocks, "identity");
    assert_eq!(
        lines[0],
        format!(
            r#"{{"agent_id":"{}","format":"accord-archive/1","name":"planner","public_key":"{}"}}"#,
            field(id, "agent_id"),
            field(id, "public_key")
        )
    );

    // The certification: canonical, signed over the JCS of its other
    // members, digest of every byte before it, the documented checkpoint.
    let cert = lines[4];
    let Value::Object(mut m) = jcs::parse(cert.as_bytes()).unwrap() else {
        panic!("certification is not an object")
    };
    assert_eq!(jcs::to_vec(&Value::Object(m.clone())), cert.as_bytes());
    let Some(Value::String(sig)) = m.remove("signature") else {
        panic!("no signature")
    };
    let sig: [u8; 64] = URL_SAFE_NO_PAD.decode(sig).unwrap().try_into().unwrap();
    VerifyingKey::from_bytes(&key.public().to_bytes())
        .unwrap()
        .verify_strict(
            &jcs::to_vec(&Value::Object(m.clone())),
            &Signature::from_bytes(&sig),
        )
        .expect("certification signature");
    let before = &archive[..archive.len() - cert.len() - 1];
    assert_eq!(
        m["archive_digest"],
        Value::from(hex::encode(Sha256::digest(before.as_bytes())))
    );
    assert_eq!(
        m["checkpoint"],
        Value::from(doc_block(&blocks, "checkpoint"))
    );
    assert_eq!(m["format"], Value::from("accord-certification/1"));
    assert_eq!(m.len(), 4);

    let verify = |text: &str, mode| {
        let mut v = ArchiveVerifier::new(mode);
        for line in text.lines() {
            v.push_line(line.as_bytes())?;
        }
        v.finish()
    };
    for mode in [SignatureMode::Batch, SignatureMode::Strict] {
        let r = verify(archive, mode).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(r.export.summary.events, 2);
        assert_eq!(r.name.as_deref(), Some("planner"));
        assert_eq!(
            (r.checkpoint.size, r.checkpoint.root),
            (2, root_of(&build().leaves))
        );
        assert_eq!(r.certified_at.as_str(), "2026-11-24T10:16:00.250000Z");
    }
    // A changed header byte, a missing certification, trailing content.
    let renamed = archive.replacen("\"planner\"", "\"plannes\"", 1);
    assert!(matches!(
        verify(&renamed, SignatureMode::Strict),
        Err(archive::ArchiveError::Certification { line: 5, .. })
    ));
    assert_eq!(
        verify(before, SignatureMode::Strict),
        Err(archive::ArchiveError::Truncated)
    );
    assert_eq!(
        verify(&format!("{archive}{{}}\n"), SignatureMode::Strict),
        Err(archive::ArchiveError::Trailing(6))
    );
}

/// Prints every checked block in Markdown, ready to paste into the document.
#[test]
#[ignore = "prints the examples for docs/PROTOCOL.md"]
fn print_examples() {
    for (name, content) in expected_blocks(&build()) {
        println!("```text {MARK}{name}\n{content}```\n");
    }
}
