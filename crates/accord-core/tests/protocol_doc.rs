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
use accord_core::audit::{self, ChainReader, TrustComponents};
use accord_core::export::{ExportVerifier, Seal};
use accord_core::handoff::{self, Expectation, LastAccepted, Receipt};
use accord_core::keyfile::{self, KdfParams};
use accord_core::merkle::{self, leaf_hash, root_of};
use accord_core::note::{self, Checkpoint, Note, verifier_key};
use accord_core::proof::{self, Verified};
use accord_core::session::{self, Descriptor, ProposalParams, Role};
use accord_core::signed::{self, SignedObject};
use accord_core::{
    AgentId, Event, Hash32, Keypair, Map, Signature, SignatureMode, SignedEvent, Timestamp, Uuid,
    Value, chain, event, export, identity, jcs,
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
/// The example session peer's seed (sections 15 and 16). Public test data.
const PEER_SEED: [u8; 32] = [3; 32];
/// The example handoff payload (section 16).
const HANDOFF_PAYLOAD: &[u8] = b"Q3 risk report: liquidity, FX exposure, vendor concentration.\n";
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
    /// The session and handoff examples (PROTOCOL.md 15 and 16).
    sessions: Sessions,
}

/// A session between the example agent (initiator, "planner") and the
/// peer (responder, "executor"), one interaction and one handoff, with both
/// chains as exports.
struct Sessions {
    peer: Keypair,
    proposal: SignedObject,
    response: SignedObject,
    confirm: SignedObject,
    data_given: Map<String, Value>,
    data: Map<String, Value>,
    descriptor: Descriptor,
    request: SignedObject,
    countersign: SignedObject,
    /// The initiator's interaction event.
    initiator_event: SignedEvent,
    receipt: SignedObject,
    /// The planner's export: the events of 3.4/3.5, then the session and
    /// the handoff, and a seal.
    initiator_export: Vec<u8>,
    /// The executor's export.
    responder_export: Vec<u8>,
}

/// Appends a non-genesis event to `chain`.
fn append(
    chain: &mut Vec<SignedEvent>,
    key: &Keypair,
    at: &str,
    nonce_byte: u8,
    event_type: &str,
    payload: Map<String, Value>,
) {
    let prev = chain.last().expect("a chain with a genesis");
    let ev = Event {
        agent_id: key.agent_id().clone(),
        seq: prev.seq() + 1,
        timestamp: ts(at),
        nonce: nonce(nonce_byte),
        event_type: event_type.to_owned(),
        payload,
        prev_hash: prev.hash(),
        public_key: None,
    }
    .sign(key)
    .expect("example event");
    chain.push(ev);
}

/// An export file of `chain`, sealed at `at`.
fn export_of(chain: &[SignedEvent], key: &Keypair, at: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for ev in chain {
        out.extend_from_slice(ev.canonical());
        out.push(b'\n');
    }
    let seal = Seal {
        agent_id: key.agent_id().clone(),
        count: chain.len() as u64,
        head_hash: chain.last().expect("events").hash(),
        exported_at: ts(at),
    };
    out.extend_from_slice(&seal.sign(key));
    out.push(b'\n');
    out
}

/// Builds the session examples through the public API, the way
/// `accord_store::participant` runs them, with fixed keys, times and nonces.
fn build_sessions(key: &Keypair, planner: Vec<SignedEvent>) -> Sessions {
    const SKEW: i64 = session::DEFAULT_MAX_SKEW_MICROS;
    let peer = Keypair::from_seed(&PEER_SEED).expect("peer seed");
    let (me, them) = (key.agent_id().clone(), peer.agent_id().clone());
    let session_id = nonce(0x55);
    let participants = [me.clone(), them.clone()];

    // Handshake.
    let proposal = session::propose(
        key,
        &ProposalParams {
            session_id,
            to: &them,
            participants: &participants,
            capabilities: &["delegate".into(), "review".into()],
            nonce: nonce(0x66),
            timestamp: ts("2026-11-24T10:20:00.000000Z"),
        },
    )
    .unwrap();
    let checked = session::check_proposal(
        proposal.canonical(),
        &them,
        &ts("2026-11-24T10:20:00.100000Z"),
        SKEW,
    )
    .expect("proposal");
    let response = session::respond(
        &peer,
        &checked,
        &["review".into(), "execute".into()],
        &ts("2026-11-24T10:20:00.100000Z"),
    )
    .unwrap();
    let resp = session::check_response(
        response.canonical(),
        &proposal,
        &ts("2026-11-24T10:20:00.150000Z"),
        SKEW,
    )
    .expect("response");
    let confirm = session::confirm(key, &resp, &ts("2026-11-24T10:20:00.150000Z")).unwrap();
    session::check_confirm(
        confirm.canonical(),
        &checked,
        &response,
        &ts("2026-11-24T10:20:00.200000Z"),
        SKEW,
    )
    .expect("confirm");

    let start = object(&format!(
        r#"{{"participants":["{me}","{them}"],"session_id":"{session_id}"}}"#
    ));
    let mut planner = planner;
    append(
        &mut planner,
        key,
        "2026-11-24T10:20:00.000000Z",
        0x31,
        session::SESSION_START_EVENT,
        start.clone(),
    );
    append(
        &mut planner,
        key,
        "2026-11-24T10:20:00.150000Z",
        0x32,
        session::HANDSHAKE_EVENT,
        session::handshake_payload(
            Role::Initiator,
            peer.public(),
            &proposal,
            &response,
            None,
            &resp.capabilities,
        ),
    );
    let mut executor = vec![
        Event::genesis(
            peer.public(),
            ts("2026-11-24T10:19:00.000000Z"),
            nonce(0x40),
            object(r#"{"name":"executor"}"#),
        )
        .sign(&peer)
        .expect("peer genesis"),
    ];
    append(
        &mut executor,
        &peer,
        "2026-11-24T10:20:00.200000Z",
        0x41,
        session::SESSION_START_EVENT,
        start,
    );
    append(
        &mut executor,
        &peer,
        "2026-11-24T10:20:00.200000Z",
        0x42,
        session::HANDSHAKE_EVENT,
        session::handshake_payload(
            Role::Responder,
            key.public(),
            &proposal,
            &response,
            Some(&confirm),
            &resp.capabilities,
        ),
    );

    // One co-signed interaction, planner -> executor.
    let data_given = object(r#"{"task":"analyse Q3","task_id":"T-1","pages":12}"#);
    let data = session::auto_hash(data_given.clone());
    let descriptor = Descriptor {
        session_id,
        initiator: me.clone(),
        responder: them.clone(),
        event_type: "task.delegation".into(),
        payload_hash: session::payload_hash(&data),
        order: 1,
    };
    let request = descriptor
        .request(key, &ts("2026-11-24T10:20:01.000000Z"))
        .unwrap();
    let checked = session::check_request(
        request.canonical(),
        &data,
        &them,
        key.public(),
        1,
        &ts("2026-11-24T10:20:01.050000Z"),
        SKEW,
    )
    .expect("request");
    append(
        &mut executor,
        &peer,
        "2026-11-24T10:20:01.050000Z",
        0x43,
        "task.delegation",
        session::interaction_payload(Role::Responder, &descriptor, &request, None, data.clone()),
    );
    let recorded = executor.last().expect("event");
    let countersign = session::countersign(
        &peer,
        &checked,
        recorded.seq(),
        &recorded.hash(),
        &ts("2026-11-24T10:20:01.050000Z"),
    )
    .unwrap();
    session::check_countersign(
        countersign.canonical(),
        &request,
        &descriptor,
        peer.public(),
    )
    .expect("countersign");
    append(
        &mut planner,
        key,
        "2026-11-24T10:20:01.100000Z",
        0x33,
        "task.delegation",
        session::interaction_payload(
            Role::Initiator,
            &descriptor,
            &request,
            Some(&countersign),
            data.clone(),
        ),
    );
    let initiator_event = planner.last().expect("event").clone();

    // One handoff, planner -> executor.
    let receipt = Receipt {
        handoff_id: nonce(0x77),
        parent_task_id: Some("T-1".into()),
        receiver: them.clone(),
        payload_sha256: Hash32::of(HANDOFF_PAYLOAD),
        payload_size: HANDOFF_PAYLOAD.len() as u64,
        seq: 1,
        timestamp: ts("2026-11-24T10:25:00.000000Z"),
        prev_receipt_hash: Hash32::ZERO,
    }
    .sign(key);
    let handoff_payload = |peer_member: &str, peer_id: &AgentId, sent: bool| {
        let mut p = Map::new();
        p.insert("handoff_id".into(), nonce(0x77).to_string().into());
        if sent {
            p.insert("parent_task_id".into(), "T-1".into());
        }
        p.insert(
            "payload_sha256".into(),
            Hash32::of(HANDOFF_PAYLOAD).to_hex().into(),
        );
        p.insert("payload_size".into(), (HANDOFF_PAYLOAD.len() as u64).into());
        p.insert("receipt".into(), receipt.to_value());
        p.insert("receipt_hash".into(), receipt.hash().to_hex().into());
        p.insert(peer_member.into(), peer_id.as_str().into());
        p.insert("seq".into(), 1.into());
        p
    };
    append(
        &mut planner,
        key,
        "2026-11-24T10:25:00.000000Z",
        0x34,
        handoff::SENT_EVENT,
        handoff_payload("receiver", &them, true),
    );
    append(
        &mut executor,
        &peer,
        "2026-11-24T10:25:02.000000Z",
        0x44,
        handoff::ACCEPTED_EVENT,
        handoff_payload("sender", &me, false),
    );
    Sessions {
        initiator_export: export_of(&planner, key, "2026-11-24T10:30:00.000000Z"),
        responder_export: export_of(&executor, &peer, "2026-11-24T10:30:00.000000Z"),
        peer,
        proposal,
        response,
        confirm,
        data_given,
        data,
        descriptor,
        request,
        countersign,
        initiator_event,
        receipt,
    }
}

/// The example trust components (PROTOCOL.md 17.3).
fn example_trust() -> TrustComponents {
    TrustComponents {
        integrity: 1.0,
        cosignature: Some(0.75),
        handoffs: None,
        age: 0.5,
        activity: 0.25,
    }
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
    let sessions = build_sessions(&key, vec![genesis.clone(), second.clone()]);
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
        sessions,
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
            "MAX_EVENT_BYTES      {}\nMAX_TYPE_LEN         {}\nMAX_SAFE_INTEGER     {}\nAGENT_ID_LEN         {}\nBATCH_SIZE           {}\nMAX_KEY_FILE_BYTES   {}\nKDF DEFAULT          m_cost_kib={} t_cost={} p_cost={}\nMAX_NOTE_BYTES       {}\nMAX_SIGNATURES       {}\nMAX_PROOF_BYTES      {}\nMAX_SIGNED_BYTES     {}\nSESSION MAX SKEW     {} s\nHANDOFF WINDOW       {} s\nHANDOFF FUTURE SKEW  {} s\n",
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
            signed::MAX_SIGNED_BYTES,
            session::DEFAULT_MAX_SKEW_MICROS / 1_000_000,
            handoff::DEFAULT_WINDOW_MICROS / 1_000_000,
            handoff::FUTURE_SKEW_MICROS / 1_000_000,
        ),
    );
    m.insert(
        "formats",
        format!(
            "event              {}\ngenesis            {}\nseal               {}\nkey file           {}\ninclusion proof    {}\nconsistency proof  {}\narchive header     {}\ncertification      {}\nhandshake proposal {}\nhandshake response {}\nhandshake confirm  {}\ninteraction        {}\ncountersignature   {}\nsession end        {}\nhandoff receipt    {}\n",
            event::EVENT_FORMAT,
            event::GENESIS_TYPE,
            export::SEAL_FORMAT,
            keyfile::KEY_FORMAT,
            proof::INCLUSION_FORMAT,
            proof::CONSISTENCY_FORMAT,
            archive::ARCHIVE_FORMAT,
            archive::CERTIFICATION_FORMAT,
            session::PROPOSAL,
            session::RESPONSE,
            session::CONFIRM,
            session::INTERACTION,
            session::COUNTERSIGN,
            session::END,
            handoff::RECEIPT,
        ),
    );
    session_blocks(&x.sessions, &mut m);
    m
}

/// Canonical JSON text of an object.
fn json_text(m: &Map<String, Value>) -> String {
    text(&jcs::to_vec(&Value::Object(m.clone()))).to_owned()
}

/// The blocks of PROTOCOL.md 15-17.
fn session_blocks(s: &Sessions, m: &mut BTreeMap<&'static str, String>) {
    let line = |o: &SignedObject| format!("{}\n", text(o.canonical()));
    m.insert(
        "peer-identity",
        format!(
            "seed (hex)   {}\npublic_key   {}\nagent_id     {}\n",
            hex::encode(PEER_SEED),
            s.peer.public().to_b64(),
            s.peer.agent_id(),
        ),
    );
    m.insert("handshake-proposal", line(&s.proposal));
    m.insert("handshake-response", line(&s.response));
    m.insert("handshake-confirm", line(&s.confirm));
    m.insert(
        "handshake-hashes",
        format!(
            "proposal_hash  {}\nresponse_hash  {}\n",
            s.proposal.hash(),
            s.response.hash()
        ),
    );
    m.insert(
        "interaction-data",
        format!(
            "given         {}\nrecorded      {}\npayload_hash  {}\n",
            json_text(&s.data_given),
            json_text(&s.data),
            session::payload_hash(&s.data),
        ),
    );
    let mut descriptor = s.request.members().clone();
    descriptor.remove("timestamp");
    m.insert(
        "interaction-descriptor",
        format!("{}\n", json_text(&descriptor)),
    );
    m.insert(
        "interaction-hashes",
        format!(
            "interaction_hash  {}\nrequest_hash      {}\n",
            s.descriptor.hash(),
            s.request.hash()
        ),
    );
    m.insert("interaction-request", line(&s.request));
    m.insert("countersign", line(&s.countersign));
    m.insert(
        "interaction-payload",
        format!("{}\n", json_text(&s.initiator_event.event().payload)),
    );
    m.insert("receipt", line(&s.receipt));
    m.insert(
        "receipt-hashes",
        format!(
            "payload_sha256  {}\npayload_size    {}\nreceipt_hash    {}\n",
            Hash32::of(HANDOFF_PAYLOAD),
            HANDOFF_PAYLOAD.len(),
            s.receipt.hash()
        ),
    );
    let t = example_trust();
    let show = |c: Option<f64>| c.map_or_else(|| "n/a".to_owned(), |v| v.to_string());
    m.insert(
        "trust",
        format!(
            "integrity    {}\ncosignature  {}\nhandoffs     {}\nage          {}\nactivity     {}\nscore        {}\n",
            t.integrity,
            show(t.cosignature),
            show(t.handoffs),
            t.age,
            t.activity,
            t.score(),
        ),
    );
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

/// Parses a documented signed object, checks that it is canonical and that
/// its signature verifies (with `ed25519-dalek` directly) over the JCS of
/// its other members under `raw_key`; returns its members.
fn check_signed_block(block: &str, raw_key: &[u8; 32]) -> Map<String, Value> {
    let line = block.strip_suffix('\n').expect("one line");
    let Value::Object(mut m) = jcs::parse(line.as_bytes()).unwrap() else {
        panic!("not an object: {line}")
    };
    assert_eq!(jcs::to_vec(&Value::Object(m.clone())), line.as_bytes());
    let Some(Value::String(sig)) = m.remove("signature") else {
        panic!("no signature: {line}")
    };
    let sig: [u8; 64] = URL_SAFE_NO_PAD.decode(sig).unwrap().try_into().unwrap();
    VerifyingKey::from_bytes(raw_key)
        .unwrap()
        .verify_strict(
            &jcs::to_vec(&Value::Object(m.clone())),
            &Signature::from_bytes(&sig),
        )
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    m
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Re-derives the documented handshake (PROTOCOL.md 15.2) with `sha2` and
/// `ed25519-dalek`, then runs the documented checks through the API.
#[test]
fn documented_handshake_follows_the_documented_rules() {
    let blocks = extract_blocks(&read_doc());
    let (i, r) = (
        Keypair::from_seed(&SEED).unwrap(),
        Keypair::from_seed(&PEER_SEED).unwrap(),
    );
    let peer = doc_block(&blocks, "peer-identity");
    assert_eq!(field(peer, "agent_id"), r.agent_id().as_str());
    assert_eq!(field(peer, "public_key"), r.public().to_b64());
    let p_text = doc_block(&blocks, "handshake-proposal");
    let r_text = doc_block(&blocks, "handshake-response");
    let c_text = doc_block(&blocks, "handshake-confirm");
    let p = check_signed_block(p_text, &i.public().to_bytes());
    let resp = check_signed_block(r_text, &r.public().to_bytes());
    let c = check_signed_block(c_text, &i.public().to_bytes());
    let hashes = doc_block(&blocks, "handshake-hashes");
    let p_hash = sha_hex(p_text.trim_end().as_bytes());
    let r_hash = sha_hex(r_text.trim_end().as_bytes());
    assert_eq!(field(hashes, "proposal_hash"), p_hash);
    assert_eq!(field(hashes, "response_hash"), r_hash);
    assert_eq!(resp["proposal_hash"], Value::from(p_hash));
    assert_eq!(c["response_hash"], Value::from(r_hash));
    assert_eq!(resp["nonce"], p["nonce"]);
    assert_eq!(resp["session_id"], p["session_id"]);
    assert_eq!(c["session_id"], p["session_id"]);
    assert_eq!(p["to"], resp["from"]);
    assert_eq!(resp["to"], p["from"]);
    assert_eq!(c["to"], resp["from"]);
    assert_eq!(resp["capabilities"], Value::from(vec!["review"]));

    // Through the API: accepted at the documented times, refused one
    // second outside the window, or by anyone it is not addressed to.
    let skew = session::DEFAULT_MAX_SKEW_MICROS;
    let at = |m: &Map<String, Value>, d: i64| {
        let t = ts(m["timestamp"].as_str().unwrap());
        Timestamp::from_unix_micros(t.unix_micros() + d).unwrap()
    };
    let checked = session::check_proposal(
        p_text.trim_end().as_bytes(),
        r.agent_id(),
        &at(&p, skew),
        skew,
    )
    .expect("proposal");
    assert!(matches!(
        session::check_proposal(
            p_text.trim_end().as_bytes(),
            r.agent_id(),
            &at(&p, skew + 1_000_000),
            skew
        ),
        Err(session::SessionError::Stale { .. })
    ));
    assert!(matches!(
        session::check_proposal(p_text.trim_end().as_bytes(), i.agent_id(), &at(&p, 0), skew),
        Err(session::SessionError::NotForMe { .. })
    ));
    let proposal = SignedObject::parse(p_text.trim_end().as_bytes(), session::PROPOSAL).unwrap();
    session::check_response(r_text.trim_end().as_bytes(), &proposal, &at(&resp, 0), skew)
        .expect("response");
    let response = SignedObject::parse(r_text.trim_end().as_bytes(), session::RESPONSE).unwrap();
    session::check_confirm(
        c_text.trim_end().as_bytes(),
        &checked,
        &response,
        &at(&c, 0),
        skew,
    )
    .expect("confirm");
}

/// Re-derives the documented interaction (PROTOCOL.md 15.4): auto-hashing,
/// payload_hash, descriptor, interaction_hash, request and countersignature.
#[test]
fn documented_interaction_follows_the_documented_rules() {
    let blocks = extract_blocks(&read_doc());
    let (i, r) = (
        Keypair::from_seed(&SEED).unwrap(),
        Keypair::from_seed(&PEER_SEED).unwrap(),
    );
    let data = doc_block(&blocks, "interaction-data");
    let Value::Object(given) = jcs::parse(field(data, "given").as_bytes()).unwrap() else {
        panic!("given")
    };
    let recorded = field(data, "recorded");
    // Members ending in _hash or _id are kept; every other value becomes the
    // hex SHA-256 of its UTF-8 text (strings) or of its canonical JSON.
    for (k, v) in &given {
        let Value::Object(rec) = jcs::parse(recorded.as_bytes()).unwrap() else {
            panic!("recorded")
        };
        let want = if k.ends_with("_id") || k.ends_with("_hash") {
            v.clone()
        } else if let Value::String(s) = v {
            Value::from(sha_hex(s.as_bytes()))
        } else {
            Value::from(sha_hex(&jcs::to_vec(v)))
        };
        assert_eq!(rec[k], want, "member {k}");
    }
    assert_eq!(field(data, "payload_hash"), sha_hex(recorded.as_bytes()));

    let descriptor = doc_block(&blocks, "interaction-descriptor").trim_end();
    let Value::Object(d) = jcs::parse(descriptor.as_bytes()).unwrap() else {
        panic!("descriptor")
    };
    assert_eq!(
        jcs::to_vec(&Value::Object(d.clone())),
        descriptor.as_bytes()
    );
    assert_eq!(d.len(), 7);
    assert_eq!(d["payload_hash"], Value::from(field(data, "payload_hash")));
    let hashes = doc_block(&blocks, "interaction-hashes");
    let ih = sha_hex(descriptor.as_bytes());
    assert_eq!(field(hashes, "interaction_hash"), ih);

    // The request is the descriptor plus a timestamp, signed by the initiator.
    let req_text = doc_block(&blocks, "interaction-request");
    let mut req = check_signed_block(req_text, &i.public().to_bytes());
    assert!(req.remove("timestamp").is_some());
    assert_eq!(req, d);
    let rh = sha_hex(req_text.trim_end().as_bytes());
    assert_eq!(field(hashes, "request_hash"), rh);

    // The countersignature names both hashes, signed by the responder.
    let cs_text = doc_block(&blocks, "countersign");
    let cs = check_signed_block(cs_text, &r.public().to_bytes());
    assert_eq!(cs["interaction_hash"], Value::from(ih.clone()));
    assert_eq!(cs["request_hash"], Value::from(rh));
    assert_eq!(cs["initiator"], d["initiator"]);
    assert_eq!(cs["responder"], d["responder"]);

    // The initiator's event payload carries data, request and countersign.
    let Value::Object(payload) = jcs::parse(
        doc_block(&blocks, "interaction-payload")
            .trim_end()
            .as_bytes(),
    )
    .unwrap() else {
        panic!("payload")
    };
    assert_eq!(payload["data"].to_string(), recorded);
    let inter = payload["interaction"].as_object().unwrap();
    assert_eq!(inter["interaction_hash"], Value::from(ih));
    assert_eq!(inter["role"], Value::from("initiator"));
    assert_eq!(inter["peer"], d["responder"]);
    assert_eq!(inter["request"].to_string(), req_text.trim_end());
    assert_eq!(inter["countersign"].to_string(), cs_text.trim_end());
    assert_eq!(
        inter["peer_signature"],
        jcs::parse(cs_text.trim_end().as_bytes()).unwrap()["signature"]
    );
}

/// Re-derives the documented receipt (PROTOCOL.md 16) and runs the
/// receiver's checks on it.
#[test]
fn documented_receipt_follows_the_documented_rules() {
    let blocks = extract_blocks(&read_doc());
    let (s, r) = (
        Keypair::from_seed(&SEED).unwrap(),
        Keypair::from_seed(&PEER_SEED).unwrap(),
    );
    let text = doc_block(&blocks, "receipt");
    let m = check_signed_block(text, &s.public().to_bytes());
    let hashes = doc_block(&blocks, "receipt-hashes");
    assert_eq!(field(hashes, "payload_sha256"), sha_hex(HANDOFF_PAYLOAD));
    assert_eq!(m["payload_sha256"], Value::from(sha_hex(HANDOFF_PAYLOAD)));
    assert_eq!(m["payload_size"], Value::from(HANDOFF_PAYLOAD.len()));
    assert_eq!(
        field(hashes, "receipt_hash"),
        sha_hex(text.trim_end().as_bytes())
    );
    assert_eq!(m["prev_receipt_hash"], Value::from("0".repeat(64)));
    assert_eq!(m["seq"], Value::from(1));

    let at = ts(m["timestamp"].as_str().unwrap()).unix_micros();
    let now = Timestamp::from_unix_micros(at + 60_000_000).unwrap();
    let exp = |last: Option<LastAccepted>, payload: &[u8]| Expectation {
        me: r.agent_id(),
        sender: Some(s.agent_id()),
        payload: (Hash32::of(payload), payload.len() as u64),
        now: &now,
        window_micros: handoff::DEFAULT_WINDOW_MICROS,
        last,
    };
    let (obj, sender) = handoff::sender_of(text.trim_end().as_bytes()).unwrap();
    assert_eq!(&sender, s.agent_id());
    let ok = handoff::verify(obj.clone(), &exp(None, HANDOFF_PAYLOAD)).expect("accepted");
    assert_eq!(ok.warning, None);
    assert!(matches!(
        handoff::verify(obj.clone(), &exp(None, b"another payload")),
        Err(handoff::HandoffError::PayloadMismatch { .. })
    ));
    let last = LastAccepted {
        seq: 1,
        hash: obj.hash(),
    };
    assert!(matches!(
        handoff::verify(obj, &exp(Some(last), HANDOFF_PAYLOAD)),
        Err(handoff::HandoffError::Replay { .. })
    ));
}

/// The two example chains (the planner's and the executor's, with the
/// documented session and handoff in them) verify and audit clean; the
/// documented trust score follows the documented formula.
#[test]
fn documented_session_chains_audit_clean() {
    let x = build();
    let read = |label: &str, bytes: &[u8]| {
        let mut r = ChainReader::new(label);
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            r.push_line(line);
        }
        r.finish()
    };
    let planner = read("planner.jsonl", &x.sessions.initiator_export);
    let executor = read("executor.jsonl", &x.sessions.responder_export);
    let report = audit::audit(&[planner.clone(), executor]);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert!(report.clean());
    // One handshake and one interaction, matched from both sides.
    assert_eq!(report.matched, 4);
    for t in &report.trust {
        assert_eq!(t.components.cosignature, Some(1.0));
    }
    // The planner's chain alone: its records have no peer chain to match.
    let alone = audit::audit(&[planner]);
    assert!(alone.clean());
    assert_eq!(alone.matched, 0);
    assert!(alone.findings.iter().all(|f| f.kind == "peer_chain_absent"));
    assert_eq!(alone.findings.len(), 2);

    // score = integrity × Σ wᵢcᵢ / Σ wᵢ over the components with data.
    let blocks = extract_blocks(&read_doc());
    let t = doc_block(&blocks, "trust");
    let num: f64 = 0.4 * 0.75 + 0.15 * 0.5 + 0.15 * 0.25;
    let den: f64 = 0.4 + 0.15 + 0.15;
    assert_eq!(field(t, "handoffs"), "n/a");
    let score: f64 = field(t, "score").parse().unwrap();
    assert!((score - num / den).abs() < 1e-12);
    assert_eq!(score, example_trust().score());
}

/// Prints every checked block in Markdown, ready to paste into the document.
#[test]
#[ignore = "prints the examples for docs/PROTOCOL.md"]
fn print_examples() {
    for (name, content) in expected_blocks(&build()) {
        println!("```text {MARK}{name}\n{content}```\n");
    }
}
