//! End to end: agents talking through the in-process hub, the TCP hub, and
//! peer to peer; and the attacks the hub protocol and the channel must
//! withstand. Loopback only, every wait bounded.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord_core::channel::{Envelope, SignedMessage};
use accord_core::{Map, Value};
use accord_net::frame::{self, MAX_FRAME};
use accord_net::{Agent, AgentOptions, HubServer, Limits, LocalHub, NetError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

fn agent(dir: &Path, name: &str) -> Agent {
    Agent::init(&dir.join(name), Some(name), None, AgentOptions::default()).unwrap()
}

async fn next(rx: &mut UnboundedReceiver<SignedMessage>) -> SignedMessage {
    timeout(T, rx.recv())
        .await
        .expect("timed out")
        .expect("closed")
}

async fn tcp_hub(
    data: Option<&Path>,
    limits: Limits,
) -> (
    String,
    Arc<accord_net::HubCore>,
    tokio::task::JoinHandle<()>,
) {
    let server = HubServer::bind("127.0.0.1:0", data, limits).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let core = server.core();
    (addr, core, tokio::spawn(server.run()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_hub_round_trip_handlers_and_chain() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LocalHub::new().unwrap();
    let (alice, bob) = (agent(dir.path(), "alice"), agent(dir.path(), "bob"));
    alice.attach(&hub).await.unwrap();
    bob.attach(&hub).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let o = order.clone();
        bob.on_message(move |m| o.lock().unwrap().push((i, m.message().text.clone())));
    }
    let mut bob_rx = bob.subscribe();
    let mut alice_rx = alice.subscribe();
    let mut payload = Map::new();
    payload.insert("task_id".into(), Value::from(42));
    let r = alice
        .send_payload(bob.agent_id().as_str(), "task", "run this", payload.clone())
        .await
        .unwrap();
    assert!(r.delivered_now);
    let m = next(&mut bob_rx).await;
    assert_eq!(m.message().text, "run this");
    assert_eq!(m.message().msg_type, "task");
    assert_eq!(m.message().payload, payload);
    assert_eq!(&m.message().from, alice.agent_id());
    assert_eq!(m.hash().to_hex(), r.message_hash);
    // Handlers ran in registration order.
    assert_eq!(
        order
            .lock()
            .unwrap()
            .iter()
            .map(|x| x.0)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    // Bob replies in the same session.
    let reply = bob.send(alice.agent_id().as_str(), "done").await.unwrap();
    assert_eq!(reply.session_id, r.session_id);
    assert_eq!(next(&mut alice_rx).await.message().text, "done");
    // Peers, status, fingerprint stable across reopen.
    assert_eq!(
        alice.list_peers().await.unwrap(),
        vec![bob.agent_id().to_string()]
    );
    let st = bob.status().unwrap();
    assert_eq!((st.sent, st.received, st.handlers), (1, 1, 4));
    assert_eq!(st.known_peers, vec![alice.agent_id().to_string()]);
    // Both chains record the message by its hash.
    alice.flush().await.unwrap();
    bob.flush().await.unwrap();
    for (a, ty) in [(&alice, "message_sent"), (&bob, "message_received")] {
        let store = accord_store::Home::new(a.home()).open_store().unwrap();
        let mut found = false;
        accord_store::EventStore::scan(&store, a.agent_id(), 0, None, &mut |_, body| {
            let text = String::from_utf8_lossy(body);
            if text.contains(ty) && text.contains(&r.message_hash) {
                found = true;
            }
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .unwrap();
        assert!(found, "{ty} not recorded");
    }
    let fp = alice.fingerprint();
    let home = alice.home().to_owned();
    drop(alice);
    let again = Agent::open(&home, None, AgentOptions::default()).unwrap();
    assert_eq!(again.fingerprint(), fp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actionable_errors() {
    let dir = tempfile::tempdir().unwrap();
    let alice = agent(dir.path(), "alice");
    let bob = agent(dir.path(), "bob");
    assert!(matches!(
        alice.send(bob.agent_id().as_str(), "x").await,
        Err(NetError::NoHub)
    ));
    let hub = LocalHub::new().unwrap();
    alice.attach(&hub).await.unwrap();
    assert!(matches!(
        alice.send(bob.agent_id().as_str(), "x").await,
        Err(NetError::PeerNotFound(_))
    ));
    assert!(matches!(
        alice.send("not an id", "x").await,
        Err(NetError::Input(_))
    ));
    // A pinned key that differs from the key the hub serves: hard error
    // until re-pinned.
    bob.attach(&hub).await.unwrap();
    let mallory = agent(dir.path(), "mallory");
    alice
        .repin(bob.agent_id().as_str(), &mallory.public_key().to_b64())
        .unwrap();
    let e = alice.send(bob.agent_id().as_str(), "x").await.unwrap_err();
    assert!(matches!(e, NetError::PeerKeyChanged { .. }), "{e}");
    assert!(e.to_string().contains("--repin"), "{e}");
    alice
        .repin(bob.agent_id().as_str(), &bob.public_key().to_b64())
        .unwrap();
    let mut rx = bob.subscribe();
    alice
        .send(bob.agent_id().as_str(), "after repin")
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.message().text, "after repin");
}

/// Bytes that pass through a relay, both directions.
type Tape = Arc<Mutex<Vec<u8>>>;

/// A TCP relay between agents and a hub that records everything, and can
/// rewrite frames from the hub (a malicious hub or network).
async fn relay(hub: String, rewrite: Option<fn(Value) -> Vec<Value>>) -> (String, Tape) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let tape: Tape = Arc::new(Mutex::new(Vec::new()));
    let t = tape.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = TcpStream::connect(&hub).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut ur, mut uw) = upstream.into_split();
            let t1 = t.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    t1.lock().unwrap().extend_from_slice(&buf[..n]);
                    if uw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            let t2 = t.clone();
            tokio::spawn(async move {
                while let Ok(Some(body)) = frame::read_frame(&mut ur, MAX_FRAME).await {
                    t2.lock().unwrap().extend_from_slice(&body);
                    let bodies = match rewrite {
                        Some(f) => {
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            f(v).iter()
                                .map(|v| serde_json::to_vec(v).unwrap())
                                .collect()
                        }
                        None => vec![body],
                    };
                    for body in bodies {
                        if cw.write_all(&frame::encode(&body)).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, tape)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_relay_and_hub_storage_see_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hubdata");
    let (hub, core, _server) = tcp_hub(Some(&data), Limits::default()).await;
    let (via, tape) = relay(hub.clone(), None).await;
    let (alice, bob) = (agent(dir.path(), "alice"), agent(dir.path(), "bob"));
    alice.attach(via.as_str()).await.unwrap();
    bob.attach(via.as_str()).await.unwrap();
    let mut rx = bob.subscribe();
    let secret = "the launch code is PURPLE-ELEPHANT-7";
    let mut payload = Map::new();
    payload.insert("field".into(), Value::from("CONFIDENTIAL-PAYLOAD-VALUE"));
    alice
        .send_payload(bob.agent_id().as_str(), "message", secret, payload)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.message().text, secret);
    // And while bob is away, a message waits in the hub's storage.
    bob.detach();
    alice
        .send(bob.agent_id().as_str(), "QUEUED-SECRET-TEXT")
        .await
        .unwrap();
    let wire = String::from_utf8_lossy(&tape.lock().unwrap()).into_owned();
    assert!(wire.contains("\"envelope\""), "the relay saw the traffic");
    for needle in ["PURPLE-ELEPHANT", "CONFIDENTIAL-PAYLOAD", "QUEUED-SECRET"] {
        assert!(!wire.contains(needle), "{needle} on the wire");
    }
    let stored = core.stored_envelopes();
    assert!(!stored.is_empty());
    let mut disk = Vec::new();
    for f in std::fs::read_dir(&data).unwrap() {
        disk.extend(std::fs::read(f.unwrap().path()).unwrap());
    }
    let disk = String::from_utf8_lossy(&disk);
    for needle in ["PURPLE-ELEPHANT", "CONFIDENTIAL-PAYLOAD", "QUEUED-SECRET"] {
        assert!(!disk.contains(needle), "{needle} in hub storage");
        assert!(
            stored
                .iter()
                .all(|e| !String::from_utf8_lossy(e).contains(needle)),
            "{needle} in a stored envelope"
        );
    }
}

fn swap_exchange_key(mut v: Value) -> Vec<Value> {
    // Replace the exchange key in every bundle the hub returns with one the
    // attacker holds (keeping the identity key and signature).
    if let Some(b) = v.pointer_mut("/result/bundle") {
        let attacker = accord_core::channel::ExchangeSecret::generate(&[66; 32]);
        use base64::Engine;
        b["exchange_key"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(attacker.public())
            .into();
        b["exchange_key_id"] = attacker.id().into();
    }
    vec![v]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substituted_exchange_key_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _core, _server) = tcp_hub(None, Limits::default()).await;
    let (via, _tape) = relay(hub.clone(), Some(swap_exchange_key)).await;
    let (alice, bob) = (agent(dir.path(), "alice"), agent(dir.path(), "bob"));
    bob.attach(hub.as_str()).await.unwrap();
    alice.attach(via.as_str()).await.unwrap();
    let e = alice.send(bob.agent_id().as_str(), "x").await.unwrap_err();
    assert!(matches!(e, NetError::AuthenticationFailed(_)), "{e}");
}

fn swap_whole_bundle(mut v: Value) -> Vec<Value> {
    // Serve a bundle of another (validly signed) identity under the
    // requested id: the agent_id no longer derives from the key.
    if let Some(b) = v.pointer_mut("/result/bundle") {
        let mallory = accord_core::Keypair::from_seed(&[9; 32]).unwrap();
        let x = accord_core::channel::ExchangeSecret::generate(&[10; 32]);
        let now =
            accord_core::Timestamp::from_unix_micros(accord_net::now_ms() as i64 * 1000).unwrap();
        let later = accord_core::Timestamp::from_unix_micros(
            (accord_net::now_ms() as i64 + 3_600_000) * 1000,
        )
        .unwrap();
        let fake = accord_core::channel::Bundle::sign(&mallory, &x, now, later);
        let wanted = b["agent_id"].clone();
        *b = fake.to_value();
        b["agent_id"] = wanted;
    }
    vec![v]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substituted_bundle_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _core, _server) = tcp_hub(None, Limits::default()).await;
    let (via, _tape) = relay(hub.clone(), Some(swap_whole_bundle)).await;
    let (alice, bob) = (agent(dir.path(), "alice"), agent(dir.path(), "bob"));
    bob.attach(hub.as_str()).await.unwrap();
    alice.attach(via.as_str()).await.unwrap();
    let e = alice.send(bob.agent_id().as_str(), "x").await.unwrap_err();
    assert!(
        matches!(e, NetError::Channel(_) | NetError::AuthenticationFailed(_)),
        "{e}"
    );
    assert!(e.to_string().contains("derives agent_id"), "{e}");
}

/// A raw protocol client for attack tests.
struct Raw(TcpStream);

impl Raw {
    async fn connect(addr: &str) -> Raw {
        Raw(TcpStream::connect(addr).await.unwrap())
    }
    async fn send_bytes(&mut self, b: &[u8]) {
        self.0.write_all(b).await.unwrap();
    }
    async fn call(&mut self, body: Value) -> Value {
        self.send_bytes(&frame::encode(&serde_json::to_vec(&body).unwrap()))
            .await;
        self.reply().await
    }
    /// The reply to `body`, skipping deliveries pushed meanwhile.
    async fn answer(&mut self, body: Value) -> Value {
        self.send_bytes(&frame::encode(&serde_json::to_vec(&body).unwrap()))
            .await;
        loop {
            let v = self.reply().await;
            if v.get("push").is_none() {
                return v;
            }
        }
    }
    async fn reply(&mut self) -> Value {
        let body = timeout(T, frame::read_frame(&mut self.0, MAX_FRAME))
            .await
            .expect("no reply")
            .unwrap()
            .expect("closed without a reply");
        serde_json::from_slice(&body).unwrap()
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_refuses_impersonation_garbage_and_unknown_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _core, _server) = tcp_hub(None, Limits::default()).await;
    let alice = agent(dir.path(), "alice");
    alice.attach(hub.as_str()).await.unwrap();
    let alice_bundle = alice.public_bundle().unwrap().to_value();

    // Mallory replays alice's bundle with a proof signed by her own key.
    let mallory = accord_core::Keypair::from_seed(&[3; 32]).unwrap();
    let mut raw = Raw::connect(&hub).await;
    let hello = raw.call(serde_json::json!({"id": 1, "cmd": "hello"})).await;
    let challenge = hello["result"]["challenge"].as_str().unwrap().to_owned();
    let proof = mallory.sign(&accord_net::hub::auth_message(alice.agent_id(), &challenge));
    use base64::Engine;
    let proof = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(proof.to_bytes());
    let r = raw
        .call(
            serde_json::json!({"id": 2, "cmd": "register", "bundle": alice_bundle, "proof": proof}),
        )
        .await;
    assert_eq!(code(&r), "bad_proof", "{r}");
    // A bundle naming alice's id under mallory's key does not verify.
    let x = accord_core::channel::ExchangeSecret::generate(&[4; 32]);
    let now = accord_core::Timestamp::from_unix_micros(accord_net::now_ms() as i64 * 1000).unwrap();
    let later =
        accord_core::Timestamp::from_unix_micros((accord_net::now_ms() as i64 + 3_600_000) * 1000)
            .unwrap();
    let mut forged = accord_core::channel::Bundle::sign(&mallory, &x, now, later).to_value();
    forged["agent_id"] = alice.agent_id().as_str().into();
    let r = raw
        .call(serde_json::json!({"id": 3, "cmd": "register", "bundle": forged, "proof": proof}))
        .await;
    assert_eq!(code(&r), "bad_bundle", "{r}");
    // Unregistered connections cannot send.
    let r = raw
        .call(serde_json::json!({"id": 4, "cmd": "send", "envelope": {}}))
        .await;
    assert_eq!(code(&r), "not_registered", "{r}");
    // Unknown command: an error reply, the connection stays usable.
    let r = raw
        .call(serde_json::json!({"id": 5, "cmd": "steal_keys"}))
        .await;
    assert_eq!(code(&r), "unknown_command", "{r}");
    assert_eq!(r["id"], 5);
    // Garbage of a valid length: an error reply, connection still usable.
    raw.send_bytes(&frame::encode(b"\x00\xffnot json")).await;
    assert_eq!(code(&raw.reply().await), "bad_request");
    let r = raw
        .call(serde_json::json!({"id": 6, "cmd": "list_agents"}))
        .await;
    assert_eq!(r["result"]["agents"][0], alice.agent_id().as_str());
    // An oversized frame: an error reply, then this connection closes.
    raw.send_bytes(&((MAX_FRAME as u32) + 1).to_be_bytes())
        .await;
    assert_eq!(code(&raw.reply().await), "frame_too_large");
    // Plain garbage (an HTTP request) reads as a huge length: same.
    let mut raw2 = Raw::connect(&hub).await;
    raw2.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(code(&raw2.reply().await), "frame_too_large");
    // The hub keeps serving.
    let mut raw3 = Raw::connect(&hub).await;
    let r = raw3
        .call(serde_json::json!({"id": 1, "cmd": "stats"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["result"]["rejected"].as_u64().unwrap() >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_limits_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_queue_per_agent: 2,
        rate_per_sec: 1,
        burst: 8,
        max_connections: 3,
        ..Limits::default()
    };
    let (hub, _core, _server) = tcp_hub(None, limits).await;
    let (alice, bob) = (agent(dir.path(), "alice"), agent(dir.path(), "bob"));
    bob.attach(hub.as_str()).await.unwrap();
    bob.detach();
    alice.attach(hub.as_str()).await.unwrap();
    // hello + register + get_bundle + 2 sends fit in the burst; the queue
    // holds 2.
    alice.send(bob.agent_id().as_str(), "1").await.unwrap();
    alice.send(bob.agent_id().as_str(), "2").await.unwrap();
    let e = alice.send(bob.agent_id().as_str(), "3").await.unwrap_err();
    assert!(
        matches!(&e, NetError::Hub { code, .. } if code == "queue_full"),
        "{e}"
    );
    let mut last = None;
    for _ in 0..10 {
        if let Err(e) = alice.send(bob.agent_id().as_str(), "x").await {
            last = Some(e);
        }
    }
    let e = last.unwrap();
    assert!(
        matches!(&e, NetError::Hub { code, .. } if code == "rate_limited"),
        "{e}"
    );
    // Connections beyond the limit get an error frame.
    let _keep: Vec<Raw> = vec![Raw::connect(&hub).await, Raw::connect(&hub).await];
    let mut over = Raw::connect(&hub).await;
    assert_eq!(code(&over.reply().await), "too_many_connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_delivery_survives_a_hub_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hubdata");
    let (alice, bob) = (agent(dir.path(), "alice"), agent(dir.path(), "bob"));
    {
        let (hub, _core, server) = tcp_hub(Some(&data), Limits::default()).await;
        bob.attach(hub.as_str()).await.unwrap();
        bob.detach();
        alice.attach(hub.as_str()).await.unwrap();
        let r = alice
            .send(bob.agent_id().as_str(), "while you were away")
            .await
            .unwrap();
        assert!(!r.delivered_now);
        alice.detach();
        server.abort();
    }
    let (hub, core, _server) = tcp_hub(Some(&data), Limits::default()).await;
    assert_eq!(core.queued_total(), 1);
    let mut rx = bob.subscribe();
    bob.on_error(|e| eprintln!("bob refused: {e}"));
    assert_eq!(bob.attach(hub.as_str()).await.unwrap(), 1);
    assert_eq!(next(&mut rx).await.message().text, "while you were away");
    // Acknowledged, so removed: settle returns once the batch's ack was
    // answered by the hub (which deletes before it replies).
    timeout(T, bob.settle())
        .await
        .expect("the receive loop never settled");
    assert_eq!(
        core.queued_total(),
        0,
        "the envelope was never acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_to_peer_replays_reorders_tampering_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (agent(dir.path(), "alice"), agent(dir.path(), "bob"));
    // No hub: bundles exchanged out of band.
    alice
        .connect_with_bundle(bob.public_bundle().unwrap().to_bytes())
        .unwrap();
    bob.connect_with_bundle(alice.public_bundle().unwrap().to_bytes())
        .unwrap();
    let mut envs = Vec::new();
    for i in 0..4 {
        let (e, _) = alice
            .seal_for(bob.agent_id(), "message", &format!("m{i}"), Map::new())
            .await
            .unwrap();
        envs.push(e.to_bytes());
    }
    // Reordered: accepted once each.
    assert_eq!(
        bob.receive_envelope(&envs[1]).await.unwrap().message().text,
        "m1"
    );
    assert_eq!(
        bob.receive_envelope(&envs[0]).await.unwrap().message().text,
        "m0"
    );
    // Replayed.
    assert!(matches!(
        bob.receive_envelope(&envs[1]).await,
        Err(NetError::ReplayDetected(_))
    ));
    // Truncated and bit-flipped.
    let mut flipped: Value = serde_json::from_slice(&envs[2]).unwrap();
    let ct = flipped["ciphertext"].as_str().unwrap().to_owned();
    let mut chars: Vec<char> = ct.chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    flipped["ciphertext"] = chars.iter().collect::<String>().into();
    assert!(matches!(
        bob.receive_envelope(&serde_json::to_vec(&flipped).unwrap())
            .await,
        Err(NetError::AuthenticationFailed(_))
    ));
    let mut short: Value = serde_json::from_slice(&envs[2]).unwrap();
    {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut bytes = b64.decode(&ct).unwrap();
        bytes.pop();
        short["ciphertext"] = b64.encode(&bytes).into();
    }
    assert!(matches!(
        bob.receive_envelope(&serde_json::to_vec(&short).unwrap())
            .await,
        Err(NetError::AuthenticationFailed(_))
    ));
    assert!(
        bob.receive_envelope(&envs[2][..envs[2].len() - 1])
            .await
            .is_err()
    );
    // The untouched envelope still opens after those failures.
    assert_eq!(
        bob.receive_envelope(&envs[2]).await.unwrap().message().text,
        "m2"
    );
    // Restart bob: the persisted window still refuses the replays.
    let home = bob.home().to_owned();
    drop(bob);
    let bob = Agent::open(&home, None, AgentOptions::default()).unwrap();
    for e in &envs[..3] {
        assert!(matches!(
            bob.receive_envelope(e).await,
            Err(NetError::ReplayDetected(_))
        ));
    }
    assert_eq!(
        bob.receive_envelope(&envs[3]).await.unwrap().message().text,
        "m3"
    );
    // Restart alice: she sends in a new session of her own (a process
    // never resumes sending in another process's session: no nonce reuse).
    let ahome = alice.home().to_owned();
    drop(alice);
    let alice = Agent::open(&ahome, None, AgentOptions::default()).unwrap();
    let (e, _) = alice
        .seal_for(bob.agent_id(), "message", "after restart", Map::new())
        .await
        .unwrap();
    assert_ne!(e.session_id, Envelope::parse(&envs[0]).unwrap().session_id);
    assert_eq!(
        bob.receive_envelope(&e.to_bytes())
            .await
            .unwrap()
            .message()
            .text,
        "after restart"
    );
    // An envelope for someone else is refused.
    let carol = agent(dir.path(), "carol");
    carol
        .connect_with_bundle(alice.public_bundle().unwrap().to_bytes())
        .unwrap();
    assert!(carol.receive_envelope(&e.to_bytes()).await.is_err());
    let parsed = Envelope::parse(&e.to_bytes()).unwrap();
    assert_eq!(&parsed.to, bob.agent_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_redelivery_and_replays_through_the_hub_are_dropped() {
    // A malicious relay that pushes every delivery twice: the receiver
    // handles each message once and reports the replays.
    fn dup(v: Value) -> Vec<Value> {
        if v.get("push").is_some() {
            vec![v.clone(), v]
        } else {
            vec![v]
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (hub, _core, _server) = tcp_hub(None, Limits::default()).await;
    let (via, _tape) = relay(hub.clone(), Some(dup)).await;
    let (alice, bob) = (agent(dir.path(), "alice"), agent(dir.path(), "bob"));
    bob.attach(via.as_str()).await.unwrap();
    alice.attach(hub.as_str()).await.unwrap();
    let mut rx = bob.subscribe();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e2 = errors.clone();
    bob.on_error(move |e| e2.lock().unwrap().push(e.to_string()));
    for i in 0..5 {
        alice
            .send(bob.agent_id().as_str(), &format!("n{i}"))
            .await
            .unwrap();
    }
    for i in 0..5 {
        assert_eq!(next(&mut rx).await.message().text, format!("n{i}"));
    }
    // The duplicates were refused as replays, not handled twice: the next
    // message handled is the next one sent.
    alice.send(bob.agent_id().as_str(), "end").await.unwrap();
    assert_eq!(next(&mut rx).await.message().text, "end");
    let errors = errors.lock().unwrap();
    assert!(
        !errors.is_empty() && errors.iter().all(|e| e.contains("replay")),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_arrives_in_full_under_flow_control() {
    // More envelopes than the hub pushes unacknowledged (MAX_UNACKED) and
    // than the client buffers: all arrive, in order, once.
    let dir = tempfile::tempdir().unwrap();
    let hub = LocalHub::new().unwrap();
    let opts = AgentOptions { record: false };
    let alice = Agent::init(&dir.path().join("a"), None, None, opts).unwrap();
    let bob = Agent::init(&dir.path().join("b"), None, None, opts).unwrap();
    bob.attach(&hub).await.unwrap();
    bob.detach();
    alice.attach(&hub).await.unwrap();
    let n = accord_net::hub::MAX_UNACKED as usize + 500;
    for i in 0..n {
        alice
            .send(bob.agent_id().as_str(), &i.to_string())
            .await
            .unwrap();
    }
    let mut rx = bob.subscribe();
    assert_eq!(bob.attach(&hub).await.unwrap(), n as u64);
    for i in 0..n {
        assert_eq!(next(&mut rx).await.message().text, i.to_string());
    }
    timeout(T, bob.settle())
        .await
        .expect("the receive loop never settled");
    assert_eq!(hub.core().queued_total(), 0, "backlog never acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_home_send_in_their_own_sessions() {
    // `accord listen` and `accord send` may run on the same home at once:
    // each process sends in a session of its own (one sender per session,
    // so sequence numbers stay in order within the receiver's window and
    // are never reused), and the receiver accepts every message.
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (agent(dir.path(), "alice"), agent(dir.path(), "bob"));
    alice
        .connect_with_bundle(bob.public_bundle().unwrap().to_bytes())
        .unwrap();
    bob.connect_with_bundle(alice.public_bundle().unwrap().to_bytes())
        .unwrap();
    let (e, _) = alice
        .seal_for(bob.agent_id(), "message", "first", Map::new())
        .await
        .unwrap();
    bob.receive_envelope(&e.to_bytes()).await.unwrap();
    let twin = Agent::open(alice.home(), None, AgentOptions::default()).unwrap();
    let mut used = std::collections::BTreeSet::new();
    used.insert((e.session_id.clone(), e.seq));
    let mut seal = async |a: &Agent, n: usize| {
        let mut sessions = std::collections::BTreeSet::new();
        for _ in 0..n {
            let (env, _) = a
                .seal_for(bob.agent_id(), "message", "x", Map::new())
                .await
                .unwrap();
            assert!(
                used.insert((env.session_id.clone(), env.seq)),
                "sequence number {} of session {} used twice",
                env.seq,
                env.session_id
            );
            sessions.insert(env.session_id.clone());
            // Interleaved, as two processes would: every one is accepted.
            bob.receive_envelope(&env.to_bytes()).await.unwrap();
        }
        sessions
    };
    let t1 = seal(&twin, 1).await;
    let a1 = seal(&alice, 300).await;
    let t2 = seal(&twin, 300).await;
    let a2 = seal(&alice, 10).await;
    assert_eq!(a1, a2);
    assert_eq!(t1, t2);
    assert!(a1.contains(&e.session_id));
    assert!(t1.is_disjoint(&a1), "the twin sends in its own session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_session_purge_is_refused_and_no_nonce_is_reused() {
    // A session purged for idleness leaves a tombstone: its captured first
    // envelope (whose exchange key is still kept) cannot rebuild it, so the
    // old message is not accepted again and the receiver's replies never
    // reuse a (session, seq) pair, i.e. an AES-GCM key and nonce.
    let dir = tempfile::tempdir().unwrap();
    // On a manual clock started at the real time: eight days pass below
    // without waiting.
    let clock = accord_net::ManualEnv::from_unix_ms(accord_net::now_ms(), 2);
    let on_clock = |name: &str| {
        Agent::init_with_clock(
            &dir.path().join(name),
            Some(name),
            None,
            AgentOptions::default(),
            accord_net::clock::manual(&clock),
        )
        .unwrap()
    };
    let alice = on_clock("alice");
    let bob_home = dir.path().join("bob");
    let bob = on_clock("bob");
    alice
        .connect_with_bundle(bob.public_bundle().unwrap().to_bytes())
        .unwrap();
    bob.connect_with_bundle(alice.public_bundle().unwrap().to_bytes())
        .unwrap();
    let (e1, _) = alice
        .seal_for(bob.agent_id(), "message", "transfer 100", Map::new())
        .await
        .unwrap();
    bob.receive_envelope(&e1.to_bytes()).await.unwrap();
    let (r1, _) = bob
        .seal_for(alice.agent_id(), "message", "reply one", Map::new())
        .await
        .unwrap();
    alice.receive_envelope(&r1.to_bytes()).await.unwrap();
    let e = bob.receive_envelope(&e1.to_bytes()).await.unwrap_err();
    assert_eq!(e.to_string().matches("replay detected").count(), 1, "{e}");
    bob.flush().await.unwrap();
    drop(bob);

    // Eight idle days: the session is purged, the exchange key is not.
    clock.advance(Duration::from_secs(8 * 86400));
    let bob = Agent::open_with_clock(
        &bob_home,
        None,
        AgentOptions::default(),
        accord_net::clock::manual(&clock),
    )
    .unwrap();
    bob.public_bundle().unwrap(); // purges
    assert_eq!(bob.status().unwrap().sessions, 0);

    let e = bob.receive_envelope(&e1.to_bytes()).await.unwrap_err();
    assert!(matches!(e, NetError::ReplayDetected(_)), "{e}");
    assert!(
        !e.to_string().contains("replay detected: replay detected"),
        "{e}"
    );
    // Alice's bundle bob cached has expired by now: he is given her
    // current one to open his new session.
    bob.connect_with_bundle(alice.public_bundle().unwrap().to_bytes())
        .unwrap();
    let (r2, _) = bob
        .seal_for(alice.agent_id(), "message", "reply two", Map::new())
        .await
        .unwrap();
    assert!(
        (r2.session_id.as_str(), r2.seq) != (r1.session_id.as_str(), r1.seq),
        "key and nonce reused"
    );
    alice.receive_envelope(&r2.to_bytes()).await.unwrap();
    // Also refused by another process on the same home.
    let twin = Agent::open_with_clock(
        &bob_home,
        None,
        AgentOptions::default(),
        accord_net::clock::manual(&clock),
    )
    .unwrap();
    assert!(twin.receive_envelope(&e1.to_bytes()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_limit_leaves_the_rest_with_the_hub() {
    // `accord listen --count N`: exactly N messages are delivered and
    // acknowledged; the others stay queued for the next connection.
    let dir = tempfile::tempdir().unwrap();
    let hub = LocalHub::new().unwrap();
    let (alice, bob) = (agent(dir.path(), "alice"), agent(dir.path(), "bob"));
    bob.attach(&hub).await.unwrap();
    bob.detach();
    alice.attach(&hub).await.unwrap();
    for i in 0..5 {
        alice
            .send(bob.agent_id().as_str(), &format!("m{i}"))
            .await
            .unwrap();
    }
    let mut rx = bob.subscribe();
    bob.set_receive_limit(Some(2));
    assert_eq!(bob.attach(&hub).await.unwrap(), 5);
    assert_eq!(next(&mut rx).await.message().text, "m0");
    assert_eq!(next(&mut rx).await.message().text, "m1");
    assert!(
        timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "more than the limit was delivered"
    );
    bob.detach();
    bob.set_receive_limit(None);
    assert_eq!(bob.attach(&hub).await.unwrap(), 3);
    for i in 2..5 {
        assert_eq!(next(&mut rx).await.message().text, format!("m{i}"));
    }
}

async fn raw_register(hub: &str, key: &accord_core::Keypair) -> Raw {
    use base64::Engine;
    let now = accord_net::now_ms() as i64;
    let ex = accord_core::channel::ExchangeSecret::generate(&[9u8; 32]);
    let bundle = accord_core::channel::Bundle::sign(
        key,
        &ex,
        accord_core::Timestamp::from_unix_micros((now - 1000) * 1000).unwrap(),
        accord_core::Timestamp::from_unix_micros((now + 3_600_000) * 1000).unwrap(),
    );
    let mut raw = Raw::connect(hub).await;
    let hello = raw.call(serde_json::json!({"id": 1, "cmd": "hello"})).await;
    let ch = hello["result"]["challenge"].as_str().unwrap().to_owned();
    let proof = key.sign(&accord_net::hub::auth_message(key.agent_id(), &ch));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(proof.to_bytes());
    let r = raw
        .call(serde_json::json!({"id": 2, "cmd": "register", "bundle": bundle.to_value(), "proof": b64}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    raw
}

fn big_envelope(key: &accord_core::Keypair, seq: u64, len: usize) -> Value {
    use base64::Engine;
    serde_json::json!({
        "cmd": "send",
        "envelope": Envelope {
            session_id: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 16]),
            from: key.agent_id().clone(),
            to: key.agent_id().clone(),
            seq,
            enc: None,
            exchange_key_id: None,
            ciphertext: vec![0x41; len],
        }.to_value(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_bounds_bytes_in_flight_and_closes_idle_or_stalled_connections() {
    let limits = Limits {
        max_inflight_bytes: 10_000,
        register_timeout_ms: 300,
        write_timeout_ms: 500,
        ..Limits::default()
    };
    let (hub, _core, _server) = tcp_hub(None, limits).await;

    // Unregistered and silent: closed after the registration timeout.
    let mut idle = Raw::connect(&hub).await;
    let closed = timeout(T, frame::read_frame(&mut idle.0, MAX_FRAME))
        .await
        .expect("an idle unregistered connection stays open");
    assert!(matches!(closed, Ok(None) | Err(_)), "{closed:?}");

    // Envelopes of ~4 KB: at most 10 000 bytes unacknowledged (2 of them).
    let key = accord_core::Keypair::from_seed(&[7u8; 32]).unwrap();
    let mut sender = raw_register(&hub, &key).await;
    for i in 0..6u64 {
        let mut req = big_envelope(&key, i, 3000);
        req["id"] = (10 + i).into();
        let r = sender.answer(req).await;
        assert_eq!(r["ok"], true, "{r}");
    }
    drop(sender);
    let mut rx = raw_register(&hub, &key).await;
    let mut qids = Vec::new();
    for _ in 0..2 {
        let push = rx.reply().await;
        assert_eq!(push["push"], "deliver", "{push}");
        qids.push(push["qid"].as_u64().unwrap());
    }
    assert!(
        timeout(
            Duration::from_millis(500),
            frame::read_frame(&mut rx.0, MAX_FRAME)
        )
        .await
        .is_err(),
        "pushed beyond the byte limit"
    );
    // An ack makes room for more.
    rx.send_bytes(&frame::encode(
        &serde_json::to_vec(&serde_json::json!({"id": 50, "cmd": "ack", "qids": [qids[0]]}))
            .unwrap(),
    ))
    .await;
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(rx.reply().await);
    }
    assert!(got.iter().any(|v| v["push"] == "deliver"), "{got:?}");
    drop(rx);

    // A registered connection that never reads: the hub's writes to it
    // stall and it is closed (the connection count drops back).
    let (hub, core, _server) = tcp_hub(
        None,
        Limits {
            write_timeout_ms: 500,
            max_inflight_bytes: 64 << 20,
            ..Limits::default()
        },
    )
    .await;
    let mut sender = raw_register(&hub, &key).await;
    for i in 0..40u64 {
        let mut req = big_envelope(&key, 100 + i, 500_000);
        req["id"] = (100 + i).into();
        let r = sender.answer(req).await;
        assert_eq!(r["ok"], true, "{r}");
    }
    drop(sender);
    // Awaited on the hub's connection count, not polled.
    let mut connections = core.watch_connections();
    timeout(T, connections.wait_for(|&n| n == 0))
        .await
        .expect("the sender's connection stays counted")
        .unwrap();
    let _stalled = raw_register(&hub, &key).await;
    // The hub's writes to it stall past write_timeout_ms (real tokio time:
    // a real socket's buffers must fill), then it is closed.
    timeout(T, connections.wait_for(|&n| n == 0))
        .await
        .expect("a stalled connection was not closed")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_contact_sender_with_an_expired_bundle_is_still_verified() {
    // Carol sent while bob was offline, then her bundle expired (she has
    // been offline more than 48 h too). Bob, seeing her for the first
    // time, still learns her identity key from the expired but signed
    // bundle and opens the message instead of losing it.
    let dir = tempfile::tempdir().unwrap();
    let hub = LocalHub::new().unwrap();
    let bob = agent(dir.path(), "bob");
    bob.attach(&hub).await.unwrap();
    bob.detach();
    let carol = accord_core::Keypair::from_seed(&[5u8; 32]).unwrap();
    let now = accord_net::now_ms();
    let ts = |ms: u64| accord_core::Timestamp::from_unix_micros(ms as i64 * 1000).unwrap();
    let expired = accord_core::channel::Bundle::sign(
        &carol,
        &accord_core::channel::ExchangeSecret::generate(&[6u8; 32]),
        ts(now - 72 * 3600 * 1000),
        ts(now - 24 * 3600 * 1000),
    );
    hub.core().register(&expired).unwrap();
    let mut session = accord_core::channel::Session::initiate(
        carol.agent_id(),
        &bob.public_bundle().unwrap(),
        [7u8; 16],
        now,
        &mut rand_core::UnwrapErr(getrandom::SysRng),
    )
    .unwrap();
    let (env, _) = session
        .seal(
            &carol,
            accord_core::channel::Draft {
                id: uuid::Uuid::from_bytes([8u8; 16]),
                timestamp_ms: now,
                msg_type: "message".into(),
                text: "sent before the bundle expired".into(),
                payload: Map::new(),
            },
        )
        .unwrap();
    hub.core().enqueue(carol.agent_id().as_str(), &env).unwrap();
    let mut rx = bob.subscribe();
    assert_eq!(bob.attach(&hub).await.unwrap(), 1);
    assert_eq!(
        next(&mut rx).await.message().text,
        "sent before the bundle expired"
    );
}
