//! Canonical JSON and signed documents: [`jcs`] parses JSON strictly and
//! writes RFC 8785 canonical form; [`signed`] signs and checks JSON objects
//! whose Ed25519 signature covers the canonical form of their other members.

pub mod jcs;
pub mod signed;
