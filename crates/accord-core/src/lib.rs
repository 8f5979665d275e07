//! Accord core: identities, RFC 8785 canonical JSON, signed hash-chained
//! events, chain and export verification, key files.
//!
//! | module | what it holds |
//! |---|---|
//! | [`identity`] | Ed25519 keys, `agent_id`, fingerprints; [`keyfile`]: keys encrypted at rest |
//! | [`json`] | [`jcs`] (RFC 8785) and [`signed`] documents |
//! | [`chain`] | [`event`]s, [`ChainWriter`] (**where every event after genesis is signed**, from the head, the time and a nonce), [`ChainVerifier`], [`export`]s and their seal |
//! | [`interaction`] | [`session`] (the handshake and co-signed interactions: messages and checks), [`participant`] (**the handshake and interaction state machine**: what one agent records and sends for each message, with no I/O; `accord_store::participant` drives it over a store), [`handoff`] receipts, the cross-chain [`audit`] |
//! | [`transparency`] | [`merkle`] trees, [`note`]s and checkpoints, [`proof`] files, certified [`archive`]s |
//! | [`channel`] | the end-to-end encrypted channel: bundles, session setup, envelopes, replay windows (the hub that routes envelopes is `accord_net::hub`) |
//! | [`hash`], [`timestamp`] | SHA-256 values and RFC 3339 times |
//!
//! RFC 3161 timestamps are checked by the separate `accord-tsp` crate, so a
//! verifier that needs no timestamps does not compile X.509 or CMS.
//!
//! Sans-I/O: nothing here reads the clock, draws randomness of its own, opens
//! a file or a socket. Time, nonces and random bytes come in as arguments, so
//! every behaviour is reproducible in tests.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chain;
pub mod channel;
pub mod hash;
pub mod identity;
pub mod interaction;
pub mod json;
pub mod timestamp;
pub mod transparency;

// The modules by their own names, as they were before they were grouped.
pub use chain::{event, export};
pub use identity::keyfile;
pub use interaction::{audit, handoff, participant, session};
pub use json::{jcs, signed};
pub use transparency::{archive, merkle, note, proof};

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
