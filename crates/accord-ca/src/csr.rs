//! PKCS#10 certificate signing requests (RFC 2986): made by an agent with
//! its identity key, checked by the CA as proof of possession.
//!
//! The CA takes only the key from a CSR. The subject and any requested
//! extensions are ignored: what a certificate says is decided by the CA
//! (the SPIFFE ID is derived from the key, never taken from the request).

use accord_core::{AgentId, Keypair, PublicKey};
use der::{Decode, Encode};
use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};
use x509_cert::request::CertReq;

use crate::MAX_INPUT_BYTES;
use crate::error::{CaError, CsrError};
use crate::name::{TrustDomain, spiffe_id};
use crate::sign::Signer;
use crate::x509::{KeyProblem, alg_name, der_bytes, ed25519_key, is_ed25519, verify};

/// Makes a CSR for `key`: subject `CN=<agent_id>`, with a `domain` a
/// requested URI SAN naming the agent's SPIFFE ID there, signed by the key
/// itself. Returns the PEM text (`CERTIFICATE REQUEST`).
pub fn create_csr(key: &Keypair, domain: Option<&TrustDomain>) -> Result<String, CaError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, key.agent_id().as_str());
    params.distinguished_name = dn;
    if let Some(domain) = domain {
        params.subject_alt_names =
            vec![SanType::URI(spiffe_id(domain, key.agent_id()).try_into()?)];
    }
    let csr = params.serialize_request(&Signer::new(key))?;
    Ok(csr.pem()?)
}

/// A CSR whose signature verified under its own key.
#[derive(Debug, Clone)]
pub struct Csr {
    key: PublicKey,
    der: Vec<u8>,
}

impl Csr {
    /// Parses a CSR (PEM `CERTIFICATE REQUEST` or DER) and checks it:
    /// canonical DER, signature algorithm Ed25519, subject key a valid
    /// strong Ed25519 key, and the signature over the request info
    /// verifying (strict) under that key.
    pub fn parse(input: &[u8]) -> Result<Self, CsrError> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(CsrError::TooLarge(input.len()));
        }
        let der = der_bytes(input, "CERTIFICATE REQUEST").map_err(CsrError::Encoding)?;
        let req = CertReq::from_der(&der).map_err(CsrError::Encoding)?;
        if req.to_der().map_err(CsrError::Encoding)? != der {
            return Err(CsrError::NotCanonical);
        }
        if !is_ed25519(&req.algorithm) {
            return Err(CsrError::Algorithm(alg_name(&req.algorithm)));
        }
        let key = ed25519_key(&req.info.public_key).map_err(|p| match p {
            KeyProblem::Algorithm(a) => CsrError::KeyAlgorithm(a),
            KeyProblem::Key(e) => CsrError::Key(e),
        })?;
        let info = req.info.to_der().map_err(CsrError::Encoding)?;
        if !verify(&key, &info, &req.signature) {
            return Err(CsrError::BadSignature);
        }
        Ok(Csr { key, der })
    }

    /// The subject key (proven held by whoever made the CSR).
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The agent_id the key derives.
    pub fn agent_id(&self) -> AgentId {
        self.key.agent_id()
    }

    /// The DER bytes of the request.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}
