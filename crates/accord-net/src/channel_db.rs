//! An agent's channel state: `channel.db` in its home, next to (not inside)
//! `events.db`. Exchange key private halves and session keys are stored
//! encrypted under [`AtRestKey`] (derived from the identity key); pins,
//! sequence-number reservations and replay windows are not secret and are
//! stored in the clear so they can be updated cheaply on every message.

use std::path::Path;

use accord_core::channel::{AtRestKey, Bundle, ExchangeSecret, ReplayWindow, Role, Session};
use accord_core::{AgentId, Keypair, PublicKey, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

use accord_store::schema;

use crate::{NetError, random};

/// File name inside the agent's home.
pub const CHANNEL_DB: &str = "channel.db";
/// A new exchange key is made when the current one is this old (24 h).
pub const ROTATE_MS: u64 = 24 * 3600 * 1000;
/// A bundle is valid this long after it is made (48 h), so peers holding a
/// bundle fetched just before a rotation can still use it.
pub const BUNDLE_LIFETIME_MS: u64 = 48 * 3600 * 1000;
/// The private half of an exchange key is kept this long after its bundle
/// expires (7 days), so envelopes queued for an offline agent can still be
/// opened; then it is deleted, and with it the ability to open sessions
/// sealed to it (forward secrecy).
pub const GRACE_MS: u64 = 7 * 24 * 3600 * 1000;
/// Sessions unused for this long are deleted with their keys (7 days).
pub const SESSION_IDLE_MS: u64 = 7 * 24 * 3600 * 1000;
/// A deleted session leaves a tombstone (its id, no keys) for this long
/// after the session was created: longer than the exchange key it was
/// opened with can be kept ([`BUNDLE_LIFETIME_MS`] + [`GRACE_MS`]) plus a
/// day of clock margin. While the tombstone exists the session can never be
/// rebuilt from a captured first envelope (which would accept the old
/// messages again and reuse the responder's AES-GCM nonces); once it is
/// gone, the exchange key is gone too and nothing can rebuild it.
pub const TOMBSTONE_MS: u64 = BUNDLE_LIFETIME_MS + GRACE_MS + 24 * 3600 * 1000;
/// Sequence numbers are reserved in blocks of this size, so the send
/// counter is written once per block, never reused after a crash.
pub const SEQ_BLOCK: u64 = 256;

/// SQLite `application_id` of `channel.db`: ASCII "ACCC" (0x41434343).
pub const CHANNEL_APPLICATION_ID: i32 = schema::tag(b"ACCC");
/// Schema version of `channel.db` (`PRAGMA user_version`). Version 1 is
/// the schema below; files from before versioning (version 0, no
/// application id) are recognised by their tables and stamped on open.
pub const CHANNEL_SCHEMA_VERSION: i32 = 1;

/// The schema at [`CHANNEL_SCHEMA_VERSION`]. `IF NOT EXISTS` because the
/// same statements also complete an unversioned file (which an older build
/// may have made without `tombstones`).
const CHANNEL_DDL: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exchange_keys (
    id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,
    secret BLOB NOT NULL, bundle BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pins (
    agent_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, pinned_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS peer_bundles (agent_id TEXT PRIMARY KEY, bundle BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, peer TEXT NOT NULL, role TEXT NOT NULL,
    state BLOB NOT NULL, created_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL,
    send_reserved INTEGER NOT NULL, win_top INTEGER NOT NULL, win_bitmap INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS current (peer TEXT PRIMARY KEY, session_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (session_id TEXT PRIMARY KEY, until_ms INTEGER NOT NULL);
";

/// The `meta.format` value of every `channel.db`.
const CHANNEL_FORMAT: &str = "accord-channel-db/1";

const CHANNEL_SCHEMA: schema::Schema<'static> = schema::Schema {
    kind: "Accord channel database",
    application_id: CHANNEL_APPLICATION_ID,
    version: CHANNEL_SCHEMA_VERSION,
    create: CHANNEL_DDL,
    upgrade: &upgrade_channel_db,
};

/// Upgrades to [`CHANNEL_SCHEMA_VERSION`]. Only version 0 exists below it:
/// a file of this crate from before versioning, recognised by its tables
/// and its `meta.format` (a foreign unversioned database is refused, not
/// stamped). Its schema is the current one, so the step only adds what an
/// older build may not have made.
fn upgrade_channel_db(conn: &Connection, from: i32) -> Result<(), schema::UpgradeError> {
    if from != 0 {
        return Err(schema::UpgradeError::NotOurs(format!(
            "unknown schema version {from}"
        )));
    }
    let tables: [(&str, &[&str]); 6] = [
        ("meta", &["k", "v"]),
        (
            "exchange_keys",
            &["id", "created_ms", "expires_ms", "secret", "bundle"],
        ),
        ("pins", &["agent_id", "public_key", "pinned_ms"]),
        ("peer_bundles", &["agent_id", "bundle"]),
        (
            "sessions",
            &[
                "session_id",
                "peer",
                "role",
                "state",
                "created_ms",
                "used_ms",
                "send_reserved",
                "win_top",
                "win_bitmap",
            ],
        ),
        ("current", &["peer", "session_id"]),
    ];
    for (t, cols) in tables {
        if !schema::has_table(conn, t, cols)? {
            return Err(schema::UpgradeError::NotOurs(format!(
                "unversioned SQLite database without the channel table {t}"
            )));
        }
    }
    let format: Option<String> = conn
        .query_row("SELECT v FROM meta WHERE k = 'format'", [], |r| r.get(0))
        .optional()?;
    if let Some(f) = format
        && f != CHANNEL_FORMAT
    {
        return Err(schema::UpgradeError::NotOurs(format!(
            "meta format {f:?}, expected {CHANNEL_FORMAT:?}"
        )));
    }
    conn.execute_batch(CHANNEL_DDL)?;
    Ok(())
}

/// The agent-side channel database.
pub struct ChannelDb {
    conn: Connection,
    at_rest: AtRestKey,
    agent: AgentId,
}

fn ts(ms: u64) -> Result<Timestamp, NetError> {
    Timestamp::from_unix_micros(ms as i64 * 1000).map_err(|e| NetError::Io(e.to_string()))
}

impl ChannelDb {
    /// Opens or creates the database at `path` for the agent whose key is
    /// `key`. A file of another program, of a newer Accord, or of another
    /// agent is refused ([`NetError::Schema`], [`NetError::Db`]); the first
    /// two are left untouched. A file from before `channel.db` was
    /// versioned is recognised by its tables and stamped (see
    /// [`CHANNEL_APPLICATION_ID`]).
    pub fn open(path: &Path, key: &Keypair) -> Result<ChannelDb, NetError> {
        let (conn, _) = schema::open(path, &CHANNEL_SCHEMA)?;
        // After the version check: `journal_mode=WAL` writes the header,
        // and a refused file must stay as it was.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA secure_delete=ON;",
        )?;
        let owner: Option<String> = conn
            .query_row("SELECT v FROM meta WHERE k = 'agent_id'", [], |r| r.get(0))
            .optional()?;
        match owner {
            Some(o) if o != key.agent_id().as_str() => {
                return Err(NetError::Db(format!(
                    "{} belongs to agent {o}, not {}",
                    path.display(),
                    key.agent_id()
                )));
            }
            Some(_) => {}
            None => {
                conn.execute(
                    "INSERT INTO meta (k, v) VALUES ('format', ?1), ('agent_id', ?2)",
                    params![CHANNEL_FORMAT, key.agent_id().as_str()],
                )?;
            }
        }
        Ok(ChannelDb {
            conn,
            at_rest: AtRestKey::derive(key),
            agent: key.agent_id().clone(),
        })
    }

    fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, NetError> {
        Ok(self.at_rest.seal(random()?, aad.as_bytes(), plaintext)?)
    }

    /// The current exchange key and its bundle, making (and storing) a new
    /// one when there is none younger than [`ROTATE_MS`]; also deletes
    /// exchange keys past their grace period and idle sessions.
    pub fn current_exchange(
        &mut self,
        key: &Keypair,
        now_ms: u64,
    ) -> Result<(ExchangeSecret, Bundle), NetError> {
        self.purge(now_ms)?;
        let newest: Option<(String, i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT id, created_ms, bundle FROM exchange_keys ORDER BY created_ms DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        if let Some((id, created, bundle)) = newest
            && now_ms.saturating_sub(created as u64) < ROTATE_MS
            && let Some(secret) = self.exchange_secret(&id)?
        {
            let bundle = Bundle::parse(&bundle)?;
            return Ok((secret, bundle));
        }
        let secret = ExchangeSecret::generate(&random()?);
        let bundle = Bundle::sign(key, &secret, ts(now_ms)?, ts(now_ms + BUNDLE_LIFETIME_MS)?);
        let sealed = self.seal(
            &format!("exchange_keys/{}", secret.id()),
            secret.secret_bytes(),
        )?;
        self.conn.execute(
            "INSERT OR REPLACE INTO exchange_keys (id, created_ms, expires_ms, secret, bundle) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                secret.id(),
                now_ms as i64,
                (now_ms + BUNDLE_LIFETIME_MS) as i64,
                sealed,
                bundle.to_bytes()
            ],
        )?;
        Ok((secret, bundle))
    }

    /// The exchange key with this id, if it is still kept.
    pub fn exchange_secret(&self, id: &str) -> Result<Option<ExchangeSecret>, NetError> {
        let sealed: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT secret FROM exchange_keys WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = self
            .at_rest
            .open(format!("exchange_keys/{id}").as_bytes(), &sealed)?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| NetError::Db("stored exchange key has the wrong length".into()))?;
        Ok(Some(ExchangeSecret::from_secret_bytes(&bytes)?))
    }

    /// Deletes exchange keys past expiry + [`GRACE_MS`] and sessions idle
    /// for [`SESSION_IDLE_MS`] (their keys go with them).
    pub fn purge(&mut self, now_ms: u64) -> Result<(), NetError> {
        let tx = self.conn.transaction()?;
        let keys = tx.execute(
            "DELETE FROM exchange_keys WHERE expires_ms + ?1 < ?2",
            params![GRACE_MS as i64, now_ms as i64],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO tombstones (session_id, until_ms)
             SELECT session_id, created_ms + ?3 FROM sessions WHERE used_ms + ?1 < ?2",
            params![SESSION_IDLE_MS as i64, now_ms as i64, TOMBSTONE_MS as i64],
        )?;
        let sessions = tx.execute(
            "DELETE FROM sessions WHERE used_ms + ?1 < ?2",
            params![SESSION_IDLE_MS as i64, now_ms as i64],
        )?;
        tx.execute(
            "DELETE FROM current WHERE session_id NOT IN (SELECT session_id FROM sessions)",
            [],
        )?;
        tx.execute(
            "DELETE FROM tombstones WHERE until_ms < ?1",
            [now_ms as i64],
        )?;
        tx.commit()?;
        if sessions > 0 || keys > 0 {
            // Deleted keys must not linger in the write-ahead log
            // (secure_delete already zeroes them in the database file).
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        Ok(())
    }

    /// Whether a session with this id exists or existed (tombstone): such
    /// an id is never rebuilt from an envelope.
    pub fn session_known(&self, id: &str) -> Result<bool, NetError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM sessions WHERE session_id = ?1
                 UNION ALL SELECT 1 FROM tombstones WHERE session_id = ?1",
            )?
            .exists([id])?)
    }

    /// The key pinned for `agent`.
    pub fn pinned(&self, agent: &AgentId) -> Result<Option<PublicKey>, NetError> {
        let k: Option<String> = self
            .conn
            .query_row(
                "SELECT public_key FROM pins WHERE agent_id = ?1",
                [agent.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        k.map(|k| PublicKey::from_b64(&k).map_err(|e| NetError::Db(e.to_string())))
            .transpose()
    }

    /// Checks `key` against the pin for `agent`, pinning it on first use.
    pub fn check_pin(
        &mut self,
        agent: &AgentId,
        key: &PublicKey,
        now_ms: u64,
    ) -> Result<(), NetError> {
        match self.pinned(agent)? {
            Some(p) if p == *key => Ok(()),
            Some(p) => Err(NetError::PeerKeyChanged {
                peer: agent.to_string(),
                pinned: p.fingerprint(),
                offered: key.fingerprint(),
            }),
            None => {
                self.conn.execute(
                    "INSERT INTO pins (agent_id, public_key, pinned_ms) VALUES (?1, ?2, ?3)",
                    params![agent.as_str(), key.to_b64(), now_ms as i64],
                )?;
                Ok(())
            }
        }
    }

    /// Replaces (or sets) the pin for `agent`: the explicit user decision
    /// after a [`NetError::PeerKeyChanged`]. Cached bundles and sessions
    /// with the peer are dropped, since they were made under the old key.
    pub fn repin(&mut self, agent: &AgentId, key: &PublicKey, now_ms: u64) -> Result<(), NetError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO pins (agent_id, public_key, pinned_ms) VALUES (?1, ?2, ?3)",
            params![agent.as_str(), key.to_b64(), now_ms as i64],
        )?;
        tx.execute(
            "DELETE FROM peer_bundles WHERE agent_id = ?1",
            [agent.as_str()],
        )?;
        tx.execute("DELETE FROM current WHERE peer = ?1", [agent.as_str()])?;
        tx.execute(
            "INSERT OR IGNORE INTO tombstones (session_id, until_ms)
             SELECT session_id, created_ms + ?2 FROM sessions WHERE peer = ?1",
            params![agent.as_str(), TOMBSTONE_MS as i64],
        )?;
        tx.execute("DELETE FROM sessions WHERE peer = ?1", [agent.as_str()])?;
        tx.commit()?;
        Ok(())
    }

    /// Every pinned peer.
    pub fn pins(&self) -> Result<Vec<(String, String)>, NetError> {
        let mut st = self
            .conn
            .prepare("SELECT agent_id, public_key FROM pins ORDER BY agent_id")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Caches a peer's verified bundle.
    pub fn save_peer_bundle(&mut self, bundle: &Bundle) -> Result<(), NetError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO peer_bundles (agent_id, bundle) VALUES (?1, ?2)",
            params![bundle.agent_id().as_str(), bundle.to_bytes()],
        )?;
        Ok(())
    }

    /// A cached bundle of `agent` (verified again on the way out).
    pub fn peer_bundle(&self, agent: &AgentId) -> Result<Option<Bundle>, NetError> {
        let b: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT bundle FROM peer_bundles WHERE agent_id = ?1",
                [agent.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(b.and_then(|b| Bundle::parse(&b).ok()))
    }

    /// Stores a new session (keys encrypted) and makes it the current one
    /// for its peer. A session id that exists or existed (tombstone) is
    /// never written again: returns `false` and changes nothing then (the
    /// caller re-reads the stored session, whose replay window and send
    /// reservation are authoritative).
    pub fn save_session(&mut self, s: &Session, now_ms: u64) -> Result<bool, NetError> {
        let sealed = self.seal(&format!("sessions/{}", s.id()), &s.secret_state())?;
        let role = match s.role() {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
        };
        let tx = self.conn.transaction()?;
        let dead = tx
            .prepare_cached("SELECT 1 FROM tombstones WHERE session_id = ?1")?
            .exists([s.id()])?;
        if dead {
            return Ok(false);
        }
        let n = tx.execute(
            "INSERT INTO sessions (session_id, peer, role, state, created_ms, used_ms, send_reserved, win_top, win_bitmap)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8) ON CONFLICT (session_id) DO NOTHING",
            params![
                s.id(),
                s.peer().as_str(),
                role,
                sealed,
                now_ms as i64,
                s.next_seq() as i64,
                s.window().top as i64,
                s.window().bitmap as i64
            ],
        )?;
        if n == 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT OR REPLACE INTO current (peer, session_id) VALUES (?1, ?2)",
            params![s.peer().as_str(), s.id()],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Loads a session with its send counter (resuming after the last
    /// reserved block) and its replay window.
    pub fn load_session(&self, id: &str) -> Result<Option<Session>, NetError> {
        let row: Option<(Vec<u8>, i64, i64, i64)> = self
            .conn
            .query_row(
                "SELECT state, send_reserved, win_top, win_bitmap FROM sessions WHERE session_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((sealed, reserved, top, bitmap)) = row else {
            return Ok(None);
        };
        let plain = self
            .at_rest
            .open(format!("sessions/{id}").as_bytes(), &sealed)?;
        let mut s = Session::from_secret_state(&plain)?;
        if s.local() != &self.agent {
            return Err(NetError::Db(
                "a stored session belongs to another agent".into(),
            ));
        }
        s.set_next_seq(reserved as u64);
        s.set_window(ReplayWindow {
            top: top as u64,
            bitmap: bitmap as u64,
        });
        Ok(Some(s))
    }

    /// The session currently used with `peer`.
    pub fn current_session(&self, peer: &AgentId) -> Result<Option<String>, NetError> {
        // Cached statement: this runs for every message sent.
        Ok(self
            .conn
            .prepare_cached("SELECT session_id FROM current WHERE peer = ?1")?
            .query_row([peer.as_str()], |r| r.get(0))
            .optional()?)
    }

    /// Makes `session_id` the one used for sending to `peer`.
    pub fn set_current(&mut self, peer: &AgentId, session_id: &str) -> Result<(), NetError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO current (peer, session_id) VALUES (?1, ?2)",
            params![peer.as_str(), session_id],
        )?;
        Ok(())
    }

    /// Reserves the next block of [`SEQ_BLOCK`] sequence numbers of a
    /// session and returns the end of the block (exclusive). The increment
    /// is atomic in the database, so two processes sending in one session
    /// (say `accord listen` and `accord send` on the same home) get disjoint
    /// blocks and never reuse an AES-GCM nonce.
    pub fn reserve_send(&mut self, session_id: &str, now_ms: u64) -> Result<u64, NetError> {
        let end: i64 = self
            .conn
            .prepare_cached(
                "UPDATE sessions SET send_reserved = send_reserved + ?2, used_ms = ?3
                 WHERE session_id = ?1 RETURNING send_reserved",
            )?
            .query_row(params![session_id, SEQ_BLOCK as i64, now_ms as i64], |r| {
                r.get(0)
            })?;
        Ok(end as u64)
    }

    /// Persists replay windows (one transaction for a batch of messages).
    pub fn save_windows(
        &mut self,
        windows: &[(String, ReplayWindow)],
        now_ms: u64,
    ) -> Result<(), NetError> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE sessions SET win_top = ?2, win_bitmap = ?3, used_ms = ?4 WHERE session_id = ?1",
            )?;
            for (id, w) in windows {
                st.execute(params![id, w.top as i64, w.bitmap as i64, now_ms as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Number of stored sessions.
    pub fn session_count(&self) -> Result<u64, NetError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_never_overwritten_nor_rebuilt_after_purge() {
        let dir = tempfile::tempdir().unwrap();
        let me = Keypair::from_seed(&[1; 32]).unwrap();
        let peer = Keypair::from_seed(&[2; 32]).unwrap();
        let mut db = ChannelDb::open(&dir.path().join(CHANNEL_DB), &me).unwrap();
        let now = 1_800_000_000_000u64;
        let secret = ExchangeSecret::generate(&[3; 32]);
        let bundle = Bundle::sign(
            &peer,
            &secret,
            ts(now).unwrap(),
            ts(now + BUNDLE_LIFETIME_MS).unwrap(),
        );
        let s = Session::initiate(
            me.agent_id(),
            &bundle,
            [4; 16],
            now,
            &mut rand_core::UnwrapErr(getrandom::SysRng),
        )
        .unwrap();
        assert!(db.save_session(&s, now).unwrap());
        let end = db.reserve_send(s.id(), now).unwrap();
        assert_eq!(end, SEQ_BLOCK);
        // A second store of the same id (another process) changes nothing:
        // send_reserved is never lowered.
        assert!(!db.save_session(&s, now).unwrap());
        assert_eq!(
            db.load_session(s.id()).unwrap().unwrap().next_seq(),
            SEQ_BLOCK
        );
        // Purged after 7 idle days: a tombstone remains, the id stays known
        // and cannot be stored again, until the exchange key is gone too.
        let later = now + SESSION_IDLE_MS + 1000;
        db.purge(later).unwrap();
        assert_eq!(db.session_count().unwrap(), 0);
        assert!(db.session_known(s.id()).unwrap());
        assert!(!db.save_session(&s, later).unwrap());
        db.purge(now + TOMBSTONE_MS + 1).unwrap();
        assert!(!db.session_known(s.id()).unwrap());
    }
}
