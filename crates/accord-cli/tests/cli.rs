//! The `accord` binary, end to end: every command, every documented error
//! path and exit code, a SIGKILL in the middle of a batch, and concurrent
//! writers on one chain.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_accord"));
        c.arg("--home").arg(self.home()).args(args);
        c.env_remove("ACCORD_PASSPHRASE").env_remove("ACCORD_HOME");
        c.stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    /// Runs `accord` against another home (a second agent, a copied store).
    fn run_at(&self, home: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_accord"))
            .arg("--home")
            .arg(home)
            .args(args)
            .env_remove("ACCORD_PASSPHRASE")
            .env_remove("ACCORD_HOME")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
    fn run_pw(&self, pw: &str, args: &[&str]) -> Output {
        self.cmd(args)
            .env("ACCORD_PASSPHRASE", pw)
            .output()
            .unwrap()
    }
    fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
    fn init(&self) {
        ok(&self.run(&["init", "--name", "tester", "--no-passphrase"]));
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
#[track_caller]
fn ok(o: &Output) -> String {
    assert_eq!(code(o), 0, "stdout: {}\nstderr: {}", stdout(o), stderr(o));
    stdout(o)
}
#[track_caller]
fn fails(o: &Output, want: i32, needle: &str) {
    assert_eq!(
        code(o),
        want,
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    let all = format!("{}{}", stdout(o), stderr(o));
    assert!(all.contains(needle), "expected {needle:?} in:\n{all}");
}
fn json(o: &Output) -> Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}
fn sha(p: &Path) -> String {
    accord_core::Hash32::of(&fs::read(p).unwrap()).to_hex()
}

#[test]
fn init_and_id() {
    let env = Env::new();
    env.init();
    let id = json(&env.run(&["id", "--json"]));
    let agent_id = id["agent_id"].as_str().unwrap();
    let pk = accord_core::PublicKey::from_b64(id["public_key"].as_str().unwrap()).unwrap();
    // The agent_id is the documented derivation of the printed key.
    assert_eq!(pk.agent_id().as_str(), agent_id);
    assert_eq!(id["fingerprint"], pk.fingerprint());
    assert_eq!(id["name"], "tester");
    assert_eq!(id["encrypted"], false);
    let human = ok(&env.run(&["id"]));
    assert!(
        human.contains(agent_id) && human.contains("UNENCRYPTED"),
        "{human}"
    );
    // Asking twice gives the same identity.
    assert_eq!(json(&env.run(&["id", "--json"])), id);
}

#[test]
fn home_from_environment() {
    let env = Env::new();
    let out = Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(["init", "--no-passphrase"])
        .env("ACCORD_HOME", env.path("via-env"))
        .output()
        .unwrap();
    ok(&out);
    assert!(env.path("via-env/identity.json").exists());
    // Default is ./.accord in the working directory.
    let out = Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(["init", "--no-passphrase"])
        .env_remove("ACCORD_HOME")
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    ok(&out);
    assert!(env.path(".accord/identity.json").exists());
}

#[test]
fn existing_identity_is_never_overwritten() {
    let env = Env::new();
    env.init();
    let key = env.home().join("identity.json");
    let before = sha(&key);
    fails(&env.run(&["init", "--no-passphrase"]), 4, "already exists");
    fails(&env.run_pw("pw", &["init"]), 4, "never overwritten");
    assert_eq!(sha(&key), before);
}

#[test]
fn encrypted_key_passphrase_paths() {
    let env = Env::new();
    // No passphrase source and no terminal: refuse rather than store in clear.
    fails(&env.run(&["init"]), 4, "ACCORD_PASSPHRASE");
    fails(&env.run_pw("", &["init"]), 4, "empty passphrase");
    ok(&env.run_pw("correct horse", &["init", "--name", "enc"]));
    let key = env.home().join("identity.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = fs::read_to_string(&key).unwrap();
    assert!(
        text.contains("\"kdf\":\"argon2id\"") && text.contains("\"m_cost_kib\":65536"),
        "{text}"
    );
    assert_eq!(json(&env.run(&["id", "--json"]))["encrypted"], true);
    ok(&env.run_pw("correct horse", &["stamp", "note"]));
    fails(
        &env.run_pw("wrong horse", &["stamp", "note"]),
        4,
        "wrong passphrase",
    );
    fails(&env.run(&["stamp", "note"]), 4, "ACCORD_PASSPHRASE");
    // Reading and verifying need no passphrase.
    ok(&env.run(&["verify"]));
    ok(&env.run(&["log"]));
}

#[test]
fn corrupt_key_file_and_unknown_home() {
    let env = Env::new();
    fails(&env.run(&["id"]), 4, "no agent at");
    fails(&env.run(&["stamp", "x"]), 4, "accord init");
    fails(&env.run(&["verify"]), 4, "no agent at");
    env.init();
    let key = env.home().join("identity.json");
    fs::write(&key, b"{\"format\":\"accord-key/1\",\"agent_id\":").unwrap();
    fails(&env.run(&["id"]), 4, "key file is corrupt");
    fails(&env.run(&["stamp", "x"]), 4, "key file is corrupt");
    fs::write(&key, [0xffu8; 100]).unwrap();
    fails(&env.run(&["id"]), 4, "corrupt");
}

#[test]
fn stamp_validates_input() {
    let env = Env::new();
    env.init();
    let ev = json(&env.run(&[
        "stamp",
        "tool_call",
        "--payload",
        r#"{"tool":"sql","rows":3}"#,
        "--json",
    ]));
    assert_eq!(ev["seq"], 1);
    assert_eq!(ev["type"], "tool_call");
    assert_eq!(ev["payload"]["rows"], 3);
    fails(
        &env.run(&["stamp", "x", "--payload", "{not json"]),
        3,
        "invalid JSON",
    );
    fails(
        &env.run(&["stamp", "x", "--payload", "[1,2]"]),
        3,
        "must be a JSON object, got an array",
    );
    fails(
        &env.run(&["stamp", "x", "--payload", "\"text\""]),
        3,
        "got a string",
    );
    fails(
        &env.run(&["stamp", "x", "--payload", r#"{"f":1.5}"#]),
        3,
        "not an integer",
    );
    fails(
        &env.run(&["stamp", "x", "--payload", r#"{"a":1,"a":2}"#]),
        3,
        "duplicate key",
    );
    fails(
        &env.run(&["stamp", "x", "--payload", r#"{"n":9007199254740992}"#]),
        3,
        "2^53",
    );
    fails(&env.run(&["stamp", "genesis"]), 3, "reserved");
    fails(&env.run(&["stamp", "has space"]), 3, "invalid");
    fails(
        &env.run(&["stamp", "x", "--payload-file", "/nonexistent/p.json"]),
        3,
        "cannot open",
    );
    let pf = env.path("p.json");
    fs::write(&pf, br#"{"doc":"report","pages":12}"#).unwrap();
    let ev = json(&env.run(&[
        "stamp",
        "doc",
        "--payload-file",
        pf.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(ev["payload"]["pages"], 12);
    fails(&env.run(&["stamp"]), 2, "required");
    // Nothing invalid was written: genesis + the two good events.
    assert_eq!(json(&env.run(&["verify", "--json"]))["events"], 3);
}

#[test]
fn stamp_stdin_batches_and_names_bad_lines() {
    let env = Env::new();
    env.init();
    let mut input = String::new();
    for i in 0..2500 {
        input.push_str(&format!(
            "{{\"type\":\"bulk\",\"payload\":{{\"i\":{i}}}}}\n"
        ));
    }
    let out = env.run_stdin(
        &["stamp", "--stdin", "--batch", "1000", "--json"],
        input.as_bytes(),
    );
    let r = json(&out);
    assert_eq!(r["appended"], 2500);
    assert_eq!(r["first_seq"], 1);
    assert_eq!(r["last_seq"], 2500);
    let bad = "{\"type\":\"ok\"}\n{\"type\":\"x\",\"payload\":[1]}\n";
    fails(
        &env.run_stdin(&["stamp", "--stdin"], bad.as_bytes()),
        3,
        "stdin line 2",
    );
    fails(
        &env.run_stdin(&["stamp", "--stdin"], b"{\"type\":\"x\",\"extra\":1}\n"),
        3,
        "unknown member",
    );
    // The failing batch wrote nothing.
    assert_eq!(json(&env.run(&["verify", "--json"]))["events"], 2501);
}

#[test]
fn log_ranges() {
    let env = Env::new();
    env.init();
    for i in 0..5 {
        ok(&env.run(&["stamp", "step", "--payload", &format!("{{\"i\":{i}}}")]));
    }
    let out = ok(&env.run(&["log", "--from", "2", "--to", "4", "--json"]));
    let seqs: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![2, 3, 4]);
    let human = ok(&env.run(&["log"]));
    assert_eq!(human.lines().count(), 6);
    assert!(
        human.contains("genesis") && human.contains("{\"i\":4}"),
        "{human}"
    );
}

#[test]
fn jcs_command() {
    let env = Env::new();
    let f = env.path("in.json");
    fs::write(&f, "{ \"b\": [1.0, 2e1, \"\\u00e9\"], \"a\": null }").unwrap();
    let out = ok(&env.run(&["jcs", f.to_str().unwrap()]));
    assert_eq!(out, "{\"a\":null,\"b\":[1,20,\"é\"]}\n");
    let out = env.run_stdin(&["jcs"], b"{\"z\":1,\"y\":{\"x\":true}}");
    assert_eq!(ok(&out), "{\"y\":{\"x\":true},\"z\":1}\n");
    fails(
        &env.run_stdin(&["jcs"], b"{\"a\":1,\"a\":2}"),
        3,
        "duplicate key",
    );
    fails(&env.run_stdin(&["jcs"], b"{\"a\":"), 3, "invalid JSON");
    fails(&env.run(&["jcs", "/nonexistent.json"]), 3, "cannot open");
}

#[test]
fn export_verify_and_tamper() {
    let env = Env::new();
    env.init();
    for i in 0..20 {
        ok(&env.run(&["stamp", "step", "--payload", &format!("{{\"i\":{i}}}")]));
    }
    let file = env.path("chain.jsonl");
    ok(&env.run(&["export", "--out", file.to_str().unwrap()]));
    fails(
        &env.run(&["export", "--out", file.to_str().unwrap()]),
        6,
        "--force",
    );
    ok(&env.run(&["export", "--out", file.to_str().unwrap(), "--force"]));
    // Export to stdout is the same chain (the seal's time differs).
    let stdout_export = ok(&env.run(&["export"]));
    let file_text = fs::read_to_string(&file).unwrap();
    let body = |t: &str| t.lines().take(21).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&stdout_export), body(&file_text));

    let r = json(&env.run(&["verify", file.to_str().unwrap(), "--json"]));
    assert_eq!(r["ok"], true);
    assert_eq!(r["events"], 21);
    assert_eq!(r["sealed"], true);
    assert!(
        ok(&env.run(&["verify", file.to_str().unwrap()])).contains("chain verified — 21 events")
    );
    ok(&env.run(&["verify", file.to_str().unwrap(), "--strict"]));

    // One changed byte in event 7's payload.
    let tampered = env.path("tampered.jsonl");
    fs::write(&tampered, file_text.replacen("{\"i\":6}", "{\"i\":9}", 1)).unwrap();
    let out = env.run(&["verify", tampered.to_str().unwrap(), "--json"]);
    fails(&out, 1, "verification FAILED at event seq 7 (line 8)");
    let r = json(&out);
    assert_eq!(r["ok"], false);
    assert_eq!(r["seq"], 7);
    assert_eq!(r["line"], 8);
    // The bad signature at line 8 is still the first failure when an empty
    // line follows it (found by the independent verifier: the empty-line
    // check used to answer before the queued signatures were settled).
    let mut lines: Vec<String> = file_text
        .replacen("{\"i\":6}", "{\"i\":9}", 1)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.insert(8, String::new());
    fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    for mode in [&[][..], &["--strict"][..]] {
        let mut args = vec!["verify", tampered.to_str().unwrap(), "--json"];
        args.extend_from_slice(mode);
        let out = env.run(&args);
        fails(&out, 1, "verification FAILED at event seq 7 (line 8)");
        assert_eq!(json(&out)["line"], 8);
    }
    // An empty line alone is named by its line, in --json too.
    let mut lines: Vec<&str> = file_text.lines().collect();
    lines.insert(1, "");
    fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let out = env.run(&["verify", tampered.to_str().unwrap(), "--json"]);
    fails(&out, 1, "(line 2): empty line");
    assert_eq!(json(&out)["line"], 2);
    // And so is content after the seal.
    fs::write(&tampered, file_text.clone() + "{}\n").unwrap();
    let out = env.run(&["verify", tampered.to_str().unwrap(), "--json"]);
    fails(&out, 1, "(line 23): content after the export seal");
    assert_eq!(json(&out)["line"], 23);

    // Truncation: last event removed, seal kept.
    let mut lines: Vec<&str> = file_text.lines().collect();
    lines.remove(20);
    fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    fails(
        &env.run(&["verify", tampered.to_str().unwrap()]),
        1,
        "events were removed or added",
    );
    // Seal removed: refused unless explicitly allowed.
    let mut lines: Vec<&str> = file_text.lines().collect();
    lines.pop();
    fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    fails(
        &env.run(&["verify", tampered.to_str().unwrap()]),
        1,
        "no seal line",
    );
    assert!(
        ok(&env.run(&["verify", tampered.to_str().unwrap(), "--allow-unsealed"]))
            .contains("NOT sealed")
    );
    // Garbage and oversized lines are verification failures, not crashes.
    fs::write(&tampered, b"\x00\xff garbage\n").unwrap();
    fails(
        &env.run(&["verify", tampered.to_str().unwrap()]),
        1,
        "seq 0 (line 1)",
    );
    fs::write(&tampered, vec![b'x'; 3 << 20]).unwrap();
    fails(
        &env.run(&["verify", tampered.to_str().unwrap()]),
        1,
        "seq 0 (line 1): event is 1048578 bytes; the limit is 1048576",
    );
    // An oversized line after a bad signature in the same batch: the bad
    // signature, earlier in the file, is what gets named.
    let mut lines: Vec<String> = file_text.lines().map(str::to_owned).collect();
    lines[3] = lines[3].replacen("{\"i\":2}", "{\"i\":7}", 1);
    lines[10] = "y".repeat(2 << 20);
    fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    fails(
        &env.run(&["verify", tampered.to_str().unwrap()]),
        1,
        "FAILED at event seq 3 (line 4): signature",
    );
    fails(
        &env.run(&["verify", "/nonexistent/file.jsonl"]),
        3,
        "cannot open",
    );
}

#[test]
fn verify_own_store_names_edited_event_and_refuses_corrupt_store() {
    let env = Env::new();
    env.init();
    let input: String = (0..50)
        .map(|i| format!("{{\"type\":\"s\",\"payload\":{{\"i\":{i}}}}}\n"))
        .collect();
    ok(&env.run_stdin(&["stamp", "--stdin"], input.as_bytes()));
    assert!(ok(&env.run(&["verify"])).contains("51 events"));
    let db = env.home().join("events.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("DROP TRIGGER events_no_update").unwrap();
        let body: Vec<u8> = conn
            .query_row("SELECT body FROM events WHERE seq = 33", [], |r| r.get(0))
            .unwrap();
        let edited = String::from_utf8(body)
            .unwrap()
            .replace("\"i\":32", "\"i\":99");
        conn.execute(
            "UPDATE events SET body = ?1 WHERE seq = 33",
            [edited.as_bytes()],
        )
        .unwrap();
    }
    let out = env.run(&["verify", "--json"]);
    fails(&out, 1, "seq 33");
    assert_eq!(json(&out)["seq"], 33);
    // Appending on top of a tampered chain still works structurally, but the
    // damage stays visible: verify keeps failing at seq 33.
    fs::write(&db, b"definitely not sqlite").unwrap();
    let before = sha(&db);
    fails(&env.run(&["verify"]), 5, "not an Accord event store");
    fails(&env.run(&["stamp", "x"]), 5, "left untouched");
    assert_eq!(sha(&db), before);
}

#[test]
fn demo_and_bench_run() {
    let env = Env::new();
    let out_dir = env.path("demo");
    let out = ok(&env.run(&["demo", "--out", out_dir.to_str().unwrap()]));
    assert!(
        out.contains("12 co-signed records matched, 0 findings"),
        "{out}"
    );
    assert!(
        out.contains("edited-executor.jsonl seq 5: chain does not verify"),
        "{out}"
    );
    assert!(out.contains("cut-reviewer.jsonl seq"), "{out}");
    assert!(!out.contains("NOT caught"), "{out}");
    assert!(out.contains("quarantined as #1"), "{out}");
    assert!(
        out.contains("proof for seq 3: 3 hashes") && out.contains("— verified"),
        "{out}"
    );
    assert!(out.contains("seal and certification valid"), "{out}");
    // The demo's chains audit clean from the command line too.
    let chains: Vec<String> = ["planner", "executor", "reviewer"]
        .iter()
        .map(|n| {
            out_dir
                .join(format!("chains/{n}.jsonl"))
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec!["audit"];
    args.extend(chains.iter().map(String::as_str));
    assert!(ok(&env.run(&args)).contains("audit clean"));
    // A second demo into the same directory is refused.
    fails(
        &env.run(&["demo", "--out", out_dir.to_str().unwrap()]),
        3,
        "not empty",
    );
    let r = json(&env.run(&["bench", "--events", "1000", "--single", "10", "--json"]));
    assert_eq!(r["events"], 1001);
    assert!(r["append_events_per_s"].as_f64().unwrap() > 0.0);
    fails(&env.run(&["bench", "--events", "5"]), 2, "1000");
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    fails(&env.run(&["frobnicate"]), 2, "unrecognized subcommand");
    // base64url keys may begin with '-': accepted as a value, not a flag.
    env.init();
    fails(
        &env.run(&[
            "cosign",
            "/nonexistent",
            "--log-key",
            "-9AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ]),
        3,
        "--log-key",
    );
    fails(
        &env.run(&["log", "--from", "minus-one"]),
        2,
        "invalid value",
    );
    assert!(ok(&env.run(&["--help"])).contains("Exit codes"));
}

/// SIGKILL an `accord stamp --stdin` in the middle of its batches, several
/// times; the store must verify after every kill and keep every committed
/// event.
#[test]
fn killed_mid_batch_store_still_verifies() {
    let env = Env::new();
    env.init();
    let mut last_count = 1u64;
    for round in 0..4u64 {
        let mut child = env
            .cmd(&["stamp", "--stdin", "--batch", "500"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            for i in 0..1_000_000u64 {
                let line = format!(
                    "{{\"type\":\"load\",\"payload\":{{\"i\":{i},\"pad\":\"{}\"}}}}\n",
                    "x".repeat(200)
                );
                if stdin.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        });
        // Let a few batches commit, then kill at a varying point.
        let deadline = Instant::now() + Duration::from_secs(60);
        let db = env.home().join("events.db");
        loop {
            let n = count_rows(&db);
            if n >= last_count + 1000 + round * 250 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(round * 7));
        child.kill().unwrap();
        child.wait().unwrap();
        writer.join().unwrap();
        let r = json(&env.run(&["verify", "--json"]));
        assert_eq!(r["ok"], true, "round {round}: {r}");
        let n = r["events"].as_u64().unwrap();
        assert!(n > last_count, "round {round}: no progress ({n} events)");
        // Batches are all or nothing: genesis + whole batches of 500.
        assert_eq!(
            (n - 1) % 500,
            0,
            "round {round}: a partial batch is visible ({n} events)"
        );
        last_count = n;
    }
}

fn count_rows(db: &Path) -> u64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0)))
        .map(|n| n as u64)
        .unwrap_or(0)
}

/// Several processes append to one chain at once: none may fork it, every
/// event lands, and the chain verifies.
#[test]
fn concurrent_writers_do_not_fork_the_chain() {
    let env = Env::new();
    env.init();
    let writers = 4;
    let per = 300;
    let children: Vec<_> = (0..writers)
        .map(|w| {
            let mut child = env
                .cmd(&["stamp", "--stdin", "--batch", "25"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let input: String = (0..per)
                .map(|i| format!("{{\"type\":\"w{w}\",\"payload\":{{\"i\":{i}}}}}\n"))
                .collect();
            let mut stdin = child.stdin.take().unwrap();
            std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
            child
        })
        .collect();
    for c in children {
        ok(&c.wait_with_output().unwrap());
    }
    let r = json(&env.run(&["verify", "--json"]));
    assert_eq!(r["events"], 1 + writers * per);
    let log = ok(&env.run(&["log", "--json"]));
    for w in 0..writers {
        let n = log
            .lines()
            .filter(|l| l.contains(&format!("\"type\":\"w{w}\"")))
            .count();
        assert_eq!(n, per as usize, "writer {w}");
    }
}

#[test]
fn checkpoints_and_proofs() {
    let env = Env::new();
    env.init();
    let input: String = (0..40)
        .map(|i| format!("{{\"type\":\"s\",\"payload\":{{\"i\":{i}}}}}\n"))
        .collect();
    ok(&env.run_stdin(&["stamp", "--stdin"], input.as_bytes()));
    let cp = json(&env.run(&["checkpoint", "--json"]));
    assert_eq!(cp["size"], 41);
    let id = json(&env.run(&["id", "--json"]))["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(cp["origin"], format!("accord/agent/{id}"));
    let note = cp["note"].as_str().unwrap();
    assert!(
        note.starts_with(&format!("accord/agent/{id}\n41\n"))
            && note.contains("\n\n\u{2014} accord/agent/")
    );

    // Inclusion.
    let p = env.path("p.json");
    ok(&env.run(&["prove", "17", "--out", p.to_str().unwrap()]));
    let r = json(&env.run(&["verify-proof", p.to_str().unwrap(), "--json"]));
    assert_eq!(
        (r["kind"].as_str(), r["seq"].as_u64(), r["size"].as_u64()),
        (Some("inclusion"), Some(17), Some(41))
    );
    ok(&env.run(&["verify-proof", p.to_str().unwrap(), "--agent", &id]));
    fails(
        &env.run(&[
            "verify-proof",
            p.to_str().unwrap(),
            "--agent",
            "11111111111111111111111111111111",
        ]),
        1,
        "not 1111",
    );
    let text = fs::read_to_string(&p).unwrap();
    let tampered = env.path("t.json");
    fs::write(&tampered, text.replacen("\\\"i\\\":16", "\\\"i\\\":61", 1)).unwrap();
    fails(
        &env.run(&["verify-proof", tampered.to_str().unwrap()]),
        1,
        "proof FAILED: event",
    );
    fails(&env.run(&["prove", "41"]), 3, "outside a tree of size 41");

    // Consistency.
    let c = env.path("c.json");
    ok(&env.run(&["prove", "--from", "10", "--out", c.to_str().unwrap()]));
    let r = json(&env.run(&["verify-proof", c.to_str().unwrap(), "--json"]));
    assert_eq!(
        (r["old_size"].as_u64(), r["new_size"].as_u64()),
        (Some(10), Some(41))
    );
    fails(&env.run(&["prove", "--from", "0"]), 3, "covers 1 to 41");
    fs::write(&tampered, b"{\"format\":\"nope\"}").unwrap();
    fails(
        &env.run(&["verify-proof", tampered.to_str().unwrap()]),
        1,
        "malformed proof file",
    );

    // Fork: the same key keeps a second history from seq 41 on.
    let kept = env.path("kept.note");
    let fork_home = env.path("fork");
    copy_dir(&env.home(), &fork_home);
    ok(&env.run(&["stamp", "paid", "--payload", "{\"amount\":100}"]));
    fs::write(
        &kept,
        json(&env.run(&["checkpoint", "--json"]))["note"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let in_fork = |args: &[&str]| env.run_at(&fork_home, args);
    ok(&in_fork(&[
        "stamp",
        "paid",
        "--payload",
        "{\"amount\":900}",
    ]));
    ok(&in_fork(&["stamp", "more"]));
    ok(&in_fork(&[
        "prove",
        "--from",
        "42",
        "--out",
        c.to_str().unwrap(),
        "--force",
    ]));
    // On its own the forked proof is self-consistent…
    ok(&env.run(&["verify-proof", c.to_str().unwrap()]));
    // …but not with the checkpoint the verifier kept.
    let out = env.run(&[
        "verify-proof",
        c.to_str().unwrap(),
        "--against",
        kept.to_str().unwrap(),
        "--json",
    ]);
    fails(&out, 1, "FORK");
    let r = json(&out);
    assert_eq!(r["fork"], true);
    assert_eq!(r["evidence"].as_array().unwrap().len(), 2);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn witnesses_cosign_consistent_checkpoints_only() {
    let env = Env::new();
    env.init();
    let witness = env.path("witness");
    let as_witness = |args: &[&str]| env.run_at(&witness, args);
    ok(&as_witness(&["init", "--no-passphrase"]));
    let log_key = json(&env.run(&["id", "--json"]))["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let witness_key = json(&as_witness(&["id", "--json"]))["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        ok(&env.run(&["stamp", "s"]));
    }
    let cp4 = env.path("cp4.note");
    fs::write(&cp4, ok(&env.run(&["checkpoint"]))).unwrap();
    let cosigned = env.path("cosigned.note");
    ok(&as_witness(&[
        "cosign",
        cp4.to_str().unwrap(),
        "--log-key",
        &log_key,
        "--out",
        cosigned.to_str().unwrap(),
    ]));
    // The cosignature is a C2SP cosignature/v1 by the witness's key.
    let note = accord_core::note::Note::parse(&fs::read(&cosigned).unwrap()).unwrap();
    let wkey = accord_core::PublicKey::from_b64(&witness_key).unwrap();
    let wname = accord_core::note::Checkpoint::origin_of(&wkey.agent_id());
    assert!(note.verify_cosignature(&wname, &wkey).unwrap() > 1_700_000_000);
    // The witness recorded it in its own chain.
    assert!(ok(&as_witness(&["log"])).contains("checkpoint_cosigned"));
    fails(
        &as_witness(&["cosign", cp4.to_str().unwrap(), "--log-key", &witness_key]),
        3,
        "its own log",
    );

    // A forked history (same key) cannot get the witness to cosign.
    let fork_home = env.path("fork");
    copy_dir(&env.home(), &fork_home);
    ok(&env.run(&["stamp", "honest"]));
    let in_fork = |args: &[&str]| env.run_at(&fork_home, args);
    ok(&in_fork(&["stamp", "forked"]));
    let newer = env.path("c.json");
    ok(&env.run(&["prove", "--from", "4", "--out", newer.to_str().unwrap()]));
    ok(&as_witness(&[
        "cosign",
        newer.to_str().unwrap(),
        "--log-key",
        &log_key,
    ]));
    ok(&in_fork(&[
        "prove",
        "--from",
        "5",
        "--out",
        newer.to_str().unwrap(),
        "--force",
    ]));
    fails(
        &as_witness(&["cosign", newer.to_str().unwrap(), "--log-key", &log_key]),
        1,
        "FORK",
    );
    // Without a proof, a newer checkpoint is refused; an older one is a rollback.
    let cp6 = env.path("cp6.note");
    ok(&env.run(&["stamp", "more"]));
    fs::write(&cp6, ok(&env.run(&["checkpoint"]))).unwrap();
    fails(
        &as_witness(&["cosign", cp6.to_str().unwrap(), "--log-key", &log_key]),
        1,
        "prove --from 5",
    );
    fails(
        &as_witness(&["cosign", cp4.to_str().unwrap(), "--log-key", &log_key]),
        1,
        "went back",
    );
    // The log records the cosignature it received, checked against the
    // witness's key and its own recorded checkpoint.
    let c = cosigned.to_str().unwrap();
    fails(
        &env.run(&[
            "checkpoint",
            "--add-cosignature",
            c,
            "--witness-key",
            &log_key,
        ]),
        3,
        "its own log",
    );
    let other = env.path("other");
    ok(&env.run_at(&other, &["init", "--no-passphrase"]));
    let other_key = json(&env.run_at(&other, &["id", "--json"]))["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    fails(
        &env.run(&[
            "checkpoint",
            "--add-cosignature",
            c,
            "--witness-key",
            &other_key,
        ]),
        1,
        "no valid cosignature",
    );
    fails(
        &env.run_at(
            &other,
            &[
                "checkpoint",
                "--add-cosignature",
                c,
                "--witness-key",
                &witness_key,
            ],
        ),
        1,
        "not a checkpoint signed by this agent",
    );
    let rec = json(&env.run(&[
        "checkpoint",
        "--add-cosignature",
        c,
        "--witness-key",
        &witness_key,
        "--json",
    ]));
    assert_eq!(rec["size"], 4);
    assert!(ok(&env.run(&["log"])).contains("checkpoint_witnessed"));
}

#[test]
fn certified_archive_verifies_offline_and_any_change_fails() {
    let env = Env::new();
    env.init();
    for i in 0..30 {
        ok(&env.run(&["stamp", "step", "--payload", &format!("{{\"i\":{i}}}")]));
    }
    let a = env.path("a.accord");
    ok(&env.run(&["certify", "--out", a.to_str().unwrap()]));
    fails(
        &env.run(&["certify", "--out", a.to_str().unwrap()]),
        6,
        "--force",
    );
    let r = json(&env.run(&["verify", a.to_str().unwrap(), "--json"]));
    assert_eq!(
        (
            r["kind"].as_str(),
            r["events"].as_u64(),
            r["checkpoint_size"].as_u64()
        ),
        (Some("archive"), Some(31), Some(31))
    );
    assert_eq!(r["name"], "tester");
    assert!(
        ok(&env.run(&["verify", a.to_str().unwrap()])).contains("archive verified — 31 events")
    );
    let original = fs::read(&a).unwrap();
    let t = env.path("t.accord");
    // Every single-byte change anywhere in the file is caught.
    let mut caught = 0;
    for pos in (0..original.len()).step_by(97) {
        let mut b = original.clone();
        b[pos] ^= 0x01;
        fs::write(&t, &b).unwrap();
        let out = env.run(&["verify", t.to_str().unwrap()]);
        assert_ne!(code(&out), 0, "flip at byte {pos} went unnoticed");
        caught += 1;
    }
    assert!(caught > 50);
    // Named failures: an event, the header, truncation, trailing data.
    let text = String::from_utf8(original).unwrap();
    fs::write(&t, text.replacen("{\"i\":7}", "{\"i\":8}", 1)).unwrap();
    fails(
        &env.run(&["verify", t.to_str().unwrap()]),
        1,
        "line 10: event seq 8: signature",
    );
    fs::write(
        &t,
        text.replacen("\"name\":\"tester\"", "\"name\":\"mallory\"", 1),
    )
    .unwrap();
    fails(
        &env.run(&["verify", t.to_str().unwrap()]),
        1,
        "archive_digest does not match",
    );
    let lines: Vec<&str> = text.lines().collect();
    fs::write(&t, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    fails(
        &env.run(&["verify", t.to_str().unwrap()]),
        1,
        "without a certification line",
    );
    fs::write(&t, text.clone() + "{}\n").unwrap();
    fails(
        &env.run(&["verify", t.to_str().unwrap()]),
        1,
        "content after the certification line",
    );
}

#[test]
fn only_conclusive_evidence_is_called_a_fork() {
    let env = Env::new();
    env.init();
    for _ in 0..9 {
        ok(&env.run(&["stamp", "s"]));
    }
    let c = env.path("c.json");
    ok(&env.run(&["prove", "--from", "3", "--out", c.to_str().unwrap()]));
    // One flipped bit in a proof hash: the proof fails, nobody is accused.
    let v: Value = serde_json::from_slice(&fs::read(&c).unwrap()).unwrap();
    let h = v["proof"][0].as_str().unwrap().to_owned();
    let flipped = if h.starts_with('A') {
        h.replacen('A', "B", 1)
    } else {
        format!("A{}", &h[1..])
    };
    let t = env.path("t.json");
    fs::write(&t, fs::read_to_string(&c).unwrap().replace(&h, &flipped)).unwrap();
    let out = env.run(&["verify-proof", t.to_str().unwrap()]);
    fails(&out, 1, "proof FAILED: merkle proof");
    assert!(!stderr(&out).contains("FORK"), "{}", stderr(&out));
    // old and new swapped.
    let swapped = serde_json::json!({
        "format": v["format"], "new": v["old"], "old": v["new"], "proof": v["proof"], "public_key": v["public_key"]
    });
    fs::write(&t, accord_core::jcs::to_vec(&swapped)).unwrap();
    fails(
        &env.run(&["verify-proof", t.to_str().unwrap()]),
        1,
        "larger than",
    );
    // --against is for consistency proofs only.
    let p = env.path("p.json");
    ok(&env.run(&["prove", "2", "--out", p.to_str().unwrap()]));
    fails(
        &env.run(&[
            "verify-proof",
            p.to_str().unwrap(),
            "--against",
            c.to_str().unwrap(),
        ]),
        1,
        "--against applies",
    );
}

#[test]
fn an_agent_never_signs_over_a_removed_or_edited_history() {
    let env = Env::new();
    env.init();
    for i in 0..8 {
        ok(&env.run(&["stamp", "s", "--payload", &format!("{{\"i\":{i}}}")]));
    }
    ok(&env.run(&["checkpoint"]));
    // Someone with file access removes the last two events.
    let db = env.home().join("events.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq >= 7;")
            .unwrap();
    }
    // The shortened chain is valid on its own, but contradicts the
    // checkpoint the agent signed: verify says so.
    fails(&env.run(&["verify"]), 1, "events were lost or removed");
    // …but the agent will not sign a checkpoint or archive contradicting its earlier one.
    fails(&env.run(&["checkpoint"]), 1, "events were lost or removed");
    let a = env.path("a.accord");
    fails(
        &env.run(&["certify", "--out", a.to_str().unwrap()]),
        1,
        "events were lost or removed",
    );
    assert!(!a.exists(), "a partial archive was left behind");
    // Nor seal an export of it (an export's seal vouches for the chain).
    let x = env.path("x.jsonl");
    fails(
        &env.run(&["export", "--out", x.to_str().unwrap()]),
        1,
        "events were lost or removed",
    );
    assert!(!x.exists(), "a partial export was left behind");
    // An edited event: refused before signing.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("DROP TRIGGER events_no_update").unwrap();
        let body: Vec<u8> = conn
            .query_row("SELECT body FROM events WHERE seq = 3", [], |r| r.get(0))
            .unwrap();
        let edited = String::from_utf8(body)
            .unwrap()
            .replace("\"i\":2", "\"i\":5");
        conn.execute(
            "UPDATE events SET body = ?1 WHERE seq = 3",
            [edited.as_bytes()],
        )
        .unwrap();
    }
    fails(
        &env.run(&["prove", "1"]),
        1,
        "refusing to sign: the chain does not verify: event seq 3",
    );
}

#[test]
fn cosign_and_fork_hardening() {
    let env = Env::new();
    env.init();
    let witness = env.path("witness");
    let as_witness = |args: &[&str]| env.run_at(&witness, args);
    ok(&as_witness(&["init", "--no-passphrase"]));
    let log_key = json(&env.run(&["id", "--json"]))["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&env.run(&["stamp", "s"]));
    let cp = ok(&env.run(&["checkpoint"]));
    // Signature lines stuffed in by a relay are dropped, not stored.
    let stuffed = env.path("stuffed.note");
    let junk: String = (0..60)
        .map(|i| format!("\u{2014} junk{i} AAAAAAAAAAA=\n"))
        .collect();
    fs::write(&stuffed, format!("{cp}{junk}")).unwrap();
    let out = ok(&as_witness(&[
        "cosign",
        stuffed.to_str().unwrap(),
        "--log-key",
        &log_key,
    ]));
    assert_eq!(out.matches('\u{2014}').count(), 2, "{out}");
    // A refused output file records nothing.
    let existing = env.path("exists.note");
    fs::write(&existing, "x").unwrap();
    let before = ok(&as_witness(&["log"])).lines().count();
    fails(
        &as_witness(&[
            "cosign",
            stuffed.to_str().unwrap(),
            "--log-key",
            &log_key,
            "--out",
            existing.to_str().unwrap(),
        ]),
        6,
        "--force",
    );
    assert_eq!(ok(&as_witness(&["log"])).lines().count(), before);
    // The same checkpoint can be cosigned again (and still works after the stuffing).
    ok(&as_witness(&[
        "cosign",
        stuffed.to_str().unwrap(),
        "--log-key",
        &log_key,
    ]));

    // A single proof file whose old and new have one size and two roots is a fork.
    let fork_home = env.path("fork");
    copy_dir(&env.home(), &fork_home);
    ok(&env.run(&["stamp", "a"]));
    let honest = json(&env.run(&["checkpoint", "--json"]))["note"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&env.run_at(&fork_home, &["stamp", "b"]));
    let forked = json(&env.run_at(&fork_home, &["checkpoint", "--json"]))["note"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = serde_json::json!({
        "format": "accord-consistency-proof/1", "old": honest, "new": forked, "proof": [], "public_key": log_key
    });
    let f = env.path("fork.json");
    fs::write(&f, accord_core::jcs::to_vec(&file)).unwrap();
    fails(
        &env.run(&["verify-proof", f.to_str().unwrap()]),
        1,
        "FORK: the agent signed two different checkpoints of size 3",
    );

    // A witness whose own chain was edited refuses to cosign.
    let db = witness.join("events.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("DROP TRIGGER events_no_update").unwrap();
        let body: Vec<u8> = conn
            .query_row("SELECT body FROM events WHERE seq = 1", [], |r| r.get(0))
            .unwrap();
        let edited = String::from_utf8(body)
            .unwrap()
            .replacen("\"size\":2", "\"size\":1", 1);
        conn.execute(
            "UPDATE events SET body = ?1 WHERE seq = 1",
            [edited.as_bytes()],
        )
        .unwrap();
    }
    fails(
        &as_witness(&["cosign", stuffed.to_str().unwrap(), "--log-key", &log_key]),
        1,
        "refusing to sign",
    );
}

#[test]
fn a_witness_notices_its_own_removed_events() {
    let env = Env::new();
    env.init();
    let witness = env.path("witness");
    let as_witness = |args: &[&str]| env.run_at(&witness, args);
    ok(&as_witness(&["init", "--no-passphrase"]));
    let log_key = json(&env.run(&["id", "--json"]))["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let cp = env.path("cp.note");
    fs::write(&cp, ok(&env.run(&["checkpoint"]))).unwrap();
    ok(&as_witness(&[
        "cosign",
        cp.to_str().unwrap(),
        "--log-key",
        &log_key,
    ]));
    ok(&as_witness(&["checkpoint"]));
    assert!(
        ok(&as_witness(&["verify"]))
            .contains("(1 recorded checkpoint consistent; last signed checkpoint: 2 of 2 events)")
    );
    // Remove the cosignature event the witness's own checkpoint covers.
    let conn = rusqlite::Connection::open(witness.join("events.db")).unwrap();
    conn.execute_batch("DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq >= 1;")
        .unwrap();
    fails(
        &as_witness(&["cosign", cp.to_str().unwrap(), "--log-key", &log_key]),
        1,
        "events were lost or removed",
    );
}

/// The store keeps the RFC 9162 tree as events are appended; a damaged
/// node is caught by `verify` (root) or by `prove` (which checks each proof
/// before handing it out), never passed on.
#[test]
fn damaged_tree_index_is_reported_not_used() {
    let env = Env::new();
    env.init();
    for t in ["a", "b", "c"] {
        ok(&env.run(&["stamp", t]));
    }
    ok(&env.run(&["prove", "1"]));
    let db = env.home().join("events.db");
    let damage = |level: i64, idx: i64| {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("DROP TRIGGER IF EXISTS merkle_no_update")
            .unwrap();
        c.execute(
            "UPDATE merkle SET hash = zeroblob(32) WHERE level = ?1 AND idx = ?2",
            [level, idx],
        )
        .unwrap();
    };
    // An inner node on seq 1's path: the root is intact, the proof is not.
    damage(1, 1);
    fails(&env.run(&["prove", "1"]), 5, "does not verify");
    // The root node itself: verify compares it with the events.
    damage(2, 0);
    fails(&env.run(&["verify"]), 5, "tree index disagrees");
}

/// Red-team finding: `checkpoint` and `prove` signed the root read from the
/// store's tree index without checking it against the events, so a writer
/// of events.db without the key could make the agent sign a root that no
/// history of its events has (and later be blamed for a fork).
#[test]
fn an_agent_never_signs_a_root_it_has_not_recomputed() {
    let env = Env::new();
    env.init();
    for t in ["a", "b", "c"] {
        ok(&env.run(&["stamp", t]));
    }
    let db = env.home().join("events.db");
    let checkpoints = || {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM checkpoints", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
    };
    // Four events: the root is node (2, 0). Replace it with another hash, as
    // a writer of the database could: the index stays self-consistent.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("DROP TRIGGER IF EXISTS merkle_no_update")
            .unwrap();
        c.execute(
            "UPDATE merkle SET hash = zeroblob(32) WHERE level = 2 AND idx = 0",
            [],
        )
        .unwrap();
    }
    fails(&env.run(&["checkpoint"]), 5, "tree index disagrees");
    fails(&env.run(&["prove", "1"]), 5, "tree index disagrees");
    fails(
        &env.run(&["certify", "--out", env.path("a.accord").to_str().unwrap()]),
        5,
        "tree index disagrees",
    );
    assert!(!env.path("a.accord").exists());
    assert_eq!(
        checkpoints(),
        0,
        "nothing may be signed over the damaged index"
    );
}

/// The same for a checkpoint of a prefix (`prove --from`): the prefix root
/// comes from the index, so it must be proved consistent with the verified
/// root before it is signed.
#[test]
fn a_prefix_root_is_proved_before_it_is_signed() {
    let env = Env::new();
    env.init();
    for t in ["a", "b", "c", "d", "e"] {
        ok(&env.run(&["stamp", t]));
    }
    let db = env.home().join("events.db");
    // Six events; the root of the first 2 is node (1, 0). Damage it and the
    // nodes above it the same way, so the whole-chain root stays right only
    // if the index is consulted node by node: here it is not.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("DROP TRIGGER IF EXISTS merkle_no_update")
            .unwrap();
        c.execute(
            "UPDATE merkle SET hash = zeroblob(32) WHERE level = 1 AND idx = 0",
            [],
        )
        .unwrap();
    }
    // The whole-chain root uses node (2, 0), which is intact.
    ok(&env.run(&["checkpoint"]));
    fails(
        &env.run(&["prove", "--from", "2"]),
        5,
        "cannot prove the root of 2 events",
    );
    let signed_prefix: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM checkpoints WHERE size = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        signed_prefix, 0,
        "the unproved prefix root was never signed"
    );
}

/// Red-team finding: `stamp` and `export` kept working on a store that
/// `verify` rejects. An agent must not extend or vouch for such a chain.
#[test]
fn stamp_and_export_refuse_a_chain_that_does_not_verify() {
    let env = Env::new();
    env.init();
    let input: String = (0..50)
        .map(|i| format!("{{\"type\":\"s\",\"payload\":{{\"i\":{i}}}}}\n"))
        .collect();
    ok(&env.run_stdin(&["stamp", "--stdin"], input.as_bytes()));
    let db = env.home().join("events.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("DROP TRIGGER events_no_update").unwrap();
        let body: Vec<u8> = conn
            .query_row("SELECT body FROM events WHERE seq = 20", [], |r| r.get(0))
            .unwrap();
        let edited = String::from_utf8(body)
            .unwrap()
            .replace("\"i\":19", "\"i\":77");
        conn.execute(
            "UPDATE events SET body = ?1 WHERE seq = 20",
            [edited.as_bytes()],
        )
        .unwrap();
    }
    fails(&env.run(&["stamp", "x"]), 1, "event seq 20");
    assert_eq!(count_rows(&db), 51, "nothing was appended");
    let out = env.path("out.jsonl");
    fails(
        &env.run(&["export", "--out", out.to_str().unwrap()]),
        1,
        "event seq 20",
    );
    assert!(!out.exists(), "no partial export is left behind");
    let piped = env.run(&["export"]);
    fails(&piped, 1, "event seq 20");
    assert!(
        !stdout(&piped).contains("accord-export-seal"),
        "no seal for a bad chain"
    );
}

/// Runs `accord` with its stdout a pipe whose reader is already gone, as in
/// `accord verify x.jsonl | true`.
fn run_closed_stdout(env: &Env, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    env.cmd(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// Red-team finding: with stdout closed early, `id`, `verify`, `audit`,
/// `trust`, `verify-proof` and `quarantine list` panicked (exit 101). They
/// must stop writing quietly and exit with the code of their result.
#[test]
fn a_closed_stdout_is_not_a_crash() {
    let env = Env::new();
    env.init();
    ok(&env.run(&["stamp", "a"]));
    let export = env.path("x.jsonl");
    ok(&env.run(&["export", "--out", export.to_str().unwrap()]));
    let proof = env.path("p.json");
    ok(&env.run(&["prove", "1", "--out", proof.to_str().unwrap()]));
    let x = export.to_str().unwrap();
    for args in [
        vec!["id"],
        vec!["id", "--json"],
        vec!["verify"],
        vec!["verify", x],
        vec!["verify", x, "--json"],
        vec!["audit", x],
        vec!["trust", x],
        vec!["verify-proof", proof.to_str().unwrap()],
        vec!["quarantine", "list"],
        vec!["log"],
        vec!["log", "--json"],
        vec!["export"],
        vec!["checkpoint"],
    ] {
        let o = run_closed_stdout(&env, &args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{args:?} printed: {}", stderr(&o));
    }
    // The verdict survives the closed pipe: a bad file still exits 1.
    let bad = env.path("bad.jsonl");
    fs::write(
        &bad,
        fs::read_to_string(&export)
            .unwrap()
            .replacen("\"a\"", "\"b\"", 1),
    )
    .unwrap();
    let o = run_closed_stdout(&env, &["verify", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}

/// Red-team finding: bidi overrides and other invisible format characters
/// were printed raw in names and payloads, so a line could read differently
/// from what it holds. They are escaped as control characters are.
#[test]
fn hidden_format_characters_are_escaped_in_output() {
    let env = Env::new();
    ok(&env.run(&["init", "--name", "evil\u{202E}gpj.exe", "--no-passphrase"]));
    ok(&env.run(&[
        "stamp",
        "note",
        "--payload",
        "{\"text\":\"pay \u{2066}100\u{2069}\u{200B} to \u{E0041}bob\"}",
    ]));
    let hidden = ['\u{202E}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{E0041}'];
    let id = ok(&env.run(&["id"]));
    assert!(id.contains("evil\\u{202e}gpj.exe"), "{id}");
    for args in [
        vec!["id"],
        vec!["id", "--json"],
        vec!["log"],
        vec!["log", "--json"],
    ] {
        let out = ok(&env.run(&args));
        assert!(
            !out.contains(&hidden[..]),
            "{args:?} printed a hidden character: {out:?}"
        );
    }
    // JSON output stays the same JSON value.
    let line = ok(&env.run(&["log", "--json", "--from", "1"]));
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(
        v["payload"]["text"],
        "pay \u{2066}100\u{2069}\u{200B} to \u{E0041}bob"
    );
}

/// Red-team finding: deleting events.db-wal after a crash silently dropped
/// committed events and `verify` passed. Each commit is now copied into the
/// database file right after it returns (by the store's checkpointer, off
/// the commit path: docs/STORAGE.md), so what a killed writer committed
/// before that copy ended survives the loss of its WAL.
#[test]
fn acknowledged_events_survive_a_lost_wal() {
    let env = Env::new();
    env.init();
    let mut child = env
        .cmd(&["stamp", "--stdin", "--batch", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..30 {
        writeln!(stdin, "{{\"type\":\"s\",\"payload\":{{\"i\":{i}}}}}").unwrap();
    }
    stdin.flush().unwrap();
    let db = env.home().join("events.db");
    // Wait until the database file alone (a copy, without its WAL) holds
    // every commit: without the checkpointer it never does while the
    // writer runs (SQLite's own checkpoint comes after 1000 pages).
    let probe = env.path("probe.db");
    let in_main_file = || {
        let _ = fs::remove_file(&probe);
        fs::copy(&db, &probe).unwrap();
        rusqlite::Connection::open(&probe)
            .and_then(|c| c.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while in_main_file() < 31 {
        assert!(
            Instant::now() < deadline,
            "committed batches stayed in the WAL ({} rows visible through it)",
            count_rows(&db)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Killed while it waits for more input: no clean close, no final
    // checkpoint by SQLite.
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let _ = fs::remove_file(env.home().join("events.db-wal"));
    let _ = fs::remove_file(env.home().join("events.db-shm"));
    let r = json(&env.run(&["verify", "--json"]));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["events"], 31, "{r}");
}

/// A store rolled back below a checkpoint the agent signed (here an older
/// copy restored; a lost WAL does the same) takes its own record of that
/// checkpoint along. The copy kept beside it names the rollback, and the
/// agent refuses to sign the lost seqs a second time.
#[test]
fn a_rollback_below_a_signed_checkpoint_is_named() {
    let env = Env::new();
    env.init();
    ok(&env.run(&["stamp", "a"]));
    let db = env.home().join("events.db");
    let old = env.path("old.db");
    fs::copy(&db, &old).unwrap();
    for t in ["b", "c"] {
        ok(&env.run(&["stamp", t]));
    }
    ok(&env.run(&["checkpoint"]));
    let r = json(&env.run(&["verify", "--json"]));
    assert_eq!(r["last_signed_checkpoint"], 4, "{r}");
    fs::copy(&old, &db).unwrap();
    let out = env.run(&["verify", "--json"]);
    fails(&out, 1, "signed a checkpoint of 4 events");
    fails(
        &env.run(&["stamp", "d"]),
        1,
        "signed a checkpoint of 4 events",
    );
    assert_eq!(count_rows(&db), 2, "no event was signed at a lost seq");
}

/// A payload nested 127 levels was accepted, and its event (128 levels)
/// bricked the agent: export, verify and every later stamp failed. The
/// writer refuses it, and the chain stays usable.
#[test]
fn a_payload_too_deep_for_its_event_is_refused_at_stamp() {
    let env = Env::new();
    env.init();
    let nest = |n: usize| format!("{}{}", "{\"a\":".repeat(n - 1) + "{", "}".repeat(n));
    ok(&env.run(&["stamp", "deep", "--payload", &nest(126)]));
    let o = env.run(&["stamp", "deeper", "--payload", &nest(127)]);
    fails(&o, 3, "at most 126");
    ok(&env.run(&["stamp", "after"]));
    let r = json(&env.run(&["verify", "--json"]));
    assert_eq!(r["events"], 3, "{r}");
    let out = env.path("x.jsonl");
    ok(&env.run(&["export", "--out", out.to_str().unwrap()]));
    ok(&env.run(&["verify", out.to_str().unwrap()]));
}

/// Writes, as an older `accord` did, a validly signed event whose payload is
/// nested 127 levels (so the event 128, beyond the limit of PROTOCOL.md 2)
/// as the next row of the store at `home`, with its Merkle leaf, and
/// returns its seq.
fn append_over_deep_event(home: &Path) -> u64 {
    use accord_core::{Map, jcs};
    let agent = accord_store::Home::new(home.to_path_buf())
        .open(None)
        .unwrap();
    let key = agent.key();
    let db = home.join("events.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (seq, body): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT seq, body FROM events ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let seq = seq as u64;
    let prev = accord_core::SignedEvent::from_canonical(&body).unwrap();
    let mut payload = Value::Object(Map::new());
    for _ in 0..126 {
        let mut m = Map::new();
        m.insert("a".into(), payload);
        payload = Value::Object(m);
    }
    let mut ev = Map::new();
    ev.insert("agent_id".into(), key.agent_id().as_str().into());
    ev.insert("format".into(), "accord-event/1".into());
    ev.insert(
        "nonce".into(),
        "6c2f3f5e-8a1b-4c2d-9e3f-0a1b2c3d4e5f".into(),
    );
    ev.insert("payload".into(), payload);
    ev.insert("prev_hash".into(), prev.hash().to_hex().into());
    ev.insert("seq".into(), (seq + 1).into());
    ev.insert("timestamp".into(), prev.event().timestamp.as_str().into());
    ev.insert("type".into(), "deep".into());
    let sig = key.sign(&jcs::to_vec(&Value::Object(ev.clone())));
    use base64::Engine;
    ev.insert(
        "signature".into(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sig.to_bytes())
            .into(),
    );
    let bytes = jcs::to_vec(&Value::Object(ev));
    assert!(jcs::parse(&bytes).is_err(), "the event is beyond the limit");
    conn.execute(
        "INSERT INTO events (agent_id, seq, body) VALUES (?1, ?2, ?3)",
        rusqlite::params![key.agent_id().as_str(), (seq + 1) as i64, bytes],
    )
    .unwrap();
    seq + 1
}

/// A store that already holds an over-deep event (an older `accord`
/// accepted a 127-level payload) stays usable: `log` shows every event,
/// `verify` names the event's seq and the limit, and `export` writes and
/// seals the events before it (a valid export) and says why it stopped.
#[test]
fn a_store_holding_an_over_deep_event_stays_usable() {
    let env = Env::new();
    env.init();
    ok(&env.run(&["stamp", "before", "--payload", "{\"i\":1}"]));
    let seq = append_over_deep_event(&env.home());
    assert_eq!(seq, 2);
    // log: every row, the deep one with the reason, not "<unreadable event>".
    let log = ok(&env.run(&["log"]));
    assert!(log.contains("before"), "{log}");
    assert!(
        log.contains("nested more than 127 levels") && !log.contains("unreadable event"),
        "{log}"
    );
    assert_eq!(ok(&env.run(&["log", "--json"])).lines().count(), 3);
    // verify: the seq and the limit.
    fails(&env.run(&["verify"]), 1, "event seq 2");
    fails(&env.run(&["verify"]), 1, "nested more than 127 levels");
    // export: the two events before it, sealed; the file verifies.
    let out = env.path("x.jsonl");
    let o = env.run(&["export", "--out", out.to_str().unwrap()]);
    fails(&o, 1, "event seq 2");
    fails(&o, 1, "nested more than 127 levels");
    fails(&o, 1, "exported the 2 events before it");
    let r = json(&env.run(&["verify", out.to_str().unwrap(), "--json"]));
    assert_eq!(r["events"], 2, "{r}");
    assert_eq!(fs::read_to_string(&out).unwrap().lines().count(), 3);
    // Writing on top of it is refused with the same precise reason.
    fails(
        &env.run(&["stamp", "after"]),
        5,
        "nested more than 127 levels",
    );
}

/// Files in `dir` other than the ones named: temporary files a command
/// left behind.
fn strays(dir: &Path, expected: &[&str]) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !expected.contains(&n.as_str()))
        .collect()
}

/// Every command that writes an output file writes it atomically: a
/// failing command leaves neither the file nor a temporary file, and a
/// failing `--force` leaves the file it would have replaced untouched.
#[test]
fn failing_commands_leave_no_output_file() {
    let env = Env::new();
    env.init();
    for i in 0..5 {
        ok(&env.run(&["stamp", "s", "--payload", &format!("{{\"i\":{i}}}")]));
    }
    ok(&env.run(&["checkpoint"]));
    let out = env.dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let p = |n: &str| out.join(n).to_str().unwrap().to_owned();
    // Successful writes: the file, nothing else.
    ok(&env.run(&["export", "--out", &p("ok.jsonl")]));
    ok(&env.run(&["prove", "2", "--out", &p("ok.proof")]));
    ok(&env.run(&["certify", "--out", &p("ok.accord")]));
    assert_eq!(
        strays(&out, &["ok.jsonl", "ok.proof", "ok.accord"]),
        Vec::<String>::new()
    );
    // An existing file is refused before anything is written or recorded.
    fs::write(out.join("taken"), b"old").unwrap();
    let before = ok(&env.run(&["log", "--json"])).lines().count();
    let payload = env.path("payload.bin");
    fs::write(&payload, b"work").unwrap();
    let other = "4XmjKEd9A96KhoMX94zWJmd28dcPisbW";
    fails(
        &env.run(&[
            "handoff",
            "send",
            "--to",
            other,
            "--payload",
            payload.to_str().unwrap(),
            "--out",
            &p("taken"),
        ]),
        6,
        "--force",
    );
    assert_eq!(
        ok(&env.run(&["log", "--json"])).lines().count(),
        before,
        "a receipt was recorded although its output file was refused"
    );
    for args in [
        vec!["export", "--out", &p("taken")],
        vec!["certify", "--out", &p("taken")],
        vec!["prove", "2", "--out", &p("taken")],
    ] {
        fails(&env.run(&args), 6, "pass --force to replace it");
    }
    assert_eq!(fs::read(out.join("taken")).unwrap(), b"old");
    // Tamper with the store: export, certify and prove fail after they
    // started writing; none leaves a file, a temporary file, or a changed
    // file it was told to replace.
    let db = env.home().join("events.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("DROP TRIGGER events_no_update").unwrap();
        let body: Vec<u8> = conn
            .query_row("SELECT body FROM events WHERE seq = 4", [], |r| r.get(0))
            .unwrap();
        let edited = String::from_utf8(body)
            .unwrap()
            .replace("\"i\":3", "\"i\":9");
        conn.execute(
            "UPDATE events SET body = ?1 WHERE seq = 4",
            [edited.as_bytes()],
        )
        .unwrap();
    }
    fails(
        &env.run(&["export", "--out", &p("bad.jsonl")]),
        1,
        "event seq 4",
    );
    fails(
        &env.run(&["certify", "--out", &p("bad.accord")]),
        1,
        "event seq 4",
    );
    fails(
        &env.run(&["prove", "2", "--out", &p("bad.proof")]),
        1,
        "event seq 4",
    );
    fails(
        &env.run(&["export", "--out", &p("taken"), "--force"]),
        1,
        "event seq 4",
    );
    fails(
        &env.run(&["certify", "--out", &p("taken"), "--force"]),
        1,
        "event seq 4",
    );
    assert_eq!(
        fs::read(out.join("taken")).unwrap(),
        b"old",
        "--force replaced a file and failed"
    );
    assert_eq!(
        strays(&out, &["ok.jsonl", "ok.proof", "ok.accord", "taken"]),
        Vec::<String>::new(),
        "a failed command left a file behind"
    );
}
