//! Time-dependent protocol behaviour, simulated: agents and the in-process
//! hub on one manual clock (see `support`), days passing in a line, no
//! real sleep anywhere. Each test asserts the concrete outcome (which
//! session, which error) at instants chosen on both sides of a limit.

mod support;

use std::sync::Arc;
use std::time::Duration;

use accord_core::channel::{Bundle, ChannelError, Envelope, ExchangeSecret, MAX_SESSION_AGE_MS};
use accord_core::{Keypair, Map, Timestamp};
use accord_net::channel_db::{
    BUNDLE_LIFETIME_MS, GRACE_MS, ROTATE_MS, SEQ_BLOCK, SESSION_IDLE_MS, TOMBSTONE_MS,
};
use accord_net::frame::{self, MAX_FRAME};
use accord_net::hub::serve_connection;
use accord_net::{Agent, HubCore, Limits, NetError};
use support::*;

fn ts(ms: u64) -> Timestamp {
    Timestamp::from_unix_micros(ms as i64 * 1000).unwrap()
}

/// Pins each agent's key at the other's (peer to peer, no hub).
fn introduce(a: &Agent, b: &Agent) {
    a.connect_with_bundle(b.public_bundle().unwrap().to_bytes())
        .unwrap();
    b.connect_with_bundle(a.public_bundle().unwrap().to_bytes())
        .unwrap();
}

async fn seal(from: &Agent, to: &Agent, text: &str) -> Envelope {
    from.seal_for(to.agent_id(), "message", text, Map::new())
        .await
        .unwrap()
        .0
}

#[tokio::test(start_paused = true)]
async fn an_expired_bundle_is_refused_and_a_fresh_one_is_fetched() {
    let sim = Sim::new();
    let (alice, bob) = (sim.agent("alice"), sim.agent("bob"));
    bob.attach(&sim.hub).await.unwrap();
    alice.attach(&sim.hub).await.unwrap();
    let b1 = bob.public_bundle().unwrap();
    assert_eq!(b1.created(), &ts(START), "bundles are dated by the clock");
    assert_eq!(b1.expires(), &ts(START + BUNDLE_LIFETIME_MS));
    let mut rx = bob.subscribe();
    let first = alice.send(bob.agent_id().as_str(), "one").await.unwrap();
    let m = next(&mut rx).await;
    assert_eq!(
        m.message().timestamp_ms,
        START,
        "messages are dated by the clock"
    );

    // Bob goes offline for longer than his bundle lives; the hub still
    // holds B1, which alice also cached.
    bob.detach();
    sim.at(BUNDLE_LIFETIME_MS + HOUR);
    let e = alice
        .send(bob.agent_id().as_str(), "two")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, NetError::Channel(ChannelError::BundleExpired { .. })),
        "{e:?}"
    );
    // Peer to peer too: the stale bundle is refused outright.
    let carol = sim.agent("carol");
    let e = carol.connect_with_bundle(b1.to_bytes()).unwrap_err();
    assert!(
        matches!(&e, NetError::Channel(ChannelError::BundleExpired { .. })),
        "{e:?}"
    );

    // Bob is back: his attach rotates and registers a fresh bundle, which
    // alice fetches for the new session.
    bob.attach(&sim.hub).await.unwrap();
    let b2 = bob.public_bundle().unwrap();
    assert_ne!(b2.exchange_key_id(), b1.exchange_key_id());
    assert_eq!(b2.created(), &ts(START + BUNDLE_LIFETIME_MS + HOUR));
    let (env, _) = alice
        .seal_for(bob.agent_id(), "message", "three", Map::new())
        .await
        .unwrap();
    assert_ne!(env.session_id, first.session_id, "a new session");
    assert_eq!(env.exchange_key_id.as_deref(), Some(b2.exchange_key_id()));
    assert_eq!(
        bob.receive_envelope(&env.to_bytes())
            .await
            .unwrap()
            .message()
            .text,
        "three"
    );
}

#[tokio::test(start_paused = true)]
async fn an_online_agent_rotates_and_republishes_and_the_old_bundle_stays_usable() {
    let sim = Sim::new();
    let (alice, bob) = (sim.agent("alice"), sim.agent("bob"));
    bob.attach(&sim.hub).await.unwrap();
    alice.attach(&sim.hub).await.unwrap();
    let b1 = bob.public_bundle().unwrap();
    let mut rx = bob.subscribe();
    let first = alice.send(bob.agent_id().as_str(), "one").await.unwrap();
    next(&mut rx).await;

    // Just before rotation is due, the refresher (every 10 minutes of tokio
    // time) keeps the bundle.
    sim.at(ROTATE_MS - MINUTE);
    tokio::time::advance(Duration::from_secs(600)).await;
    quiesce().await;
    assert_eq!(
        sim.hub.core().bundle(bob.agent_id().as_str()).unwrap(),
        b1.to_bytes()
    );

    // Once due, it rotates and registers the new bundle on the hub.
    sim.at(ROTATE_MS + MINUTE);
    tokio::time::advance(Duration::from_secs(600)).await;
    quiesce().await;
    let on_hub = Bundle::parse(&sim.hub.core().bundle(bob.agent_id().as_str()).unwrap()).unwrap();
    assert_ne!(on_hub.exchange_key_id(), b1.exchange_key_id());
    assert_eq!(on_hub.created(), &ts(START + ROTATE_MS + MINUTE));
    assert_eq!(on_hub.to_bytes(), bob.public_bundle().unwrap().to_bytes());

    // Alice's session is over an hour old, so she opens a new one, with the
    // B1 she cached: still valid, and bob still holds its key.
    let r = alice.send(bob.agent_id().as_str(), "two").await.unwrap();
    assert_ne!(r.session_id, first.session_id);
    let m = next(&mut rx).await;
    assert_eq!(m.message().text, "two");
    assert_eq!(m.message().session_id, r.session_id);
}

#[tokio::test(start_paused = true)]
async fn an_exchange_key_is_kept_for_its_grace_period_and_deleted_after() {
    let sim = Sim::new();
    let (alice, bob, carol) = (sim.agent("alice"), sim.agent("bob"), sim.agent("carol"));
    bob.attach(&sim.hub).await.unwrap();
    bob.detach();
    alice.attach(&sim.hub).await.unwrap();
    let b1 = bob.public_bundle().unwrap();
    // Both seal to B1 now: alice's envelope waits in the hub's queue, carol
    // holds hers to deliver peer to peer.
    alice.send(bob.agent_id().as_str(), "queued").await.unwrap();
    introduce(&carol, &bob);
    let held = seal(&carol, &bob, "held").await;
    assert_eq!(held.exchange_key_id.as_deref(), Some(b1.exchange_key_id()));
    let grace_ends = BUNDLE_LIFETIME_MS + GRACE_MS;

    // B1 has expired but its grace period has not: bob, back online (his
    // attach purges and rotates), still opens the queued envelope.
    sim.at(grace_ends - HOUR);
    let mut rx = bob.subscribe();
    assert_eq!(bob.attach(&sim.hub).await.unwrap(), 1);
    assert_eq!(next(&mut rx).await.message().text, "queued");

    // After the grace period the private half is deleted (forward
    // secrecy): the held envelope can no longer open a session.
    sim.at(grace_ends + MINUTE);
    bob.public_bundle().unwrap();
    let e = bob.receive_envelope(&held.to_bytes()).await.unwrap_err();
    assert!(matches!(&e, NetError::AuthenticationFailed(_)), "{e:?}");
    assert!(e.to_string().contains("grace period"), "{e}");
    let db = bob.home().join("channel.db");
    let n = query(
        &db,
        &format!(
            "SELECT COUNT(*) FROM exchange_keys WHERE id = '{}'",
            b1.exchange_key_id()
        ),
    );
    assert_eq!(n, 0, "the expired exchange key is gone");
}

#[tokio::test(start_paused = true)]
async fn a_purged_session_is_never_rebuilt_before_or_after_its_tombstone_expires() {
    let sim = Sim::new();
    let (alice, bob) = (sim.agent("alice"), sim.agent("bob"));
    introduce(&alice, &bob);
    let e1 = seal(&alice, &bob, "transfer 100").await;
    bob.receive_envelope(&e1.to_bytes()).await.unwrap();
    let db = bob.home().join("channel.db");
    let tombstones = || query(&db, "SELECT COUNT(*) FROM tombstones");

    // Idle just under SESSION_IDLE_MS: kept.
    sim.at(SESSION_IDLE_MS - MINUTE);
    bob.public_bundle().unwrap(); // purges
    assert_eq!(bob.status().unwrap().sessions, 1);
    assert_eq!(tombstones(), 0);

    // Idle past it: deleted with its keys, a tombstone left. The exchange
    // key that could set it up again is still kept (its grace period runs
    // two more days), so only the tombstone stops the replay.
    sim.at(SESSION_IDLE_MS + MINUTE);
    bob.public_bundle().unwrap();
    assert_eq!(bob.status().unwrap().sessions, 0);
    assert_eq!(tombstones(), 1);
    let key_kept = query(&db, "SELECT COUNT(*) FROM exchange_keys");
    assert!(key_kept >= 1);
    let e = bob.receive_envelope(&e1.to_bytes()).await.unwrap_err();
    assert!(matches!(&e, NetError::ReplayDetected(_)), "{e:?}");
    assert!(e.to_string().contains("never opened again"), "{e}");

    // The tombstone is persisted: a restarted bob refuses too, until just
    // before the tombstone's end.
    let bob = sim.restart(bob);
    sim.at(TOMBSTONE_MS - MINUTE);
    bob.public_bundle().unwrap();
    assert_eq!(tombstones(), 1);
    let e = bob.receive_envelope(&e1.to_bytes()).await.unwrap_err();
    assert!(matches!(&e, NetError::ReplayDetected(_)), "{e:?}");

    // After it, the tombstone is gone, and so is the exchange key: the
    // envelope is still refused (as undecryptable) and nothing is rebuilt.
    sim.at(TOMBSTONE_MS + MINUTE);
    bob.public_bundle().unwrap();
    assert_eq!(tombstones(), 0);
    let e = bob.receive_envelope(&e1.to_bytes()).await.unwrap_err();
    assert!(matches!(&e, NetError::AuthenticationFailed(_)), "{e:?}");
    assert!(e.to_string().contains("grace period"), "{e}");
    assert_eq!(bob.status().unwrap().sessions, 0);
}

#[tokio::test(start_paused = true)]
async fn a_sender_opens_a_new_session_at_max_session_age() {
    let sim = Sim::new();
    let (alice, bob) = (sim.agent("alice"), sim.agent("bob"));
    bob.attach(&sim.hub).await.unwrap();
    alice.attach(&sim.hub).await.unwrap();
    let mut rx = bob.subscribe();
    let s1 = alice.send(bob.agent_id().as_str(), "a").await.unwrap();
    sim.at(MAX_SESSION_AGE_MS - 1);
    let same = alice.send(bob.agent_id().as_str(), "b").await.unwrap();
    assert_eq!(same.session_id, s1.session_id);
    // Idle in memory for over LIVE_IDLE_MS (10 minutes), the session was
    // dropped from memory and reloaded from channel.db: it continues above
    // the block of sequence numbers reserved there.
    assert_eq!(same.seq, SEQ_BLOCK);
    sim.at(MAX_SESSION_AGE_MS);
    let s2 = alice.send(bob.agent_id().as_str(), "c").await.unwrap();
    assert_ne!(s2.session_id, s1.session_id);
    assert_eq!(s2.seq, 0);
    for (text, sid) in [("a", &s1), ("b", &s1), ("c", &s2)] {
        let m = next(&mut rx).await;
        assert_eq!(
            (m.message().text.as_str(), &m.message().session_id),
            (text, &sid.session_id)
        );
    }
    // Bob answers in the newest session alice opened.
    let mut arx = alice.subscribe();
    let reply = bob.send(alice.agent_id().as_str(), "ok").await.unwrap();
    assert_eq!(reply.session_id, s2.session_id);
    assert_eq!(next(&mut arx).await.message().text, "ok");
}

#[tokio::test(start_paused = true)]
async fn replays_are_refused_and_the_window_survives_reopening_channel_db() {
    let sim = Sim::new();
    let (alice, bob) = (sim.agent("alice"), sim.agent("bob"));
    introduce(&alice, &bob);
    let mut envs = Vec::new();
    for i in 0..71 {
        envs.push(seal(&alice, &bob, &format!("m{i}")).await.to_bytes());
    }
    bob.receive_envelope(&envs[0]).await.unwrap();
    bob.receive_envelope(&envs[2]).await.unwrap();
    let e = bob.receive_envelope(&envs[0]).await.unwrap_err();
    assert!(matches!(&e, NetError::ReplayDetected(_)), "{e:?}");

    // Reopen channel.db: the persisted window still refuses 0 and 2 and
    // still accepts 1 (reordered within the window).
    let bob = sim.restart(bob);
    for i in [0, 2] {
        let e = bob.receive_envelope(&envs[i]).await.unwrap_err();
        assert!(matches!(&e, NetError::ReplayDetected(_)), "{i}: {e:?}");
    }
    assert_eq!(
        bob.receive_envelope(&envs[1]).await.unwrap().message().text,
        "m1"
    );
    // The window is persisted with the time it moved (the session's last
    // use, which drives idle expiry), from the clock.
    sim.advance(5 * MINUTE);
    bob.receive_envelope(&envs[70]).await.unwrap();
    let db = bob.home().join("channel.db");
    assert_eq!(query(&db, "SELECT win_top FROM sessions"), 71);
    assert_eq!(
        query(&db, "SELECT used_ms FROM sessions") as u64,
        START + 5 * MINUTE
    );
    // Below the window now (71 − 64 > 3): refused as too old.
    let e = bob.receive_envelope(&envs[3]).await.unwrap_err();
    assert!(matches!(&e, NetError::ReplayDetected(_)), "{e:?}");
    let bob = sim.restart(bob);
    let e = bob.receive_envelope(&envs[70]).await.unwrap_err();
    assert!(matches!(&e, NetError::ReplayDetected(_)), "{e:?}");

    // Through the hub: an envelope injected again into bob's queue is
    // refused, reported, acknowledged (it would only be refused again) and
    // not handed to the handlers.
    bob.attach(&sim.hub).await.unwrap();
    alice.attach(&sim.hub).await.unwrap();
    let mut rx = bob.subscribe();
    let mut refused = refusals(&bob);
    let replay = Envelope::parse(&envs[1]).unwrap();
    sim.hub
        .core()
        .enqueue(alice.agent_id().as_str(), &replay)
        .unwrap();
    let r = next_refusal(&mut refused).await;
    assert!(r.starts_with("ReplayDetected"), "{r}");
    bob.settle().await;
    assert_eq!(sim.hub.core().queued_total(), 0);
    assert!(rx.try_recv().is_err(), "a replay reached the handlers");
    // The refused envs[70] above, and this one.
    assert_eq!(bob.status().unwrap().rejected, 2);
}

#[tokio::test(start_paused = true)]
async fn the_hub_judges_bundles_and_dates_its_records_by_its_clock() {
    let sim = Sim::with_hub_file();
    let key = Keypair::from_seed(&[7; 32]).unwrap();
    let bundle = |from: u64, to: u64| {
        Bundle::sign(&key, &ExchangeSecret::generate(&[8; 32]), ts(from), ts(to))
    };
    let client = sim.hub.connect();
    // Not yet valid on the hub's clock.
    let e = client
        .register(&key, &bundle(START + MINUTE, START + HOUR))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, NetError::Hub { code, .. } if code == "bad_bundle"),
        "{e:?}"
    );
    // Valid now (the year 2100: the system clock would refuse it).
    client
        .register(&key, &bundle(START, START + HOUR))
        .await
        .unwrap();
    let db = sim.hub_dir().join("hub.db");
    assert_eq!(query(&db, "SELECT registered_ms FROM agents") as u64, START);

    let alice = sim.agent("alice");
    alice.attach(&sim.hub).await.unwrap();
    sim.advance(MINUTE);
    alice.send(key.agent_id().as_str(), "hi").await.unwrap();
    assert_eq!(
        query(&db, "SELECT received_ms FROM queue") as u64,
        START + MINUTE
    );

    // Expired on the hub's clock: refused.
    sim.at(HOUR);
    let late = sim.hub.connect();
    let e = late
        .register(&key, &bundle(START, START + HOUR))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, NetError::Hub { code, .. } if code == "bad_bundle"),
        "{e:?}"
    );
}

// ---------------------------------------------------------- I/O deadlines
//
// These are tokio time (monotonic, local), not the wall clock: a paused
// runtime moves them without waiting.

async fn request(io: &mut tokio::io::DuplexStream, body: serde_json::Value) -> serde_json::Value {
    use tokio::io::AsyncWriteExt;
    io.write_all(&frame::encode(&serde_json::to_vec(&body).unwrap()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(T, frame::read_frame(io, MAX_FRAME))
        .await
        .expect("no reply")
        .unwrap()
        .expect("closed");
    serde_json::from_slice(&reply).unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_unregistered_connection_is_closed_at_the_registration_deadline() {
    let limits = Limits {
        register_timeout_ms: 10_000,
        ..Limits::default()
    };
    let core = Arc::new(HubCore::open(None, limits).unwrap());
    let (mut io, server) = tokio::io::duplex(64 * 1024);
    let t0 = tokio::time::Instant::now();
    tokio::spawn(serve_connection(core.clone(), server));
    // Talking is not registering: the deadline still holds.
    let hello = request(&mut io, serde_json::json!({"id": 1, "cmd": "hello"})).await;
    assert_eq!(hello["ok"], true, "{hello}");
    let open = tokio::time::timeout(
        Duration::from_millis(9_900),
        frame::read_frame(&mut io, MAX_FRAME),
    )
    .await;
    assert!(open.is_err(), "closed before the deadline: {open:?}");
    assert_eq!(core.connection_count(), 1);
    let closed = tokio::time::timeout(T, frame::read_frame(&mut io, MAX_FRAME))
        .await
        .expect("still open after the deadline");
    assert!(matches!(closed, Ok(None) | Err(_)), "{closed:?}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(10_000) && waited < Duration::from_millis(10_100),
        "{waited:?}"
    );
    let mut count = core.watch_connections();
    tokio::time::timeout(T, count.wait_for(|&n| n == 0))
        .await
        .expect("the connection stays counted")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_refills_with_elapsed_time() {
    let limits = Limits {
        rate_per_sec: 1,
        burst: 2,
        ..Limits::default()
    };
    let core = Arc::new(HubCore::open(None, limits).unwrap());
    let (mut io, server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(serve_connection(core, server));
    let hello = |id: u64| serde_json::json!({"id": id, "cmd": "hello"});
    assert_eq!(request(&mut io, hello(1)).await["ok"], true);
    assert_eq!(request(&mut io, hello(2)).await["ok"], true);
    let r = request(&mut io, hello(3)).await;
    assert_eq!(r["error"]["code"], "rate_limited", "{r}");
    tokio::time::advance(Duration::from_millis(1_000)).await;
    let r = request(&mut io, hello(4)).await;
    assert_eq!(r["ok"], true, "{r}");
    let r = request(&mut io, hello(5)).await;
    assert_eq!(r["error"]["code"], "rate_limited", "{r}");
}
