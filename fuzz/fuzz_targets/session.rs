//! Handshake, interaction, countersignature and end messages on arbitrary
//! input: never panic, never accept without a valid signature.
#![no_main]
use accord_core::session::{self, Descriptor, ProposalParams};
use accord_core::{Hash32, Keypair, Map, Timestamp, Uuid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let i = Keypair::from_seed(&[1; 32]).expect("fixed seed");
    let r = Keypair::from_seed(&[2; 32]).expect("fixed seed");
    let now = Timestamp::from_unix_micros(1_790_000_000_000_000).expect("time");
    let skew = session::DEFAULT_MAX_SKEW_MICROS;
    let ids = [i.agent_id().clone(), r.agent_id().clone()];
    let p = session::propose(
        &i,
        &ProposalParams {
            session_id: Uuid::from_u128(1),
            to: r.agent_id(),
            participants: &ids,
            capabilities: &["a".into()],
            nonce: Uuid::from_u128(2),
            timestamp: now.clone(),
        },
    )
    .expect("a proposal within the limits");
    if let Ok(prop) = session::check_proposal(data, r.agent_id(), &now, skew) {
        assert!(prop.message.verify(&prop.key));
    }
    let _ = session::check_response(data, &p, &now, skew);
    let checked = session::check_proposal(p.canonical(), r.agent_id(), &now, skew).expect("own");
    let resp = session::respond(&r, &checked, &[], &now).expect("a response within the limits");
    let _ = session::check_confirm(data, &checked, &resp, &now, skew);
    let d = Descriptor {
        session_id: Uuid::from_u128(1),
        initiator: ids[0].clone(),
        responder: ids[1].clone(),
        event_type: "t".into(),
        payload_hash: session::payload_hash(&Map::new()),
        order: 1,
    };
    if session::check_request(data, &Map::new(), r.agent_id(), i.public(), 1, &now, skew).is_ok() {
        // Only the initiator's key can have made an accepted request.
        assert!(
            accord_core::signed::SignedObject::parse(data, session::INTERACTION)
                .expect("parsed")
                .verify(i.public())
        );
    }
    let req = d.request(&i, &now).expect("a request within the limits");
    let _ = session::check_countersign(data, &req, &d, r.public());
    let _ = session::check_end(data, r.agent_id(), i.public(), &now, skew);
    let _ = Hash32::of(data);
});
