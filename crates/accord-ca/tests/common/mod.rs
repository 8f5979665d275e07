//! Shared test helpers: keys, a CA, times, and a forger that signs
//! arbitrary certificates with a CA key (to build attacks).
#![allow(dead_code)]

use std::time::Duration;

use accord_ca::{Ca, Csr, Serial, TrustDomain, create_csr};
use accord_core::{Keypair, PublicKey, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyUsagePurpose, PKCS_ED25519, PublicKeyData, SanType, SerialNumber,
    SignatureAlgorithm, SigningKey,
};

pub const DOMAIN: &str = "acme.test";
/// 2030-01-01T00:00:00Z.
pub const T0: i64 = 1_893_456_000_000_000;
pub const HOUR: i64 = 3_600_000_000;

pub fn key(b: u8) -> Keypair {
    Keypair::from_seed(&[b; 32]).expect("seed")
}

pub fn at(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(micros).expect("time")
}

pub fn domain() -> TrustDomain {
    TrustDomain::parse(DOMAIN).expect("domain")
}

pub fn serial(b: u8) -> Serial {
    Serial::from_random([b; 16])
}

/// A CA for `k`, valid from T0 for 10 years.
pub fn ca(k: &Keypair) -> Ca<'_> {
    Ca::create(
        k,
        &domain(),
        &at(T0),
        Duration::from_secs(3650 * 86400),
        &serial(1),
    )
    .expect("CA")
}

pub fn csr(k: &Keypair) -> Csr {
    let pem = create_csr(k, Some(&domain())).expect("csr");
    Csr::parse(pem.as_bytes()).expect("csr parses")
}

pub struct TestSigner<'a>(pub &'a Keypair, pub [u8; 32]);

impl<'a> TestSigner<'a> {
    pub fn new(k: &'a Keypair) -> Self {
        TestSigner(k, k.public().to_bytes())
    }
}

impl PublicKeyData for TestSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.1
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

impl SigningKey for TestSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.0.sign(msg).to_bytes().to_vec())
    }
}

pub struct RawKey(pub [u8; 32]);

impl PublicKeyData for RawKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

fn kid(k: &PublicKey) -> Vec<u8> {
    accord_core::Hash32::of(&k.to_bytes()).0[..20].to_vec()
}

/// The parameters the real CA signs agent certificates with, for `subject`
/// naming `san`, valid T0..T0+24h.
pub fn leaf_params(subject: &PublicKey, san: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, DOMAIN);
    dn.push(DnType::CommonName, subject.agent_id().as_str());
    p.distinguished_name = dn;
    p.subject_alt_names = vec![SanType::URI(san.to_owned().try_into().expect("uri"))];
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::PreSpecified(kid(subject));
    p.not_before = time::OffsetDateTime::from_unix_timestamp(T0 / 1_000_000).expect("t");
    p.not_after = time::OffsetDateTime::from_unix_timestamp(T0 / 1_000_000 + 86400).expect("t");
    p.serial_number = Some(SerialNumber::from_slice(&[0x42; 16]));
    p
}

/// Signs `params` for `subject` as the CA of key `ca_key` in DOMAIN would.
pub fn forge(ca_key: &Keypair, subject: &PublicKey, params: &CertificateParams) -> Vec<u8> {
    let mut ip = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, DOMAIN);
    dn.push(DnType::CommonName, accord_ca::ca::CA_COMMON_NAME);
    ip.distinguished_name = dn;
    ip.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ip.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ip.key_identifier_method = KeyIdMethod::PreSpecified(kid(ca_key.public()));
    let issuer = Issuer::new(ip, TestSigner::new(ca_key));
    params
        .signed_by(&RawKey(subject.to_bytes()), &issuer)
        .expect("forge")
        .der()
        .to_vec()
}
