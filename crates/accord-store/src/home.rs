//! An agent's home directory: `identity.json` (the key file, mode 0600) and
//! `events.db` (its SQLite event store).
//!
//! This is where the core's sans-I/O types meet the clock and the operating
//! system's random number generator.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::ops::ControlFlow;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use accord_core::archive;
use accord_core::export::Seal;
use accord_core::hash::Hasher;
use accord_core::keyfile::{self, KdfParams, KeyFileError, KeyFileInfo};
use accord_core::merkle::{self, Levels, MerkleError, Nodes};
use accord_core::note::{Checkpoint, Note};
use accord_core::{
    ChainVerifier, ChainWriter, Event, Failure, Hash32, Keypair, Map, Reason, SignatureMode,
    SignedEvent, Summary, Timestamp, Uuid, Value,
};
use rand_core::UnwrapErr;

use crate::env::{Env, SystemEnv};
use crate::sqlite::SqliteStore;
use crate::{EventStore, Head, SideWrite, StoreError};

/// File name of the key file inside a home.
pub const KEY_FILE: &str = "identity.json";
/// File name of the event store inside a home.
pub const STORE_FILE: &str = "events.db";
/// File name of the copy of the largest checkpoint the agent signed (a
/// signed note), kept beside the store and not in it: a store that lost
/// events it had committed (a deleted `-wal` file, a restored backup) loses
/// its record of the checkpoints too, but not this file, so verification
/// names the rollback and the agent refuses to sign those seqs again.
pub const LATEST_CHECKPOINT_FILE: &str = "checkpoint.note";

/// Home directory failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// No key file in the home.
    #[error(
        "no agent at {0} (create one with `accord init`, or point --home / ACCORD_HOME at an existing agent)"
    )]
    NoIdentity(String),
    /// `init` found an existing identity or store.
    #[error("{0} already exists; an existing identity is never overwritten (use another --home)")]
    AlreadyExists(String),
    /// The key file could not be opened.
    #[error("{path}: {source}")]
    KeyFile {
        /// The key file.
        path: String,
        /// Why.
        source: KeyFileError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request does not fit the chain (e.g. a checkpoint size beyond it).
    #[error("{0}")]
    Input(String),
    /// The chain contradicts a checkpoint this agent signed earlier.
    #[error("{0}")]
    Contradiction(String),
    /// The agent's own chain does not verify, so the agent refuses to
    /// write to it or sign over it.
    #[error(
        "refusing to sign: the chain does not verify: {0}; nothing was written (run `accord verify` for the details; restore the store from a backup or an export)"
    )]
    ChainInvalid(Failure),
    /// The operating system's RNG failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// Filesystem error.
    #[error("{0}")]
    Io(String),
    /// The RFC 3161 time-stamp for a certification could not be had.
    #[error("RFC 3161 timestamp: {0}")]
    Timestamp(String),
    /// An export stopped at an event that cannot be read (e.g. one an
    /// older version signed beyond a limit): the events before it were
    /// written and sealed, a complete, valid export of that prefix.
    #[error(
        "{failure}; exported the {exported} events before it (seq 0..={last}), sealed: that file verifies; the store still holds the unreadable event (see `accord verify`, `accord log`)",
        last = exported - 1
    )]
    ExportStopped {
        /// The unreadable event.
        failure: Failure,
        /// Events written and sealed (at least 1, the genesis).
        exported: u64,
    },
}

/// Turns a signed checkpoint note into a verified RFC 3161 token (DER)
/// over SHA-256 of its bytes, or says why it cannot.
pub type TimestampSource<'a> = dyn FnMut(&[u8]) -> Result<Vec<u8>, String> + 'a;

/// An agent's home directory.
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// A home at `dir` (which may not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Home { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the key file.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    /// Path of the event store.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join(STORE_FILE)
    }

    /// Creates a new agent: key pair, key file (encrypted under `passphrase`
    /// unless it is `None`), store, and the genesis event. Refuses to touch an
    /// existing identity or store.
    pub fn init(
        &self,
        name: Option<&str>,
        passphrase: Option<&[u8]>,
        params: KdfParams,
    ) -> Result<Agent, HomeError> {
        let key_path = self.key_path();
        let store_path = self.store_path();
        for p in [&key_path, &store_path] {
            if p.exists() {
                return Err(HomeError::AlreadyExists(p.display().to_string()));
            }
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| HomeError::Io(format!("cannot create {}: {e}", self.dir.display())))?;
        let key = Keypair::generate(&mut UnwrapErr(getrandom::SysRng));
        let now = now()?;
        let file = keyfile::seal(&key, name, &now, passphrase, params, random()?, random()?)
            .map_err(|source| HomeError::KeyFile {
                path: key_path.display().to_string(),
                source,
            })?;
        write_new_file(&key_path, &file)?;
        let agent = (|| {
            let mut store = SqliteStore::create(&store_path)?;
            let mut payload = Map::new();
            if let Some(n) = name {
                payload.insert("name".into(), Value::String(n.to_owned()));
            }
            let genesis = Event::genesis(key.public(), now, nonce()?, payload)
                .sign(&key)
                .map_err(StoreError::from)?;
            store.append(&[genesis])?;
            Ok::<_, HomeError>(store)
        })();
        match agent {
            Ok(store) => Ok(Agent {
                key,
                store,
                dir: Some(self.dir.clone()),
                env: Arc::new(SystemEnv),
                verified: None,
            }),
            Err(e) => {
                // Undo only what this call created, so `init` can be retried;
                // a crash before this point leaves files `init` then refuses
                // to touch (docs/SECURITY.md, crash safety).
                for p in [
                    store_path.clone(),
                    store_path.with_extension("db-wal"),
                    store_path.with_extension("db-shm"),
                    key_path.clone(),
                ] {
                    let _ = fs::remove_file(p);
                }
                Err(e)
            }
        }
    }

    /// Reads the public part of the key file (no passphrase needed).
    pub fn info(&self) -> Result<KeyFileInfo, HomeError> {
        let bytes = self.read_key_file()?;
        keyfile::inspect(&bytes).map_err(|source| self.key_err(source))
    }

    /// Opens the agent, decrypting its key with `passphrase`.
    pub fn open(&self, passphrase: Option<&[u8]>) -> Result<Agent, HomeError> {
        let bytes = self.read_key_file()?;
        let key = keyfile::open(&bytes, passphrase).map_err(|source| self.key_err(source))?;
        let store = self.open_store()?;
        Ok(Agent {
            key,
            store,
            dir: Some(self.dir.clone()),
            env: Arc::new(SystemEnv),
            verified: None,
        })
    }

    /// The largest checkpoint the agent at this home signed, from
    /// [`LATEST_CHECKPOINT_FILE`], checked against its key; `None` when it
    /// never signed one.
    pub fn latest_checkpoint(
        &self,
        key: &accord_core::PublicKey,
    ) -> Result<Option<Checkpoint>, HomeError> {
        latest_checkpoint(&self.dir, key)
    }

    /// Opens the store alone (reading does not need the key).
    pub fn open_store(&self) -> Result<SqliteStore, HomeError> {
        if !self.key_path().exists() && !self.store_path().exists() {
            return Err(HomeError::NoIdentity(self.dir.display().to_string()));
        }
        Ok(SqliteStore::open(&self.store_path())?)
    }

    fn read_key_file(&self) -> Result<Vec<u8>, HomeError> {
        let path = self.key_path();
        match fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HomeError::NoIdentity(self.dir.display().to_string()));
            }
            Err(e) => {
                return Err(HomeError::Io(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
            Ok(m) if m.len() > keyfile::MAX_KEY_FILE_BYTES as u64 => {
                return Err(self.key_err(KeyFileError::Corrupt("larger than 64 KiB".into())));
            }
            Ok(_) => {}
        }
        fs::read(&path).map_err(|e| HomeError::Io(format!("cannot read {}: {e}", path.display())))
    }

    fn key_err(&self, source: KeyFileError) -> HomeError {
        HomeError::KeyFile {
            path: self.key_path().display().to_string(),
            source,
        }
    }
}

/// Builds the events (type, payload) of one [`Agent::stamp_with_state`] and
/// its state writes, from the agent's key, the seq the first event will
/// get, and the state values asked for.
pub type StampFn<'a> = dyn FnMut(
        &Keypair,
        u64,
        &[Option<Vec<u8>>],
    ) -> Result<(Vec<(String, Map<String, Value>)>, Vec<SideWrite>), StoreError>
    + 'a;

/// An opened agent: its key, its store, and where its time and randomness
/// come from.
pub struct Agent<S: EventStore = SqliteStore> {
    key: Keypair,
    store: S,
    /// The home, where the copy of the latest checkpoint is kept; `None`
    /// for an agent whose store is its only state (e.g. in memory).
    dir: Option<PathBuf>,
    env: Arc<dyn Env>,
    verified: Option<Verified>,
}

/// What this process has verified of its agent's chain: every event up to
/// `head` (structure and signatures), and the RFC 9162 tree recomputed from
/// their bytes. Appends made here extend it without re-verifying, since
/// the agent just signed them.
#[derive(Debug, Clone)]
struct Verified {
    head: Head,
    tree: merkle::Tree,
}

impl<S: EventStore> Agent<S> {
    /// An agent over a store that already holds its chain (genesis
    /// included), outside any home directory: no `checkpoint.note` is kept.
    pub fn with_store(key: Keypair, store: S, env: Arc<dyn Env>) -> Self {
        Agent {
            key,
            store,
            dir: None,
            env,
            verified: None,
        }
    }

    /// Starts the chain of `key` in `store` (its genesis event, with
    /// `name`) and returns the agent over it, outside any home directory.
    pub fn create_in(
        key: Keypair,
        mut store: S,
        name: Option<&str>,
        env: Arc<dyn Env>,
    ) -> Result<Self, HomeError> {
        let mut payload = Map::new();
        if let Some(n) = name {
            payload.insert("name".into(), Value::String(n.to_owned()));
        }
        let genesis = Event::genesis(key.public(), env.now()?, env.nonce()?, payload)
            .sign(&key)
            .map_err(StoreError::from)?;
        store.append(&[genesis])?;
        Ok(Agent::with_store(key, store, env))
    }

    /// Replaces where the agent's time and randomness come from.
    pub fn set_env(&mut self, env: Arc<dyn Env>) {
        self.env = env;
    }

    /// The current time, from the agent's environment.
    pub fn now(&self) -> Result<Timestamp, HomeError> {
        self.env.now()
    }

    /// A fresh nonce, from the agent's environment.
    pub fn nonce(&self) -> Result<Uuid, HomeError> {
        self.env.nonce()
    }

    /// The key pair.
    pub fn key(&self) -> &Keypair {
        &self.key
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, to write state that is not derived from the chain.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Appends one event and returns it.
    pub fn stamp(
        &mut self,
        event_type: &str,
        payload: Map<String, Value>,
    ) -> Result<SignedEvent, HomeError> {
        let mut events = self.stamp_batch(vec![(event_type.to_owned(), payload)])?;
        events
            .pop()
            .ok_or_else(|| HomeError::Io("empty batch".into()))
    }

    /// Appends many events in one transaction (one fsync) and returns them.
    /// Events are built under the store's write lock, so another process
    /// appending to the same chain cannot make them conflict.
    pub fn stamp_batch(
        &mut self,
        items: Vec<(String, Map<String, Value>)>,
    ) -> Result<Vec<SignedEvent>, HomeError> {
        let mut items = Some(items);
        self.stamp_with_state(&[], &mut |_, _, _| {
            let items = items
                .take()
                .ok_or_else(|| StoreError::Invalid("batch built twice".into()))?;
            Ok((items, Vec::new()))
        })
    }

    /// Appends the events `build` returns together with the state writes it
    /// returns, in one transaction. `build` runs under the store's write
    /// lock and sees the agent's key and the current values of the state
    /// `keys`, so a decision
    /// it takes from them (a sequence number, a replay check) cannot race
    /// another process.
    pub fn stamp_with_state(
        &mut self,
        keys: &[&str],
        build: &mut StampFn<'_>,
    ) -> Result<Vec<SignedEvent>, HomeError> {
        // Another process may append between verifying and writing: the
        // events are built only on the head this process verified, and on
        // a moved head the new events are verified before trying again.
        // The first write of the process verifies the whole chain; after
        // that the head is compared inside the write transaction, and only
        // a moved head (another process appended) is verified again.
        if self.verified.is_none() {
            self.verify_own(&mut |_| {})?;
        }
        for _ in 0..8 {
            let verified = self.verified.as_ref().map(|v| v.head.clone());
            let agent = self.key.agent_id().clone();
            let key = &self.key;
            let env = &self.env;
            // The leaf hashes of the events built here, computed once: they
            // extend the verified tree (recomputed from these very bytes)
            // and the store indexes the tree from them.
            let mut built_leaves = Vec::new();
            let result =
                self.store.append_with_leaves(
                    &agent,
                    keys,
                    &mut |head: Option<&Head>, state: &[Option<Vec<u8>>]| {
                        let Some(head) = head else {
                            return Err(StoreError::Invalid(
                                "the chain has no genesis event".into(),
                            ));
                        };
                        if Some(head) != verified.as_ref() {
                            return Err(StoreError::Conflict {
                                expected: verified.as_ref().map_or(0, |h| h.seq + 1),
                                found: head.seq + 1,
                            });
                        }
                        let (items, writes) = build(key, head.seq + 1, state)?;
                        let now = env.now().map_err(|e| StoreError::Io(e.to_string()))?;
                        let mut writer = ChainWriter::new(key, head.clone(), now);
                        let mut out = Vec::with_capacity(items.len());
                        for (event_type, payload) in items {
                            let nonce = env.nonce().map_err(|e| StoreError::Io(e.to_string()))?;
                            out.push(writer.append(nonce, event_type, payload)?);
                        }
                        built_leaves = out
                            .iter()
                            .map(|ev| merkle::leaf_hash(ev.canonical()))
                            .collect();
                        Ok((out, writes, built_leaves.clone()))
                    },
                );
            match result {
                Ok(written) => {
                    if let (Some(v), Some(last)) = (self.verified.as_mut(), written.last()) {
                        for leaf in built_leaves {
                            v.tree.push(leaf);
                        }
                        v.head = Head::of(last);
                    }
                    return Ok(written);
                }
                Err(StoreError::Conflict { .. }) => self.verify_own(&mut |_| {})?,
                Err(e) => return Err(e.into()),
            }
        }
        Err(HomeError::Store(StoreError::Invalid(
            "other writers kept moving the chain head; try again".into(),
        )))
    }

    /// Verifies the agent's own chain, as an agent must before it writes
    /// to it or signs over it: every event (structure and signatures), the
    /// checkpoints it signed before (none larger than the chain, each root
    /// recomputed from the events), the store's tree index against the
    /// recomputed tree, and SQLite's page-level consistency. The first call
    /// in a process reads the whole chain; later calls verify only what
    /// other processes appended since. `progress` receives the number of
    /// events read.
    pub fn verify_own(&mut self, progress: &mut dyn FnMut(u64)) -> Result<(), HomeError> {
        let agent = self.key.agent_id().clone();
        let head = self
            .store
            .head(&agent)?
            .ok_or_else(|| StoreError::Corrupt("the chain has no genesis event".into()))?;
        let Some(v) = &self.verified else {
            self.verified = Some(self.verify_all(progress)?);
            return Ok(());
        };
        if v.head == head {
            return Ok(());
        }
        if head.seq <= v.head.seq {
            return Err(HomeError::Contradiction(format!(
                "the chain held {} events when this process verified it and holds {} now: events were removed or replaced behind its back",
                v.head.seq + 1,
                head.seq + 1
            )));
        }
        let mut verifier = ChainVerifier::resume(SignatureMode::Batch, *self.key.public(), &v.head);
        let mut tree = v.tree.clone();
        let mut failure = None;
        self.store
            .scan(&agent, v.head.seq + 1, Some(head.seq), &mut |_, body| {
                if let Err(f) = verifier.push_bytes(body) {
                    failure = Some(f);
                    return Ok(ControlFlow::Break(()));
                }
                tree.push(merkle::leaf_hash(body));
                Ok(ControlFlow::Continue(()))
            })?;
        if let Some(f) = failure {
            return Err(HomeError::ChainInvalid(f));
        }
        let summary = verifier.finish().map_err(HomeError::ChainInvalid)?;
        if summary.head_hash != head.hash || tree.size() != head.seq + 1 {
            return Err(HomeError::Store(StoreError::Corrupt(
                "events read back do not match the chain head".into(),
            )));
        }
        self.check_stored_tree(&tree)?;
        self.verified = Some(Verified { head, tree });
        Ok(())
    }

    fn verify_all(&self, progress: &mut dyn FnMut(u64)) -> Result<Verified, HomeError> {
        self.store.integrity_check()?;
        let report = check_chain(
            &self.store,
            self.key.public(),
            self.dir.as_deref(),
            SignatureMode::Batch,
            progress,
        )?
        .map_err(HomeError::ChainInvalid)?;
        self.check_stored_tree(&report.tree)?;
        let summary = report.summary;
        Ok(Verified {
            head: Head {
                seq: summary.events - 1,
                hash: summary.head_hash,
                timestamp: summary.last_timestamp,
            },
            tree: report.tree,
        })
    }

    /// The store's tree index serves roots and proofs; it must agree with
    /// the tree recomputed from the verified events.
    fn check_stored_tree(&self, tree: &merkle::Tree) -> Result<(), HomeError> {
        let stored = stored_tree(&self.store, self.key.agent_id())?;
        // Other processes may have appended since: compare at the verified size.
        if stored.size() < tree.size() || stored.root(tree.size()).ok() != Some(tree.root()) {
            return Err(HomeError::Store(StoreError::Corrupt(format!(
                "the store's tree index disagrees with its {} verified events (the merkle table is damaged); the events themselves verify: export them with `accord export`",
                tree.size()
            ))));
        }
        Ok(())
    }

    /// The RFC 9162 tree over every event of the chain (leaf = the event's
    /// canonical bytes, in seq order), as the store keeps it: nothing is
    /// rebuilt, each root or proof reads O(log² n) nodes.
    pub fn tree(&self) -> Result<StoredTree<'_>, HomeError> {
        stored_tree(&self.store, self.key.agent_id())
    }

    /// Signs the checkpoint of the first `size` events of the chain,
    /// records it in the store and returns it. The chain is verified first
    /// ([`Agent::verify_own`]), and the root signed is the one recomputed
    /// from the verified events (for the whole chain) or one the store's
    /// tree index proves consistent with it (for a prefix): a writer of the
    /// store who lacks the key cannot make the agent sign a root that no
    /// history of its events has.
    pub fn sign_checkpoint(&mut self, size: u64) -> Result<(Checkpoint, Note), HomeError> {
        self.verify_own(&mut |_| {})?;
        let tree = &self
            .verified
            .as_ref()
            .ok_or_else(|| StoreError::Corrupt("the chain was not verified".into()))?
            .tree;
        let n = tree.size();
        if size == 0 || size > n {
            return Err(HomeError::Input(format!(
                "the chain has {n} events; a checkpoint covers 1 to {n} of them, not {size}"
            )));
        }
        let verified_root = tree.root();
        let root = if size == n {
            verified_root
        } else {
            let stored = stored_tree(&self.store, self.key.agent_id())?;
            let damaged = |e: MerkleError| {
                HomeError::Store(StoreError::Corrupt(format!(
                    "the store's tree index cannot prove the root of {size} events against the verified root of {n} ({e}); the merkle table is damaged"
                )))
            };
            let root = stored.root(size).map_err(damaged)?;
            let proof = stored.consistency_proof(size, n).map_err(damaged)?;
            merkle::verify_consistency(size, n, &root, &verified_root, &proof).map_err(damaged)?;
            root
        };
        let cp = Checkpoint {
            origin: Checkpoint::origin_of(self.key.agent_id()),
            size,
            root,
        };
        self.sign_and_record(cp)
    }

    fn sign_and_record(&mut self, cp: Checkpoint) -> Result<(Checkpoint, Note), HomeError> {
        let note = cp
            .sign(&self.key)
            .map_err(|e| HomeError::Io(e.to_string()))?;
        let agent = self.key.agent_id().clone();
        self.store
            .record_checkpoint(&agent, cp.size, &note.to_bytes())?;
        if let Some(dir) = &self.dir {
            let kept = latest_checkpoint(dir, self.key.public())?;
            if kept.is_none_or(|k| k.size < cp.size) {
                replace_file(&dir.join(LATEST_CHECKPOINT_FILE), &note.to_bytes())?;
            }
        }
        Ok((cp, note))
    }

    /// Signs and records a checkpoint of the whole chain.
    pub fn checkpoint(&mut self) -> Result<(Checkpoint, Note), HomeError> {
        self.verify_own(&mut |_| {})?;
        let size = self.verified.as_ref().map_or(0, |v| v.tree.size());
        self.sign_checkpoint(size)
    }

    /// Writes a certified archive (`accord-archive/1`): header, events, seal,
    /// and a certification over all of it with a fresh checkpoint (which is
    /// also recorded). Returns the number of events and the checkpoint.
    pub fn certify(
        &mut self,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(u64, Checkpoint), HomeError> {
        self.certify_with(out, progress, None)
    }

    /// [`Agent::certify`], with an RFC 3161 time-stamp when `timestamp` is
    /// given: it receives the signed checkpoint note's exact bytes (what the
    /// certification line carries) after the checkpoint is signed and
    /// recorded, and returns a DER token over SHA-256 of them, already
    /// verified by the caller (the network stays out of this crate). Its
    /// error is reported as [`HomeError::Timestamp`] and nothing more is
    /// written.
    pub fn certify_with(
        &mut self,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
        timestamp: Option<&mut TimestampSource<'_>>,
    ) -> Result<(u64, Checkpoint), HomeError> {
        let agent = self.key.agent_id().clone();
        self.verify_own(&mut |_| {})?;
        let (head, verified_root) = self
            .verified
            .as_ref()
            .map(|v| (v.head.clone(), v.tree.root()))
            .ok_or_else(|| StoreError::Corrupt("the chain was not verified".into()))?;
        let mut name = None;
        self.store.scan(&agent, 0, Some(0), &mut |_, body| {
            let genesis = SignedEvent::from_canonical(body)?;
            name = genesis
                .event()
                .payload
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Ok(ControlFlow::Break(()))
        })?;
        let mut digest = Hasher::new();
        let mut emit = |line: &[u8], digest: &mut Hasher| -> Result<(), StoreError> {
            digest.update(line);
            digest.update(b"\n");
            out.write_all(line)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|e| StoreError::Io(e.to_string()))
        };
        emit(
            &archive::header_line(self.key.public(), name.as_deref()),
            &mut digest,
        )?;
        // Only the root of the events read back is needed (to compare with
        // the verified one): the incremental tree computes it with the
        // same node hashes as a full `Levels`, without holding every leaf
        // and level in memory.
        let mut tree = merkle::Tree::new();
        let mut last = None;
        self.store
            .scan(&agent, 0, Some(head.seq), &mut |seq, body| {
                emit(body, &mut digest)?;
                tree.push(merkle::leaf_hash(body));
                if seq == head.seq {
                    last = Some(SignedEvent::from_canonical(body)?.hash());
                }
                if tree.size().is_multiple_of(4096) {
                    progress(tree.size());
                }
                Ok(ControlFlow::Continue(()))
            })?;
        if last != Some(head.hash) || tree.size() != head.seq + 1 {
            return Err(HomeError::Store(StoreError::Corrupt(
                "events read back do not match the chain head".into(),
            )));
        }
        let seal = Seal {
            agent_id: agent.clone(),
            count: tree.size(),
            head_hash: head.hash,
            exported_at: self.env.now()?,
        };
        emit(&seal.sign(&self.key), &mut digest)?;
        // The archive is signed over the bytes read here; they must be the
        // events just verified.
        if tree.root() != verified_root {
            return Err(HomeError::Store(StoreError::Corrupt(
                "the events changed while the archive was written; nothing was certified".into(),
            )));
        }
        let (cp, note) = self.sign_and_record(Checkpoint {
            origin: Checkpoint::origin_of(&agent),
            size: tree.size(),
            root: verified_root,
        })?;
        let token = match timestamp {
            Some(ask) => Some(ask(&note.to_bytes()).map_err(HomeError::Timestamp)?),
            None => None,
        };
        let cert = archive::certification_line_with_timestamp(
            &self.key,
            &digest.finish(),
            &note,
            &self.env.now()?,
            token.as_deref(),
        );
        out.write_all(&cert)
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush())
            .map_err(|e| HomeError::Io(e.to_string()))?;
        progress(tree.size());
        Ok((tree.size(), cp))
    }

    /// Writes the chain as JSON lines followed by a signed seal line;
    /// returns the number of events.
    pub fn export(
        &self,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, HomeError> {
        let agent = self.key.agent_id().clone();
        let mut count = 0u64;
        let mut last: Option<SignedEvent> = None;
        // A head that does not parse (an over-deep event an older version
        // signed) must not make the events before it unexportable.
        let head = match self.store.head(&agent) {
            Ok(Some(head)) => Some(head),
            Ok(None) => {
                return Err(HomeError::Store(StoreError::Invalid(
                    "the chain is empty".into(),
                )));
            }
            Err(StoreError::Corrupt(_)) => None,
            Err(e) => return Err(e.into()),
        };
        // An export is signed (its seal), so it is verified as it is read:
        // an agent never vouches for a chain that does not verify.
        self.store.integrity_check()?;
        // ... and against the checkpoints it signed before, as verify does.
        let mut checkpoints =
            SignedCheckpoints::load(&self.store, self.key.public(), self.dir.as_deref())?;
        let mut tree = merkle::Tree::new();
        let mut verifier = ChainVerifier::new(SignatureMode::Batch).expect_agent(agent.clone());
        let mut failure = None;
        // Export exactly up to the head read above, even if appends continue.
        self.store
            .scan(&agent, 0, head.as_ref().map(|h| h.seq), &mut |_, body| {
                if let Err(f) = verifier.push_bytes(body) {
                    failure = Some(f);
                    return Ok(ControlFlow::Break(()));
                }
                tree.push(merkle::leaf_hash(body));
                checkpoints.observe(&tree);
                out.write_all(body)
                    .and_then(|_| out.write_all(b"\n"))
                    .map_err(|e| StoreError::Io(e.to_string()))?;
                count += 1;
                if head.as_ref().is_none_or(|h| count == h.seq + 1) {
                    last = Some(SignedEvent::from_canonical(body)?);
                }
                if count.is_multiple_of(4096) {
                    progress(count);
                }
                Ok(ControlFlow::Continue(()))
            })?;
        // An event that does not read as one (not a bad signature, link or
        // order, which say the history was changed): the verified events
        // before it are a valid export of their own; seal those.
        let stopped = match failure {
            Some(f) if matches!(f.reason, Reason::Event(_)) && f.index == count && count > 0 => {
                Some(f)
            }
            Some(f) => return Err(HomeError::ChainInvalid(f)),
            None => None,
        };
        let verified_head = verifier.head_hash();
        if stopped.is_none() {
            verifier.finish().map_err(HomeError::ChainInvalid)?;
        }
        let head_hash = match (&stopped, last) {
            // The verifier checked every event up to the one that stopped it.
            (Some(_), _) => verified_head,
            (None, Some(last)) => last.hash(),
            (None, None) => {
                return Err(StoreError::Corrupt("the head event is missing".into()).into());
            }
        };
        // A history that contradicts a signed checkpoint is not sealed; an
        // export stopped early is shorter than the chain by design.
        checkpoints.check_rewritten()?;
        if stopped.is_none() {
            checkpoints.check_not_shorter(count)?;
        }
        let expected = head.as_ref().map(|h| (h.hash, h.seq + 1));
        if stopped.is_none() && expected.is_some_and(|e| e != (head_hash, count)) {
            return Err(HomeError::Store(StoreError::Corrupt(
                "events read back do not match the chain head".into(),
            )));
        }
        let seal = Seal {
            agent_id: agent,
            count,
            head_hash,
            exported_at: self.env.now()?,
        };
        out.write_all(&seal.sign(&self.key))
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush())
            .map_err(|e| HomeError::Io(e.to_string()))?;
        progress(count);
        match stopped {
            Some(failure) => Err(HomeError::ExportStopped {
                failure,
                exported: count,
            }),
            None => Ok(count),
        }
    }
}

/// Verifies `agent`'s chain in `store`. The outer error is a storage
/// failure; the inner one names the first bad event.
pub fn verify_store(
    store: &dyn EventStore,
    agent: &accord_core::AgentId,
    mode: SignatureMode,
    progress: &mut dyn FnMut(u64),
) -> Result<Result<Summary, Failure>, StoreError> {
    let mut verifier = ChainVerifier::new(mode).expect_agent(agent.clone());
    let mut failure = None;
    let mut n = 0u64;
    store.scan(agent, 0, None, &mut |_, body| {
        if let Err(f) = verifier.push_bytes(body) {
            failure = Some(f);
            return Ok(ControlFlow::Break(()));
        }
        n += 1;
        if n.is_multiple_of(4096) {
            progress(n);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if let Some(f) = failure {
        return Ok(Err(f));
    }
    progress(n);
    Ok(verifier.finish())
}

/// The RFC 9162 tree over every event of `agent`'s chain in `store`.
pub fn tree_of(store: &dyn EventStore, agent: &accord_core::AgentId) -> Result<Levels, HomeError> {
    let head = store
        .head(agent)?
        .ok_or_else(|| StoreError::Invalid("the chain is empty".into()))?;
    let mut leaves = Vec::with_capacity(head.seq as usize + 1);
    store.scan(agent, 0, Some(head.seq), &mut |seq, body| {
        if seq != leaves.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "event seq {} is missing",
                leaves.len()
            )));
        }
        leaves.push(merkle::leaf_hash(body));
        Ok(ControlFlow::Continue(()))
    })?;
    if leaves.len() as u64 != head.seq + 1 {
        return Err(HomeError::Store(StoreError::Corrupt(format!(
            "expected {} events, read {}",
            head.seq + 1,
            leaves.len()
        ))));
    }
    Ok(Levels::new(leaves))
}

/// A chain's tree as the store keeps it (see [`EventStore::tree_node`]),
/// fixed at the size the chain had when it was opened.
pub struct StoredTree<'a> {
    store: &'a dyn EventStore,
    agent: accord_core::AgentId,
    size: u64,
}

/// The tree of `agent`'s chain in `store`, at its current size.
pub fn stored_tree<'a>(
    store: &'a dyn EventStore,
    agent: &accord_core::AgentId,
) -> Result<StoredTree<'a>, HomeError> {
    let head = store
        .head(agent)?
        .ok_or_else(|| StoreError::Invalid("the chain is empty".into()))?;
    Ok(StoredTree {
        store,
        agent: agent.clone(),
        size: head.seq + 1,
    })
}

impl Nodes for StoredTree<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn node(&self, level: u32, index: u64) -> Result<Hash32, MerkleError> {
        self.store
            .tree_node(&self.agent, level, index)
            .map_err(|e| MerkleError::Storage(e.to_string()))?
            .ok_or_else(|| {
                MerkleError::Storage(format!(
                    "the store lacks tree node ({level}, {index}); it is damaged (verify it with `accord verify`)"
                ))
            })
    }
}

/// The checkpoints an agent signed earlier — those recorded in its store
/// and the copy of the largest kept in its home ([`LATEST_CHECKPOINT_FILE`])
/// — compared with its chain as the chain is read. Verify, export and the
/// agent's own check before it signs all compare through this one type: an
/// agent never vouches for a second history.
#[derive(Debug)]
pub struct SignedCheckpoints {
    /// Sorted by size; the path is set for the copy kept in the home.
    list: Vec<(Checkpoint, Option<PathBuf>)>,
    next: usize,
    rewritten: Option<usize>,
    recorded: usize,
    latest: Option<Checkpoint>,
}

impl SignedCheckpoints {
    /// Reads and checks (signature by `key`, recorded size) the checkpoints
    /// recorded in `store` and, when `dir` is a home, the one it keeps.
    pub fn load(
        store: &dyn EventStore,
        key: &accord_core::PublicKey,
        dir: Option<&Path>,
    ) -> Result<Self, HomeError> {
        let mut list = Vec::new();
        for (size, note) in store.checkpoints(&key.agent_id())? {
            let (cp, _) = Checkpoint::open(&note, key).map_err(|e| {
                StoreError::Corrupt(format!("recorded checkpoint of size {size}: {e}"))
            })?;
            if cp.size != size {
                return Err(HomeError::Store(StoreError::Corrupt(format!(
                    "the checkpoint recorded as size {size} is of size {}",
                    cp.size
                ))));
            }
            list.push((cp, None));
        }
        let recorded = list.len();
        let latest = match dir {
            Some(d) => latest_checkpoint(d, key)?,
            None => None,
        };
        if let (Some(cp), Some(d)) = (&latest, dir) {
            list.push((cp.clone(), Some(d.join(LATEST_CHECKPOINT_FILE))));
        }
        list.sort_by_key(|(cp, _)| cp.size);
        Ok(SignedCheckpoints {
            list,
            next: 0,
            rewritten: None,
            recorded,
            latest,
        })
    }

    /// How many checkpoints the store records.
    pub fn recorded(&self) -> usize {
        self.recorded
    }

    /// The copy of the largest checkpoint kept in the home, if any.
    pub fn latest(&self) -> Option<&Checkpoint> {
        self.latest.as_ref()
    }

    /// Called after each leaf pushed to `tree` (the chain read so far, in
    /// order): compares the checkpoints of that size.
    pub fn observe(&mut self, tree: &merkle::Tree) {
        while let Some((cp, _)) = self.list.get(self.next) {
            if cp.size > tree.size() {
                break;
            }
            if cp.size == tree.size() && cp.root != tree.root() && self.rewritten.is_none() {
                self.rewritten = Some(self.next);
            }
            self.next += 1;
        }
    }

    /// Fails when the events read differ from a checkpoint of their size.
    pub fn check_rewritten(&self) -> Result<(), HomeError> {
        match self.rewritten.and_then(|i| self.list.get(i)) {
            Some((cp, origin)) => Err(HomeError::Contradiction(format!(
                "the first {} events differ from the checkpoint of that size signed earlier{}: the store was rewritten",
                cp.size,
                kept_in(origin)
            ))),
            None => Ok(()),
        }
    }

    /// Fails when a checkpoint is larger than the `size` events read.
    pub fn check_not_shorter(&self, size: u64) -> Result<(), HomeError> {
        match self.list.last().filter(|(cp, _)| cp.size > size) {
            Some((cp, origin)) => Err(HomeError::Contradiction(format!(
                "{}{}",
                rolled_back(size, cp.size),
                kept_in(origin)
            ))),
            None => Ok(()),
        }
    }

    /// After the whole chain of `size` events: both checks.
    pub fn finish(&self, size: u64) -> Result<(), HomeError> {
        self.check_rewritten()?;
        self.check_not_shorter(size)
    }
}

fn kept_in(origin: &Option<PathBuf>) -> String {
    origin
        .as_ref()
        .map(|p| format!(" (kept in {})", p.display()))
        .unwrap_or_default()
}

/// What [`check_chain`] found.
#[derive(Debug)]
pub struct ChainReport {
    /// The chain's summary.
    pub summary: Summary,
    /// The RFC 9162 tree recomputed from its events.
    pub tree: merkle::Tree,
    /// The checkpoints it was compared with.
    pub checkpoints: SignedCheckpoints,
}

/// Verifies the chain of the agent whose key is `key` in `store` in one
/// pass: every event (in `mode`), the tree recomputed from them, and every
/// checkpoint the agent signed earlier ([`SignedCheckpoints`], with the
/// home's copy when `dir` is given). A bad event is the inner error; a
/// contradiction with a checkpoint is [`HomeError::Contradiction`].
pub fn check_chain(
    store: &dyn EventStore,
    key: &accord_core::PublicKey,
    dir: Option<&Path>,
    mode: SignatureMode,
    progress: &mut dyn FnMut(u64),
) -> Result<Result<ChainReport, Failure>, HomeError> {
    let agent = key.agent_id();
    let mut checkpoints = SignedCheckpoints::load(store, key, dir)?;
    let mut verifier = ChainVerifier::new(mode).expect_agent(agent.clone());
    let mut tree = merkle::Tree::new();
    let mut failure = None;
    store.scan(&agent, 0, None, &mut |_, body| {
        if let Err(f) = verifier.push_bytes(body) {
            failure = Some(f);
            return Ok(ControlFlow::Break(()));
        }
        tree.push(merkle::leaf_hash(body));
        checkpoints.observe(&tree);
        if tree.size().is_multiple_of(4096) {
            progress(tree.size());
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if let Some(f) = failure {
        return Ok(Err(f));
    }
    let summary = match verifier.finish() {
        Ok(s) => s,
        Err(f) => return Ok(Err(f)),
    };
    progress(tree.size());
    checkpoints.finish(tree.size())?;
    Ok(Ok(ChainReport {
        summary,
        tree,
        checkpoints,
    }))
}

/// What to say when a chain is shorter than a checkpoint its agent signed.
fn rolled_back(events: u64, signed: u64) -> String {
    format!(
        "the chain has {events} events but this agent signed a checkpoint of {signed} events earlier: events were lost or removed (a deleted events.db-wal after a crash, an older backup restored, or rows deleted); restore the store from a backup or an export that has them"
    )
}

/// The checkpoint kept in `dir`'s [`LATEST_CHECKPOINT_FILE`], if any.
pub fn latest_checkpoint(
    dir: &Path,
    key: &accord_core::PublicKey,
) -> Result<Option<Checkpoint>, HomeError> {
    let path = dir.join(LATEST_CHECKPOINT_FILE);
    let bytes = match fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(HomeError::Io(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
        Ok(m) if m.len() > accord_core::note::MAX_NOTE_BYTES as u64 => {
            return Err(HomeError::Store(StoreError::Corrupt(format!(
                "{} is larger than a signed note may be",
                path.display()
            ))));
        }
        Ok(_) => fs::read(&path)
            .map_err(|e| HomeError::Io(format!("cannot read {}: {e}", path.display())))?,
    };
    let (cp, _) = Checkpoint::open(&bytes, key).map_err(|e| {
        HomeError::Store(StoreError::Corrupt(format!(
            "{} is not a checkpoint signed by this agent ({e})",
            path.display()
        )))
    })?;
    Ok(Some(cp))
}

/// Replaces `path` with `bytes` atomically and durably: written to a
/// temporary name, synced, renamed over it, and the directory synced.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    let io = |e: std::io::Error| HomeError::Io(format!("cannot write {}: {e}", path.display()));
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Now, from the system clock.
pub fn now() -> Result<Timestamp, HomeError> {
    SystemEnv.now()
}

/// A fresh UUIDv4 from the operating system's RNG.
pub fn nonce() -> Result<Uuid, HomeError> {
    SystemEnv.nonce()
}

fn random<const N: usize>() -> Result<[u8; N], HomeError> {
    let mut b = [0u8; N];
    SystemEnv.fill_random(&mut b)?;
    Ok(b)
}

/// Writes a file that must not exist yet, mode 0600, fully and durably
/// before it appears under its name (written to a temporary name, synced,
/// then hard-linked, which fails rather than replace an existing file).
fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    let io = |e: std::io::Error| HomeError::Io(format!("cannot write {}: {e}", path.display()));
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    let result = (|| {
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    match result {
        Ok(()) => {
            if let Some(dir) = path.parent()
                && let Ok(d) = fs::File::open(dir)
            {
                let _ = d.sync_all();
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(HomeError::AlreadyExists(path.display().to_string()))
        }
        Err(e) => Err(io(e)),
    }
}
