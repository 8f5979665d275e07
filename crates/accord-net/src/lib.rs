//! Accord networking: end-to-end encrypted messaging between agents through
//! a hub that cannot read it.
//!
//! * [`Agent`] — an agent opened from its home directory: attach it to a
//!   hub, [`send`](Agent::send), register [`on_message`](Agent::on_message)
//!   handlers, pin peers' keys, record every message in its chain.
//! * [`LocalHub`] — an in-process hub (one process, tests, notebooks).
//! * [`HubServer`] — the TCP hub (`accord hub serve`): length-framed JSON,
//!   registration by signed challenge, durable store-and-forward queue.
//!   **An envelope is routed** by [`HubCore::enqueue`] (checks and queues it
//!   for its recipient) and pushed by the connection's delivery loop in
//!   [`hub`]; the protocol handler is [`hub::serve_connection`].
//! * [`HubClient`] — the client side of the hub protocol.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), accord_net::NetError> {
//! use accord_net::{Agent, AgentOptions, LocalHub};
//!
//! let dir = tempfile::tempdir().map_err(|e| accord_net::NetError::Io(e.to_string()))?;
//! let hub = LocalHub::new()?;
//! let opts = AgentOptions::default();
//! let planner = Agent::init(&dir.path().join("planner"), Some("planner"), None, opts)?;
//! let worker = Agent::init(&dir.path().join("worker"), Some("worker"), None, opts)?;
//! planner.attach(&hub).await?;
//! worker.attach(&hub).await?;
//!
//! let mut inbox = worker.subscribe();
//! worker.on_message(|m| println!("{}: {}", m.message().from, m.message().text));
//! let receipt = planner.send(worker.agent_id().as_str(), "summarise Q3").await?;
//! let got = inbox.recv().await.expect("delivered");
//! assert_eq!(got.message().text, "summarise Q3");
//! // Both chains record the message by the hash of its signed form.
//! assert_eq!(got.hash().to_hex(), receipt.message_hash);
//! # Ok(())
//! # }
//! ```
//!
//! The cryptography is in [`accord_core::channel`] (sans-I/O); this crate
//! adds sockets, the clock ([`Clock`]: the system clock by default, a
//! [`ManualEnv`] in tests and simulations, which also stamps the agents'
//! chains), randomness and storage. `docs/PROTOCOL.md` §18–19
//! specify the formats and the hub protocol.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod channel_db;
pub mod client;
pub mod clock;
pub mod frame;
pub mod hub;
mod recorder;

pub use agent::{Agent, AgentOptions, HubAddr, SendReceipt, Status};
pub use client::{Delivery, HubClient};
pub use clock::{Clock, ManualEnv, SharedClock, SystemEnv};
pub use hub::{HubCore, HubServer, Limits, LocalHub};

use accord_core::channel::ChannelError;

/// Errors of the network layer, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// An envelope repeated one already received (or arrived below the
    /// replay window): it was dropped.
    #[error("replay detected: {0}")]
    ReplayDetected(String),
    /// An envelope or message did not authenticate (altered, truncated,
    /// sealed under other keys, or signed by another key).
    #[error("authentication failed: {0}")]
    AuthenticationFailed(String),
    /// The hub has no agent with this id.
    #[error(
        "peer {0} not found on the hub (it has never registered there; check the id or the hub address)"
    )]
    PeerNotFound(String),
    /// No hub is attached and none is needed for the operation's fallback.
    #[error(
        "no hub configured: call attach() (CLI: --hub ADDR), or use connect_with_bundle for peer-to-peer"
    )]
    NoHub,
    /// The peer's identity key differs from the one pinned for it.
    #[error(
        "the identity key of {peer} changed: pinned fingerprint {pinned}, offered {offered}. \
         If the change is expected (verify out of band), re-pin it (accord peers --repin {peer}); otherwise someone is impersonating the peer"
    )]
    PeerKeyChanged {
        /// The peer.
        peer: String,
        /// Fingerprint of the pinned key.
        pinned: String,
        /// Fingerprint of the key now offered.
        offered: String,
    },
    /// The hub refused a request; `code` is the protocol's error code.
    #[error("hub refused ({code}): {message}")]
    Hub {
        /// Error code from the hub (e.g. `queue_full`, `agent_id_taken`).
        code: String,
        /// The hub's explanation.
        message: String,
    },
    /// The connection to the hub closed or could not be made.
    #[error("hub connection: {0}")]
    Disconnected(String),
    /// The hub did not answer in time.
    #[error("the hub did not answer within {0} s")]
    Timeout(u64),
    /// A channel-level failure (malformed input, expired bundle, …).
    #[error(transparent)]
    Channel(ChannelError),
    /// The agent's home or chain failed.
    #[error(transparent)]
    Home(#[from] accord_store::HomeError),
    /// The agent's channel database holds something it should not (a
    /// session of another agent, a damaged key).
    #[error("channel database: {0}")]
    Db(String),
    /// SQLite failed on `channel.db` or `hub.db`.
    #[error("channel database: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// The operating system refused a file or socket operation.
    #[error("{what}: {source}")]
    System {
        /// What was being done (e.g. "cannot listen on 127.0.0.1:7700").
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// `channel.db` or `hub.db` is not a database this build can use (a
    /// file of another program, or of a newer Accord); it was left
    /// untouched.
    #[error(transparent)]
    Schema(#[from] accord_store::schema::SchemaError),
    /// A malformed reply or other protocol violation by the other side.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Invalid input from the caller (bad agent id, bad payload, …).
    #[error("invalid input: {0}")]
    Input(String),
    /// I/O failure.
    #[error("I/O: {0}")]
    Io(String),
}

impl From<ChannelError> for NetError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Replay { .. } | ChannelError::TooOld { .. } => {
                // The channel error already says "replay detected: …";
                // this variant's message adds that prefix itself.
                let s = e.to_string();
                NetError::ReplayDetected(match s.strip_prefix("replay detected: ") {
                    Some(rest) => rest.to_owned(),
                    None => s,
                })
            }
            ChannelError::AuthenticationFailed
            | ChannelError::BadSignature(_)
            | ChannelError::BundleSignature => NetError::AuthenticationFailed(e.to_string()),
            other => NetError::Channel(other),
        }
    }
}

impl From<rusqlite::Error> for NetError {
    fn from(e: rusqlite::Error) -> Self {
        NetError::Sqlite(e)
    }
}

/// Milliseconds since the Unix epoch, from the system clock
/// ([`SystemEnv`]). Agents and hubs do not call this: they read the
/// [`Clock`] they were built with.
pub fn now_ms() -> u64 {
    SystemEnv.now_ms()
}

/// `N` bytes from the operating system's RNG.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], NetError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| NetError::Io(format!("random number generator: {e}")))?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::NetError;

    #[test]
    fn wrapped_errors_keep_their_cause() {
        let sqlite = rusqlite::Connection::open_in_memory()
            .unwrap()
            .execute("not sql", [])
            .unwrap_err();
        let e = NetError::from(sqlite);
        let cause = e.source().expect("the SQLite error is kept");
        assert!(cause.downcast_ref::<rusqlite::Error>().is_some());
        assert!(e.to_string().starts_with("channel database: "), "{e}");

        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "in use");
        let e = NetError::System {
            what: "cannot listen on 127.0.0.1:1".into(),
            source: io,
        };
        let cause = e.source().expect("the OS error is kept");
        assert_eq!(
            cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::AddrInUse)
        );
        assert_eq!(e.to_string(), "cannot listen on 127.0.0.1:1: in use");
    }
}
