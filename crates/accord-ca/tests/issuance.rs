//! Issuance round trip and the attacks on certificates, CSRs and CRLs.

mod common;

use std::time::Duration;

use accord_ca::{
    Ca, CaCertificate, CaError, CertError, Crl, CrlError, Csr, CsrError, DEFAULT_LEAF_LIFETIME,
    Reason, Revoked, Serial, TrustDomain, create_csr, spiffe_id, verify_certificate,
};
use common::*;
use der::{Decode, Encode};

#[test]
fn issuance_round_trip() {
    let ck = key(1);
    let ca = ca(&ck);
    let agent = key(2);
    let csr = csr(&agent);
    assert_eq!(csr.agent_id(), *agent.agent_id());
    let issued = ca
        .issue(
            &csr,
            agent.agent_id(),
            &at(T0 + HOUR),
            DEFAULT_LEAF_LIFETIME,
            &serial(9),
        )
        .expect("issued");
    assert_eq!(issued.agent_id, *agent.agent_id());
    assert_eq!(
        issued.spiffe_id,
        format!("spiffe://{DOMAIN}/agent/{}", agent.agent_id())
    );
    assert_eq!(issued.serial, serial(9));
    assert_eq!(issued.serial.as_bytes().len(), 16);
    assert_eq!(
        issued.not_after.unix_micros() - issued.not_before.unix_micros(),
        24 * HOUR
    );
    // The CA certificate, reloaded from PEM, verifies the leaf (PEM and DER).
    let reloaded = CaCertificate::parse(ca.certificate().pem().as_bytes()).expect("CA reloads");
    assert_eq!(reloaded.trust_domain(), &domain());
    assert_eq!(reloaded.agent_id(), *ck.agent_id());
    for input in [issued.der.clone(), issued.pem().into_bytes()] {
        let v = verify_certificate(&input, &reloaded, None, &at(T0 + 2 * HOUR)).expect("verifies");
        assert_eq!(v.agent_id, *agent.agent_id());
        assert_eq!(v.public_key, *agent.public());
        assert_eq!(v.spiffe_id, issued.spiffe_id);
        assert_eq!(v.serial, issued.serial);
    }
    // A CA rebuilt from its certificate and key issues the same way.
    let again = Ca::new(reloaded, &ck).expect("same key");
    let second = again
        .issue(
            &csr,
            agent.agent_id(),
            &at(T0 + HOUR),
            DEFAULT_LEAF_LIFETIME,
            &serial(10),
        )
        .expect("issued again");
    assert_ne!(second.serial, issued.serial);
}

#[test]
fn ca_refuses_the_wrong_key_and_bad_lifetimes() {
    let ck = key(1);
    let ca = ca(&ck);
    let other = key(3);
    assert!(matches!(
        Ca::new(ca.certificate().clone(), &other),
        Err(CaError::KeyMismatch { .. })
    ));
    let agent = key(2);
    let c = csr(&agent);
    assert!(matches!(
        ca.issue(&c, agent.agent_id(), &at(T0), Duration::ZERO, &serial(2)),
        Err(CaError::Lifetime { .. })
    ));
    assert!(matches!(
        ca.issue(
            &c,
            agent.agent_id(),
            &at(T0),
            Duration::from_secs(400 * 86400),
            &serial(2)
        ),
        Err(CaError::Lifetime { .. })
    ));
    // Near the CA's end, a 24 h certificate would outlive it.
    let late = at(T0 + 3650 * 24 * HOUR - HOUR);
    assert!(matches!(
        ca.issue(
            &c,
            agent.agent_id(),
            &late,
            DEFAULT_LEAF_LIFETIME,
            &serial(2)
        ),
        Err(CaError::OutlivesCa { .. })
    ));
    // Before the CA exists.
    assert!(matches!(
        ca.issue(
            &c,
            agent.agent_id(),
            &at(T0 - HOUR),
            DEFAULT_LEAF_LIFETIME,
            &serial(2)
        ),
        Err(CaError::CaNotValid(_))
    ));
    assert!(TrustDomain::parse("Not A Domain").is_err());
}

/// A CSR whose key is agent A's but whose signature is agent B's.
#[test]
fn csr_signed_by_another_key_is_refused() {
    let a = key(2);
    let b = key(3);
    let pem = create_csr(&a, Some(&domain())).expect("csr");
    let (_, der) = der::pem::decode_vec(pem.as_bytes()).expect("pem");
    let mut req = x509_cert::request::CertReq::from_der(&der).expect("decodes");
    let info = req.info.to_der().expect("info");
    req.signature = der::asn1::BitString::from_bytes(&b.sign(&info).to_bytes()).expect("bits");
    let forged = req.to_der().expect("encodes");
    assert!(matches!(Csr::parse(&forged), Err(CsrError::BadSignature)));
    // Altering the request after signing is caught the same way.
    let mut altered = der.clone();
    let n = altered.len();
    altered[n - 1] ^= 1;
    assert!(matches!(Csr::parse(&altered), Err(CsrError::BadSignature)));
    // Garbage, empty, oversized, or a certificate passed as a CSR.
    assert!(matches!(Csr::parse(b""), Err(CsrError::Encoding(_))));
    assert!(matches!(
        Csr::parse(b"not a csr"),
        Err(CsrError::Encoding(_))
    ));
    assert!(matches!(
        Csr::parse(&vec![0u8; accord_ca::MAX_INPUT_BYTES + 1]),
        Err(CsrError::TooLarge(_))
    ));
    let ck = key(1);
    let ca = ca(&ck);
    assert!(matches!(
        Csr::parse(ca.certificate().pem().as_bytes()),
        Err(CsrError::Encoding(_))
    ));
}

#[test]
fn csr_key_not_deriving_the_claimed_agent_is_refused() {
    let ck = key(1);
    let ca = ca(&ck);
    let a = key(2);
    let b = key(3);
    let c = csr(&a);
    let err = ca
        .issue(
            &c,
            b.agent_id(),
            &at(T0 + HOUR),
            DEFAULT_LEAF_LIFETIME,
            &serial(2),
        )
        .expect_err("another agent's id");
    assert!(
        matches!(&err, CaError::AgentIdMismatch { claimed, derived }
            if claimed == b.agent_id().as_str() && derived == a.agent_id().as_str()),
        "{err}"
    );
}

#[test]
fn certificate_from_another_ca_is_refused() {
    let ck = key(1);
    let real = ca(&ck);
    let agent = key(2);
    let c = csr(&agent);
    // Same trust domain, same name, another key.
    let rogue_key = key(7);
    let rogue = common::ca(&rogue_key);
    let cert = rogue
        .issue(
            &c,
            agent.agent_id(),
            &at(T0 + HOUR),
            DEFAULT_LEAF_LIFETIME,
            &serial(2),
        )
        .expect("rogue issues");
    assert!(matches!(
        verify_certificate(&cert.der, real.certificate(), None, &at(T0 + HOUR)),
        Err(CertError::BadSignature { .. })
    ));
    // Another trust domain: another issuer name.
    let other_domain = Ca::create(
        &rogue_key,
        &TrustDomain::parse("evil.test").expect("td"),
        &at(T0),
        Duration::from_secs(86400 * 30),
        &serial(3),
    )
    .expect("CA");
    let cert = other_domain
        .issue(
            &c,
            agent.agent_id(),
            &at(T0 + HOUR),
            DEFAULT_LEAF_LIFETIME,
            &serial(4),
        )
        .expect("issues");
    assert!(matches!(
        verify_certificate(&cert.der, real.certificate(), None, &at(T0 + HOUR)),
        Err(CertError::UnknownIssuer { .. })
    ));
    // The CA certificate itself is not an agent certificate.
    assert!(
        verify_certificate(
            real.certificate().der(),
            real.certificate(),
            None,
            &at(T0 + HOUR)
        )
        .is_err()
    );
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let ck = key(1);
    let ca = ca(&ck);
    let agent = key(2);
    let cert = ca
        .issue(
            &csr(&agent),
            agent.agent_id(),
            &at(T0 + HOUR),
            DEFAULT_LEAF_LIFETIME,
            &serial(2),
        )
        .expect("issued");
    let check = |t: i64| verify_certificate(&cert.der, ca.certificate(), None, &at(t));
    assert!(check(T0 + HOUR).is_ok());
    assert!(check(T0 + 25 * HOUR).is_ok(), "notAfter is inclusive");
    assert!(matches!(
        check(T0 + 25 * HOUR + 1_000_000),
        Err(CertError::Expired { .. })
    ));
    assert!(matches!(
        check(T0 + HOUR - 1_000_000),
        Err(CertError::NotYetValid { .. })
    ));
    // A CA that expired takes its certificates with it.
    let short = Ca::create(
        &ck,
        &domain(),
        &at(T0),
        Duration::from_secs(2 * 3600),
        &serial(5),
    )
    .expect("CA");
    let cert = short
        .issue(
            &csr(&agent),
            agent.agent_id(),
            &at(T0),
            Duration::from_secs(3600),
            &serial(6),
        )
        .expect("issued");
    assert!(verify_certificate(&cert.der, short.certificate(), None, &at(T0 + HOUR)).is_ok());
    assert!(matches!(
        verify_certificate(&cert.der, short.certificate(), None, &at(T0 + 3 * HOUR)),
        Err(CertError::Expired { .. })
    ));
}

fn crl_for(ca: &Ca<'_>, revoked: &[Revoked], this: i64, next: i64) -> Vec<u8> {
    ca.crl(&at(this), &at(next), 1, revoked).expect("crl")
}

#[test]
fn revoked_serial_is_refused() {
    let ck = key(1);
    let ca = ca(&ck);
    let a = key(2);
    let b = key(3);
    let now = at(T0 + 2 * HOUR);
    let ca_a = ca
        .issue(
            &csr(&a),
            a.agent_id(),
            &at(T0 + HOUR),
            DEFAULT_LEAF_LIFETIME,
            &serial(2),
        )
        .expect("a");
    let ca_b = ca
        .issue(
            &csr(&b),
            b.agent_id(),
            &at(T0 + HOUR),
            DEFAULT_LEAF_LIFETIME,
            &serial(3),
        )
        .expect("b");
    let der = crl_for(
        &ca,
        &[Revoked {
            serial: ca_a.serial.clone(),
            at: at(T0 + HOUR + 1_000_000),
            reason: Reason::KeyCompromise,
        }],
        T0 + HOUR + 1_000_000,
        T0 + 13 * HOUR,
    );
    let crl = Crl::parse(&der, ca.certificate(), &now).expect("crl verifies");
    assert_eq!(crl.entries().len(), 1);
    assert_eq!(crl.entries()[0].reason, Reason::KeyCompromise);
    let err =
        verify_certificate(&ca_a.der, ca.certificate(), Some(&crl), &now).expect_err("revoked");
    assert!(
        matches!(&err, CertError::Revoked { serial, reason: Reason::KeyCompromise, .. } if *serial == ca_a.serial.to_hex()),
        "{err}"
    );
    assert!(verify_certificate(&ca_b.der, ca.certificate(), Some(&crl), &now).is_ok());
    // Unspecified reason: no reasonCode, read back as unspecified.
    let der = crl_for(
        &ca,
        &[Revoked {
            serial: ca_b.serial.clone(),
            at: at(T0 + HOUR),
            reason: Reason::Unspecified,
        }],
        T0 + HOUR,
        T0 + 13 * HOUR,
    );
    let crl = Crl::parse(&der, ca.certificate(), &now).expect("crl");
    assert!(matches!(
        verify_certificate(&ca_b.der, ca.certificate(), Some(&crl), &now),
        Err(CertError::Revoked {
            reason: Reason::Unspecified,
            ..
        })
    ));
    // The same serial twice, or a window backwards, is refused when signing.
    let r = Revoked {
        serial: serial(2),
        at: at(T0),
        reason: Reason::Superseded,
    };
    assert!(matches!(
        ca.crl(&at(T0), &at(T0 + HOUR), 2, &[r.clone(), r.clone()]),
        Err(CaError::CrlEntries(_))
    ));
    assert!(matches!(
        ca.crl(&at(T0 + HOUR), &at(T0), 2, &[]),
        Err(CaError::CrlWindow { .. })
    ));
}

#[test]
fn tampered_stale_or_foreign_crl_is_refused() {
    let ck = key(1);
    let ca = ca(&ck);
    let now = at(T0 + 2 * HOUR);
    let victim = serial(2);
    let der = crl_for(
        &ca,
        &[Revoked {
            serial: victim.clone(),
            at: at(T0 + HOUR),
            reason: Reason::KeyCompromise,
        }],
        T0 + HOUR,
        T0 + 13 * HOUR,
    );
    assert!(Crl::parse(&der, ca.certificate(), &now).is_ok());
    // Change the revoked serial (the attacker un-revokes a certificate):
    // still valid DER, the signature no longer verifies.
    let pos = der
        .windows(16)
        .position(|w| w == victim.as_bytes())
        .expect("serial in CRL");
    let mut tampered = der.clone();
    tampered[pos + 15] ^= 0x01;
    assert!(matches!(
        Crl::parse(&tampered, ca.certificate(), &now),
        Err(CrlError::BadSignature)
    ));
    // Any single changed byte is refused, one way or another.
    for i in 0..der.len() {
        let mut t = der.clone();
        t[i] ^= 0x40;
        assert!(Crl::parse(&t, ca.certificate(), &now).is_err(), "byte {i}");
    }
    // Truncated.
    assert!(matches!(
        Crl::parse(&der[..der.len() - 3], ca.certificate(), &now),
        Err(CrlError::Encoding(_))
    ));
    // Stale: past nextUpdate.
    assert!(matches!(
        Crl::parse(&der, ca.certificate(), &at(T0 + 14 * HOUR)),
        Err(CrlError::Stale { .. })
    ));
    // Not yet issued.
    assert!(matches!(
        Crl::parse(&der, ca.certificate(), &at(T0)),
        Err(CrlError::NotYetValid { .. })
    ));
    // Signed by another CA of the same name.
    let rogue_key = key(7);
    let rogue = common::ca(&rogue_key);
    let foreign = crl_for(&rogue, &[], T0 + HOUR, T0 + 13 * HOUR);
    assert!(matches!(
        Crl::parse(&foreign, ca.certificate(), &now),
        Err(CrlError::BadSignature)
    ));
    // A CRL checked against another CA cannot vouch for this CA's certificates.
    let agent = key(3);
    let cert = ca
        .issue(
            &csr(&agent),
            agent.agent_id(),
            &at(T0 + HOUR),
            DEFAULT_LEAF_LIFETIME,
            &serial(4),
        )
        .expect("issued");
    let rogue_crl = Crl::parse(&foreign, rogue.certificate(), &now).expect("rogue's own");
    assert!(matches!(
        verify_certificate(&cert.der, ca.certificate(), Some(&rogue_crl), &now),
        Err(CertError::CrlFromAnotherCa)
    ));
}

#[test]
fn spiffe_id_naming_another_agent_than_the_key_is_refused() {
    let ck = key(1);
    let ca = ca(&ck);
    let a = key(2);
    let b = key(3);
    let now = at(T0 + HOUR);
    // The forger's parameters, when honest, pass: the forger is faithful.
    let honest = forge(
        &ck,
        a.public(),
        &leaf_params(a.public(), &spiffe_id(&domain(), a.agent_id())),
    );
    assert!(verify_certificate(&honest, ca.certificate(), None, &now).is_ok());
    // Signed by the real CA, key of A, SPIFFE ID of B.
    let lying = forge(
        &ck,
        a.public(),
        &leaf_params(a.public(), &spiffe_id(&domain(), b.agent_id())),
    );
    let err = verify_certificate(&lying, ca.certificate(), None, &now).expect_err("mismatch");
    assert!(
        matches!(&err, CertError::AgentKeyMismatch { named, derived }
            if named == b.agent_id().as_str() && derived == a.agent_id().as_str()),
        "{err}"
    );
    // Another trust domain in the SPIFFE ID.
    let other = TrustDomain::parse("evil.test").expect("td");
    let foreign = forge(
        &ck,
        a.public(),
        &leaf_params(a.public(), &spiffe_id(&other, a.agent_id())),
    );
    assert!(matches!(
        verify_certificate(&foreign, ca.certificate(), None, &now),
        Err(CertError::TrustDomainMismatch { .. })
    ));
    // Not a SPIFFE ID at all, or two SANs.
    let web = forge(
        &ck,
        a.public(),
        &leaf_params(a.public(), "https://acme.test/agent/x"),
    );
    assert!(matches!(
        verify_certificate(&web, ca.certificate(), None, &now),
        Err(CertError::SpiffeId(_))
    ));
    let mut two = leaf_params(a.public(), &spiffe_id(&domain(), a.agent_id()));
    two.subject_alt_names.push(rcgen::SanType::URI(
        spiffe_id(&domain(), b.agent_id()).try_into().expect("uri"),
    ));
    let two = forge(&ck, a.public(), &two);
    assert!(matches!(
        verify_certificate(&two, ca.certificate(), None, &now),
        Err(CertError::SpiffeId(_))
    ));
}

#[test]
fn profile_violations_are_refused() {
    let ck = key(1);
    let ca = ca(&ck);
    let a = key(2);
    let now = at(T0 + HOUR);
    let id = spiffe_id(&domain(), a.agent_id());
    let check = |p: rcgen::CertificateParams| {
        verify_certificate(&forge(&ck, a.public(), &p), ca.certificate(), None, &now)
    };
    let mut p = leaf_params(a.public(), &id);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    assert!(matches!(check(p), Err(CertError::BasicConstraints(_))));
    let mut p = leaf_params(a.public(), &id);
    p.is_ca = rcgen::IsCa::NoCa;
    assert!(matches!(check(p), Err(CertError::BasicConstraints(_))));
    let mut p = leaf_params(a.public(), &id);
    p.key_usages.push(rcgen::KeyUsagePurpose::KeyCertSign);
    assert!(matches!(check(p), Err(CertError::KeyUsage(_))));
    let mut p = leaf_params(a.public(), &id);
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    assert!(matches!(check(p), Err(CertError::ExtendedKeyUsage(_))));
    let mut p = leaf_params(a.public(), &id);
    p.extended_key_usages.clear();
    assert!(matches!(check(p), Err(CertError::ExtendedKeyUsage(_))));
    let mut p = leaf_params(a.public(), &id);
    let mut ext = rcgen::CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![0x05, 0x00]);
    ext.set_criticality(true);
    p.custom_extensions.push(ext);
    assert!(matches!(check(p), Err(CertError::Extension { .. })));
    let mut p = leaf_params(a.public(), &id);
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0]));
    assert!(check(p).is_err());
    // A weak (small-order) subject key.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let p = leaf_params(a.public(), &id);
    let mut ip = p.clone();
    ip.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![1; 20]);
    let bad = {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, DOMAIN);
        dn.push(rcgen::DnType::CommonName, accord_ca::ca::CA_COMMON_NAME);
        let mut caps = rcgen::CertificateParams::default();
        caps.distinguished_name = dn;
        caps.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![2; 20]);
        let issuer = rcgen::Issuer::new(caps, TestSigner::new(&ck));
        ip.signed_by(&RawKey(weak), &issuer)
            .expect("signs")
            .der()
            .to_vec()
    };
    assert!(matches!(
        verify_certificate(&bad, ca.certificate(), None, &now),
        Err(CertError::Key(_))
    ));
}

#[test]
fn any_changed_byte_in_a_certificate_is_refused() {
    let ck = key(1);
    let ca = ca(&ck);
    let a = key(2);
    let now = at(T0 + HOUR);
    let cert = ca
        .issue(
            &csr(&a),
            a.agent_id(),
            &now,
            DEFAULT_LEAF_LIFETIME,
            &serial(2),
        )
        .expect("issued");
    for i in 0..cert.der.len() {
        let mut t = cert.der.clone();
        t[i] ^= 0x01;
        assert!(
            verify_certificate(&t, ca.certificate(), None, &now).is_err(),
            "byte {i} changed and still accepted"
        );
    }
    let mut ca_der = ca.certificate().der().to_vec();
    let n = ca_der.len();
    ca_der[n - 1] ^= 1;
    assert!(CaCertificate::parse(&ca_der).is_err());
    // Two certificates where one is expected.
    let two = format!("{}{}", ca.certificate().pem(), cert.pem());
    assert!(matches!(
        CaCertificate::parse(two.as_bytes()),
        Err(CertError::Count(2))
    ));
    assert!(matches!(
        verify_certificate(two.as_bytes(), ca.certificate(), None, &now),
        Err(CertError::Count(2))
    ));
    // Serial parsing of what the CLI takes.
    assert_eq!(
        Serial::from_hex(&cert.serial.to_hex()),
        Some(cert.serial.clone())
    );
}
