//! The CA: a self-signed CA certificate for the controller's identity key,
//! issuance of agent certificates from CSRs, and CRL signing.
//!
//! CA certificate: subject `O=<trust-domain>, CN=Accord agent CA`, one URI
//! SAN `spiffe://<trust-domain>` (the trust domain's own SPIFFE ID),
//! basicConstraints `CA:TRUE, pathlen:0` (critical), keyUsage
//! `keyCertSign, cRLSign` (critical), subject key identifier (RFC 7093
//! method 1). Agent certificates are described at [`Ca::issue`].

use std::time::Duration;

use accord_core::{AgentId, Keypair, PublicKey, Timestamp};
use const_oid::db::rfc5280;
use der::{Decode, Encode};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, RevokedCertParams,
    SanType, SerialNumber,
};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints as Bc, KeyUsage, SubjectAltName};

use crate::csr::Csr;
use crate::error::{CaError, CertError};
use crate::name::{TrustDomain, spiffe_id, split_spiffe_id};
use crate::serial::Serial;
use crate::sign::{Signer, Subject, key_id, secs, time_text, to_offset};
use crate::verify::{Revoked, verify_certificate};
use crate::x509::{KeyProblem, alg_name, check_extensions, der_bytes, ed25519_key, is_ed25519};
use crate::{MAX_CA_LIFETIME, MAX_CRL_ENTRIES, MAX_INPUT_BYTES, MAX_LEAF_LIFETIME};

/// The common name of every Accord CA certificate.
pub const CA_COMMON_NAME: &str = "Accord agent CA";

/// A CA certificate, parsed and checked: canonical DER, X.509 v3,
/// Ed25519, self-signed (the signature verifies under its own key),
/// basicConstraints CA:TRUE, keyUsage with keyCertSign and cRLSign, no
/// extension twice and no unknown critical one, exactly one URI SAN naming
/// a trust domain (`spiffe://<trust-domain>`). Its validity period is
/// checked against a time by [`CaCertificate::check_valid_at`] (every
/// verification does).
#[derive(Debug, Clone)]
pub struct CaCertificate {
    pub(crate) cert: Certificate,
    der: Vec<u8>,
    pub(crate) key: PublicKey,
    domain: TrustDomain,
    not_before: i64,
    not_after: i64,
}

impl CaCertificate {
    /// Parses and checks a CA certificate (PEM `CERTIFICATE` or DER).
    pub fn parse(input: &[u8]) -> Result<Self, CertError> {
        let (cert, der) = decode_cert(input)?;
        let tbs = cert.tbs_certificate();
        let key = cert_key(&cert)?;
        if tbs.issuer() != tbs.subject() {
            return Err(CertError::UnknownIssuer {
                issuer: tbs.issuer().to_string(),
                ca: tbs.subject().to_string(),
            });
        }
        check_signature(&cert, &key)?;
        check_extensions(
            tbs.extensions(),
            &[
                rfc5280::ID_CE_BASIC_CONSTRAINTS,
                rfc5280::ID_CE_KEY_USAGE,
                rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
                rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
                rfc5280::ID_CE_SUBJECT_ALT_NAME,
            ],
        )
        .map_err(ext_err)?;
        match tbs.get_extension::<Bc>() {
            Ok(Some((_, bc))) if bc.ca => {}
            Ok(_) => return Err(CertError::BasicConstraints("not a CA (CA:TRUE missing)")),
            Err(_) => return Err(CertError::BasicConstraints("unreadable")),
        }
        match tbs.get_extension::<KeyUsage>() {
            Ok(Some((_, ku))) if ku.key_cert_sign() && ku.crl_sign() => {}
            Ok(_) => {
                return Err(CertError::KeyUsage(
                    "a CA certificate needs keyCertSign and cRLSign",
                ));
            }
            Err(_) => return Err(CertError::KeyUsage("unreadable")),
        }
        let uri = single_uri(&cert)?;
        let (domain, path) = split_spiffe_id(&uri)?;
        if !path.is_empty() {
            return Err(CertError::SpiffeId(format!(
                "a CA certificate names its trust domain (spiffe://<trust-domain>), not {uri:?}"
            )));
        }
        let (not_before, not_after) = validity(&cert);
        Ok(CaCertificate {
            cert,
            der,
            key,
            domain,
            not_before,
            not_after,
        })
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// PEM text (`CERTIFICATE`).
    pub fn pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }

    /// The CA key (the controller's identity key).
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The controller's agent_id (derived from the CA key).
    pub fn agent_id(&self) -> AgentId {
        self.key.agent_id()
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.domain
    }

    /// The subject, RFC 4514 text.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate().subject().to_string()
    }

    /// notBefore, seconds since the epoch.
    pub fn not_before_unix(&self) -> i64 {
        self.not_before
    }

    /// notAfter, seconds since the epoch.
    pub fn not_after_unix(&self) -> i64 {
        self.not_after
    }

    /// Whether the CA certificate is valid at `now` (notBefore ≤ now ≤
    /// notAfter, to the second).
    pub fn check_valid_at(&self, now: &Timestamp) -> Result<(), CertError> {
        check_validity(&self.subject(), self.not_before, self.not_after, now)
    }
}

/// The controller as a CA: its CA certificate and its identity key.
pub struct Ca<'k> {
    cert: CaCertificate,
    key: &'k Keypair,
}

impl std::fmt::Debug for Ca<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.cert.domain)
            .field("controller", self.key.agent_id())
            .finish()
    }
}

/// A certificate just issued.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Issued {
    /// The DER bytes.
    pub der: Vec<u8>,
    /// Its serial number.
    pub serial: Serial,
    /// The agent it certifies.
    pub agent_id: AgentId,
    /// The agent's key.
    pub public_key: PublicKey,
    /// Its SPIFFE ID.
    pub spiffe_id: String,
    /// notBefore.
    pub not_before: Timestamp,
    /// notAfter.
    pub not_after: Timestamp,
}

impl Issued {
    /// PEM text (`CERTIFICATE`).
    pub fn pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }
}

impl<'k> Ca<'k> {
    /// Creates a CA: a self-signed certificate for `key` naming `domain`,
    /// valid from `now` for `lifetime`, with the given serial.
    pub fn create(
        key: &'k Keypair,
        domain: &TrustDomain,
        now: &Timestamp,
        lifetime: Duration,
        serial: &Serial,
    ) -> Result<Self, CaError> {
        check_lifetime(lifetime, MAX_CA_LIFETIME)?;
        let mut params = ca_params(domain, key.public())?;
        params.not_before = to_offset(now)?;
        params.not_after = to_offset(&add(now, lifetime)?)?;
        params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        let cert = params.self_signed(&Signer::new(key))?;
        let cert = CaCertificate::parse(cert.der()).map_err(|e| CaError::SelfCheck(Box::new(e)))?;
        Ok(Ca { cert, key })
    }

    /// The CA from its certificate and the controller's key, which must be
    /// the certificate's key.
    pub fn new(cert: CaCertificate, key: &'k Keypair) -> Result<Self, CaError> {
        if cert.key != *key.public() {
            return Err(CaError::KeyMismatch {
                key_agent_id: key.agent_id().to_string(),
            });
        }
        Ok(Ca { cert, key })
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &CaCertificate {
        &self.cert
    }

    /// Issues an agent certificate (SPIFFE X.509-SVID) for the key of a
    /// checked CSR, enrolled as `claimed`, which the key must derive.
    ///
    /// The certificate: X.509 v3, the given serial, issuer = the CA's
    /// subject, subject `O=<trust-domain>, CN=<agent_id>`, valid from `now`
    /// for `lifetime` (at most [`MAX_LEAF_LIFETIME`] and never beyond the
    /// CA's own end), subject key = the agent's Ed25519 identity key,
    /// extensions: authority and subject key identifiers, exactly one URI
    /// SAN `spiffe://<trust-domain>/agent/<agent_id>`, keyUsage
    /// digitalSignature (critical), extendedKeyUsage serverAuth and
    /// clientAuth, basicConstraints CA:FALSE (critical). Signed Ed25519 by
    /// the controller key, and checked by [`verify_certificate`] before it
    /// is returned.
    pub fn issue(
        &self,
        csr: &Csr,
        claimed: &AgentId,
        now: &Timestamp,
        lifetime: Duration,
        serial: &Serial,
    ) -> Result<Issued, CaError> {
        let agent_key = *csr.public_key();
        let derived = agent_key.agent_id();
        if derived != *claimed {
            return Err(CaError::AgentIdMismatch {
                claimed: claimed.to_string(),
                derived: derived.to_string(),
            });
        }
        check_lifetime(lifetime, MAX_LEAF_LIFETIME)?;
        self.cert
            .check_valid_at(now)
            .map_err(|e| CaError::CaNotValid(Box::new(e)))?;
        let end = add(now, lifetime)?;
        if secs(&end) > self.cert.not_after {
            return Err(CaError::OutlivesCa {
                not_after: end.as_str().to_owned(),
                ca_not_after: time_text(self.cert.not_after),
            });
        }
        let domain = &self.cert.domain;
        let id = spiffe_id(domain, &derived);
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, domain.as_str());
        dn.push(DnType::CommonName, derived.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(id.clone().try_into()?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::PreSpecified(key_id(&agent_key));
        params.not_before = to_offset(now)?;
        params.not_after = to_offset(&end)?;
        params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        let issuer = self.issuer()?;
        let cert = params.signed_by(&Subject::new(&agent_key), &issuer)?;
        let der = cert.der().to_vec();
        let v = verify_certificate(&der, &self.cert, None, now)
            .map_err(|e| CaError::SelfCheck(Box::new(e)))?;
        Ok(Issued {
            der,
            serial: v.serial,
            agent_id: derived,
            public_key: agent_key,
            spiffe_id: id,
            not_before: v.not_before,
            not_after: v.not_after,
        })
    }

    /// Signs an RFC 5280 v2 CRL: issuer = the CA's subject, the given
    /// thisUpdate and nextUpdate (which must be later), a CRL number,
    /// authority key identifier, and one entry per revoked serial
    /// (revocationDate, and a reasonCode unless the reason is
    /// unspecified). Returns DER.
    pub fn crl(
        &self,
        this_update: &Timestamp,
        next_update: &Timestamp,
        number: u64,
        revoked: &[Revoked],
    ) -> Result<Vec<u8>, CaError> {
        if next_update <= this_update || secs(next_update) <= secs(this_update) {
            return Err(CaError::CrlWindow {
                this_update: this_update.as_str().to_owned(),
                next_update: next_update.as_str().to_owned(),
            });
        }
        if revoked.len() > MAX_CRL_ENTRIES {
            return Err(CaError::CrlEntries(format!(
                "{} entries, more than {MAX_CRL_ENTRIES}",
                revoked.len()
            )));
        }
        for (i, r) in revoked.iter().enumerate() {
            if revoked[..i].iter().any(|p| p.serial == r.serial) {
                return Err(CaError::CrlEntries(format!(
                    "serial {} appears twice",
                    r.serial
                )));
            }
        }
        let revoked_certs = revoked
            .iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(r.serial.as_bytes()),
                    revocation_time: to_offset(&r.at)?,
                    reason_code: match r.reason {
                        crate::Reason::Unspecified => None,
                        other => Some(other.to_rcgen()),
                    },
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let number_bytes = number.to_be_bytes();
        let start = number_bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(number_bytes.len() - 1);
        let params = CertificateRevocationListParams {
            this_update: to_offset(this_update)?,
            next_update: to_offset(next_update)?,
            crl_number: SerialNumber::from_slice(&number_bytes[start..]),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::PreSpecified(key_id(self.key.public())),
        };
        let crl = params.signed_by(&self.issuer()?)?;
        Ok(crl.der().to_vec())
    }

    fn issuer(&self) -> Result<Issuer<'static, Signer<'k>>, CaError> {
        Ok(Issuer::new(
            ca_params(&self.cert.domain, self.key.public())?,
            Signer::new(self.key),
        ))
    }
}

/// The parameters of a CA certificate (also what rcgen needs to sign as
/// this CA: its name, key identifier and key usages).
fn ca_params(domain: &TrustDomain, key: &PublicKey) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, domain.as_str());
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(domain.id().try_into()?)];
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_id(key));
    Ok(params)
}

fn check_lifetime(lifetime: Duration, max: Duration) -> Result<(), CaError> {
    if lifetime.as_secs() == 0 || lifetime > max {
        return Err(CaError::Lifetime {
            got_s: lifetime.as_secs(),
            max_s: max.as_secs(),
        });
    }
    Ok(())
}

fn add(t: &Timestamp, d: Duration) -> Result<Timestamp, CaError> {
    i64::try_from(d.as_micros())
        .ok()
        .and_then(|m| t.unix_micros().checked_add(m))
        .and_then(|m| Timestamp::from_unix_micros(m).ok())
        .ok_or_else(|| CaError::Time(format!("{} plus {} s", t.as_str(), d.as_secs())))
}

pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// Size, one PEM block or DER, X.509 decode, canonical re-encoding, version 3,
/// Ed25519 in both algorithm fields, positive serial.
pub(crate) fn decode_cert(input: &[u8]) -> Result<(Certificate, Vec<u8>), CertError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(CertError::TooLarge(input.len()));
    }
    let pems = input
        .windows(b"-----BEGIN ".len())
        .filter(|w| w == b"-----BEGIN ")
        .count();
    if pems > 1 {
        return Err(CertError::Count(pems));
    }
    let der = der_bytes(input, "CERTIFICATE").map_err(CertError::Encoding)?;
    let cert = Certificate::from_der(&der).map_err(CertError::Encoding)?;
    if cert.to_der().map_err(CertError::Encoding)? != der {
        return Err(CertError::NotCanonical);
    }
    let tbs = cert.tbs_certificate();
    if tbs.version() != x509_cert::Version::V3 {
        return Err(CertError::Version);
    }
    if !is_ed25519(cert.signature_algorithm()) {
        return Err(CertError::Algorithm(alg_name(cert.signature_algorithm())));
    }
    if tbs.signature() != cert.signature_algorithm() {
        return Err(CertError::Algorithm(
            "differs between the certificate and its signed part".into(),
        ));
    }
    if Serial::from_der_bytes(tbs.serial_number().as_bytes()).is_none() {
        return Err(CertError::Serial);
    }
    Ok((cert, der))
}

/// The certificate's Ed25519 subject key.
pub(crate) fn cert_key(cert: &Certificate) -> Result<PublicKey, CertError> {
    ed25519_key(cert.tbs_certificate().subject_public_key_info()).map_err(|p| match p {
        KeyProblem::Algorithm(a) => CertError::KeyAlgorithm(a),
        KeyProblem::Key(e) => CertError::Key(e),
    })
}

/// The signature over the TBS part (canonical, so the bytes re-encoded are
/// the bytes signed) verifies under `key`.
pub(crate) fn check_signature(cert: &Certificate, key: &PublicKey) -> Result<(), CertError> {
    let subject = || cert.tbs_certificate().subject().to_string();
    let tbs = cert
        .tbs_certificate()
        .to_der()
        .map_err(CertError::Encoding)?;
    if crate::x509::verify(key, &tbs, cert.signature()) {
        Ok(())
    } else {
        Err(CertError::BadSignature { subject: subject() })
    }
}

pub(crate) fn ext_err((oid, problem): (String, &'static str)) -> CertError {
    CertError::Extension { oid, problem }
}

/// The one URI of the subjectAltName, which must hold exactly one entry.
pub(crate) fn single_uri(cert: &Certificate) -> Result<String, CertError> {
    let san = match cert.tbs_certificate().get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san,
        Ok(None) => return Err(CertError::SpiffeId("no subjectAltName".into())),
        Err(_) => return Err(CertError::SpiffeId("subjectAltName unreadable".into())),
    };
    match san.0.as_slice() {
        [GeneralName::UniformResourceIdentifier(uri)] => Ok(uri.as_str().to_owned()),
        [_] => Err(CertError::SpiffeId(
            "the subjectAltName entry is not a URI".into(),
        )),
        many => Err(CertError::SpiffeId(format!(
            "subjectAltName has {} entries; exactly one URI SAN is allowed",
            many.len()
        ))),
    }
}

/// notBefore and notAfter in seconds since the epoch.
pub(crate) fn validity(cert: &Certificate) -> (i64, i64) {
    let v = cert.tbs_certificate().validity();
    let s = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    (s(v.not_before), s(v.not_after))
}

pub(crate) fn check_validity(
    subject: &str,
    not_before: i64,
    not_after: i64,
    now: &Timestamp,
) -> Result<(), CertError> {
    let at = secs(now);
    if at < not_before {
        return Err(CertError::NotYetValid {
            subject: subject.to_owned(),
            not_before: time_text(not_before),
            now: now.as_str().to_owned(),
        });
    }
    if at > not_after {
        return Err(CertError::Expired {
            subject: subject.to_owned(),
            not_after: time_text(not_after),
            now: now.as_str().to_owned(),
        });
    }
    Ok(())
}
