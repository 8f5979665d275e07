//! Attestation documents (`accord-attestation/1`): the controller's signed
//! statement that an agent (its agent_id and key) runs a codebase and a
//! configuration with the given SHA-256 hashes, valid from `issued_at`
//! until `expires_at`.
//!
//! A signed object (`accord_core::signed`): RFC 8785 canonical JSON,
//! Ed25519 by the controller's identity key over every member but
//! `signature`, so expiry, the agent's key and both hashes are covered.
//! Members: `format`, `trust_domain`, `controller`, `controller_key`,
//! `agent_id`, `agent_key`, `codebase_hash`, `config_hash`, `issued_at`,
//! `expires_at`, `signature`; any other member is refused.
//!
//! Verification is fail-closed: every check must pass, against a
//! controller key the verifier already trusts (e.g. from the CA
//! certificate), never the key the document carries.

use accord_core::signed::SignedObject;
use accord_core::{AgentId, Hash32, Keypair, Map, PublicKey, Timestamp};

use crate::FUTURE_SKEW;
use crate::error::AttestationError;
use crate::name::TrustDomain;

/// The `format` member.
pub const ATTESTATION_FORMAT: &str = "accord-attestation/1";

/// The members of an attestation, `signature` excepted.
const MEMBERS: [&str; 10] = [
    "format",
    "trust_domain",
    "controller",
    "controller_key",
    "agent_id",
    "agent_key",
    "codebase_hash",
    "config_hash",
    "issued_at",
    "expires_at",
];

/// What an attestation states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    /// The agent.
    pub agent_id: AgentId,
    /// Its identity key (must derive `agent_id`).
    pub agent_key: PublicKey,
    /// SHA-256 of the agent's codebase.
    pub codebase_hash: Hash32,
    /// SHA-256 of its configuration.
    pub config_hash: Hash32,
    /// When the controller issued it.
    pub issued_at: Timestamp,
    /// When it stops being valid.
    pub expires_at: Timestamp,
}

impl Attestation {
    /// Signs the attestation with the controller's key, in `domain`.
    /// Refuses a key that does not derive the agent_id, or an
    /// `expires_at` not after `issued_at`.
    pub fn sign(
        &self,
        controller: &Keypair,
        domain: &TrustDomain,
    ) -> Result<SignedObject, AttestationError> {
        if self.agent_key.agent_id() != self.agent_id {
            return Err(AttestationError::AgentKey {
                agent_id: self.agent_id.to_string(),
            });
        }
        if self.expires_at <= self.issued_at {
            return Err(AttestationError::Window {
                issued_at: self.issued_at.as_str().to_owned(),
                expires_at: self.expires_at.as_str().to_owned(),
            });
        }
        let mut m = Map::new();
        m.insert("format".into(), ATTESTATION_FORMAT.into());
        m.insert("trust_domain".into(), domain.as_str().into());
        m.insert("controller".into(), controller.agent_id().as_str().into());
        m.insert("controller_key".into(), controller.public().to_b64().into());
        m.insert("agent_id".into(), self.agent_id.as_str().into());
        m.insert("agent_key".into(), self.agent_key.to_b64().into());
        m.insert("codebase_hash".into(), self.codebase_hash.to_hex().into());
        m.insert("config_hash".into(), self.config_hash.to_hex().into());
        m.insert("issued_at".into(), self.issued_at.as_str().into());
        m.insert("expires_at".into(), self.expires_at.as_str().into());
        Ok(SignedObject::sign(m, controller))
    }
}

/// An attestation that passed [`verify_attestation`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedAttestation {
    /// What it states.
    pub attestation: Attestation,
    /// Its trust domain.
    pub trust_domain: TrustDomain,
    /// The signed document.
    pub document: SignedObject,
}

impl VerifiedAttestation {
    /// Fail-closed check of the hashes a verifier requires (each `None`
    /// means "any").
    pub fn require(
        &self,
        codebase: Option<&Hash32>,
        config: Option<&Hash32>,
    ) -> Result<(), AttestationError> {
        for (member, want, got) in [
            ("codebase_hash", codebase, &self.attestation.codebase_hash),
            ("config_hash", config, &self.attestation.config_hash),
        ] {
            if let Some(want) = want
                && want != got
            {
                return Err(AttestationError::HashMismatch {
                    member,
                    expected: want.to_hex(),
                    found: got.to_hex(),
                });
            }
        }
        Ok(())
    }
}

/// Verifies an attestation (JSON text) presented by `agent`, against the
/// trusted controller key, at `now`. In order: well-formed
/// `accord-attestation/1` signed object with no unknown member; the
/// `controller_key` is the trusted key and `controller` its agent_id; the
/// signature verifies (strict) under the trusted key; `agent_key` derives
/// `agent_id`; `agent_id` is `agent`; `trust_domain` is `domain` when one
/// is required; `issued_at` < `expires_at`; `issued_at` is at most
/// [`FUTURE_SKEW`] ahead of `now`; `now` < `expires_at`.
pub fn verify_attestation(
    text: &[u8],
    controller: &PublicKey,
    agent: &AgentId,
    domain: Option<&TrustDomain>,
    now: &Timestamp,
) -> Result<VerifiedAttestation, AttestationError> {
    let doc = SignedObject::parse(text, ATTESTATION_FORMAT)?;
    if let Some(extra) = doc
        .members()
        .keys()
        .find(|k| !MEMBERS.contains(&k.as_str()))
    {
        return Err(AttestationError::UnknownMember(
            extra.chars().take(64).collect(),
        ));
    }
    let named_key = doc.public_key("controller_key")?;
    let named = doc.agent_id("controller")?;
    let expected = controller.agent_id();
    if named_key != *controller || named != expected {
        return Err(AttestationError::WrongController {
            found: named.to_string(),
            expected: expected.to_string(),
        });
    }
    if !doc.verify(controller) {
        return Err(AttestationError::BadSignature);
    }
    let agent_id = doc.agent_id("agent_id")?;
    let agent_key = doc.public_key("agent_key")?;
    if agent_key.agent_id() != agent_id {
        return Err(AttestationError::AgentKey {
            agent_id: agent_id.to_string(),
        });
    }
    if agent_id != *agent {
        return Err(AttestationError::WrongAgent {
            expected: agent.to_string(),
            found: agent_id.to_string(),
        });
    }
    let td_text = doc.str("trust_domain")?;
    let trust_domain = TrustDomain::parse(td_text).map_err(|_| {
        AttestationError::Malformed(accord_core::signed::SignedError::Member {
            format: ATTESTATION_FORMAT.into(),
            member: "trust_domain",
            problem: "is not a SPIFFE trust domain".into(),
        })
    })?;
    if let Some(want) = domain
        && *want != trust_domain
    {
        return Err(AttestationError::WrongTrustDomain {
            expected: want.to_string(),
            found: trust_domain.to_string(),
        });
    }
    let codebase_hash = doc.hash_member("codebase_hash")?;
    let config_hash = doc.hash_member("config_hash")?;
    let issued_at = doc.timestamp("issued_at")?;
    let expires_at = doc.timestamp("expires_at")?;
    if expires_at <= issued_at {
        return Err(AttestationError::Window {
            issued_at: issued_at.as_str().to_owned(),
            expires_at: expires_at.as_str().to_owned(),
        });
    }
    let skew = FUTURE_SKEW.as_micros() as i64;
    if issued_at.unix_micros() > now.unix_micros().saturating_add(skew) {
        return Err(AttestationError::NotYetValid {
            issued_at: issued_at.as_str().to_owned(),
            now: now.as_str().to_owned(),
        });
    }
    if *now >= expires_at {
        return Err(AttestationError::Expired {
            expires_at: expires_at.as_str().to_owned(),
            now: now.as_str().to_owned(),
        });
    }
    Ok(VerifiedAttestation {
        attestation: Attestation {
            agent_id,
            agent_key,
            codebase_hash,
            config_hash,
            issued_at,
            expires_at,
        },
        trust_domain,
        document: doc,
    })
}
