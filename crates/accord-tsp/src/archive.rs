//! The RFC 3161 token of a certified archive (`accord_core::archive`,
//! docs/PROTOCOL.md 12.2 and 12.4): [`ArchiveTimestamps`] is the
//! [`TimestampCheck`] that verifies it with [`verify_token`].
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use accord_core::SignatureMode;
//! use accord_tsp::Trust;
//! use accord_tsp::archive::ArchiveTimestamps;
//!
//! let trust = Trust::from_pem_or_der(&std::fs::read("tsa-ca.pem")?)?;
//! let mut v = ArchiveTimestamps::with_trust(trust).verifier(SignatureMode::Strict);
//! for line in std::fs::read("agent.archive")?.split(|b| *b == b'\n') {
//!     v.push_line(line)?;
//! }
//! let report = v.finish()?;
//! println!("{:?}", report.timestamp.map(|t| t.gen_time));
//! # Ok(())
//! # }
//! ```

use accord_core::Hash32;
use accord_core::SignatureMode;
use accord_core::archive::{self, ArchiveVerifier, TimestampCheck};

use crate::{Imprint, TokenReport, Trust, TspError, verify_token};

/// The imprint an archive's RFC 3161 token must carry: SHA-256 of the
/// checkpoint note's bytes exactly as the certification line carries them
/// ([`archive::timestamp_digest`]).
pub fn timestamp_imprint(checkpoint_note: &[u8]) -> Imprint {
    Imprint::sha256(archive::timestamp_digest(checkpoint_note).0)
}

/// Verifies an archive's token with [`verify_token`]: no nonce, the
/// imprint of [`timestamp_imprint`], and the trust anchors when given
/// (without them, everything but the TSA's chain is checked, and the report
/// says [`ChainStatus::NotChecked`](crate::ChainStatus::NotChecked)).
#[derive(Debug, Clone, Default)]
pub struct ArchiveTimestamps {
    trust: Option<Trust>,
}

impl ArchiveTimestamps {
    /// Without trust anchors.
    pub fn new() -> Self {
        ArchiveTimestamps { trust: None }
    }

    /// Against these trust anchors (and intermediates).
    pub fn with_trust(trust: Trust) -> Self {
        ArchiveTimestamps { trust: Some(trust) }
    }

    /// Against these trust anchors when given.
    pub fn with_optional_trust(trust: Option<Trust>) -> Self {
        ArchiveTimestamps { trust }
    }

    /// An archive verifier that checks tokens this way.
    pub fn verifier(self, mode: SignatureMode) -> ArchiveVerifier<Self> {
        ArchiveVerifier::with_timestamp_check(mode, self)
    }
}

impl TimestampCheck for ArchiveTimestamps {
    type Report = TokenReport;
    type Error = TspError;

    fn check(&self, token: &[u8], digest: &Hash32) -> Result<TokenReport, TspError> {
        verify_token(token, &Imprint::sha256(digest.0), None, self.trust.as_ref())
    }
}
