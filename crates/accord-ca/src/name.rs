//! SPIFFE names: trust domains and the agent SPIFFE ID
//! `spiffe://<trust-domain>/agent/<agent_id>`.

use std::fmt;

use accord_core::AgentId;

use crate::error::{CaError, CertError};

/// Longest trust domain name (SPIFFE ID spec §2.1).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// Longest SPIFFE ID URI (SPIFFE ID spec §2.3).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// A SPIFFE trust domain name: 1–255 characters of `a-z`, `0-9`, `.`,
/// `-`, `_` (lower case only, as the SPIFFE ID specification requires).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Checks the syntax.
    pub fn parse(s: &str) -> Result<Self, CaError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_TRUST_DOMAIN_LEN
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            });
        if ok {
            Ok(TrustDomain(s.to_owned()))
        } else {
            Err(CaError::TrustDomain(s.chars().take(300).collect()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust domain's own SPIFFE ID, `spiffe://<trust-domain>`, carried
    /// by the CA certificate.
    pub fn id(&self) -> String {
        format!("spiffe://{}", self.0)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({})", self.0)
    }
}

/// The SPIFFE ID of an agent: `spiffe://<trust-domain>/agent/<agent_id>`.
pub fn spiffe_id(domain: &TrustDomain, agent: &AgentId) -> String {
    format!("spiffe://{}/agent/{}", domain.as_str(), agent.as_str())
}

/// Splits a SPIFFE ID URI into its trust domain and path (`""` or
/// `/seg/seg…`), checking the syntax of both (SPIFFE ID spec §2).
pub(crate) fn split_spiffe_id(uri: &str) -> Result<(TrustDomain, &str), CertError> {
    let bad = |why: &str| CertError::SpiffeId(format!("{:?} {why}", short(uri)));
    if uri.len() > MAX_SPIFFE_ID_LEN {
        return Err(bad("is longer than 2048 bytes"));
    }
    let rest = uri
        .strip_prefix("spiffe://")
        .ok_or_else(|| bad("does not start with spiffe://"))?;
    let (domain, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let domain =
        TrustDomain::parse(domain).map_err(|_| bad("does not name a valid trust domain"))?;
    if !path.is_empty() {
        for seg in path[1..].split('/') {
            let ok = !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
            if !ok {
                return Err(bad("has an invalid path segment"));
            }
        }
    }
    Ok((domain, path))
}

/// Parses an agent SPIFFE ID into its trust domain and agent_id.
pub(crate) fn parse_agent_id(uri: &str) -> Result<(TrustDomain, AgentId), CertError> {
    let (domain, path) = split_spiffe_id(uri)?;
    let id = path.strip_prefix("/agent/").ok_or_else(|| {
        CertError::SpiffeId(format!(
            "{:?} is not of the form spiffe://<trust-domain>/agent/<agent_id>",
            short(uri)
        ))
    })?;
    let agent =
        AgentId::parse(id).map_err(|e| CertError::SpiffeId(format!("{:?}: {e}", short(uri))))?;
    Ok((domain, agent))
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_domains_and_ids() {
        assert!(TrustDomain::parse("example.org").is_ok());
        assert!(TrustDomain::parse("Example.org").is_err());
        assert!(TrustDomain::parse("").is_err());
        assert!(TrustDomain::parse("a/b").is_err());
        assert!(TrustDomain::parse(&"a".repeat(256)).is_err());
        let td = TrustDomain::parse("acme.test").unwrap();
        let kp = accord_core::Keypair::from_seed(&[3; 32]).unwrap();
        let id = spiffe_id(&td, kp.agent_id());
        let (d, a) = parse_agent_id(&id).unwrap();
        assert_eq!((d, &a), (td, kp.agent_id()));
        for bad in [
            "https://acme.test/agent/x",
            "spiffe://acme.test",
            "spiffe://acme.test/agent/",
            "spiffe://acme.test/agent//x",
            "spiffe://acme.test/workload/abc",
            "spiffe://ACME/agent/abc",
            "spiffe://acme.test/agent/0OIl",
        ] {
            assert!(parse_agent_id(bad).is_err(), "{bad}");
        }
    }
}
