//! The session state machine run with no store, socket or clock: two
//! machines, each with a map as its ledger and a vector as its chain, at
//! instants the test chooses.

use std::collections::HashMap;

use accord_core::chain::{ChainVerifier, ChainWriter, Head, SideWrite, SignatureMode};
use accord_core::participant::{
    Commit, Ledger, LedgerError, Outcome, Participant, ParticipantError, Step, Wire,
};
use accord_core::session::{self, SessionError};
use accord_core::{AgentId, Event, Keypair, Map, SignedEvent, Timestamp, Uuid, Value};

/// What a store keeps for one agent: its chain and its session state.
struct Books {
    key: Keypair,
    chain: Vec<SignedEvent>,
    state: HashMap<String, Vec<u8>>,
    nonces: u64,
}

impl Ledger for Books {
    fn state(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self.state.get(key).cloned())
    }
    fn event(&self, seq: u64) -> Result<Option<SignedEvent>, LedgerError> {
        Ok(usize::try_from(seq)
            .ok()
            .and_then(|i| self.chain.get(i))
            .cloned())
    }
}

impl Books {
    /// Deterministic UUIDv4s.
    fn nonce(&mut self) -> Uuid {
        self.nonces += 1;
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.nonces.to_be_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid()
    }

    /// What a store does with a commit: apply it to the current state, sign
    /// the events on the head, write the state.
    fn commit(
        &mut self,
        c: &Commit,
        now: &Timestamp,
    ) -> Result<Vec<SignedEvent>, ParticipantError> {
        let values: Vec<Option<Vec<u8>>> = c
            .keys()
            .iter()
            .map(|k| self.state.get(k).cloned())
            .collect();
        let head = Head::of(self.chain.last().expect("genesis"));
        let Some(record) = c.apply(head.seq + 1, &values)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut nonces = Vec::new();
        for _ in &record.events {
            nonces.push(self.nonce());
        }
        let mut w = ChainWriter::new(&self.key, head, now.clone());
        for ((ty, payload), nonce) in record.events.into_iter().zip(nonces) {
            out.push(w.append(nonce, ty, payload).expect("valid event"));
        }
        for write in record.writes {
            match write {
                SideWrite::Set { key, value } => {
                    self.state.insert(key, value);
                }
                SideWrite::Remove { key } => {
                    self.state.remove(&key);
                }
                SideWrite::Quarantine { .. } => panic!("sessions quarantine nothing"),
            }
        }
        self.chain.extend(out.iter().cloned());
        Ok(out)
    }
}

/// One agent: its machine and its books.
struct Node {
    machine: Participant,
    books: Books,
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000 + s * 1_000_000).unwrap()
}

fn cross(w: &Wire) -> Wire {
    // Every message crosses as bytes, as on a network.
    Wire::parse(&w.to_line()).expect("a message the machine wrote parses")
}

impl Node {
    fn new(seed: u8) -> Self {
        let key = Keypair::from_seed(&[seed; 32]).unwrap();
        let mut books = Books {
            key,
            chain: Vec::new(),
            state: HashMap::new(),
            nonces: u64::from(seed) << 32,
        };
        let nonce = books.nonce();
        let genesis = Event::genesis(books.key.public(), at(0), nonce, Map::new())
            .sign(&books.key)
            .unwrap();
        books.chain.push(genesis);
        Node {
            machine: Participant::new(books.key.agent_id().clone(), vec!["chat".into()]),
            books,
        }
    }

    fn id(&self) -> AgentId {
        self.books.key.agent_id().clone()
    }

    fn run(&mut self, step: Step, now: &Timestamp) -> Result<Outcome, ParticipantError> {
        let recorded = match &step.commit {
            Some(c) => self.books.commit(c, now)?,
            None => Vec::new(),
        };
        self.machine
            .complete(&self.books.key, step.after, &recorded, now)
    }

    fn handle(&mut self, msg: &Wire, now: &Timestamp) -> Result<Wire, ParticipantError> {
        let step = self
            .machine
            .handle(&self.books.key, cross(msg), &self.books, now)?;
        match self.run(step, now)? {
            Outcome::Reply(w) => Ok(cross(&w)),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn reply(&mut self, step: Step, now: &Timestamp) -> Wire {
        match self.run(step, now).unwrap() {
            Outcome::Reply(w) => cross(&w),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn types(&self) -> Vec<String> {
        self.books
            .chain
            .iter()
            .map(|e| e.event().event_type.clone())
            .collect()
    }

    /// Every chain the machine wrote verifies strictly.
    fn verify(&self) -> u64 {
        let mut v = ChainVerifier::new(SignatureMode::Strict);
        for ev in &self.books.chain {
            v.push(ev).expect("event verifies");
        }
        v.finish().expect("chain verifies").events
    }
}

/// A and B complete the handshake at `t` seconds; the session id.
fn handshake(a: &mut Node, b: &mut Node, t: i64) -> Uuid {
    let sid = a.books.nonce();
    let ids = [a.id(), b.id()];
    let open = a.machine.open_session(sid, &ids, &at(t));
    a.books.commit(&open, &at(t)).unwrap();
    let nonce = a.books.nonce();
    let proposal = a
        .machine
        .propose(&a.books.key, sid, &b.id(), &ids, nonce, &at(t))
        .unwrap();
    let Wire::Response(r) = b.handle(&proposal, &at(t)).unwrap() else {
        panic!("expected a response")
    };
    let step = a.machine.on_response(&a.books.key, &r, &at(t)).unwrap();
    let confirm = a.reply(step, &at(t));
    assert!(matches!(b.handle(&confirm, &at(t)).unwrap(), Wire::Ack));
    sid
}

fn data(n: i64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("n".into(), n.into());
    m
}

/// A asks B to co-sign one interaction at `t`; the request and B's reply.
fn interact(a: &mut Node, b: &mut Node, sid: Uuid, n: i64, t: i64) -> (Wire, Wire) {
    let req = a
        .machine
        .request(
            &a.books.key,
            sid,
            &b.id(),
            "task.done",
            data(n),
            false,
            &a.books,
            &at(t),
        )
        .unwrap();
    let cs = b.handle(&req, &at(t)).unwrap();
    (req, cs)
}

#[test]
fn a_whole_session_lands_co_signed_in_both_chains() {
    let (mut a, mut b) = (Node::new(1), Node::new(2));
    let sid = handshake(&mut a, &mut b, 10);
    for n in 1..=3 {
        let (req, cs) = interact(&mut a, &mut b, sid, n, 10 + n);
        let Wire::Countersign(cs) = cs else {
            panic!("expected a countersignature")
        };
        let step = a
            .machine
            .on_countersign(&req, &cs, &a.books)
            .expect("countersignature accepted");
        let Outcome::Stamped(s) = a.run(step, &at(10 + n)).unwrap() else {
            panic!("expected a stamped interaction")
        };
        // Both chains name the same interaction; the countersignature
        // names the responder's event.
        let theirs = b.books.chain.last().unwrap();
        let hash_of = |e: &SignedEvent| {
            e.event().payload["interaction"]["interaction_hash"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(hash_of(&s.event), s.interaction_hash.to_hex());
        assert_eq!(hash_of(theirs), s.interaction_hash.to_hex());
        assert_eq!(
            s.countersign.str("event_hash").unwrap(),
            theirs.hash().to_hex()
        );
    }
    assert_eq!(
        a.machine.progress(&a.books, &sid, &b.id()).unwrap(),
        Some(3)
    );

    let step = a
        .machine
        .end(&a.books.key, sid, &[b.id()], &at(20))
        .unwrap();
    let Outcome::Notices(notices) = a.run(step, &at(20)).unwrap() else {
        panic!("expected notices")
    };
    assert_eq!(notices.len(), 1);
    assert!(matches!(
        b.handle(&notices[0].1, &at(21)).unwrap(),
        Wire::Ack
    ));
    let end = a.books.chain.last().unwrap();
    assert_eq!(end.event().payload["interactions"], 3);
    assert_eq!(end.event().payload["duration_ms"], 10_000);

    let expected = [
        "genesis",
        "session.start",
        "a2a.handshake",
        "task.done",
        "task.done",
        "task.done",
    ];
    assert_eq!(a.types()[..6], expected);
    assert_eq!(b.types()[..6], expected);
    assert_eq!(a.verify(), 7);
    assert_eq!(b.verify(), 7);

    // Ended: the machine refuses new requests, and ending again records
    // nothing.
    let refused = a.machine.request(
        &a.books.key,
        sid,
        &b.id(),
        "task.done",
        data(9),
        false,
        &a.books,
        &at(22),
    );
    assert!(
        matches!(refused, Err(ParticipantError::Input(_))),
        "{refused:?}"
    );
    let step = a.machine.end(&a.books.key, sid, &[], &at(23)).unwrap();
    a.run(step, &at(23)).unwrap();
    assert_eq!(a.verify(), 7);
}

#[test]
fn replays_are_refused_and_a_retried_request_is_countersigned_again() {
    let (mut a, mut b) = (Node::new(3), Node::new(4));
    let sid = a.books.nonce();
    let ids = [a.id(), b.id()];
    let nonce = a.books.nonce();
    let proposal = a
        .machine
        .propose(&a.books.key, sid, &b.id(), &ids, nonce, &at(1))
        .unwrap();
    let Wire::Response(r) = b.handle(&proposal, &at(1)).unwrap() else {
        panic!("expected a response")
    };
    // The same proposal again, before and after the handshake completes.
    assert!(matches!(
        b.handle(&proposal, &at(1)),
        Err(ParticipantError::Protocol(SessionError::Replay(_)))
    ));
    let step = a.machine.on_response(&a.books.key, &r, &at(1)).unwrap();
    let confirm = a.reply(step, &at(1));
    b.handle(&confirm, &at(1)).unwrap();
    assert!(matches!(
        b.handle(&proposal, &at(2)),
        Err(ParticipantError::Protocol(SessionError::Replay(_)))
    ));
    // A confirmation sent again (its acknowledgement lost) is acknowledged
    // and records nothing.
    let before = b.books.chain.len();
    assert!(matches!(b.handle(&confirm, &at(2)).unwrap(), Wire::Ack));
    assert_eq!(b.books.chain.len(), before);

    let (req, first) = interact(&mut a, &mut b, sid, 1, 3);
    let recorded = b.books.chain.len();
    // The countersignature was lost; A sends the same bytes again.
    let again = b.handle(&req, &at(4)).unwrap();
    assert_eq!(b.books.chain.len(), recorded, "nothing new recorded");
    let (Wire::Countersign(x), Wire::Countersign(y)) = (&first, &again) else {
        panic!("expected countersignatures")
    };
    assert_eq!(x.str("event_hash").unwrap(), y.str("event_hash").unwrap());
    // A different request with an order already used is refused.
    let Wire::Interaction { request, .. } = &req else {
        unreachable!()
    };
    let d = session::Descriptor::of_request(request).unwrap();
    let forged = Wire::Interaction {
        request: session::Descriptor {
            payload_hash: session::payload_hash(&data(7)),
            ..d
        }
        .request(&a.books.key, &at(5))
        .unwrap(),
        data: data(7),
    };
    assert!(matches!(
        b.handle(&forged, &at(5)),
        Err(ParticipantError::Protocol(SessionError::Order {
            got: 1,
            expected: 2,
            ..
        }))
    ));
    assert_eq!(b.verify(), recorded as u64);
}

#[test]
fn the_clock_window_is_applied_at_the_instants_given() {
    let (mut a, mut b) = (Node::new(5), Node::new(6));
    let sid = a.books.nonce();
    let ids = [a.id(), b.id()];
    let nonce = a.books.nonce();
    let proposal = a
        .machine
        .propose(&a.books.key, sid, &b.id(), &ids, nonce, &at(0))
        .unwrap();
    // Five minutes is the default window: one second past it is stale.
    let late = b.handle(&proposal, &at(301));
    assert!(
        matches!(
            late,
            Err(ParticipantError::Protocol(SessionError::Stale { .. }))
        ),
        "{late:?}"
    );
    let Wire::Response(r) = b.handle(&proposal, &at(300)).unwrap() else {
        panic!("expected a response")
    };
    // A answers at the edge of the window, so its confirmation is fresh.
    let step = a.machine.on_response(&a.books.key, &r, &at(600)).unwrap();
    let confirm = a.reply(step, &at(600));
    // Meanwhile B forgets handshakes that waited longer than the window
    // (it prunes them when the next proposal arrives): the confirmation
    // then finds nothing pending, although its own time is fresh.
    let mut c = Node::new(7);
    let sid2 = c.books.nonce();
    let nonce = c.books.nonce();
    let ids2 = [c.id(), b.id()];
    let p2 = c
        .machine
        .propose(&c.books.key, sid2, &b.id(), &ids2, nonce, &at(601))
        .unwrap();
    b.handle(&p2, &at(601)).unwrap();
    let forgotten = b.handle(&confirm, &at(601));
    assert!(
        matches!(forgotten, Err(ParticipantError::Unexpected(ref m)) if m.contains("no handshake with it is pending")),
        "{forgotten:?}"
    );
    assert_eq!(b.books.chain.len(), 1, "nothing recorded by B");
}

#[test]
fn a_commit_applied_after_another_writer_moved_the_order_is_refused() {
    let (mut a, mut b) = (Node::new(8), Node::new(9));
    let sid = handshake(&mut a, &mut b, 1);
    let (req, cs) = interact(&mut a, &mut b, sid, 1, 2);
    let Wire::Countersign(cs) = cs else {
        panic!("expected a countersignature")
    };
    // Two steps built from the same state: only the first may land.
    let s1 = a.machine.on_countersign(&req, &cs, &a.books).unwrap();
    let s2 = a.machine.on_countersign(&req, &cs, &a.books).unwrap();
    a.run(s1, &at(3)).unwrap();
    let len = a.books.chain.len();
    let second = a.run(s2, &at(3));
    assert!(
        matches!(second, Err(ParticipantError::Unexpected(ref m)) if m.contains("already used")),
        "{second:?}"
    );
    assert_eq!(a.books.chain.len(), len);
    assert_eq!(a.verify(), len as u64);

    // The responder's side: two requests checked against the same state
    // (another process answered in between); the second commit is refused.
    let req = |a: &mut Node, b: &Node, n| {
        a.machine
            .request(
                &a.books.key,
                sid,
                &b.id(),
                "task.done",
                data(n),
                false,
                &a.books,
                &at(4),
            )
            .unwrap()
    };
    let (r1, r2) = (req(&mut a, &b, 2), req(&mut a, &b, 3));
    let s1 = b
        .machine
        .handle(&b.books.key, r1, &b.books, &at(4))
        .unwrap();
    let s2 = b
        .machine
        .handle(&b.books.key, r2, &b.books, &at(4))
        .unwrap();
    b.run(s1, &at(4)).unwrap();
    let len = b.books.chain.len();
    let second = b.run(s2, &at(4));
    assert!(
        matches!(
            second,
            Err(ParticipantError::Protocol(SessionError::Order {
                got: 2,
                expected: 3,
                ..
            }))
        ),
        "{second:?}"
    );
    assert_eq!(b.books.chain.len(), len);
}

#[test]
fn a_handshake_is_recorded_once_per_peer_and_session() {
    let (mut a, mut b) = (Node::new(10), Node::new(11));
    let sid = handshake(&mut a, &mut b, 1);
    let ids = [a.id(), b.id()];
    // A proposes again in the same session: B refuses (a second handshake
    // would reset the order counters).
    let nonce = a.books.nonce();
    let again = a
        .machine
        .propose(&a.books.key, sid, &b.id(), &ids, nonce, &at(2))
        .unwrap();
    assert!(matches!(
        b.handle(&again, &at(2)),
        Err(ParticipantError::Protocol(SessionError::Replay(_)))
    ));
    // Interactions need a handshake with that very peer.
    let c = Node::new(12);
    let no = a.machine.request(
        &a.books.key,
        sid,
        &c.id(),
        "task.done",
        data(1),
        false,
        &a.books,
        &at(3),
    );
    assert!(
        matches!(
            no,
            Err(ParticipantError::Protocol(SessionError::NoHandshake { .. }))
        ),
        "{no:?}"
    );
}

#[test]
fn a_message_its_reader_would_refuse_is_never_sent() {
    // Capabilities worth more than a signed object may hold (64 KiB): the
    // writer refuses the proposal instead of sending what the peer's
    // parser would refuse.
    let a = Node::new(13);
    let b = Node::new(14);
    let caps: Vec<String> = (0..2000).map(|i| format!("capability-{i:040}")).collect();
    let mut big = Participant::new(a.id(), caps);
    let sid = uuid::Builder::from_random_bytes([9; 16]).into_uuid();
    let nonce = uuid::Builder::from_random_bytes([10; 16]).into_uuid();
    let refused = big.propose(&a.books.key, sid, &b.id(), &[a.id(), b.id()], nonce, &at(1));
    assert!(
        matches!(
            refused,
            Err(ParticipantError::Protocol(SessionError::Message(
                accord_core::signed::SignedError::TooLarge(_)
            )))
        ),
        "{refused:?}"
    );
}
