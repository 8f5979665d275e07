//! Making a chain provable to others: [`merkle`] (RFC 9162 trees, inclusion
//! and consistency proofs), [`note`] (C2SP signed notes, checkpoints and
//! cosignatures), [`proof`] (proof files and a witness's checks), and
//! [`archive`] (certified archives that verify offline).

pub mod archive;
pub mod merkle;
pub mod note;
pub mod proof;
