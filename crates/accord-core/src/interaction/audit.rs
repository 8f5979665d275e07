//! Cross-chain audit and trust score (docs/PROTOCOL.md §17).
//!
//! An auditor holding only exported chains verifies each one, then matches
//! every co-signed record (handshakes, interactions, handoffs) with its
//! counterpart in the peer's chain: same interaction hash, peer signatures
//! valid under the key of the *other* chain's genesis, the countersignature
//! naming the event the peer really recorded, consistent order. What does
//! not match becomes a [`Finding`].
//!
//! Memory: a chain's events are verified as a stream; only the co-signed
//! records and per-seq event hashes (for fork detection) are kept.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::export::{ExportError, ExportVerifier};
use crate::handoff;
use crate::hash::Hash32;
use crate::identity::{AgentId, PublicKey};
use crate::session::{self, Descriptor, Role};
use crate::signed::SignedObject;
use crate::{Map, SignatureMode, SignedEvent, Value};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For information (e.g. a peer whose chain was not supplied).
    Info,
    /// Suspicious but not proof of tampering (e.g. a handoff never accepted).
    Warning,
    /// The chains are not consistent: the audit fails.
    Error,
}

/// One thing the audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// Stable machine-readable kind, e.g. `missing_counterpart`.
    pub kind: &'static str,
    /// The chain file the finding is about.
    pub chain: String,
    /// Its agent, when known.
    pub agent_id: Option<String>,
    /// The event, when the finding is about one.
    pub seq: Option<u64>,
    /// The peer involved, if any.
    pub peer: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

#[derive(Debug, Clone)]
struct Interaction {
    seq: u64,
    event_hash: Hash32,
    event_type: String,
    role: Role,
    session: String,
    peer: AgentId,
    interaction_hash: Hash32,
    order: u64,
    data_hash: Hash32,
    request: Option<SignedObject>,
    countersign: Option<SignedObject>,
}

#[derive(Debug, Clone)]
struct Handshake {
    seq: u64,
    role: Role,
    session: String,
    peer: AgentId,
    peer_key: PublicKey,
    proposal: Option<SignedObject>,
    response: Option<SignedObject>,
    confirm: Option<SignedObject>,
}

/// A chain read by [`ChainReader`].
#[derive(Debug, Clone)]
pub struct ChainRecord {
    label: String,
    agent: Option<AgentId>,
    key: Option<PublicKey>,
    verdict: Result<u64, ExportError>,
    event_hashes: Vec<Hash32>,
    first_micros: i64,
    last_micros: i64,
    interactions: Vec<Interaction>,
    handshakes: Vec<Handshake>,
    sent: Vec<(u64, Hash32, AgentId)>,
    accepted: Vec<(u64, Hash32, AgentId)>,
    /// (hash of the receipt bytes, claimed sender) of each receipt this
    /// agent quarantined.
    quarantined: Vec<(Hash32, AgentId)>,
    /// Records that are not what their type says, by seq.
    malformed: Vec<(u64, String)>,
    external: u64,
}

impl ChainRecord {
    /// The file label.
    pub fn label(&self) -> &str {
        &self.label
    }
    /// The agent, once the genesis was read.
    pub fn agent(&self) -> Option<&AgentId> {
        self.agent.as_ref()
    }
    /// Whether the chain verified, with its event count.
    pub fn verdict(&self) -> &Result<u64, ExportError> {
        &self.verdict
    }
}

/// Reads one exported chain line by line for the audit.
pub struct ChainReader {
    verifier: ExportVerifier,
    rec: ChainRecord,
    failed: bool,
}

impl ChainReader {
    /// A reader for the chain file named `label`.
    pub fn new(label: &str) -> Self {
        ChainReader {
            verifier: ExportVerifier::new(SignatureMode::Batch, true),
            rec: ChainRecord {
                label: label.to_owned(),
                agent: None,
                key: None,
                verdict: Ok(0),
                event_hashes: Vec::new(),
                first_micros: 0,
                last_micros: 0,
                interactions: Vec::new(),
                handshakes: Vec::new(),
                sent: Vec::new(),
                accepted: Vec::new(),
                quarantined: Vec::new(),
                malformed: Vec::new(),
                external: 0,
            },
            failed: false,
        }
    }

    /// Feeds one line (without its terminator). After the first failure
    /// the rest is ignored: nothing after a bad event can be trusted.
    pub fn push_line(&mut self, line: &[u8]) {
        if self.failed {
            return;
        }
        if let Err(e) = self.verifier.push_line(line) {
            self.fail(e);
            return;
        }
        if let Ok(ev) = SignedEvent::from_canonical(line) {
            self.record(&ev);
        }
    }

    /// Feeds a line that was too long to read.
    pub fn push_oversized(&mut self, len: usize) {
        if !self.failed {
            let e = self.verifier.push_oversized(len);
            self.fail(e);
        }
    }

    fn fail(&mut self, e: ExportError) {
        self.failed = true;
        self.rec.verdict = Err(e);
    }

    fn record(&mut self, ev: &SignedEvent) {
        let e = ev.event();
        if e.seq == 0 {
            self.rec.agent = Some(e.agent_id.clone());
            self.rec.key = e.public_key;
            self.rec.first_micros = e.timestamp.unix_micros();
        }
        self.rec.last_micros = e.timestamp.unix_micros();
        self.rec.event_hashes.push(ev.hash());
        let p = &e.payload;
        // Anything that carries an interaction object is read as one,
        // whatever its type, so a record cannot hide from matching by
        // taking a type the audit reads otherwise.
        if p.get("interaction").is_some_and(Value::is_object) {
            if session::is_reserved_type(&e.event_type) {
                self.malformed(e.seq, "an interaction record uses a reserved event type");
            }
            match interaction_of(ev, p) {
                Some(i) => self.rec.interactions.push(i),
                None => self.malformed(e.seq, "unreadable interaction record"),
            }
            return;
        }
        match e.event_type.as_str() {
            session::HANDSHAKE_EVENT => match handshake_of(e.seq, p) {
                Some(h) => self.rec.handshakes.push(h),
                None => self.malformed(e.seq, "unreadable handshake record"),
            },
            handoff::SENT_EVENT => match self.receipt_of(&e.agent_id, p, true) {
                Ok((hash, receiver)) => self.rec.sent.push((e.seq, hash, receiver)),
                Err(why) => self.malformed(e.seq, &why),
            },
            handoff::ACCEPTED_EVENT => match self.receipt_of(&e.agent_id, p, false) {
                Ok((hash, sender)) => self.rec.accepted.push((e.seq, hash, sender)),
                Err(why) => self.malformed(e.seq, &why),
            },
            handoff::QUARANTINED_EVENT => {
                let sender = p
                    .get("sender")
                    .and_then(Value::as_str)
                    .and_then(|s| AgentId::parse(s).ok());
                let hash = p
                    .get("receipt_sha256")
                    .and_then(Value::as_str)
                    .and_then(Hash32::from_hex);
                if let (Some(sender), Some(hash)) = (sender, hash) {
                    self.rec.quarantined.push((hash, sender));
                }
            }
            session::EXTERNAL_EVENT => self.rec.external += 1,
            _ => {}
        }
    }

    fn malformed(&mut self, seq: u64, why: &str) {
        self.rec.malformed.push((seq, why.to_owned()));
    }

    /// Checks the receipt a `handoff.sent` (`sent`) or `handoff.accepted`
    /// event embeds: its hash is the event's `receipt_hash`, it is signed
    /// by its sender (whose key derives its id), this chain is its sender
    /// (sent) or receiver (accepted), and the event names the same peer and
    /// payload. Returns the receipt hash and the peer.
    fn receipt_of(
        &self,
        me: &AgentId,
        p: &Map<String, Value>,
        sent: bool,
    ) -> Result<(Hash32, AgentId), String> {
        let r = obj(p, "receipt", handoff::RECEIPT).ok_or("the event lacks its signed receipt")?;
        let named = p
            .get("receipt_hash")
            .and_then(Value::as_str)
            .and_then(Hash32::from_hex);
        if named != Some(r.hash()) {
            return Err("receipt_hash is not the hash of the receipt the event holds".into());
        }
        let sender = r.agent_id("sender").map_err(|e| e.to_string())?;
        let receiver = r.agent_id("receiver").map_err(|e| e.to_string())?;
        let key = r.public_key("sender_key").map_err(|e| e.to_string())?;
        if sender.check_key(&key).is_err() || !r.verify(&key) {
            return Err("the receipt's signature does not verify under its sender's key".into());
        }
        let (mine, peer, peer_member) = if sent {
            (&sender, receiver, "receiver")
        } else {
            (&receiver, sender, "sender")
        };
        if mine != me {
            return Err(format!(
                "the receipt's {} is another agent",
                if sent { "sender" } else { "receiver" }
            ));
        }
        if p.get(peer_member).and_then(Value::as_str) != Some(peer.as_str())
            || p.get("payload_sha256") != r.members().get("payload_sha256")
        {
            return Err("the event and its receipt name different peers or payloads".into());
        }
        Ok((r.hash(), peer))
    }

    /// Finishes the chain (settles signatures, checks the seal).
    pub fn finish(mut self) -> ChainRecord {
        if !self.failed {
            match self.verifier.finish() {
                Ok(report) => self.rec.verdict = Ok(report.summary.events),
                Err(e) => self.rec.verdict = Err(e),
            }
        }
        self.rec
    }
}

fn obj(p: &Map<String, Value>, k: &str, format: &'static str) -> Option<SignedObject> {
    SignedObject::from_value(p.get(k)?.clone(), format).ok()
}

fn role_of(p: &Map<String, Value>) -> Option<Role> {
    match p.get("role")?.as_str()? {
        "initiator" => Some(Role::Initiator),
        "responder" => Some(Role::Responder),
        _ => None,
    }
}

fn handshake_of(seq: u64, p: &Map<String, Value>) -> Option<Handshake> {
    let peer = AgentId::parse(p.get("peer")?.as_str()?).ok()?;
    let peer_key = PublicKey::from_b64(p.get("peer_public_key")?.as_str()?).ok()?;
    peer.check_key(&peer_key).ok()?;
    Some(Handshake {
        seq,
        role: role_of(p)?,
        session: p.get("session_id")?.as_str()?.to_owned(),
        peer,
        peer_key,
        proposal: obj(p, "proposal", session::PROPOSAL),
        response: obj(p, "response", session::RESPONSE),
        confirm: obj(p, "confirm", session::CONFIRM),
    })
}

fn interaction_of(ev: &SignedEvent, p: &Map<String, Value>) -> Option<Interaction> {
    let i = p.get("interaction")?.as_object()?;
    let data = p.get("data")?.as_object()?;
    Some(Interaction {
        seq: ev.seq(),
        event_hash: ev.hash(),
        event_type: ev.event().event_type.clone(),
        role: role_of(i)?,
        session: i.get("session_id")?.as_str()?.to_owned(),
        peer: AgentId::parse(i.get("peer")?.as_str()?).ok()?,
        interaction_hash: Hash32::from_hex(i.get("interaction_hash")?.as_str()?)?,
        order: i.get("order")?.as_u64()?,
        data_hash: session::payload_hash(data),
        request: obj(i, "request", session::INTERACTION),
        countersign: obj(i, "countersign", session::COUNTERSIGN),
    })
}

/// The audit's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Per chain: label, agent, verified, events.
    pub chains: Vec<ChainSummary>,
    /// Co-signed records matched across chains.
    pub matched: u64,
    /// Everything that did not match, by chain.
    pub findings: Vec<Finding>,
    /// Trust score per agent whose chain verified.
    pub trust: Vec<Trust>,
}

impl Report {
    /// No error-severity finding.
    pub fn clean(&self) -> bool {
        self.findings.iter().all(|f| f.severity != Severity::Error)
    }
}

/// One chain in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ChainSummary {
    /// The file.
    pub chain: String,
    /// Its agent.
    pub agent_id: Option<String>,
    /// Whether it verified.
    pub verified: bool,
    /// Events read (all of them when verified).
    pub events: u64,
    /// Co-signed records (handshakes + interactions) in it.
    pub cosigned: u64,
}

/// Trust score of one agent (docs/PROTOCOL.md §17.3).
#[derive(Debug, Clone, Serialize)]
pub struct Trust {
    /// The agent.
    pub agent_id: String,
    /// The score in [0, 1].
    pub score: f64,
    /// The components, each in [0, 1], `None` when there is no data.
    pub components: TrustComponents,
}

/// The named components of the trust score.
#[derive(Debug, Clone, Serialize)]
pub struct TrustComponents {
    /// 1 when the chain verifies, else 0 (and the score is 0).
    pub integrity: f64,
    /// Co-signed records matched in a supplied peer chain / co-signed
    /// records whose peer chain was supplied.
    pub cosignature: Option<f64>,
    /// Of the receipts this agent's own chain records as sent, those the
    /// supplied receivers' chains decided on: accepted / (accepted +
    /// quarantined).
    pub handoffs: Option<f64>,
    /// min(1, days from genesis to last event / 30).
    pub age: f64,
    /// min(1, events / 1000).
    pub activity: f64,
}

/// Weights of the components other than integrity; components without
/// data are left out and the rest renormalised.
pub const WEIGHTS: [(&str, f64); 4] = [
    ("cosignature", 0.4),
    ("handoffs", 0.3),
    ("age", 0.15),
    ("activity", 0.15),
];

impl TrustComponents {
    /// `integrity × Σ wᵢcᵢ / Σ wᵢ` over the components that have data.
    pub fn score(&self) -> f64 {
        let parts = [
            self.cosignature,
            self.handoffs,
            Some(self.age),
            Some(self.activity),
        ];
        let (mut num, mut den) = (0.0, 0.0);
        for (c, (_, w)) in parts.iter().zip(WEIGHTS) {
            if let Some(c) = c {
                num += w * c;
                den += w;
            }
        }
        if den == 0.0 {
            0.0
        } else {
            self.integrity * num / den
        }
    }
}

struct Ctx<'a> {
    findings: Vec<Finding>,
    by_agent: HashMap<&'a AgentId, &'a ChainRecord>,
}

impl Ctx<'_> {
    fn add(
        &mut self,
        severity: Severity,
        kind: &'static str,
        rec: &ChainRecord,
        seq: Option<u64>,
        peer: Option<&AgentId>,
        message: String,
    ) {
        self.findings.push(Finding {
            severity,
            kind,
            chain: rec.label.clone(),
            agent_id: rec.agent.as_ref().map(|a| a.to_string()),
            seq,
            peer: peer.map(|p| p.to_string()),
            message,
        });
    }
}

/// Audits the chains read by [`ChainReader`]s.
pub fn audit(chains: &[ChainRecord]) -> Report {
    let mut ctx = Ctx {
        findings: Vec::new(),
        by_agent: HashMap::new(),
    };
    for rec in chains {
        if let Err(e) = &rec.verdict {
            let seq = match e {
                ExportError::Chain { failure, .. } => Some(failure.seq),
                _ => None,
            };
            ctx.add(
                Severity::Error,
                "chain_invalid",
                rec,
                seq,
                None,
                format!("chain does not verify: {e}"),
            );
            continue;
        }
        let Some(agent) = rec.agent.as_ref() else {
            continue;
        };
        match ctx.by_agent.get(agent) {
            None => {
                ctx.by_agent.insert(agent, rec);
            }
            Some(other) => {
                let (short, long) = if other.event_hashes.len() <= rec.event_hashes.len() {
                    (*other, rec)
                } else {
                    (rec, *other)
                };
                if let Some(seq) = short
                    .event_hashes
                    .iter()
                    .zip(&long.event_hashes)
                    .position(|(a, b)| a != b)
                {
                    ctx.add(
                        Severity::Error,
                        "fork",
                        rec,
                        Some(seq as u64),
                        None,
                        format!(
                            "{} and {} are two different histories of agent {agent}: they differ from seq {seq}",
                            short.label, long.label
                        ),
                    );
                } else if rec.event_hashes.len() > other.event_hashes.len() {
                    // Two exports of one history: audit the longer one.
                    ctx.by_agent.insert(agent, rec);
                }
            }
        }
    }
    let mut matched = 0u64;
    let mut coverage: HashMap<&AgentId, (u64, u64)> = HashMap::new();
    let agents: BTreeMap<&AgentId, &ChainRecord> =
        ctx.by_agent.iter().map(|(a, r)| (*a, *r)).collect();
    for (agent, rec) in &agents {
        for (seq, why) in &rec.malformed {
            ctx.add(
                Severity::Error,
                "malformed",
                rec,
                Some(*seq),
                None,
                why.clone(),
            );
        }
        let key = rec.key.as_ref();
        for h in &rec.handshakes {
            let ok = check_handshake(&mut ctx, rec, key, h);
            let cov = coverage.entry(agent).or_default();
            if ctx.by_agent.contains_key(&h.peer) {
                cov.1 += 1;
                if ok {
                    cov.0 += 1;
                    matched += 1;
                }
            }
        }
        let mut last_order: HashMap<(&str, &AgentId, Role), u64> = HashMap::new();
        for i in &rec.interactions {
            let prev = last_order.insert((&i.session, &i.peer, i.role), i.order);
            if prev.is_some_and(|p| i.order <= p) {
                ctx.add(
                    Severity::Error,
                    "order",
                    rec,
                    Some(i.seq),
                    Some(&i.peer),
                    format!(
                        "interaction order {} with {} in session {} comes after order {}",
                        i.order,
                        i.peer,
                        i.session,
                        prev.unwrap_or(0)
                    ),
                );
            }
            let ok = check_interaction(&mut ctx, rec, i);
            let cov = coverage.entry(agent).or_default();
            if ctx.by_agent.contains_key(&i.peer) {
                cov.1 += 1;
                if ok {
                    cov.0 += 1;
                    matched += 1;
                }
            }
        }
        check_handoffs(&mut ctx, rec);
    }
    // Handoffs count for their sender, as the supplied receivers' chains
    // record them — but only receipts the sender's own chain says it sent
    // to that receiver: a receiver cannot invent handoffs to move a score.
    let mut handoffs: HashMap<&AgentId, (u64, u64)> = HashMap::new();
    for (receiver, rec) in &agents {
        let sent_to_me = |sender: &AgentId, hash: &Hash32| {
            agents
                .get(sender)
                .is_some_and(|s| s.sent.iter().any(|(_, h, to)| h == hash && to == *receiver))
        };
        for (_, hash, sender) in &rec.accepted {
            if sent_to_me(sender, hash) {
                handoffs.entry(sender).or_default().0 += 1;
            }
        }
        for (hash, sender) in &rec.quarantined {
            if sent_to_me(sender, hash) {
                handoffs.entry(sender).or_default().1 += 1;
            }
        }
    }
    let forked: Vec<String> = ctx
        .findings
        .iter()
        .filter(|f| f.kind == "fork")
        .filter_map(|f| f.agent_id.clone())
        .collect();
    let trust = agents
        .iter()
        .map(|(agent, rec)| {
            let (ok, total) = coverage.get(agent).copied().unwrap_or((0, 0));
            let (accepted, quarantined) = handoffs.get(agent).copied().unwrap_or((0, 0));
            let decided = accepted + quarantined;
            let components = TrustComponents {
                // Two signed histories of one agent: nothing it signed can
                // be relied on.
                integrity: if forked.iter().any(|f| f == agent.as_str()) {
                    0.0
                } else {
                    1.0
                },
                cosignature: (total > 0).then(|| ok as f64 / total as f64),
                handoffs: (decided > 0).then(|| accepted as f64 / decided as f64),
                age: ((rec.last_micros - rec.first_micros) as f64 / (30.0 * 86_400e6))
                    .clamp(0.0, 1.0),
                activity: (rec.event_hashes.len() as f64 / 1000.0).min(1.0),
            };
            Trust {
                agent_id: agent.to_string(),
                score: components.score(),
                components,
            }
        })
        .collect::<Vec<_>>();
    let mut trust = trust;
    for rec in chains.iter().filter(|r| r.verdict.is_err()) {
        if let Some(agent) = &rec.agent
            && !agents.contains_key(agent)
            && !trust.iter().any(|t: &Trust| t.agent_id == agent.as_str())
        {
            let components = TrustComponents {
                integrity: 0.0,
                cosignature: None,
                handoffs: None,
                age: 0.0,
                activity: 0.0,
            };
            trust.push(Trust {
                agent_id: agent.to_string(),
                score: 0.0,
                components,
            });
        }
    }
    let chains = chains
        .iter()
        .map(|r| ChainSummary {
            chain: r.label.clone(),
            agent_id: r.agent.as_ref().map(|a| a.to_string()),
            verified: r.verdict.is_ok(),
            events: r.event_hashes.len() as u64,
            cosigned: (r.handshakes.len() + r.interactions.len()) as u64,
        })
        .collect();
    let mut findings = ctx.findings;
    findings.sort_by(|a, b| (b.severity, &a.chain, a.seq).cmp(&(a.severity, &b.chain, b.seq)));
    Report {
        chains,
        matched,
        findings,
        trust,
    }
}

fn check_handshake(
    ctx: &mut Ctx<'_>,
    rec: &ChainRecord,
    key: Option<&PublicKey>,
    h: &Handshake,
) -> bool {
    let (Some(proposal), Some(response)) = (&h.proposal, &h.response) else {
        ctx.add(
            Severity::Error,
            "malformed",
            rec,
            Some(h.seq),
            Some(&h.peer),
            "handshake event lacks its signed proposal or response".into(),
        );
        return false;
    };
    // The handshake must be between this chain's agent and the peer it
    // names, in the role it states.
    let me = rec.agent.as_ref();
    let (init_id, resp_id) = match h.role {
        Role::Initiator => (me, Some(&h.peer)),
        Role::Responder => (Some(&h.peer), me),
    };
    let ids_ok = proposal.agent_id("from").ok().as_ref() == init_id
        && proposal.agent_id("to").ok().as_ref() == resp_id
        && response.agent_id("from").ok().as_ref() == resp_id
        && proposal.str("session_id").ok() == Some(h.session.as_str());
    if !ids_ok {
        ctx.add(
            Severity::Error,
            "mismatch",
            rec,
            Some(h.seq),
            Some(&h.peer),
            "the handshake messages name other agents or another session than the event".into(),
        );
        return false;
    }
    // Signatures are checked under this chain's key and the peer key the
    // event records. That key derives the peer's id, so it is also the key
    // of the peer's own chain whenever that chain is supplied.
    let (ikey, rkey) = match h.role {
        Role::Initiator => (key, Some(&h.peer_key)),
        Role::Responder => (Some(&h.peer_key), key),
    };
    let sigs_ok = ikey.is_some_and(|k| proposal.verify(k))
        && rkey.is_some_and(|k| response.verify(k))
        && h.confirm
            .as_ref()
            .is_none_or(|c| ikey.is_some_and(|k| c.verify(k)));
    if !sigs_ok {
        ctx.add(
            Severity::Error,
            "signature_mismatch",
            rec,
            Some(h.seq),
            Some(&h.peer),
            "handshake messages are not signed by this chain's key and the peer's".into(),
        );
        return false;
    }
    let Some(peer) = ctx.by_agent.get(&h.peer).copied() else {
        ctx.add(
            Severity::Info,
            "peer_chain_absent",
            rec,
            Some(h.seq),
            Some(&h.peer),
            format!(
                "handshake with {}: the peer's chain was not supplied",
                h.peer
            ),
        );
        return false;
    };
    let counterpart = peer.handshakes.iter().find(|o| {
        o.session == h.session
            && o.role != h.role
            && rec.agent.as_ref() == Some(&o.peer)
            && o.proposal.as_ref().map(SignedObject::hash) == Some(proposal.hash())
            && o.response.as_ref().map(SignedObject::hash) == Some(response.hash())
    });
    if counterpart.is_none() {
        ctx.add(
            Severity::Error,
            "missing_counterpart",
            rec,
            Some(h.seq),
            Some(&h.peer),
            format!(
                "handshake in session {} has no matching handshake event in {}",
                h.session, peer.label
            ),
        );
        return false;
    }
    true
}

fn check_interaction(ctx: &mut Ctx<'_>, rec: &ChainRecord, i: &Interaction) -> bool {
    let bad = |ctx: &mut Ctx<'_>, sev, kind, msg: String| {
        ctx.add(sev, kind, rec, Some(i.seq), Some(&i.peer), msg);
        false
    };
    let Some(request) = &i.request else {
        return bad(
            ctx,
            Severity::Error,
            "malformed",
            "co-signed event lacks its signed request".into(),
        );
    };
    let Ok(d) = Descriptor::of_request(request) else {
        return bad(
            ctx,
            Severity::Error,
            "malformed",
            "request is not a valid descriptor".into(),
        );
    };
    if d.hash() != i.interaction_hash
        || d.event_type != i.event_type
        || d.payload_hash != i.data_hash
        || d.order != i.order
        || d.session_id.to_string() != i.session
    {
        return bad(
            ctx,
            Severity::Error,
            "mismatch",
            "the event does not match the interaction its request describes (hash, type, data or order differ)".into(),
        );
    }
    // The request must be between this chain's agent and the peer the
    // event names, in the role it states.
    let me = rec.agent.as_ref();
    let (init_id, resp_id) = match i.role {
        Role::Initiator => (me, Some(&i.peer)),
        Role::Responder => (Some(&i.peer), me),
    };
    if Some(&d.initiator) != init_id || Some(&d.responder) != resp_id {
        return bad(
            ctx,
            Severity::Error,
            "mismatch",
            "the request names other agents than this chain and the peer its event names".into(),
        );
    }
    let Some(peer) = ctx.by_agent.get(&i.peer).copied() else {
        // Without the peer's chain, check what this chain alone can: the
        // peer's key comes from this chain's handshake with it.
        let peer_key = rec
            .handshakes
            .iter()
            .find(|h| h.session == i.session && h.peer == i.peer)
            .map(|h| h.peer_key);
        let (ikey, rkey) = match i.role {
            Role::Initiator => (rec.key, peer_key),
            Role::Responder => (peer_key, rec.key),
        };
        let req_ok = ikey.is_some_and(|k| request.verify(&k));
        let cs_ok = match (i.role, &i.countersign) {
            (Role::Initiator, Some(c)) => {
                rkey.is_some_and(|k| c.verify(&k))
                    && c.hash_member("interaction_hash").ok() == Some(i.interaction_hash)
            }
            (Role::Initiator, None) => false,
            (Role::Responder, _) => true,
        };
        if peer_key.is_none() {
            return bad(
                ctx,
                Severity::Error,
                "mismatch",
                format!(
                    "interaction with {} without a handshake with it in this session",
                    i.peer
                ),
            );
        }
        if !req_ok || !cs_ok {
            return bad(
                ctx,
                Severity::Error,
                "signature_mismatch",
                format!(
                    "interaction {}: the request or countersignature is not signed by the keys of this chain and its peer",
                    i.interaction_hash
                ),
            );
        }
        return bad(
            ctx,
            Severity::Info,
            "peer_chain_absent",
            format!(
                "interaction {}: the peer's chain was not supplied",
                i.interaction_hash
            ),
        );
    };
    let Some(other) = peer
        .interactions
        .iter()
        .find(|o| o.interaction_hash == i.interaction_hash && o.role != i.role)
    else {
        return bad(
            ctx,
            Severity::Error,
            "missing_counterpart",
            format!(
                "interaction {} ({}) has no counterpart in {}",
                i.interaction_hash, i.event_type, peer.label
            ),
        );
    };
    let (init, resp) = match i.role {
        Role::Initiator => (i, other),
        Role::Responder => (other, i),
    };
    let (init_rec, resp_rec) = match i.role {
        Role::Initiator => (rec, peer),
        Role::Responder => (peer, rec),
    };
    let req_ok = init_rec.key.as_ref().is_some_and(|k| request.verify(k))
        && resp.request.as_ref().map(SignedObject::hash) == Some(request.hash());
    let cs_ok = init.countersign.as_ref().is_some_and(|c| {
        resp_rec.key.as_ref().is_some_and(|k| c.verify(k))
            && c.hash_member("interaction_hash").ok() == Some(i.interaction_hash)
            && c.u64("event_seq").ok() == Some(resp.seq)
            && c.hash_member("event_hash").ok() == Some(resp.event_hash)
    });
    if !req_ok || !cs_ok {
        return bad(
            ctx,
            Severity::Error,
            "signature_mismatch",
            format!(
                "interaction {}: {}",
                i.interaction_hash,
                if req_ok {
                    "the countersignature is not the responder's, or names another event"
                } else {
                    "the request is not signed by the initiator's chain key"
                }
            ),
        );
    }
    if init.data_hash != resp.data_hash {
        return bad(
            ctx,
            Severity::Error,
            "mismatch",
            "the two chains record different data".into(),
        );
    }
    true
}

fn check_handoffs(ctx: &mut Ctx<'_>, rec: &ChainRecord) {
    let Some(me) = rec.agent.as_ref() else {
        return;
    };
    for (seq, hash, receiver) in &rec.sent {
        if let Some(peer) = ctx.by_agent.get(receiver).copied()
            && !peer
                .accepted
                .iter()
                .any(|(_, h, from)| h == hash && from == me)
        {
            let quarantined = peer.quarantined.iter().any(|(h, _)| h == hash);
            ctx.add(
                Severity::Warning,
                "handoff_not_accepted",
                rec,
                Some(*seq),
                Some(receiver),
                if quarantined {
                    format!("receipt {hash} was refused and quarantined by the receiver")
                } else {
                    format!("receipt {hash} was never accepted by the receiver")
                },
            );
        }
    }
    for (seq, hash, sender) in &rec.accepted {
        if let Some(peer) = ctx.by_agent.get(sender).copied()
            && !peer.sent.iter().any(|(_, h, to)| h == hash && to == me)
        {
            ctx.add(
                Severity::Error,
                "missing_counterpart",
                rec,
                Some(*seq),
                Some(sender),
                format!(
                    "accepted receipt {hash} is not recorded as sent to this agent in the sender's chain"
                ),
            );
        }
    }
}
