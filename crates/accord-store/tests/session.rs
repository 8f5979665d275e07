//! Co-signed sessions, handoffs and the cross-chain audit, end to end
//! through real stores.

use accord_core::audit::{self, ChainReader, Severity};
use accord_core::handoff::{DEFAULT_WINDOW_MICROS, HandoffError};
use accord_core::keyfile::KdfParams;
use accord_core::{Map, Value};
use accord_store::participant::{Participant, Session, Wire};
use accord_store::{Agent, Home};

fn agent(dir: &std::path::Path, name: &str) -> Agent {
    Home::new(dir.join(name))
        .init(Some(name), None, KdfParams::DEFAULT)
        .expect("init")
}

fn export(a: &Agent) -> Vec<u8> {
    let mut out = Vec::new();
    a.export(&mut out, &mut |_| {}).expect("export");
    out
}

fn read(label: &str, bytes: &[u8]) -> audit::ChainRecord {
    let mut r = ChainReader::new(label);
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        r.push_line(line);
    }
    r.finish()
}

fn data(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect()
}

/// Three agents, a session with three interactions and a handoff; returns
/// the three exports.
fn run_session(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let caps = vec!["delegate".to_owned(), "review".to_owned()];
    let members: Vec<Participant> = ["planner", "executor", "reviewer"]
        .iter()
        .map(|n| Participant::new(agent(dir, n), caps.clone()))
        .collect();
    let ids: Vec<_> = members.iter().map(|m| m.id().clone()).collect();
    let mut s = Session::start(members).expect("start");
    let d = s
        .stamp(
            &ids[0],
            &ids[1],
            "task.delegation",
            data(&[("task", "analyse Q3"), ("task_id", "T-1")]),
        )
        .expect("delegation");
    assert_eq!(d.event.event().payload["data"]["task_id"], "T-1");
    assert_ne!(
        d.event.event().payload["data"]["task"],
        "analyse Q3",
        "content is hashed"
    );
    s.stamp(
        &ids[1],
        &ids[2],
        "task.completed",
        data(&[("result", "done")]),
    )
    .expect("completion");
    s.stamp(
        &ids[2],
        &ids[0],
        "review.signed",
        data(&[("verdict", "approved")]),
    )
    .expect("sign-off");
    let mut agents: Vec<Agent> = s
        .end()
        .expect("end")
        .into_iter()
        .map(Participant::into_agent)
        .collect();
    let doc = b"quarterly report".to_vec();
    let (receipt, _) = agents[0]
        .send_handoff(&ids[1], &mut doc.as_slice(), Some("T-1"))
        .expect("send");
    let accepted = agents[1]
        .accept_handoff(
            receipt.canonical(),
            &mut doc.as_slice(),
            None,
            DEFAULT_WINDOW_MICROS,
        )
        .expect("store ok")
        .expect("accepted");
    assert_eq!(accepted.0.seq, 1);
    agents.iter().map(export).collect()
}

#[test]
fn session_chains_cross_match_and_audit_clean() {
    let dir = tempfile::tempdir().expect("tmp");
    let exports = run_session(dir.path());
    let recs: Vec<_> = exports
        .iter()
        .enumerate()
        .map(|(i, e)| read(&format!("chain{i}"), e))
        .collect();
    let report = audit::audit(&recs);
    assert!(report.clean(), "{:#?}", report.findings);
    // 3 handshakes × 2 sides + 3 interactions × 2 sides.
    assert_eq!(report.matched, 12);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    for t in &report.trust {
        assert_eq!(t.components.integrity, 1.0);
        assert_eq!(t.components.cosignature, Some(1.0));
        assert!(t.score > 0.0 && t.score <= 1.0);
    }
}

#[test]
fn audit_names_missing_counterparts_and_edits() {
    let dir = tempfile::tempdir().expect("tmp");
    let exports = run_session(dir.path());
    // Without the reviewer's chain, its peers' records are unmatched (info),
    // not errors.
    let two: Vec<_> = exports[..2]
        .iter()
        .enumerate()
        .map(|(i, e)| read(&format!("chain{i}"), e))
        .collect();
    let report = audit::audit(&two);
    assert!(report.clean());
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == "peer_chain_absent")
    );

    // An edited event fails its chain, named by seq.
    let text = String::from_utf8(exports[1].clone()).expect("utf8");
    let edited = text.replacen("task.completed", "task.complete2", 1);
    assert_ne!(edited, text);
    let recs = vec![
        read("p", &exports[0]),
        read("e", edited.as_bytes()),
        read("r", &exports[2]),
    ];
    let report = audit::audit(&recs);
    assert!(!report.clean());
    let f = report
        .findings
        .iter()
        .find(|f| f.kind == "chain_invalid")
        .expect("named");
    assert_eq!(f.chain, "e");
    assert!(f.seq.is_some());
    // Its peers' records now lack a verified counterpart.
    assert!(report.findings.iter().any(|f| f.severity == Severity::Info));
}

#[test]
fn handoff_refusals_are_quarantined_and_recorded() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = agent(dir.path(), "s");
    let mut r = agent(dir.path(), "r");
    let rid = r.key().agent_id().clone();
    let doc = b"payload".to_vec();
    let (receipt, _) = s
        .send_handoff(&rid, &mut doc.as_slice(), None)
        .expect("send");
    // Wrong payload.
    let refused = r
        .accept_handoff(
            receipt.canonical(),
            &mut &b"other"[..],
            None,
            DEFAULT_WINDOW_MICROS,
        )
        .expect("store")
        .expect_err("refused");
    assert!(matches!(
        refused.reason,
        HandoffError::PayloadMismatch { .. }
    ));
    assert_eq!(refused.quarantine_id, 1);
    // Right payload: accepted; again: replay.
    r.accept_handoff(
        receipt.canonical(),
        &mut doc.as_slice(),
        None,
        DEFAULT_WINDOW_MICROS,
    )
    .expect("store")
    .expect("accepted");
    let replay = r
        .accept_handoff(
            receipt.canonical(),
            &mut doc.as_slice(),
            None,
            DEFAULT_WINDOW_MICROS,
        )
        .expect("store")
        .expect_err("replay");
    assert!(matches!(replay.reason, HandoffError::Replay { .. }));
    // Garbage is quarantined too.
    let junk = r
        .accept_handoff(
            b"{not json",
            &mut doc.as_slice(),
            None,
            DEFAULT_WINDOW_MICROS,
        )
        .expect("store")
        .expect_err("junk");
    assert_eq!(junk.quarantine_id, 3);
    use accord_store::EventStore;
    let q = r.store().quarantined(&rid).expect("list");
    assert_eq!(q.len(), 3);
    assert_eq!(q[2].item, b"{not json");
}

#[test]
fn responder_refuses_replayed_and_out_of_order_messages() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut a = Participant::new(agent(dir.path(), "a"), vec![]);
    let mut b = Participant::new(agent(dir.path(), "b"), vec![]);
    let sid = accord_core::Uuid::from_u128(42);
    let ids = [a.id().clone(), b.id().clone()];
    a.open_session(sid, &ids).expect("open");
    let p = a.propose(sid, &ids[1], &ids).expect("propose");
    let Wire::Response(r) = b.handle(p.clone()).expect("respond") else {
        panic!("expected a response")
    };
    let c = a.on_response(&r).expect("confirm");
    b.handle(c.clone()).expect("recorded");
    // The same proposal again is refused; the same confirmation again is
    // acknowledged without recording anything (its ack may have been lost).
    assert!(b.handle(p).is_err());
    assert!(matches!(b.handle(c), Ok(Wire::Ack)));
    let req = a
        .request(sid, &ids[1], "task.delegation", data(&[("x", "y")]), false)
        .expect("request");
    let Wire::Countersign(cs) = b.handle(req.clone()).expect("countersign") else {
        panic!("expected a countersignature")
    };
    // Replaying the request records nothing new: the same event is
    // countersigned again (this is how a lost answer is recovered).
    let len = |p: &Participant| p.agent().store().len(p.id()).expect("len");
    let before = len(&b);
    let Wire::Countersign(again) = b.handle(req.clone()).expect("re-countersigned") else {
        panic!("expected a countersignature")
    };
    assert_eq!(len(&b), before);
    assert_eq!(again.u64("event_seq"), cs.u64("event_seq"));
    a.on_countersign(&req, &cs).expect("recorded");
    // A countersignature replayed to the initiator is refused too.
    assert!(a.on_countersign(&req, &cs).is_err());
}

#[test]
fn lost_countersignature_is_recovered_by_resending_the_same_request() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut a = Participant::new(agent(dir.path(), "a"), vec![]);
    let mut b = Participant::new(agent(dir.path(), "b"), vec![]);
    let sid = accord_core::Uuid::from_u128(7);
    let ids = [a.id().clone(), b.id().clone()];
    a.open_session(sid, &ids).expect("open");
    let p = a.propose(sid, &ids[1], &ids).expect("propose");
    let Wire::Response(r) = b.handle(p).expect("respond") else {
        panic!("expected a response")
    };
    let c = a.on_response(&r).expect("confirm");
    b.handle(c).expect("recorded");
    let req = a
        .request(sid, &ids[1], "task.delegation", data(&[("x", "y")]), false)
        .expect("request");
    // b records and countersigns; the answer is lost on the way back.
    let Wire::Countersign(_) = b.handle(req.clone()).expect("first") else {
        panic!("expected a countersignature")
    };
    // The same request again: the same event is countersigned again,
    // nothing new is recorded.
    let Wire::Countersign(cs) = b.handle(req.clone()).expect("retry") else {
        panic!("expected a countersignature")
    };
    a.on_countersign(&req, &cs).expect("recorded");
    // A new request with the same order (a re-made request) is refused.
    let again = a
        .request(sid, &ids[1], "task.delegation", data(&[("x", "y")]), false)
        .expect("request");
    let Wire::Countersign(_) = b.handle(again).expect("next order") else {
        panic!("expected a countersignature")
    };
    let mut agents: Vec<Agent> = vec![a.into_agent(), b.into_agent()];
    let recs: Vec<_> = agents
        .iter_mut()
        .enumerate()
        .map(|(i, x)| read(&format!("c{i}"), &export(x)))
        .collect();
    let report = audit::audit(&recs);
    // a recorded one interaction; b two (the second lacks a's side).
    assert!(!report.clean());
    assert_eq!(
        report
            .findings
            .iter()
            .filter(|f| f.kind == "missing_counterpart")
            .count(),
        1,
        "{:#?}",
        report.findings
    );
}

#[test]
fn ended_sessions_take_no_more_interactions() {
    let dir = tempfile::tempdir().expect("tmp");
    let members = vec![
        Participant::new(agent(dir.path(), "a"), vec![]),
        Participant::new(agent(dir.path(), "b"), vec![]),
    ];
    let ids: Vec<_> = members.iter().map(|m| m.id().clone()).collect();
    let s = Session::start(members).expect("start");
    let sid = s.id();
    let mut m = s.end().expect("end");
    let b = m.pop().expect("b");
    let mut a = m.pop().expect("a");
    assert!(a.request(sid, &ids[1], "late", data(&[]), false).is_err());
    drop(b);
}

fn json_obj(v: serde_json::Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Records a chain cannot forge: an acceptance of a receipt sent to
/// someone else, quarantines that would lower a sender's trust, and an
/// interaction naming another initiator.
#[test]
fn audit_refuses_forged_handoff_and_interaction_records() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut h = agent(dir.path(), "h");
    let x = agent(dir.path(), "x");
    let mut m = agent(dir.path(), "m");
    let (hid, xid) = (h.key().agent_id().clone(), x.key().agent_id().clone());
    let doc = b"doc".to_vec();
    let (receipt, _) = h
        .send_handoff(&xid, &mut doc.as_slice(), None)
        .expect("send");
    // M claims to have accepted H's receipt to X.
    m.stamp(
        "handoff.accepted",
        json_obj(serde_json::json!({
            "receipt": receipt.to_value(),
            "receipt_hash": receipt.hash().to_hex(),
            "sender": hid.as_str(),
            "payload_sha256": receipt.str("payload_sha256").expect("hash"),
        })),
    )
    .expect("stamp");
    // ... and quarantines H's receipts it never received, nine times.
    for _ in 0..9 {
        m.stamp(
            "handoff.quarantined",
            json_obj(serde_json::json!({
                "sender": hid.as_str(),
                "signature_valid": true,
                "receipt_sha256": receipt.hash().to_hex(),
                "reason": "made up",
            })),
        )
        .expect("stamp");
    }
    // ... and records an "interaction" whose request names H as initiator.
    let forged = accord_core::session::Descriptor {
        session_id: accord_core::Uuid::from_u128(9),
        initiator: hid.clone(),
        responder: m.key().agent_id().clone(),
        event_type: "task.delegation".into(),
        payload_hash: accord_core::session::payload_hash(&Map::new()),
        order: 1,
    };
    let req = forged
        .request(m.key(), &accord_store::home::now().expect("now"))
        .expect("a request within the limits");
    let mut payload = accord_core::session::interaction_payload(
        accord_core::session::Role::Responder,
        &forged,
        &req,
        None,
        Map::new(),
    );
    m.stamp("task.delegation", payload.clone()).expect("stamp");
    // The same, pointing its `peer` at an agent whose chain is not supplied.
    let z = agent(dir.path(), "z");
    payload["interaction"]["peer"] = Value::from(z.key().agent_id().as_str());
    m.stamp("task.delegation", payload).expect("stamp");
    let recs = vec![
        read("h", &export(&h)),
        read("x", &export(&x)),
        read("m", &export(&m)),
    ];
    let report = audit::audit(&recs);
    assert!(!report.clean());
    let on_m: Vec<_> = report.findings.iter().filter(|f| f.chain == "m").collect();
    assert!(
        on_m.iter()
            .any(|f| f.kind == "malformed" && f.message.contains("receiver is another agent")),
        "{on_m:#?}"
    );
    // Against H's chain: no counterpart; redirected to an absent peer: the
    // request names other agents than the event.
    assert!(
        on_m.iter().any(|f| f.kind == "missing_counterpart"),
        "{on_m:#?}"
    );
    assert!(on_m.iter().any(|f| f.kind == "mismatch"), "{on_m:#?}");
    // H's handoffs component is untouched by M's claims: X never decided.
    let th = report
        .trust
        .iter()
        .find(|t| t.agent_id == hid.as_str())
        .expect("h");
    assert_eq!(th.components.handoffs, None, "{th:#?}");
}

#[test]
fn reserved_types_and_handshake_retries() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut a = Participant::new(agent(dir.path(), "a"), vec![]);
    let mut b = Participant::new(agent(dir.path(), "b"), vec![]);
    let sid = accord_core::Uuid::from_u128(11);
    let ids = [a.id().clone(), b.id().clone()];
    a.open_session(sid, &ids).expect("open");
    let p = a.propose(sid, &ids[1], &ids).expect("propose");
    let Wire::Response(r) = b.handle(p).expect("respond") else {
        panic!("expected a response")
    };
    let c = a.on_response(&r).expect("confirm");
    // A second handshake record with the same peer and session is refused.
    assert!(a.on_response(&r).is_err());
    b.handle(c.clone()).expect("recorded");
    // The confirmation delivered again (its ack was lost) is acknowledged.
    assert!(matches!(b.handle(c).expect("ack again"), Wire::Ack));
    for t in [
        "handoff.quarantined",
        "session.end",
        "a2a.external",
        "genesis",
        "checkpoint_cosigned",
    ] {
        assert!(
            a.request(sid, &ids[1], t, data(&[]), false).is_err(),
            "{t} accepted"
        );
    }
}
