//! A deterministic simulation harness (after quinn-proto's `tests/util.rs`
//! `Pair`): agents and the in-process hub in memory, all on one
//! [`ManualEnv`] (which also stamps the agents' chains), driven by a paused tokio runtime. Time-dependent
//! protocol behaviour is exercised by setting the clock, never by
//! sleeping; waits for in-memory I/O are awaited events bounded by a
//! (virtual) timeout, so a lost message fails fast instead of hanging.
//!
//! Tests using it run with `#[tokio::test(start_paused = true)]` (a
//! current-thread runtime) and agents that do not record to their chain:
//! the recorder is a real thread, and waiting on it would let tokio's
//! paused clock jump ahead while the runtime looks idle.

#![allow(dead_code)] // each test binary uses part of it

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use accord_core::channel::SignedMessage;
use accord_net::{Agent, AgentOptions, HubCore, Limits, LocalHub, ManualEnv, NetError, clock};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// 2100-01-01T00:00:00Z. Far from the real clock: a decision that read the
/// system clock instead of the injected one would find every bundle made
/// in the simulation not yet valid, and fail.
pub const START: u64 = 4_102_444_800_000;

/// Bound on every awaited event (virtual time under a paused runtime).
pub const T: Duration = Duration::from_secs(20);

pub const MINUTE: u64 = 60 * 1000;
pub const HOUR: u64 = 60 * MINUTE;
pub const DAY: u64 = 24 * HOUR;

/// Agents and a hub on one manual clock, in a temporary directory.
pub struct Sim {
    pub clock: ManualEnv,
    pub hub: LocalHub,
    dir: tempfile::TempDir,
}

impl Sim {
    /// A simulation at [`START`] with an in-memory hub.
    pub fn new() -> Sim {
        let clock = ManualEnv::from_unix_ms(START, 1);
        let hub = LocalHub::with_clock(clock::manual(&clock)).unwrap();
        Sim {
            clock,
            hub,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A simulation whose hub keeps `hub.db` in [`Sim::hub_dir`].
    pub fn with_hub_file() -> Sim {
        let clock = ManualEnv::from_unix_ms(START, 1);
        let dir = tempfile::tempdir().unwrap();
        let core = HubCore::open_with_clock(
            Some(&dir.path().join("hub")),
            Limits::default(),
            clock::manual(&clock),
        )
        .unwrap();
        Sim {
            hub: LocalHub::from_core(Arc::new(core)),
            clock,
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn hub_dir(&self) -> PathBuf {
        self.dir.path().join("hub")
    }

    /// A new agent on the simulation's clock (not recording to its chain).
    pub fn agent(&self, name: &str) -> Agent {
        Agent::init_with_clock(
            &self.dir.path().join(name),
            Some(name),
            None,
            AgentOptions { record: false },
            clock::manual(&self.clock),
        )
        .unwrap()
    }

    /// The same agent after a restart: `channel.db` closed and reopened.
    pub fn restart(&self, agent: Agent) -> Agent {
        let home = agent.home().to_owned();
        drop(agent);
        self.open(&home)
    }

    /// Another process on an agent's home.
    pub fn open(&self, home: &Path) -> Agent {
        Agent::open_with_clock(
            home,
            None,
            AgentOptions { record: false },
            clock::manual(&self.clock),
        )
        .unwrap()
    }

    /// Milliseconds since [`START`].
    pub fn elapsed(&self) -> u64 {
        use accord_net::Clock;
        self.clock.now_ms() - START
    }

    /// Sets the clock to `START + ms`.
    pub fn at(&self, ms: u64) {
        self.clock.set_unix_ms(START + ms);
    }

    /// Moves the clock forward.
    pub fn advance(&self, ms: u64) {
        self.clock.advance_ms(ms);
    }
}

/// Runs every task of the (paused, current-thread) runtime until none can
/// make progress. A paused clock only moves by itself when the runtime is
/// idle, so this virtual millisecond ends once all in-memory I/O between
/// agents and the hub has been handled. Nothing real waits.
pub async fn quiesce() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// The next message delivered, within [`T`].
pub async fn next(rx: &mut UnboundedReceiver<SignedMessage>) -> SignedMessage {
    tokio::time::timeout(T, rx.recv())
        .await
        .expect("no message arrived")
        .expect("the agent was dropped")
}

/// A receiver of the agent's refusals, as `Debug` strings (which start
/// with the `NetError` variant).
pub fn refusals(agent: &Agent) -> UnboundedReceiver<String> {
    let (tx, rx) = unbounded_channel();
    agent.on_error(move |e: &NetError| {
        let _ = tx.send(format!("{e:?}"));
    });
    rx
}

/// The next refusal reported, within [`T`].
pub async fn next_refusal(rx: &mut UnboundedReceiver<String>) -> String {
    tokio::time::timeout(T, rx.recv())
        .await
        .expect("nothing was refused")
        .expect("the agent was dropped")
}

/// One integer from a SQLite database (for checking what was persisted).
pub fn query(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}
