//! End-to-end encrypted messaging from a terminal: `accord hub serve`,
//! `send`, `listen`, `chat`, `peers`. The hub routes sealed envelopes and
//! never sees a word (docs/PROTOCOL.md §18–19).

use std::io::Write;
use std::path::PathBuf;

use accord_core::channel::SignedMessage;
use accord_core::{Map, Value, event};
use accord_net::{Agent, AgentOptions, HubServer, Limits, NetError};
use accord_store::Home;
use clap::{Args, Subcommand};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::exit::{CliError, Code};
use crate::{JsonFlag, printable};

/// `accord hub …`
#[derive(Subcommand)]
pub enum HubCmd {
    /// Run a hub: stores public bundles, routes and queues sealed envelopes
    Serve {
        /// Address to listen on (keep 127.0.0.1 unless other machines must connect)
        #[arg(long, default_value = "127.0.0.1:7700", value_name = "ADDR")]
        listen: String,
        /// Directory for the hub's database (queued envelopes survive restarts) [default: in memory]
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
}

/// `accord send`
#[derive(Args)]
pub struct SendArgs {
    /// Hub address (host:port)
    #[arg(long, env = "ACCORD_HUB", value_name = "ADDR")]
    hub: String,
    /// Recipient agent_id
    #[arg(long, value_name = "AGENT_ID")]
    to: String,
    /// Message type (1-64 of A-Z a-z 0-9 _ . : / -)
    #[arg(long = "type", default_value = "message", value_name = "T")]
    msg_type: String,
    /// Payload: a JSON object (integers only, no floats)
    #[arg(long, value_name = "JSON")]
    payload: Option<String>,
    /// The message text
    text: String,
    #[command(flatten)]
    out: JsonFlag,
}

/// `accord listen`
#[derive(Args)]
pub struct ListenArgs {
    /// Hub address (host:port)
    #[arg(long, env = "ACCORD_HUB", value_name = "ADDR")]
    hub: String,
    /// Exit after N messages [default: run until interrupted]
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Print each message as its signed JSON (third-party verifiable), one per line
    #[arg(long)]
    json: bool,
}

/// `accord chat`
#[derive(Args)]
pub struct ChatArgs {
    /// Hub address (host:port)
    #[arg(long, env = "ACCORD_HUB", value_name = "ADDR")]
    hub: String,
    /// The agent to chat with
    agent_id: String,
}

/// `accord peers`
#[derive(Args)]
pub struct PeersArgs {
    /// Hub address (host:port): also list the agents registered there
    #[arg(long, env = "ACCORD_HUB", value_name = "ADDR")]
    hub: Option<String>,
    /// Re-pin this peer after its key changed (checked out of band!)
    #[arg(long, value_name = "AGENT_ID")]
    repin: Option<String>,
    /// The new key for --repin (base64url) [default: the key in the hub's bundle]
    #[arg(
        long,
        value_name = "PUBLIC_KEY",
        allow_hyphen_values = true,
        requires = "repin"
    )]
    key: Option<String>,
    #[command(flatten)]
    out: JsonFlag,
}

impl From<NetError> for CliError {
    fn from(e: NetError) -> Self {
        let code = match &e {
            NetError::ReplayDetected(_)
            | NetError::AuthenticationFailed(_)
            | NetError::PeerKeyChanged { .. } => Code::VerifyFailed,
            // A bundle, envelope or message that does not verify (a key
            // that does not derive its agent_id, a bad signature, …).
            NetError::Channel(_) => Code::VerifyFailed,
            NetError::PeerNotFound(_) | NetError::NoHub | NetError::Input(_) => Code::Input,
            NetError::Home(h) => crate::exit::home_code(h),
            // channel.db or hub.db of another program or a newer Accord:
            // a storage problem, as for events.db.
            NetError::Schema(_) => Code::Store,
            _ => Code::Io,
        };
        CliError::new(code, e.to_string())
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io(format!("cannot start the async runtime: {e}")))
}

fn open(home: &Home) -> Result<Agent, CliError> {
    let info = home.info()?;
    let passphrase = if info.encrypted {
        Some(crate::existing_passphrase()?)
    } else {
        None
    };
    Ok(Agent::open(
        home.dir(),
        passphrase.as_ref().map(|p| p.as_bytes()),
        AgentOptions::default(),
    )?)
}

/// `accord hub serve`.
pub fn hub(cmd: HubCmd) -> Result<(), CliError> {
    let HubCmd::Serve { listen, data } = cmd;
    runtime()?.block_on(async {
        let server = HubServer::bind(&listen, data.as_deref(), Limits::default()).await?;
        let addr = server.local_addr()?;
        if let Some(w) = crate::exposure_warning(
            addr,
            "the hub reads no message, but it learns who talks to whom and when",
        ) {
            eprintln!("{w}");
        }
        outln!(
            "hub listening on {addr} ({})",
            match &data {
                Some(d) => format!("data in {}", d.display()),
                None => "in memory: queued messages are lost when it stops".into(),
            }
        );
        let _ = std::io::stdout().flush();
        server.run().await;
        Ok(())
    })
}

/// `accord send`.
pub fn send(home: &Home, args: SendArgs) -> Result<(), CliError> {
    let payload: Map<String, Value> = match &args.payload {
        Some(p) => event::payload_from_json(p.as_bytes())?,
        None => Map::new(),
    };
    let agent = open(home)?;
    runtime()?.block_on(async {
        agent.attach(args.hub.as_str()).await?;
        let r = agent
            .send_payload(&args.to, &args.msg_type, &args.text, payload)
            .await?;
        agent.flush().await?;
        if args.out.json {
            outln!(
                "{}",
                json!({
                    "message_id": r.message_id,
                    "to": args.to,
                    "session_id": r.session_id,
                    "seq": r.seq,
                    "message_hash": r.message_hash,
                    "hub_qid": r.qid,
                    "delivered_now": r.delivered_now,
                })
            );
        } else {
            outln!(
                "sent {} to {} (session {}, seq {}): {}",
                r.message_id,
                args.to,
                r.session_id,
                r.seq,
                if r.delivered_now {
                    "delivered"
                } else {
                    "accepted by the hub and queued until the recipient connects"
                }
            );
        }
        Ok(())
    })
}

fn print_message(m: &SignedMessage, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let shown = crate::text::json_printable(&String::from_utf8_lossy(m.to_bytes()));
        let _ = out.write_all(shown.as_bytes());
        let _ = out.write_all(b"\n");
    } else {
        let msg = m.message();
        let payload = if msg.payload.is_empty() {
            String::new()
        } else {
            format!(" {}", Value::Object(msg.payload.clone()))
        };
        let _ = writeln!(
            out,
            "{} {} [{}] {}{}",
            msg.timestamp_ms,
            msg.from,
            printable(&msg.msg_type),
            printable(&msg.text),
            printable(&payload)
        );
    }
    let _ = out.flush();
}

/// `accord listen`.
pub fn listen(home: &Home, args: ListenArgs) -> Result<(), CliError> {
    let agent = open(home)?;
    runtime()?.block_on(async {
        // Messages are printed by the handler itself, before the receive
        // loop acknowledges them to the hub: an acknowledged message has
        // been printed, whatever ends the process afterwards. With
        // --count N the agent delivers (and acknowledges) exactly N.
        agent.set_receive_limit(args.count);
        let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel::<()>();
        let json = args.json;
        agent.on_message(move |m| {
            print_message(m, json);
            let _ = done_tx.send(());
        });
        agent.on_error(|e| eprintln!("refused an envelope: {}", printable(&e.to_string())));
        let waiting = agent.attach(args.hub.as_str()).await?;
        eprintln!(
            "listening as {} on {} ({waiting} queued)",
            agent.agent_id(),
            args.hub
        );
        let mut n = 0u64;
        while args.count.is_none_or(|c| n < c) {
            let m = tokio::select! {
                m = done.recv() => m,
                _ = tokio::signal::ctrl_c() => None,
            };
            if m.is_none() {
                break;
            }
            n += 1;
        }
        // Let the receive loop acknowledge what was printed.
        agent.settle().await;
        agent.detach();
        agent.flush().await?;
        Ok(())
    })
}

/// `accord chat`.
pub fn chat(home: &Home, args: ChatArgs) -> Result<(), CliError> {
    let agent = open(home)?;
    runtime()?.block_on(async {
        // Printed by the handler, before the message is acknowledged.
        agent.on_message(|m| {
            let msg = m.message();
            outln!("< {}: {}", short(msg.from.as_str()), printable(&msg.text));
        });
        agent.on_error(|e| eprintln!("refused an envelope: {}", printable(&e.to_string())));
        agent.attach(args.hub.as_str()).await?;
        eprintln!(
            "chatting as {} with {} (fingerprint {}); type a line and Enter to send, Ctrl-D to quit",
            agent.agent_id(),
            args.agent_id,
            agent.fingerprint()
        );
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            let line = tokio::select! {
                l = lines.next_line() => l.map_err(|e| CliError::io(format!("reading the terminal: {e}")))?,
                _ = tokio::signal::ctrl_c() => None,
            };
            let Some(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            match agent.send(&args.agent_id, &line).await {
                Ok(r) if r.delivered_now => {}
                Ok(_) => eprintln!("(queued: {} is offline)", short(&args.agent_id)),
                Err(e) => eprintln!("not sent: {}", printable(&e.to_string())),
            }
        }
        agent.settle().await;
        agent.detach();
        agent.flush().await?;
        Ok(())
    })
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// `accord peers`.
pub fn peers(home: &Home, args: PeersArgs) -> Result<(), CliError> {
    let agent = open(home)?;
    runtime()?.block_on(async {
        if let Some(hub) = &args.hub {
            agent.attach(hub.as_str()).await?;
        }
        if let Some(peer) = &args.repin {
            let key = match &args.key {
                Some(k) => k.clone(),
                None => {
                    let hub = args.hub.as_deref().ok_or_else(|| {
                        CliError::input("--repin needs --key PUBLIC_KEY, or --hub to take the key from the hub's bundle")
                    })?;
                    let client = accord_net::HubClient::connect_tcp(hub).await?;
                    let bytes = client.get_bundle(peer).await?;
                    let b = accord_core::channel::Bundle::parse(&bytes).map_err(NetError::from)?;
                    if b.agent_id().as_str() != peer {
                        return Err(CliError::new(
                            Code::VerifyFailed,
                            format!("the hub returned {}'s bundle for {peer}", b.agent_id()),
                        ));
                    }
                    b.public_key().to_b64()
                }
            };
            agent.repin(peer, &key)?;
            let fp = accord_core::PublicKey::from_b64(&key)
                .map(|k| k.fingerprint())
                .unwrap_or_default();
            eprintln!("re-pinned {peer} to fingerprint {fp}");
        }
        let pinned = agent.pinned_peers()?;
        let on_hub = match &args.hub {
            Some(_) => Some(agent.list_peers().await?),
            None => None,
        };
        if args.out.json {
            outln!(
                "{}",
                json!({
                    "agent_id": agent.agent_id().as_str(),
                    "hub_agents": on_hub,
                    "pinned": pinned.iter().map(|(a, k)| json!({
                        "agent_id": a,
                        "public_key": k,
                        "fingerprint": accord_core::PublicKey::from_b64(k).map(|k| k.fingerprint()).unwrap_or_default(),
                    })).collect::<Vec<_>>(),
                })
            );
        } else {
            if let Some(list) = &on_hub {
                outln!("agents on the hub ({}):", list.len());
                for a in list {
                    let mark = if pinned.iter().any(|(p, _)| p == a) {
                        " (pinned)"
                    } else {
                        ""
                    };
                    outln!("  {a}{mark}");
                }
            }
            outln!("pinned peers ({}):", pinned.len());
            for (a, k) in &pinned {
                let fp = accord_core::PublicKey::from_b64(k)
                    .map(|k| k.fingerprint())
                    .unwrap_or_default();
                outln!("  {a}  {fp}");
            }
        }
        Ok(())
    })
}

/// The demo's encrypted exchange (`accord demo`, step 10): two agents talk
/// through a TCP hub on loopback that cannot read them; a replayed and a
/// tampered envelope are refused. Fails (exit 1) if an attack goes unnoticed.
pub fn demo_exchange(scratch: &std::path::Path) -> Result<(), CliError> {
    outln!(
        "\n10. Two agents exchange end-to-end encrypted messages through a hub that cannot read them"
    );
    let fail = |what: &str| CliError::new(Code::VerifyFailed, format!("demo: {what}"));
    runtime()?.block_on(async {
        let server = HubServer::bind("127.0.0.1:0", Some(&scratch.join("hub")), Limits::default()).await?;
        let addr = server.local_addr()?.to_string();
        let core = server.core();
        let hub_task = tokio::spawn(server.run());
        let opts = AgentOptions::default();
        let planner = Agent::init(&scratch.join("planner"), Some("planner"), None, opts)?;
        let worker = Agent::init(&scratch.join("worker"), Some("worker"), None, opts)?;
        outln!("   hub on {addr}; planner {}, worker {}", short(planner.agent_id().as_str()), short(worker.agent_id().as_str()));
        worker.attach(addr.as_str()).await?;
        worker.detach();
        planner.attach(addr.as_str()).await?;
        let mut payload = Map::new();
        payload.insert("task_id".into(), Value::from("T-7"));
        let secret = "summarise the Q3 sales figures";
        let r = planner
            .send_payload(worker.agent_id().as_str(), "task", secret, payload)
            .await?;
        outln!(
            "   planner -> worker (offline): accepted and queued by the hub (session {}, seq {})",
            r.session_id, r.seq
        );
        let stored = core.stored_envelopes();
        let captured = stored.first().cloned().ok_or_else(|| fail("nothing queued"))?;
        let text = String::from_utf8_lossy(&captured).into_owned();
        // Look for the plaintext itself: short strings like "Q3" occur by
        // chance in base64url ciphertext.
        if text.contains(secret) || text.contains("\"task_id\":\"T-7\"") {
            return Err(fail("plaintext in the hub's storage"));
        }
        outln!(
            "   what the hub stores: {}…  (no plaintext)",
            text.chars().take(72).collect::<String>()
        );
        let mut rx = worker.subscribe();
        let mut prx = planner.subscribe();
        worker.attach(addr.as_str()).await?;
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .map_err(|_| fail("the queued message did not arrive"))?
            .ok_or_else(|| fail("receiver closed"))?;
        outln!(
            "   worker received on connecting: [{}] {:?}, signed by {} (verified under the pinned key)",
            got.message().msg_type,
            got.message().text,
            short(got.message().from.as_str())
        );
        worker.send(planner.agent_id().as_str(), "done: +12% over Q2").await?;
        let back = tokio::time::timeout(std::time::Duration::from_secs(10), prx.recv())
            .await
            .map_err(|_| fail("the reply did not arrive"))?
            .ok_or_else(|| fail("receiver closed"))?;
        outln!("   planner received the reply in the same session: {:?}", back.message().text);
        match worker.receive_envelope(&captured).await {
            Err(NetError::ReplayDetected(_)) => outln!("   replaying the captured envelope: refused (replay detected) — caught"),
            other => return Err(fail(&format!("a replay was not refused: {other:?}"))),
        }
        let mut tampered: Value = serde_json::from_slice(&captured).map_err(|e| fail(&e.to_string()))?;
        if let Some(Value::String(ct)) = tampered.get_mut("ciphertext") {
            let flipped = if ct.starts_with('A') { "B" } else { "A" };
            ct.replace_range(0..1, flipped);
        }
        tampered["seq"] = Value::from(5);
        let bytes = serde_json::to_vec(&tampered).map_err(|e| fail(&e.to_string()))?;
        match worker.receive_envelope(&bytes).await {
            Err(NetError::AuthenticationFailed(_)) => outln!("   flipping bits in an envelope: refused (authentication failed) — caught"),
            other => return Err(fail(&format!("a tampered envelope was not refused: {other:?}"))),
        }
        planner.flush().await?;
        worker.flush().await?;
        outln!(
            "   both chains record every message by the hash of its signed form ({}…)",
            &r.message_hash[..16]
        );
        planner.detach();
        worker.detach();
        hub_task.abort();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use accord_core::IdentityError;
    use accord_core::channel::ChannelError;

    /// Red-team finding: a bundle whose key does not derive its agent_id
    /// exited 6 (I/O) instead of 1 (verification failed).
    #[test]
    fn refused_bundles_exit_as_verification_failures() {
        let bad_key = NetError::from(ChannelError::Identity(IdentityError::AgentIdMismatch {
            claimed: "a".into(),
            derived: "b".into(),
        }));
        assert_eq!(CliError::from(bad_key).code, Code::VerifyFailed);
        let expired = NetError::from(ChannelError::BundleExpired {
            agent_id: "a".into(),
            created: "t0".into(),
            expires: "t1".into(),
            now: "t2".into(),
        });
        assert_eq!(CliError::from(expired).code, Code::VerifyFailed);
        assert_eq!(CliError::from(NetError::Timeout(5)).code, Code::Io);
    }
}
