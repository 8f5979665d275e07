//! `accord session serve|open|stamp|end` and `accord external`: co-signed
//! sessions between agents in separate processes, over TCP on loopback
//! (or any address given). Each message is one JSON line
//! ([`Wire`]); every request gets exactly
//! one reply line, an error included.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use accord_core::{AgentId, Map, Uuid, Value, event};
use accord_store::participant::{
    MAX_WIRE_BYTES, Participant, ParticipantError, Wire, pending_confirm_key, pending_request_key,
};
use accord_store::{EventStore, Home};

use crate::exit::{CliError, Code};
use crate::input::{LineError, Lines};
use crate::{open_agent, printable};

/// How long a peer may take to answer one message.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `serve` gives one connection in all, so a client that trickles
/// bytes cannot hold a connection slot for ever.
const CONN_DEADLINE: Duration = Duration::from_secs(120);

/// Connections `serve` handles at once; more wait in the listen queue.
/// Each takes a thread; the participant itself is locked only while it
/// handles one message, so an idle connection delays nobody.
pub const MAX_CONNECTIONS: usize = 64;

/// Reads from a socket until a fixed deadline, whatever the pace of the
/// bytes (a per-read timeout alone lets a slow client go on indefinitely).
struct DeadlineReader {
    stream: TcpStream,
    deadline: Instant,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection deadline reached",
            ));
        }
        self.stream.set_read_timeout(Some(left.min(IO_TIMEOUT)))?;
        self.stream.read(buf)
    }
}

impl From<ParticipantError> for CliError {
    fn from(e: ParticipantError) -> Self {
        match e {
            ParticipantError::Home(h) => h.into(),
            ParticipantError::Input(m) => CliError::input(m),
            other => CliError::new(Code::VerifyFailed, other.to_string()),
        }
    }
}

/// `AGENT_ID@HOST:PORT`.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    id: AgentId,
    addr: String,
}

/// Parses `AGENT_ID@HOST:PORT`.
pub fn parse_peer(s: &str) -> Result<PeerSpec, String> {
    let (id, addr) = s
        .split_once('@')
        .ok_or_else(|| format!("{s:?}: expected AGENT_ID@HOST:PORT"))?;
    let id = AgentId::parse(id).map_err(|e| format!("{id:?}: {e}"))?;
    if addr.is_empty() {
        return Err(format!("{s:?}: missing HOST:PORT after '@'"));
    }
    Ok(PeerSpec {
        id,
        addr: addr.to_owned(),
    })
}

struct Conn {
    reader: Lines<BufReader<TcpStream>>,
    writer: TcpStream,
    addr: String,
}

impl Conn {
    fn open(addr: &str) -> Result<Conn, CliError> {
        let io = |e: std::io::Error| {
            CliError::io(format!(
                "cannot reach peer at {addr}: {e} (is `accord session serve` running there?)"
            ))
        };
        let sock: SocketAddr = addr
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| CliError::input(format!("{addr}: no address")))?;
        let stream = TcpStream::connect_timeout(&sock, IO_TIMEOUT).map_err(io)?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(Conn {
            reader: Lines::new(BufReader::new(stream), MAX_WIRE_BYTES),
            writer,
            addr: addr.to_owned(),
        })
    }

    fn call(&mut self, msg: &Wire) -> Result<Wire, CliError> {
        match self.call_raw(msg)? {
            Wire::Error(e) => Err(CliError::new(
                Code::VerifyFailed,
                format!("peer at {} refused: {}", self.addr, printable(&e)),
            )),
            w => Ok(w),
        }
    }

    /// One request, one reply; a peer's refusal comes back as
    /// [`Wire::Error`], everything else that goes wrong as an error.
    fn call_raw(&mut self, msg: &Wire) -> Result<Wire, CliError> {
        let mut line = msg.to_line();
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|e| CliError::io(format!("sending to {}: {e}", self.addr)))?;
        let reply = match self.reader.next_line() {
            Ok(Some((_, l))) => l,
            Ok(None) => {
                return Err(CliError::io(format!(
                    "{} closed the connection without answering",
                    self.addr
                )));
            }
            Err(LineError::TooLong { .. }) => {
                return Err(CliError::new(
                    Code::VerifyFailed,
                    format!("{} sent an oversized reply", self.addr),
                ));
            }
            Err(LineError::Read(m)) => return Err(CliError::io(format!("{}: {m}", self.addr))),
        };
        match Wire::parse(&reply) {
            Ok(w) => Ok(w),
            Err(e) => Err(CliError::new(
                Code::VerifyFailed,
                format!("peer at {} sent an invalid reply: {e}", self.addr),
            )),
        }
    }
}

fn capabilities(caps: &[String]) -> Result<Vec<String>, CliError> {
    for c in caps {
        if c.is_empty() || c.len() > 64 || c.chars().any(char::is_control) {
            return Err(CliError::input(
                "--capability must be 1-64 characters without control characters",
            ));
        }
    }
    Ok(caps.to_vec())
}

/// `accord session serve`: answers handshakes, interactions and end
/// notices until killed (or after `count` connections).
pub fn serve(
    home: &Home,
    listen: &str,
    caps: &[String],
    allow: &[String],
    count: Option<u64>,
) -> Result<(), CliError> {
    let mut me = Participant::new(open_agent(home)?, capabilities(caps)?);
    if !allow.is_empty() {
        let ids = allow
            .iter()
            .map(|a| AgentId::parse(a).map_err(|e| CliError::input(format!("--allow {a:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        me = me.with_allowed(ids);
    }
    let listener = TcpListener::bind(listen)
        .map_err(|e| CliError::io(format!("cannot listen on {listen}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::io(e.to_string()))?;
    if let Some(w) = crate::exposure_warning(
        local,
        "any agent that can connect may propose sessions (use --allow to restrict who may)",
    ) {
        eprintln!("{w}");
    }
    outln!("listening on {local} as {}", me.id());
    let me = Mutex::new(me);
    // Connections being served, and a signal when one ends.
    let active = (Mutex::new(0usize), Condvar::new());
    std::thread::scope(|scope| {
        for (served, stream) in (1u64..).zip(listener.incoming()) {
            match stream {
                Ok(s) => {
                    // Wait for a free slot rather than refuse: the client's
                    // connection sits in the kernel queue meanwhile.
                    let (count, ended) = &active;
                    let mut n = ended
                        .wait_while(count.lock().unwrap_or_else(|p| p.into_inner()), |n| {
                            *n >= MAX_CONNECTIONS
                        })
                        .unwrap_or_else(|p| p.into_inner());
                    *n += 1;
                    drop(n);
                    let (me, active) = (&me, &active);
                    scope.spawn(move || {
                        if let Err(e) = serve_conn(me, s) {
                            eprintln!("connection ended: {}", printable(&e));
                        }
                        let (count, ended) = active;
                        *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                        ended.notify_one();
                    });
                }
                Err(e) => eprintln!("accept failed: {e}"),
            }
            if count.is_some_and(|c| served >= c) {
                break;
            }
        }
    });
    Ok(())
}

fn serve_conn(me: &Mutex<Participant>, stream: TcpStream) -> Result<(), String> {
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|_| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let reader = DeadlineReader {
        stream,
        deadline: Instant::now() + CONN_DEADLINE,
    };
    let mut lines = Lines::new(BufReader::new(reader), MAX_WIRE_BYTES);
    loop {
        let (reply, fatal) = match lines.next_line() {
            Ok(Some((_, line))) => match Wire::parse(&line) {
                Ok(msg) => {
                    // A thread that panicked while holding the lock left no
                    // half-written state behind: every change is one store
                    // transaction.
                    let mut me = me.lock().unwrap_or_else(|p| p.into_inner());
                    match me.handle(msg) {
                        Ok(r) => (r, false),
                        Err(e) => {
                            eprintln!("refused: {}", printable(&e.to_string()));
                            (Wire::Error(e.to_string()), false)
                        }
                    }
                }
                Err(e) => (Wire::Error(format!("invalid message: {e}")), false),
            },
            Ok(None) => return Ok(()),
            Err(LineError::TooLong { len, .. }) => (
                Wire::Error(format!(
                    "message exceeds {MAX_WIRE_BYTES} bytes ({len}+ read); closing"
                )),
                true,
            ),
            Err(LineError::Read(m)) => return Err(m),
        };
        let mut out = reply.to_line();
        out.push(b'\n');
        writer.write_all(&out).map_err(|e| e.to_string())?;
        if fatal {
            return Ok(());
        }
    }
}

/// `accord session open`: handshakes with every peer and prints the
/// session id.
pub fn open(
    home: &Home,
    peers: &[String],
    session: Option<&str>,
    caps: &[String],
    json: bool,
) -> Result<(), CliError> {
    let peers = peers
        .iter()
        .map(|p| parse_peer(p).map_err(CliError::input))
        .collect::<Result<Vec<_>, _>>()?;
    if peers.is_empty() {
        return Err(CliError::input(
            "name at least one --peer AGENT_ID@HOST:PORT",
        ));
    }
    let mut me = Participant::new(open_agent(home)?, capabilities(caps)?);
    let sid = match session {
        Some(s) => session_id(s)?,
        None => accord_store::home::nonce()?,
    };
    let mut ids = vec![me.id().clone()];
    ids.extend(peers.iter().map(|p| p.id.clone()));
    me.open_session(sid, &ids)?;
    let me_id = me.id().clone();
    for p in &peers {
        let confirm_key = pending_confirm_key(&sid, &p.id);
        let kept = me.agent().store().state(&me_id, &confirm_key)?;
        let recorded = me.progress(&sid, &p.id)?.is_some();
        if recorded && kept.is_none() {
            if !json {
                eprintln!("handshake with {} already done", p.id);
            }
            continue;
        }
        let mut conn = Conn::open(&p.addr)?;
        let confirm = match kept.filter(|_| recorded) {
            // Recorded here, confirmation not acknowledged: send it again.
            Some(line) => Wire::parse(&line).map_err(|e| {
                CliError::new(Code::Store, format!("kept confirmation unreadable: {e}"))
            })?,
            None => {
                let proposal = me.propose(sid, &p.id, &ids)?;
                let Wire::Response(r) = conn.call(&proposal)? else {
                    return Err(CliError::new(
                        Code::VerifyFailed,
                        "peer did not answer with a handshake response",
                    ));
                };
                let confirm = me.on_response(&r)?;
                // Kept until acknowledged: rerun `session open --session SID`
                // with the same peer to deliver it if the answer is lost.
                me.agent_mut().store_mut().put_state(
                    &me_id,
                    &confirm_key,
                    Some(&confirm.to_line()),
                )?;
                confirm
            }
        };
        conn.call(&confirm)?;
        me.agent_mut()
            .store_mut()
            .put_state(&me_id, &confirm_key, None)?;
        if !json {
            eprintln!("handshake with {} done", p.id);
        }
    }
    if json {
        outln!(
            "{}",
            serde_json::json!({ "session_id": sid.to_string(), "participants": ids.iter().map(|a| a.as_str()).collect::<Vec<_>>() })
        );
    } else {
        outln!("{sid}");
    }
    Ok(())
}

fn session_id(s: &str) -> Result<Uuid, CliError> {
    Uuid::parse_str(s).map_err(|_| CliError::input(format!("{s:?} is not a session id (a UUID)")))
}

/// Parses `--payload` (a JSON object, integers only).
pub fn payload_arg(p: Option<&str>) -> Result<Map<String, Value>, CliError> {
    match p {
        None => Ok(Map::new()),
        Some(text) => Ok(event::payload_from_json(text.as_bytes())?),
    }
}

/// `accord session stamp`: one co-signed interaction with a peer.
pub fn stamp(
    home: &Home,
    session: &str,
    peer: &str,
    event_type: &str,
    payload: Option<&str>,
    raw: bool,
    json: bool,
) -> Result<(), CliError> {
    let sid = session_id(session)?;
    let peer = parse_peer(peer).map_err(CliError::input)?;
    let data = payload_arg(payload)?;
    let mut me = Participant::new(open_agent(home)?, Vec::new());
    let fresh = me.request(sid, &peer.id, event_type, data, raw)?;
    // The request is kept until its countersignature is recorded (the
    // initiator's event clears it in the same transaction): if the answer
    // is lost after the peer recorded it, running the same stamp again
    // resends the same request and the peer countersigns it again.
    let me_id = me.id().clone();
    let pending_key = pending_request_key(&sid, &peer.id);
    let kept = me.agent().store().state(&me_id, &pending_key)?;
    let sent = me.progress(&sid, &peer.id)?.unwrap_or(0);
    let kept = kept
        .and_then(|line| Wire::parse(&line).ok())
        .filter(|w| order_of(w).is_some_and(|o| o > sent));
    let request = match kept {
        Some(old) => {
            if !same_interaction(&old, &fresh) {
                return Err(CliError::input(format!(
                    "an earlier request to {} in this session was never answered; run that stamp again (same --type and --payload) to complete it first",
                    peer.id
                )));
            }
            old
        }
        None => {
            me.agent_mut()
                .store_mut()
                .put_state(&me_id, &pending_key, Some(&fresh.to_line()))?;
            fresh
        }
    };
    let mut conn = Conn::open(&peer.addr)?;
    let reply = match conn.call_raw(&request)? {
        Wire::Error(e) => {
            // A refusal is final for this request: forget it so the next
            // stamp starts afresh. Transport failures keep it for a retry.
            me.agent_mut()
                .store_mut()
                .put_state(&me_id, &pending_key, None)?;
            return Err(CliError::new(
                Code::VerifyFailed,
                format!("peer at {} refused: {}", peer.addr, printable(&e)),
            ));
        }
        other => other,
    };
    let Wire::Countersign(cs) = reply else {
        return Err(CliError::new(
            Code::VerifyFailed,
            "peer did not countersign",
        ));
    };
    let stamped = me.on_countersign(&request, &cs)?;
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "interaction_hash": stamped.interaction_hash.to_hex(),
                "event_seq": stamped.event.seq(),
                "peer_event_seq": cs.u64("event_seq").ok(),
            })
        );
    } else {
        outln!(
            "co-signed {} with {}: interaction {} (this chain seq {}, peer chain seq {})",
            event_type,
            peer.id,
            stamped.interaction_hash,
            stamped.event.seq(),
            cs.u64("event_seq").unwrap_or(0)
        );
    }
    Ok(())
}

/// The order an interaction request carries.
fn order_of(w: &Wire) -> Option<u64> {
    match w {
        Wire::Interaction { request, .. } => request.u64("order").ok(),
        _ => None,
    }
}

/// Whether two requests describe the same interaction (all but the time).
fn same_interaction(a: &Wire, b: &Wire) -> bool {
    match (a, b) {
        (
            Wire::Interaction {
                request: ra,
                data: da,
            },
            Wire::Interaction {
                request: rb,
                data: db,
            },
        ) => {
            let d = |r| accord_core::session::Descriptor::of_request(r).ok();
            da == db && d(ra).is_some() && d(ra) == d(rb)
        }
        _ => false,
    }
}

/// `accord session end`: records the end here and tells each peer.
pub fn end(home: &Home, session: &str, peers: &[String]) -> Result<(), CliError> {
    let sid = session_id(session)?;
    let peers = peers
        .iter()
        .map(|p| parse_peer(p).map_err(CliError::input))
        .collect::<Result<Vec<_>, _>>()?;
    let mut me = Participant::new(open_agent(home)?, Vec::new());
    let ids: Vec<AgentId> = peers.iter().map(|p| p.id.clone()).collect();
    let notices = me.end(sid, &ids)?;
    for ((_, notice), p) in notices.iter().zip(&peers) {
        Conn::open(&p.addr)?.call(notice)?;
    }
    outln!("session {sid} ended");
    Ok(())
}

/// `accord external`: a unilateral record of an interaction with a peer
/// that runs no Accord.
pub fn external(home: &Home, peer: &str, payload: Option<&str>) -> Result<(), CliError> {
    if peer.is_empty() || peer.len() > 256 || peer.chars().any(char::is_control) {
        return Err(CliError::input(
            "the peer identifier must be 1-256 characters without control characters",
        ));
    }
    let data = payload_arg(payload)?;
    let mut me = Participant::new(open_agent(home)?, Vec::new());
    let ev = me.record_external(peer, data)?;
    outln!(
        "recorded unilateral interaction with {} as event seq {} (data hashed)",
        printable(peer),
        ev.seq()
    );
    Ok(())
}
