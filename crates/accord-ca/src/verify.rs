//! Offline verification: an agent certificate against the CA certificate
//! (and a CRL) at a given time, and CRLs against the CA.

use std::collections::HashMap;

use accord_core::{AgentId, PublicKey, Timestamp};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280;
use der::{Decode, Encode};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};

use crate::ca::{
    CaCertificate, cert_key, check_signature, check_validity, decode_cert, ext_err, single_uri,
    validity,
};
use crate::error::{CertError, CrlError};
use crate::name::{TrustDomain, parse_agent_id};
use crate::serial::{Reason, Serial};
use crate::sign::{secs, time_text};
use crate::x509::{alg_name, check_extensions, der_bytes, is_ed25519, verify};
use crate::{MAX_CRL_ENTRIES, MAX_INPUT_BYTES};

/// A revoked certificate: its serial, when, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The serial.
    pub serial: Serial,
    /// When it was revoked (whole seconds in a CRL).
    pub at: Timestamp,
    /// Why.
    pub reason: Reason,
}

/// What a verified agent certificate certifies.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedCertificate {
    /// The agent.
    pub agent_id: AgentId,
    /// Its Ed25519 identity key (which derives `agent_id`).
    pub public_key: PublicKey,
    /// Its SPIFFE ID.
    pub spiffe_id: String,
    /// The trust domain.
    pub trust_domain: TrustDomain,
    /// The serial.
    pub serial: Serial,
    /// notBefore.
    pub not_before: Timestamp,
    /// notAfter.
    pub not_after: Timestamp,
}

/// Verifies an agent certificate (PEM or DER) against the CA certificate at
/// `now`, and against `crl` when given. In this order, each failure its own
/// [`CertError`]:
///
/// 1. size, DER (canonical), X.509 v3, Ed25519 signature algorithm in both
///    fields, positive serial, an Ed25519 subject key that is valid and not
///    weak;
/// 2. issuer = the CA's subject, and the signature verifies (strict) under
///    the CA key;
/// 3. the CA certificate and the certificate both valid at `now`;
/// 4. no extension twice, no unknown critical extension; basicConstraints
///    present with CA:FALSE; keyUsage present with digitalSignature and
///    neither keyCertSign nor cRLSign; extendedKeyUsage with serverAuth and
///    clientAuth;
/// 5. exactly one subjectAltName entry, a URI
///    `spiffe://<trust-domain>/agent/<agent_id>` in the CA's trust domain,
///    whose agent_id is the one the subject key derives;
/// 6. with a CRL (already checked by [`Crl::parse`] against the same CA):
///    the serial is not listed.
pub fn verify_certificate(
    input: &[u8],
    ca: &CaCertificate,
    crl: Option<&Crl>,
    now: &Timestamp,
) -> Result<VerifiedCertificate, CertError> {
    let (cert, _der) = decode_cert(input)?;
    let tbs = cert.tbs_certificate();
    let key = cert_key(&cert)?;
    let subject = tbs.subject().to_string();
    if tbs.issuer() != ca.cert.tbs_certificate().subject() {
        return Err(CertError::UnknownIssuer {
            issuer: tbs.issuer().to_string(),
            ca: ca.subject(),
        });
    }
    check_signature(&cert, &ca.key)?;
    ca.check_valid_at(now)?;
    let (not_before, not_after) = validity(&cert);
    check_validity(&subject, not_before, not_after, now)?;
    check_extensions(
        tbs.extensions(),
        &[
            rfc5280::ID_CE_BASIC_CONSTRAINTS,
            rfc5280::ID_CE_KEY_USAGE,
            rfc5280::ID_CE_EXT_KEY_USAGE,
            rfc5280::ID_CE_SUBJECT_ALT_NAME,
            rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
        ],
    )
    .map_err(ext_err)?;
    match tbs.get_extension::<BasicConstraints>() {
        Ok(Some((_, bc))) if !bc.ca => {}
        Ok(Some(_)) => {
            return Err(CertError::BasicConstraints(
                "CA:TRUE on an agent certificate",
            ));
        }
        Ok(None) => {
            return Err(CertError::BasicConstraints(
                "missing (an X.509-SVID states CA:FALSE)",
            ));
        }
        Err(_) => return Err(CertError::BasicConstraints("unreadable")),
    }
    match tbs.get_extension::<KeyUsage>() {
        Ok(Some((_, ku))) if ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign() => {}
        Ok(Some(_)) => {
            return Err(CertError::KeyUsage(
                "an agent certificate has digitalSignature and neither keyCertSign nor cRLSign",
            ));
        }
        Ok(None) => return Err(CertError::KeyUsage("missing")),
        Err(_) => return Err(CertError::KeyUsage("unreadable")),
    }
    match tbs.get_extension::<ExtendedKeyUsage>() {
        Ok(Some((_, eku)))
            if eku.0.contains(&rfc5280::ID_KP_SERVER_AUTH)
                && eku.0.contains(&rfc5280::ID_KP_CLIENT_AUTH) => {}
        Ok(Some(_)) => {
            return Err(CertError::ExtendedKeyUsage(
                "serverAuth and clientAuth are both required",
            ));
        }
        Ok(None) => return Err(CertError::ExtendedKeyUsage("missing")),
        Err(_) => return Err(CertError::ExtendedKeyUsage("unreadable")),
    }
    let uri = single_uri(&cert)?;
    let (domain, named) = parse_agent_id(&uri)?;
    if domain != *ca.trust_domain() {
        return Err(CertError::TrustDomainMismatch {
            found: domain.to_string(),
            expected: ca.trust_domain().to_string(),
        });
    }
    let derived = key.agent_id();
    if named != derived {
        return Err(CertError::AgentKeyMismatch {
            named: named.to_string(),
            derived: derived.to_string(),
        });
    }
    let serial = Serial::from_der_bytes(tbs.serial_number().as_bytes()).ok_or(CertError::Serial)?;
    if let Some(crl) = crl {
        if crl.issuer_key != ca.key {
            return Err(CertError::CrlFromAnotherCa);
        }
        if let Some(r) = crl.find(&serial) {
            return Err(CertError::Revoked {
                serial: serial.to_hex(),
                at: r.at.as_str().to_owned(),
                reason: r.reason,
            });
        }
    }
    let ts = |s: i64| to_timestamp(s).ok_or_else(|| CertError::Encoding(der_time_error()));
    Ok(VerifiedCertificate {
        agent_id: derived,
        public_key: key,
        spiffe_id: uri,
        trust_domain: domain,
        serial,
        not_before: ts(not_before)?,
        not_after: ts(not_after)?,
    })
}

/// A CRL that verified under a CA at a given time.
#[derive(Debug, Clone)]
pub struct Crl {
    issuer_key: PublicKey,
    this_update: Timestamp,
    next_update: Timestamp,
    entries: Vec<Revoked>,
    /// Serial → index in `entries` (the first entry, if a CRL lists one twice).
    index: HashMap<Serial, usize>,
}

const CRL_EXTENSIONS: [ObjectIdentifier; 2] = [
    rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
    rfc5280::ID_CE_CRL_NUMBER,
];
const ENTRY_EXTENSIONS: [ObjectIdentifier; 2] =
    [rfc5280::ID_CE_CRL_REASONS, rfc5280::ID_CE_INVALIDITY_DATE];

impl Crl {
    /// Parses and checks a CRL (DER or PEM `X509 CRL`) against the CA at
    /// `now`: size, canonical DER, version 2, Ed25519 in both algorithm
    /// fields, issuer = the CA's subject, signature (strict) under the CA
    /// key, thisUpdate not in the future, nextUpdate present and not passed
    /// (a stale CRL is refused: it may miss revocations), at most
    /// [`MAX_CRL_ENTRIES`] entries with positive serials, no extension twice
    /// and no unknown critical one (on the CRL or an entry).
    pub fn parse(input: &[u8], ca: &CaCertificate, now: &Timestamp) -> Result<Self, CrlError> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(CrlError::TooLarge(input.len()));
        }
        let der = der_bytes(input, "X509 CRL").map_err(CrlError::Encoding)?;
        let crl = <CertificateList>::from_der(&der).map_err(CrlError::Encoding)?;
        if crl.to_der().map_err(CrlError::Encoding)? != der {
            return Err(CrlError::NotCanonical);
        }
        let tbs = &crl.tbs_cert_list;
        if tbs.version != x509_cert::Version::V2 {
            return Err(CrlError::Version);
        }
        if !is_ed25519(&crl.signature_algorithm) {
            return Err(CrlError::Algorithm(alg_name(&crl.signature_algorithm)));
        }
        if tbs.signature != crl.signature_algorithm {
            return Err(CrlError::Algorithm(
                "differs between the CRL and its signed part".into(),
            ));
        }
        if tbs.issuer != *ca.cert.tbs_certificate().subject() {
            return Err(CrlError::UnknownIssuer {
                issuer: tbs.issuer.to_string(),
                ca: ca.subject(),
            });
        }
        let signed = tbs.to_der().map_err(CrlError::Encoding)?;
        if !verify(&ca.key, &signed, &crl.signature) {
            return Err(CrlError::BadSignature);
        }
        let s = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        let this_update = s(tbs.this_update);
        let next_update = tbs.next_update.map(s).ok_or(CrlError::NoNextUpdate)?;
        let at = secs(now);
        if this_update > at + crate::FUTURE_SKEW.as_secs() as i64 {
            return Err(CrlError::NotYetValid {
                this_update: time_text(this_update),
                now: now.as_str().to_owned(),
            });
        }
        if at > next_update {
            return Err(CrlError::Stale {
                next_update: time_text(next_update),
                now: now.as_str().to_owned(),
            });
        }
        let ext_err = |(oid, problem): (String, &'static str)| CrlError::Extension { oid, problem };
        check_extensions(tbs.crl_extensions.as_ref(), &CRL_EXTENSIONS).map_err(ext_err)?;
        let listed = tbs.revoked_certificates.as_deref().unwrap_or(&[]);
        if listed.len() > MAX_CRL_ENTRIES {
            return Err(CrlError::TooManyEntries(MAX_CRL_ENTRIES));
        }
        let mut entries = Vec::with_capacity(listed.len());
        for r in listed {
            check_extensions(r.crl_entry_extensions.as_ref(), &ENTRY_EXTENSIONS)
                .map_err(ext_err)?;
            let serial = Serial::from_der_bytes(r.serial_number.as_bytes()).ok_or_else(|| {
                CrlError::Extension {
                    oid: "userCertificate".into(),
                    problem: "serial is not a positive integer",
                }
            })?;
            let mut reason = Reason::Unspecified;
            for e in r.crl_entry_extensions.iter().flatten() {
                if e.extn_id == rfc5280::ID_CE_CRL_REASONS {
                    let code = CrlReason::from_der(e.extn_value.as_bytes()).map_err(|_| {
                        CrlError::Extension {
                            oid: "reasonCode".into(),
                            problem: "unreadable",
                        }
                    })?;
                    reason = Reason::from_x509(code);
                }
            }
            let at = to_timestamp(s(r.revocation_date))
                .ok_or_else(|| CrlError::Encoding(der_time_error()))?;
            entries.push(Revoked { serial, at, reason });
        }
        let ts = |v: i64| to_timestamp(v).ok_or_else(|| CrlError::Encoding(der_time_error()));
        let mut index = HashMap::with_capacity(entries.len());
        for (i, r) in entries.iter().enumerate() {
            index.entry(r.serial.clone()).or_insert(i);
        }
        Ok(Crl {
            issuer_key: ca.key,
            this_update: ts(this_update)?,
            next_update: ts(next_update)?,
            entries,
            index,
        })
    }

    /// thisUpdate.
    pub fn this_update(&self) -> &Timestamp {
        &self.this_update
    }

    /// nextUpdate.
    pub fn next_update(&self) -> &Timestamp {
        &self.next_update
    }

    /// The revoked certificates.
    pub fn entries(&self) -> &[Revoked] {
        &self.entries
    }

    /// The entry for a serial, if revoked.
    pub fn find(&self, serial: &Serial) -> Option<&Revoked> {
        self.index.get(serial).and_then(|&i| self.entries.get(i))
    }
}

/// An X.509 time (seconds) as an Accord timestamp; `None` outside the
/// years 1-9999 (which X.509 times cannot leave).
fn to_timestamp(secs: i64) -> Option<Timestamp> {
    secs.checked_mul(1_000_000)
        .and_then(|m| Timestamp::from_unix_micros(m).ok())
}

fn der_time_error() -> der::Error {
    der::ErrorKind::DateTime.into()
}
