//! Token verification: the TSTInfo, the signed attributes, the signer and
//! its certificate, in the order of the crate documentation.

use std::fmt;
use std::time::Duration;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5911;
use der::asn1::OctetString;
use der::{Any, Decode, Encode};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};

use crate::asn1::{
    IssuerSerial, SigningCertificate, SigningCertificateV2, TstInfo, der_children, oid_name,
    oid_text, parse_gen_time,
};
use crate::request::{check_size, parse_response};
use crate::signature::{verify_cert_signature, verify_cms_signature};
use crate::x509::{Trust, build_chain, check_tsa_name, check_tsa_usage, check_valid_at};
use crate::{HashAlg, ID_CT_TST_INFO, Imprint, MAX_EMBEDDED, Nonce, TspError, malformed};

/// A token's time, as the TSA wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenTime {
    /// Since the Unix epoch.
    pub since_epoch: Duration,
    /// RFC 3339, UTC, with the fraction the TSA gave (`2026-11-24T10:15:02.123Z`).
    pub rfc3339: String,
}

impl fmt::Display for GenTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339)
    }
}

/// Whether the TSA certificate was chained to a trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainStatus {
    /// Chained to the anchor with this subject.
    Anchored {
        /// The anchor's subject.
        anchor: String,
        /// Certificates in the chain, TSA first, anchor last.
        length: usize,
    },
    /// No anchor was given: everything else was checked, but who the TSA
    /// is was not.
    NotChecked,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenReport {
    /// When the TSA time-stamped the imprint.
    pub gen_time: GenTime,
    /// The TSA certificate's subject (`CN=…,O=…`).
    pub tsa_subject: String,
    /// The token's serial number, hex.
    pub serial: String,
    /// The TSA policy OID under which it was issued.
    pub policy: String,
    /// The imprint's hash algorithm.
    pub hash_alg: HashAlg,
    /// The nonce in the token, if any.
    pub nonce: Option<Nonce>,
    /// The TSA's accuracy claim in microseconds, if given.
    pub accuracy_micros: Option<u64>,
    /// Whether the TSA was chained to an anchor.
    pub chain: ChainStatus,
}

/// Verifies a DER TimeStampToken offline (see the module documentation for
/// every check, in order). `nonce`: the one sent, when this token answers a
/// request of ours. `trust`: `None` checks everything that needs no anchor
/// and reports [`ChainStatus::NotChecked`].
pub fn verify_token(
    token: &[u8],
    expected: &Imprint,
    nonce: Option<&Nonce>,
    trust: Option<&Trust>,
) -> Result<TokenReport, TspError> {
    check_size("time-stamp token", token)?;
    let ci = ContentInfo::from_der(token).map_err(malformed("TimeStampToken (CMS ContentInfo)"))?;
    if ci.content_type != rfc5911::ID_SIGNED_DATA {
        return Err(TspError::NotToken(format!(
            "CMS content type is {}, not id-signedData",
            oid_name(&ci.content_type)
        )));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(malformed("CMS SignedData"))?;
    if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(TspError::NotToken(format!(
            "encapsulated content type is {}, not id-ct-TSTInfo",
            oid_name(&sd.encap_content_info.econtent_type)
        )));
    }
    if sd.version != cms::content_info::CmsVersion::V3 {
        return Err(TspError::NotToken(format!(
            "SignedData version {}, expected 3 for id-ct-TSTInfo",
            sd.version as u8
        )));
    }
    let tst_bytes: OctetString = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| TspError::NotToken("no encapsulated TSTInfo".into()))?
        .decode_as()
        .map_err(malformed("encapsulated TSTInfo"))?;
    let tst = TstInfo::from_der(tst_bytes.as_bytes()).map_err(malformed("TSTInfo"))?;
    if tst.version != 1 {
        return Err(TspError::NotToken(format!(
            "TSTInfo version {}, expected 1",
            tst.version
        )));
    }
    let gen_time = parse_gen_time(&tst.gen_time)?;
    // No TSTInfo extension is understood here; a critical one changes the
    // meaning of the token in a way this verifier cannot honour.
    if let Some(e) = tst.extensions.iter().flatten().find(|e| e.critical) {
        return Err(TspError::Unsupported(format!(
            "critical TSTInfo extension {} (a token whose critical extension is not understood is refused)",
            oid_name(&e.extn_id)
        )));
    }

    // 2. What was stamped, and for whom.
    let token_alg = &tst.message_imprint.hash_algorithm.oid;
    if *token_alg != expected.alg.oid() {
        return Err(TspError::ImprintAlgorithm {
            token: HashAlg::from_oid(token_alg)
                .map_or_else(|| oid_name(token_alg), |a| a.name().into()),
            expected: expected.alg.name().into(),
        });
    }
    let token_digest = tst.message_imprint.hashed_message.as_bytes();
    if token_digest != expected.digest.as_slice() {
        return Err(TspError::ImprintMismatch {
            token: hex::encode(token_digest),
            expected: hex::encode(&expected.digest),
        });
    }
    let token_nonce = tst.nonce.as_ref().map(|n| Nonce::from_be(n.as_bytes()));
    if let Some(want) = nonce {
        match &token_nonce {
            None => return Err(TspError::NonceMismatch("the token has no nonce".into())),
            Some(got) if got != want => {
                return Err(TspError::NonceMismatch(format!(
                    "the token's nonce is {}, the request's was {}",
                    got.to_hex(),
                    want.to_hex()
                )));
            }
            Some(_) => {}
        }
    }

    // 3. The one signer and its signed attributes.
    let signers: Vec<&SignerInfo> = sd.signer_infos.0.iter().collect();
    let [signer] = signers.as_slice() else {
        return Err(TspError::NotToken(format!(
            "{} signers, a time-stamp token has exactly one",
            signers.len()
        )));
    };
    let digest_alg = HashAlg::from_oid(&signer.digest_alg.oid).ok_or_else(|| {
        TspError::Unsupported(format!(
            "CMS digest algorithm {}",
            oid_name(&signer.digest_alg.oid)
        ))
    })?;
    // digestAlgorithms is outside the signature; require it to say exactly
    // what the signer used so no byte of the token goes unchecked.
    let listed: Vec<&AlgorithmIdentifierOwned> = sd.digest_algorithms.iter().collect();
    if listed.len() != 1 || *listed[0] != signer.digest_alg {
        return Err(TspError::NotToken(
            "SignedData digestAlgorithms does not list exactly the signer's digest algorithm"
                .into(),
        ));
    }
    // RFC 5652 §5.3: the version follows the signer identifier's form; it
    // is unsigned, so it must have its one valid value.
    let want_version = match signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(_) => cms::content_info::CmsVersion::V1,
        SignerIdentifier::SubjectKeyIdentifier(_) => cms::content_info::CmsVersion::V3,
    };
    if signer.version != want_version {
        return Err(TspError::NotToken(format!(
            "SignerInfo version {} does not fit its signer identifier",
            signer.version as u8
        )));
    }
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| TspError::SignedAttributes("absent (RFC 3161 requires them)".into()))?;
    let content_type: ObjectIdentifier =
        single_attr(attrs, rfc5911::ID_CONTENT_TYPE, "content-type")?;
    if content_type != ID_CT_TST_INFO {
        return Err(TspError::SignedAttributes(format!(
            "content-type is {}, not id-ct-TSTInfo",
            oid_name(&content_type)
        )));
    }
    let md: OctetString = single_attr(attrs, rfc5911::ID_MESSAGE_DIGEST, "message-digest")?;
    if md.as_bytes() != digest_alg.digest(tst_bytes.as_bytes()).as_slice() {
        return Err(TspError::SignedAttributes(
            "message-digest does not match the TSTInfo (the time-stamp content was changed)".into(),
        ));
    }

    // The certificate pool: embedded first, then the caller's.
    // The decoder sorts SET OF members, so the order of the (unsigned)
    // certificate set is not checked: PKCS#7 writers such as `openssl ts`
    // keep the signer's certificate first instead of sorting, and the order
    // carries no meaning.
    let mut embedded = Vec::new();
    if let Some(set) = &sd.certificates {
        for c in set.0.iter() {
            match c {
                CertificateChoices::Certificate(c) => embedded.push(c.clone()),
                CertificateChoices::Other(_) => {
                    return Err(TspError::Unsupported(
                        "non-X.509 certificate format in the token".into(),
                    ));
                }
            }
        }
    }
    if embedded.len() > MAX_EMBEDDED {
        return Err(TspError::NotToken(format!(
            "more than {MAX_EMBEDDED} embedded certificates"
        )));
    }
    let empty = Trust::default();
    let t = trust.unwrap_or(&empty);
    let pool: Vec<&Certificate> = embedded
        .iter()
        .chain(t.intermediates.iter())
        .chain(t.anchors.iter())
        .collect();
    let tsa = pool
        .iter()
        .copied()
        .find(|c| signer_matches(&signer.sid, c))
        .ok_or(TspError::SignerNotFound)?;
    let tsa_der = tsa.to_der().map_err(malformed("TSA certificate"))?;
    check_signing_certificate(attrs, tsa, &tsa_der)?;

    // 4. The signature itself, over the signed attributes exactly as
    // received (the decoder sorts SET OF members, so re-encoding `attrs`
    // would hide a reordering and refuse a signer that did not sort).
    let signed = raw_signed_attrs(&ci.content)?;
    let reparsed =
        x509_cert::attr::Attributes::from_der(&signed).map_err(malformed("signed attributes"))?;
    if reparsed != *attrs {
        return Err(TspError::Malformed {
            what: "signed attributes",
            reason: "the raw signed attributes differ from the decoded ones".into(),
        });
    }
    verify_cms_signature(
        tsa,
        &signer.signature_algorithm,
        digest_alg,
        &signed,
        signer.signature.as_bytes(),
    )?;

    // 5. The TSA certificate may sign time-stamps, and did so in time.
    let tsa_subject = tsa.tbs_certificate().subject().to_string();
    check_tsa_usage(tsa, &tsa_subject)?;
    check_tsa_name(tst.tsa.as_ref(), tsa, &tsa_subject)?;
    check_valid_at(tsa, &gen_time)?;

    // 6. Who the TSA is.
    let chain = match trust {
        Some(t) if !t.anchors.is_empty() => {
            let (anchor, path) = build_chain(tsa, &pool, t, &gen_time)?;
            let length = path.len();
            for (i, c) in embedded.iter().enumerate() {
                // Certificates on the path were verified by signature, and
                // copies of an anchor are the anchor: nothing left to check.
                if path.contains(&c) || t.anchors.contains(c) {
                    continue;
                }
                let ok = pool.iter().any(|issuer| {
                    issuer.tbs_certificate().subject() == c.tbs_certificate().issuer()
                        && verify_cert_signature(c, issuer).is_ok()
                });
                if !ok {
                    return Err(TspError::Chain(format!(
                        "certificate {} embedded in the token ({}) does not verify under any known certificate (changed, or its issuer is missing)",
                        i + 1,
                        c.tbs_certificate().subject()
                    )));
                }
            }
            ChainStatus::Anchored { anchor, length }
        }
        Some(_) => return Err(TspError::Anchors("no trust anchor given".into())),
        None => ChainStatus::NotChecked,
    };

    let accuracy_micros = tst.accuracy.as_ref().map(|a| {
        a.seconds
            .unwrap_or(0)
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(a.millis.unwrap_or(0)) * 1000)
            .saturating_add(u64::from(a.micros.unwrap_or(0)))
    });
    Ok(TokenReport {
        gen_time,
        tsa_subject,
        serial: hex::encode(tst.serial_number.as_bytes()),
        policy: oid_text(&tst.policy)?,
        hash_alg: expected.alg,
        nonce: token_nonce,
        accuracy_micros,
        chain,
    })
}

/// Verifies a reply to a request of ours: granted status, then the token
/// with the request's imprint and nonce. Returns the token's DER and its
/// report.
pub fn verify_response(
    reply: &[u8],
    expected: &Imprint,
    nonce: &Nonce,
    trust: Option<&Trust>,
) -> Result<(Vec<u8>, TokenReport), TspError> {
    let token = parse_response(reply)?;
    let report = verify_token(&token, expected, Some(nonce), trust)?;
    Ok((token, report))
}

/// The one signer's signedAttrs exactly as received, with the [0] IMPLICIT
/// tag replaced by the SET OF tag, which is what the signature covers
/// (RFC 5652 §5.4). `signed_data` is the ContentInfo's content.
pub(crate) fn raw_signed_attrs(signed_data: &Any) -> Result<Vec<u8>, TspError> {
    let bad = || TspError::Malformed {
        what: "CMS SignedData",
        reason: "cannot locate the signed attributes".into(),
    };
    let sd = der_children(signed_data.value()).ok_or_else(bad)?;
    // The last field of SignedData is signerInfos, a SET OF one SignerInfo.
    let infos = sd.last().filter(|e| e.tag == 0x31).ok_or_else(bad)?;
    let infos = der_children(infos.value).ok_or_else(bad)?;
    let [info] = infos.as_slice() else {
        return Err(bad());
    };
    // version, sid, digestAlgorithm, [0] signedAttrs, ...
    let fields = der_children(info.value).ok_or_else(bad)?;
    let attrs = fields.get(3).filter(|e| e.tag == 0xa0).ok_or_else(bad)?;
    let mut out = attrs.whole.to_vec();
    out[0] = 0x31;
    Ok(out)
}

/// The one value of the one attribute `oid`, decoded as `T`.
pub(crate) fn single_attr<T>(
    attrs: &x509_cert::attr::Attributes,
    oid: ObjectIdentifier,
    name: &str,
) -> Result<T, TspError>
where
    T: for<'a> Decode<'a>,
{
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let (Some(attr), None) = (found.next(), found.next()) else {
        return Err(TspError::SignedAttributes(format!(
            "{name} must appear exactly once"
        )));
    };
    let values: Vec<&Any> = attr.values.iter().collect();
    let [value] = values.as_slice() else {
        return Err(TspError::SignedAttributes(format!(
            "{name} must have exactly one value"
        )));
    };
    let der = value
        .to_der()
        .map_err(|e| TspError::SignedAttributes(format!("{name}: {e}")))?;
    T::from_der(&der).map_err(|_| TspError::SignedAttributes(format!("{name}: malformed value")))
}

pub(crate) fn signer_matches(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    let tbs = cert.tbs_certificate();
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            isn.issuer == *tbs.issuer() && isn.serial_number == *tbs.serial_number()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            matches!(tbs.get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>(),
                Ok(Some((_, own))) if own == *ski)
        }
    }
}

/// RFC 5035 / RFC 2634: the first ESSCertID(v2) must be the signer's; when
/// both attributes are present, both must say so.
pub(crate) fn check_signing_certificate(
    attrs: &x509_cert::attr::Attributes,
    tsa: &Certificate,
    tsa_der: &[u8],
) -> Result<(), TspError> {
    let has = |oid| attrs.iter().any(|a| a.oid == oid);
    let bad = |m: String| TspError::SigningCertificate(m);
    let (v1, v2) = (
        has(rfc5911::ID_AA_SIGNING_CERTIFICATE),
        has(rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2),
    );
    if !v1 && !v2 {
        return Err(bad(
            "absent: neither signing-certificate nor signing-certificate-v2 is signed (RFC 3161 §2.4.2)"
                .into(),
        ));
    }
    if v2 {
        let v2: SigningCertificateV2 = single_attr(
            attrs,
            rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2,
            "signing-certificate-v2",
        )?;
        let first = v2
            .certs
            .into_iter()
            .next()
            .ok_or_else(|| bad("no ESSCertIDv2".into()))?;
        let alg = match &first.hash_algorithm {
            None => HashAlg::Sha256,
            Some(a) => HashAlg::from_oid(&a.oid).ok_or_else(|| {
                TspError::Unsupported(format!("ESSCertIDv2 hash {}", oid_name(&a.oid)))
            })?,
        };
        check_ess_cert_id(
            "signing-certificate-v2",
            first.cert_hash.as_bytes(),
            &alg.digest(tsa_der),
            first.issuer_serial,
            tsa,
        )?;
    }
    if v1 {
        let v1: SigningCertificate = single_attr(
            attrs,
            rfc5911::ID_AA_SIGNING_CERTIFICATE,
            "signing-certificate",
        )?;
        let first = v1
            .certs
            .into_iter()
            .next()
            .ok_or_else(|| bad("no ESSCertID".into()))?;
        check_ess_cert_id(
            "signing-certificate",
            first.cert_hash.as_bytes(),
            &sha1::Sha1::digest(tsa_der),
            first.issuer_serial,
            tsa,
        )?;
    }
    Ok(())
}

/// One ESSCertID(v2): its hash, and its issuer and serial when given, name
/// the certificate that signed.
pub(crate) fn check_ess_cert_id(
    name: &str,
    hash: &[u8],
    expect: &[u8],
    issuer_serial: Option<IssuerSerial>,
    tsa: &Certificate,
) -> Result<(), TspError> {
    let tbs = tsa.tbs_certificate();
    if hash != expect {
        return Err(TspError::SigningCertificate(format!(
            "the certificate hash in {name} does not match the certificate that signed ({}); the token binds another TSA certificate",
            tbs.subject()
        )));
    }
    if let Some(is) = issuer_serial {
        let names_issuer = is
            .issuer
            .iter()
            .any(|g| matches!(g, GeneralName::DirectoryName(n) if n == tbs.issuer()));
        if !names_issuer || is.serial_number != *tbs.serial_number() {
            return Err(TspError::SigningCertificate(format!(
                "the issuer and serial number in {name} do not name the certificate that signed"
            )));
        }
    }
    Ok(())
}
