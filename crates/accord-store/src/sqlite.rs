//! SQLite event store (bundled SQLite, WAL, `synchronous=FULL`).
//!
//! Schema `accord-sqlite/3` (docs/STORAGE.md) — events:
//!
//! ```sql
//! CREATE TABLE events (
//!     agent_id TEXT    NOT NULL,
//!     seq      INTEGER NOT NULL,
//!     body     BLOB    NOT NULL,   -- the event's canonical bytes
//!     PRIMARY KEY (agent_id, seq)
//! );
//! ```
//!
//! plus triggers that abort any UPDATE or DELETE on `events`, and any INSERT
//! whose (agent_id, seq) exists (`INSERT OR REPLACE` deletes the old row
//! without firing DELETE triggers, so it needs its own guard); and, since
//! version 2, a `checkpoints` table (agent_id, size, signed note) with the
//! same three guards. Version-1 files are upgraded in place on open. The file's
//! SQLite `application_id` is `0x41434344` ("ACCD"); a file without it is
//! refused before SQLite writes anything to it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use accord_core::merkle::{self, MerkleError};
use accord_core::{AgentId, Hash32, SignedEvent};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::{
    EventStore, Head, LeafBuildFn, Quarantined, ScanFn, SideWrite, StateBuildFn, StoreError,
    check_continuation,
};

/// SQLite `application_id` of an Accord store ("ACCD").
pub const APPLICATION_ID: i32 = 0x4143_4344;
/// Schema version (`PRAGMA user_version`). Version 1 stores (events only)
/// are upgraded in place on open.
pub const SCHEMA_VERSION: i32 = 3;

const SCHEMA: &str = "
CREATE TABLE events (
    agent_id TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    body     BLOB    NOT NULL,
    PRIMARY KEY (agent_id, seq)
);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'accord events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'accord events are append-only'); END;
CREATE TRIGGER events_no_replace BEFORE INSERT ON events
    WHEN EXISTS (SELECT 1 FROM events WHERE agent_id = NEW.agent_id AND seq = NEW.seq)
    BEGIN SELECT RAISE(ABORT, 'accord events are append-only'); END;
";

/// Added in schema version 2: every checkpoint the agent signed, so later
/// consistency can be proved against it.
const SCHEMA_V2: &str = "
CREATE TABLE checkpoints (
    agent_id TEXT    NOT NULL,
    size     INTEGER NOT NULL,
    note     BLOB    NOT NULL,
    PRIMARY KEY (agent_id, size)
);
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'accord checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'accord checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_no_replace BEFORE INSERT ON checkpoints
    WHEN EXISTS (SELECT 1 FROM checkpoints WHERE agent_id = NEW.agent_id AND size = NEW.size)
    BEGIN SELECT RAISE(ABORT, 'accord checkpoints are append-only'); END;
";

/// Added in schema version 3: per-agent protocol state derived from the
/// chain (handoff sequence numbers, session progress, seen nonces), written
/// in the same transaction as the events it follows from; the append-only
/// quarantine of refused handoff receipts; and every perfect subtree of
/// each chain's RFC 9162 tree, written as events are appended, so roots and
/// proofs need O(log² n) node reads instead of a rebuild.
const SCHEMA_V3: &str = "
CREATE TABLE state (
    agent_id TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    BLOB NOT NULL,
    PRIMARY KEY (agent_id, key)
);
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id    TEXT NOT NULL,
    received_at TEXT NOT NULL,
    reason      TEXT NOT NULL,
    item        BLOB NOT NULL
);
CREATE TRIGGER quarantine_no_update BEFORE UPDATE ON quarantine
    BEGIN SELECT RAISE(ABORT, 'accord quarantine is append-only'); END;
CREATE TRIGGER quarantine_no_delete BEFORE DELETE ON quarantine
    BEGIN SELECT RAISE(ABORT, 'accord quarantine is append-only'); END;
CREATE TABLE merkle (
    agent_id TEXT    NOT NULL,
    level    INTEGER NOT NULL,
    idx      INTEGER NOT NULL,
    hash     BLOB    NOT NULL,
    PRIMARY KEY (agent_id, level, idx)
) WITHOUT ROWID;
CREATE TRIGGER merkle_no_update BEFORE UPDATE ON merkle
    BEGIN SELECT RAISE(ABORT, 'accord tree nodes are append-only'); END;
CREATE TRIGGER merkle_no_delete BEFORE DELETE ON merkle
    BEGIN SELECT RAISE(ABORT, 'accord tree nodes are append-only'); END;
";

/// How long a writer waits for the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long closing the store waits for its last commits to be copied out
/// of the WAL while readers of an older snapshot hold them back (and how
/// long the in-line fallback checkpoint waits for them).
const CHECKPOINT_WAIT: Duration = Duration::from_millis(250);

/// How often the checkpointer tries again while a reader of an older
/// snapshot keeps committed frames from being copied.
const CHECKPOINT_RETRY: Duration = Duration::from_millis(5);

/// The checkpointer copies once the writer has made no commit for this
/// long, ...
const CHECKPOINT_IDLE: Duration = Duration::from_millis(1);

/// ... or once the oldest commit not yet copied is this old. Copying every
/// commit at once would cost each commit a second fsync: a WAL wholly
/// copied is restarted from its beginning by the next commit, which then
/// syncs the new WAL header before its frames. Waiting for a pause (or
/// this long under a steady stream of commits) leaves one restart per
/// burst instead of one per commit.
const CHECKPOINT_MAX_AGE: Duration = Duration::from_millis(50);

/// The SQLite-backed [`EventStore`].
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Started by the first commit through this store; `None` before that,
    /// so a store that is only read starts no thread.
    checkpointer: Option<Checkpointer>,
}

impl SqliteStore {
    /// Creates a new store; fails if `path` already exists.
    pub fn create(path: &Path) -> Result<Self, StoreError> {
        if path.exists() {
            return Err(StoreError::Io(format!(
                "{} already exists; refusing to overwrite it",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The checkpoint moves page 1 (with application_id) out of the WAL
        // into the main file, where `check_header` reads it.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             BEGIN;
             PRAGMA application_id = {APPLICATION_ID};
             {SCHEMA}
             {SCHEMA_V2}
             {SCHEMA_V3}
             PRAGMA user_version = {SCHEMA_VERSION};
             COMMIT;
             PRAGMA wal_checkpoint(TRUNCATE);"
        ))?;
        Self::configure(conn, path)
    }

    /// Opens an existing store. A missing file is [`StoreError::NotFound`];
    /// a file that is not an Accord store is refused without being modified.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        check_header(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| not_a_store(path, e))?;
        let version: i32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| not_a_store(path, e))?;
        let store = Self::configure(conn, path)?;
        match version {
            SCHEMA_VERSION => Ok(store),
            1 | 2 => {
                // Additive upgrade in one transaction: nothing stored changes.
                // The version is read again under the write lock, since
                // another process may have upgraded the file meanwhile.
                store.conn.execute_batch("BEGIN IMMEDIATE")?;
                let now: i32 = store
                    .conn
                    .query_row("PRAGMA user_version", [], |r| r.get(0))?;
                let mut steps = String::new();
                if now < 2 {
                    steps.push_str(SCHEMA_V2);
                }
                if now < 3 {
                    steps.push_str(SCHEMA_V3);
                    steps.push_str(&format!("PRAGMA user_version = {SCHEMA_VERSION};"));
                }
                let upgraded = store
                    .conn
                    .execute_batch(&steps)
                    .map_err(StoreError::from)
                    .and_then(|()| {
                        if now < 3 {
                            index_all(&store.conn)
                        } else {
                            Ok(())
                        }
                    });
                match upgraded {
                    Ok(()) => store.conn.execute_batch("COMMIT")?,
                    Err(e) => {
                        let _ = store.conn.execute_batch("ROLLBACK");
                        return Err(e);
                    }
                }
                Ok(store)
            }
            _ => Err(StoreError::NotAStore {
                path: path.display().to_string(),
                reason: format!("schema version {version}, this build reads 1 to {SCHEMA_VERSION}"),
            }),
        }
    }

    fn configure(conn: Connection, path: &Path) -> Result<Self, StoreError> {
        // FULL: every commit is fsynced, so an acknowledged append survives a
        // power cut; batches amortise the sync.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            checkpointer: None,
        })
    }

    /// Called after every commit: has the commit copied from the WAL into
    /// the database file (docs/STORAGE.md, connection settings). A commit
    /// is durable once in the WAL, but until it is copied a lost or deleted
    /// `-wal` file (after a crash, or a copy of the `.db` alone) takes it
    /// with it. The copy and its fsyncs run on the checkpointer's thread at
    /// the writer's next pause (see [`Checkpointer`]), so the commit returns
    /// after its own fsync; only if that thread cannot be had is the copy
    /// made here, before returning.
    fn checkpoint_wal(&mut self) {
        if self.checkpointer.is_none() {
            self.checkpointer = Checkpointer::start(&self.path);
        }
        if !self
            .checkpointer
            .as_ref()
            .is_some_and(Checkpointer::request)
        {
            self.checkpointer = None;
            self.checkpoint_inline();
        }
    }

    /// The copy made on the committing thread. `FULL` waits for readers
    /// still on an older snapshot (a passive checkpoint would skip the
    /// frames they hold), but only for `CHECKPOINT_WAIT`: a long reader
    /// must not stall the writer; the rest waits for the next commit (or
    /// SQLite's checkpoint on close).
    fn checkpoint_inline(&self) {
        let _ = self.conn.busy_timeout(CHECKPOINT_WAIT);
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()));
        let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
    }

    /// Waits until every commit made through this store is in the database
    /// file itself (copied out of the WAL and synced), for at most `limit`;
    /// returns whether it is. Only a reader of an older snapshot (another
    /// connection in the middle of a read) holds the copy back longer than
    /// the copy itself takes. Closing the store does the same with a limit
    /// of 250 ms.
    pub fn wait_checkpointed(&self, limit: Duration) -> bool {
        match &self.checkpointer {
            None => wal_is_copied(&self.conn),
            Some(c) => c.wait(Instant::now() + limit),
        }
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs SQLite's `quick_check` (page-level consistency).
    pub fn quick_check(&self) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare("PRAGMA quick_check")?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if rows.len() == 1 && rows[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(rows.join("; ")))
        }
    }

    /// Number of events in `agent`'s chain.
    pub fn len(&self, agent: &AgentId) -> Result<u64, StoreError> {
        Ok(self.head(agent)?.map_or(0, |h| h.seq + 1))
    }

    fn read_state(
        conn: &Connection,
        agent: &AgentId,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(conn
            .query_row(
                "SELECT value FROM state WHERE agent_id = ?1 AND key = ?2",
                params![agent.as_str(), key],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn read_head(conn: &Connection, agent: &AgentId) -> Result<Option<Head>, StoreError> {
        let row: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT seq, body FROM events WHERE agent_id = ?1 ORDER BY seq DESC LIMIT 1",
                params![agent.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((seq, body)) = row else {
            return Ok(None);
        };
        // Build on the head only after re-reading it: a damaged head must
        // stop appends, not be chained onto.
        let ev = SignedEvent::from_canonical(&body)
            .map_err(|e| StoreError::Corrupt(format!("head event seq {seq} of {agent}: {e}")))?;
        if ev.seq() != seq as u64 || &ev.event().agent_id != agent {
            return Err(StoreError::Corrupt(format!(
                "row ({agent}, {seq}) holds event seq {} of {}",
                ev.seq(),
                ev.event().agent_id
            )));
        }
        Ok(Some(Head::of(&ev)))
    }
}

impl EventStore for SqliteStore {
    fn head(&self, agent: &AgentId) -> Result<Option<Head>, StoreError> {
        Self::read_head(&self.conn, agent)
    }

    fn append_with_state(
        &mut self,
        agent: &AgentId,
        keys: &[&str],
        build: &mut StateBuildFn<'_>,
    ) -> Result<Vec<SignedEvent>, StoreError> {
        // No leaf hashes given: `append_with_leaves` hashes the events.
        self.append_with_leaves(agent, keys, &mut |head, state| {
            build(head, state).map(|(events, writes)| (events, writes, Vec::new()))
        })
    }

    fn append_with_leaves(
        &mut self,
        agent: &AgentId,
        keys: &[&str],
        build: &mut LeafBuildFn<'_>,
    ) -> Result<Vec<SignedEvent>, StoreError> {
        // IMMEDIATE takes the write lock up front: the head and state read
        // below cannot go stale before the insert.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head = Self::read_head(&tx, agent)?;
        let state = keys
            .iter()
            .map(|k| Self::read_state(&tx, agent, k))
            .collect::<Result<Vec<_>, _>>()?;
        let (events, writes, mut leaves) = build(head.as_ref(), &state)?;
        if events.is_empty() {
            return Err(StoreError::Invalid("empty batch".into()));
        }
        check_continuation(agent, head.as_ref(), &events)?;
        if leaves.is_empty() {
            leaves = events
                .iter()
                .map(|ev| merkle::leaf_hash(ev.canonical()))
                .collect();
        } else if leaves.len() != events.len() {
            return Err(StoreError::Invalid(format!(
                "{} leaf hashes for {} events",
                leaves.len(),
                events.len()
            )));
        }
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO events (agent_id, seq, body) VALUES (?1, ?2, ?3)")?;
            for (ev, leaf) in events.iter().zip(leaves) {
                insert.execute(params![agent.as_str(), ev.seq() as i64, ev.canonical()])?;
                index_leaf(&tx, agent, ev.seq(), leaf)?;
            }
        }
        for w in writes {
            match w {
                SideWrite::Remove { key } => {
                    tx.execute(
                        "DELETE FROM state WHERE agent_id = ?1 AND key = ?2",
                        params![agent.as_str(), key],
                    )?;
                }
                SideWrite::Set { key, value } => {
                    tx.execute(
                        "INSERT INTO state (agent_id, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (agent_id, key) DO UPDATE SET value = excluded.value",
                        params![agent.as_str(), key, value],
                    )?;
                }
                SideWrite::Quarantine {
                    received_at,
                    reason,
                    item,
                } => {
                    tx.execute(
                        "INSERT INTO quarantine (agent_id, received_at, reason, item) VALUES (?1, ?2, ?3, ?4)",
                        params![agent.as_str(), received_at, reason, item],
                    )?;
                }
            }
        }
        tx.commit()?;
        self.checkpoint_wal();
        Ok(events)
    }

    fn tree_node(
        &self,
        agent: &AgentId,
        level: u32,
        index: u64,
    ) -> Result<Option<Hash32>, StoreError> {
        read_node(&self.conn, agent.as_str(), level, index)
    }

    fn put_state(
        &mut self,
        agent: &AgentId,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        if !key.starts_with(crate::TRANSPORT_PREFIX) {
            return Err(StoreError::Invalid(format!(
                "state key {key:?} follows the chain and changes only with an append"
            )));
        }
        match value {
            Some(v) => self.conn.execute(
                "INSERT INTO state (agent_id, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (agent_id, key) DO UPDATE SET value = excluded.value",
                params![agent.as_str(), key, v],
            )?,
            None => self.conn.execute(
                "DELETE FROM state WHERE agent_id = ?1 AND key = ?2",
                params![agent.as_str(), key],
            )?,
        };
        Ok(())
    }

    fn state(&self, agent: &AgentId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Self::read_state(&self.conn, agent, key)
    }

    fn quarantined(&self, agent: &AgentId) -> Result<Vec<Quarantined>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, received_at, reason, item FROM quarantine WHERE agent_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![agent.as_str()], |r| {
            Ok(Quarantined {
                id: r.get::<_, i64>(0)? as u64,
                received_at: r.get(1)?,
                reason: r.get(2)?,
                item: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn scan(
        &self,
        agent: &AgentId,
        from: u64,
        to: Option<u64>,
        f: &mut ScanFn<'_>,
    ) -> Result<(), StoreError> {
        let to = to.map_or(i64::MAX, |t| t.min(i64::MAX as u64) as i64);
        let from = from.min(i64::MAX as u64) as i64;
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, body FROM events WHERE agent_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
        )?;
        let mut rows = stmt.query(params![agent.as_str(), from, to])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let body = row
                .get_ref(1)?
                .as_blob()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if f(seq as u64, body)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    fn record_checkpoint(
        &mut self,
        agent: &AgentId,
        size: u64,
        note: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<Vec<u8>> = tx
            .query_row(
                "SELECT note FROM checkpoints WHERE agent_id = ?1 AND size = ?2",
                params![agent.as_str(), size as i64],
                |r| r.get(0),
            )
            .optional()?;
        match existing {
            Some(old) if old == note => return Ok(()),
            Some(_) => {
                return Err(StoreError::Invalid(format!(
                    "a different checkpoint of size {size} is already recorded for {agent} (the chain was rewritten)"
                )));
            }
            None => {}
        }
        tx.execute(
            "INSERT INTO checkpoints (agent_id, size, note) VALUES (?1, ?2, ?3)",
            params![agent.as_str(), size as i64, note],
        )?;
        tx.commit()?;
        self.checkpoint_wal();
        Ok(())
    }

    fn checkpoints(&self, agent: &AgentId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT size, note FROM checkpoints WHERE agent_id = ?1 ORDER BY size",
        )?;
        let rows = stmt.query_map(params![agent.as_str()], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn integrity_check(&self) -> Result<(), StoreError> {
        self.quick_check()
    }

    /// The quarantine entry of `agent` holding `item`, received at
    /// `received_at` (the latest, should the same bytes be quarantined twice
    /// in one microsecond).
    fn quarantine_id(
        &self,
        agent: &AgentId,
        received_at: &str,
        item: &[u8],
    ) -> Result<Option<u64>, StoreError> {
        let id: Option<i64> = self.conn.query_row(
            "SELECT MAX(id) FROM quarantine WHERE agent_id = ?1 AND received_at = ?2 AND item = ?3",
            params![agent.as_str(), received_at, item],
            |r| r.get(0),
        )?;
        Ok(id.map(|i| i as u64))
    }

    fn agents(&self) -> Result<Vec<AgentId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT agent_id FROM events ORDER BY agent_id")?;
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.iter()
            .map(|s| AgentId::parse(s).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }
}

fn read_node(
    conn: &Connection,
    agent: &str,
    level: u32,
    index: u64,
) -> Result<Option<Hash32>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT hash FROM merkle WHERE agent_id = ?1 AND level = ?2 AND idx = ?3",
    )?;
    let hash: Option<Vec<u8>> = stmt
        .query_row(params![agent, level, index as i64], |r| r.get(0))
        .optional()?;
    hash.map(|h| {
        <[u8; 32]>::try_from(h.as_slice()).map(Hash32).map_err(|_| {
            StoreError::Corrupt(format!(
                "tree node ({level}, {index}) of {agent} is not 32 bytes"
            ))
        })
    })
    .transpose()
}

/// Writes the tree nodes that event `seq` (its leaf hash `leaf`) completes:
/// its leaf and every parent it closes.
fn index_leaf(
    conn: &Connection,
    agent: &AgentId,
    seq: u64,
    leaf: Hash32,
) -> Result<(), StoreError> {
    let id = agent.as_str();
    let nodes = merkle::completed_nodes(seq, leaf, &mut |level, index| {
        read_node(conn, id, level, index)
            .map_err(|e| MerkleError::Storage(e.to_string()))?
            .ok_or_else(|| MerkleError::Storage(format!("tree node ({level}, {index}) is missing")))
    })
    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO merkle (agent_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (level, index, hash) in nodes {
        insert.execute(params![id, level, index as i64, hash.0.as_slice()])?;
    }
    Ok(())
}

/// Builds the tree nodes of every chain already stored (schema upgrade).
fn index_all(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("SELECT agent_id, seq, body FROM events ORDER BY agent_id, seq")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let agent: String = row.get(0)?;
        let seq: i64 = row.get(1)?;
        let body = row
            .get_ref(2)?
            .as_blob()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let agent = AgentId::parse(&agent)
            .map_err(|e| StoreError::Corrupt(format!("agent id {agent}: {e}")))?;
        index_leaf(conn, &agent, seq as u64, merkle::leaf_hash(body))?;
    }
    Ok(())
}

/// Reads the raw SQLite header so a foreign or damaged file is refused
/// before SQLite opens it (SQLite may write to a file it opens read-write,
/// e.g. to recover a journal).
fn check_header(path: &Path) -> Result<(), StoreError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NotFound(path.display().to_string()));
        }
        Err(e) => {
            return Err(StoreError::Io(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let mut header = [0u8; 100];
    let refuse = |reason: &str| StoreError::NotAStore {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    };
    f.read_exact(&mut header)
        .map_err(|_| refuse("file is shorter than a SQLite header"))?;
    if &header[..16] != b"SQLite format 3\0" {
        return Err(refuse("not a SQLite database"));
    }
    let app_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    if app_id != APPLICATION_ID {
        return Err(refuse("SQLite database of another application"));
    }
    Ok(())
}

fn not_a_store(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::NotAStore {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl Drop for SqliteStore {
    /// The last commits are copied out of the WAL before the store closes,
    /// even when other connections keep SQLite from checkpointing on close.
    fn drop(&mut self) {
        if let Some(c) = self.checkpointer.take() {
            c.stop();
        }
    }
}

/// Whether every frame in the WAL of `conn`'s database is in the database
/// file (checked with a passive checkpoint, which copies what it can).
fn wal_is_copied(conn: &Connection) -> bool {
    checkpoint_passive(conn) == Some(true)
}

/// Runs a passive checkpoint (it never waits for, nor blocks, readers and
/// writers) and says whether the WAL is now wholly in the database file;
/// `None` when SQLite refused (another connection was checkpointing).
fn checkpoint_passive(conn: &Connection) -> Option<bool> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })
    .ok()
    .and_then(|(busy, log, copied)| (busy == 0).then_some(log == copied))
}

/// A thread with its own connection that copies commits out of the WAL.
/// The writer counts its commits (`requested`); the thread waits for a
/// pause in them (`CHECKPOINT_IDLE`, or `CHECKPOINT_MAX_AGE` after the
/// oldest one not yet copied, or at once when someone waits for the copy
/// or the store closes), runs a passive checkpoint and, when the WAL is
/// wholly in the database file afterwards, marks every commit counted
/// before it started as copied (`copied`). Commits made while it runs are
/// taken by the next round, which copies only the frames added since.
/// While a reader of an older snapshot holds frames back, the thread tries
/// again every `CHECKPOINT_RETRY`.
struct Checkpointer {
    shared: Arc<Shared>,
    thread: JoinHandle<()>,
}

struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

#[derive(Default)]
struct Progress {
    requested: u64,
    copied: u64,
    /// When the oldest commit not yet copied was reported (or an earlier
    /// time), and when the latest was.
    oldest_pending: Option<Instant>,
    latest: Option<Instant>,
    /// Someone waits for the copy: no pause to wait for.
    urgent: bool,
    stop: bool,
    /// The thread ended (it was stopped).
    gone: bool,
}

impl Progress {
    /// When the next round is due, `None` when nothing waits to be copied.
    fn due(&self) -> Option<Instant> {
        if self.copied >= self.requested {
            return None;
        }
        let now = Instant::now();
        if self.urgent || self.stop {
            return Some(now);
        }
        let idle = self.latest.map_or(now, |t| t + CHECKPOINT_IDLE);
        let aged = self.oldest_pending.map_or(now, |t| t + CHECKPOINT_MAX_AGE);
        Some(idle.min(aged))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Checkpointer {
    /// `None` when the thread or its connection cannot be had.
    fn start(path: &Path) -> Option<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        // synchronous=FULL makes SQLite fsync the database file after each
        // checkpoint: a copied commit is on disk, not in the page cache.
        conn.execute_batch("PRAGMA synchronous = FULL;").ok()?;
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress::default()),
            changed: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("accord-wal-checkpoint".into())
            .spawn(move || run_checkpointer(&conn, &theirs))
            .ok()?;
        Some(Checkpointer { shared, thread })
    }

    /// Reports a commit; `false` when the thread is gone (the caller then
    /// copies in line).
    fn request(&self) -> bool {
        let mut p = self.shared.lock();
        if p.gone {
            return false;
        }
        let now = Instant::now();
        p.requested += 1;
        p.latest = Some(now);
        // The thread sleeps until a round is due; only the first pending
        // commit changes when that is (later ones only push the pause
        // back, which the thread sees when it wakes).
        if p.oldest_pending.is_none() {
            p.oldest_pending = Some(now);
            self.shared.changed.notify_all();
        }
        true
    }

    /// Waits until every commit reported so far is copied, or `deadline`.
    fn wait(&self, deadline: Instant) -> bool {
        let mut p = self.shared.lock();
        let target = p.requested;
        if p.copied < target {
            p.urgent = true;
            self.shared.changed.notify_all();
        }
        while p.copied < target && !p.gone {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            p = self
                .shared
                .changed
                .wait_timeout(p, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        p.copied >= target
    }

    /// Copies what is left (for at most `CHECKPOINT_WAIT`) and ends the
    /// thread.
    fn stop(self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        let _ = self.thread.join();
    }
}

fn run_checkpointer(conn: &Connection, shared: &Shared) {
    let mut stop_deadline = None;
    let mut p = shared.lock();
    loop {
        let Some(due) = p.due() else {
            if p.stop {
                break;
            }
            p = shared.changed.wait(p).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        if p.stop {
            let deadline = *stop_deadline.get_or_insert_with(|| Instant::now() + CHECKPOINT_WAIT);
            if Instant::now() >= deadline {
                break;
            }
        }
        let now = Instant::now();
        if due > now {
            p = shared
                .changed
                .wait_timeout(p, due - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        let target = p.requested;
        drop(p);
        let started = Instant::now();
        let done = checkpoint_passive(conn) == Some(true);
        p = shared.lock();
        if done {
            p.copied = p.copied.max(target);
            if p.copied >= p.requested {
                p.oldest_pending = None;
                p.urgent = false;
            } else {
                // Commits made during the round: none is older than its start.
                p.oldest_pending = Some(started);
            }
            shared.changed.notify_all();
        } else {
            // Held back (a reader of an older snapshot, or another
            // connection checkpointing): try again shortly.
            p = shared
                .changed
                .wait_timeout(p, CHECKPOINT_RETRY)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
    p.gone = true;
    shared.changed.notify_all();
}
