//! Accord controller, the agent certificate authority: X.509 certificates in
//! the SPIFFE X.509-SVID profile for agents' own Ed25519 identity keys,
//! PKCS#10 enrolment with proof of possession, RFC 5280 CRLs, offline
//! verification, and signed attestation documents (codebase and config
//! hashes).
//!
//! Sans-I/O like `accord-core`: no clock, no RNG, no files, no network.
//! Times come in as [`accord_core::Timestamp`]s, serial numbers from random
//! bytes the caller draws ([`Serial::from_random`]), keys as
//! [`accord_core::Keypair`]s. The controller is an Accord agent: its CA key
//! *is* its identity key.
//!
//! | module | what it holds |
//! |---|---|
//! | [`ca`] | [`Ca`]: CA creation (self-signed), issuance from a CSR, CRL signing; [`CaCertificate`]: a parsed and checked CA certificate |
//! | [`csr`] | [`create_csr`] (an agent's PKCS#10 request) and [`Csr::parse`] (signature = proof of possession) |
//! | [`verify`] | [`verify_certificate`] (the leaf path check) and [`Crl::parse`] |
//! | [`attest`] | [`Attestation`] documents (`accord-attestation/1`) and [`verify_attestation`] |
//! | [`name`] | [`TrustDomain`] and SPIFFE IDs |
//!
//! Writing uses `rcgen` (with this crate's Ed25519 signer, no ring);
//! reading and verification use the RustCrypto `der` / `x509-cert`
//! generation that `accord-tsp` uses, with Ed25519 checked by
//! `accord-core` (strict RFC 8032, weak keys refused). Every structure read
//! must be DER that re-encodes to exactly the bytes given, so the bytes a
//! signature is checked over are the bytes received.
//!
//! Limits: inputs of at most [`MAX_INPUT_BYTES`]; CRLs of at most
//! [`MAX_CRL_ENTRIES`] entries; leaf lifetimes of at most
//! [`MAX_LEAF_LIFETIME`]; certificates valid no longer than their CA.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attest;
pub mod ca;
pub mod csr;
mod error;
pub mod name;
mod serial;
mod sign;
pub mod verify;
mod x509;

use std::time::Duration;

pub use attest::{ATTESTATION_FORMAT, Attestation, VerifiedAttestation, verify_attestation};
pub use ca::{Ca, CaCertificate, Issued};
pub use csr::{Csr, create_csr};
pub use error::{AttestationError, CaError, CertError, CrlError, CsrError};
pub use name::{TrustDomain, spiffe_id};
pub use serial::{Reason, Serial};
pub use verify::{Crl, Revoked, VerifiedCertificate, verify_certificate};

/// Largest certificate, CSR or CRL accepted (PEM or DER), in bytes.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Most entries a CRL may list.
pub const MAX_CRL_ENTRIES: usize = 100_000;
/// Default lifetime of an agent certificate: 24 hours.
pub const DEFAULT_LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Longest lifetime of an agent certificate: 366 days.
pub const MAX_LEAF_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);
/// Default lifetime of a CA certificate: 10 years (3653 days).
pub const DEFAULT_CA_LIFETIME: Duration = Duration::from_secs(3653 * 24 * 3600);
/// Longest lifetime of a CA certificate: 100 years.
pub const MAX_CA_LIFETIME: Duration = Duration::from_secs(36525 * 24 * 3600);
/// Tolerated clock difference for documents dated in the future: 5 minutes.
pub const FUTURE_SKEW: Duration = Duration::from_secs(300);
