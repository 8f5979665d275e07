//! The CA's costs: a CSR checked and a certificate issued (which includes
//! the self-check verification), a certificate verified (with a CRL), a CRL
//! of 1000 entries signed and parsed, an attestation signed and verified.
//!
//! `cargo bench -p accord-ca --bench ca`.

use std::hint::black_box;
use std::time::Duration;

use accord_ca::{
    Attestation, Ca, Crl, Csr, DEFAULT_LEAF_LIFETIME, Reason, Revoked, Serial, TrustDomain,
    create_csr, verify_attestation, verify_certificate,
};
use accord_core::{Hash32, Keypair, Timestamp};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let ck = Keypair::from_seed(&[1; 32]).expect("seed");
    let agent = Keypair::from_seed(&[2; 32]).expect("seed");
    let domain = TrustDomain::parse("bench.test").expect("domain");
    let t0 = Timestamp::from_unix_micros(1_893_456_000_000_000).expect("time");
    let now = Timestamp::from_unix_micros(1_893_459_600_000_000).expect("time");
    let later = Timestamp::from_unix_micros(1_893_500_000_000_000).expect("time");
    let ca = Ca::create(
        &ck,
        &domain,
        &t0,
        Duration::from_secs(86400 * 365),
        &Serial::from_random([1; 16]),
    )
    .expect("CA");
    let csr_pem = create_csr(&agent, Some(&domain)).expect("csr");
    let mut n = 0u64;
    c.bench_function("csr_check_and_issue", |b| {
        b.iter(|| {
            n += 1;
            let mut s = [0u8; 16];
            s[..8].copy_from_slice(&n.to_be_bytes());
            let csr = Csr::parse(black_box(csr_pem.as_bytes())).expect("csr");
            ca.issue(
                &csr,
                agent.agent_id(),
                &now,
                DEFAULT_LEAF_LIFETIME,
                &Serial::from_random(s),
            )
            .expect("issued")
        })
    });
    let csr = Csr::parse(csr_pem.as_bytes()).expect("csr");
    let cert = ca
        .issue(
            &csr,
            agent.agent_id(),
            &now,
            DEFAULT_LEAF_LIFETIME,
            &Serial::from_random([3; 16]),
        )
        .expect("issued");
    let revoked: Vec<Revoked> = (0..1000u32)
        .map(|i| {
            let mut s = [9u8; 16];
            s[..4].copy_from_slice(&i.to_be_bytes());
            Revoked {
                serial: Serial::from_random(s),
                at: t0.clone(),
                reason: Reason::KeyCompromise,
            }
        })
        .collect();
    let crl_der = ca.crl(&now, &later, 1, &revoked).expect("crl");
    let crl = Crl::parse(&crl_der, ca.certificate(), &now).expect("crl parses");
    c.bench_function("verify_certificate_with_crl_1000", |b| {
        b.iter(|| {
            verify_certificate(black_box(&cert.der), ca.certificate(), Some(&crl), &now)
                .expect("valid")
        })
    });
    c.bench_function("crl_sign_1000", |b| {
        b.iter(|| ca.crl(&now, &later, 1, black_box(&revoked)).expect("crl"))
    });
    c.bench_function("crl_parse_1000", |b| {
        b.iter(|| Crl::parse(black_box(&crl_der), ca.certificate(), &now).expect("crl"))
    });
    let att = Attestation {
        agent_id: agent.agent_id().clone(),
        agent_key: *agent.public(),
        codebase_hash: Hash32::of(b"code"),
        config_hash: Hash32::of(b"config"),
        issued_at: now.clone(),
        expires_at: later.clone(),
    };
    let doc = att.sign(&ck, &domain).expect("signs");
    c.bench_function("attestation_verify", |b| {
        b.iter(|| {
            verify_attestation(
                black_box(doc.canonical()),
                ck.public(),
                agent.agent_id(),
                Some(&domain),
                &now,
            )
            .expect("valid")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
