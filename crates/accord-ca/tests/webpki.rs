//! rustls' certificate verifier (webpki) accepts the agent certificates for
//! both TLS client and server authentication, and refuses one revoked on
//! the CA's CRL, one from another CA and an expired one: what the mutual
//! TLS sessions will rely on. Ed25519 signatures are checked by
//! accord-core through webpki's pluggable algorithm trait.

mod common;

use std::time::Duration;

use accord_ca::{Ca, DEFAULT_LEAF_LIFETIME, Reason, Revoked};
use common::*;
use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm,
    UnixTime, alg_id,
};
use webpki::{
    BorrowedCertRevocationList, CertRevocationList, EndEntityCert, KeyUsage, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy, anchor_from_trusted_cert,
};

#[derive(Debug)]
struct Ed25519;

impl SignatureVerificationAlgorithm for Ed25519 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key: [u8; 32] = public_key.try_into().map_err(|_| InvalidSignature)?;
        let sig: [u8; 64] = signature.try_into().map_err(|_| InvalidSignature)?;
        let key = accord_core::PublicKey::from_bytes(&key).map_err(|_| InvalidSignature)?;
        if key.verify_strict(message, &accord_core::Signature::from_bytes(&sig)) {
            Ok(())
        } else {
            Err(InvalidSignature)
        }
    }
    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }
    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }
}

fn unix(micros: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_micros(
        u64::try_from(micros).expect("after 1970"),
    ))
}

#[test]
fn webpki_accepts_agent_certificates_for_mutual_tls_and_honours_the_crl() {
    let ck = key(1);
    let ca = ca(&ck);
    let a = key(2);
    let b = key(3);
    let issued_at = at(T0 + HOUR);
    let ca_a = ca
        .issue(
            &csr(&a),
            a.agent_id(),
            &issued_at,
            DEFAULT_LEAF_LIFETIME,
            &serial(2),
        )
        .expect("a");
    let ca_b = ca
        .issue(
            &csr(&b),
            b.agent_id(),
            &issued_at,
            DEFAULT_LEAF_LIFETIME,
            &serial(3),
        )
        .expect("b");
    let ca_der = CertificateDer::from(ca.certificate().der().to_vec());
    let anchors = [anchor_from_trusted_cert(&ca_der).expect("anchor")];
    let algs: &[&dyn SignatureVerificationAlgorithm] = &[&Ed25519];
    let now = unix(T0 + 2 * HOUR);
    let check =
        |der: &[u8], usage: KeyUsage, time: UnixTime, crl: Option<&CertRevocationList<'_>>| {
            let der = CertificateDer::from(der.to_vec());
            let ee = EndEntityCert::try_from(&der).map_err(|e| format!("{e:?}"))?;
            let crls: Vec<&CertRevocationList<'_>> = crl.into_iter().collect();
            let revocation = if crls.is_empty() {
                None
            } else {
                Some(
                    RevocationOptionsBuilder::new(&crls)
                        .map_err(|e| format!("{e:?}"))?
                        .with_depth(RevocationCheckDepth::EndEntity)
                        .with_status_policy(UnknownStatusPolicy::Deny)
                        .build(),
                )
            };
            ee.verify_for_usage(algs, &anchors, &[], time, usage, revocation, None)
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        };
    for usage in [KeyUsage::client_auth(), KeyUsage::server_auth()] {
        check(&ca_a.der, usage, now, None).expect("webpki accepts the agent certificate");
    }
    // Expired, and not yet valid.
    let late = unix(T0 + 26 * HOUR);
    assert!(check(&ca_a.der, KeyUsage::client_auth(), late, None).is_err());
    assert!(check(&ca_a.der, KeyUsage::client_auth(), unix(T0), None).is_err());
    // Another CA of the same name.
    let rogue_key = key(7);
    let rogue = Ca::create(
        &rogue_key,
        &domain(),
        &at(T0),
        Duration::from_secs(86400 * 30),
        &serial(4),
    )
    .expect("rogue");
    let forged = rogue
        .issue(
            &csr(&a),
            a.agent_id(),
            &issued_at,
            DEFAULT_LEAF_LIFETIME,
            &serial(5),
        )
        .expect("forged");
    assert!(check(&forged.der, KeyUsage::client_auth(), now, None).is_err());
    // The CA's CRL: a revoked, b not.
    let crl_der = ca
        .crl(
            &issued_at,
            &at(T0 + 12 * HOUR),
            1,
            &[Revoked {
                serial: ca_a.serial.clone(),
                at: issued_at.clone(),
                reason: Reason::KeyCompromise,
            }],
        )
        .expect("crl");
    let crl: CertRevocationList<'_> = BorrowedCertRevocationList::from_der(&crl_der)
        .expect("webpki parses the CRL")
        .into();
    let err = check(&ca_a.der, KeyUsage::client_auth(), now, Some(&crl)).expect_err("revoked");
    assert!(err.contains("CertRevoked"), "{err}");
    check(&ca_b.der, KeyUsage::client_auth(), now, Some(&crl)).expect("not revoked");
}
