//! X.509: the caller's trust anchors and intermediates, the checks on the
//! TSA certificate, validity at genTime, and path building to an anchor.

use std::time::Duration;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280;
use der::Decode;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName};

use crate::asn1::oid_name;
use crate::signature::verify_cert_signature;
use crate::token::GenTime;
use crate::{MAX_CERTS, MAX_CHAIN, MAX_TOKEN_BYTES, TspError};

/// Certificates the caller trusts (anchors) and may use to build a chain
/// (intermediates).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub(crate) anchors: Vec<Certificate>,
    pub(crate) intermediates: Vec<Certificate>,
}

impl Trust {
    /// Anchors from PEM (one or more certificates) or one DER certificate.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, TspError> {
        let anchors = parse_certs(bytes)?;
        Ok(Trust {
            anchors,
            intermediates: Vec::new(),
        })
    }

    /// Adds anchors from PEM or DER.
    pub fn add_anchors(&mut self, bytes: &[u8]) -> Result<(), TspError> {
        self.anchors.extend(parse_certs(bytes)?);
        self.check_count()
    }

    /// Adds untrusted intermediate certificates from PEM or DER, used only
    /// to build a chain.
    pub fn add_intermediates(&mut self, bytes: &[u8]) -> Result<(), TspError> {
        self.intermediates.extend(parse_certs(bytes)?);
        self.check_count()
    }

    /// How many anchors.
    pub fn anchor_count(&self) -> usize {
        self.anchors.len()
    }

    fn check_count(&self) -> Result<(), TspError> {
        if self.anchors.len() + self.intermediates.len() > MAX_CERTS {
            return Err(TspError::Anchors(format!(
                "more than {MAX_CERTS} certificates"
            )));
        }
        Ok(())
    }
}

pub(crate) fn parse_certs(bytes: &[u8]) -> Result<Vec<Certificate>, TspError> {
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(TspError::Anchors(format!(
            "{} bytes, more than {MAX_TOKEN_BYTES}",
            bytes.len()
        )));
    }
    let certs =
        if bytes.starts_with(b"-----BEGIN") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            Certificate::load_pem_chain(bytes)
                .map_err(|e| TspError::Anchors(format!("not a PEM certificate file: {e}")))?
        } else {
            vec![Certificate::from_der(bytes).map_err(|e| {
                TspError::Anchors(format!(
                    "not a DER or PEM X.509 certificate: {e} (give the TSA's CA certificate)"
                ))
            })?]
        };
    if certs.is_empty() {
        return Err(TspError::Anchors("no certificate in the file".into()));
    }
    if certs.len() > MAX_CERTS {
        return Err(TspError::Anchors(format!(
            "more than {MAX_CERTS} certificates"
        )));
    }
    Ok(certs)
}

pub(crate) fn time_string(d: Duration) -> String {
    i64::try_from(d.as_secs())
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|| format!("{}s after 1970", d.as_secs()))
}

pub(crate) fn check_valid_at(cert: &Certificate, at: &GenTime) -> Result<(), TspError> {
    let v = cert.tbs_certificate().validity();
    let (nb, na) = (
        v.not_before.to_unix_duration(),
        v.not_after.to_unix_duration(),
    );
    if at.since_epoch < nb || at.since_epoch > na {
        return Err(TspError::NotValidAtGenTime {
            subject: cert.tbs_certificate().subject().to_string(),
            gen_time: at.rfc3339.clone(),
            not_before: time_string(nb),
            not_after: time_string(na),
        });
    }
    Ok(())
}

/// Extensions this verifier understands; any other critical one makes the
/// certificate unusable, and so does any extension present twice (RFC 5280
/// §4.2: "a certificate MUST NOT include more than one instance of a
/// particular extension").
pub(crate) fn check_critical(cert: &Certificate) -> Result<(), String> {
    const KNOWN: [ObjectIdentifier; 5] = [
        rfc5280::ID_CE_BASIC_CONSTRAINTS,
        rfc5280::ID_CE_KEY_USAGE,
        rfc5280::ID_CE_EXT_KEY_USAGE,
        rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
        rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
    ];
    let exts: Vec<&x509_cert::ext::Extension> = cert
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .collect();
    for (i, e) in exts.iter().enumerate() {
        if exts[..i].iter().any(|p| p.extn_id == e.extn_id) {
            return Err(format!(
                "carries extension {} more than once (RFC 5280 §4.2)",
                oid_name(&e.extn_id)
            ));
        }
        if e.critical && !KNOWN.contains(&e.extn_id) {
            return Err(format!(
                "unsupported critical extension {}",
                oid_name(&e.extn_id)
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_tsa_usage(tsa: &Certificate, subject: &str) -> Result<(), TspError> {
    let bad = |reason: String| TspError::TsaCertificate {
        subject: subject.to_owned(),
        reason,
    };
    // First, so that a duplicated extension is named as such rather than
    // reported as unreadable below.
    check_critical(tsa).map_err(bad)?;
    let tbs = tsa.tbs_certificate();
    match tbs.get_extension::<ExtendedKeyUsage>() {
        Ok(Some((critical, eku))) => {
            if !eku.0.contains(&rfc5280::ID_KP_TIME_STAMPING) {
                return Err(bad(
                    "extendedKeyUsage lacks id-kp-timeStamping: not a TSA certificate".into(),
                ));
            }
            if eku.0.len() != 1 {
                return Err(bad(
                    "extendedKeyUsage must be id-kp-timeStamping alone (RFC 3161 §2.3)".into(),
                ));
            }
            if !critical {
                return Err(bad(
                    "extendedKeyUsage timeStamping is not marked critical (RFC 3161 §2.3)".into(),
                ));
            }
        }
        Ok(None) => {
            return Err(bad(
                "no extendedKeyUsage: a TSA certificate must carry a critical id-kp-timeStamping (RFC 3161 §2.3)".into(),
            ));
        }
        Err(e) => return Err(bad(format!("extendedKeyUsage unreadable: {e}"))),
    }
    match tbs.get_extension::<KeyUsage>() {
        Ok(Some((_, ku))) if !(ku.digital_signature() || ku.non_repudiation()) => Err(bad(
            "keyUsage allows neither digitalSignature nor nonRepudiation".into(),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(bad(format!("keyUsage unreadable: {e}"))),
    }
}

/// RFC 3161 §2.4.2: the TSTInfo `tsa` field, when present, names the
/// certificate that verifies the token: its subject (as a directoryName,
/// compared exactly) or one of its subjectAltName entries.
pub(crate) fn check_tsa_name(
    name: Option<&GeneralName>,
    tsa: &Certificate,
    subject: &str,
) -> Result<(), TspError> {
    let Some(name) = name else {
        return Ok(());
    };
    let bad = |reason: String| TspError::TsaCertificate {
        subject: subject.to_owned(),
        reason,
    };
    let tbs = tsa.tbs_certificate();
    if matches!(name, GeneralName::DirectoryName(n) if n == tbs.subject()) {
        return Ok(());
    }
    let san = tbs
        .get_extension::<SubjectAltName>()
        .map_err(|e| bad(format!("subjectAltName unreadable: {e}")))?;
    if san.is_some_and(|(_, san)| san.0.contains(name)) {
        return Ok(());
    }
    let named = match name {
        GeneralName::DirectoryName(n) => n.to_string(),
        GeneralName::DnsName(n) => format!("DNS:{}", n.as_str()),
        GeneralName::Rfc822Name(n) => format!("email:{}", n.as_str()),
        GeneralName::UniformResourceIdentifier(n) => format!("URI:{}", n.as_str()),
        _ => "a name of another form".into(),
    };
    Err(bad(format!(
        "the token's tsa field names {named}, which is neither this certificate's subject nor one of its subjectAltName entries (RFC 3161 §2.4.2: another TSA's name on this signature)"
    )))
}

/// Walks from the TSA certificate to an anchor; returns the anchor's
/// subject and the path, TSA certificate first, anchor last.
pub(crate) fn build_chain<'c>(
    tsa: &'c Certificate,
    pool: &[&'c Certificate],
    trust: &Trust,
    at: &GenTime,
) -> Result<(String, Vec<&'c Certificate>), TspError> {
    let is_anchor = |c: &Certificate| trust.anchors.iter().any(|a| a == c);
    let mut chain: Vec<&Certificate> = vec![tsa];
    loop {
        let cur = *chain
            .last()
            .ok_or_else(|| TspError::Chain("empty".into()))?;
        if is_anchor(cur) {
            return Ok((cur.tbs_certificate().subject().to_string(), chain));
        }
        if chain.len() >= MAX_CHAIN {
            return Err(TspError::Chain(format!(
                "no trust anchor within {MAX_CHAIN} certificates"
            )));
        }
        let subject = cur.tbs_certificate().subject().to_string();
        if cur.tbs_certificate().subject() == cur.tbs_certificate().issuer()
            && verify_cert_signature(cur, cur).is_ok()
        {
            return Err(TspError::Chain(format!(
                "the chain ends at the self-signed {subject}, which is not among the trust anchors given (an untrusted TSA, or the wrong --tsa-ca; a CA of the same name with another key is not the same CA)"
            )));
        }
        let candidates: Vec<&Certificate> = pool
            .iter()
            .copied()
            .filter(|c| {
                c.tbs_certificate().subject() == cur.tbs_certificate().issuer()
                    && !chain.contains(c)
            })
            .collect();
        if candidates.is_empty() {
            return Err(TspError::Chain(format!(
                "{subject} was issued by {}, which is not among the trust anchors given (an untrusted TSA, or the wrong --tsa-ca)",
                cur.tbs_certificate().issuer()
            )));
        }
        // Prefer an anchor when several certificates share the name.
        let mut last_err = String::new();
        let mut next = None;
        for c in candidates
            .iter()
            .filter(|c| is_anchor(c))
            .chain(candidates.iter().filter(|c| !is_anchor(c)))
        {
            match verify_cert_signature(cur, c) {
                Ok(()) => {
                    next = Some(*c);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let issuer = next.ok_or_else(|| {
            TspError::Chain(format!(
                "the signature on {subject} does not verify under its issuer {} ({last_err})",
                cur.tbs_certificate().issuer()
            ))
        })?;
        let issuer_subject = issuer.tbs_certificate().subject().to_string();
        let ca_err = |r: &str| TspError::Chain(format!("{issuer_subject} {r}"));
        check_critical(issuer).map_err(|e| ca_err(&e))?;
        match issuer.tbs_certificate().get_extension::<BasicConstraints>() {
            Ok(Some((_, bc))) if bc.ca => {
                // Certificates strictly between this issuer and the TSA
                // certificate; pathLen bounds the CAs among them.
                let below = chain.len() - 1;
                if let Some(max) = bc.path_len_constraint
                    && below > usize::from(max)
                {
                    return Err(ca_err("has a path length constraint the chain exceeds"));
                }
            }
            _ => {
                return Err(ca_err(
                    "is not a CA (basicConstraints CA:TRUE missing) and cannot issue certificates",
                ));
            }
        }
        match issuer.tbs_certificate().get_extension::<KeyUsage>() {
            Ok(Some((_, ku))) if !ku.key_cert_sign() => {
                return Err(ca_err("has keyUsage without keyCertSign"));
            }
            Ok(_) => {}
            Err(e) => return Err(ca_err(&format!("has an unreadable keyUsage ({e})"))),
        }
        check_valid_at(issuer, at)?;
        chain.push(issuer);
    }
}
