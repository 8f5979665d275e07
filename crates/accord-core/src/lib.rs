//! Accord core: identities, RFC 8785 canonical JSON, signed hash-chained
//! events, chain and export verification, key files.
//!
//! Sans-I/O: nothing here reads the clock, draws randomness of its own, opens
//! a file or a socket. Time, nonces and random bytes come in as arguments, so
//! every behaviour is reproducible in tests.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;
pub mod audit;
pub mod chain;
pub mod channel;
pub mod event;
pub mod export;
pub mod handoff;
pub mod hash;
pub mod identity;
pub mod jcs;
pub mod keyfile;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod session;
pub mod signed;
pub mod timestamp;

pub use chain::{ChainVerifier, ChainWriter, Failure, Head, Reason, SignatureMode, Summary};
pub use event::{Event, EventError, SignedEvent};
pub use export::{ExportError, ExportReport, ExportVerifier, Seal};
pub use hash::Hash32;
pub use identity::{AgentId, IdentityError, Keypair, PublicKey};
pub use timestamp::Timestamp;

/// An Ed25519 signature.
pub use ed25519_dalek::Signature;

/// Re-exported so callers build payloads with the same JSON types.
pub use serde_json::{Map, Value};
/// Re-exported for nonces.
pub use uuid::Uuid;
