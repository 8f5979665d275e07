//! `accord controller`, `accord csr` and `accord cert verify`, end to end:
//! the offline enrolment path, revocation through a CRL, attestations, and
//! the refusals with their exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;
use serde_json::Value;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn run(&self, home: Option<&str>, args: &[&str]) -> Output {
        self.run_pw(home, None, args)
    }
    fn run_pw(&self, home: Option<&str>, pw: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_accord"));
        if let Some(h) = home {
            c.arg("--home").arg(self.path(h));
        }
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("ACCORD_PASSPHRASE")
            .env_remove("ACCORD_HOME")
            .stdin(Stdio::null());
        if let Some(pw) = pw {
            c.env("ACCORD_PASSPHRASE", pw);
        }
        c.output().expect("runs accord")
    }
    fn ok(&self, home: Option<&str>, args: &[&str]) -> String {
        let out = self.run(home, args);
        assert!(
            out.status.success(),
            "accord {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn fails(&self, home: Option<&str>, args: &[&str], code: i32, needle: &str) {
        let out = self.run(home, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "accord {args:?}: {err}");
        assert!(
            err.contains(needle),
            "accord {args:?}: expected {needle:?} in {err}"
        );
    }
    /// A controller `ctl` in acme.test and agents `a` and `b`, each with a CSR.
    fn setup() -> Self {
        let e = Env::new();
        e.ok(
            Some("ctl"),
            &[
                "controller",
                "init",
                "--trust-domain",
                "acme.test",
                "--no-passphrase",
            ],
        );
        for h in ["a", "b"] {
            e.ok(Some(h), &["init", "--no-passphrase"]);
            e.ok(
                Some(h),
                &[
                    "csr",
                    "--trust-domain",
                    "acme.test",
                    "--out",
                    &format!("{h}.csr"),
                ],
            );
        }
        e
    }
    fn agent_id(&self, home: &str) -> String {
        let v: Value = serde_json::from_str(&self.ok(Some(home), &["id", "--json"])).expect("json");
        v["agent_id"].as_str().expect("id").to_owned()
    }
    fn issue(&self, who: &str) -> Value {
        let out = self.ok(
            Some("ctl"),
            &[
                "controller",
                "issue",
                &format!("{who}.csr"),
                "--out",
                &format!("{who}.pem"),
                "--json",
            ],
        );
        serde_json::from_str(&out).expect("json summary")
    }
    fn event_types(&self, home: &str) -> Vec<String> {
        self.ok(Some(home), &["log", "--json"])
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("event");
                v["type"].as_str().unwrap_or("").to_owned()
            })
            .collect()
    }
}

fn openssl_verify(dir: &Path, args: &[&str]) -> Option<bool> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    match Command::new("openssl")
        .arg("verify")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(o) => Some(o.status.success()),
        Err(_) if ci => panic!("openssl is not installed, and CI=true: this test must run it"),
        Err(_) => {
            eprintln!("SKIPPED (openssl part): openssl is not installed");
            None
        }
    }
}

#[test]
fn enrol_verify_revoke_and_publish_a_crl() {
    let e = Env::setup();
    let a = e.agent_id("a");
    let issued = e.issue("a");
    assert_eq!(issued["agent_id"], a.as_str());
    assert_eq!(issued["spiffe_id"], format!("spiffe://acme.test/agent/{a}"));
    e.issue("b");
    // The chain holds the certificate itself.
    let recorded: Vec<String> = e
        .ok(Some("ctl"), &["log", "--json"])
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "ca.issued" && v["payload"]["agent_id"] == a.as_str())
        .filter_map(|v| v["payload"]["certificate"].as_str().map(str::to_owned))
        .collect();
    let written = std::fs::read_to_string(e.path("a.pem")).expect("a.pem");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].trim_end(), written.trim_end());
    if let Some(ok) = openssl_verify(e.dir.path(), &["-CAfile", "ctl/ca.pem", "a.pem"]) {
        assert!(ok, "openssl verify refused the certificate");
    }
    let v: Value = serde_json::from_str(&e.ok(
        None,
        &["cert", "verify", "a.pem", "--ca", "ctl/ca.pem", "--json"],
    ))
    .expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["agent_id"], a.as_str());
    assert_eq!(v["serial"], issued["serial"]);
    assert_eq!(v["crl_checked"], false);

    let serial = issued["serial"].as_str().expect("serial");
    let out = e.ok(
        Some("ctl"),
        &[
            "controller",
            "revoke",
            "--serial",
            serial,
            "--reason",
            "key-compromise",
        ],
    );
    assert!(out.contains("keyCompromise"), "{out}");
    e.ok(Some("ctl"), &["controller", "crl", "--out", "crl.der"]);
    e.fails(
        None,
        &[
            "cert",
            "verify",
            "a.pem",
            "--ca",
            "ctl/ca.pem",
            "--crl",
            "crl.der",
        ],
        1,
        "revoked",
    );
    let v: Value = serde_json::from_str(&e.ok(
        None,
        &[
            "cert",
            "verify",
            "b.pem",
            "--ca",
            "ctl/ca.pem",
            "--crl",
            "crl.der",
            "--json",
        ],
    ))
    .expect("json");
    assert_eq!(v["crl_checked"], true);
    // OpenSSL reads the CRL too, and refuses the revoked certificate.
    if Command::new("openssl").arg("version").output().is_ok() {
        let conv = Command::new("openssl")
            .args(["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"])
            .current_dir(e.dir.path())
            .output()
            .expect("openssl crl");
        assert!(conv.status.success());
        let args = ["-crl_check", "-CRLfile", "crl.pem", "-CAfile", "ctl/ca.pem"];
        assert_eq!(
            openssl_verify(e.dir.path(), &[&args[..], &["a.pem"]].concat()),
            Some(false)
        );
        assert_eq!(
            openssl_verify(e.dir.path(), &[&args[..], &["b.pem"]].concat()),
            Some(true)
        );
    }
    // Revoking again is refused; the controller's chain holds the history and verifies.
    e.fails(
        Some("ctl"),
        &["controller", "revoke", "--serial", serial],
        3,
        "already revoked",
    );
    let b = e.agent_id("b");
    e.ok(
        Some("ctl"),
        &["controller", "revoke", &b, "--reason", "superseded"],
    );
    e.ok(Some("ctl"), &["controller", "crl", "--out", "crl2.der"]);
    e.fails(
        None,
        &[
            "cert",
            "verify",
            "b.pem",
            "--ca",
            "ctl/ca.pem",
            "--crl",
            "crl2.der",
        ],
        1,
        "superseded",
    );
    assert_eq!(
        e.event_types("ctl"),
        [
            "genesis",
            "ca.created",
            "ca.issued",
            "ca.issued",
            "ca.revoked",
            "ca.crl",
            "ca.revoked",
            "ca.crl"
        ]
    );
    e.ok(Some("ctl"), &["verify"]);
    let listed: Vec<Value> = e
        .ok(Some("ctl"), &["controller", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["agent_id"], a.as_str());
    assert_eq!(listed[0]["status"], "revoked");
    assert_eq!(listed[0]["reason"], "keyCompromise");
    assert_eq!(listed[1]["reason"], "superseded");
}

#[test]
fn expired_foreign_tampered_and_mismatched_are_refused() {
    let e = Env::setup();
    e.issue("a");
    e.fails(
        None,
        &[
            "cert",
            "verify",
            "a.pem",
            "--ca",
            "ctl/ca.pem",
            "--at",
            "2999-01-01T00:00:00.000000Z",
        ],
        1,
        "expired",
    );
    // Another controller's CA.
    e.ok(
        Some("other"),
        &[
            "controller",
            "init",
            "--trust-domain",
            "acme.test",
            "--no-passphrase",
        ],
    );
    e.fails(
        None,
        &["cert", "verify", "a.pem", "--ca", "other/ca.pem"],
        1,
        "does not verify under the CA's key",
    );
    // A CRL with one changed byte.
    e.ok(Some("ctl"), &["controller", "crl", "--out", "crl.der"]);
    let mut crl = std::fs::read(e.path("crl.der")).expect("crl");
    let n = crl.len();
    crl[n - 5] ^= 1;
    std::fs::write(e.path("bad.der"), &crl).expect("write");
    e.fails(
        None,
        &[
            "cert",
            "verify",
            "a.pem",
            "--ca",
            "ctl/ca.pem",
            "--crl",
            "bad.der",
        ],
        1,
        "CRL refused",
    );
    // Another controller's CRL.
    e.ok(Some("other"), &["controller", "crl", "--out", "other.der"]);
    e.fails(
        None,
        &[
            "cert",
            "verify",
            "a.pem",
            "--ca",
            "ctl/ca.pem",
            "--crl",
            "other.der",
        ],
        1,
        "CRL refused",
    );
    // Enrolment as another agent: refused, nothing recorded.
    let before = e.event_types("ctl").len();
    // An existing output file (no --force): refused before anything is issued.
    e.fails(
        Some("ctl"),
        &["controller", "issue", "a.csr", "--out", "a.pem"],
        6,
        "--force",
    );
    let b = e.agent_id("b");
    e.fails(
        Some("ctl"),
        &[
            "controller",
            "issue",
            "a.csr",
            "--agent-id",
            &b,
            "--out",
            "x.pem",
        ],
        1,
        "another agent",
    );
    // A CSR whose signature does not verify (one changed byte, as DER).
    let pem = std::fs::read_to_string(e.path("a.csr")).expect("csr");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    let n = der.len();
    der[n - 1] ^= 1;
    std::fs::write(e.path("bad.csr"), &der).expect("write");
    e.fails(
        Some("ctl"),
        &["controller", "issue", "bad.csr", "--out", "y.pem"],
        1,
        "proof of possession",
    );
    e.fails(
        Some("ctl"),
        &["controller", "issue", "ctl/ca.pem", "--out", "z.pem"],
        3,
        "CSR refused",
    );
    assert_eq!(e.event_types("ctl").len(), before);
    assert!(!e.path("x.pem").exists() && !e.path("y.pem").exists());
}

#[test]
fn usage_and_identity_errors() {
    let e = Env::setup();
    e.fails(
        Some("ctl"),
        &[
            "controller",
            "init",
            "--trust-domain",
            "acme.test",
            "--no-passphrase",
        ],
        4,
        "already exists",
    );
    e.fails(
        Some("new"),
        &[
            "controller",
            "init",
            "--trust-domain",
            "Not Valid",
            "--no-passphrase",
        ],
        3,
        "trust domain",
    );
    e.fails(
        Some("ctl"),
        &["controller", "revoke", "--serial", "abcdef"],
        3,
        "not issued",
    );
    e.fails(
        Some("ctl"),
        &[
            "controller",
            "revoke",
            "--serial",
            "abcdef",
            "--reason",
            "bored",
        ],
        3,
        "unknown revocation reason",
    );
    e.fails(
        Some("ctl"),
        &["controller", "issue", "a.csr", "--ttl", "400d"],
        3,
        "lifetime",
    );
    e.fails(
        Some("long"),
        &[
            "controller",
            "init",
            "--trust-domain",
            "acme.test",
            "--no-passphrase",
            "--ca-ttl",
            "40000d",
        ],
        3,
        "at most",
    );
    assert!(
        !e.path("long").join("events.db").exists(),
        "nothing is created for a refused lifetime"
    );
    e.fails(
        Some("ctl"),
        &["controller", "issue", "a.csr", "--ttl", "soon"],
        3,
        "duration",
    );
    // An agent home is not a controller.
    e.fails(
        Some("a"),
        &["controller", "issue", "b.csr"],
        4,
        "not a controller home",
    );
    e.fails(
        None,
        &["cert", "verify", "a.csr", "--ca", "a.csr"],
        3,
        "not a usable CA certificate",
    );
}

#[test]
fn attestations_are_signed_recorded_and_verify() {
    let e = Env::setup();
    let a = e.agent_id("a");
    let b = e.agent_id("b");
    let code = "a".repeat(64);
    let conf = "b".repeat(64);
    e.fails(
        Some("ctl"),
        &[
            "controller",
            "attest",
            &a,
            "--codebase-hash",
            &code,
            "--config-hash",
            &conf,
        ],
        3,
        "no certificate was issued",
    );
    e.issue("a");
    let doc = e.ok(
        Some("ctl"),
        &[
            "controller",
            "attest",
            &a,
            "--codebase-hash",
            &code,
            "--config-hash",
            &conf,
            "--ttl",
            "1h",
        ],
    );
    let ca = accord_ca::CaCertificate::parse(&std::fs::read(e.path("ctl/ca.pem")).expect("ca"))
        .expect("ca");
    let now = accord_core::Timestamp::from_unix_micros(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_micros(),
        )
        .expect("micros"),
    )
    .expect("now");
    let aid = accord_core::AgentId::parse(&a).expect("id");
    let v = accord_ca::verify_attestation(
        doc.trim_end().as_bytes(),
        ca.public_key(),
        &aid,
        Some(ca.trust_domain()),
        &now,
    )
    .expect("the attestation verifies under the CA key");
    assert_eq!(v.attestation.codebase_hash.to_hex(), code);
    let bid = accord_core::AgentId::parse(&b).expect("id");
    assert!(
        accord_ca::verify_attestation(doc.trim_end().as_bytes(), ca.public_key(), &bid, None, &now)
            .is_err()
    );
    assert_eq!(
        e.event_types("ctl").last().map(String::as_str),
        Some("ca.attested")
    );
    std::fs::write(e.path("att.json"), &doc).expect("write");
    let v: Value = serde_json::from_str(&e.ok(
        None,
        &[
            "cert",
            "verify-attestation",
            "att.json",
            "--ca",
            "ctl/ca.pem",
            "--agent",
            &a,
            "--codebase-hash",
            &code,
            "--config-hash",
            &conf,
            "--json",
        ],
    ))
    .expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["codebase_hash"], code.as_str());
    // Presented by another agent, with another required hash, too late, or altered: refused.
    let base = [
        "cert",
        "verify-attestation",
        "att.json",
        "--ca",
        "ctl/ca.pem",
        "--agent",
    ];
    e.fails(
        None,
        &[&base[..], &[b.as_str()]].concat(),
        1,
        "is for agent",
    );
    let other = "c".repeat(64);
    e.fails(
        None,
        &[&base[..], &[a.as_str(), "--config-hash", &other]].concat(),
        1,
        "config_hash",
    );
    e.fails(
        None,
        &[
            &base[..],
            &[a.as_str(), "--at", "2999-01-01T00:00:00.000000Z"],
        ]
        .concat(),
        1,
        "expired",
    );
    std::fs::write(e.path("att.json"), doc.replace(&code, &other)).expect("write");
    e.fails(
        None,
        &[&base[..], &[a.as_str()]].concat(),
        1,
        "altered or forged",
    );
    // Another controller's CA does not vouch for it.
    e.ok(
        Some("other"),
        &[
            "controller",
            "init",
            "--trust-domain",
            "acme.test",
            "--no-passphrase",
        ],
    );
    std::fs::write(e.path("att.json"), &doc).expect("write");
    e.fails(
        None,
        &[
            "cert",
            "verify-attestation",
            "att.json",
            "--ca",
            "other/ca.pem",
            "--agent",
            &a,
        ],
        1,
        "trusted controller",
    );
    e.fails(
        Some("ctl"),
        &[
            "controller",
            "attest",
            &a,
            "--codebase-hash",
            "xyz",
            "--config-hash",
            &conf,
        ],
        3,
        "64 lower-case hex",
    );
}

/// The controller's key is encrypted at rest like any agent's: nothing is
/// issued without the passphrase.
#[test]
fn an_encrypted_controller_needs_its_passphrase() {
    let e = Env::new();
    let out = e.run_pw(
        Some("ctl"),
        Some("correct horse"),
        &["controller", "init", "--trust-domain", "acme.test"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: Value = serde_json::from_str(&e.ok(Some("ctl"), &["id", "--json"])).expect("json");
    assert_eq!(id["encrypted"], true);
    e.ok(Some("a"), &["init", "--no-passphrase"]);
    e.ok(Some("a"), &["csr", "--out", "a.csr"]);
    e.fails(
        Some("ctl"),
        &["controller", "issue", "a.csr", "--out", "a.pem"],
        4,
        "encrypted",
    );
    let out = e.run_pw(
        Some("ctl"),
        Some("wrong"),
        &["controller", "issue", "a.csr", "--out", "a.pem"],
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!e.path("a.pem").exists());
    let out = e.run_pw(
        Some("ctl"),
        Some("correct horse"),
        &["controller", "issue", "a.csr", "--out", "a.pem"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    e.ok(None, &["cert", "verify", "a.pem", "--ca", "ctl/ca.pem"]);
}
