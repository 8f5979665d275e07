//! The controller CA's parsers over arbitrary bytes: CSRs, CA and agent
//! certificates (with a CRL), CRLs, attestation documents. Never panics.
#![no_main]
use std::sync::OnceLock;
use std::time::Duration;

use accord_ca::{
    Ca, CaCertificate, Crl, Csr, Reason, Revoked, Serial, TrustDomain, verify_attestation,
    verify_certificate,
};
use accord_core::{Keypair, Timestamp};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    key: Keypair,
    ca: CaCertificate,
    crl: Crl,
    now: Timestamp,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = Keypair::from_seed(&[1; 32]).expect("seed");
        let domain = TrustDomain::parse("fuzz.test").expect("domain");
        let t0 = Timestamp::from_unix_micros(1_893_456_000_000_000).expect("time");
        let now = Timestamp::from_unix_micros(1_893_459_600_000_000).expect("time");
        let later = Timestamp::from_unix_micros(1_893_470_000_000_000).expect("time");
        let ca = Ca::create(
            &key,
            &domain,
            &t0,
            Duration::from_secs(86400 * 30),
            &Serial::from_random([1; 16]),
        )
        .expect("CA");
        let der = ca
            .crl(
                &t0,
                &later,
                1,
                &[Revoked {
                    serial: Serial::from_random([2; 16]),
                    at: t0.clone(),
                    reason: Reason::KeyCompromise,
                }],
            )
            .expect("crl");
        let cert = ca.certificate().clone();
        let crl = Crl::parse(&der, &cert, &now).expect("crl parses");
        Fixture {
            key: Keypair::from_seed(&[1; 32]).expect("seed"),
            ca: cert,
            crl,
            now,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let _ = Csr::parse(data);
    let _ = CaCertificate::parse(data);
    let _ = verify_certificate(data, &f.ca, Some(&f.crl), &f.now);
    let _ = Crl::parse(data, &f.ca, &f.now);
    let _ = verify_attestation(data, f.key.public(), f.key.agent_id(), None, &f.now);
});
