//! `accord hub serve`, `send`, `listen`, `peers` end to end: two agents in
//! two homes exchange an encrypted message through a hub process on
//! loopback. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const T: Duration = Duration::from_secs(30);

fn accord(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_accord"));
    c.arg("--home").arg(home);
    c.env_remove("ACCORD_PASSPHRASE")
        .env_remove("ACCORD_HOME")
        .env_remove("ACCORD_HUB")
        .stdin(Stdio::null());
    c
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Kills the child when dropped (the hub runs until stopped; a listener
/// left behind by a failed assertion must not outlive the test).
struct Guard(Option<Child>);
impl Guard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child taken")
    }
}
impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// First line of a child's stream, within `T`.
fn first_line(r: impl std::io::Read + Send + 'static) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(r).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(T).expect("no output in time")
}

#[test]
fn two_agents_exchange_through_a_hub_process() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    for h in [&alice, &bob] {
        ok(accord(h)
            .args(["init", "--no-passphrase"])
            .output()
            .unwrap());
    }
    let id = |h: &Path| -> String {
        let v: Value =
            serde_json::from_str(&ok(accord(h).args(["id", "--json"]).output().unwrap())).unwrap();
        v["agent_id"].as_str().unwrap().to_owned()
    };
    let bob_id = id(&bob);
    let mut hub = Guard(Some(
        accord(&alice)
            .args(["hub", "serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("hubdata"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let line = first_line(hub.child().stdout.take().unwrap());
    let addr = line
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("unexpected hub banner: {line}"))
        .to_owned();

    // Bob listens (registered once the banner is out); alice sends twice.
    let mut listen = Guard(Some(
        accord(&bob)
            .args(["listen", "--hub", &addr, "--count", "2", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let banner = first_line(listen.child().stderr.take().unwrap());
    assert!(banner.contains("listening as"), "{banner}");
    let out = ok(accord(&alice)
        .args(["send", "--hub", &addr, "--to", &bob_id, "--json"])
        .args([
            "--type",
            "task",
            "--payload",
            r#"{"task_id":7}"#,
            "hello bob",
        ])
        .output()
        .unwrap());
    let receipt: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(receipt["seq"], 0);
    ok(accord(&alice)
        .args(["send", "--hub", &addr, "--to", &bob_id, "second"])
        .output()
        .unwrap());
    let (tx, rx) = mpsc::channel();
    let mut stdout = listen.child().stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut buf);
        let _ = tx.send(buf);
    });
    let text = rx.recv_timeout(T).expect("listen did not finish");
    assert!(listen.child().wait().unwrap().success());
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["text"], "hello bob");
    assert_eq!(lines[0]["type"], "task");
    assert_eq!(lines[0]["payload"]["task_id"], 7);
    assert_eq!(lines[1]["text"], "second");
    // The printed message is the signed one: its hash is the receipt's.
    let first = serde_json::to_vec(&lines[0]).unwrap();
    let canonical = accord_core::jcs::canonicalize(&first).unwrap();
    assert_eq!(
        accord_core::Hash32::of(&canonical).to_hex(),
        receipt["message_hash"].as_str().unwrap()
    );

    // Both chains still verify and record the exchange.
    for (h, ty) in [(&alice, "message_sent"), (&bob, "message_received")] {
        ok(accord(h).args(["verify"]).output().unwrap());
        let log = ok(accord(h).args(["log", "--json"]).output().unwrap());
        assert!(log.contains(ty), "{log}");
    }

    // peers: bob is on the hub and pinned by alice.
    let peers: Value = serde_json::from_str(
        ok(accord(&alice)
            .args(["peers", "--hub", &addr, "--json"])
            .output()
            .unwrap())
        .trim(),
    )
    .unwrap();
    assert_eq!(peers["hub_agents"][0], bob_id.as_str());
    assert_eq!(peers["pinned"][0]["agent_id"], bob_id.as_str());

    // chat: lines typed on stdin are sent; bob's listener prints them.
    let mut listen2 = Guard(Some(
        accord(&bob)
            .args(["listen", "--hub", &addr, "--count", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let banner = first_line(listen2.child().stderr.take().unwrap());
    assert!(banner.contains("listening as"), "{banner}");
    let mut chat = accord(&alice)
        .args(["chat", "--hub", &addr, &bob_id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = chat.stdin.take().unwrap();
        stdin.write_all(b"line one\n\nline two\n").unwrap();
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(chat.wait_with_output());
    });
    ok(rx.recv_timeout(T).expect("chat did not finish").unwrap());
    let (tx, rx) = mpsc::channel();
    let mut stdout = listen2.child().stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut buf);
        let _ = tx.send(buf);
    });
    let printed = rx.recv_timeout(T).expect("listen did not finish");
    let got: Vec<&str> = printed.lines().collect();
    assert_eq!(got.len(), 2, "{printed}");
    assert!(got[0].ends_with("[message] line one"), "{printed}");
    assert!(got[1].ends_with("[message] line two"), "{printed}");

    // Errors: unknown recipient, unreachable hub.
    let unknown = accord(&alice)
        .args([
            "send",
            "--hub",
            &addr,
            "--to",
            "11111111111111111111111111111111",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found"));
    drop(hub);
    let down = accord(&alice)
        .args(["send", "--hub", &addr, "--to", &bob_id, "x"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(6));
}

#[test]
fn listen_count_acknowledges_only_what_it_prints() {
    // Three messages wait for bob; `listen --count 1` prints one and must
    // leave the other two with the hub for the next listener.
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    for h in [&alice, &bob] {
        ok(accord(h)
            .args(["init", "--no-passphrase"])
            .output()
            .unwrap());
    }
    let v: Value =
        serde_json::from_str(&ok(accord(&bob).args(["id", "--json"]).output().unwrap())).unwrap();
    let bob_id = v["agent_id"].as_str().unwrap().to_owned();
    let mut hub = Guard(Some(
        accord(&alice)
            .args(["hub", "serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let line = first_line(hub.child().stdout.take().unwrap());
    let addr = line
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("unexpected hub banner: {line}"))
        .to_owned();
    // Bob registers once (so alice can find his bundle), then goes away.
    let mut first = Guard(Some(
        accord(&bob)
            .args(["listen", "--hub", &addr, "--count", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let banner = first_line(first.child().stderr.take().unwrap());
    assert!(banner.contains("listening as"), "{banner}");
    drop(first);
    for m in ["one", "two", "three"] {
        ok(accord(&alice)
            .args(["send", "--hub", &addr, "--to", &bob_id, m])
            .output()
            .unwrap());
    }
    let listen = |n: &str| -> Vec<String> {
        let (tx, rx) = mpsc::channel();
        let child = accord(&bob)
            .args(["listen", "--hub", &addr, "--count", n])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = ok(rx.recv_timeout(T).expect("listen did not finish").unwrap());
        out.lines().map(str::to_owned).collect()
    };
    let got = listen("1");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].ends_with("[message] one"), "{got:?}");
    let got = listen("2");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].ends_with("[message] two"), "{got:?}");
    assert!(got[1].ends_with("[message] three"), "{got:?}");
}

#[test]
fn demo_includes_an_encrypted_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(accord(&dir.path().join("unused"))
        .arg("demo")
        .output()
        .unwrap());
    for needle in [
        "(no plaintext)",
        "worker received on connecting: [task] \"summarise the Q3 sales figures\"",
        "planner received the reply in the same session",
        "refused (replay detected) — caught",
        "refused (authentication failed) — caught",
    ] {
        assert!(out.contains(needle), "{needle:?} missing in:\n{out}");
    }
}
