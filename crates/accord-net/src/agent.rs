//! The agent API: an agent opened from its home directory that sends and
//! receives end-to-end encrypted messages through a hub (or peer to peer),
//! pins its peers' keys and records every message in its chain.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use accord_core::channel::{Bundle, Draft, Envelope, Role, Session, SignedMessage};
use accord_core::keyfile::KdfParams;
use accord_core::{AgentId, Keypair, Map, PublicKey, Timestamp, Value};
use accord_store::Home;
use rand_core::UnwrapErr;
use tokio::sync::mpsc;

use crate::channel_db::{CHANNEL_DB, ChannelDb, SEQ_BLOCK};
use crate::client::{Delivery, HubClient};
use crate::clock::{self, SharedClock};
use crate::hub::LocalHub;
use crate::recorder::Recorder;
use crate::{NetError, random};

/// Event type recorded in the chain for a message this agent sent.
pub const SENT_EVENT: &str = "message_sent";
/// Event type recorded in the chain for a message this agent received.
pub const RECEIVED_EVENT: &str = "message_received";

/// How an agent is opened.
#[derive(Debug, Clone, Copy)]
pub struct AgentOptions {
    /// Record every message sent and received in the agent's chain
    /// (default: on).
    pub record: bool,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions { record: true }
    }
}

/// Where a hub is.
#[derive(Debug, Clone)]
pub enum HubAddr {
    /// A TCP hub at `host:port`.
    Tcp(String),
    /// An in-process hub.
    Local(LocalHub),
}

impl From<&str> for HubAddr {
    fn from(s: &str) -> Self {
        HubAddr::Tcp(s.to_owned())
    }
}
impl From<String> for HubAddr {
    fn from(s: String) -> Self {
        HubAddr::Tcp(s)
    }
}
impl From<&LocalHub> for HubAddr {
    fn from(h: &LocalHub) -> Self {
        HubAddr::Local(h.clone())
    }
}
impl From<LocalHub> for HubAddr {
    fn from(h: LocalHub) -> Self {
        HubAddr::Local(h)
    }
}

/// What `send` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The message id.
    pub message_id: String,
    /// The session it was sent in.
    pub session_id: String,
    /// Its sequence number.
    pub seq: u64,
    /// SHA-256 of the signed message (what both chains record).
    pub message_hash: String,
    /// The hub's queue id.
    pub qid: u64,
    /// Whether the recipient was connected; otherwise the hub queued it.
    pub delivered_now: bool,
}

/// A snapshot of an agent's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The agent.
    pub agent_id: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// The attached hub, if any.
    pub hub: Option<String>,
    /// Stored sessions.
    pub sessions: u64,
    /// Pinned peers.
    pub known_peers: Vec<String>,
    /// Registered message handlers.
    pub handlers: usize,
    /// Messages sent since opening.
    pub sent: u64,
    /// Messages received since opening.
    pub received: u64,
    /// Envelopes refused since opening (replays, forgeries, garbage).
    pub rejected: u64,
}

type Handler = Arc<dyn Fn(&SignedMessage) + Send + Sync>;
type ErrorHandler = Arc<dyn Fn(&NetError) + Send + Sync>;

struct Live {
    session: Session,
    reserved: u64,
    /// Last use by this process (ms): idle sessions leave memory after
    /// [`LIVE_IDLE_MS`] (they stay in `channel.db` until purged there).
    used: u64,
}

/// Sessions unused for this long are dropped from memory (keys included);
/// they are loaded again from `channel.db` when needed.
const LIVE_IDLE_MS: u64 = 10 * 60 * 1000;

struct Inner {
    key: Keypair,
    /// Every time-dependent decision (bundle validity and rotation,
    /// session age, idleness, purges, stored times) reads this clock.
    clock: SharedClock,
    home: PathBuf,
    db: Mutex<ChannelDb>,
    /// Pinned keys already read, so a message does not pay for decoding and
    /// checking a key (a full scalar multiplication) every time.
    pins: Mutex<HashMap<AgentId, PublicKey>>,
    sessions: Mutex<HashMap<String, Live>>,
    /// The session this process sends in, per peer: only sessions this
    /// process opened (as initiator, or as the responder that stored it).
    /// Two processes on one home never send in the same session, so each
    /// session has a single sender and its sequence numbers stay within the
    /// receiver's replay window.
    sending: Mutex<HashMap<AgentId, String>>,
    /// When the in-memory sessions were last trimmed (ms).
    trimmed: AtomicU64,
    /// Messages the receive loop may still deliver (`None`: unlimited);
    /// envelopes beyond it are neither opened nor acknowledged.
    budget: Mutex<Option<u64>>,
    /// Held by the receive loop while it handles a batch (from opening to
    /// acknowledging); see [`Agent::settle`].
    receiving: Arc<tokio::sync::Mutex<()>>,
    hub: Mutex<Option<Arc<HubClient>>>,
    /// Held from sealing an envelope until it is handed to the hub, so
    /// concurrent sends reach the hub in sequence-number order (the
    /// receiver's replay window tolerates only 64 positions of reordering).
    send_order: tokio::sync::Mutex<()>,
    /// The receive loop and the bundle refresher of the attached hub.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    handlers: RwLock<Vec<Handler>>,
    error_handlers: RwLock<Vec<ErrorHandler>>,
    recorder: Option<Recorder>,
    sent: AtomicU64,
    received: AtomicU64,
    rejected: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn timestamp(ms: u64) -> Result<Timestamp, NetError> {
    Timestamp::from_unix_micros(ms as i64 * 1000).map_err(|e| NetError::Io(e.to_string()))
}

fn parse_agent(s: &str) -> Result<AgentId, NetError> {
    AgentId::parse(s).map_err(|e| NetError::Input(e.to_string()))
}

/// An agent that sends and receives end-to-end encrypted messages. Cheap to
/// clone (clones share the agent).
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Agent({})", self.inner.key.agent_id())
    }
}

impl Agent {
    /// Creates a new agent in `dir` (see `accord init`) and opens it, on
    /// the system clock.
    pub fn init(
        dir: &Path,
        name: Option<&str>,
        passphrase: Option<&[u8]>,
        options: AgentOptions,
    ) -> Result<Agent, NetError> {
        Self::init_with_clock(dir, name, passphrase, options, clock::system())
    }

    /// [`Agent::init`] on the given wall clock (a
    /// [`ManualEnv`](crate::ManualEnv) in tests and simulations).
    /// The chain's events are stamped by the same clock.
    pub fn init_with_clock(
        dir: &Path,
        name: Option<&str>,
        passphrase: Option<&[u8]>,
        options: AgentOptions,
        clock: SharedClock,
    ) -> Result<Agent, NetError> {
        let home = Home::new(dir);
        let store_agent = home.init(name, passphrase, KdfParams::DEFAULT)?;
        Self::from_store(&home, store_agent, options, clock)
    }

    /// Opens the agent in `dir` (persistent keys: the same identity and
    /// fingerprint every time), decrypting its key with `passphrase`, on the
    /// system clock.
    pub fn open(
        dir: &Path,
        passphrase: Option<&[u8]>,
        options: AgentOptions,
    ) -> Result<Agent, NetError> {
        Self::open_with_clock(dir, passphrase, options, clock::system())
    }

    /// [`Agent::open`] on the given wall clock.
    pub fn open_with_clock(
        dir: &Path,
        passphrase: Option<&[u8]>,
        options: AgentOptions,
        clock: SharedClock,
    ) -> Result<Agent, NetError> {
        let home = Home::new(dir);
        let store_agent = home.open(passphrase)?;
        Self::from_store(&home, store_agent, options, clock)
    }

    fn from_store(
        home: &Home,
        store_agent: accord_store::Agent,
        options: AgentOptions,
        clock: SharedClock,
    ) -> Result<Agent, NetError> {
        let mut store_agent = store_agent;
        // One clock for everything the agent does: its chain's timestamps
        // and nonces follow the channel's decisions.
        store_agent.set_env(clock.clone());
        let key = Keypair::from_seed(&store_agent.key().seed())
            .map_err(|e| NetError::Io(e.to_string()))?;
        let db = ChannelDb::open(&home.dir().join(CHANNEL_DB), &key)?;
        let recorder = if options.record {
            Some(Recorder::start(store_agent)?)
        } else {
            None
        };
        Ok(Agent {
            inner: Arc::new(Inner {
                key,
                clock,
                home: home.dir().to_owned(),
                db: Mutex::new(db),
                pins: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                sending: Mutex::new(HashMap::new()),
                trimmed: AtomicU64::new(0),
                budget: Mutex::new(None),
                receiving: Arc::new(tokio::sync::Mutex::new(())),
                hub: Mutex::new(None),
                send_order: tokio::sync::Mutex::new(()),
                tasks: Mutex::new(Vec::new()),
                handlers: RwLock::new(Vec::new()),
                error_handlers: RwLock::new(Vec::new()),
                recorder,
                sent: AtomicU64::new(0),
                received: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            }),
        })
    }

    /// The wall clock the agent decides by.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The agent's id.
    pub fn agent_id(&self) -> &AgentId {
        self.inner.key.agent_id()
    }

    /// The agent's identity key.
    pub fn public_key(&self) -> &PublicKey {
        self.inner.key.public()
    }

    /// The agent's fingerprint (compare it out of band).
    pub fn fingerprint(&self) -> String {
        self.inner.key.public().fingerprint()
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.inner.home
    }

    /// The agent's current public bundle (identity key + exchange key,
    /// signed), rotating the exchange key when it is due. Share it for
    /// peer-to-peer use ([`Agent::connect_with_bundle`]).
    pub fn public_bundle(&self) -> Result<Bundle, NetError> {
        let (_, bundle) = lock(&self.inner.db).current_exchange(&self.inner.key, self.now_ms())?;
        Ok(bundle)
    }

    /// Connects to a hub, proves the identity (signed challenge), publishes
    /// the bundle and starts receiving: queued envelopes arrive first.
    /// Replaces any hub attached before. Returns how many envelopes were
    /// waiting.
    pub async fn attach(&self, hub: impl Into<HubAddr>) -> Result<u64, NetError> {
        let client = match hub.into() {
            HubAddr::Tcp(addr) => HubClient::connect_tcp(&addr).await?,
            HubAddr::Local(h) => h.connect(),
        };
        let bundle = self.public_bundle()?;
        let queued = client.register(&self.inner.key, &bundle).await?;
        let client = Arc::new(client);
        let deliveries = client
            .take_deliveries()
            .ok_or_else(|| NetError::Protocol("deliveries already taken".into()))?;
        *lock(&self.inner.hub) = Some(client.clone());
        let receiver = tokio::spawn(receive_loop(
            Arc::downgrade(&self.inner),
            client.clone(),
            deliveries,
        ));
        let refresher = tokio::spawn(refresh_bundle(
            Arc::downgrade(&self.inner),
            client.clone(),
            bundle.to_bytes().to_vec(),
        ));
        let old = std::mem::replace(
            &mut *lock(&self.inner.tasks),
            vec![receiver.abort_handle(), refresher.abort_handle()],
        );
        for t in old {
            t.abort();
        }
        Ok(queued)
    }

    /// Disconnects from the hub (messages sent to this agent are queued by
    /// the hub until it attaches again).
    pub fn detach(&self) {
        for t in lock(&self.inner.tasks).drain(..) {
            t.abort();
        }
        lock(&self.inner.hub).take();
    }

    fn hub(&self) -> Result<Arc<HubClient>, NetError> {
        lock(&self.inner.hub).clone().ok_or(NetError::NoHub)
    }

    /// Registers a handler called for every message received, after its
    /// replay window is persisted. Handlers run in registration order.
    pub fn on_message(&self, handler: impl Fn(&SignedMessage) + Send + Sync + 'static) {
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(handler));
    }

    /// Registers a handler for envelopes that were refused (replays,
    /// forgeries, changed peer keys) while receiving.
    pub fn on_error(&self, handler: impl Fn(&NetError) + Send + Sync + 'static) {
        self.inner
            .error_handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(handler));
    }

    /// A queue of received messages (a handler that forwards them).
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<SignedMessage> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.on_message(move |m| {
            let _ = tx.send(m.clone());
        });
        rx
    }

    /// Limits how many more messages the receive loop delivers (`None`:
    /// no limit). Envelopes beyond the limit are neither opened nor
    /// acknowledged, so the hub keeps them for a later connection: a
    /// consumer that stops after N messages loses none.
    pub fn set_receive_limit(&self, limit: Option<u64>) {
        *lock(&self.inner.budget) = limit;
    }

    /// Waits until the receive loop is between batches: every message
    /// delivered to the handlers so far is recorded and acknowledged (or
    /// the acknowledgement failed). Call it before [`Agent::detach`] when
    /// stopping after a message, so it is not delivered again.
    pub async fn settle(&self) {
        let _idle = self.inner.receiving.lock().await;
    }

    /// Sends `text` (type `"message"`, empty payload) to `to`.
    pub async fn send(&self, to: &str, text: &str) -> Result<SendReceipt, NetError> {
        self.send_payload(to, "message", text, Map::new()).await
    }

    /// Sends a message with a type and a JSON object payload.
    pub async fn send_payload(
        &self,
        to: &str,
        msg_type: &str,
        text: &str,
        payload: Map<String, Value>,
    ) -> Result<SendReceipt, NetError> {
        let to = parse_agent(to)?;
        let hub = self.hub()?;
        let (pending, signed) = {
            let _order = self.inner.send_order.lock().await;
            let (envelope, signed) = self.seal(&to, msg_type, text, payload).await?;
            (hub.submit_send(&envelope).await?, signed)
        };
        // Replies are awaited outside the lock: many sends can be in flight.
        let (qid, online) = hub.finish_send(pending, to.as_str()).await?;
        self.inner.sent.fetch_add(1, Ordering::Relaxed);
        let m = signed.message();
        Ok(SendReceipt {
            message_id: m.id.to_string(),
            session_id: m.session_id.clone(),
            seq: m.seq,
            message_hash: signed.hash().to_hex(),
            qid,
            delivered_now: online,
        })
    }

    /// Seals a message for `to` without sending it: for peer-to-peer use
    /// (after [`Agent::connect_with_bundle`]) over any transport; the peer
    /// passes the envelope to [`Agent::receive_envelope`].
    pub async fn seal_for(
        &self,
        to: &AgentId,
        msg_type: &str,
        text: &str,
        payload: Map<String, Value>,
    ) -> Result<(Envelope, SignedMessage), NetError> {
        let sealed = self.seal(to, msg_type, text, payload).await?;
        self.inner.sent.fetch_add(1, Ordering::Relaxed);
        Ok(sealed)
    }

    async fn seal(
        &self,
        to: &AgentId,
        msg_type: &str,
        text: &str,
        payload: Map<String, Value>,
    ) -> Result<(Envelope, SignedMessage), NetError> {
        let now = self.now_ms();
        let session_id = self.session_for(to, now).await?;
        let draft = Draft {
            id: uuid::Builder::from_random_bytes(random()?).into_uuid(),
            timestamp_ms: now,
            msg_type: msg_type.to_owned(),
            text: text.to_owned(),
            payload,
        };
        let (envelope, signed) = {
            let mut sessions = lock(&self.inner.sessions);
            let live = self
                .live(&mut sessions, &session_id)?
                .ok_or_else(|| NetError::Db(format!("session {session_id} disappeared")))?;
            if live.session.next_seq() >= live.reserved {
                let end = lock(&self.inner.db).reserve_send(&session_id, now)?;
                // Another process may have reserved blocks in between:
                // continue at the start of the block just reserved.
                live.session.set_next_seq(end - SEQ_BLOCK);
                live.reserved = end;
            }
            live.used = now;
            live.session.seal(&self.inner.key, draft)?
        };
        // Recorded when sealed, before it leaves this process: a message
        // that exists is in the chain even if the hub never confirms it
        // (`message_sent` means "sealed and handed for sending").
        self.record(SENT_EVENT, &signed);
        Ok((envelope, signed))
    }

    /// The live session with this id: from memory, else from the database.
    fn live<'a>(
        &self,
        sessions: &'a mut HashMap<String, Live>,
        id: &str,
    ) -> Result<Option<&'a mut Live>, NetError> {
        if !sessions.contains_key(id) {
            let Some(s) = lock(&self.inner.db).load_session(id)? else {
                return Ok(None);
            };
            let reserved = s.next_seq();
            sessions.insert(
                id.to_owned(),
                Live {
                    session: s,
                    reserved,
                    used: self.now_ms(),
                },
            );
        }
        Ok(sessions.get_mut(id))
    }

    /// Drops sessions idle for [`LIVE_IDLE_MS`] from memory (at most once
    /// a minute), so a long-running agent neither grows without bound nor
    /// keeps old session keys in memory; `channel.db` stays authoritative.
    fn trim(&self, sessions: &mut HashMap<String, Live>, now: u64) {
        let last = self.inner.trimmed.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 60_000 {
            return;
        }
        self.inner.trimmed.store(now, Ordering::Relaxed);
        sessions.retain(|_, l| now.saturating_sub(l.used) < LIVE_IDLE_MS);
    }

    /// The session to send to `to` in: the one this process sends in if
    /// still fresh, else a new one (fetching, verifying and pinning the
    /// peer's bundle). Never a session another process sends in.
    async fn session_for(&self, to: &AgentId, now: u64) -> Result<String, NetError> {
        let current = lock(&self.inner.sending).get(to).cloned();
        if let Some(id) = current {
            let mut sessions = lock(&self.inner.sessions);
            self.trim(&mut sessions, now);
            if let Some(live) = self.live(&mut sessions, &id)?
                && !live.session.should_replace(now)
            {
                return Ok(id);
            }
        }
        let bundle = self.peer_bundle(to, now).await?;
        let session = Session::initiate(
            self.agent_id(),
            &bundle,
            random()?,
            now,
            &mut UnwrapErr(getrandom::SysRng),
        )?;
        let id = session.id().to_owned();
        if !lock(&self.inner.db).save_session(&session, now)? {
            return Err(NetError::Db(format!(
                "a new session id {id} is already known (random number generator failure?)"
            )));
        }
        lock(&self.inner.sessions).insert(
            id.clone(),
            Live {
                session,
                reserved: 0,
                used: now,
            },
        );
        lock(&self.inner.sending).insert(to.clone(), id.clone());
        Ok(id)
    }

    /// A verified, pinned, currently valid bundle of `peer`: the cached one,
    /// else the hub's.
    async fn peer_bundle(&self, peer: &AgentId, now: u64) -> Result<Bundle, NetError> {
        let now_ts = timestamp(now)?;
        let cached = lock(&self.inner.db).peer_bundle(peer)?;
        if let Some(b) = cached
            && b.check_valid_at(&now_ts).is_ok()
        {
            lock(&self.inner.db).check_pin(peer, b.public_key(), now)?;
            return Ok(b);
        }
        let hub = self.hub()?;
        let bytes = hub.get_bundle(peer.as_str()).await?;
        let bundle = self.accept_bundle(&bytes, now)?;
        if bundle.agent_id() != peer {
            return Err(NetError::AuthenticationFailed(format!(
                "asked the hub for {peer}'s bundle and got {}'s",
                bundle.agent_id()
            )));
        }
        Ok(bundle)
    }

    /// Verifies a bundle (signature, agent_id derivation, validity), checks
    /// or sets the pin, caches it.
    fn accept_bundle(&self, bytes: &[u8], now: u64) -> Result<Bundle, NetError> {
        self.accept_bundle_inner(bytes, now, true)
    }

    /// [`Agent::accept_bundle`]; with `check_expiry` false an expired
    /// bundle is accepted too: enough to learn a sender's identity key
    /// (the signature and the agent id derivation are still checked), not
    /// to open a session to it.
    fn accept_bundle_inner(
        &self,
        bytes: &[u8],
        now: u64,
        check_expiry: bool,
    ) -> Result<Bundle, NetError> {
        let bundle = Bundle::parse(bytes)?;
        if check_expiry {
            bundle.check_valid_at(&timestamp(now)?)?;
        }
        let mut db = lock(&self.inner.db);
        db.check_pin(bundle.agent_id(), bundle.public_key(), now)?;
        db.save_peer_bundle(&bundle)?;
        Ok(bundle)
    }

    /// The key pinned for `peer` (cached).
    fn pinned(&self, peer: &AgentId) -> Result<Option<PublicKey>, NetError> {
        if let Some(k) = lock(&self.inner.pins).get(peer) {
            return Ok(Some(*k));
        }
        let k = lock(&self.inner.db).pinned(peer)?;
        if let Some(k) = k {
            lock(&self.inner.pins).insert(peer.clone(), k);
        }
        Ok(k)
    }

    /// Opens a session to `peer` ahead of the first message (optional:
    /// `send` does it when needed). Returns the session id.
    pub async fn connect(&self, peer: &str) -> Result<String, NetError> {
        let peer = parse_agent(peer)?;
        self.session_for(&peer, self.now_ms()).await
    }

    /// Peer to peer, without a hub: verifies and pins a bundle obtained
    /// out of band. Returns the peer's id.
    pub fn connect_with_bundle(&self, bundle: &[u8]) -> Result<AgentId, NetError> {
        let b = self.accept_bundle(bundle, self.now_ms())?;
        Ok(b.agent_id().clone())
    }

    /// Agents registered on the hub, this one excluded.
    pub async fn list_peers(&self) -> Result<Vec<String>, NetError> {
        let me = self.agent_id().as_str().to_owned();
        Ok(self
            .hub()?
            .list_agents()
            .await?
            .into_iter()
            .filter(|a| *a != me)
            .collect())
    }

    /// Pinned peers and the keys pinned for them (base64url).
    pub fn pinned_peers(&self) -> Result<Vec<(String, String)>, NetError> {
        lock(&self.inner.db).pins()
    }

    /// Re-pins `peer` to `key` (base64url): the explicit decision after a
    /// [`NetError::PeerKeyChanged`], once the new key was checked out of
    /// band. Sessions with the peer are dropped.
    pub fn repin(&self, peer: &str, key: &str) -> Result<(), NetError> {
        let peer = parse_agent(peer)?;
        let key = PublicKey::from_b64(key).map_err(|e| NetError::Input(e.to_string()))?;
        lock(&self.inner.sessions).retain(|_, l| l.session.peer() != &peer);
        lock(&self.inner.sending).remove(&peer);
        lock(&self.inner.db).repin(&peer, &key, self.now_ms())?;
        lock(&self.inner.pins).insert(peer, key);
        Ok(())
    }

    /// State of the agent.
    pub fn status(&self) -> Result<Status, NetError> {
        let db = lock(&self.inner.db);
        Ok(Status {
            agent_id: self.agent_id().to_string(),
            fingerprint: self.fingerprint(),
            hub: lock(&self.inner.hub).as_ref().map(|h| h.label().to_owned()),
            sessions: db.session_count()?,
            known_peers: db.pins()?.into_iter().map(|(a, _)| a).collect(),
            handlers: self
                .inner
                .handlers
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .len(),
            sent: self.inner.sent.load(Ordering::Relaxed),
            received: self.inner.received.load(Ordering::Relaxed),
            rejected: self.inner.rejected.load(Ordering::Relaxed),
        })
    }

    /// Waits until every message sent or received so far is recorded in
    /// the chain.
    pub async fn flush(&self) -> Result<(), NetError> {
        match &self.inner.recorder {
            Some(r) => r.flush().await,
            None => Ok(()),
        }
    }

    /// Opens an envelope that arrived by any transport (peer to peer):
    /// verifies it, persists the replay window, runs the handlers, and
    /// returns the message.
    pub async fn receive_envelope(&self, envelope: &[u8]) -> Result<SignedMessage, NetError> {
        let env = Envelope::parse(envelope)?;
        self.ensure_peer_key(&env.from, None).await?;
        let mut out = self.open_batch(vec![Ok(env)])?;
        let result = out
            .pop()
            .unwrap_or_else(|| Err(NetError::Protocol("nothing opened".into())));
        match &result {
            Ok(m) => self.dispatch(m),
            Err(_) => {
                self.inner.rejected.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// Makes sure the identity key of `peer` is pinned, fetching its bundle
    /// from the hub on first contact.
    async fn ensure_peer_key(
        &self,
        peer: &AgentId,
        via: Option<&Arc<HubClient>>,
    ) -> Result<(), NetError> {
        if self.pinned(peer)?.is_some() {
            return Ok(());
        }
        let hub = match via {
            Some(h) => h.clone(),
            None => lock(&self.inner.hub).clone().ok_or_else(|| {
                NetError::Input(format!(
                    "{peer} is unknown here and no hub is attached: pass its bundle to connect_with_bundle first"
                ))
            })?,
        };
        let bytes = hub.get_bundle(peer.as_str()).await?;
        // Only the identity key is needed here: a bundle that expired while
        // the peer was offline still proves it (signed, id derived from it).
        let b = self.accept_bundle_inner(&bytes, self.now_ms(), false)?;
        if b.agent_id() != peer {
            return Err(NetError::AuthenticationFailed(format!(
                "asked the hub for {peer}'s bundle and got {}'s",
                b.agent_id()
            )));
        }
        Ok(())
    }

    /// Opens a batch of envelopes and persists their replay windows in one
    /// transaction before returning (so a replay after a restart is
    /// refused). The outer error is a storage failure (nothing may be
    /// acknowledged then).
    fn open_batch(
        &self,
        envelopes: Vec<Result<Envelope, NetError>>,
    ) -> Result<Vec<Result<SignedMessage, NetError>>, NetError> {
        let now = self.now_ms();
        let mut out = Vec::with_capacity(envelopes.len());
        let mut windows = Vec::new();
        let mut sessions = lock(&self.inner.sessions);
        self.trim(&mut sessions, now);
        for env in envelopes {
            let r = env.and_then(|env| self.open_one(&mut sessions, &env, now, &mut windows));
            out.push(r);
        }
        if !windows.is_empty()
            && let Err(e) = lock(&self.inner.db).save_windows(&windows, now)
        {
            // The windows advanced in memory only: drop those sessions, so
            // they are loaded again with the stored (older) windows and the
            // same envelopes are accepted when delivered again.
            for (id, _) in &windows {
                sessions.remove(id);
            }
            return Err(e);
        }
        Ok(out)
    }

    fn open_one(
        &self,
        sessions: &mut HashMap<String, Live>,
        env: &Envelope,
        now: u64,
        windows: &mut Vec<(String, accord_core::channel::ReplayWindow)>,
    ) -> Result<SignedMessage, NetError> {
        if &env.to != self.agent_id() {
            return Err(NetError::AuthenticationFailed(format!(
                "envelope addressed to {}, not to this agent",
                env.to
            )));
        }
        let peer_key = self
            .pinned(&env.from)?
            .ok_or_else(|| NetError::PeerNotFound(env.from.to_string()))?;
        if let Some(live) = self.live(sessions, &env.session_id)? {
            live.used = now;
            let signed = live.session.open(env, &peer_key)?;
            windows.push((env.session_id.clone(), live.session.window()));
            return Ok(signed);
        }
        let Some(key_id) = &env.exchange_key_id else {
            return Err(NetError::AuthenticationFailed(format!(
                "a reply in session {} which this agent does not have",
                env.session_id
            )));
        };
        if lock(&self.inner.db).session_known(&env.session_id)? {
            return Err(NetError::ReplayDetected(format!(
                "session {} was closed here and is never opened again",
                env.session_id
            )));
        }
        let secret = lock(&self.inner.db).exchange_secret(key_id)?.ok_or_else(|| {
            NetError::AuthenticationFailed(format!(
                "exchange key {key_id} is unknown or was deleted after its grace period (forward secrecy); the sender must open a new session"
            ))
        })?;
        let mut session = Session::respond(self.agent_id(), &secret, env, now)?;
        let signed = session.open(env, &peer_key)?;
        // Stored only once an authentic message opened it, so garbage
        // cannot fill the database with sessions. Never over an existing
        // or closed session (another process may have stored it first).
        if !lock(&self.inner.db).save_session(&session, now)? {
            return match self.live(sessions, &env.session_id)? {
                Some(live) => {
                    live.used = now;
                    let signed = live.session.open(env, &peer_key)?;
                    windows.push((env.session_id.clone(), live.session.window()));
                    Ok(signed)
                }
                None => Err(NetError::ReplayDetected(format!(
                    "session {} was closed here and is never opened again",
                    env.session_id
                ))),
            };
        }
        let reserved = session.next_seq();
        debug_assert_eq!(session.role(), Role::Responder);
        sessions.insert(
            env.session_id.clone(),
            Live {
                session,
                reserved,
                used: now,
            },
        );
        lock(&self.inner.sending).insert(env.from.clone(), env.session_id.clone());
        Ok(signed)
    }

    fn dispatch(&self, m: &SignedMessage) {
        self.inner.received.fetch_add(1, Ordering::Relaxed);
        self.record(RECEIVED_EVENT, m);
        let handlers = self
            .inner
            .handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for h in handlers {
            // A panicking handler must not stop delivery to the others or
            // kill the receive loop.
            if catch_unwind(AssertUnwindSafe(|| h(m))).is_err() {
                self.report(&NetError::Io("a message handler panicked".into()));
            }
        }
    }

    fn report(&self, e: &NetError) {
        let handlers = self
            .inner
            .error_handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for h in handlers {
            let _ = catch_unwind(AssertUnwindSafe(|| h(e)));
        }
    }

    fn record(&self, event_type: &str, m: &SignedMessage) {
        let Some(r) = &self.inner.recorder else {
            return;
        };
        let msg = m.message();
        let me = self.agent_id();
        let peer = if &msg.from == me { &msg.to } else { &msg.from };
        let mut p = Map::new();
        p.insert("message_hash".into(), m.hash().to_hex().into());
        p.insert("message_id".into(), msg.id.to_string().into());
        p.insert("peer".into(), peer.as_str().into());
        p.insert("session_id".into(), msg.session_id.clone().into());
        p.insert("seq".into(), msg.seq.into());
        p.insert("direction".into(), msg.direction.as_str().into());
        r.record(event_type, p);
    }
}

/// How often an attached agent checks whether its exchange key is due for
/// rotation (and republishes its bundle when it rotated).
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Keeps the hub's copy of the bundle current while attached: a long-lived
/// agent rotates its exchange key every 24 h and its bundle must not expire.
async fn refresh_bundle(weak: Weak<Inner>, client: Arc<HubClient>, mut published: Vec<u8>) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let agent = Agent { inner };
        // An idle agent drops idle session keys from memory too.
        agent.trim(&mut lock(&agent.inner.sessions), agent.now_ms());
        match agent.public_bundle() {
            Ok(b) if b.to_bytes() != published.as_slice() => {
                match client.register(&agent.inner.key, &b).await {
                    Ok(_) => published = b.to_bytes().to_vec(),
                    Err(e) => agent.report(&e),
                }
            }
            Ok(_) => {}
            Err(e) => agent.report(&e),
        }
    }
}

/// Whether a refusal may go away by itself (storage, network, the hub):
/// such envelopes are not acknowledged, so the hub delivers them again.
fn transient(e: &NetError) -> bool {
    matches!(
        e,
        NetError::Db(_)
            | NetError::Sqlite(_)
            | NetError::System { .. }
            | NetError::Io(_)
            | NetError::Home(_)
            | NetError::Disconnected(_)
            | NetError::Timeout(_)
            | NetError::Hub { .. }
            | NetError::NoHub
    )
}

async fn receive_loop(weak: Weak<Inner>, client: Arc<HubClient>, mut rx: mpsc::Receiver<Delivery>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let agent = Agent { inner };
        let receiving = agent.inner.receiving.clone();
        let _busy = receiving.lock().await;
        // Deliver no more than the consumer asked for; the rest is neither
        // opened nor acknowledged (the hub keeps it).
        if let Some(left) = *lock(&agent.inner.budget) {
            batch.truncate(left.min(batch.len() as u64) as usize);
        }
        if batch.is_empty() {
            continue;
        }
        let mut envs = Vec::with_capacity(batch.len());
        for d in &batch {
            let env = Envelope::from_value(&d.envelope).map_err(NetError::from);
            let env = match env {
                // The connection the envelope came from, not whatever hub
                // is attached now (attach may still be finishing).
                Ok(e) => agent
                    .ensure_peer_key(&e.from, Some(&client))
                    .await
                    .map(|()| e),
                Err(e) => Err(e),
            };
            envs.push(env);
        }
        let results = match agent.open_batch(envs) {
            Ok(r) => r,
            Err(e) => {
                // Storage failed: acknowledge nothing, so the hub delivers
                // the batch again later.
                agent.report(&e);
                continue;
            }
        };
        let mut qids = Vec::with_capacity(batch.len());
        let mut delivered = 0u64;
        for (d, r) in batch.iter().zip(results) {
            match r {
                Ok(m) => {
                    agent.dispatch(&m);
                    delivered += 1;
                    qids.push(d.qid);
                }
                Err(e) => {
                    agent.inner.rejected.fetch_add(1, Ordering::Relaxed);
                    // Refused for good (replay, forgery): acknowledged, as
                    // delivering it again would only be refused again.
                    // Refused for a passing reason (the peer's key could
                    // not be fetched, storage): kept by the hub.
                    if !transient(&e) {
                        qids.push(d.qid);
                    }
                    agent.report(&e);
                }
            }
        }
        if let Some(left) = lock(&agent.inner.budget).as_mut() {
            *left = left.saturating_sub(delivered);
        }
        // Acknowledged only once the batch is in the chain: a crash before
        // that leaves the envelopes with the hub (and a later delivery is
        // refused as a replay, but the message is not lost unrecorded).
        if let Err(e) = agent.flush().await {
            agent.report(&e);
            continue;
        }
        if !qids.is_empty() && client.ack(&qids).await.is_err() {
            return;
        }
    }
}
