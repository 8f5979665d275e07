//! The hub: stores public bundles, routes sealed envelopes, queues them
//! durably for agents that are offline. It never holds a key that opens an
//! envelope, and registration proves possession of the identity key, so it
//! cannot be used to impersonate an agent either.
//!
//! One connection handler serves both the TCP hub ([`HubServer`]) and the
//! in-process hub ([`LocalHub`], which runs it over in-memory pipes), so
//! both speak exactly the protocol in `docs/PROTOCOL.md` §19.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord_core::channel::{Bundle, Envelope};
use accord_core::{AgentId, Map, Signature, Timestamp, Value, jcs};
use accord_store::schema;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::clock::{self, SharedClock};
use crate::frame::{self, FrameError, MAX_FRAME};
use crate::{NetError, random};

/// The protocol name `hello` returns.
pub const HUB_PROTOCOL: &str = "accord-hub/1";
/// `format` of the registration proof.
pub const AUTH_FORMAT: &str = "accord-hub-auth/1";
/// File name of the hub's database inside `--data DIR`.
pub const HUB_DB: &str = "hub.db";
/// SQLite `application_id` of `hub.db`: ASCII "ACCH" (0x41434348).
pub const HUB_APPLICATION_ID: i32 = schema::tag(b"ACCH");
/// Schema version of `hub.db` (`PRAGMA user_version`). Version 1 is the
/// schema below; files from before versioning (version 0, no application
/// id) are recognised by their tables and stamped on open.
pub const HUB_SCHEMA_VERSION: i32 = 1;

/// The schema at [`HUB_SCHEMA_VERSION`]; `IF NOT EXISTS` so the same
/// statements also complete an unversioned file.
const HUB_DDL: &str = "
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    bundle BLOB NOT NULL,
    created TEXT NOT NULL,
    registered_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
    qid INTEGER PRIMARY KEY AUTOINCREMENT,
    to_agent TEXT NOT NULL,
    from_agent TEXT NOT NULL,
    envelope BLOB NOT NULL,
    received_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS queue_to ON queue(to_agent, qid);
";

const HUB_SCHEMA: schema::Schema<'static> = schema::Schema {
    kind: "Accord hub database",
    application_id: HUB_APPLICATION_ID,
    version: HUB_SCHEMA_VERSION,
    create: HUB_DDL,
    upgrade: &upgrade_hub_db,
};

/// Upgrades to [`HUB_SCHEMA_VERSION`]. Only version 0 exists below it: a
/// hub database from before versioning, recognised by its two tables (a
/// foreign unversioned database is refused, not stamped); its schema is
/// the current one.
fn upgrade_hub_db(conn: &Connection, from: i32) -> Result<(), schema::UpgradeError> {
    if from != 0 {
        return Err(schema::UpgradeError::NotOurs(format!(
            "unknown schema version {from}"
        )));
    }
    let tables: [(&str, &[&str]); 2] = [
        (
            "agents",
            &[
                "agent_id",
                "public_key",
                "bundle",
                "created",
                "registered_ms",
            ],
        ),
        (
            "queue",
            &["qid", "to_agent", "from_agent", "envelope", "received_ms"],
        ),
    ];
    for (t, cols) in tables {
        if !schema::has_table(conn, t, cols)? {
            return Err(schema::UpgradeError::NotOurs(format!(
                "unversioned SQLite database without the hub table {t}"
            )));
        }
    }
    conn.execute_batch(HUB_DDL)?;
    Ok(())
}
/// Most envelopes pushed to one connection and not yet acknowledged; the
/// hub waits for acks beyond that, so a slow receiver bounds its own queue.
pub const MAX_UNACKED: u64 = 1024;

/// Limits a hub enforces, each with a clear error when reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame body in bytes.
    pub max_frame: usize,
    /// Simultaneous connections.
    pub max_connections: usize,
    /// Envelopes queued (not yet acknowledged) for one recipient.
    pub max_queue_per_agent: u64,
    /// Registered agents.
    pub max_agents: u64,
    /// Sustained requests per second per connection.
    pub rate_per_sec: u32,
    /// Burst of requests per connection above the sustained rate.
    pub burst: u32,
    /// Bytes of envelopes pushed to one connection and not yet
    /// acknowledged (at least one envelope is always allowed): bounds the
    /// memory a receiver that does not read can hold on the hub.
    pub max_inflight_bytes: usize,
    /// Milliseconds a connection may take to register; then it is closed
    /// (idle unauthenticated connections cannot hold every slot).
    pub register_timeout_ms: u64,
    /// Milliseconds a write to a connection may stall (the peer does not
    /// read); then the connection is closed.
    pub write_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: MAX_FRAME,
            max_connections: 1024,
            max_queue_per_agent: 100_000,
            max_agents: 100_000,
            rate_per_sec: 50_000,
            burst: 100_000,
            max_inflight_bytes: 8 << 20,
            register_timeout_ms: 10_000,
            write_timeout_ms: 30_000,
        }
    }
}

/// A refusal the hub sends back: a stable `code` and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable error code.
    pub code: &'static str,
    /// Explanation.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// Counters of a hub's activity.
#[derive(Debug, Default)]
pub struct Counters {
    /// Envelopes accepted for routing.
    pub routed: AtomicU64,
    /// Envelopes pushed to recipients (re-deliveries count again).
    pub delivered: AtomicU64,
    /// Envelopes acknowledged by recipients (and removed).
    pub acked: AtomicU64,
    /// Requests refused with an error.
    pub rejected: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
}

struct Online {
    conn: u64,
    notify: Arc<Notify>,
    delivery: AbortHandle,
}

/// The hub's state: registered agents, the queue, who is online, counters.
/// Storage is SQLite: a file under `--data DIR` (the queue survives a
/// restart) or in memory.
pub struct HubCore {
    db: Mutex<Connection>,
    queued: Mutex<HashMap<String, u64>>,
    online: Mutex<HashMap<String, Online>>,
    /// Connections open now; a watch so monitors and tests can await a
    /// change instead of polling.
    connections: watch::Sender<usize>,
    next_conn: AtomicU64,
    limits: Limits,
    /// Wall clock for bundle validity at registration and stored times.
    clock: SharedClock,
    /// Activity counters.
    pub counters: Counters,
}

impl std::fmt::Debug for HubCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubCore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl HubCore {
    /// Opens (or creates) the hub's database in `data_dir`, or an in-memory
    /// one when `None`, on the system clock. A `hub.db` of another program
    /// or of a newer Accord is refused and left untouched
    /// ([`NetError::Schema`]).
    pub fn open(data_dir: Option<&Path>, limits: Limits) -> Result<HubCore, NetError> {
        Self::open_with_clock(data_dir, limits, clock::system())
    }

    /// [`HubCore::open`] on the given wall clock (a
    /// [`ManualEnv`](crate::ManualEnv) in tests and simulations).
    pub fn open_with_clock(
        data_dir: Option<&Path>,
        limits: Limits,
        clock: SharedClock,
    ) -> Result<HubCore, NetError> {
        let conn = match data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| NetError::System {
                    what: format!("cannot create {}", dir.display()),
                    source,
                })?;
                schema::open(&dir.join(HUB_DB), &HUB_SCHEMA)?.0
            }
            None => {
                let conn = Connection::open_in_memory()?;
                schema::migrate(&conn, Path::new(":memory:"), &HUB_SCHEMA)?;
                conn
            }
        };
        // WAL + NORMAL: a committed envelope survives a crash or restart of
        // the hub process; a power loss may lose the last commits
        // (docs/SECURITY.md). Set after the version check, which must not
        // write to a refused file.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;",
        )?;
        let mut queued = HashMap::new();
        {
            let mut st = conn.prepare("SELECT to_agent, COUNT(*) FROM queue GROUP BY to_agent")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (a, n) = row?;
                queued.insert(a, n as u64);
            }
        }
        Ok(HubCore {
            db: Mutex::new(conn),
            queued: Mutex::new(queued),
            online: Mutex::new(HashMap::new()),
            connections: watch::Sender::new(0),
            next_conn: AtomicU64::new(1),
            limits,
            clock,
            counters: Counters::default(),
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (statements are atomic), so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The wall clock the hub decides by.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Registers or updates a bundle whose owner proved possession of the
    /// key. The first key registered for an agent_id keeps it; later bundles
    /// must carry the same key and be at least as new.
    pub fn register(&self, bundle: &Bundle) -> Result<(), Refusal> {
        let db = self.db();
        let id = bundle.agent_id().as_str();
        let existing: Option<(String, String)> = db
            .query_row(
                "SELECT public_key, created FROM agents WHERE agent_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(internal)?;
        match existing {
            Some((key, _)) if key != bundle.public_key().to_b64() => {
                return Err(refuse(
                    "agent_id_taken",
                    format!(
                        "{id} is registered with another identity key; a registration cannot be taken over"
                    ),
                ));
            }
            Some((_, created)) if created.as_str() > bundle.created().as_str() => {
                return Err(refuse(
                    "stale_bundle",
                    "the hub holds a newer bundle for this agent",
                ));
            }
            Some(_) => {}
            None => {
                let n: i64 = db
                    .query_row("SELECT COUNT(*) FROM agents", [], |r| r.get(0))
                    .map_err(internal)?;
                if n as u64 >= self.limits.max_agents {
                    return Err(refuse(
                        "hub_full",
                        format!(
                            "the hub holds its maximum of {} agents",
                            self.limits.max_agents
                        ),
                    ));
                }
            }
        }
        db.execute(
            "INSERT INTO agents (agent_id, public_key, bundle, created, registered_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(agent_id) DO UPDATE SET bundle = ?3, created = ?4",
            params![
                id,
                bundle.public_key().to_b64(),
                bundle.to_bytes(),
                bundle.created().as_str(),
                self.now_ms() as i64
            ],
        )
        .map_err(internal)?;
        Ok(())
    }

    /// The stored bundle of `agent_id`.
    pub fn bundle(&self, agent_id: &str) -> Option<Vec<u8>> {
        self.db()
            .query_row(
                "SELECT bundle FROM agents WHERE agent_id = ?1",
                [agent_id],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten()
    }

    /// Whether `agent_id` is registered (a cached statement: this runs for
    /// every envelope).
    pub fn is_registered(&self, agent_id: &str) -> bool {
        let db = self.db();
        let Ok(mut st) = db.prepare_cached("SELECT 1 FROM agents WHERE agent_id = ?1") else {
            return false;
        };
        st.exists([agent_id]).unwrap_or(false)
    }

    /// Registered agent ids (at most `limit`), sorted.
    pub fn agents(&self, limit: usize) -> Vec<String> {
        let db = self.db();
        let Ok(mut st) = db.prepare("SELECT agent_id FROM agents ORDER BY agent_id LIMIT ?1")
        else {
            return Vec::new();
        };
        st.query_map([limit as i64], |r| r.get(0))
            .map(|rows| rows.filter_map(Result::ok).collect())
            .unwrap_or_default()
    }

    /// Queues an envelope from the authenticated sender `from`. Returns the
    /// queue id and whether the recipient is connected now.
    pub fn enqueue(&self, from: &str, envelope: &Envelope) -> Result<(u64, bool), Refusal> {
        if envelope.from.as_str() != from {
            return Err(refuse(
                "forbidden",
                format!(
                    "this connection is registered as {from}; it cannot send as {}",
                    envelope.from
                ),
            ));
        }
        let to = envelope.to.as_str();
        if !self.is_registered(to) {
            return Err(refuse(
                "peer_not_found",
                format!("no agent {to} is registered on this hub"),
            ));
        }
        {
            let mut q = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            let n = q.entry(to.to_owned()).or_default();
            if *n >= self.limits.max_queue_per_agent {
                return Err(refuse(
                    "queue_full",
                    format!(
                        "{to} has {} undelivered envelopes queued (the limit); retry after it reconnects",
                        *n
                    ),
                ));
            }
            *n += 1;
        }
        let res = {
            // One lock for the insert and its rowid, so a concurrent insert
            // cannot hand back another envelope's qid.
            let db = self.db();
            db.execute(
                "INSERT INTO queue (to_agent, from_agent, envelope, received_ms) VALUES (?1, ?2, ?3, ?4)",
                params![to, from, envelope.to_bytes(), self.now_ms() as i64],
            )
            .map(|_| db.last_insert_rowid())
        };
        let qid = match res {
            Ok(rowid) => rowid as u64,
            Err(e) => {
                self.adjust_queued(to, -1);
                return Err(internal(e));
            }
        };
        self.counters.routed.fetch_add(1, Ordering::Relaxed);
        let online = self.online.lock().unwrap_or_else(|p| p.into_inner());
        let is_online = match online.get(to) {
            Some(o) => {
                o.notify.notify_one();
                true
            }
            None => false,
        };
        Ok((qid, is_online))
    }

    fn adjust_queued(&self, to: &str, delta: i64) {
        let mut q = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        let n = q.entry(to.to_owned()).or_default();
        *n = n.saturating_add_signed(delta);
    }

    /// Queued envelopes for `agent` with queue ids above `after`.
    pub fn pending(&self, agent: &str, after: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        let db = self.db();
        let Ok(mut st) = db.prepare_cached(
            "SELECT qid, envelope FROM queue WHERE to_agent = ?1 AND qid > ?2 ORDER BY qid LIMIT ?3",
        ) else {
            return Vec::new();
        };
        st.query_map(params![agent, after as i64, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
    }

    /// Removes acknowledged envelopes of `agent`; returns how many were removed.
    pub fn ack(&self, agent: &str, qids: &[u64]) -> usize {
        let mut db = self.db();
        let Ok(tx) = db.transaction() else { return 0 };
        let mut n = 0;
        {
            let Ok(mut st) =
                tx.prepare_cached("DELETE FROM queue WHERE qid = ?1 AND to_agent = ?2")
            else {
                return 0;
            };
            for q in qids {
                n += st.execute(params![*q as i64, agent]).unwrap_or(0);
            }
        }
        if tx.commit().is_err() {
            return 0;
        }
        drop(db);
        self.adjust_queued(agent, -(n as i64));
        self.counters.acked.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        *self.connections.borrow()
    }

    /// Follows [`HubCore::connection_count`]: the receiver sees every
    /// change (for monitoring, and for tests that wait for a connection to
    /// close without polling).
    pub fn watch_connections(&self) -> watch::Receiver<usize> {
        self.connections.subscribe()
    }

    /// Counts a new connection; returns how many were open before it.
    fn connection_opened(&self) -> usize {
        let mut prev = 0;
        self.connections.send_modify(|n| {
            prev = *n;
            *n += 1;
        });
        prev
    }

    fn connection_closed(&self) {
        self.connections.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Envelopes waiting in the queue, for all agents.
    pub fn queued_total(&self) -> u64 {
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// Every stored envelope's bytes (what an operator with the database
    /// sees); for tests that look for plaintext.
    pub fn stored_envelopes(&self) -> Vec<Vec<u8>> {
        let db = self.db();
        let Ok(mut st) = db.prepare("SELECT envelope FROM queue") else {
            return Vec::new();
        };
        st.query_map([], |r| r.get(0))
            .map(|rows| rows.filter_map(Result::ok).collect())
            .unwrap_or_default()
    }

    fn stats(&self) -> Value {
        let c = &self.counters;
        let agents: i64 = self
            .db()
            .query_row("SELECT COUNT(*) FROM agents", [], |r| r.get(0))
            .unwrap_or(0);
        serde_json::json!({
            "agents": agents,
            "online": self.online.lock().unwrap_or_else(|p| p.into_inner()).len(),
            "connections": self.connection_count(),
            "queued": self.queued_total(),
            "routed": c.routed.load(Ordering::Relaxed),
            "delivered": c.delivered.load(Ordering::Relaxed),
            "acked": c.acked.load(Ordering::Relaxed),
            "rejected": c.rejected.load(Ordering::Relaxed),
        })
    }

    fn go_online(&self, agent: &str, conn: u64, notify: Arc<Notify>, delivery: AbortHandle) {
        let old = self
            .online
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                agent.to_owned(),
                Online {
                    conn,
                    notify,
                    delivery,
                },
            );
        // A newer connection of the same agent takes over delivery; the
        // older one stops pushing (unacknowledged envelopes are pushed again).
        if let Some(old) = old {
            old.delivery.abort();
        }
    }

    fn go_offline(&self, agent: &str, conn: u64) {
        let mut online = self.online.lock().unwrap_or_else(|p| p.into_inner());
        if online.get(agent).is_some_and(|o| o.conn == conn)
            && let Some(o) = online.remove(agent)
        {
            o.delivery.abort();
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    refuse("internal", format!("hub storage error: {e}"))
}

/// The signed statement that proves possession of the identity key at
/// registration: canonical JSON of `{agent_id, challenge, format}`.
pub fn auth_message(agent_id: &AgentId, challenge: &str) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("agent_id".into(), agent_id.as_str().into());
    m.insert("challenge".into(), challenge.into());
    m.insert("format".into(), AUTH_FORMAT.into());
    jcs::to_vec(&Value::Object(m))
}

// ------------------------------------------------------------ connection

struct Conn {
    id: u64,
    challenge: String,
    agent: Option<String>,
    /// Envelopes pushed on this connection and not yet acknowledged (qid →
    /// frame bytes), and the signal that wakes its delivery loop.
    inflight: Inflight,
    notify: Arc<Notify>,
    tokens: f64,
    /// Monotonic (tokio) time of the last request: the token bucket measures
    /// elapsed local time, not wall-clock time, so it neither jumps with
    /// the system clock nor depends on the injected wall clock.
    last: Instant,
}

impl Conn {
    fn allow(&mut self, limits: &Limits) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens =
            (self.tokens + dt * f64::from(limits.rate_per_sec)).min(f64::from(limits.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn error_frame(id: &Value, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "id": id,
        "ok": false,
        "error": {"code": code, "message": message},
    });
    frame::encode(&jcs::to_vec(&body))
}

fn ok_frame(id: &Value, result: Value) -> Vec<u8> {
    let body = serde_json::json!({"id": id, "ok": true, "result": result});
    frame::encode(&jcs::to_vec(&body))
}

/// Serves one connection (TCP or in-memory) until it closes.
pub async fn serve_connection<S>(core: Arc<HubCore>, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let limits = core.limits;
    let (mut rd, wr) = tokio::io::split(stream);
    // A small queue: the reader waits when the peer does not read its
    // replies, and pushes are bounded by `max_inflight_bytes`.
    let (tx, rx) = mpsc::channel::<Vec<u8>>(16);
    let mut writer = tokio::spawn(frame::write_loop(
        wr,
        rx,
        Some(Duration::from_millis(limits.write_timeout_ms)),
    ));
    core.counters
        .connections_total
        .fetch_add(1, Ordering::Relaxed);
    let prev = core.connection_opened();
    if prev >= limits.max_connections {
        core.counters.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = tx
            .send(error_frame(
                &Value::Null,
                "too_many_connections",
                &format!(
                    "the hub serves at most {} connections; retry later",
                    limits.max_connections
                ),
            ))
            .await;
        drop(tx);
        let _ = writer.await;
        core.connection_closed();
        return;
    }
    let challenge = match random::<32>() {
        Ok(c) => hex::encode(c),
        Err(_) => {
            core.connection_closed();
            return;
        }
    };
    let mut conn = Conn {
        id: core.next_conn.fetch_add(1, Ordering::Relaxed),
        challenge,
        agent: None,
        inflight: Arc::new(Mutex::new(HashMap::new())),
        notify: Arc::new(Notify::new()),
        tokens: f64::from(limits.burst),
        last: Instant::now(),
    };
    let register_by =
        tokio::time::Instant::now() + Duration::from_millis(limits.register_timeout_ms);
    loop {
        let read = async {
            if conn.agent.is_some() {
                frame::read_frame(&mut rd, limits.max_frame).await
            } else {
                match tokio::time::timeout_at(
                    register_by,
                    frame::read_frame(&mut rd, limits.max_frame),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(FrameError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "not registered in time",
                    ))),
                }
            }
        };
        let read = tokio::select! {
            r = read => r,
            // The writer ended (write stalled past the timeout, or failed):
            // close the connection.
            _ = &mut writer => break,
        };
        match read {
            Ok(Some(body)) => {
                let reply = handle(&core, &mut conn, &body, &tx);
                if let Some(reply) = reply
                    && tx.send(reply).await.is_err()
                {
                    break;
                }
            }
            Ok(None) => break,
            Err(FrameError::TooLarge { len, max }) => {
                core.counters.rejected.fetch_add(1, Ordering::Relaxed);
                // The stream cannot be resynchronised after an oversized
                // length: reply, then close this connection (only this one).
                let _ = tx
                    .send(error_frame(
                        &Value::Null,
                        "frame_too_large",
                        &format!("frame of {len} bytes exceeds the limit of {max}; closing the connection"),
                    ))
                    .await;
                break;
            }
            Err(_) => break,
        }
    }
    if let Some(agent) = &conn.agent {
        core.go_offline(agent, conn.id);
    }
    drop(tx);
    if !writer.is_finished() {
        let _ = writer.await;
    }
    core.connection_closed();
}

fn handle(
    core: &Arc<HubCore>,
    conn: &mut Conn,
    body: &[u8],
    tx: &mpsc::Sender<Vec<u8>>,
) -> Option<Vec<u8>> {
    let reject = |id: &Value, code: &'static str, msg: &str| {
        core.counters.rejected.fetch_add(1, Ordering::Relaxed);
        Some(error_frame(id, code, msg))
    };
    let req = match jcs::parse(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return reject(&Value::Null, "bad_request", "a request is a JSON object"),
        Err(e) => return reject(&Value::Null, "bad_request", &format!("not JSON: {e}")),
    };
    let id = match req.get("id") {
        Some(v @ Value::Number(n)) if n.as_u64().is_some() => v.clone(),
        _ => {
            return reject(
                &Value::Null,
                "bad_request",
                "a request needs \"id\": a non-negative integer",
            );
        }
    };
    if !conn.allow(&core.limits) {
        return reject(
            &id,
            "rate_limited",
            &format!(
                "more than {} requests per second on this connection; slow down and retry",
                core.limits.rate_per_sec
            ),
        );
    }
    let Some(cmd) = req.get("cmd").and_then(Value::as_str) else {
        return reject(&id, "bad_request", "a request needs \"cmd\": a string");
    };
    let result = match cmd {
        "hello" => Ok(serde_json::json!({
            "protocol": HUB_PROTOCOL,
            "challenge": conn.challenge,
            "max_frame": core.limits.max_frame,
        })),
        "register" => register(core, conn, &req, tx),
        "get_bundle" => match req.get("agent_id").and_then(Value::as_str) {
            None => Err(refuse("bad_request", "get_bundle needs \"agent_id\"")),
            Some(a) => match core.bundle(a) {
                Some(b) => Ok(serde_json::json!({
                    "bundle": jcs::parse(&b).unwrap_or(Value::Null)
                })),
                None => Err(refuse(
                    "peer_not_found",
                    format!("no agent {} is registered on this hub", a.chars().take(64).collect::<String>()),
                )),
            },
        },
        "list_agents" => Ok(serde_json::json!({ "agents": core.agents(10_000) })),
        "stats" => Ok(core.stats()),
        "send" => match &conn.agent {
            None => Err(refuse("not_registered", "register before sending")),
            Some(from) => match req.get("envelope").map(Envelope::from_value) {
                None => Err(refuse("bad_request", "send needs \"envelope\"")),
                Some(Err(e)) => Err(refuse("bad_envelope", e.to_string())),
                Some(Ok(env)) => core.enqueue(from, &env).map(|(qid, online)| {
                    serde_json::json!({"accepted": true, "qid": qid, "online": online})
                }),
            },
        },
        "ack" => match (&conn.agent, req.get("qids").and_then(Value::as_array)) {
            (None, _) => Err(refuse("not_registered", "register before acknowledging")),
            (_, None) => Err(refuse("bad_request", "ack needs \"qids\": an array of integers")),
            (Some(agent), Some(list)) if list.len() <= 10_000 => {
                let qids: Vec<u64> = list.iter().filter_map(Value::as_u64).collect();
                let n = core.ack(agent, &qids);
                {
                    let mut inflight = conn.inflight.lock().unwrap_or_else(|p| p.into_inner());
                    for q in &qids {
                        inflight.remove(q);
                    }
                }
                conn.notify.notify_one();
                Ok(serde_json::json!({"acked": n}))
            }
            (Some(_), Some(_)) => Err(refuse("bad_request", "at most 10000 qids per ack")),
        },
        other => Err(refuse(
            "unknown_command",
            format!(
                "unknown command {:?}; commands: hello, register, get_bundle, list_agents, send, ack, stats",
                other.chars().take(64).collect::<String>()
            ),
        )),
    };
    match result {
        Ok(v) => Some(ok_frame(&id, v)),
        Err(r) => reject(&id, r.code, &r.message),
    }
}

fn register(
    core: &Arc<HubCore>,
    conn: &mut Conn,
    req: &Map<String, Value>,
    tx: &mpsc::Sender<Vec<u8>>,
) -> Result<Value, Refusal> {
    let bundle = match req.get("bundle") {
        Some(b @ Value::Object(_)) => {
            Bundle::parse(&jcs::to_vec(b)).map_err(|e| refuse("bad_bundle", e.to_string()))?
        }
        _ => {
            return Err(refuse(
                "bad_request",
                "register needs \"bundle\": an object",
            ));
        }
    };
    let now = Timestamp::from_unix_micros(core.now_ms() as i64 * 1000)
        .map_err(|e| refuse("internal", e.to_string()))?;
    bundle
        .check_valid_at(&now)
        .map_err(|e| refuse("bad_bundle", e.to_string()))?;
    let proof = req
        .get("proof")
        .and_then(Value::as_str)
        .and_then(|s| use_b64(s).and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok()))
        .map(|b| Signature::from_bytes(&b))
        .ok_or_else(|| {
            refuse(
                "bad_request",
                "register needs \"proof\": 64 bytes of base64url",
            )
        })?;
    if !bundle
        .public_key()
        .verify_strict(&auth_message(bundle.agent_id(), &conn.challenge), &proof)
    {
        return Err(refuse(
            "bad_proof",
            "the proof does not verify: sign this connection's hello challenge with the bundle's identity key",
        ));
    }
    if let Some(a) = &conn.agent
        && a != bundle.agent_id().as_str()
    {
        return Err(refuse(
            "forbidden",
            "this connection is already registered as another agent",
        ));
    }
    core.register(&bundle)?;
    let agent = bundle.agent_id().as_str().to_owned();
    if conn.agent.is_none() {
        let notify = conn.notify.clone();
        let task = tokio::spawn(delivery_loop(
            core.clone(),
            agent.clone(),
            notify.clone(),
            conn.inflight.clone(),
            core.limits.max_inflight_bytes,
            tx.clone(),
        ));
        core.go_online(&agent, conn.id, notify, task.abort_handle());
        conn.agent = Some(agent.clone());
    }
    let queued = core
        .queued
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&agent)
        .copied()
        .unwrap_or(0);
    Ok(serde_json::json!({"agent_id": agent, "queued": queued}))
}

fn use_b64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bytes = engine.decode(s).ok()?;
    // One spelling per value, as everywhere in Accord.
    (engine.encode(&bytes) == s).then_some(bytes)
}

type Inflight = Arc<Mutex<HashMap<u64, usize>>>;

async fn delivery_loop(
    core: Arc<HubCore>,
    agent: String,
    notify: Arc<Notify>,
    inflight: Inflight,
    max_bytes: usize,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let mut cursor = 0u64;
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (count, bytes) = {
            let f = inflight.lock().unwrap_or_else(|p| p.into_inner());
            (f.len() as u64, f.values().sum::<usize>())
        };
        let room = MAX_UNACKED.saturating_sub(count);
        let rows = if room == 0 || (count > 0 && bytes >= max_bytes) {
            Vec::new()
        } else {
            core.pending(&agent, cursor, room.min(256) as usize)
        };
        if rows.is_empty() {
            // Woken by a new envelope for this agent or by an ack.
            notified.await;
            continue;
        }
        let mut full = false;
        for (qid, env) in rows {
            {
                let mut f = inflight.lock().unwrap_or_else(|p| p.into_inner());
                let used: usize = f.values().sum();
                // Always one envelope, else only within the byte budget;
                // the rest waits for acknowledgements.
                if !f.is_empty() && used + env.len() > max_bytes {
                    full = true;
                    break;
                }
                f.insert(qid, env.len());
            }
            cursor = qid;
            let mut body = Vec::with_capacity(env.len() + 64);
            body.extend_from_slice(b"{\"envelope\":");
            body.extend_from_slice(&env);
            body.extend_from_slice(format!(",\"push\":\"deliver\",\"qid\":{qid}}}").as_bytes());
            if tx.send(frame::encode(&body)).await.is_err() {
                return;
            }
            core.counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
        if full {
            // Woken by an ack (or a new envelope).
            notified.await;
        }
    }
}

// ------------------------------------------------------------ front ends

/// The TCP hub server.
pub struct HubServer {
    core: Arc<HubCore>,
    listener: TcpListener,
}

impl HubServer {
    /// Binds `addr` (use 127.0.0.1 unless the hub must be reachable from
    /// other machines) with storage in `data_dir` (in memory when `None`),
    /// on the system clock.
    pub async fn bind(
        addr: &str,
        data_dir: Option<&Path>,
        limits: Limits,
    ) -> Result<HubServer, NetError> {
        Self::bind_with_clock(addr, data_dir, limits, clock::system()).await
    }

    /// [`HubServer::bind`] on the given wall clock.
    pub async fn bind_with_clock(
        addr: &str,
        data_dir: Option<&Path>,
        limits: Limits,
        clock: SharedClock,
    ) -> Result<HubServer, NetError> {
        let core = Arc::new(HubCore::open_with_clock(data_dir, limits, clock)?);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| NetError::System {
                what: format!("cannot listen on {addr}"),
                source,
            })?;
        Ok(HubServer { core, listener })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.listener
            .local_addr()
            .map_err(|e| NetError::Io(e.to_string()))
    }

    /// The hub's state (counters, storage).
    pub fn core(&self) -> Arc<HubCore> {
        self.core.clone()
    }

    /// Serves connections until the task is dropped or aborted.
    pub async fn run(self) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(self.core.clone(), stream));
                }
                // Out of file descriptors and the like: back off briefly
                // instead of spinning.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }
}

/// An in-process hub: the same protocol and handler as the TCP hub, over
/// in-memory pipes. Cheap to clone (clones share the hub).
#[derive(Clone, Debug)]
pub struct LocalHub {
    core: Arc<HubCore>,
}

impl LocalHub {
    /// A hub with in-memory storage and default limits, on the system
    /// clock.
    pub fn new() -> Result<LocalHub, NetError> {
        Self::with_clock(clock::system())
    }

    /// A hub with in-memory storage and default limits on the given wall
    /// clock (a [`ManualEnv`](crate::ManualEnv) in simulations).
    pub fn with_clock(clock: SharedClock) -> Result<LocalHub, NetError> {
        Ok(Self::from_core(Arc::new(HubCore::open_with_clock(
            None,
            Limits::default(),
            clock,
        )?)))
    }

    /// An in-process front end to an existing hub core (any storage,
    /// limits and clock).
    pub fn from_core(core: Arc<HubCore>) -> LocalHub {
        LocalHub { core }
    }

    /// The hub's state (counters, storage).
    pub fn core(&self) -> Arc<HubCore> {
        self.core.clone()
    }

    /// Opens a connection to the hub. Needs a tokio runtime.
    pub fn connect(&self) -> crate::HubClient {
        let (a, b) = tokio::io::duplex(256 * 1024);
        tokio::spawn(serve_connection(self.core.clone(), b));
        crate::HubClient::over_stream(a, "in-process hub")
    }
}
