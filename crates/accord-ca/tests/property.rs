//! Properties over random agents, serials, lifetimes and times: whatever
//! is issued verifies exactly within its validity, names the agent its key
//! derives, and is refused once its serial is on a CRL.

mod common;

use std::time::Duration;

use accord_ca::{CertError, Crl, Reason, Revoked, Serial, verify_certificate};
use accord_core::Keypair;
use common::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn issued_certificates_verify_exactly_within_their_validity(
        seed in any::<[u8; 32]>(),
        serial_bytes in any::<[u8; 16]>(),
        lifetime_s in 1u64..=366 * 86400,
        offset_s in 0i64..86400,
        probe in 0.0f64..1.0,
    ) {
        let ck = key(1);
        let ca = ca(&ck);
        let agent = Keypair::from_seed(&seed).expect("seed");
        let issued_at = T0 + offset_s * 1_000_000;
        let serial = Serial::from_random(serial_bytes);
        let cert = ca
            .issue(&csr(&agent), agent.agent_id(), &at(issued_at), Duration::from_secs(lifetime_s), &serial)
            .expect("issued");
        prop_assert_eq!(&cert.serial, &serial);
        let start = issued_at / 1_000_000 * 1_000_000;
        let end = start + lifetime_s as i64 * 1_000_000;
        let inside = start + ((end - start) as f64 * probe) as i64;
        let v = verify_certificate(&cert.der, ca.certificate(), None, &at(inside)).expect("valid inside");
        prop_assert_eq!(&v.agent_id, agent.agent_id());
        prop_assert_eq!(v.public_key, *agent.public());
        prop_assert!(matches!(
            verify_certificate(&cert.der, ca.certificate(), None, &at(end + 1_000_000)),
            Err(CertError::Expired { .. })
        ), "accepted after notAfter");
        prop_assert!(matches!(
            verify_certificate(&cert.der, ca.certificate(), None, &at(start - 1_000_000)),
            Err(CertError::NotYetValid { .. })
        ), "accepted before notBefore");
        let now = at(inside);
        let crl_der = ca
            .crl(&now, &at(inside + 3_600_000_000), 7, &[Revoked { serial: serial.clone(), at: now.clone(), reason: Reason::Superseded }])
            .expect("crl");
        let crl = Crl::parse(&crl_der, ca.certificate(), &now).expect("crl");
        prop_assert!(
            matches!(
                verify_certificate(&cert.der, ca.certificate(), Some(&crl), &now),
                Err(CertError::Revoked { .. })
            ),
            "revoked serial accepted"
        );
    }
}
