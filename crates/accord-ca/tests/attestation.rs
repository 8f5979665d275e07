//! Attestation documents: round trip and the attacks (forged, altered,
//! expired, for another agent, from another controller).

mod common;

use accord_ca::{
    ATTESTATION_FORMAT, Attestation, AttestationError, TrustDomain, verify_attestation,
};
use accord_core::signed::SignedObject;
use accord_core::{Hash32, Map, Value};
use common::*;

fn attestation(agent: &accord_core::Keypair) -> Attestation {
    Attestation {
        agent_id: agent.agent_id().clone(),
        agent_key: *agent.public(),
        codebase_hash: Hash32::of(b"code"),
        config_hash: Hash32::of(b"config"),
        issued_at: at(T0),
        expires_at: at(T0 + 24 * HOUR),
    }
}

#[test]
fn attestation_round_trip() {
    let controller = key(1);
    let agent = key(2);
    let doc = attestation(&agent)
        .sign(&controller, &domain())
        .expect("signs");
    let text = doc.canonical();
    let v = verify_attestation(
        text,
        controller.public(),
        agent.agent_id(),
        Some(&domain()),
        &at(T0 + HOUR),
    )
    .expect("verifies");
    assert_eq!(v.attestation, attestation(&agent));
    assert_eq!(v.trust_domain, domain());
    assert!(
        v.require(Some(&Hash32::of(b"code")), Some(&Hash32::of(b"config")))
            .is_ok()
    );
    assert!(matches!(
        v.require(Some(&Hash32::of(b"other code")), None),
        Err(AttestationError::HashMismatch {
            member: "codebase_hash",
            ..
        })
    ));
    assert!(matches!(
        v.require(None, Some(&Hash32::of(b"other config"))),
        Err(AttestationError::HashMismatch {
            member: "config_hash",
            ..
        })
    ));
    let s = String::from_utf8(text.to_vec()).expect("utf8");
    assert!(
        s.contains(&format!("\"format\":\"{ATTESTATION_FORMAT}\"")),
        "{s}"
    );
}

#[test]
fn forged_and_altered_attestations_are_refused() {
    let controller = key(1);
    let agent = key(2);
    let now = at(T0 + HOUR);
    let doc = attestation(&agent)
        .sign(&controller, &domain())
        .expect("signs");
    let text = String::from_utf8(doc.canonical().to_vec()).expect("utf8");
    // Another key signs, claiming to be the controller.
    let forger = key(6);
    let mut m: Map<String, Value> = doc.members().clone();
    let forged = SignedObject::sign(m.clone(), &forger);
    assert!(matches!(
        verify_attestation(
            forged.canonical(),
            controller.public(),
            agent.agent_id(),
            None,
            &now
        ),
        Err(AttestationError::BadSignature)
    ));
    // Another controller, honestly naming itself.
    let other = attestation(&agent).sign(&forger, &domain()).expect("signs");
    assert!(matches!(
        verify_attestation(
            other.canonical(),
            controller.public(),
            agent.agent_id(),
            None,
            &now
        ),
        Err(AttestationError::WrongController { .. })
    ));
    // A changed hash, a later expiry: the signature no longer verifies.
    let changed = text.replace(&Hash32::of(b"code").to_hex(), &Hash32::of(b"evil").to_hex());
    assert!(matches!(
        verify_attestation(
            changed.as_bytes(),
            controller.public(),
            agent.agent_id(),
            None,
            &now
        ),
        Err(AttestationError::BadSignature)
    ));
    let extended = text.replace(at(T0 + 24 * HOUR).as_str(), at(T0 + 240 * HOUR).as_str());
    assert!(matches!(
        verify_attestation(
            extended.as_bytes(),
            controller.public(),
            agent.agent_id(),
            None,
            &at(T0 + 100 * HOUR)
        ),
        Err(AttestationError::Expired { .. }) | Err(AttestationError::BadSignature)
    ));
    assert!(matches!(
        verify_attestation(
            extended.as_bytes(),
            controller.public(),
            agent.agent_id(),
            None,
            &now
        ),
        Err(AttestationError::BadSignature)
    ));
    // An extra member, even signed by the controller.
    m.insert("admin".into(), true.into());
    let extra = SignedObject::sign(m, &controller);
    assert!(matches!(
        verify_attestation(
            extra.canonical(),
            controller.public(),
            agent.agent_id(),
            None,
            &now
        ),
        Err(AttestationError::UnknownMember(_))
    ));
    // Not JSON, wrong format, no signature.
    assert!(matches!(
        verify_attestation(b"{", controller.public(), agent.agent_id(), None, &now),
        Err(AttestationError::Malformed(_))
    ));
    let wrong = text.replace(ATTESTATION_FORMAT, "accord-handoff/1");
    assert!(matches!(
        verify_attestation(
            wrong.as_bytes(),
            controller.public(),
            agent.agent_id(),
            None,
            &now
        ),
        Err(AttestationError::Malformed(_))
    ));
    // Signed by the controller but the agent key does not derive the agent_id.
    let mut m = doc.members().clone();
    m.insert("agent_key".into(), key(3).public().to_b64().into());
    let swapped = SignedObject::sign(m, &controller);
    assert!(matches!(
        verify_attestation(
            swapped.canonical(),
            controller.public(),
            agent.agent_id(),
            None,
            &now
        ),
        Err(AttestationError::AgentKey { .. })
    ));
}

#[test]
fn expired_or_future_attestations_are_refused() {
    let controller = key(1);
    let agent = key(2);
    let doc = attestation(&agent)
        .sign(&controller, &domain())
        .expect("signs");
    let check = |t: i64| {
        verify_attestation(
            doc.canonical(),
            controller.public(),
            agent.agent_id(),
            None,
            &at(t),
        )
    };
    assert!(check(T0).is_ok());
    assert!(check(T0 + 24 * HOUR - 1).is_ok());
    assert!(matches!(
        check(T0 + 24 * HOUR),
        Err(AttestationError::Expired { .. })
    ));
    assert!(check(T0 - 60_000_000).is_ok(), "within the tolerated skew");
    assert!(matches!(
        check(T0 - HOUR),
        Err(AttestationError::NotYetValid { .. })
    ));
    // Signing refuses an empty window and a key that is not the agent's.
    let mut a = attestation(&agent);
    a.expires_at = a.issued_at.clone();
    assert!(matches!(
        a.sign(&controller, &domain()),
        Err(AttestationError::Window { .. })
    ));
    let mut a = attestation(&agent);
    a.agent_key = *key(3).public();
    assert!(matches!(
        a.sign(&controller, &domain()),
        Err(AttestationError::AgentKey { .. })
    ));
}

#[test]
fn attestation_for_another_agent_or_domain_is_refused() {
    let controller = key(1);
    let agent = key(2);
    let other = key(3);
    let now = at(T0 + HOUR);
    let doc = attestation(&agent)
        .sign(&controller, &domain())
        .expect("signs");
    let err = verify_attestation(
        doc.canonical(),
        controller.public(),
        other.agent_id(),
        None,
        &now,
    )
    .expect_err("another agent presents it");
    assert!(matches!(err, AttestationError::WrongAgent { .. }), "{err}");
    let td = TrustDomain::parse("elsewhere.test").expect("td");
    assert!(matches!(
        verify_attestation(
            doc.canonical(),
            controller.public(),
            agent.agent_id(),
            Some(&td),
            &now
        ),
        Err(AttestationError::WrongTrustDomain { .. })
    ));
}
