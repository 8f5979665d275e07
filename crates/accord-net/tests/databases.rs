//! `channel.db` and `hub.db` under their versioned open: created at the
//! current version, files from before versioning upgraded in place and
//! still readable, foreign and newer files refused byte-for-byte untouched.

use std::path::Path;

use accord_core::Keypair;
use accord_net::channel_db::{
    CHANNEL_APPLICATION_ID, CHANNEL_DB, CHANNEL_SCHEMA_VERSION, ChannelDb,
};
use accord_net::hub::{HUB_APPLICATION_ID, HUB_DB, HUB_SCHEMA_VERSION};
use accord_net::{HubCore, Limits, NetError};
use accord_store::schema::{Header, SchemaError, read_header};
use rusqlite::Connection;

fn header(path: &Path) -> (i32, i32) {
    match read_header(path, "test").unwrap() {
        Header::Sqlite {
            application_id,
            user_version,
        } => (application_id, user_version),
        Header::Absent => panic!("{} is absent", path.display()),
    }
}

/// What the unversioned code made: its exact statements, then some data.
const OLD_CHANNEL_DDL: &str = "PRAGMA journal_mode=WAL;
    PRAGMA synchronous=NORMAL;
    PRAGMA secure_delete=ON;
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
    CREATE TABLE IF NOT EXISTS current (peer TEXT PRIMARY KEY, session_id TEXT NOT NULL);";

fn old_channel_db(path: &Path, me: &Keypair, peer: &Keypair, with_tombstones: bool) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(OLD_CHANNEL_DDL).unwrap();
    if with_tombstones {
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS tombstones (session_id TEXT PRIMARY KEY, until_ms INTEGER NOT NULL);",
        )
        .unwrap();
    }
    c.execute(
        "INSERT INTO meta (k, v) VALUES ('format', 'accord-channel-db/1'), ('agent_id', ?1)",
        [me.agent_id().as_str()],
    )
    .unwrap();
    c.execute(
        "INSERT INTO pins (agent_id, public_key, pinned_ms) VALUES (?1, ?2, 1)",
        [peer.agent_id().as_str(), &peer.public().to_b64()],
    )
    .unwrap();
}

fn keys() -> (Keypair, Keypair) {
    (
        Keypair::from_seed(&[1; 32]).unwrap(),
        Keypair::from_seed(&[2; 32]).unwrap(),
    )
}

#[test]
fn a_new_channel_db_is_created_at_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let (me, _) = keys();
    let path = dir.path().join(CHANNEL_DB);
    drop(ChannelDb::open(&path, &me).unwrap());
    assert_eq!(
        header(&path),
        (CHANNEL_APPLICATION_ID, CHANNEL_SCHEMA_VERSION)
    );
    assert_eq!(CHANNEL_APPLICATION_ID.to_be_bytes(), *b"ACCC");
    // Reopening changes nothing and keeps working.
    let db = ChannelDb::open(&path, &me).unwrap();
    assert_eq!(db.session_count().unwrap(), 0);
}

#[test]
fn an_unversioned_channel_db_is_upgraded_and_still_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (me, peer) = keys();
    for with_tombstones in [true, false] {
        let path = dir.path().join(format!("channel-{with_tombstones}.db"));
        old_channel_db(&path, &me, &peer, with_tombstones);
        assert_eq!(header(&path), (0, 0));
        let mut db = ChannelDb::open(&path, &me).unwrap();
        assert_eq!(
            header(&path),
            (CHANNEL_APPLICATION_ID, CHANNEL_SCHEMA_VERSION)
        );
        // The data survived; a file of a build without tombstones got them.
        assert_eq!(db.pinned(peer.agent_id()).unwrap(), Some(*peer.public()));
        db.purge(u64::MAX / 4).unwrap();
        assert!(!db.session_known("AAAAAAAAAAAAAAAAAAAAAA").unwrap());
        drop(db);
        // And the owner check still applies to the upgraded file.
        let e = ChannelDb::open(&path, &peer)
            .err()
            .expect("another agent's file");
        assert!(
            matches!(&e, NetError::Db(m) if m.contains("belongs to agent")),
            "{e:?}"
        );
    }
}

/// Runs `open` on a file made by `make`, expects a refusal naming the file,
/// and checks that not one byte changed.
fn refused_untouched(path: &Path, make: &str, open: &dyn Fn(&Path) -> NetError) -> SchemaError {
    let c = Connection::open(path).unwrap();
    c.execute_batch(make).unwrap();
    drop(c);
    let before = std::fs::read(path).unwrap();
    let e = open(path);
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "{} was modified",
        path.display()
    );
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("left untouched"), "{msg}");
    match e {
        NetError::Schema(s) => s,
        other => panic!("not a schema refusal: {other:?}"),
    }
}

#[test]
fn foreign_and_newer_channel_dbs_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (me, _) = keys();
    let open = |p: &Path| ChannelDb::open(p, &me).err().expect("refused");
    let events_id = accord_store::sqlite::APPLICATION_ID;
    let e = refused_untouched(
        &dir.path().join("events-as-channel.db"),
        &format!("PRAGMA application_id = {events_id}; CREATE TABLE events (x);"),
        &open,
    );
    assert!(matches!(e, SchemaError::Foreign { .. }), "{e}");
    let e = refused_untouched(
        &dir.path().join("newer.db"),
        &format!(
            "PRAGMA application_id = {CHANNEL_APPLICATION_ID}; PRAGMA user_version = {}; CREATE TABLE meta (k, v);",
            CHANNEL_SCHEMA_VERSION + 1
        ),
        &open,
    );
    assert!(
        matches!(e, SchemaError::Newer { found, supported, .. } if found == CHANNEL_SCHEMA_VERSION + 1 && supported == CHANNEL_SCHEMA_VERSION),
        "{e}"
    );
    assert!(e.to_string().contains("newer accord"), "{e}");
    // Unversioned, but not ours: not stamped.
    let e = refused_untouched(
        &dir.path().join("notes.db"),
        "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');",
        &open,
    );
    assert!(matches!(e, SchemaError::Foreign { .. }), "{e}");
    // Our tables but another format tag in meta.
    let e = refused_untouched(
        &dir.path().join("other-format.db"),
        &format!("{OLD_CHANNEL_DDL} INSERT INTO meta VALUES ('format', 'something-else/1');"),
        &open,
    );
    assert!(matches!(e, SchemaError::Foreign { .. }), "{e}");
    // Not SQLite at all.
    let path = dir.path().join("text.db");
    std::fs::write(&path, "x".repeat(4096)).unwrap();
    let e = open(&path);
    assert!(
        matches!(e, NetError::Schema(SchemaError::Foreign { .. })),
        "{e}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), "x".repeat(4096).as_bytes());
}

const OLD_HUB_DDL: &str = "PRAGMA journal_mode=WAL;
    PRAGMA synchronous=NORMAL;
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
    CREATE INDEX IF NOT EXISTS queue_to ON queue(to_agent, qid);";

#[test]
fn hub_db_is_created_versioned_and_an_unversioned_one_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh");
    drop(HubCore::open(Some(&fresh), Limits::default()).unwrap());
    assert_eq!(
        header(&fresh.join(HUB_DB)),
        (HUB_APPLICATION_ID, HUB_SCHEMA_VERSION)
    );
    assert_eq!(HUB_APPLICATION_ID.to_be_bytes(), *b"ACCH");

    let old = dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    let c = Connection::open(old.join(HUB_DB)).unwrap();
    c.execute_batch(OLD_HUB_DDL).unwrap();
    c.execute(
        "INSERT INTO queue (to_agent, from_agent, envelope, received_ms) VALUES ('bob', 'alice', x'7b7d', 1)",
        [],
    )
    .unwrap();
    drop(c);
    assert_eq!(header(&old.join(HUB_DB)), (0, 0));
    let core = HubCore::open(Some(&old), Limits::default()).unwrap();
    assert_eq!(
        header(&old.join(HUB_DB)),
        (HUB_APPLICATION_ID, HUB_SCHEMA_VERSION)
    );
    // The queued envelope is still there, counted and deliverable.
    assert_eq!(core.queued_total(), 1);
    assert_eq!(core.pending("bob", 0, 10), vec![(1, b"{}".to_vec())]);
}

#[test]
fn foreign_and_newer_hub_dbs_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let open = |p: &Path| HubCore::open(p.parent(), Limits::default()).expect_err("refused");
    for (name, make, newer) in [
        (
            "channel-in-hub",
            format!(
                "PRAGMA application_id = {CHANNEL_APPLICATION_ID}; PRAGMA user_version = 1; CREATE TABLE meta (k, v);"
            ),
            false,
        ),
        (
            "newer",
            format!(
                "PRAGMA application_id = {HUB_APPLICATION_ID}; PRAGMA user_version = {}; CREATE TABLE agents (x);",
                HUB_SCHEMA_VERSION + 1
            ),
            true,
        ),
        (
            "unversioned-other",
            "CREATE TABLE queue (x);".to_owned(),
            false,
        ),
    ] {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let e = refused_untouched(&d.join(HUB_DB), &make, &open);
        assert_eq!(matches!(e, SchemaError::Newer { .. }), newer, "{name}: {e}");
        assert!(e.to_string().contains("Accord hub database"), "{e}");
    }
}
