//! RFC 3161 end to end against real TSAs made with `openssl ts` and served
//! over HTTP on 127.0.0.1 by a small thread in this test: `accord certify
//! --tsa`, `accord verify --tsa-ca`, `accord timestamp request | verify`,
//! and every way a token or a TSA can be wrong.
//!
//! Needs the `openssl` command (3.x). Without it the tests say so and
//! pass, except under CI (`CI=true`), where a missing openssl is a failure.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use accord_tsp::{self as tsp, Imprint, Trust};
use serde_json::Value;

// ---------------------------------------------------------------- helpers

fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("openssl is required for the RFC 3161 tests under CI and was not found");
        }
        eprintln!("SKIPPED: openssl not found; the RFC 3161 tests need it");
    }
    ok
}

#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

const EXTENSIONS: &str = "\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
O  = Throwaway Test
CN = Throwaway Test TSA Root CA
[ v3_ca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
[ v3_tsa ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, nonRepudiation
extendedKeyUsage       = critical, timeStamping
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ v3_tsa_noncritical ]
basicConstraints       = critical, CA:FALSE
extendedKeyUsage       = timeStamping
[ v3_tsa_noeku ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
[ v3_inter ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign
[ v3_inter_pathlen0 ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign
[ v3_inter_not_ca ]
basicConstraints       = critical, CA:FALSE
[ v3_tsa_two_purposes ]
basicConstraints       = critical, CA:FALSE
extendedKeyUsage       = critical, timeStamping, codeSigning
[ v3_tsa_badku ]
basicConstraints       = critical, CA:FALSE
2.5.29.15              = critical, DER:05:00
extendedKeyUsage       = critical, timeStamping
[ v3_tsa_san ]
basicConstraints       = critical, CA:FALSE
extendedKeyUsage       = critical, timeStamping
subjectAltName         = DNS:tsa.example
[ v3_inter_badku ]
basicConstraints       = critical, CA:TRUE
2.5.29.15              = critical, DER:05:00
";

const CA_CONFIG: &str = "\
[ ca ]
default_ca = ca_section
[ ca_section ]
dir = .
database = ./index.txt
new_certs_dir = .
serial = ./caserial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
O = optional
CN = supplied
";

#[derive(Clone, Copy, PartialEq)]
enum Alg {
    Ec,
    Rsa,
}

/// A throwaway CA and TSA in a temporary directory, as
/// `../shared/tools/make_test_tsa.sh` makes them.
struct Tsa {
    dir: tempfile::TempDir,
    alg: Alg,
}

impl Tsa {
    fn new(alg: Alg) -> Self {
        Self::with_ess(alg, "sha256")
    }

    /// `ess`: the signing-certificate hash (`sha1` gives an ESSCertID v1).
    fn with_ess(alg: Alg, ess: &str) -> Self {
        let t = Tsa {
            dir: tempfile::tempdir().unwrap(),
            alg,
        };
        let d = t.dir.path();
        fs::write(d.join("ext.cnf"), EXTENSIONS).unwrap();
        fs::write(d.join("ca.cnf"), CA_CONFIG).unwrap();
        fs::write(d.join("index.txt"), "").unwrap();
        fs::write(d.join("caserial"), "10\n").unwrap();
        fs::write(d.join("tsaserial"), "01\n").unwrap();
        t.genkey("ca.key");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-x509",
                "-config",
                "ext.cnf",
                "-extensions",
                "v3_ca",
                "-key",
                "ca.key",
                "-sha256",
                "-days",
                "3650",
                "-set_serial",
                "1",
                "-out",
                "ca.pem",
            ],
        );
        t.genkey("tsa.key");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "tsa.key",
                "-subj",
                "/O=Throwaway Test/CN=Throwaway Test TSA",
                "-out",
                "tsa.csr",
            ],
        );
        t.issue_tsa("v3_tsa", "tsa.pem", None);
        fs::copy(d.join("ca.pem"), d.join("certfile.pem")).unwrap();
        fs::write(
            d.join("tsa.cnf"),
            format!(
                "[ tsa ]\ndefault_tsa = tsa_config1\n[ tsa_config1 ]\ndir = .\nserial = $dir/tsaserial\n\
                 crypto_device = builtin\nsigner_cert = $dir/tsa.pem\ncerts = $dir/ca.pem\n\
                 signer_key = $dir/tsa.key\nsigner_digest = sha256\ndefault_policy = 2.999.1\n\
                 digests = sha256, sha384, sha512\naccuracy = secs:1, millisecs:500, microsecs:100\n\
                 clock_precision_digits = 3\nordering = yes\ntsa_name = yes\n\
                 ess_cert_id_chain = no\ness_cert_id_alg = {ess}\n"
            ),
        )
        .unwrap();
        t
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self) -> String {
        self.path("ca.pem").to_str().unwrap().to_owned()
    }

    fn genkey(&self, out: &str) {
        let args: &[&str] = match self.alg {
            Alg::Ec => &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                out,
            ],
            Alg::Rsa => &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                out,
            ],
        };
        openssl(self.dir.path(), args);
    }

    /// Issues a certificate for tsa.key with extension section `ext`;
    /// `dates` as `openssl ca` takes them (YYYYMMDDHHMMSSZ).
    fn issue_tsa(&self, ext: &str, out: &str, dates: Option<(&str, &str)>) {
        let d = self.dir.path();
        match dates {
            None => openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "tsa.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    "2",
                    "-days",
                    "1825",
                    "-sha256",
                    "-extfile",
                    "ext.cnf",
                    "-extensions",
                    ext,
                    "-out",
                    out,
                ],
            ),
            Some((start, end)) => openssl(
                d,
                &[
                    "ca",
                    "-batch",
                    "-config",
                    "ca.cnf",
                    "-cert",
                    "ca.pem",
                    "-keyfile",
                    "ca.key",
                    "-startdate",
                    start,
                    "-enddate",
                    end,
                    "-extfile",
                    "ext.cnf",
                    "-extensions",
                    ext,
                    "-in",
                    "tsa.csr",
                    "-out",
                    out,
                    "-notext",
                ],
            ),
        }
    }

    /// `openssl ts -reply` to a DER query.
    fn reply(&self, query: &[u8]) -> Vec<u8> {
        let d = self.dir.path();
        let q = tempfile::NamedTempFile::new_in(d).unwrap();
        fs::write(q.path(), query).unwrap();
        let r = q.path().with_extension("tsr");
        openssl(
            d,
            &[
                "ts",
                "-reply",
                "-config",
                "tsa.cnf",
                "-queryfile",
                q.path().to_str().unwrap(),
                "-out",
                r.to_str().unwrap(),
            ],
        );
        let out = fs::read(&r).unwrap();
        let _ = fs::remove_file(&r);
        out
    }

    /// A fresh query made by openssl for the SHA-256 digest `hex` (its own
    /// random nonce).
    fn openssl_query(&self, hex: &str) -> Vec<u8> {
        let q = self.path("other.tsq");
        openssl(
            self.dir.path(),
            &[
                "ts",
                "-query",
                "-digest",
                hex,
                "-sha256",
                "-cert",
                "-out",
                q.to_str().unwrap(),
            ],
        );
        fs::read(q).unwrap()
    }

    /// The bare token of a reply.
    fn token_of(reply: &[u8]) -> Vec<u8> {
        tsp::parse_response(reply).unwrap()
    }

    /// A token over `data` (SHA-256) with a fresh nonce.
    fn token_for(&self, data: &[u8]) -> Vec<u8> {
        let hex = accord_core::Hash32::of(data).to_hex();
        Self::token_of(&self.reply(&self.openssl_query(&hex)))
    }

    /// `token`'s TSTInfo signed again (CAdES signing-certificate-v2) by
    /// tsa.key under the certificate `cert`: how to get tokens from TSA
    /// certificates `openssl ts` itself refuses to use.
    fn resign(&self, token: &[u8], cert: &str) -> Vec<u8> {
        self.resign_with(token, cert, &[])
    }

    /// [`Tsa::resign`] embedding the certificates of `chain` (PEM) instead
    /// of the CA's.
    fn resign_chain(&self, token: &[u8], cert: &str, chain: &str) -> Vec<u8> {
        fs::copy(self.path(chain), self.path("certfile.pem")).unwrap();
        let out = self.resign_with(token, cert, &[]);
        fs::copy(self.path("ca.pem"), self.path("certfile.pem")).unwrap();
        out
    }

    /// [`Tsa::resign`] with extra `openssl cms -sign` options.
    fn resign_with(&self, token: &[u8], cert: &str, extra: &[&str]) -> Vec<u8> {
        self.sign_tstinfo(&tstinfo_of(token), cert, extra)
    }

    /// A token over the DER TSTInfo `tst`, signed (CAdES) by tsa.key under
    /// the certificate `cert`, with extra `openssl cms -sign` options.
    fn sign_tstinfo(&self, tst: &[u8], cert: &str, extra: &[&str]) -> Vec<u8> {
        let d = self.dir.path();
        fs::write(d.join("tstinfo.der"), tst).unwrap();
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
            cert,
            "-inkey",
            "tsa.key",
            "-certfile",
            "certfile.pem",
            "-md",
            "sha256",
            "-outform",
            "DER",
            "-out",
            "out.tst",
        ];
        args.extend_from_slice(extra);
        openssl(d, &args);
        fs::read(d.join("out.tst")).unwrap()
    }
}

// ---------------------------------------------------------------- DER surgery

/// (tag, header length, value length) of the DER element starting `b`.
fn der_head(b: &[u8]) -> (u8, usize, usize) {
    let l = b[1];
    if l < 0x80 {
        return (b[0], 2, usize::from(l));
    }
    let n = usize::from(l & 0x7f);
    let len = b[2..2 + n]
        .iter()
        .fold(0usize, |a, x| (a << 8) | usize::from(*x));
    (b[0], 2 + n, len)
}

/// The value of the DER element `tlv`.
fn der_value(tlv: &[u8]) -> &[u8] {
    let (_, h, l) = der_head(tlv);
    &tlv[h..h + l]
}

/// The elements (whole, in order) of a constructed value.
fn der_children(mut v: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !v.is_empty() {
        let (_, h, l) = der_head(v);
        out.push(v[..h + l].to_vec());
        v = &v[h + l..];
    }
    out
}

/// A DER element of tag `tag` around `val`.
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

/// The DER TSTInfo a token encapsulates.
fn tstinfo_of(token: &[u8]) -> Vec<u8> {
    let ci = der_children(der_value(token));
    let sd = der_children(der_value(&der_children(der_value(&ci[1]))[0]));
    let encap = der_children(der_value(&sd[2]));
    der_value(der_value(&encap[1])).to_vec()
}

/// An X.509 extension (id-ce arc `id`, critical) with DER value `value`.
fn ext(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut body = der(0x06, oid);
    if critical {
        body.extend(der(0x01, &[0xff]));
    }
    body.extend(der(0x04, value));
    der(0x30, &body)
}

/// `openssl dgst -sha256 -sign key` over `msg`, in `dir`.
fn sign_bytes(dir: &Path, key: &str, msg: &[u8]) -> Vec<u8> {
    fs::write(dir.join("to_sign.der"), msg).unwrap();
    openssl(
        dir,
        &[
            "dgst",
            "-sha256",
            "-sign",
            key,
            "-out",
            "sig.bin",
            "to_sign.der",
        ],
    );
    fs::read(dir.join("sig.bin")).unwrap()
}

/// The DER of a PEM certificate file, by openssl.
fn cert_der(dir: &Path, pem: &str) -> Vec<u8> {
    openssl(
        dir,
        &["x509", "-in", pem, "-outform", "DER", "-out", "cert.der"],
    );
    fs::read(dir.join("cert.der")).unwrap()
}

/// The certificate `der` (ECDSA-SHA256), its extensions passed through
/// `edit`, signed again by `key`: certificates openssl will not write.
fn recertify(
    dir: &Path,
    der_cert: &[u8],
    key: &str,
    edit: impl FnOnce(&mut Vec<Vec<u8>>),
) -> Vec<u8> {
    let parts = der_children(der_value(der_cert));
    let mut tbs = der_children(der_value(&parts[0]));
    let last = tbs.len() - 1;
    assert_eq!(tbs[last][0], 0xa3, "the certificate has no extensions");
    let mut exts = der_children(der_value(der_value(&tbs[last])));
    edit(&mut exts);
    tbs[last] = der(0xa3, &der(0x30, &exts.concat()));
    let tbs = der(0x30, &tbs.concat());
    let mut bits = vec![0u8];
    bits.extend(sign_bytes(dir, key, &tbs));
    der(0x30, &[tbs, parts[1].clone(), der(0x03, &bits)].concat())
}

/// `token` with its signed attributes passed through `edit`; signed again
/// by `key` over the attributes as edited (DER-sorted when `sort`), or
/// keeping the old signature when `key` is `None`.
fn resign_attrs(
    dir: &Path,
    token: &[u8],
    key: Option<&str>,
    sort: bool,
    edit: impl FnOnce(&mut Vec<Vec<u8>>),
) -> Vec<u8> {
    let ci = der_children(der_value(token));
    let sd_tlv = &der_children(der_value(&ci[1]))[0];
    let mut sd = der_children(der_value(sd_tlv));
    let last = sd.len() - 1;
    let mut si = der_children(der_value(&der_children(der_value(&sd[last]))[0]));
    assert_eq!(si[3][0], 0xa0);
    let mut attrs = der_children(der_value(&si[3]));
    edit(&mut attrs);
    if sort {
        attrs.sort();
    }
    let body = attrs.concat();
    if let Some(key) = key {
        let n = si.len() - 1;
        si[n] = der(0x04, &sign_bytes(dir, key, &der(0x31, &body)));
    }
    si[3] = der(0xa0, &body);
    sd[last] = der(0x31, &der(0x30, &si.concat()));
    let sd = der(0x30, &sd.concat());
    der(0x30, &[ci[0].clone(), der(0xa0, &sd)].concat())
}

/// How the loopback TSA server answers.
#[derive(Clone, Copy)]
enum Mode {
    /// `openssl ts -reply` to the query received.
    Honest,
    /// A genuine reply for the same digest, but for another query (other
    /// nonce): a replayed or misrouted answer.
    OtherQuery,
    /// A genuine reply for a query of other data.
    OtherData,
    /// status rejection (the query asks for SHA-1, which the TSA refuses).
    Rejection,
    /// 200, the right content type, garbage body.
    Garbage,
    /// 200 text/html (a web page, not a TSA).
    Html,
    /// 500.
    ServerError,
    /// A reply body of 2 MiB.
    Huge,
}

/// Serves `tsa` on 127.0.0.1; returns its URL. The thread lives as long
/// as the test process; each test has its own server.
fn serve(tsa: Tsa, mode: Mode) -> (String, Arc<Tsa>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/tsa", listener.local_addr().unwrap());
    let tsa = Arc::new(tsa);
    let t = Arc::clone(&tsa);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = handle(&t, mode, stream);
        }
    });
    (url, tsa)
}

fn handle(tsa: &Tsa, mode: Mode, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut query = vec![0u8; len.min(1 << 20)];
    reader.read_exact(&mut query)?;
    let (status, ctype, body) = match mode {
        Mode::Honest => (200, "application/timestamp-reply", tsa.reply(&query)),
        Mode::OtherQuery => {
            let (imprint, _) = tsp::parse_request(&query).unwrap();
            let other = tsa.openssl_query(&hex::encode(imprint.digest()));
            (200, "application/timestamp-reply", tsa.reply(&other))
        }
        Mode::OtherData => {
            let other = tsa.openssl_query(&"ab".repeat(32));
            (200, "application/timestamp-reply", tsa.reply(&other))
        }
        Mode::Rejection => {
            let q = tsa.path("sha1.tsq");
            fs::write(tsa.path("d.txt"), b"x").unwrap();
            openssl(
                tsa.dir.path(),
                &[
                    "ts",
                    "-query",
                    "-data",
                    "d.txt",
                    "-sha1",
                    "-out",
                    q.to_str().unwrap(),
                ],
            );
            (
                200,
                "application/timestamp-reply",
                tsa.reply(&fs::read(q).unwrap()),
            )
        }
        Mode::Garbage => (
            200,
            "application/timestamp-reply",
            b"\x30\x82\x01\x00garbage".to_vec(),
        ),
        Mode::Html => (
            200,
            "text/html",
            b"<html><body>Welcome</body></html>".to_vec(),
        ),
        Mode::ServerError => (500, "text/plain", b"boom".to_vec()),
        Mode::Huge => (200, "application/timestamp-reply", vec![0x30; 2 << 20]),
    };
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)?;
    stream.flush()
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        ok(&env.run(&["init", "--name", "tester", "--no-passphrase"]));
        for i in 0..5 {
            ok(&env.run(&["stamp", "step", "--payload", &format!("{{\"i\":{i}}}")]));
        }
        env
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_accord"))
            .arg("--home")
            .arg(self.dir.path().join("home"))
            .args(args)
            .env_remove("ACCORD_PASSPHRASE")
            .env_remove("ACCORD_HOME")
            // The loopback TSA must be reached directly, whatever proxy
            // the machine running the tests is configured with.
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
fn all(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
#[track_caller]
fn ok(o: &Output) -> String {
    assert_eq!(code(o), 0, "{}", all(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}
#[track_caller]
fn fails(o: &Output, want: i32, needle: &str) {
    assert_eq!(code(o), want, "{}", all(o));
    assert!(
        all(o).contains(needle),
        "expected {needle:?} in:\n{}",
        all(o)
    );
}

/// The archive's certification line, parsed.
fn certification(archive: &str) -> (Vec<String>, serde_json::Map<String, Value>) {
    let text = fs::read_to_string(archive).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let Value::Object(m) = serde_json::from_str(lines.last().unwrap()).unwrap() else {
        panic!("certification is not an object")
    };
    (lines, m)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

// ---------------------------------------------------------------- tests

#[test]
fn certify_with_a_tsa_then_verify_offline() {
    if !have_openssl() {
        return;
    }
    for alg in [Alg::Ec, Alg::Rsa] {
        let env = Env::new();
        let (url, tsa) = serve(Tsa::new(alg), Mode::Honest);
        let a = env.path("a.accord");
        let out = ok(&env.run(&["certify", "--out", &a, "--tsa", &url, "--tsa-ca", &tsa.ca()]));
        assert!(
            out.contains("timestamp valid (") && out.contains("CN=Throwaway Test TSA"),
            "{out}"
        );
        // With the anchor: the time and the TSA, exit 0.
        let out = ok(&env.run(&["verify", &a, "--tsa-ca", &tsa.ca()]));
        assert!(
            out.contains("archive verified — 6 events")
                && out.contains("timestamp valid (20")
                && out.contains("Z, by CN=Throwaway Test TSA,O=Throwaway Test)"),
            "{out}"
        );
        let j: Value = serde_json::from_str(
            ok(&env.run(&["verify", &a, "--tsa-ca", &tsa.ca(), "--json"])).trim(),
        )
        .unwrap();
        assert_eq!(j["timestamp"]["chain_checked"], true);
        assert_eq!(
            j["timestamp"]["tsa"],
            "CN=Throwaway Test TSA,O=Throwaway Test"
        );
        assert_eq!(j["timestamp"]["policy"], "2.999.1");
        assert_eq!(j["timestamp"]["hash_alg"], "SHA-256");
        assert!(j["timestamp"]["gen_time"].as_str().unwrap().ends_with('Z'));
        // Without an anchor: everything else checked, and said plainly.
        let o = env.run(&["verify", &a]);
        let text = ok(&o);
        assert!(
            text.contains("NOT CHECKED") && text.contains("--tsa-ca"),
            "{text}"
        );
        assert!(all(&o).contains("warning: the archive's RFC 3161 timestamp was not checked"));
        let j: Value =
            serde_json::from_str(ok(&env.run(&["verify", &a, "--json"])).trim()).unwrap();
        assert_eq!(j["timestamp"]["chain_checked"], false);
        assert_eq!(j["timestamp"]["anchor"], Value::Null);

        // The token really is over SHA-256 of the certified checkpoint
        // note, and openssl agrees that it is a valid token for it.
        let (_, m) = certification(&a);
        let note = m["checkpoint"].as_str().unwrap();
        let token = unb64(m["timestamp"].as_str().unwrap());
        fs::write(env.path("t.tst"), &token).unwrap();
        fs::write(env.path("note"), note).unwrap();
        openssl(
            env.dir.path(),
            &[
                "ts",
                "-verify",
                "-data",
                "note",
                "-in",
                "t.tst",
                "-token_in",
                "-CAfile",
                &tsa.ca(),
            ],
        );
        let r = tsp::verify_token(
            &token,
            &Imprint::sha256(accord_core::Hash32::of(note.as_bytes()).0),
            None,
            Some(&Trust::from_pem_or_der(&fs::read(tsa.ca()).unwrap()).unwrap()),
        )
        .unwrap();
        assert!(r.nonce.is_some());

        // Another CA of the same name does not vouch for this TSA.
        let other = Tsa::new(alg);
        fails(
            &env.run(&["verify", &a, "--tsa-ca", &other.ca()]),
            1,
            "not among the trust anchors",
        );
    }
}

#[test]
fn archives_without_a_token_and_bad_anchor_files() {
    if !have_openssl() {
        return;
    }
    let env = Env::new();
    let tsa = Tsa::new(Alg::Ec);
    let a = env.path("plain.accord");
    ok(&env.run(&["certify", "--out", &a]));
    assert!(ok(&env.run(&["verify", &a])).contains("no RFC 3161 timestamp"));
    // Asking for a proven time of an archive that has none fails.
    fails(
        &env.run(&["verify", &a, "--tsa-ca", &tsa.ca()]),
        1,
        "carries no RFC 3161 timestamp",
    );
    // Anchor files that are not certificates are bad input.
    fs::write(env.path("junk.pem"), "not a certificate").unwrap();
    fails(
        &env.run(&["verify", &a, "--tsa-ca", &env.path("junk.pem")]),
        3,
        "--tsa-ca",
    );
    fails(
        &env.run(&["verify", &a, "--tsa-ca", &env.path("missing.pem")]),
        3,
        "cannot open",
    );
    // --tsa needs --tsa-ca (usage error).
    assert_eq!(
        code(&env.run(&[
            "certify",
            "--out",
            &env.path("x"),
            "--tsa",
            "http://127.0.0.1:9/"
        ])),
        2
    );
    // Exports carry no timestamp.
    ok(&env.run(&["export", "--out", &env.path("e.jsonl")]));
    fails(
        &env.run(&["verify", &env.path("e.jsonl"), "--tsa-ca", &tsa.ca()]),
        3,
        "not a certified archive",
    );
}

#[test]
fn any_changed_token_byte_in_an_archive_fails_and_says_where() {
    if !have_openssl() {
        return;
    }
    let env = Env::new();
    let (url, tsa) = serve(Tsa::new(Alg::Ec), Mode::Honest);
    let a = env.path("a.accord");
    ok(&env.run(&["certify", "--out", &a, "--tsa", &url, "--tsa-ca", &tsa.ca()]));
    let (lines, m) = certification(&a);
    let token = unb64(m["timestamp"].as_str().unwrap());
    let n = lines.len();
    let t = env.path("t.accord");
    let write = |token: &[u8]| {
        let mut m = m.clone();
        m.insert("timestamp".into(), b64(token).into());
        let mut text = lines[..n - 1].join("\n");
        text.push('\n');
        text.push_str(&serde_json::to_string(&Value::Object(m)).unwrap());
        text.push('\n');
        fs::write(&t, text).unwrap();
    };
    // Sanity: re-encoding the same token verifies.
    write(&token);
    ok(&env.run(&["verify", &t, "--tsa-ca", &tsa.ca()]));
    // Positions: inside the TSTInfo (near the start), inside the
    // certificates (middle), inside the signature (last bytes).
    let positions = [60, 80, token.len() / 2, token.len() - 40, token.len() - 3];
    for (i, pos) in positions.into_iter().enumerate() {
        let mut bad = token.clone();
        bad[pos] ^= 0x01;
        write(&bad);
        for extra in [&["--tsa-ca", &tsa.ca()][..], &[][..]] {
            let mut args = vec!["verify", t.as_str()];
            args.extend_from_slice(extra);
            let o = env.run(&args);
            fails(&o, 1, &format!("line {n}: certification:"));
            let msg = all(&o);
            assert!(
                msg.contains("RFC 3161 timestamp") || msg.contains("signature does not verify"),
                "flip {i} at {pos}: {msg}"
            );
        }
    }
    // Removing the token breaks the certification signature.
    let mut m2 = m.clone();
    m2.remove("timestamp");
    fs::write(
        &t,
        lines[..n - 1].join("\n")
            + "\n"
            + &serde_json::to_string(&Value::Object(m2)).unwrap()
            + "\n",
    )
    .unwrap();
    fails(&env.run(&["verify", &t]), 1, "signature does not verify");
    // A token over other data, even a valid one from the same TSA.
    write(&tsa.token_for(b"other data"));
    fails(
        &env.run(&["verify", &t, "--tsa-ca", &tsa.ca()]),
        1,
        "message imprint",
    );
}

#[test]
fn every_single_byte_change_of_a_token_is_refused() {
    if !have_openssl() {
        return;
    }
    for (alg, ess) in [(Alg::Ec, "sha256"), (Alg::Rsa, "sha1")] {
        let tsa = Tsa::with_ess(alg, ess);
        let data = b"the data";
        let token = tsa.token_for(data);
        let trust = Trust::from_pem_or_der(&fs::read(tsa.ca()).unwrap()).unwrap();
        let imprint = Imprint::of(tsp::HashAlg::Sha256, data);
        tsp::verify_token(&token, &imprint, None, Some(&trust)).unwrap();
        for pos in 0..token.len() {
            for bit in [0x01, 0x80] {
                let mut bad = token.clone();
                bad[pos] ^= bit;
                assert!(
                    tsp::verify_token(&bad, &imprint, None, Some(&trust)).is_err(),
                    "flipping {bit:#x} at byte {pos} of {} went unnoticed",
                    token.len()
                );
            }
        }
        // Truncations and trailing bytes.
        for cut in [1, 10, token.len() / 2] {
            assert!(
                tsp::verify_token(&token[..token.len() - cut], &imprint, None, Some(&trust))
                    .is_err()
            );
        }
        let mut longer = token.clone();
        longer.push(0);
        assert!(tsp::verify_token(&longer, &imprint, None, Some(&trust)).is_err());
    }
}

#[test]
fn timestamp_request_and_verify_commands() {
    if !have_openssl() {
        return;
    }
    let env = Env::new();
    let (url, tsa) = serve(Tsa::new(Alg::Ec), Mode::Honest);
    let file = env.path("report.pdf");
    fs::write(&file, vec![7u8; 300_000]).unwrap();
    let tok = env.path("report.tst");
    let out = ok(&env.run(&[
        "timestamp",
        "request",
        "--tsa",
        &url,
        "--tsa-ca",
        &tsa.ca(),
        &file,
        "--out",
        &tok,
    ]));
    assert!(out.contains("timestamp valid ("), "{out}");
    fails(
        &env.run(&[
            "timestamp",
            "request",
            "--tsa",
            &url,
            "--tsa-ca",
            &tsa.ca(),
            &file,
            "--out",
            &tok,
        ]),
        6,
        "--force",
    );
    let digest = accord_core::Hash32::of(&fs::read(&file).unwrap()).to_hex();
    let out = ok(&env.run(&[
        "timestamp",
        "verify",
        &tok,
        "--digest",
        &digest,
        "--tsa-ca",
        &tsa.ca(),
    ]));
    assert!(
        out.contains("timestamp valid (")
            && out.contains("by CN=Throwaway Test TSA,O=Throwaway Test)"),
        "{out}"
    );
    // openssl agrees the token is for the file.
    openssl(
        env.dir.path(),
        &[
            "ts",
            "-verify",
            "-data",
            &file,
            "-in",
            &tok,
            "-token_in",
            "-CAfile",
            &tsa.ca(),
        ],
    );
    let j: Value = serde_json::from_str(
        ok(&env.run(&[
            "timestamp",
            "verify",
            &tok,
            "--digest",
            &digest,
            "--tsa-ca",
            &tsa.ca(),
            "--json",
        ]))
        .trim(),
    )
    .unwrap();
    assert_eq!(j["ok"], true);
    let nonce = j["nonce"].as_str().unwrap().to_owned();
    ok(&env.run(&[
        "timestamp",
        "verify",
        &tok,
        "--digest",
        &digest,
        "--tsa-ca",
        &tsa.ca(),
        "--nonce",
        &nonce,
    ]));
    // Wrong nonce, wrong digest, untrusted TSA.
    fails(
        &env.run(&[
            "timestamp",
            "verify",
            &tok,
            "--digest",
            &digest,
            "--tsa-ca",
            &tsa.ca(),
            "--nonce",
            "0102030405060708",
        ]),
        1,
        "nonce",
    );
    let wrong = accord_core::Hash32::of(b"other").to_hex();
    fails(
        &env.run(&[
            "timestamp",
            "verify",
            &tok,
            "--digest",
            &wrong,
            "--tsa-ca",
            &tsa.ca(),
        ]),
        1,
        "message imprint",
    );
    fails(
        &env.run(&[
            "timestamp",
            "verify",
            &tok,
            "--digest",
            &"ab".repeat(48),
            "--tsa-ca",
            &tsa.ca(),
        ]),
        1,
        "uses SHA-256, expected SHA-384",
    );
    let other = Tsa::new(Alg::Ec);
    fails(
        &env.run(&[
            "timestamp",
            "verify",
            &tok,
            "--digest",
            &digest,
            "--tsa-ca",
            &other.ca(),
        ]),
        1,
        "not among the trust anchors",
    );
    // A whole reply (.tsr) from openssl is accepted too, for SHA-512.
    let q = tsa.path("q512.tsq");
    openssl(
        tsa.dir.path(),
        &[
            "ts",
            "-query",
            "-data",
            &file,
            "-sha512",
            "-cert",
            "-out",
            q.to_str().unwrap(),
        ],
    );
    let reply = tsa.reply(&fs::read(&q).unwrap());
    fs::write(env.path("r.tsr"), &reply).unwrap();
    let d512 = tsp::HashAlg::Sha512.digest(&fs::read(&file).unwrap());
    ok(&env.run(&[
        "timestamp",
        "verify",
        &env.path("r.tsr"),
        "--digest",
        &hex::encode(d512),
        "--tsa-ca",
        &tsa.ca(),
    ]));
    // Bad input: not hex, not a token.
    fails(
        &env.run(&[
            "timestamp",
            "verify",
            &tok,
            "--digest",
            "xyz",
            "--tsa-ca",
            &tsa.ca(),
        ]),
        3,
        "--digest",
    );
    fs::write(env.path("junk.tst"), b"<html>").unwrap();
    fails(
        &env.run(&[
            "timestamp",
            "verify",
            &env.path("junk.tst"),
            "--digest",
            &digest,
            "--tsa-ca",
            &tsa.ca(),
        ]),
        1,
        "not valid DER",
    );
}

#[test]
fn bad_tsa_certificates_are_refused() {
    if !have_openssl() {
        return;
    }
    let env = Env::new();
    let tsa = Tsa::new(Alg::Ec);
    let data = b"evidence";
    let digest = accord_core::Hash32::of(data).to_hex();
    let check = |token: &[u8], needle: &str| {
        let p = env.path("bad.tst");
        fs::write(&p, token).unwrap();
        fails(
            &env.run(&[
                "timestamp",
                "verify",
                &p,
                "--digest",
                &digest,
                "--tsa-ca",
                &tsa.ca(),
            ]),
            1,
            needle,
        );
    };
    let good = tsa.token_for(data);
    // A re-signed token under the good certificate still verifies: the
    // failures below come from the certificates, not from re-signing.
    let resigned = tsa.resign(&good, "tsa.pem");
    let p = env.path("ok.tst");
    fs::write(&p, &resigned).unwrap();
    ok(&env.run(&[
        "timestamp",
        "verify",
        &p,
        "--digest",
        &digest,
        "--tsa-ca",
        &tsa.ca(),
    ]));

    // A signer named by subject key identifier (SignerInfo version 3).
    fs::write(&p, tsa.resign_with(&good, "tsa.pem", &["-keyid"])).unwrap();
    ok(&env.run(&[
        "timestamp",
        "verify",
        &p,
        "--digest",
        &digest,
        "--tsa-ca",
        &tsa.ca(),
    ]));

    tsa.issue_tsa("v3_tsa_noncritical", "noncritical.pem", None);
    check(&tsa.resign(&good, "noncritical.pem"), "not marked critical");
    tsa.issue_tsa("v3_tsa_noeku", "noeku.pem", None);
    check(&tsa.resign(&good, "noeku.pem"), "no extendedKeyUsage");
    tsa.issue_tsa("v3_tsa_two_purposes", "two.pem", None);
    check(&tsa.resign(&good, "two.pem"), "id-kp-timeStamping alone");
    // Expired long before the token was made: openssl ts still signs
    // with it; the verifier checks validity at genTime.
    tsa.issue_tsa(
        "v3_tsa",
        "expired.pem",
        Some(("20200101000000Z", "20210101000000Z")),
    );
    check(
        &tsa.resign(&good, "expired.pem"),
        "was not valid at the token's time",
    );
    // Not yet valid at genTime.
    tsa.issue_tsa(
        "v3_tsa",
        "future.pem",
        Some(("20990101000000Z", "21000101000000Z")),
    );
    check(
        &tsa.resign(&good, "future.pem"),
        "was not valid at the token's time",
    );
    // The real openssl TSA signing with the expired certificate.
    fs::copy(tsa.path("expired.pem"), tsa.path("tsa.pem")).unwrap();
    check(&tsa.token_for(data), "was not valid at the token's time");
}

#[test]
fn misbehaving_tsas_are_refused_before_anything_is_written() {
    if !have_openssl() {
        return;
    }
    let env = Env::new();
    let cases = [
        (Mode::OtherQuery, 1, "nonce"),
        (Mode::OtherData, 1, "message imprint"),
        (Mode::Rejection, 6, "rejection"),
        (Mode::Garbage, 1, "not valid DER"),
        (Mode::Html, 6, "text/html, not application/timestamp-reply"),
        (Mode::ServerError, 6, "HTTP 500"),
        (Mode::Huge, 6, "larger than 1048576 bytes"),
    ];
    for (mode, want, needle) in cases {
        let (url, tsa) = serve(Tsa::new(Alg::Ec), mode);
        let a = env.path("a.accord");
        fails(
            &env.run(&["certify", "--out", &a, "--tsa", &url, "--tsa-ca", &tsa.ca()]),
            want,
            needle,
        );
        assert!(!Path::new(&a).exists(), "a partial archive was left behind");
        let f = env.path("f");
        fs::write(&f, b"x").unwrap();
        fails(
            &env.run(&[
                "timestamp",
                "request",
                "--tsa",
                &url,
                "--tsa-ca",
                &tsa.ca(),
                &f,
                "--out",
                &env.path("f.tst"),
            ]),
            want,
            needle,
        );
    }
    // An honest TSA that the anchor does not vouch for.
    let (url, _tsa) = serve(Tsa::new(Alg::Ec), Mode::Honest);
    let stranger = Tsa::new(Alg::Ec);
    fails(
        &env.run(&[
            "certify",
            "--out",
            &env.path("b.accord"),
            "--tsa",
            &url,
            "--tsa-ca",
            &stranger.ca(),
        ]),
        1,
        "not among the trust anchors",
    );
    // Only plain HTTP URLs (bad input, nothing is sent).
    fails(
        &env.run(&[
            "certify",
            "--out",
            &env.path("d.accord"),
            "--tsa",
            "https://127.0.0.1:9/",
            "--tsa-ca",
            &stranger.ca(),
        ]),
        3,
        "plain HTTP only",
    );
    assert!(!Path::new(&env.path("d.accord")).exists());
    // Nothing listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    fails(
        &env.run(&[
            "certify",
            "--out",
            &env.path("c.accord"),
            "--tsa",
            &format!("http://127.0.0.1:{port}/"),
            "--tsa-ca",
            &stranger.ca(),
        ]),
        6,
        "is the TSA running at",
    );
}

#[test]
fn rsa_pss_and_sha384_signatures_verify() {
    if !have_openssl() {
        return;
    }
    let env = Env::new();
    let tsa = Tsa::new(Alg::Rsa);
    let data = b"pss";
    let digest = accord_core::Hash32::of(data).to_hex();
    let good = tsa.token_for(data);
    let p = env.path("t.tst");
    for extra in [
        &["-keyopt", "rsa_padding_mode:pss"][..],
        &[
            "-keyopt",
            "rsa_padding_mode:pss",
            "-keyopt",
            "rsa_pss_saltlen:20",
        ][..],
    ] {
        let token = tsa.resign_with(&good, "tsa.pem", extra);
        fs::write(&p, &token).unwrap();
        ok(&env.run(&[
            "timestamp",
            "verify",
            &p,
            "--digest",
            &digest,
            "--tsa-ca",
            &tsa.ca(),
        ]));
        // A changed signature byte still fails under PSS.
        let mut bad = token.clone();
        let n = bad.len() - 5;
        bad[n] ^= 1;
        fs::write(&p, &bad).unwrap();
        fails(
            &env.run(&[
                "timestamp",
                "verify",
                &p,
                "--digest",
                &digest,
                "--tsa-ca",
                &tsa.ca(),
            ]),
            1,
            "signature",
        );
    }
    // SHA-384 for the CMS digest and signature.
    let token = tsa.resign_with(&good, "tsa.pem", &["-md", "sha384"]);
    fs::write(&p, &token).unwrap();
    ok(&env.run(&[
        "timestamp",
        "verify",
        &p,
        "--digest",
        &digest,
        "--tsa-ca",
        &tsa.ca(),
    ]));
}

#[test]
fn chains_through_intermediates_need_real_cas() {
    if !have_openssl() {
        return;
    }
    let env = Env::new();
    let tsa = Tsa::new(Alg::Ec);
    let d = tsa.dir.path();
    let data = b"chain";
    let digest = accord_core::Hash32::of(data).to_hex();
    // issuer key/cert, subject CN, extension section, output name.
    let issue = |issuer: &str, key: &str, cn: &str, ext: &str, out: &str, serial: &str| {
        tsa.genkey(&format!("{out}.key"));
        let subj = format!("/O=Throwaway Test/CN={cn}");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                &format!("{out}.key"),
                "-subj",
                &subj,
                "-out",
                "x.csr",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "x.csr",
                "-CA",
                issuer,
                "-CAkey",
                key,
                "-set_serial",
                serial,
                "-days",
                "365",
                "-extfile",
                "ext.cnf",
                "-extensions",
                ext,
                "-out",
                &format!("{out}.pem"),
            ],
        );
    };
    // The TSA key (tsa.key) certified by an intermediate.
    let tsa_under = |inter: &str, out: &str, serial: &str| {
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "tsa.csr",
                "-CA",
                &format!("{inter}.pem"),
                "-CAkey",
                &format!("{inter}.key"),
                "-set_serial",
                serial,
                "-days",
                "365",
                "-extfile",
                "ext.cnf",
                "-extensions",
                "v3_tsa",
                "-out",
                out,
            ],
        );
    };
    let chain = |name: &str, parts: &[&str]| {
        let mut pem = Vec::new();
        for p in parts {
            pem.extend(fs::read(d.join(p)).unwrap());
        }
        fs::write(d.join(name), pem).unwrap();
    };
    // Each token is made after the certificates it is re-signed under:
    // validity is checked at genTime, to the second.
    let verify = |token: &[u8]| {
        let p = env.path("c.tst");
        fs::write(&p, token).unwrap();
        env.run(&[
            "timestamp",
            "verify",
            &p,
            "--digest",
            &digest,
            "--tsa-ca",
            &tsa.ca(),
        ])
    };

    // root → intermediate (CA) → TSA verifies, the intermediate taken from the token.
    issue(
        "ca.pem",
        "ca.key",
        "Intermediate",
        "v3_inter",
        "inter",
        "20",
    );
    tsa_under("inter", "tsa_i.pem", "21");
    chain("chain_i.pem", &["inter.pem", "ca.pem"]);
    let out = ok(&verify(&tsa.resign_chain(
        &tsa.token_for(data),
        "tsa_i.pem",
        "chain_i.pem",
    )));
    assert!(out.contains("(3 certificates)"), "{out}");
    // Without the intermediate in the token, the chain cannot be built.
    fails(
        &verify(&tsa.resign_chain(&tsa.token_for(data), "tsa_i.pem", "ca.pem")),
        1,
        "not among the trust anchors",
    );
    // …unless the caller supplies it as an (untrusted) intermediate.
    let token = tsa.resign_chain(&tsa.token_for(data), "tsa_i.pem", "ca.pem");
    let mut trust = Trust::from_pem_or_der(&fs::read(tsa.ca()).unwrap()).unwrap();
    let imprint = Imprint::of(tsp::HashAlg::Sha256, data);
    assert!(tsp::verify_token(&token, &imprint, None, Some(&trust)).is_err());
    trust
        .add_intermediates(&fs::read(d.join("inter.pem")).unwrap())
        .unwrap();
    let r = tsp::verify_token(&token, &imprint, None, Some(&trust)).unwrap();
    assert!(matches!(
        r.chain,
        tsp::ChainStatus::Anchored { length: 3, .. }
    ));
    // An "intermediate" that is not a CA cannot issue the TSA certificate.
    issue(
        "ca.pem",
        "ca.key",
        "Not A CA",
        "v3_inter_not_ca",
        "notca",
        "22",
    );
    tsa_under("notca", "tsa_n.pem", "23");
    chain("chain_n.pem", &["notca.pem", "ca.pem"]);
    fails(
        &verify(&tsa.resign_chain(&tsa.token_for(data), "tsa_n.pem", "chain_n.pem")),
        1,
        "is not a CA",
    );
    // pathlen:0 forbids a further CA below it.
    issue(
        "ca.pem",
        "ca.key",
        "Pathlen Zero",
        "v3_inter_pathlen0",
        "p0",
        "24",
    );
    issue(
        "p0.pem",
        "p0.key",
        "Below Pathlen",
        "v3_inter",
        "below",
        "25",
    );
    tsa_under("below", "tsa_p.pem", "26");
    chain("chain_p.pem", &["below.pem", "p0.pem", "ca.pem"]);
    fails(
        &verify(&tsa.resign_chain(&tsa.token_for(data), "tsa_p.pem", "chain_p.pem")),
        1,
        "path length constraint",
    );
}

/// `verify_token` with `trust` refuses `token`, saying `needle`.
#[track_caller]
fn refused(token: &[u8], imprint: &Imprint, trust: &Trust, needle: &str) {
    let e = tsp::verify_token(token, imprint, None, Some(trust))
        .unwrap_err()
        .to_string();
    assert!(e.contains(needle), "expected {needle:?} in: {e}");
}

#[test]
fn malformed_or_duplicated_key_usage_is_refused() {
    if !have_openssl() {
        return;
    }
    let tsa = Tsa::new(Alg::Ec);
    let d = tsa.dir.path();
    let data = b"key usage";
    let imprint = Imprint::of(tsp::HashAlg::Sha256, data);
    let anchors = || Trust::from_pem_or_der(&fs::read(tsa.ca()).unwrap()).unwrap();
    let with = |inter: &[u8]| {
        let mut t = anchors();
        t.add_intermediates(inter).unwrap();
        t
    };

    // A TSA certificate whose keyUsage is a NULL, not a BIT STRING.
    tsa.issue_tsa("v3_tsa_badku", "badku.pem", None);
    refused(
        &tsa.resign(&tsa.token_for(data), "badku.pem"),
        &imprint,
        &anchors(),
        "keyUsage unreadable",
    );

    // An intermediate CA `out` with extension section `ext`, and the TSA
    // key certified by it as `out`_tsa.pem.
    let issue_ca = |ext: &str, out: &str, serial: &str| {
        tsa.genkey(&format!("{out}.key"));
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                &format!("{out}.key"),
                "-subj",
                "/O=Throwaway Test/CN=Intermediate",
                "-out",
                "x.csr",
            ],
        );
        for (csr, ca, key, ext, serial, cert) in [
            (
                "x.csr",
                "ca.pem".to_owned(),
                "ca.key".to_owned(),
                ext,
                serial.to_owned(),
                format!("{out}.pem"),
            ),
            (
                "tsa.csr",
                format!("{out}.pem"),
                format!("{out}.key"),
                "v3_tsa",
                format!("{serial}1"),
                format!("{out}_tsa.pem"),
            ),
        ] {
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    csr,
                    "-CA",
                    &ca,
                    "-CAkey",
                    &key,
                    "-set_serial",
                    &serial,
                    "-days",
                    "365",
                    "-extfile",
                    "ext.cnf",
                    "-extensions",
                    ext,
                    "-out",
                    &cert,
                ],
            );
        }
    };

    // keyUsage written twice on an issuing CA: the first allows
    // keyCertSign, the second does not. RFC 5280 §4.2 allows one.
    issue_ca("v3_inter", "inter", "30");
    let token = tsa.resign(&tsa.token_for(data), "inter_tsa.pem");
    let inter = cert_der(d, "inter.pem");
    tsp::verify_token(&token, &imprint, None, Some(&with(&inter))).unwrap();
    // Re-signing the certificate unchanged keeps it valid…
    let same = recertify(d, &inter, "ca.key", |_| {});
    tsp::verify_token(&token, &imprint, None, Some(&with(&same))).unwrap();
    // …and with a second keyUsage it is refused.
    let dup = recertify(d, &inter, "ca.key", |exts| {
        exts.push(ext(&[0x55, 0x1d, 0x0f], true, &[0x03, 0x02, 0x07, 0x80]));
    });
    refused(&token, &imprint, &with(&dup), "more than once");

    // A CA whose keyUsage is malformed.
    issue_ca("v3_inter_badku", "ibad", "40");
    let token = tsa.resign(&tsa.token_for(data), "ibad_tsa.pem");
    refused(
        &token,
        &imprint,
        &with(&fs::read(tsa.path("ibad.pem")).unwrap()),
        "unreadable keyUsage",
    );
}

#[test]
fn tstinfo_tsa_name_and_extensions() {
    if !have_openssl() {
        return;
    }
    let tsa = Tsa::new(Alg::Ec);
    let data = b"tsa name";
    let imprint = Imprint::of(tsp::HashAlg::Sha256, data);
    let trust = Trust::from_pem_or_der(&fs::read(tsa.ca()).unwrap()).unwrap();
    let verifies = |token: &[u8]| {
        tsp::verify_token(token, &imprint, None, Some(&trust)).unwrap();
    };
    // Certificates before the token: validity is checked at genTime.
    tsa.issue_tsa("v3_tsa_san", "san.pem", None);
    let good = tsa.token_for(data);
    verifies(&good);
    // openssl's `tsa_name = yes` writes the tsa field, last.
    let kids = der_children(der_value(&tstinfo_of(&good)));
    let n = kids.len() - 1;
    assert_eq!(kids[n][0], 0xa0, "the token has no tsa field");
    let with_tail = |tail: &[Vec<u8>]| {
        let mut k = kids[..n].to_vec();
        k.extend_from_slice(tail);
        der(0x30, &k.concat())
    };

    // The tsa field names another TSA: refused.
    let cn = der(
        0x30,
        &der(
            0x31,
            &der(
                0x30,
                &[der(0x06, &[0x55, 4, 3]), der(0x0c, b"Some Other TSA")].concat(),
            ),
        ),
    );
    let other = der(0xa0, &der(0xa4, &cn));
    refused(
        &tsa.sign_tstinfo(&with_tail(&[other]), "tsa.pem", &[]),
        &imprint,
        &trust,
        "tsa field names CN=Some Other TSA",
    );
    // No tsa field at all is fine.
    verifies(&tsa.sign_tstinfo(&with_tail(&[]), "tsa.pem", &[]));
    // A subjectAltName entry of the TSA certificate is fine; another is not.
    let dns = |name: &[u8]| der(0xa0, &der(0x82, name));
    verifies(&tsa.sign_tstinfo(&with_tail(&[dns(b"tsa.example")]), "san.pem", &[]));
    refused(
        &tsa.sign_tstinfo(&with_tail(&[dns(b"evil.example")]), "san.pem", &[]),
        &imprint,
        &trust,
        "tsa field names DNS:evil.example",
    );

    // TSTInfo extensions: a non-critical one is ignored, a critical one
    // (none is understood) refuses the token.
    let extension = |critical| der(0xa1, &ext(&[0x2a, 3, 4, 5], critical, &[0x05, 0x00]));
    verifies(&tsa.sign_tstinfo(
        &with_tail(&[kids[n].clone(), extension(false)]),
        "tsa.pem",
        &[],
    ));
    refused(
        &tsa.sign_tstinfo(
            &with_tail(&[kids[n].clone(), extension(true)]),
            "tsa.pem",
            &[],
        ),
        &imprint,
        &trust,
        "critical TSTInfo extension",
    );
}

#[test]
fn signed_attributes_are_verified_as_received() {
    if !have_openssl() {
        return;
    }
    let tsa = Tsa::new(Alg::Ec);
    let d = tsa.dir.path();
    let data = b"attributes";
    let imprint = Imprint::of(tsp::HashAlg::Sha256, data);
    let trust = Trust::from_pem_or_der(&fs::read(tsa.ca()).unwrap()).unwrap();
    let verifies = |token: &[u8]| {
        tsp::verify_token(token, &imprint, None, Some(&trust)).unwrap();
    };
    let good = tsa.token_for(data);
    verifies(&good);
    // Re-signed over the same (sorted) attributes: still valid.
    verifies(&resign_attrs(d, &good, Some("tsa.key"), true, |_| {}));

    // The attributes reordered by someone other than the TSA: the bytes
    // signed are not the bytes received any more.
    let swapped = resign_attrs(d, &good, None, false, |a| a.reverse());
    assert_ne!(swapped, good);
    refused(&swapped, &imprint, &trust, "signature");
    // A TSA that signs its attributes in that (non-DER) order is accepted:
    // the signature covers exactly the bytes received.
    verifies(&resign_attrs(d, &good, Some("tsa.key"), false, |a| {
        a.reverse()
    }));

    // A signing-certificate (ESSCertID, SHA-1) next to the v2 attribute
    // is checked too.
    cert_der(d, "tsa.pem");
    openssl(
        d,
        &["dgst", "-sha1", "-binary", "-out", "h.bin", "cert.der"],
    );
    let sha1 = fs::read(tsa.path("h.bin")).unwrap();
    let v1 = |hash: &[u8]| {
        let oid = [
            0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x02, 0x0c,
        ];
        let value = der(0x30, &der(0x30, &der(0x30, &der(0x04, hash))));
        der(0x30, &[der(0x06, &oid), der(0x31, &value)].concat())
    };
    verifies(&resign_attrs(d, &good, Some("tsa.key"), true, |a| {
        a.push(v1(&sha1))
    }));
    refused(
        &resign_attrs(d, &good, Some("tsa.key"), true, |a| a.push(v1(&[0x11; 20]))),
        &imprint,
        &trust,
        "the certificate hash in signing-certificate does not match",
    );
}
