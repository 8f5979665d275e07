//! Other implementations read what the CA writes: OpenSSL verifies the
//! chain, the CSR and the CRL (and refuses a revoked certificate); Python's
//! `cryptography` parses the certificate when it is installed.
//!
//! OpenSSL checks validity against the real clock, so these certificates
//! are issued at the current time (read here, in the test, not by the
//! library). Without openssl the test fails under CI=true and is skipped
//! with a reason otherwise.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use accord_ca::{Ca, DEFAULT_LEAF_LIFETIME, Reason, Revoked, create_csr};
use common::*;

fn now_micros() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    i64::try_from(d.as_micros()).expect("micros")
}

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl_available() -> bool {
    if have("openssl", "version") {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "openssl is not installed, and CI=true: this interoperability test must run"
    );
    eprintln!("SKIPPED: openssl is not installed (install it to check interoperability)");
    false
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runs openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

struct Setup {
    dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = now_micros() - 60_000_000;
    let ck = key(1);
    let ca = Ca::create(
        &ck,
        &domain(),
        &at(now),
        Duration::from_secs(30 * 86400),
        &serial(1),
    )
    .expect("CA");
    let a = key(2);
    let b = key(3);
    let csr_pem = create_csr(&a, Some(&domain())).expect("csr");
    let issue = |k: &accord_core::Keypair, s: u8| {
        ca.issue(
            &csr(k),
            k.agent_id(),
            &at(now),
            DEFAULT_LEAF_LIFETIME,
            &serial(s),
        )
        .expect("issued")
    };
    let ca_a = issue(&a, 2);
    let ca_b = issue(&b, 3);
    let crl = ca
        .crl(
            &at(now),
            &at(now + HOUR),
            1,
            &[Revoked {
                serial: ca_b.serial.clone(),
                at: at(now),
                reason: Reason::KeyCompromise,
            }],
        )
        .expect("crl");
    let rogue_key = key(9);
    let rogue = Ca::create(
        &rogue_key,
        &domain(),
        &at(now),
        Duration::from_secs(86400),
        &serial(4),
    )
    .expect("rogue");
    let ca_r = rogue
        .issue(
            &csr(&a),
            a.agent_id(),
            &at(now),
            DEFAULT_LEAF_LIFETIME,
            &serial(5),
        )
        .expect("rogue issues");
    let w = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).expect("write");
    w("ca.pem", ca.certificate().pem().as_bytes());
    w("a.pem", ca_a.pem().as_bytes());
    w("b.pem", ca_b.pem().as_bytes());
    w("rogue.pem", ca_r.pem().as_bytes());
    w("csr.pem", csr_pem.as_bytes());
    w("crl.der", &crl);
    Setup { dir }
}

#[test]
fn openssl_accepts_certificates_csrs_and_crls() {
    if !openssl_available() {
        return;
    }
    let s = setup();
    let d = s.dir.path();
    let (ok, out) = openssl(d, &["verify", "-x509_strict", "-CAfile", "ca.pem", "a.pem"]);
    assert!(ok && out.contains("a.pem: OK"), "{out}");
    for purpose in ["sslclient", "sslserver"] {
        let (ok, out) = openssl(
            d,
            &["verify", "-purpose", purpose, "-CAfile", "ca.pem", "a.pem"],
        );
        assert!(ok, "{purpose}: {out}");
    }
    let (ok, out) = openssl(
        d,
        &[
            "x509",
            "-in",
            "a.pem",
            "-noout",
            "-ext",
            "subjectAltName,basicConstraints,keyUsage,extendedKeyUsage",
        ],
    );
    let agent = key(2);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("URI:spiffe://{DOMAIN}/agent/{}", agent.agent_id())),
        "{out}"
    );
    assert!(out.contains("CA:FALSE"), "{out}");
    assert!(out.contains("Digital Signature"), "{out}");
    assert!(
        out.contains("TLS Web Server Authentication")
            && out.contains("TLS Web Client Authentication"),
        "{out}"
    );
    let (ok, out) = openssl(d, &["req", "-in", "csr.pem", "-verify", "-noout"]);
    assert!(ok && out.to_lowercase().contains("verify ok"), "{out}");
    let (ok, out) = openssl(
        d,
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout",
        ],
    );
    assert!(ok && out.to_lowercase().contains("verify ok"), "{out}");
    let (ok, out) = openssl(
        d,
        &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"],
    );
    assert!(ok, "{out}");
    let (ok, out) = openssl(
        d,
        &[
            "verify",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            "ca.pem",
            "a.pem",
        ],
    );
    assert!(ok, "not revoked, with the CRL checked: {out}");
    let (ok, out) = openssl(
        d,
        &[
            "verify",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            "ca.pem",
            "b.pem",
        ],
    );
    assert!(!ok && out.contains("revoked"), "revoked: {out}");
    let (ok, out) = openssl(d, &["verify", "-CAfile", "ca.pem", "rogue.pem"]);
    assert!(!ok, "another CA's certificate: {out}");
}

#[test]
fn python_cryptography_parses_the_certificate() {
    let py = "import cryptography";
    let available = Command::new("python3")
        .args(["-c", py])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("SKIPPED: python3 with the cryptography package is not installed (optional)");
        return;
    }
    let s = setup();
    let script = r#"
import sys
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
ca = x509.load_pem_x509_certificate(open("ca.pem", "rb").read())
leaf = x509.load_pem_x509_certificate(open("a.pem", "rb").read())
leaf.verify_directly_issued_by(ca)
assert isinstance(leaf.public_key(), Ed25519PublicKey)
san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
uris = san.get_values_for_type(x509.UniformResourceIdentifier)
assert len(uris) == 1, uris
assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
crl = x509.load_der_x509_crl(open("crl.der", "rb").read())
assert crl.is_signature_valid(ca.public_key())
b = x509.load_pem_x509_certificate(open("b.pem", "rb").read())
assert crl.get_revoked_certificate_by_serial_number(b.serial_number) is not None
csr = x509.load_pem_x509_csr(open("csr.pem", "rb").read())
assert csr.is_signature_valid
print(uris[0])
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .current_dir(s.dir.path())
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("spiffe://{DOMAIN}/agent/{}", key(2).agent_id())),
        "{text}"
    );
}

/// The other direction: a CSR OpenSSL makes for an Ed25519 key is accepted
/// (its key derives the agent_id), one for a P-256 key is refused.
#[test]
fn openssl_csrs_are_read() {
    if !openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let run = |args: &[&str]| {
        let (ok, out) = openssl(d, args);
        assert!(ok, "openssl {args:?}: {out}");
    };
    run(&["genpkey", "-algorithm", "ed25519", "-out", "ed.key"]);
    run(&[
        "req",
        "-new",
        "-key",
        "ed.key",
        "-subj",
        "/CN=from-openssl",
        "-out",
        "ed.csr",
    ]);
    run(&[
        "pkey", "-in", "ed.key", "-pubout", "-outform", "DER", "-out", "ed.pub",
    ]);
    let spki = std::fs::read(d.join("ed.pub")).expect("spki");
    let raw: [u8; 32] = spki[spki.len() - 32..].try_into().expect("32 bytes");
    let key = accord_core::PublicKey::from_bytes(&raw).expect("key");
    let csr =
        accord_ca::Csr::parse(&std::fs::read(d.join("ed.csr")).expect("csr")).expect("accepted");
    assert_eq!(*csr.public_key(), key);
    assert_eq!(csr.agent_id(), key.agent_id());
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "ec.key",
    ]);
    run(&[
        "req", "-new", "-key", "ec.key", "-subj", "/CN=p256", "-out", "ec.csr",
    ]);
    let err =
        accord_ca::Csr::parse(&std::fs::read(d.join("ec.csr")).expect("csr")).expect_err("P-256");
    assert!(matches!(err, accord_ca::CsrError::Algorithm(_)), "{err}");
}
