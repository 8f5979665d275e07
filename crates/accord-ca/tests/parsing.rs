//! Untrusted input never panics: arbitrary bytes and mutations of valid
//! CSRs, certificates and CRLs are refused with an error (or, for an
//! unchanged input, accepted).

mod common;

use accord_ca::{CaCertificate, Crl, Csr, Reason, Revoked, create_csr, verify_certificate};
use common::*;
use proptest::prelude::*;

struct Fixture {
    ca: CaCertificate,
    csr: Vec<u8>,
    cert: Vec<u8>,
    crl: Vec<u8>,
}

fn fixture() -> Fixture {
    let ck = key(1);
    let ca = ca(&ck);
    let a = key(2);
    let csr_pem = create_csr(&a, Some(&domain())).expect("csr");
    let (_, csr_der) = der::pem::decode_vec(csr_pem.as_bytes()).expect("pem");
    let cert = ca
        .issue(
            &csr(&a),
            a.agent_id(),
            &at(T0 + HOUR),
            accord_ca::DEFAULT_LEAF_LIFETIME,
            &serial(2),
        )
        .expect("issued");
    let crl = ca
        .crl(
            &at(T0 + HOUR),
            &at(T0 + 2 * HOUR),
            1,
            &[Revoked {
                serial: serial(5),
                at: at(T0 + HOUR),
                reason: Reason::Superseded,
            }],
        )
        .expect("crl");
    Fixture {
        ca: ca.certificate().clone(),
        csr: csr_der,
        cert: cert.der,
        crl,
    }
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for &(i, b) in edits {
        let n = bytes.len();
        if n > 0 {
            bytes[i % n] ^= b;
        }
    }
    let keep = bytes.len().saturating_sub(cut % 4);
    bytes.truncate(keep);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_are_refused(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let f = fixture();
        let now = at(T0 + HOUR);
        prop_assert!(Csr::parse(&data).is_err());
        prop_assert!(CaCertificate::parse(&data).is_err());
        prop_assert!(verify_certificate(&data, &f.ca, None, &now).is_err());
        prop_assert!(Crl::parse(&data, &f.ca, &now).is_err());
    }

    #[test]
    fn mutated_inputs_never_panic_and_never_pass_changed(
        edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        cut in any::<usize>(),
    ) {
        let f = fixture();
        let now = at(T0 + HOUR);
        let m = mutate(f.csr.clone(), &edits, cut);
        if m != f.csr { prop_assert!(Csr::parse(&m).is_err()); }
        let m = mutate(f.cert.clone(), &edits, cut);
        if m != f.cert { prop_assert!(verify_certificate(&m, &f.ca, None, &now).is_err()); }
        let m = mutate(f.crl.clone(), &edits, cut);
        if m != f.crl { prop_assert!(Crl::parse(&m, &f.ca, &now).is_err()); }
        let ca_der = f.ca.der().to_vec();
        let m = mutate(ca_der.clone(), &edits, cut);
        if m != ca_der { prop_assert!(CaCertificate::parse(&m).is_err()); }
    }
}
