//! `accord`: agent identity, signed hash-chained event logs and their
//! verification, from a terminal. Exit codes are listed in [`exit`].

#[macro_use]
mod out;

mod audit_cmd;
mod bench;
mod demo;
mod exit;
mod handoff_cmd;
mod input;
mod net;
mod session_cmd;
mod text;
mod timestamp_cmd;
mod tsa;
mod witness;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use accord_core::archive::ArchiveVerifier;
use accord_core::export::ExportVerifier;
use accord_core::keyfile::KdfParams;
use accord_core::merkle::Nodes;
use accord_core::{AgentId, Map, SignatureMode, SignedEvent, Value, event, jcs, note, proof};
use accord_store::home::{self, verify_store};
use accord_store::{EventStore, Home};
use accord_tsp::archive::ArchiveTimestamps;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::exit::{CliError, Code};
pub(crate) use crate::text::{group_digits, printable, truncate};

/// Accord: provable, private handoffs between AI agents.
///
/// Every agent has an Ed25519 identity and an append-only chain of signed,
/// hash-chained events that anyone can verify offline.
#[derive(Parser)]
#[command(name = "accord", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok, 1 verification failed, 2 usage, 3 invalid input, \
4 identity (no agent / wrong passphrase / corrupt key), 5 store, 6 I/O."
)]
struct Cli {
    /// Agent home directory [default: $ACCORD_HOME, else ./.accord]
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an agent: key pair, encrypted key file, event store, genesis event
    Init {
        /// Human-readable name, recorded in the key file and the genesis event
        #[arg(long)]
        name: Option<String>,
        /// Store the private key unencrypted (throwaway agents only)
        #[arg(long)]
        no_passphrase: bool,
    },
    /// Print the agent's id, fingerprint, public key and name
    Id {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Print the RFC 8785 canonical form of a JSON text
    Jcs {
        /// Input file [default: stdin]
        file: Option<PathBuf>,
    },
    /// Append a signed event to the agent's chain and print it
    Stamp(StampArgs),
    /// List the chain's events
    Log {
        /// First seq to show
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Last seq to show
        #[arg(long)]
        to: Option<u64>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Write the chain as JSON lines (one canonical event per line) and a signed seal
    Export {
        /// Output file [default: stdout]
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Replace an existing output file
        #[arg(long)]
        force: bool,
    },
    /// Verify the agent's own chain, or an export or certified archive FILE offline
    Verify {
        /// An export (`accord export`) or archive (`accord certify`) [default: the agent's own store]
        file: Option<PathBuf>,
        /// Check each signature alone with RFC 8032 strict rules instead of in batches
        #[arg(long)]
        strict: bool,
        /// Accept an export without a seal line (its end cannot be proven)
        #[arg(long)]
        allow_unsealed: bool,
        /// Check an archive's RFC 3161 timestamp against this TSA CA certificate (PEM or DER)
        #[arg(long, value_name = "CERT.pem", requires = "file")]
        tsa_ca: Option<PathBuf>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Write a certified archive: identity, events, seal, checkpoint, certification signature
    Certify {
        /// Output file [default: AGENT_ID.accord]
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Replace an existing output file
        #[arg(long)]
        force: bool,
        /// Time-stamp the checkpoint at this RFC 3161 TSA (http://…)
        #[arg(long, value_name = "URL", requires = "tsa_ca")]
        tsa: Option<String>,
        /// The TSA's CA certificate (PEM or DER): the reply must chain to it
        #[arg(long, value_name = "CERT.pem", requires = "tsa")]
        tsa_ca: Option<PathBuf>,
    },
    /// Sign and record a C2SP checkpoint (size + RFC 9162 root) of the chain
    Checkpoint {
        /// Instead: record a witness's cosignature (from `accord cosign`) of a
        /// checkpoint this agent signed
        #[arg(long, value_name = "FILE", requires = "witness_key")]
        add_cosignature: Option<PathBuf>,
        /// The witness's public key (base64url; it may start with '-')
        #[arg(long, value_name = "PUBLIC_KEY", allow_hyphen_values = true)]
        witness_key: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Write a self-contained proof: one event's inclusion, or consistency since an earlier size
    Prove(ProveArgs),
    /// Check a proof file offline (inclusion or consistency); reports forks
    VerifyProof {
        /// A file written by `accord prove`
        file: PathBuf,
        /// Require the proof to be about this agent
        #[arg(long, value_name = "AGENT_ID")]
        agent: Option<String>,
        /// A checkpoint you kept earlier: check the proof's new checkpoint against it
        #[arg(long, value_name = "CHECKPOINT")]
        against: Option<PathBuf>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Witness another agent's checkpoint: check it, cosign it (C2SP cosignature/v1), record it
    Cosign {
        /// The log's signed checkpoint (first time) or a consistency proof from the last size cosigned
        file: PathBuf,
        /// The log agent's public key (base64url, as `accord id` prints it;
        /// it may start with '-')
        #[arg(long, value_name = "PUBLIC_KEY", allow_hyphen_values = true)]
        log_key: String,
        /// Output file for the cosigned checkpoint [default: stdout]
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Replace an existing output file
        #[arg(long)]
        force: bool,
    },
    /// Run a hub for end-to-end encrypted messaging (`accord hub serve`)
    Hub {
        #[command(subcommand)]
        cmd: net::HubCmd,
    },
    /// Send an end-to-end encrypted message through a hub
    Send(net::SendArgs),
    /// Receive messages through a hub and print each as it arrives
    Listen(net::ListenArgs),
    /// Chat with another agent through a hub (interactive, both directions)
    Chat(net::ChatArgs),
    /// List agents on a hub and pinned peer keys; re-pin a peer whose key changed
    Peers(net::PeersArgs),
    /// RFC 3161 time-stamps: verify a token from any TSA, or request one for a file
    #[command(subcommand)]
    Timestamp(timestamp_cmd::TimestampCommand),
    /// Hand a payload to another agent with a signed receipt, or verify and accept one
    #[command(subcommand)]
    Handoff(HandoffCmd),
    /// Receipts refused by `handoff accept`, with the reasons
    #[command(subcommand)]
    Quarantine(QuarantineCmd),
    /// Co-signed sessions with agents in other processes (over TCP)
    #[command(subcommand)]
    Session(SessionCmd),
    /// Record an interaction with a peer that runs no Accord (unilateral, data hashed)
    External {
        /// How the peer is known (e.g. "gpt-4o via API")
        peer: String,
        /// Interaction data: a JSON object; values are replaced by their SHA-256
        /// unless the key ends in _hash or _id
        #[arg(long)]
        payload: Option<String>,
    },
    /// Verify exported chains, then match every co-signed record with its counterpart
    Audit {
        /// Exported chains (`accord export`)
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The whole report as JSON
        #[arg(long, conflicts_with = "jsonl")]
        json: bool,
        /// Findings only, one JSON object per line (for a SIEM)
        #[arg(long)]
        jsonl: bool,
    },
    /// Trust score of each agent, computed from exported chains only
    Trust {
        /// Exported chains (`accord export`)
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Run the tour: three agents, a co-signed session, a handoff, an audit, a proof, an archive, encrypted messaging
    Demo {
        /// Directory for the agents and exported chains [default: a new directory in the temp dir]
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Measure append and verify throughput on this machine
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum HandoffCmd {
    /// Hash a payload (streamed), sign a receipt for the receiver, record it
    Send {
        /// The receiver's agent id
        #[arg(long, value_name = "AGENT_ID")]
        to: String,
        /// The payload file (any size; read once, in chunks)
        #[arg(long, value_name = "FILE")]
        payload: PathBuf,
        /// The task this handoff belongs to
        #[arg(long, value_name = "ID")]
        parent_task: Option<String>,
        /// Receipt file [default: stdout]
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Replace an existing receipt file
        #[arg(long)]
        force: bool,
    },
    /// Verify a receipt and its payload before acting; refusals are quarantined
    Accept {
        /// The receipt from `handoff send`
        receipt: PathBuf,
        /// The payload received
        #[arg(long, value_name = "FILE")]
        payload: PathBuf,
        /// Require the receipt to come from this agent
        #[arg(long, value_name = "AGENT_ID")]
        from: Option<String>,
        /// Refuse receipts older than this many seconds
        #[arg(long, value_name = "SECONDS", default_value_t = handoff_cmd::DEFAULT_WINDOW_S)]
        window: u64,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Subcommand)]
enum QuarantineCmd {
    /// List refused receipts
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show one refused receipt and why it was refused
    Show {
        /// Its number, as `list` prints it
        id: u64,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Subcommand)]
enum SessionCmd {
    /// Answer handshakes and co-signed interactions from peers
    Serve {
        /// Address to listen on (port 0 picks a free port)
        #[arg(long, default_value = "127.0.0.1:7800")]
        listen: String,
        /// Capabilities this agent offers (repeatable)
        #[arg(long = "capability", value_name = "NAME")]
        capabilities: Vec<String>,
        /// Accept handshakes only from this agent (repeatable) [default: anyone]
        #[arg(long = "allow", value_name = "AGENT_ID")]
        allow: Vec<String>,
        /// Stop after this many connections
        #[arg(long)]
        count: Option<u64>,
    },
    /// Start a session (or join one): handshake with each peer, print the session id
    Open {
        /// A peer, as AGENT_ID@HOST:PORT (repeatable)
        #[arg(long = "peer", required = true)]
        peers: Vec<String>,
        /// Join this existing session instead of starting a new one (for
        /// the handshakes between the other participants)
        #[arg(long, value_name = "SESSION_ID")]
        session: Option<String>,
        /// Capabilities this agent offers (repeatable)
        #[arg(long = "capability", value_name = "NAME")]
        capabilities: Vec<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// A co-signed interaction with a peer: recorded in both chains
    Stamp {
        /// The session id from `session open`
        session: String,
        /// The peer, as AGENT_ID@HOST:PORT
        #[arg(long)]
        peer: String,
        /// Event type both chains record
        #[arg(long = "type", value_name = "TYPE")]
        event_type: String,
        /// Data: a JSON object; values are replaced by their SHA-256 unless
        /// the key ends in _hash or _id (see --raw)
        #[arg(long)]
        payload: Option<String>,
        /// Record the data as given instead of hashed
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// End a session: record it here and notify each peer
    End {
        /// The session id
        session: String,
        /// Peers to notify, as AGENT_ID@HOST:PORT (repeatable)
        #[arg(long = "peer")]
        peers: Vec<String>,
    },
}

#[derive(Args)]
struct JsonFlag {
    /// Machine-readable JSON output
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ProveArgs {
    /// Prove that the event with this seq is in the log
    #[arg(required_unless_present = "from", conflicts_with = "from")]
    seq: Option<u64>,
    /// Prove that the current log extends the log as it was at SIZE events
    #[arg(long, value_name = "SIZE")]
    from: Option<u64>,
    /// Output file [default: stdout]
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Replace an existing output file
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
#[group(id = "source", multiple = false)]
struct StampArgs {
    /// Event type (1-64 of A-Z a-z 0-9 _ . : / -)
    #[arg(required_unless_present = "stdin", conflicts_with = "stdin")]
    event_type: Option<String>,
    /// Payload: a JSON object (integers only, no floats)
    #[arg(long, conflicts_with = "payload_file")]
    payload: Option<String>,
    /// Read the payload object from a file
    #[arg(long, value_name = "FILE")]
    payload_file: Option<PathBuf>,
    /// Read events from stdin, one {"type":…,"payload":{…}} per line, appended in batches
    #[arg(long, conflicts_with_all = ["payload", "payload_file"])]
    stdin: bool,
    /// Events per transaction with --stdin
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    #[command(flatten)]
    out: JsonFlag,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let home = Home::new(resolve_home(cli.home));
    match run(&home, cli.command) {
        Ok(()) if out::failed() => ExitCode::from(Code::Io as u8),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", printable(&e.to_string()));
            e.exit_code()
        }
    }
}

fn resolve_home(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os("ACCORD_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(".accord"))
}

fn run(home: &Home, command: Command) -> Result<(), CliError> {
    match command {
        Command::Init {
            name,
            no_passphrase,
        } => cmd_init(home, name, no_passphrase),
        Command::Id { out } => cmd_id(home, out.json),
        Command::Jcs { file } => cmd_jcs(file.as_deref()),
        Command::Stamp(args) => cmd_stamp(home, args),
        Command::Log { from, to, out } => cmd_log(home, from, to, out.json),
        Command::Export { out, force } => cmd_export(home, out.as_deref(), force),
        Command::Verify {
            file,
            strict,
            allow_unsealed,
            tsa_ca,
            out,
        } => {
            let mode = if strict {
                SignatureMode::Strict
            } else {
                SignatureMode::Batch
            };
            match file {
                Some(f) => cmd_verify_file(&f, mode, !allow_unsealed, tsa_ca.as_deref(), out.json),
                None => cmd_verify_store(home, mode, out.json),
            }
        }
        Command::Certify {
            out,
            force,
            tsa,
            tsa_ca,
        } => cmd_certify(
            home,
            out.as_deref(),
            force,
            tsa.as_deref(),
            tsa_ca.as_deref(),
        ),
        Command::Checkpoint {
            add_cosignature: Some(file),
            witness_key: Some(key),
            out,
        } => witness::record_cosignature(home, &file, &key, out.json),
        Command::Checkpoint { out, .. } => cmd_checkpoint(home, out.json),
        Command::Prove(args) => cmd_prove(home, args),
        Command::VerifyProof {
            file,
            agent,
            against,
            out,
        } => cmd_verify_proof(&file, agent.as_deref(), against.as_deref(), out.json),
        Command::Cosign {
            file,
            log_key,
            out,
            force,
        } => witness::cosign(home, &file, &log_key, out.as_deref(), force),
        Command::Hub { cmd } => net::hub(cmd),
        Command::Send(args) => net::send(home, args),
        Command::Listen(args) => net::listen(home, args),
        Command::Chat(args) => net::chat(home, args),
        Command::Peers(args) => net::peers(home, args),
        Command::Timestamp(cmd) => timestamp_cmd::run(cmd),
        Command::Handoff(HandoffCmd::Send {
            to,
            payload,
            parent_task,
            out,
            force,
        }) => handoff_cmd::send(
            home,
            &to,
            &payload,
            parent_task.as_deref(),
            out.as_deref(),
            force,
        ),
        Command::Handoff(HandoffCmd::Accept {
            receipt,
            payload,
            from,
            window,
            out,
        }) => handoff_cmd::accept(home, &receipt, &payload, from.as_deref(), window, out.json),
        Command::Quarantine(QuarantineCmd::List { out }) => handoff_cmd::list(home, out.json),
        Command::Quarantine(QuarantineCmd::Show { id, out }) => {
            handoff_cmd::show(home, id, out.json)
        }
        Command::Session(SessionCmd::Serve {
            listen,
            capabilities,
            allow,
            count,
        }) => session_cmd::serve(home, &listen, &capabilities, &allow, count),
        Command::Session(SessionCmd::Open {
            peers,
            session,
            capabilities,
            out,
        }) => session_cmd::open(home, &peers, session.as_deref(), &capabilities, out.json),
        Command::Session(SessionCmd::Stamp {
            session,
            peer,
            event_type,
            payload,
            raw,
            out,
        }) => session_cmd::stamp(
            home,
            &session,
            &peer,
            &event_type,
            payload.as_deref(),
            raw,
            out.json,
        ),
        Command::Session(SessionCmd::End { session, peers }) => {
            session_cmd::end(home, &session, &peers)
        }
        Command::External { peer, payload } => {
            session_cmd::external(home, &peer, payload.as_deref())
        }
        Command::Audit { files, json, jsonl } => audit_cmd::cmd_audit(&files, json, jsonl),
        Command::Trust { files, out } => audit_cmd::cmd_trust(&files, out.json),
        Command::Demo { out } => demo::run(out.as_deref()),
        Command::Bench(args) => bench::run(args),
    }
}

fn cmd_init(home: &Home, name: Option<String>, no_passphrase: bool) -> Result<(), CliError> {
    if let Some(n) = &name
        && (n.is_empty() || n.len() > 128 || n.chars().any(char::is_control))
    {
        return Err(CliError::input(
            "--name must be 1-128 characters without control characters",
        ));
    }
    for p in [home.key_path(), home.store_path()] {
        if p.exists() {
            return Err(CliError::new(
                Code::Identity,
                format!(
                    "{} already exists; an existing identity is never overwritten (use another --home)",
                    p.display()
                ),
            ));
        }
    }
    let passphrase = if no_passphrase {
        None
    } else {
        Some(new_passphrase()?)
    };
    let agent = home.init(
        name.as_deref(),
        passphrase.as_ref().map(|p| p.as_bytes()),
        KdfParams::DEFAULT,
    )?;
    let key = agent.key();
    outln!("created agent {}", key.agent_id());
    outln!("fingerprint  {}", key.public().fingerprint());
    outln!("home         {}", home.dir().display());
    if no_passphrase {
        eprintln!("warning: the private key is stored unencrypted (--no-passphrase)");
    }
    Ok(())
}

fn cmd_id(home: &Home, json: bool) -> Result<(), CliError> {
    let info = home.info()?;
    if json {
        outln!(
            "{}",
            json!({
                "agent_id": info.agent_id.as_str(),
                "fingerprint": info.public_key.fingerprint(),
                "public_key": info.public_key.to_b64(),
                "name": info.name,
                "created_at": info.created_at.as_str(),
                "encrypted": info.encrypted,
            })
        );
    } else {
        outln!("agent_id     {}", info.agent_id);
        outln!("fingerprint  {}", info.public_key.fingerprint());
        outln!("public_key   {}", info.public_key.to_b64());
        outln!(
            "name         {}",
            printable(info.name.as_deref().unwrap_or("-"))
        );
        outln!("created_at   {}", info.created_at);
        outln!(
            "key          {}",
            if info.encrypted {
                "encrypted (Argon2id + AES-256-GCM)"
            } else {
                "UNENCRYPTED"
            }
        );
    }
    Ok(())
}

fn cmd_jcs(file: Option<&Path>) -> Result<(), CliError> {
    let text = input::read_all(file, input::MAX_JCS_INPUT)?;
    let canonical = jcs::canonicalize(&text)?;
    let mut out = out::Stdout;
    out.write_all(&canonical)
        .and_then(|_| out.write_all(b"\n"))
        .map_err(|e| CliError::io(format!("cannot write output: {e}")))
}

fn cmd_stamp(home: &Home, args: StampArgs) -> Result<(), CliError> {
    if args.stdin {
        return stamp_stdin(home, args.batch as usize, args.out.json);
    }
    let event_type = args.event_type.unwrap_or_default();
    let payload: Map<String, Value> = match (&args.payload, &args.payload_file) {
        (Some(p), _) => event::payload_from_json(p.as_bytes())?,
        (None, Some(f)) => {
            event::payload_from_json(&input::read_all(Some(f), event::MAX_EVENT_BYTES)?)
                .map_err(|e| CliError::input(format!("{}: {e}", f.display())))?
        }
        (None, None) => Map::new(),
    };
    event::check_type(&event_type, 1)?;
    let mut agent = open_agent(home)?;
    let ev = agent.stamp(&event_type, payload)?;
    print_event(&ev, args.out.json);
    Ok(())
}

fn stamp_stdin(home: &Home, batch: usize, json: bool) -> Result<(), CliError> {
    let mut agent = open_agent(home)?;
    let stdin = io::stdin();
    let mut lines = input::Lines::new(stdin.lock(), event::MAX_EVENT_BYTES);
    let mut pending = Vec::with_capacity(batch);
    let (mut total, mut first, mut last) = (0u64, None, None);
    let progress = spinner("appending");
    loop {
        let line = lines.next_line()?;
        if let Some((n, text)) = &line {
            pending.push(input::parse_stamp_line(text).map_err(|e| {
                CliError::input(format!(
                    "stdin line {n}: {e}; {total} events from earlier lines were appended, none from this batch"
                ))
            })?);
        }
        if pending.len() >= batch || (line.is_none() && !pending.is_empty()) {
            let events = agent.stamp_batch(std::mem::take(&mut pending))?;
            total += events.len() as u64;
            first = first.or_else(|| events.first().map(SignedEvent::seq));
            last = events.last().map(SignedEvent::seq);
            progress.set_position(total);
        }
        if line.is_none() {
            break;
        }
    }
    progress.finish_and_clear();
    if json {
        outln!(
            "{}",
            json!({ "appended": total, "first_seq": first, "last_seq": last })
        );
    } else {
        match (first, last) {
            (Some(a), Some(b)) => outln!("appended {total} events (seq {a}..={b})"),
            _ => outln!("appended 0 events (stdin was empty)"),
        }
    }
    Ok(())
}

fn cmd_log(home: &Home, from: u64, to: Option<u64>, json: bool) -> Result<(), CliError> {
    let info = home.info()?;
    let store = home.open_store()?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut err = None;
    store.scan(&info.agent_id, from, to, &mut |seq, body| {
        let res = if json {
            let shown = text::json_printable(&String::from_utf8_lossy(body));
            out.write_all(shown.as_bytes())
                .and_then(|_| out.write_all(b"\n"))
        } else {
            match SignedEvent::from_canonical(body) {
                Ok(ev) => {
                    let e = ev.event();
                    let payload =
                        String::from_utf8_lossy(&jcs::to_vec(&Value::Object(e.payload.clone())))
                            .into_owned();
                    writeln!(
                        out,
                        "{:>6}  {}  {:<20}  {}  {}",
                        e.seq,
                        e.timestamp,
                        e.event_type,
                        &ev.hash().to_hex()[..12],
                        printable(&truncate(&payload, 100))
                    )
                }
                Err(e) => writeln!(
                    out,
                    "{seq:>6}  <unreadable event: {}; run `accord verify`>",
                    printable(&e.to_string())
                ),
            }
        };
        if let Err(e) = res {
            // A closed pipe (e.g. `| head`) is a normal way to stop reading.
            err = Some(e);
            return Ok(std::ops::ControlFlow::Break(()));
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    match err.map(|e| e.kind()) {
        None => out.flush().or_else(ignore_broken_pipe),
        Some(io::ErrorKind::BrokenPipe) => Ok(()),
        Some(k) => Err(io::Error::from(k)),
    }
    .map_err(|e| CliError::io(format!("cannot write output: {e}")))
}

fn cmd_export(home: &Home, out: Option<&Path>, force: bool) -> Result<(), CliError> {
    let agent = open_agent(home)?;
    let progress = spinner("exporting");
    let mut tick = |n| progress.set_position(n);
    let count = match out {
        Some(path) => {
            let file = create_output(path, force)?;
            let mut w = BufWriter::new(file);
            let written = agent
                .export(&mut w, &mut tick)
                .map_err(CliError::from)
                .and_then(|n| {
                    let file = w.into_inner().map_err(|e| CliError::io(e.to_string()))?;
                    file.sync_all().map_err(|e| CliError::io(e.to_string()))?;
                    Ok(n)
                });
            match written {
                Ok(n) => n,
                Err(e) => {
                    // Never leave a partial export under the requested name.
                    let _ = std::fs::remove_file(path);
                    return Err(e);
                }
            }
        }
        None => {
            let mut w = BufWriter::new(out::Stdout);
            agent.export(&mut w, &mut tick)?
        }
    };
    progress.finish_and_clear();
    if let Some(p) = out {
        eprintln!(
            "exported {count} events and a signed seal to {}",
            p.display()
        );
    }
    Ok(())
}

fn cmd_verify_store(home: &Home, mode: SignatureMode, json: bool) -> Result<(), CliError> {
    let info = home.info()?;
    let store = home.open_store()?;
    store.quick_check()?;
    let progress = spinner("verifying");
    let result = verify_store(&store, &info.agent_id, mode, &mut |n| {
        progress.set_position(n)
    })?;
    progress.finish_and_clear();
    let summary = match result {
        Ok(summary) => summary,
        Err(f) => return report_failure(json, f.seq, None, &f.reason.to_string()),
    };
    // A valid but shortened or rewritten chain still contradicts the
    // checkpoints the agent signed before.
    let tree = home::tree_of(&store, &info.agent_id)?;
    // The tree index the store keeps for proofs must agree with the events.
    let stored = home::stored_tree(&store, &info.agent_id)?;
    let n = tree.size();
    if stored.size() != n || stored.root(n).ok() != tree.root(n).ok() {
        return Err(CliError::new(
            Code::Store,
            format!(
                "the store's tree index disagrees with its {n} events (the merkle table is damaged); the events themselves verify: export them with `accord export`"
            ),
        ));
    }
    // The copy of the last checkpoint kept outside the store names a
    // rollback that took the store's own record of it along.
    let latest = home.latest_checkpoint(&info.public_key)?;
    if let Some(cp) = &latest {
        if cp.size > n {
            return report_failure_msg(
                json,
                None,
                None,
                &format!(
                    "the chain has {n} events but this agent signed a checkpoint of {} events ({}): events were lost or removed (a deleted events.db-wal after a crash, an older backup restored, or rows deleted)",
                    cp.size,
                    home.dir().join(home::LATEST_CHECKPOINT_FILE).display()
                ),
            );
        }
        if tree.root(cp.size).ok() != Some(cp.root) {
            return report_failure_msg(
                json,
                None,
                None,
                &format!(
                    "the first {} events differ from the checkpoint of that size this agent signed ({}): the store was rewritten",
                    cp.size,
                    home.dir().join(home::LATEST_CHECKPOINT_FILE).display()
                ),
            );
        }
    }
    match home::check_recorded(&store, &info.public_key, &tree) {
        Ok(k) => {
            let last = match &latest {
                Some(cp) => format!("; last signed checkpoint: {} of {n} events", cp.size),
                None => "; no checkpoint signed yet".to_owned(),
            };
            report_ok(
                json,
                &summary,
                None,
                &format!(
                    "store {} ({k} recorded checkpoint{} consistent{last})",
                    store.path().display(),
                    if k == 1 { "" } else { "s" }
                ),
                Map::from_iter([
                    ("recorded_checkpoints".to_owned(), Value::from(k)),
                    (
                        "last_signed_checkpoint".to_owned(),
                        latest
                            .as_ref()
                            .map_or(Value::Null, |cp| Value::from(cp.size)),
                    ),
                ]),
            );
            Ok(())
        }
        Err(accord_store::HomeError::Contradiction(m)) => report_failure_msg(json, None, None, &m),
        Err(e) => Err(e.into()),
    }
}

fn cmd_verify_file(
    path: &Path,
    mode: SignatureMode,
    require_seal: bool,
    tsa_ca: Option<&Path>,
    json: bool,
) -> Result<(), CliError> {
    let trust = tsa_ca.map(timestamp_cmd::load_trust).transpose()?;
    let file = File::open(path)
        .map_err(|e| CliError::input(format!("cannot open {}: {e}", path.display())))?;
    let mut lines = input::Lines::new(io::BufReader::new(file), event::MAX_EVENT_BYTES);
    let mut verifier = ExportVerifier::new(mode, require_seal);
    let progress = spinner("verifying");
    let fail = |e: accord_core::ExportError| -> Result<(), CliError> {
        use accord_core::ExportError as E;
        match &e {
            E::Chain { line, failure } => {
                report_failure(json, failure.seq, Some(*line), &failure.reason.to_string())
            }
            E::Seal { line, reason } => {
                report_failure_msg(json, None, Some(*line), &format!("export seal: {reason}"))
            }
            _ => report_failure_msg(json, None, None, &e.to_string()),
        }
    };
    let mut first = true;
    loop {
        let line = match lines.next_line() {
            Ok(Some((_, text))) => text,
            Ok(None) => break,
            Err(input::LineError::TooLong { len, .. }) => {
                progress.finish_and_clear();
                return fail(verifier.push_oversized(len));
            }
            Err(e) => {
                progress.finish_and_clear();
                return Err(e.into());
            }
        };
        if std::mem::take(&mut first) {
            if ArchiveVerifier::is_archive(&line) {
                progress.finish_and_clear();
                return verify_archive(lines, &line, mode, trust, json, path);
            }
            if trust.is_some() {
                progress.finish_and_clear();
                return Err(CliError::input(format!(
                    "--tsa-ca: {} is an export, not a certified archive; exports carry no RFC 3161 timestamp",
                    path.display()
                )));
            }
        }
        if let Err(e) = verifier.push_line(&line) {
            progress.finish_and_clear();
            return fail(e);
        }
        let n = verifier.count();
        if n.is_multiple_of(4096) {
            progress.set_position(n);
        }
    }
    progress.finish_and_clear();
    match verifier.finish() {
        Ok(report) => {
            report_ok(
                json,
                &report.summary,
                Some(report.seal.is_some()),
                &path.display().to_string(),
                Map::new(),
            );
            Ok(())
        }
        Err(e) => fail(e),
    }
}

fn verify_archive<R: io::BufRead>(
    mut lines: input::Lines<R>,
    header: &[u8],
    mode: SignatureMode,
    trust: Option<accord_tsp::Trust>,
    json: bool,
    path: &Path,
) -> Result<(), CliError> {
    let anchored = trust.is_some();
    let mut v = ArchiveTimestamps::with_optional_trust(trust).verifier(mode);
    let progress = spinner("verifying archive");
    let fail = |e: String| -> Result<(), CliError> { report_failure_msg(json, None, None, &e) };
    if let Err(e) = v.push_line(header) {
        return fail(e.to_string());
    }
    loop {
        let line = match lines.next_line() {
            Ok(Some((_, text))) => text,
            Ok(None) => break,
            Err(input::LineError::TooLong { len, .. }) => {
                progress.finish_and_clear();
                return fail(v.push_oversized(len).to_string());
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = v.push_line(&line) {
            progress.finish_and_clear();
            return fail(e.to_string());
        }
        if v.count().is_multiple_of(4096) {
            progress.set_position(v.count());
        }
    }
    progress.finish_and_clear();
    let r = match v.finish() {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let s = &r.export.summary;
    if anchored && r.timestamp.is_none() {
        return report_failure_msg(
            json,
            None,
            None,
            "--tsa-ca was given but the archive carries no RFC 3161 timestamp (its time is only the agent's claim)",
        );
    }
    let ts = timestamp_cmd::ArchiveTimestamp::new(r.timestamp.as_ref(), path);
    if json {
        outln!(
            "{}",
            json!({
                "ok": true, "kind": "archive", "agent_id": s.agent_id.as_str(), "name": r.name,
                "events": s.events, "head_hash": s.head_hash.to_hex(),
                "checkpoint_size": r.checkpoint.size, "checkpoint_root": r.checkpoint.root.to_hex(),
                "certified_at": r.certified_at.as_str(), "timestamp": ts.json(),
            })
        );
    } else {
        outln!(
            "archive verified — {} events, 0 anomalies, seal and certification valid, {}\n  agent {}{}\n  checkpoint size {} root {}\n  certified by the agent at {} (its own clock){}\n  file {}",
            group_digits(s.events),
            ts.headline(),
            s.agent_id,
            r.name
                .as_deref()
                .map(|n| format!(" ({})", printable(n)))
                .unwrap_or_default(),
            r.checkpoint.size,
            r.checkpoint.root,
            r.certified_at,
            ts.details(),
            path.display()
        );
        ts.warn();
    }
    Ok(())
}

fn cmd_certify(
    home: &Home,
    out: Option<&Path>,
    force: bool,
    tsa: Option<&str>,
    tsa_ca: Option<&Path>,
) -> Result<(), CliError> {
    let mut stamper = match (tsa, tsa_ca) {
        (Some(url), Some(ca)) => Some(timestamp_cmd::Stamper::new(
            url,
            timestamp_cmd::load_trust(ca)?,
        )?),
        _ => None,
    };
    let mut agent = open_agent(home)?;
    verify_before_signing(&mut agent)?;
    let progress = spinner("certifying");
    let mut tick = |n| progress.set_position(n);
    let path = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{}.accord", agent.key().agent_id())));
    let file = create_output(&path, force)?;
    let mut w = BufWriter::new(file);
    let result = match stamper.as_mut() {
        Some(s) => agent.certify_with(&mut w, &mut tick, Some(&mut |note: &[u8]| s.ask(note))),
        None => agent.certify(&mut w, &mut tick),
    };
    let (count, cp) = match result {
        Ok(r) => r,
        Err(e) => {
            // Never leave a partial archive behind under the requested name.
            drop(w);
            let _ = std::fs::remove_file(&path);
            // A TSA failure keeps its own exit code (network, verification).
            return Err(stamper
                .as_mut()
                .and_then(|s| s.error.take())
                .unwrap_or_else(|| e.into()));
        }
    };
    let file = w.into_inner().map_err(|e| CliError::io(e.to_string()))?;
    file.sync_all().map_err(|e| CliError::io(e.to_string()))?;
    progress.finish_and_clear();
    outln!(
        "certified {} events of {} into {}\n  checkpoint size {} root {}\n  check it anywhere with: accord verify {}",
        group_digits(count),
        agent.key().agent_id(),
        path.display(),
        cp.size,
        cp.root,
        path.display()
    );
    if let Some(r) = stamper.as_ref().and_then(|s| s.report.as_ref()) {
        outln!(
            "  {} — RFC 3161 token over the checkpoint\n  verify the time with: accord verify {} --tsa-ca {}",
            timestamp_cmd::summary(r),
            path.display(),
            tsa_ca
                .map(Path::display)
                .map_or_else(String::new, |p| p.to_string())
        );
    }
    Ok(())
}

/// An agent signs checkpoints only over a chain it has just verified (and
/// `sign_checkpoint` also checks it against every checkpoint signed before).
pub(crate) fn verify_before_signing(agent: &mut accord_store::Agent) -> Result<(), CliError> {
    let progress = spinner("verifying the chain before signing");
    let result = agent.verify_own(&mut |n| progress.set_position(n));
    progress.finish_and_clear();
    Ok(result?)
}

fn cmd_checkpoint(home: &Home, json: bool) -> Result<(), CliError> {
    let mut agent = open_agent(home)?;
    verify_before_signing(&mut agent)?;
    let (cp, note) = agent.checkpoint()?;
    let text = String::from_utf8_lossy(&note.to_bytes()).into_owned();
    if json {
        outln!(
            "{}",
            json!({
                "origin": cp.origin,
                "size": cp.size,
                "root": cp.root.to_hex(),
                "note": text,
                "verifier_key": accord_core::note::verifier_key(&cp.origin, agent.key().public()),
            })
        );
    } else {
        out!("{text}");
    }
    Ok(())
}

fn cmd_prove(home: &Home, args: ProveArgs) -> Result<(), CliError> {
    let mut agent = open_agent(home)?;
    verify_before_signing(&mut agent)?;
    let size = agent.tree()?.size();
    let (cp, note) = agent.sign_checkpoint(size)?;
    let old = match args.from {
        Some(from) => Some(agent.sign_checkpoint(from)?),
        None => None,
    };
    let key = *agent.key().public();
    let tree = agent.tree()?;
    let file = match (args.seq, old) {
        (Some(seq), _) => {
            let proof = tree
                .inclusion_proof(seq, cp.size)
                .map_err(|e| CliError::input(e.to_string()))?;
            let mut body = None;
            let id = agent.key().agent_id().clone();
            agent.store().scan(&id, seq, Some(seq), &mut |_, b| {
                body = Some(b.to_vec());
                Ok(std::ops::ControlFlow::Break(()))
            })?;
            let body = body.ok_or_else(|| CliError::input(format!("no event with seq {seq}")))?;
            let event = SignedEvent::from_canonical(&body)
                .map_err(|e| CliError::new(Code::Store, e.to_string()))?;
            proof::inclusion_file(&note, &event, &proof, &key)
        }
        (None, Some((old_cp, old_note))) => {
            let proof = tree
                .consistency_proof(old_cp.size, cp.size)
                .map_err(|e| CliError::input(e.to_string()))?;
            proof::consistency_file(&old_note, &note, &proof, &key)
        }
        (None, None) => return Err(CliError::input("give SEQ or --from SIZE")),
    };
    // The proof comes from the store's tree index: check it before handing
    // it out, so a damaged index is reported here, not by a third party.
    proof::verify_file(&file, Some(agent.key().agent_id()), None).map_err(|e| {
        CliError::new(
            Code::Store,
            format!("the store's tree index produced a proof that does not verify ({e}); the store is damaged: run `accord verify`"),
        )
    })?;
    write_output(args.out.as_deref(), args.force, &file)
}

fn cmd_verify_proof(
    path: &Path,
    agent: Option<&str>,
    against: Option<&Path>,
    json: bool,
) -> Result<(), CliError> {
    let bytes = input::read_all(Some(path), proof::MAX_PROOF_BYTES)?;
    let expect = agent
        .map(AgentId::parse)
        .transpose()
        .map_err(|e| CliError::input(format!("--agent: {e}")))?;
    let kept = against
        .map(|p| input::read_all(Some(p), note::MAX_NOTE_BYTES))
        .transpose()?;
    match proof::verify_file(&bytes, expect.as_ref(), kept.as_deref()) {
        Ok(proof::Verified::Inclusion { checkpoint, event }) => {
            if json {
                outln!(
                    "{}",
                    json!({"ok": true, "kind": "inclusion", "origin": checkpoint.origin, "size": checkpoint.size,
                           "root": checkpoint.root.to_hex(), "seq": event.seq(), "event_hash": event.hash().to_hex()})
                );
            } else {
                outln!(
                    "proof verified — event seq {} ({}) is entry {} of {} in the log of {}
  root {}",
                    event.seq(),
                    printable(&event.event().event_type),
                    event.seq(),
                    group_digits(checkpoint.size),
                    event.event().agent_id,
                    checkpoint.root
                );
            }
            Ok(())
        }
        Ok(proof::Verified::Consistency { old, new }) => {
            if json {
                outln!(
                    "{}",
                    json!({"ok": true, "kind": "consistency", "origin": new.origin, "old_size": old.size,
                           "old_root": old.root.to_hex(), "new_size": new.size, "new_root": new.root.to_hex()})
                );
            } else {
                outln!(
                    "proof verified — the log at {} events extends the log at {} events (append-only)
  origin {}",
                    group_digits(new.size),
                    group_digits(old.size),
                    new.origin
                );
            }
            Ok(())
        }
        Err(proof::ProofError::Fork {
            size,
            root1,
            root2,
            evidence,
        }) => {
            let msg = format!(
                "FORK: the agent signed two different checkpoints of size {size} (roots {root1} and {root2})"
            );
            if json {
                outln!(
                    "{}",
                    json!({"ok": false, "fork": true, "reason": msg, "evidence": [evidence.0, evidence.1]})
                );
            } else {
                eprintln!(
                    "evidence (both signed by the agent):\n{}\n{}",
                    evidence.0, evidence.1
                );
            }
            Err(CliError::new(Code::VerifyFailed, msg))
        }
        Err(e) => {
            if json {
                outln!("{}", json!({"ok": false, "reason": e.to_string()}));
            }
            Err(CliError::new(
                Code::VerifyFailed,
                format!("proof FAILED: {e}"),
            ))
        }
    }
}

/// Creates an output file: refuses to replace an existing one unless
/// `force`, and says how to override.
pub(crate) fn create_output(path: &Path, force: bool) -> Result<File, CliError> {
    let mut opts = OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    opts.open(path).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::AlreadyExists {
            " (pass --force to replace it)"
        } else {
            ""
        };
        CliError::io(format!("cannot create {}: {e}{hint}", path.display()))
    })
}

pub(crate) fn write_output(out: Option<&Path>, force: bool, bytes: &[u8]) -> Result<(), CliError> {
    match out {
        Some(path) => {
            let mut f = create_output(path, force)?;
            f.write_all(bytes)
                .and_then(|_| f.write_all(b"\n"))
                .and_then(|_| f.sync_all())
                .map_err(|e| CliError::io(format!("cannot write {}: {e}", path.display())))
        }
        None => {
            let mut o = out::Stdout;
            o.write_all(bytes)
                .and_then(|_| o.write_all(b"\n"))
                .map_err(|e| CliError::io(format!("cannot write output: {e}")))
        }
    }
}

fn report_ok(
    json: bool,
    s: &accord_core::Summary,
    sealed: Option<bool>,
    what: &str,
    extra: Map<String, Value>,
) {
    if json {
        let mut v = json!({
            "ok": true,
            "agent_id": s.agent_id.as_str(),
            "events": s.events,
            "head_hash": s.head_hash.to_hex(),
            "first_timestamp": s.first_timestamp.as_str(),
            "last_timestamp": s.last_timestamp.as_str(),
            "sealed": sealed,
        });
        if let Value::Object(m) = &mut v {
            m.extend(extra);
        }
        outln!("{v}");
    } else {
        let seal = match sealed {
            Some(true) => ", seal valid",
            Some(false) => ", NOT sealed (its end cannot be proven)",
            None => "",
        };
        outln!(
            "chain verified — {} events, 0 anomalies{seal}\n  agent {}\n  head  {}\n  from  {}",
            group_digits(s.events),
            s.agent_id,
            s.head_hash,
            what
        );
    }
}

fn report_failure(json: bool, seq: u64, line: Option<u64>, reason: &str) -> Result<(), CliError> {
    report_failure_msg(json, Some(seq), line, reason)
}

fn report_failure_msg(
    json: bool,
    seq: Option<u64>,
    line: Option<u64>,
    reason: &str,
) -> Result<(), CliError> {
    let mut msg = String::from("verification FAILED");
    if let Some(s) = seq {
        msg.push_str(&format!(" at event seq {s}"));
    }
    if let Some(l) = line {
        msg.push_str(&format!(" (line {l})"));
    }
    msg.push_str(&format!(": {reason}"));
    if json {
        outln!(
            "{}",
            json!({ "ok": false, "seq": seq, "line": line, "reason": reason })
        );
    }
    Err(CliError::new(Code::VerifyFailed, msg))
}

pub(crate) fn open_agent(home: &Home) -> Result<accord_store::Agent, CliError> {
    let info = home.info()?;
    let passphrase = if info.encrypted {
        Some(existing_passphrase()?)
    } else {
        None
    };
    Ok(home.open(passphrase.as_ref().map(|p| p.as_bytes()))?)
}

fn existing_passphrase() -> Result<zeroizing::Secret, CliError> {
    if let Some(p) = std::env::var_os("ACCORD_PASSPHRASE") {
        return zeroizing::Secret::from_os(p);
    }
    if !io::stderr().is_terminal() {
        return Err(CliError::new(
            Code::Identity,
            "the key is encrypted: set ACCORD_PASSPHRASE, or run on a terminal to be asked",
        ));
    }
    rpassword::prompt_password("passphrase: ")
        .map(zeroizing::Secret::new)
        .map_err(|e| {
            CliError::new(
                Code::Identity,
                format!("cannot read passphrase: {e} (set ACCORD_PASSPHRASE)"),
            )
        })
}

fn new_passphrase() -> Result<zeroizing::Secret, CliError> {
    let p = if let Some(p) = std::env::var_os("ACCORD_PASSPHRASE") {
        zeroizing::Secret::from_os(p)?
    } else if io::stderr().is_terminal() {
        let a = rpassword::prompt_password("new passphrase: ")
            .map_err(|e| CliError::io(e.to_string()))?;
        let b = rpassword::prompt_password("repeat passphrase: ")
            .map_err(|e| CliError::io(e.to_string()))?;
        if a != b {
            return Err(CliError::input("the passphrases differ"));
        }
        zeroizing::Secret::new(a)
    } else {
        return Err(CliError::new(
            Code::Identity,
            "a passphrase is needed to encrypt the key: set ACCORD_PASSPHRASE, run on a terminal, or pass --no-passphrase for a throwaway agent",
        ));
    };
    if p.as_bytes().is_empty() {
        return Err(CliError::new(
            Code::Identity,
            "empty passphrase: give a real one, or pass --no-passphrase for a throwaway agent",
        ));
    }
    Ok(p)
}

mod zeroizing {
    use super::{CliError, Code};

    /// A passphrase, wiped from memory when dropped.
    pub struct Secret(zeroize::Zeroizing<String>);

    impl Secret {
        pub fn new(s: String) -> Self {
            Secret(zeroize::Zeroizing::new(s))
        }
        pub fn from_os(s: std::ffi::OsString) -> Result<Self, CliError> {
            s.into_string()
                .map(Self::new)
                .map_err(|_| CliError::new(Code::Identity, "ACCORD_PASSPHRASE is not valid UTF-8"))
        }
        pub fn as_bytes(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
}

fn print_event(ev: &SignedEvent, json: bool) {
    if json {
        outln!(
            "{}",
            text::json_printable(&String::from_utf8_lossy(ev.canonical()))
        );
    } else {
        let e = ev.event();
        outln!("seq {}  {}  {}", e.seq, e.timestamp, e.event_type);
        outln!("hash {}", ev.hash());
        outln!("{}", printable(&String::from_utf8_lossy(ev.canonical())));
    }
}

/// The warning a server prints when it listens beyond this machine
/// (servers bind 127.0.0.1 by default; another address is a choice to
/// make knowingly). `what` says what a remote party can do there.
pub(crate) fn exposure_warning(addr: std::net::SocketAddr, what: &str) -> Option<String> {
    (!addr.ip().is_loopback())
        .then(|| format!("warning: listening on {addr}, reachable from other machines; {what}"))
}

/// A progress counter on stderr, drawn only when stderr is a terminal.
pub(crate) fn spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    if !io::stderr().is_terminal() {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {human_pos} events ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(what.to_owned());
    pb
}

fn ignore_broken_pipe(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e)
    }
}

/// Reads a whole file, for commands that must edit scratch copies.
pub(crate) fn read_file(p: &Path) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    File::open(p)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|e| CliError::io(format!("cannot read {}: {e}", p.display())))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::exposure_warning;

    /// Red-team finding: `session serve --listen 0.0.0.0` gave no warning.
    /// Servers share one check, tested here without opening a socket.
    #[test]
    fn servers_warn_when_they_listen_beyond_loopback() {
        for a in ["0.0.0.0:7000", "[::]:7000", "192.0.2.1:80"] {
            let w = exposure_warning(a.parse().unwrap(), "x").unwrap();
            assert!(w.contains("reachable from other machines"), "{w}");
        }
        for a in ["127.0.0.1:7000", "[::1]:7000", "127.0.0.2:1"] {
            assert_eq!(exposure_warning(a.parse().unwrap(), "x"), None);
        }
    }
}
