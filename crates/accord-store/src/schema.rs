//! Versioned SQLite files: one identification and upgrade routine for the
//! databases next to the event store (`channel.db`, `hub.db`, in
//! `accord-net`), following the rules `events.db` follows
//! ([`crate::sqlite`]; docs/STORAGE.md "Versioned open").
//!
//! Each database names itself with SQLite's `application_id` (a 4-byte
//! ASCII tag, big-endian at byte offset 68 of the file) and its schema
//! version with `user_version` (offset 60). Opening a file:
//!
//! 1. reads the 100-byte header **without SQLite** ([`read_header`]) and
//!    refuses a file that is not SQLite, carries another application's id,
//!    or a newer schema version — before SQLite could write to it (SQLite
//!    may recover a journal or checkpoint a WAL on open);
//! 2. opens it and, in one `BEGIN IMMEDIATE` transaction, reads the id and
//!    version **again** under the write lock (another process may have
//!    created or upgraded the file meanwhile) and then creates the full
//!    schema (a new or empty file), leaves it alone (current version), or
//!    runs the caller's upgrade from the version found and stamps the id
//!    and the current version — all or nothing;
//! 3. after an upgrade or creation, checkpoints the WAL so the stamped
//!    header reaches the main file, where step 1 reads it.
//!
//! Version 0 with id 0 and tables is a file made before the database was
//! versioned: the caller's upgrade must recognise it (its tables) or refuse
//! it as foreign; it is never stamped blindly.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rusqlite::Connection;

/// What the header of an existing file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// No file, or an empty one (SQLite treats it as a new database).
    Absent,
    /// A SQLite 3 database with these header fields (as stored in the main
    /// file: with a WAL, newer values may not be checkpointed yet).
    Sqlite {
        /// `PRAGMA application_id`.
        application_id: i32,
        /// `PRAGMA user_version`.
        user_version: i32,
    },
}

/// Why a database file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The file is not this kind of Accord database (not SQLite, another
    /// application's id, or unversioned tables it does not recognise). It
    /// was left untouched.
    #[error(
        "{path} is not an {kind} ({reason}); it was left untouched: move it aside or use another location"
    )]
    Foreign {
        /// The file.
        path: String,
        /// What it should have been (e.g. "Accord channel database").
        kind: String,
        /// Why it was refused.
        reason: String,
    },
    /// The file was written by a newer Accord (a schema version this build
    /// does not know). It was left untouched.
    #[error(
        "{path} is an {kind} of schema version {found}, but this build reads versions up to {supported}; it was left untouched: use a newer accord"
    )]
    Newer {
        /// The file.
        path: String,
        /// What kind of database it is.
        kind: String,
        /// Its schema version.
        found: i32,
        /// The newest version this build reads.
        supported: i32,
    },
    /// Reading, creating or upgrading the file failed; an upgrade was rolled
    /// back (the file is as it was).
    #[error("{kind} {path}: {message}")]
    Storage {
        /// The file.
        path: String,
        /// What kind of database it is.
        kind: String,
        /// The underlying failure.
        message: String,
    },
}

/// An upgrade step: runs inside the write transaction with the version found
/// (0 for a file from before versioning, with id 0); returns `Err(reason)`
/// to refuse the file as foreign (the transaction is rolled back).
pub type Upgrade<'a> = &'a dyn Fn(&Connection, i32) -> Result<(), UpgradeError>;

/// Why an [`Upgrade`] step did not upgrade.
#[derive(Debug)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The file is not this kind of database (the reason is shown).
    NotOurs(String),
    /// A SQLite failure while upgrading.
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for UpgradeError {
    fn from(e: rusqlite::Error) -> Self {
        UpgradeError::Sqlite(e)
    }
}

/// A versioned database kind.
pub struct Schema<'a> {
    /// Human name used in errors ("Accord channel database").
    pub kind: &'a str,
    /// Its `application_id` (nonzero).
    pub application_id: i32,
    /// The current schema version (at least 1).
    pub version: i32,
    /// The full schema at [`Schema::version`], run when creating.
    pub create: &'a str,
    /// Upgrades from an older version (0 = unversioned) to the current one.
    pub upgrade: Upgrade<'a>,
}

impl std::fmt::Debug for Schema<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("kind", &self.kind)
            .field(
                "application_id",
                &format_args!("{:#010x}", self.application_id),
            )
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Opened {
    /// The file was new (or empty): the schema was created.
    Created,
    /// The file was at the current version: nothing changed.
    Current,
    /// The file was upgraded from this version.
    Upgraded(i32),
}

/// The `application_id` of a 4-character ASCII tag ("ACCD" → 0x41434344).
pub const fn tag(t: &[u8; 4]) -> i32 {
    i32::from_be_bytes(*t)
}

/// Reads the SQLite header of `path` without SQLite. A file that exists but
/// is neither empty nor a SQLite 3 database is [`SchemaError::Foreign`].
pub fn read_header(path: &Path, kind: &str) -> Result<Header, SchemaError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Header::Absent),
        Err(e) => return Err(storage(path, kind, format!("cannot read it: {e}"))),
    };
    let mut header = [0u8; 100];
    let mut n = 0;
    while n < header.len() {
        match f.read(&mut header[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(storage(path, kind, format!("cannot read it: {e}"))),
        }
    }
    if n == 0 {
        return Ok(Header::Absent);
    }
    if n < header.len() {
        return Err(foreign(path, kind, "file is shorter than a SQLite header"));
    }
    if &header[..16] != b"SQLite format 3\0" {
        return Err(foreign(path, kind, "not a SQLite database"));
    }
    let field = |at: usize| {
        i32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    Ok(Header::Sqlite {
        application_id: field(68),
        user_version: field(60),
    })
}

/// Refuses, from the header alone, what [`migrate`] would refuse: another
/// application's id or a newer version of ours. Id 0 passes (a new file, a
/// file from before versioning, or a stamp not checkpointed yet): the
/// transaction decides.
pub fn check_header(path: &Path, schema: &Schema<'_>) -> Result<Header, SchemaError> {
    let h = read_header(path, schema.kind)?;
    if let Header::Sqlite {
        application_id,
        user_version,
    } = h
    {
        classify(path, schema, application_id, user_version)?;
    }
    Ok(h)
}

fn classify(
    path: &Path,
    schema: &Schema<'_>,
    application_id: i32,
    user_version: i32,
) -> Result<(), SchemaError> {
    if application_id == schema.application_id {
        if user_version > schema.version {
            return Err(SchemaError::Newer {
                path: path.display().to_string(),
                kind: schema.kind.to_owned(),
                found: user_version,
                supported: schema.version,
            });
        }
        if user_version < 0 {
            return Err(foreign(
                path,
                schema.kind,
                &format!("schema version {user_version}"),
            ));
        }
        return Ok(());
    }
    if application_id != 0 {
        return Err(foreign(
            path,
            schema.kind,
            &format!(
                "SQLite database of another application (application_id {application_id:#010x})"
            ),
        ));
    }
    if user_version != 0 {
        // Stamps set both fields in one transaction: an id of 0 with a
        // version is another program's file.
        return Err(foreign(
            path,
            schema.kind,
            &format!(
                "SQLite database without an Accord application_id, user_version {user_version}"
            ),
        ));
    }
    Ok(())
}

/// Brings an open connection to the current schema in one `BEGIN IMMEDIATE`
/// transaction (see the module documentation). Run it before any pragma
/// that writes (such as `journal_mode=WAL`), so a refused file is not
/// modified.
pub fn migrate(conn: &Connection, path: &Path, schema: &Schema<'_>) -> Result<Opened, SchemaError> {
    debug_assert!(schema.application_id != 0 && schema.version >= 1);
    let db = |e: rusqlite::Error| storage(path, schema.kind, e.to_string());
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
    let result = (|| {
        let read = |pragma: &str| conn.query_row(pragma, [], |r| r.get::<_, i32>(0));
        let app = read("PRAGMA application_id").map_err(db)?;
        let version = read("PRAGMA user_version").map_err(db)?;
        classify(path, schema, app, version)?;
        if app == schema.application_id && version == schema.version {
            return Ok(Opened::Current);
        }
        let objects: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(db)?;
        let opened = if app == 0 && objects == 0 {
            conn.execute_batch(schema.create).map_err(db)?;
            Opened::Created
        } else {
            match (schema.upgrade)(conn, if app == 0 { 0 } else { version }) {
                Ok(()) => {}
                Err(UpgradeError::NotOurs(reason)) => {
                    return Err(foreign(path, schema.kind, &reason));
                }
                Err(UpgradeError::Sqlite(e)) => {
                    return Err(storage(path, schema.kind, format!("upgrade failed: {e}")));
                }
            }
            Opened::Upgraded(version)
        };
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = {};",
            schema.application_id, schema.version
        ))
        .map_err(db)?;
        Ok(opened)
    })();
    match result {
        Ok(opened) => {
            conn.execute_batch("COMMIT").map_err(db)?;
            if opened != Opened::Current {
                // Moves page 1 (with the stamp) from the WAL into the main
                // file, where `check_header` reads it. A checkpoint blocked
                // by a reader is harmless: the next open re-reads under the
                // lock.
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            }
            Ok(opened)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Opens (creating if missing) the database at `path` under `schema`:
/// [`check_header`], then SQLite, then [`migrate`]. Returns the connection
/// and what was done; the caller sets its connection pragmas afterwards.
pub fn open(path: &Path, schema: &Schema<'_>) -> Result<(Connection, Opened), SchemaError> {
    check_header(path, schema)?;
    let conn = Connection::open(path).map_err(|e| storage(path, schema.kind, e.to_string()))?;
    let opened = migrate(&conn, path, schema)?;
    Ok((conn, opened))
}

/// Whether `table` exists with at least these columns (for recognising a
/// file from before versioning).
pub fn has_table(
    conn: &Connection,
    table: &str,
    columns: &[&str],
) -> Result<bool, rusqlite::Error> {
    let mut st = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let present: Vec<String> = st
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(!present.is_empty() && columns.iter().all(|c| present.iter().any(|p| p == c)))
}

fn foreign(path: &Path, kind: &str, reason: &str) -> SchemaError {
    SchemaError::Foreign {
        path: path.display().to_string(),
        kind: kind.to_owned(),
        reason: reason.to_owned(),
    }
}

fn storage(path: &Path, kind: &str, message: String) -> SchemaError {
    SchemaError::Storage {
        path: path.display().to_string(),
        kind: kind.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: i32 = tag(b"TEST");

    fn upgrade(conn: &Connection, from: i32) -> Result<(), UpgradeError> {
        match from {
            0 if has_table(conn, "t", &["a"])? => {
                conn.execute_batch("CREATE TABLE IF NOT EXISTS u (b INTEGER);")?;
                Ok(())
            }
            0 => Err(UpgradeError::NotOurs("no table t".into())),
            1 => Ok(conn.execute_batch("CREATE TABLE u (b INTEGER);")?),
            _ => unreachable!(),
        }
    }

    fn schema() -> Schema<'static> {
        Schema {
            kind: "test database",
            application_id: ID,
            version: 2,
            create: "CREATE TABLE t (a INTEGER); CREATE TABLE u (b INTEGER);",
            upgrade: &upgrade,
        }
    }

    fn stamp(path: &Path, sql: &str) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(sql).unwrap();
    }

    #[test]
    fn tag_is_big_endian_ascii() {
        assert_eq!(tag(b"ACCD"), 0x4143_4344);
    }

    #[test]
    fn create_then_current_then_upgrade_from_0_and_1() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let (_, o) = open(&p, &schema()).unwrap();
        assert_eq!(o, Opened::Created);
        assert_eq!(
            read_header(&p, "x").unwrap(),
            Header::Sqlite {
                application_id: ID,
                user_version: 2
            }
        );
        assert_eq!(open(&p, &schema()).unwrap().1, Opened::Current);

        let p0 = dir.path().join("legacy.db");
        stamp(&p0, "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (7);");
        assert_eq!(open(&p0, &schema()).unwrap().1, Opened::Upgraded(0));
        let (c, o) = open(&p0, &schema()).unwrap();
        assert_eq!(o, Opened::Current);
        let a: i64 = c.query_row("SELECT a FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(a, 7);

        let p1 = dir.path().join("v1.db");
        stamp(
            &p1,
            &format!(
                "CREATE TABLE t (a INTEGER); PRAGMA application_id = {ID}; PRAGMA user_version = 1;"
            ),
        );
        assert_eq!(open(&p1, &schema()).unwrap().1, Opened::Upgraded(1));
    }

    #[test]
    fn foreign_newer_and_unrecognised_files_are_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "other-app.db",
                format!(
                    "PRAGMA application_id = {}; CREATE TABLE t (a INTEGER);",
                    tag(b"ELSE")
                ),
            ),
            (
                "newer.db",
                format!(
                    "PRAGMA application_id = {ID}; PRAGMA user_version = 3; CREATE TABLE t (a);"
                ),
            ),
            (
                "unversioned-other.db",
                "CREATE TABLE notes (x TEXT);".to_owned(),
            ),
            (
                "other-version.db",
                "PRAGMA user_version = 9; CREATE TABLE t (a INTEGER);".to_owned(),
            ),
        ];
        for (name, sql) in cases {
            let p = dir.path().join(name);
            stamp(&p, &sql);
            let before = std::fs::read(&p).unwrap();
            let e = open(&p, &schema()).unwrap_err();
            match name {
                "newer.db" => assert!(
                    matches!(
                        e,
                        SchemaError::Newer {
                            found: 3,
                            supported: 2,
                            ..
                        }
                    ),
                    "{e}"
                ),
                _ => assert!(matches!(e, SchemaError::Foreign { .. }), "{name}: {e}"),
            }
            assert!(e.to_string().contains(name), "{e}");
            assert!(e.to_string().contains("left untouched"), "{e}");
            assert_eq!(std::fs::read(&p).unwrap(), before, "{name} was modified");
        }
        let p = dir.path().join("text.db");
        std::fs::write(&p, b"just some text that is long enough to be a header, or is it? no, not quite long enough yet...").unwrap();
        let before = std::fs::read(&p).unwrap();
        assert!(matches!(
            open(&p, &schema()),
            Err(SchemaError::Foreign { .. })
        ));
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[test]
    fn an_empty_file_is_a_new_database() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.db");
        std::fs::write(&p, b"").unwrap();
        assert_eq!(open(&p, &schema()).unwrap().1, Opened::Created);
    }
}
