//! Path validation of the X.509 chain builder behind RFC 3161 token
//! verification (`accord_tsp`, docs/PROTOCOL.md 12.6.3 steps 6–7), in
//! the style of x509-limbo: each case is a small PKI, a time-stamp token
//! signed under its TSA certificate, the trust anchors, and the outcome.
//!
//! The chain builder is reachable only through [`tsp::verify_token`] with
//! trust anchors, so every case is a token. The certificates are made at run
//! time with the `openssl` command (`openssl ca` for fixed validity dates),
//! and each token is a TSTInfo built here with a fixed `genTime`
//! (2030-01-01T00:00:00Z), signed with `openssl cms -sign -cades`, so the
//! outcome never depends on the clock: validity is checked at genTime.
//!
//! Self-contained on purpose: only accord-tsp's public API, `std` and
//! `openssl`. Without openssl the test says so and passes, except under CI
//! (`CI=true`).

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use accord_tsp::{self as tsp, ChainStatus, Imprint, Trust, TspError};

const GEN_TIME: &str = "20300101000000Z";
/// Validity that contains GEN_TIME.
const VALID: (&str, &str) = ("20200101000000Z", "20400101000000Z");
/// Ended one second before GEN_TIME.
const EXPIRED: (&str, &str) = ("20200101000000Z", "20291231235959Z");
/// Starts one second after GEN_TIME.
const NOT_YET: (&str, &str) = ("20300101000001Z", "20400101000000Z");

const EXTENSIONS: &str = "\
[ req ]
distinguished_name = dn
[ dn ]
[ v3_ca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
[ v3_ca_pathlen0 ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
[ v3_ca_no_ku ]
basicConstraints       = critical, CA:TRUE
[ v3_ca_not_ca ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, keyCertSign
[ v3_ca_no_bc ]
keyUsage               = critical, keyCertSign
[ v3_ca_no_keycertsign ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, digitalSignature, cRLSign
[ v3_ca_unknown_critical ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign
1.3.6.1.4.1.55555.1    = critical, DER:05:00
[ v3_ca_unknown_noncritical ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign
1.3.6.1.4.1.55555.1    = DER:05:00
[ v3_tsa ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, nonRepudiation
extendedKeyUsage       = critical, timeStamping
[ v3_tsa_eku_noncritical ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = timeStamping
[ v3_tsa_eku_codesigning ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = critical, codeSigning
[ v3_tsa_no_eku ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
[ v3_tsa_ku_keycertsign ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, keyCertSign
extendedKeyUsage       = critical, timeStamping
[ v3_tsa_unknown_critical ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = critical, timeStamping
1.3.6.1.4.1.55555.1    = critical, DER:05:00
";

const CA_CONFIG: &str = "\
[ ca ]
default_ca = ca_section
[ ca_section ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_any ]
O = optional
CN = supplied
";

// ----------------------------------------------------------------- helpers

fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("openssl is required for the X.509 path tests under CI and was not found");
        }
        eprintln!("SKIPPED: openssl not found; the X.509 path tests need it");
    }
    ok
}

/// A directory removed on drop (this file uses no tempfile crate).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!(
            "accord-x509-paths-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        fs::create_dir_all(p.join("newcerts")).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A throwaway PKI in a temporary directory: every certificate `NAME` is
/// `NAME.pem` with its key in `KEY.key` (usually `NAME.key`).
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Self {
        let pki = Pki {
            dir: TempDir::new(),
        };
        fs::write(pki.path("ext.cnf"), EXTENSIONS).unwrap();
        fs::write(pki.path("ca.cnf"), CA_CONFIG).unwrap();
        fs::write(pki.path("index.txt"), "").unwrap();
        fs::write(pki.path("serial"), "1000\n").unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    #[track_caller]
    fn openssl(&self, args: &[&str]) {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir.0)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn key(&self, key: &str) {
        if !self.path(&format!("{key}.key")).exists() {
            self.openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &format!("{key}.key"),
            ]);
        }
    }

    /// Certificate `name` with subject CN=`cn`, key `key`, extension section
    /// `ext` and validity `dates`, signed by `issuer` (`None`: self-signed).
    fn cert_with_key(
        &self,
        name: &str,
        cn: &str,
        key: &str,
        issuer: Option<(&str, &str)>,
        ext: &str,
        dates: (&str, &str),
    ) {
        self.key(key);
        let keyfile = format!("{key}.key");
        self.openssl(&[
            "req",
            "-new",
            "-config",
            "ext.cnf",
            "-key",
            &keyfile,
            "-subj",
            &format!("/O=Accord X509 Paths/CN={cn}"),
            "-out",
            "x.csr",
        ]);
        let out = format!("{name}.pem");
        let mut args = vec![
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-preserveDN",
            "-startdate",
            dates.0,
            "-enddate",
            dates.1,
            "-extfile",
            "ext.cnf",
            "-extensions",
            ext,
            "-in",
            "x.csr",
            "-out",
            &out,
            "-notext",
        ];
        let (cert, ikey);
        match issuer {
            None => args.extend_from_slice(&["-selfsign", "-keyfile", &keyfile]),
            Some((issuer_cert, issuer_key)) => {
                cert = format!("{issuer_cert}.pem");
                ikey = format!("{issuer_key}.key");
                args.extend_from_slice(&["-cert", &cert, "-keyfile", &ikey]);
            }
        }
        self.openssl(&args);
    }

    /// [`Pki::cert_with_key`] with a fresh key `name.key`, issued by the
    /// certificate `issuer` under its own key `issuer.key`.
    fn cert(&self, name: &str, cn: &str, issuer: &str, ext: &str, dates: (&str, &str)) {
        self.cert_with_key(name, cn, name, Some((issuer, issuer)), ext, dates);
    }

    fn root(&self, name: &str, cn: &str, dates: (&str, &str)) {
        self.cert_with_key(name, cn, name, None, "v3_ca", dates);
    }

    fn pem(&self, names: &[&str]) -> Vec<u8> {
        names
            .iter()
            .flat_map(|n| fs::read(self.path(&format!("{n}.pem"))).unwrap())
            .collect()
    }

    /// A time-stamp token over [`digest`] at [`GEN_TIME`], signed under
    /// certificate `signer` (key `signer.key`), embedding the certificates
    /// `embed`.
    fn token(&self, signer: &str, embed: &[&str]) -> Vec<u8> {
        let key = signer;
        fs::write(self.path("tstinfo.der"), tstinfo()).unwrap();
        let signer_pem = format!("{signer}.pem");
        let keyfile = format!("{key}.key");
        let mut args = vec![
            "cms",
            "-sign",
            "-cades",
            "-binary",
            "-nodetach",
            "-nosmimecap",
            "-econtent_type",
            "1.2.840.113549.1.9.16.1.4",
            "-in",
            "tstinfo.der",
            "-signer",
            &signer_pem,
            "-inkey",
            &keyfile,
            "-md",
            "sha256",
            "-outform",
            "DER",
            "-out",
            "out.tst",
        ];
        if !embed.is_empty() {
            fs::write(self.path("embed.pem"), self.pem(embed)).unwrap();
            args.extend_from_slice(&["-certfile", "embed.pem"]);
        }
        self.openssl(&args);
        fs::read(self.path("out.tst")).unwrap()
    }

    fn trust(&self, anchors: &[&str], intermediates: &[&str]) -> Trust {
        let mut t = Trust::from_pem_or_der(&self.pem(anchors)).unwrap();
        if !intermediates.is_empty() {
            t.add_intermediates(&self.pem(intermediates)).unwrap();
        }
        t
    }
}

// ------------------------------------------------------------------- DER

fn der(tag: u8, val: &[u8]) -> Vec<u8> {
    let n = val.len();
    let mut out = vec![tag];
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(val);
    out
}

/// The time-stamped digest (any 32 bytes: the chain does not depend on it).
fn digest() -> [u8; 32] {
    [0x5a; 32]
}

/// A DER TSTInfo (RFC 3161 §2.4.2): version 1, policy 2.999.1, SHA-256
/// imprint of [`digest`], serial 1, genTime [`GEN_TIME`]; no nonce, no tsa
/// name, no extensions.
fn tstinfo() -> Vec<u8> {
    let sha256 = der(
        0x30,
        &der(
            0x06,
            &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
        ),
    );
    let imprint = der(0x30, &[sha256, der(0x04, &digest())].concat());
    der(
        0x30,
        &[
            der(0x02, &[1]),
            der(0x06, &[0x88, 0x37, 0x01]),
            imprint,
            der(0x02, &[1]),
            der(0x18, GEN_TIME.as_bytes()),
        ]
        .concat(),
    )
}

// ------------------------------------------------------------------ cases

/// What verification must say.
enum Expect {
    /// Anchored, with this many certificates (TSA first, anchor last).
    Ok(usize),
    /// `TspError::Chain` whose message contains the text.
    Chain(&'static str),
    /// `TspError::NotValidAtGenTime` for a subject containing the text.
    NotValid(&'static str),
    /// `TspError::TsaCertificate` whose message contains the text.
    TsaCertificate(&'static str),
}

struct Case {
    name: &'static str,
    token: Vec<u8>,
    trust: Trust,
    expect: Expect,
}

fn outcome(r: &Result<tsp::TokenReport, TspError>) -> String {
    match r {
        Ok(rep) => format!("ok {:?}", rep.chain),
        Err(e) => format!("{e:?}"),
    }
}

fn agrees(expect: &Expect, r: &Result<tsp::TokenReport, TspError>) -> bool {
    match (expect, r) {
        (Expect::Ok(n), Ok(rep)) => {
            matches!(rep.chain, ChainStatus::Anchored { length, .. } if length == *n)
        }
        (Expect::Chain(t), Err(e @ TspError::Chain(_))) => e.to_string().contains(t),
        (Expect::NotValid(t), Err(TspError::NotValidAtGenTime { subject, .. })) => {
            subject.contains(t)
        }
        (Expect::TsaCertificate(t), Err(e @ TspError::TsaCertificate { .. })) => {
            e.to_string().contains(t)
        }
        _ => false,
    }
}

#[test]
fn x509_path_validation() {
    if !have_openssl() {
        return;
    }
    let p = Pki::new();
    let mut cases = Vec::new();
    let mut add = |name, token, trust, expect| {
        cases.push(Case {
            name,
            token,
            trust,
            expect,
        })
    };

    // The PKI. Root → Inter → TSA is the good chain; the others vary one thing.
    p.root("root", "Root", VALID);
    p.root("other-root", "Other Root", VALID);
    p.cert("inter", "Inter", "root", "v3_ca", VALID);
    p.cert("tsa", "TSA", "inter", "v3_tsa", VALID);
    p.cert("tsa-direct", "TSA Direct", "root", "v3_tsa", VALID);

    add(
        "good: root → TSA",
        p.token("tsa-direct", &[]),
        p.trust(&["root"], &[]),
        Expect::Ok(2),
    );
    add(
        "good: root → intermediate → TSA, intermediate in the token",
        p.token("tsa", &["inter"]),
        p.trust(&["root"], &[]),
        Expect::Ok(3),
    );
    add(
        "good: the intermediate given by the caller, not in the token",
        p.token("tsa", &[]),
        p.trust(&["root"], &["inter"]),
        Expect::Ok(3),
    );
    add(
        "good: the anchor embedded in the token too",
        p.token("tsa", &["inter", "root"]),
        p.trust(&["root"], &[]),
        Expect::Ok(3),
    );
    add(
        "good: the intermediate is the anchor",
        p.token("tsa", &[]),
        p.trust(&["inter"], &[]),
        Expect::Ok(2),
    );
    add(
        "good: one of several anchors",
        p.token("tsa", &["inter"]),
        p.trust(&["other-root", "root"], &[]),
        Expect::Ok(3),
    );
    add(
        "bad: anchored elsewhere",
        p.token("tsa", &["inter"]),
        p.trust(&["other-root"], &[]),
        Expect::Chain("not among the trust anchors"),
    );
    add(
        "bad: the intermediate missing",
        p.token("tsa", &[]),
        p.trust(&["root"], &[]),
        Expect::Chain("which is not among the trust anchors"),
    );

    // Validity at genTime.
    p.cert("inter-expired", "Inter Expired", "root", "v3_ca", EXPIRED);
    p.cert(
        "tsa-under-expired",
        "TSA Under Expired",
        "inter-expired",
        "v3_tsa",
        VALID,
    );
    add(
        "bad: expired intermediate",
        p.token("tsa-under-expired", &["inter-expired"]),
        p.trust(&["root"], &[]),
        Expect::NotValid("Inter Expired"),
    );
    p.cert("inter-not-yet", "Inter Not Yet", "root", "v3_ca", NOT_YET);
    p.cert(
        "tsa-under-not-yet",
        "TSA Under Not Yet",
        "inter-not-yet",
        "v3_tsa",
        VALID,
    );
    add(
        "bad: not-yet-valid intermediate",
        p.token("tsa-under-not-yet", &["inter-not-yet"]),
        p.trust(&["root"], &[]),
        Expect::NotValid("Inter Not Yet"),
    );
    p.cert("tsa-not-yet", "TSA Not Yet", "inter", "v3_tsa", NOT_YET);
    add(
        "bad: not-yet-valid TSA certificate",
        p.token("tsa-not-yet", &["inter"]),
        p.trust(&["root"], &[]),
        Expect::NotValid("TSA Not Yet"),
    );
    p.cert("tsa-expired", "TSA Expired", "inter", "v3_tsa", EXPIRED);
    add(
        "bad: expired TSA certificate",
        p.token("tsa-expired", &["inter"]),
        p.trust(&["root"], &[]),
        Expect::NotValid("TSA Expired"),
    );
    p.root("root-expired", "Root Expired", EXPIRED);
    p.cert(
        "tsa-under-root-expired",
        "TSA Under Root Expired",
        "root-expired",
        "v3_tsa",
        VALID,
    );
    add(
        "bad: expired anchor",
        p.token("tsa-under-root-expired", &[]),
        p.trust(&["root-expired"], &[]),
        Expect::NotValid("Root Expired"),
    );
    p.cert(
        "inter-edge",
        "Inter Edge",
        "root",
        "v3_ca",
        ("20200101000000Z", GEN_TIME),
    );
    p.cert(
        "tsa-under-edge",
        "TSA Under Edge",
        "inter-edge",
        "v3_tsa",
        (GEN_TIME, "20400101000000Z"),
    );
    add(
        "good: validity ending and starting exactly at genTime",
        p.token("tsa-under-edge", &["inter-edge"]),
        p.trust(&["root"], &[]),
        Expect::Ok(3),
    );

    // The TSA certificate's usage (RFC 3161 §2.3).
    for (name, ext, needle) in [
        (
            "bad: EKU not critical",
            "v3_tsa_eku_noncritical",
            "not marked critical",
        ),
        (
            "bad: wrong EKU (codeSigning, no id-kp-timeStamping)",
            "v3_tsa_eku_codesigning",
            "lacks id-kp-timeStamping",
        ),
        ("bad: no EKU", "v3_tsa_no_eku", "no extendedKeyUsage"),
        (
            "bad: TSA keyUsage without digitalSignature or nonRepudiation",
            "v3_tsa_ku_keycertsign",
            "neither digitalSignature nor nonRepudiation",
        ),
        (
            "bad: unknown critical extension in the TSA certificate",
            "v3_tsa_unknown_critical",
            "unsupported critical extension 1.3.6.1.4.1.55555.1",
        ),
    ] {
        let cert = format!("tsa-{ext}");
        p.cert(&cert, &format!("TSA {ext}"), "inter", ext, VALID);
        add(
            name,
            p.token(&cert, &["inter"]),
            p.trust(&["root"], &[]),
            Expect::TsaCertificate(needle),
        );
    }

    // The issuers' constraints.
    for (name, ext, expect) in [
        (
            "bad: intermediate with CA:FALSE",
            "v3_ca_not_ca",
            Expect::Chain("is not a CA"),
        ),
        (
            "bad: intermediate without basicConstraints",
            "v3_ca_no_bc",
            Expect::Chain("is not a CA"),
        ),
        (
            "bad: intermediate whose keyUsage lacks keyCertSign",
            "v3_ca_no_keycertsign",
            Expect::Chain("keyUsage without keyCertSign"),
        ),
        (
            "good: intermediate without keyUsage",
            "v3_ca_no_ku",
            Expect::Ok(3),
        ),
        (
            "bad: unknown critical extension in the intermediate",
            "v3_ca_unknown_critical",
            Expect::Chain("unsupported critical extension 1.3.6.1.4.1.55555.1"),
        ),
        (
            "good: unknown non-critical extension in the intermediate",
            "v3_ca_unknown_noncritical",
            Expect::Ok(3),
        ),
        (
            "good: pathlen:0 intermediate issuing the TSA certificate",
            "v3_ca_pathlen0",
            Expect::Ok(3),
        ),
    ] {
        let inter = format!("inter-{ext}");
        let tsa = format!("tsa-under-{ext}");
        p.cert(&inter, &format!("Inter {ext}"), "root", ext, VALID);
        p.cert(&tsa, &format!("TSA Under {ext}"), &inter, "v3_tsa", VALID);
        add(
            name,
            p.token(&tsa, &[&inter]),
            p.trust(&["root"], &[]),
            expect,
        );
    }
    p.cert(
        "below-pathlen0",
        "Below Pathlen0",
        "inter-v3_ca_pathlen0",
        "v3_ca",
        VALID,
    );
    p.cert(
        "tsa-below-pathlen0",
        "TSA Below Pathlen0",
        "below-pathlen0",
        "v3_tsa",
        VALID,
    );
    add(
        "bad: a CA below a pathlen:0 intermediate",
        p.token(
            "tsa-below-pathlen0",
            &["below-pathlen0", "inter-v3_ca_pathlen0"],
        ),
        p.trust(&["root"], &[]),
        Expect::Chain("path length constraint"),
    );

    // Names and keys.
    // The TSA certificate names "Inter" as its issuer, but the token only
    // carries a certificate of the same key named "Inter Renamed".
    p.cert_with_key(
        "inter-renamed",
        "Inter Renamed",
        "inter",
        Some(("root", "root")),
        "v3_ca",
        VALID,
    );
    add(
        "bad: issuer name matches no subject (same key, other name)",
        p.token("tsa", &["inter-renamed"]),
        p.trust(&["root"], &[]),
        Expect::Chain("was issued by CN=Inter,O=Accord X509 Paths, which is not among"),
    );
    // A certificate named "Inter" with another key.
    p.cert("inter-impostor", "Inter", "root", "v3_ca", VALID);
    add(
        "bad: issuer of the right name but another key",
        p.token("tsa", &["inter-impostor"]),
        p.trust(&["root"], &[]),
        Expect::Chain("does not verify under its issuer"),
    );
    add(
        "good: a same-name impostor next to the real intermediate",
        p.token("tsa", &["inter-impostor", "inter"]),
        p.trust(&["root"], &[]),
        Expect::Ok(3),
    );
    // An anchor with the root's name but another key.
    p.cert_with_key(
        "root-impostor",
        "Root",
        "root-impostor",
        None,
        "v3_ca",
        VALID,
    );
    add(
        "bad: anchor of the root's name with another key",
        p.token("tsa", &["inter", "root"]),
        p.trust(&["root-impostor"], &[]),
        Expect::Chain("self-signed"),
    );

    // Self-signed TSA certificates.
    p.cert_with_key("tsa-self", "TSA Self", "tsa-self", None, "v3_tsa", VALID);
    add(
        "bad: self-signed TSA certificate not among the anchors",
        p.token("tsa-self", &[]),
        p.trust(&["root"], &[]),
        Expect::Chain("self-signed"),
    );
    add(
        "good: self-signed TSA certificate that is the anchor",
        p.token("tsa-self", &[]),
        p.trust(&["tsa-self"], &[]),
        Expect::Ok(1),
    );

    // A loop: A signs B signs A, the TSA certificate issued by A.
    p.cert_with_key("loop-a0", "Loop A", "loop-a", None, "v3_ca", VALID);
    p.cert_with_key(
        "loop-b",
        "Loop B",
        "loop-b",
        Some(("loop-a0", "loop-a")),
        "v3_ca",
        VALID,
    );
    p.cert_with_key(
        "loop-a",
        "Loop A",
        "loop-a",
        Some(("loop-b", "loop-b")),
        "v3_ca",
        VALID,
    );
    p.cert_with_key(
        "tsa-loop",
        "TSA Loop",
        "tsa-loop",
        Some(("loop-a", "loop-a")),
        "v3_tsa",
        VALID,
    );
    add(
        "bad: a loop (A signs B signs A)",
        p.token("tsa-loop", &["loop-a", "loop-b"]),
        p.trust(&["root"], &[]),
        Expect::Chain(
            "CN=Loop B,O=Accord X509 Paths was issued by CN=Loop A,O=Accord X509 Paths, which is not among",
        ),
    );

    // Path length: the documented maximum is 8 certificates, TSA and anchor included.
    let mut prev = "root".to_owned();
    let mut inters = Vec::new();
    for i in 1..=7 {
        let name = format!("deep-{i}");
        p.cert(&name, &format!("Deep {i}"), &prev, "v3_ca", VALID);
        inters.push(name.clone());
        prev = name;
    }
    p.cert("tsa-deep-6", "TSA Deep 6", "deep-6", "v3_tsa", VALID);
    p.cert("tsa-deep-7", "TSA Deep 7", "deep-7", "v3_tsa", VALID);
    let six: Vec<&str> = inters[..6].iter().map(String::as_str).collect();
    let seven: Vec<&str> = inters.iter().map(String::as_str).collect();
    add(
        "good: 8 certificates (6 intermediates), the maximum",
        p.token("tsa-deep-6", &six),
        p.trust(&["root"], &[]),
        Expect::Ok(8),
    );
    add(
        "bad: 9 certificates (7 intermediates), one beyond the maximum",
        p.token("tsa-deep-7", &seven),
        p.trust(&["root"], &[]),
        Expect::Chain("no trust anchor within 8 certificates"),
    );
    add(
        "good: the deep chain cut to 2 by anchoring its last intermediate",
        p.token("tsa-deep-7", &["deep-7"]),
        p.trust(&["deep-7"], &[]),
        Expect::Ok(2),
    );
    // Every embedded certificate must verify under a certificate of the
    // pool (12.6.3 step 7), also those the path does not use.
    add(
        "bad: an embedded certificate whose issuer is in no pool",
        p.token("tsa-deep-7", &seven),
        p.trust(&["deep-7"], &[]),
        Expect::Chain("does not verify under any known certificate"),
    );

    let mut failures = Vec::new();
    for c in &cases {
        let r = tsp::verify_token(&c.token, &Imprint::sha256(digest()), None, Some(&c.trust));
        if !agrees(&c.expect, &r) {
            failures.push(format!("{}: got {}", c.name, outcome(&r)));
        }
    }
    println!("{} X.509 path cases", cases.len());
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} X.509 path cases disagree:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}
