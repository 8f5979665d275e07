//! `accord`: agent identity, signed hash-chained event logs and their
//! verification, from a terminal. Exit codes are listed in [`exit`].

#[macro_use]
mod out;

mod audit_cmd;
mod bench;
mod common;
mod controller_cmd;
mod demo;
mod events_cmd;
mod exit;
mod handoff_cmd;
mod identity_cmd;
mod input;
mod net;
mod session_cmd;
mod text;
mod timestamp_cmd;
mod transparency_cmd;
mod tsa;
mod witness;

use std::path::PathBuf;
use std::process::ExitCode;

use accord_core::SignatureMode;
use accord_store::Home;
use clap::{Args, Parser, Subcommand};

pub(crate) use crate::common::*;
use crate::events_cmd::*;
use crate::exit::{CliError, Code};
pub(crate) use crate::identity_cmd::*;
pub(crate) use crate::text::{group_digits, printable};
use crate::transparency_cmd::*;

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
    /// The controller (agent CA): create it, issue, revoke, publish CRLs, attest
    #[command(subcommand)]
    Controller(controller_cmd::ControllerCmd),
    /// Agent certificates: verify one offline against the CA (and a CRL)
    #[command(subcommand)]
    Cert(controller_cmd::CertCmd),
    /// Write a PKCS#10 certificate signing request signed by the agent's identity key
    Csr(controller_cmd::CsrArgs),
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
        Command::Controller(cmd) => controller_cmd::controller(home, cmd),
        Command::Cert(cmd) => controller_cmd::cert(cmd),
        Command::Csr(args) => controller_cmd::csr(home, args),
    }
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
