//! SQLite store: appends enforce the chain, nothing stored is rewritten,
//! foreign and corrupt files are refused untouched, edits are detected.

use std::fs;
use std::path::Path;
use std::time::Duration;

use accord_core::keyfile::KdfParams;
use accord_core::{Event, Map, Reason, SignatureMode, Value};
use accord_store::home::{nonce, now, verify_store};
use accord_store::{EventStore, Home, SqliteStore, StoreError};
use proptest::prelude::*;

fn agent_in(dir: &Path) -> accord_store::Agent {
    Home::new(dir.join("a"))
        .init(Some("t"), None, KdfParams::DEFAULT)
        .unwrap()
}

fn item(i: u64) -> (String, Map<String, Value>) {
    let mut m = Map::new();
    m.insert("i".into(), Value::from(i));
    ("tick".into(), m)
}

fn sha(p: &Path) -> accord_core::Hash32 {
    accord_core::Hash32::of(&fs::read(p).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Any sequence of batched appends yields a chain that verifies.
    #[test]
    fn any_sequence_of_appends_verifies(batches in prop::collection::vec(1usize..40, 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = agent_in(dir.path());
        let mut total = 1u64;
        for (k, n) in batches.iter().enumerate() {
            let evs = agent.stamp_batch((0..*n as u64).map(|i| item(k as u64 * 100 + i)).collect()).unwrap();
            prop_assert_eq!(evs.first().unwrap().seq(), total);
            total += *n as u64;
        }
        let id = agent.key().agent_id().clone();
        let s = verify_store(agent.store(), &id, SignatureMode::Batch, &mut |_| {}).unwrap().unwrap();
        prop_assert_eq!(s.events, total);
        prop_assert_eq!(agent.store().len(&id).unwrap(), total);
    }
}

#[test]
fn stale_or_forked_appends_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = agent_in(dir.path());
    let id = agent.key().agent_id().clone();
    let head = agent.store().head(&id).unwrap().unwrap();
    // Build an event on the current head, then let the chain move on.
    let stale = Event {
        agent_id: id.clone(),
        seq: head.seq + 1,
        timestamp: now().unwrap(),
        nonce: nonce().unwrap(),
        event_type: "late".into(),
        payload: Map::new(),
        prev_hash: head.hash,
        public_key: None,
    }
    .sign(agent.key())
    .unwrap();
    agent.stamp("first", Map::new()).unwrap();
    let mut store = SqliteStore::open(&dir.path().join("a/events.db")).unwrap();
    let err = store.append(std::slice::from_ref(&stale)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 1,
                found: 2
            }
        ),
        "{err}"
    );
    // Same seq as the head +1 but a different prev_hash: a fork attempt.
    let fork = Event {
        seq: 2,
        ..stale.event().clone()
    }
    .sign(agent.key())
    .unwrap();
    let err = store.append(&[fork]).unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref m) if m.contains("prev_hash")),
        "{err}"
    );
    assert_eq!(store.len(&id).unwrap(), 2);
    // Another agent's event cannot enter this chain.
    let other = Home::new(dir.path().join("b"))
        .init(None, None, KdfParams::DEFAULT)
        .unwrap();
    let foreign = Event {
        agent_id: other.key().agent_id().clone(),
        ..stale.event().clone()
    }
    .sign(other.key())
    .unwrap();
    let err = store
        .append_with(&id, &mut |_| Ok(vec![foreign.clone()]))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref m) if m.contains("belongs to agent")),
        "{err}"
    );
    assert_eq!(store.len(&id).unwrap(), 2);
}

#[test]
fn stored_events_cannot_be_updated_or_deleted_through_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = agent_in(dir.path());
    agent.stamp("x", Map::new()).unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("a/events.db")).unwrap();
    let e = conn
        .execute("UPDATE events SET body = x'00' WHERE seq = 1", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = conn.execute("DELETE FROM events", []).unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = conn
        .execute("INSERT OR REPLACE INTO events (agent_id, seq, body) SELECT agent_id, seq, x'00' FROM events WHERE seq = 1", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let body: Vec<u8> = conn
        .query_row("SELECT body FROM events WHERE seq = 1", [], |r| r.get(0))
        .unwrap();
    assert!(body.starts_with(b"{\"agent_id\""));
}

#[test]
fn an_edited_store_is_detected_and_names_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = agent_in(dir.path());
    agent.stamp_batch((0..10).map(item).collect()).unwrap();
    let id = agent.key().agent_id().clone();
    drop(agent);
    let db = dir.path().join("a/events.db");
    {
        // Someone with file access drops the guard and edits event 4.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("DROP TRIGGER events_no_update").unwrap();
        let body: Vec<u8> = conn
            .query_row("SELECT body FROM events WHERE seq = 4", [], |r| r.get(0))
            .unwrap();
        let edited = String::from_utf8(body)
            .unwrap()
            .replace("\"i\":3", "\"i\":4");
        conn.execute(
            "UPDATE events SET body = ?1 WHERE seq = 4",
            [edited.as_bytes()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&db).unwrap();
    let f = verify_store(&store, &id, SignatureMode::Batch, &mut |_| {})
        .unwrap()
        .unwrap_err();
    assert_eq!(f.seq, 4);
    assert_eq!(f.reason, Reason::Signature);
}

#[test]
fn foreign_and_corrupt_files_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // Not SQLite at all.
    let junk = dir.path().join("junk.db");
    fs::write(
        &junk,
        b"this is not a database, and it must stay exactly like this",
    )
    .unwrap();
    let before = sha(&junk);
    assert!(matches!(
        SqliteStore::open(&junk),
        Err(StoreError::NotAStore { .. })
    ));
    assert_eq!(sha(&junk), before);
    // Another application's SQLite database.
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let before = sha(&other);
    let err = SqliteStore::open(&other).err().unwrap();
    assert!(err.to_string().contains("another application"), "{err}");
    assert_eq!(sha(&other), before);
    // A real store whose pages were overwritten with garbage.
    let mut agent = agent_in(dir.path());
    agent.stamp_batch((0..500).map(item).collect()).unwrap();
    drop(agent);
    let db = dir.path().join("a/events.db");
    let mut bytes = fs::read(&db).unwrap();
    let len = bytes.len();
    for b in &mut bytes[4096..len.min(4096 * 6)] {
        *b = 0xa5;
    }
    fs::write(&db, &bytes).unwrap();
    let before = sha(&db);
    let outcome = SqliteStore::open(&db).and_then(|s| {
        s.quick_check()?;
        let id = s
            .agents()?
            .into_iter()
            .next()
            .ok_or(StoreError::Corrupt("no agents".into()))?;
        verify_store(&s, &id, SignatureMode::Batch, &mut |_| {})?
            .map_err(|f| StoreError::Corrupt(f.to_string()))
    });
    assert!(outcome.is_err(), "garbage pages went unnoticed");
    assert_eq!(sha(&db), before, "a corrupt store must not be modified");
    // A missing store is reported as such.
    assert!(matches!(
        SqliteStore::open(&dir.path().join("none.db")),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn init_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("a"));
    home.init(Some("one"), None, KdfParams::DEFAULT).unwrap();
    let key_before = sha(&home.key_path());
    assert!(home.init(Some("two"), None, KdfParams::DEFAULT).is_err());
    assert_eq!(sha(&home.key_path()), key_before);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(home.key_path()).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// The README's library example is this crate's doctest, verbatim.
#[test]
fn readme_example_is_the_compiled_doctest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("```rust\n").expect("README has a rust example") + 8;
    let end = start + readme[start..].find("```").unwrap();
    let example = &readme[start..end];
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let doctest: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| *l != "```")
        .skip(1)
        .take_while(|l| *l != "```")
        .filter(|l| !l.starts_with("# "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(example, doctest);
}

/// A version-1 store (events only) is upgraded in place on open, without
/// touching its events; a second, different checkpoint of a recorded size
/// is refused.
#[test]
fn v1_store_upgrades_and_checkpoints_are_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = agent_in(dir.path());
    agent.stamp_batch((0..5).map(item).collect()).unwrap();
    let id = agent.key().agent_id().clone();
    drop(agent);
    let db = dir.path().join("a/events.db");
    let bodies = |db: &Path| -> Vec<Vec<u8>> {
        let c = rusqlite::Connection::open(db).unwrap();
        let mut s = c.prepare("SELECT body FROM events ORDER BY seq").unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let before = bodies(&db);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "DROP TRIGGER checkpoints_no_update; DROP TRIGGER checkpoints_no_delete;
             DROP TRIGGER checkpoints_no_replace; DROP TABLE checkpoints;
             DROP TRIGGER quarantine_no_update; DROP TRIGGER quarantine_no_delete;
             DROP TABLE quarantine; DROP TABLE state;
             DROP TRIGGER merkle_no_update; DROP TRIGGER merkle_no_delete; DROP TABLE merkle;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    let mut store = SqliteStore::open(&db).unwrap();
    let version: i32 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, accord_store::sqlite::SCHEMA_VERSION);
    assert_eq!(bodies(&db), before);
    // The upgrade indexed the existing events: the stored tree is the tree
    // of the events.
    {
        use accord_core::merkle::Nodes;
        let stored = accord_store::home::stored_tree(&store, &id).unwrap();
        let rebuilt = accord_store::home::tree_of(&store, &id).unwrap();
        assert_eq!(stored.size(), 6);
        for n in 1..=6 {
            assert_eq!(stored.root(n).unwrap(), rebuilt.root(n).unwrap());
        }
    }
    store.record_checkpoint(&id, 3, b"note-a").unwrap();
    store.record_checkpoint(&id, 3, b"note-a").unwrap();
    let err = store.record_checkpoint(&id, 3, b"note-b").unwrap_err();
    assert!(err.to_string().contains("already recorded"), "{err}");
    assert_eq!(
        store.checkpoints(&id).unwrap(),
        vec![(3, b"note-a".to_vec())]
    );
    // Unknown future versions are refused untouched. (Closed first: an open
    // store's checkpointer copies the WAL into the file, which is the point
    // of it but not what is measured here.)
    drop(store);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA user_version = 9")
        .unwrap();
    let before = sha(&db);
    assert!(matches!(
        SqliteStore::open(&db),
        Err(StoreError::NotAStore { .. })
    ));
    assert_eq!(sha(&db), before);
}

/// Rows of `events` in `db` read without its WAL, as a copy of the file
/// alone (a backup of `events.db`, or the file after its `-wal` was lost).
fn rows_in_main_file(db: &Path) -> i64 {
    let copy = db.with_extension("copy");
    let _ = fs::remove_file(&copy);
    fs::copy(db, &copy).unwrap();
    let n = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    fs::remove_file(&copy).unwrap();
    n
}

/// docs/STORAGE.md, connection settings: a commit is copied from the WAL
/// into events.db while the store stays open, right after it returns —
/// not only when SQLite's own checkpoint comes (after 1000 pages, or on the
/// last close).
#[test]
fn commits_reach_the_database_file_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a/events.db");
    let mut agent = agent_in(dir.path());
    for k in 0..3 {
        agent
            .stamp_batch((0..10).map(|i| item(k * 10 + i)).collect())
            .unwrap();
        // No limit a test could hit on a slow machine: only a reader of an
        // older snapshot holds the copy back, and there is none here.
        assert!(agent.store().wait_checkpointed(Duration::from_secs(60)));
        assert_eq!(rows_in_main_file(&db), 1 + 10 * (k as i64 + 1));
    }
    let id = agent.key().agent_id().clone();
    let store = agent.store_mut();
    store.record_checkpoint(&id, 31, b"note").unwrap();
    assert!(store.wait_checkpointed(Duration::from_secs(60)));
    let noted: i64 = {
        let copy = db.with_extension("copy");
        fs::copy(&db, &copy).unwrap();
        rusqlite::Connection::open(&copy)
            .unwrap()
            .query_row("SELECT count(*) FROM checkpoints", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(noted, 1, "a recorded checkpoint is copied as an append is");
}

/// A reader in the middle of a read on an older snapshot keeps those
/// frames from being copied (copying them would change pages it still
/// reads), but neither the reader nor the writer waits for the other, and
/// the copy is made once the reader is done.
#[test]
fn a_reader_of_an_older_snapshot_only_delays_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a/events.db");
    let mut agent = agent_in(dir.path());
    assert!(agent.store().wait_checkpointed(Duration::from_secs(60)));
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM events;")
        .unwrap();
    agent.stamp_batch((0..5).map(item).collect()).unwrap();
    // The outcome does not depend on the limit: the reader holds the
    // frames for as long as it reads.
    assert!(!agent.store().wait_checkpointed(Duration::from_millis(50)));
    assert_eq!(rows_in_main_file(&db), 1);
    reader.execute_batch("COMMIT").unwrap();
    assert!(agent.store().wait_checkpointed(Duration::from_secs(60)));
    assert_eq!(rows_in_main_file(&db), 6);
}

/// Closing the store copies its last commits even when another connection
/// keeps the file open (so SQLite's checkpoint on the last close does not
/// run).
#[test]
fn closing_the_store_copies_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a/events.db");
    let other = {
        let agent = agent_in(dir.path());
        drop(agent);
        rusqlite::Connection::open(&db).unwrap()
    };
    let home = Home::new(dir.path().join("a"));
    let mut agent = home.open(None).unwrap();
    agent.stamp_batch((0..7).map(item).collect()).unwrap();
    drop(agent);
    assert_eq!(rows_in_main_file(&db), 8);
    drop(other);
}
