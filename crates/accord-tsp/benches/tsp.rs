//! RFC 3161 token verification (`tsp::verify_token`, trust anchor given):
//! ECDSA P-256 and RSA-3072 TSAs made with `openssl ts` at bench start.
//!
//! `cargo bench -p accord-tsp --bench tsp` (needs the `openssl` command).

use std::hint::black_box;
use std::path::Path;
use std::process::Command;

use accord_tsp::{self as tsp, HashAlg, Imprint, Trust};
use criterion::{Criterion, criterion_group, criterion_main};

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the tsp bench needs the openssl command");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

const EXT: &str = "[ req ]\ndistinguished_name = dn\nprompt = no\n[ dn ]\nCN = Bench Root\n\
[ v3_ca ]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign\n\
[ v3_tsa ]\nbasicConstraints = critical, CA:FALSE\nextendedKeyUsage = critical, timeStamping\n";

/// (token, anchor PEM) from a throwaway TSA whose keys `genpkey` makes
/// with `keyopts`.
fn make(dir: &Path, keyopts: &[&str]) -> (Vec<u8>, Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ext.cnf"), EXT).unwrap();
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    std::fs::write(
        dir.join("tsa.cnf"),
        "[ tsa ]\ndefault_tsa = t\n[ t ]\nserial = ./serial\nsigner_cert = tsa.pem\ncerts = ca.pem\n\
         signer_key = tsa.key\nsigner_digest = sha256\ndefault_policy = 2.999.1\ndigests = sha256\n\
         ess_cert_id_alg = sha256\n",
    )
    .unwrap();
    for key in ["ca.key", "tsa.key"] {
        let mut a = vec!["genpkey"];
        a.extend_from_slice(keyopts);
        a.extend_from_slice(&["-out", key]);
        openssl(dir, &a);
    }
    openssl(
        dir,
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
            "-days",
            "30",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "tsa.key",
            "-subj",
            "/CN=Bench TSA",
            "-out",
            "tsa.csr",
        ],
    );
    openssl(
        dir,
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
            "30",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "v3_tsa",
            "-out",
            "tsa.pem",
        ],
    );
    openssl(
        dir,
        &[
            "ts",
            "-query",
            "-digest",
            &"ab".repeat(32),
            "-sha256",
            "-cert",
            "-out",
            "q.tsq",
        ],
    );
    openssl(
        dir,
        &[
            "ts",
            "-reply",
            "-config",
            "tsa.cnf",
            "-queryfile",
            "q.tsq",
            "-token_out",
            "-out",
            "t.tst",
        ],
    );
    (
        std::fs::read(dir.join("t.tst")).unwrap(),
        std::fs::read(dir.join("ca.pem")).unwrap(),
    )
}

fn benches(c: &mut Criterion) {
    let root = std::env::temp_dir().join(format!("accord-tsp-bench-{}", std::process::id()));
    let imprint = Imprint::from_digest(&[0xab; 32]).unwrap();
    assert_eq!(imprint.alg(), HashAlg::Sha256);
    let cases = [
        (
            "ecdsa_p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
        (
            "rsa_3072",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"][..],
        ),
    ];
    let mut g = c.benchmark_group("tsp");
    for (name, opts) in cases {
        let (token, ca) = make(&root.join(name), opts);
        let trust = Trust::from_pem_or_der(&ca).unwrap();
        tsp::verify_token(&token, &imprint, None, Some(&trust)).unwrap();
        g.bench_function(format!("verify_token_{name}"), |b| {
            b.iter(|| tsp::verify_token(black_box(&token), &imprint, None, Some(&trust)).unwrap())
        });
        g.bench_function(format!("verify_token_{name}_no_anchor"), |b| {
            b.iter(|| tsp::verify_token(black_box(&token), &imprint, None, None).unwrap())
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(tsp_benches, benches);
criterion_main!(tsp_benches);
