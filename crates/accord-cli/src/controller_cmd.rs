//! `accord controller …` (the agent CA, offline), `accord cert verify` and
//! `accord csr`.
//!
//! The controller is an ordinary agent home plus `ca.pem`. Its chain is
//! the CA's record: every certificate issued (`ca.issued`), revocation
//! (`ca.revoked`), CRL (`ca.crl`) and attestation (`ca.attested`) is a
//! signed event, and the revocation list and CRL number are read back from
//! it, so nothing lives outside the chain but the CA certificate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use accord_ca::{
    Attestation, Ca, CaCertificate, CaError, CertError, Crl, CrlError, Csr, CsrError, Reason,
    Revoked, Serial, TrustDomain, create_csr, verify_certificate,
};
use accord_core::keyfile::KdfParams;
use accord_core::{AgentId, Hash32, Map, PublicKey, SignedEvent, Timestamp, Value};
use accord_store::{Agent, Env, EventStore, Home, SystemEnv};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::common::{AtomicOutput, read_file, write_output, write_to};
use crate::exit::{CliError, Code};
use crate::identity_cmd::{new_passphrase, open_agent};

/// The CA certificate's file name in the controller's home.
pub(crate) const CA_FILE: &str = "ca.pem";

/// Event types the controller records.
const CREATED: &str = "ca.created";
const ISSUED: &str = "ca.issued";
const REVOKED: &str = "ca.revoked";
const CRL: &str = "ca.crl";
const ATTESTED: &str = "ca.attested";

/// The controller (agent CA), offline.
#[derive(Subcommand)]
pub(crate) enum ControllerCmd {
    /// Create a controller: an agent (encrypted key, chain) and a self-signed CA certificate (HOME/ca.pem)
    Init {
        /// The SPIFFE trust domain (lower-case a-z 0-9 . - _), e.g. example.org
        #[arg(long, value_name = "NAME")]
        trust_domain: String,
        /// Human-readable name of the controller agent
        #[arg(long)]
        name: Option<String>,
        /// Store the private key unencrypted (throwaway controllers only)
        #[arg(long)]
        no_passphrase: bool,
        /// Lifetime of the CA certificate (s, m, h or d suffix)
        #[arg(long, value_name = "DURATION", default_value = "3653d")]
        ca_ttl: String,
    },
    /// Issue an agent certificate (SPIFFE X.509-SVID) from a PKCS#10 CSR, and record it
    Issue {
        /// The CSR (PEM or DER), from `accord csr`
        csr: PathBuf,
        /// Require the CSR's key to derive this agent id [default: the id the key derives]
        #[arg(long, value_name = "AGENT_ID")]
        agent_id: Option<String>,
        /// Certificate lifetime (s, m, h or d suffix; at most 366d)
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        ttl: String,
        /// Output file for the certificate (PEM) [default: stdout]
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Replace an existing output file
        #[arg(long)]
        force: bool,
        /// Machine-readable JSON summary on stdout (requires --out)
        #[arg(long, requires = "out")]
        json: bool,
    },
    /// Revoke one certificate (--serial) or every unexpired certificate of an agent, and record it
    Revoke {
        /// Revoke every unexpired, unrevoked certificate issued to this agent
        #[arg(
            value_name = "AGENT_ID",
            required_unless_present = "serial",
            conflicts_with = "serial"
        )]
        agent_id: Option<String>,
        /// The serial (hex, as `issue` prints it)
        #[arg(long, value_name = "SERIAL")]
        serial: Option<String>,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Write a signed RFC 5280 CRL (DER) of every revocation, and record it
    Crl {
        /// Output file (DER)
        #[arg(long, short)]
        out: PathBuf,
        /// Replace an existing output file
        #[arg(long)]
        force: bool,
        /// Time until nextUpdate (s, m, h or d suffix)
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        next_update: String,
    },
    /// List the certificates issued, as the controller's chain records them, with their status
    List {
        /// Machine-readable output: one JSON object per certificate, one per line
        #[arg(long)]
        json: bool,
    },
    /// Sign an attestation (codebase and config hashes) for an agent, and record it
    Attest {
        /// The agent
        agent_id: String,
        /// SHA-256 of the agent's codebase (64 hex digits)
        #[arg(long, value_name = "HEX")]
        codebase_hash: String,
        /// SHA-256 of the agent's configuration (64 hex digits)
        #[arg(long, value_name = "HEX")]
        config_hash: String,
        /// The agent's public key (base64url) [default: from its latest certificate]
        #[arg(long, value_name = "PUBLIC_KEY", allow_hyphen_values = true)]
        agent_key: Option<String>,
        /// Validity (s, m, h or d suffix)
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        ttl: String,
        /// Output file [default: stdout]
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Replace an existing output file
        #[arg(long)]
        force: bool,
    },
}

/// Certificates, offline.
#[derive(Subcommand)]
pub(crate) enum CertCmd {
    /// Verify an agent certificate against the controller's CA certificate (and a CRL)
    Verify {
        /// The certificate (PEM or DER)
        cert: PathBuf,
        /// The controller's CA certificate (ca.pem)
        #[arg(long, value_name = "CA.pem")]
        ca: PathBuf,
        /// A CRL from the same controller (DER or PEM); a stale or altered CRL fails
        #[arg(long, value_name = "CRL.der")]
        crl: Option<PathBuf>,
        /// Check at this time (RFC 3339, YYYY-MM-DDTHH:MM:SS.ffffffZ) [default: now]
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Machine-readable JSON output
        #[arg(long)]
        json: bool,
    },
    /// Verify an attestation (from `controller attest`) against the controller's CA certificate
    VerifyAttestation {
        /// The attestation document (JSON)
        file: PathBuf,
        /// The controller's CA certificate (ca.pem): its key must have signed the attestation
        #[arg(long, value_name = "CA.pem")]
        ca: PathBuf,
        /// The agent presenting it: the attestation must be about this agent
        #[arg(long, value_name = "AGENT_ID")]
        agent: String,
        /// Require this codebase hash (64 hex digits)
        #[arg(long, value_name = "HEX")]
        codebase_hash: Option<String>,
        /// Require this config hash (64 hex digits)
        #[arg(long, value_name = "HEX")]
        config_hash: Option<String>,
        /// Check at this time (RFC 3339, YYYY-MM-DDTHH:MM:SS.ffffffZ) [default: now]
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Machine-readable JSON output
        #[arg(long)]
        json: bool,
    },
}

/// `accord csr`.
#[derive(Args)]
pub(crate) struct CsrArgs {
    /// Request this trust domain's SPIFFE ID (informational: the controller decides)
    #[arg(long, value_name = "NAME")]
    trust_domain: Option<String>,
    /// Output file (PEM) [default: stdout]
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Replace an existing output file
    #[arg(long)]
    force: bool,
}

pub(crate) fn controller(home: &Home, cmd: ControllerCmd) -> Result<(), CliError> {
    match cmd {
        ControllerCmd::Init {
            trust_domain,
            name,
            no_passphrase,
            ca_ttl,
        } => init(home, &trust_domain, name.as_deref(), no_passphrase, &ca_ttl),
        ControllerCmd::Issue {
            csr,
            agent_id,
            ttl,
            out,
            force,
            json,
        } => issue(
            home,
            &csr,
            agent_id.as_deref(),
            &ttl,
            out.as_deref(),
            force,
            json,
        ),
        ControllerCmd::Revoke {
            agent_id,
            serial,
            reason,
        } => revoke(home, agent_id.as_deref(), serial.as_deref(), &reason),
        ControllerCmd::Crl {
            out,
            force,
            next_update,
        } => crl(home, &out, force, &next_update),
        ControllerCmd::List { json } => list(home, json),
        ControllerCmd::Attest {
            agent_id,
            codebase_hash,
            config_hash,
            agent_key,
            ttl,
            out,
            force,
        } => attest(
            home,
            &agent_id,
            (&codebase_hash, &config_hash),
            agent_key.as_deref(),
            &ttl,
            out.as_deref(),
            force,
        ),
    }
}

pub(crate) fn cert(cmd: CertCmd) -> Result<(), CliError> {
    match cmd {
        CertCmd::Verify {
            cert,
            ca,
            crl,
            at,
            json,
        } => cert_verify(&cert, &ca, crl.as_deref(), at.as_deref(), json),
        CertCmd::VerifyAttestation {
            file,
            ca,
            agent,
            codebase_hash,
            config_hash,
            at,
            json,
        } => verify_attestation_file(
            &file,
            &ca,
            &agent,
            (codebase_hash.as_deref(), config_hash.as_deref()),
            at.as_deref(),
            json,
        ),
    }
}

pub(crate) fn csr(home: &Home, args: CsrArgs) -> Result<(), CliError> {
    let domain = args.trust_domain.as_deref().map(trust_domain).transpose()?;
    let agent = open_agent(home)?;
    let pem = create_csr(agent.key(), domain.as_ref()).map_err(ca_error)?;
    write_output(args.out.as_deref(), args.force, pem.trim_end().as_bytes())?;
    if args.out.is_some() {
        eprintln!("CSR for agent {} written", agent.key().agent_id());
    }
    Ok(())
}

fn init(
    home: &Home,
    domain: &str,
    name: Option<&str>,
    no_passphrase: bool,
    ca_ttl: &str,
) -> Result<(), CliError> {
    let domain = trust_domain(domain)?;
    let lifetime = duration(ca_ttl, "--ca-ttl")?;
    // Checked here too, so that nothing is created for a lifetime the CA refuses.
    if lifetime > accord_ca::MAX_CA_LIFETIME {
        return Err(CliError::input(format!(
            "--ca-ttl {ca_ttl}: at most {} days",
            accord_ca::MAX_CA_LIFETIME.as_secs() / 86400
        )));
    }
    if let Some(n) = name
        && (n.is_empty() || n.len() > 128 || n.chars().any(char::is_control))
    {
        return Err(CliError::input(
            "--name must be 1-128 characters without control characters",
        ));
    }
    let ca_path = home.dir().join(CA_FILE);
    for p in [home.key_path(), home.store_path(), ca_path.clone()] {
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
    let mut agent = home.init(
        name,
        passphrase.as_ref().map(|p| p.as_bytes()),
        KdfParams::DEFAULT,
    )?;
    let now = agent.now()?;
    let serial = Serial::from_random(random16()?);
    let ca = Ca::create(agent.key(), &domain, &now, lifetime, &serial).map_err(ca_error)?;
    let pem = ca.certificate().pem();
    let mut payload = Map::new();
    payload.insert("trust_domain".into(), domain.as_str().into());
    payload.insert("serial".into(), serial.to_hex().into());
    payload.insert(
        "not_after".into(),
        unix_text(ca.certificate().not_after_unix()).into(),
    );
    payload.insert(
        "ca_sha256".into(),
        Hash32::of(ca.certificate().der()).to_hex().into(),
    );
    payload.insert("certificate".into(), pem.clone().into());
    drop(ca);
    agent.stamp(CREATED, payload)?;
    let mut f = AtomicOutput::create(&ca_path, false)?;
    f.write_all(pem.as_bytes())
        .map_err(|e| CliError::io(format!("cannot write {}: {e}", ca_path.display())))?;
    f.commit()?;
    outln!("created controller {}", agent.key().agent_id());
    outln!("trust domain {domain}");
    outln!("CA           {}", ca_path.display());
    if no_passphrase {
        eprintln!("warning: the private key is stored unencrypted (--no-passphrase)");
    }
    Ok(())
}

/// The controller agent and its CA certificate.
fn open_controller(home: &Home) -> Result<(Agent, CaCertificate), CliError> {
    let path = home.dir().join(CA_FILE);
    if !path.exists() {
        return Err(CliError::new(
            Code::Identity,
            format!(
                "{} is not a controller home (no {CA_FILE}); create one with `accord controller init`",
                home.dir().display()
            ),
        ));
    }
    let bytes = read_file(&path)?;
    let cert = CaCertificate::parse(&bytes).map_err(|e| {
        CliError::new(
            Code::Identity,
            format!("{} is not a usable CA certificate: {e}", path.display()),
        )
    })?;
    let agent = open_agent(home)?;
    if cert.public_key() != agent.key().public() {
        return Err(CliError::new(
            Code::Identity,
            format!(
                "{} is not this controller's CA certificate (its key is {}, the controller is {})",
                path.display(),
                cert.agent_id(),
                agent.key().agent_id()
            ),
        ));
    }
    Ok((agent, cert))
}

/// A certificate the chain records as issued.
struct IssuedRecord {
    serial: Serial,
    agent_id: String,
    agent_key: String,
    not_after: Timestamp,
}

/// What the controller's chain says about its certificates.
#[derive(Default)]
struct CaState {
    issued: Vec<IssuedRecord>,
    revoked: Vec<Revoked>,
    crls: u64,
}

fn ca_state(agent: &Agent) -> Result<CaState, CliError> {
    let mut state = CaState::default();
    let mut bad: Option<String> = None;
    agent
        .store()
        .scan(agent.key().agent_id(), 0, None, &mut |seq, body| {
            let ev = match SignedEvent::from_canonical(body) {
                Ok(ev) => ev,
                Err(e) => {
                    bad = Some(format!("event {seq}: {e}"));
                    return Ok(std::ops::ControlFlow::Break(()));
                }
            };
            let e = ev.event();
            let s = |k: &str| e.payload.get(k).and_then(Value::as_str).unwrap_or("");
            let t = |k: &str| Timestamp::parse(s(k));
            let serial = Serial::from_hex(s("serial"));
            match (e.event_type.as_str(), serial) {
                (ISSUED, Some(serial)) => match t("not_after") {
                    Ok(not_after) => state.issued.push(IssuedRecord {
                        serial,
                        agent_id: s("agent_id").to_owned(),
                        agent_key: s("agent_key").to_owned(),
                        not_after,
                    }),
                    Err(_) => bad = Some(format!("event {seq}: {ISSUED} without not_after")),
                },
                (REVOKED, Some(serial)) => match (t("revoked_at"), Reason::parse(s("reason"))) {
                    (Ok(at), Some(reason)) => state.revoked.push(Revoked { serial, at, reason }),
                    _ => bad = Some(format!("event {seq}: unreadable {REVOKED}")),
                },
                (ISSUED | REVOKED, None) => {
                    bad = Some(format!("event {seq}: {} without a serial", e.event_type))
                }
                (CRL, _) => state.crls += 1,
                _ => {}
            }
            Ok(if bad.is_some() {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            })
        })?;
    match bad {
        Some(b) => Err(CliError::new(
            Code::VerifyFailed,
            format!(
                "the controller's chain has an unreadable CA record ({b}); run `accord verify`"
            ),
        )),
        None => Ok(state),
    }
}

fn issue(
    home: &Home,
    csr_path: &Path,
    agent_id: Option<&str>,
    ttl: &str,
    out: Option<&Path>,
    force: bool,
    json_out: bool,
) -> Result<(), CliError> {
    let lifetime = duration(ttl, "--ttl")?;
    let claimed = agent_id.map(parse_agent).transpose()?;
    let csr = Csr::parse(&read_file(csr_path)?).map_err(|e| csr_error(e, csr_path))?;
    let claimed = claimed.unwrap_or_else(|| csr.agent_id());
    let (mut agent, cert) = open_controller(home)?;
    let state = ca_state(&agent)?;
    // 126 random bits: a repeat is astronomically unlikely, and refused.
    let serial = loop {
        let s = Serial::from_random(random16()?);
        if !state.issued.iter().any(|r| r.serial == s) {
            break s;
        }
    };
    let now = agent.now()?;
    let issued = {
        let ca = Ca::new(cert, agent.key()).map_err(ca_error)?;
        ca.issue(&csr, &claimed, &now, lifetime, &serial)
            .map_err(ca_error)?
    };
    // The output file is created before anything is recorded, so an
    // existing file (without --force) issues nothing.
    let sink = Sink::open(out, force)?;
    let mut payload = Map::new();
    payload.insert("serial".into(), issued.serial.to_hex().into());
    payload.insert("agent_id".into(), issued.agent_id.as_str().into());
    payload.insert("agent_key".into(), issued.public_key.to_b64().into());
    payload.insert("spiffe_id".into(), issued.spiffe_id.clone().into());
    payload.insert("not_before".into(), issued.not_before.as_str().into());
    payload.insert("not_after".into(), issued.not_after.as_str().into());
    payload.insert(
        "cert_sha256".into(),
        Hash32::of(&issued.der).to_hex().into(),
    );
    // The certificate itself, so the chain alone can serve and re-check it.
    payload.insert("certificate".into(), issued.pem().into());
    let ev = agent.stamp(ISSUED, payload)?;
    sink.write_line(issued.pem().trim_end().as_bytes())?;
    let summary = json!({
        "serial": issued.serial.to_hex(),
        "agent_id": issued.agent_id.as_str(),
        "spiffe_id": issued.spiffe_id,
        "not_before": issued.not_before.as_str(),
        "not_after": issued.not_after.as_str(),
        "event_seq": ev.seq(),
    });
    if json_out {
        outln!("{summary}");
    } else {
        eprintln!(
            "issued serial {} to {} ({}), valid until {}; recorded as event {}",
            issued.serial,
            issued.agent_id,
            issued.spiffe_id,
            issued.not_after,
            ev.seq()
        );
    }
    Ok(())
}

fn revoke(
    home: &Home,
    agent_id: Option<&str>,
    serial: Option<&str>,
    reason: &str,
) -> Result<(), CliError> {
    let reason = Reason::parse(reason).ok_or_else(|| {
        CliError::input(format!(
            "unknown revocation reason {reason:?} (one of: {})",
            Reason::ALL.map(Reason::name).join(", ")
        ))
    })?;
    let (mut agent, _cert) = open_controller(home)?;
    let state = ca_state(&agent)?;
    let now = agent.now()?;
    let is_revoked = |s: &Serial| state.revoked.iter().any(|r| r.serial == *s);
    let targets: Vec<&IssuedRecord> = match (serial, agent_id) {
        (Some(s), _) => {
            let s = Serial::from_hex(s).ok_or_else(|| {
                CliError::input(format!(
                    "--serial {s:?} is not a positive hex serial number"
                ))
            })?;
            let rec = state.issued.iter().find(|r| r.serial == s).ok_or_else(|| {
                CliError::input(format!("serial {s} was not issued by this controller"))
            })?;
            if is_revoked(&s) {
                return Err(CliError::input(format!("serial {s} is already revoked")));
            }
            vec![rec]
        }
        (None, Some(id)) => {
            let id = parse_agent(id)?;
            let found: Vec<&IssuedRecord> = state
                .issued
                .iter()
                .filter(|r| {
                    r.agent_id == id.as_str() && r.not_after >= now && !is_revoked(&r.serial)
                })
                .collect();
            if found.is_empty() {
                return Err(CliError::input(format!(
                    "agent {id} holds no unexpired, unrevoked certificate from this controller"
                )));
            }
            found
        }
        (None, None) => return Err(CliError::input("give an AGENT_ID or --serial")),
    };
    let items = targets
        .iter()
        .map(|r| {
            let mut p = Map::new();
            p.insert("serial".into(), r.serial.to_hex().into());
            p.insert("agent_id".into(), r.agent_id.clone().into());
            p.insert("reason".into(), reason.name().into());
            p.insert("revoked_at".into(), now.as_str().into());
            (REVOKED.to_owned(), p)
        })
        .collect();
    agent.stamp_batch(items)?;
    for r in &targets {
        outln!("revoked serial {} of {} ({reason})", r.serial, r.agent_id);
    }
    eprintln!("run `accord controller crl` to publish a CRL that lists it");
    Ok(())
}

fn list(home: &Home, json_out: bool) -> Result<(), CliError> {
    let (agent, _cert) = open_controller(home)?;
    let state = ca_state(&agent)?;
    let now = agent.now()?;
    for r in &state.issued {
        let revoked = state.revoked.iter().find(|v| v.serial == r.serial);
        let status = match revoked {
            Some(_) => "revoked",
            None if r.not_after < now => "expired",
            None => "valid",
        };
        if json_out {
            outln!(
                "{}",
                json!({
                    "serial": r.serial.to_hex(),
                    "agent_id": r.agent_id,
                    "not_after": r.not_after.as_str(),
                    "status": status,
                    "reason": revoked.map(|v| v.reason.name()),
                    "revoked_at": revoked.map(|v| v.at.as_str()),
                })
            );
        } else {
            let why = revoked.map_or(String::new(), |v| format!(" ({}, {})", v.reason, v.at));
            outln!(
                "{}  {}  {}  {status}{why}",
                r.serial,
                crate::printable(&r.agent_id),
                r.not_after
            );
        }
    }
    Ok(())
}

fn crl(home: &Home, out: &Path, force: bool, next: &str) -> Result<(), CliError> {
    let next = duration(next, "--next-update")?;
    let (mut agent, cert) = open_controller(home)?;
    let state = ca_state(&agent)?;
    let now = agent.now()?;
    let next_update = add(&now, next)?;
    let number = state.crls + 1;
    let der = {
        let ca = Ca::new(cert, agent.key()).map_err(ca_error)?;
        ca.crl(&now, &next_update, number, &state.revoked)
            .map_err(ca_error)?
    };
    let mut f = AtomicOutput::create(out, force)?;
    let mut payload = Map::new();
    payload.insert("number".into(), number.into());
    payload.insert("this_update".into(), now.as_str().into());
    payload.insert("next_update".into(), next_update.as_str().into());
    payload.insert("revoked".into(), (state.revoked.len() as u64).into());
    payload.insert("crl_sha256".into(), Hash32::of(&der).to_hex().into());
    agent.stamp(CRL, payload)?;
    f.write_all(&der)
        .map_err(|e| CliError::io(format!("cannot write {}: {e}", out.display())))?;
    f.commit()?;
    outln!(
        "CRL {number} with {} revoked certificate(s), next update {next_update}: {}",
        state.revoked.len(),
        out.display()
    );
    Ok(())
}

fn attest(
    home: &Home,
    agent_id: &str,
    (codebase, config): (&str, &str),
    agent_key: Option<&str>,
    ttl: &str,
    out: Option<&Path>,
    force: bool,
) -> Result<(), CliError> {
    let id = parse_agent(agent_id)?;
    let hash = |h: &str, flag: &str| {
        Hash32::from_hex(h).ok_or_else(|| {
            CliError::input(format!("{flag} must be 64 lower-case hex digits (SHA-256)"))
        })
    };
    let codebase_hash = hash(codebase, "--codebase-hash")?;
    let config_hash = hash(config, "--config-hash")?;
    let lifetime = duration(ttl, "--ttl")?;
    let (mut agent, cert) = open_controller(home)?;
    let key_text = match agent_key {
        Some(k) => k.to_owned(),
        None => ca_state(&agent)?
            .issued
            .iter()
            .rev()
            .find(|r| r.agent_id == id.as_str())
            .map(|r| r.agent_key.clone())
            .ok_or_else(|| {
                CliError::input(format!(
                    "no certificate was issued to {id}: give its key with --agent-key"
                ))
            })?,
    };
    let agent_key =
        PublicKey::from_b64(&key_text).map_err(|e| CliError::input(format!("--agent-key: {e}")))?;
    let now = agent.now()?;
    let att = Attestation {
        agent_id: id,
        agent_key,
        codebase_hash,
        config_hash,
        issued_at: now.clone(),
        expires_at: add(&now, lifetime)?,
    };
    let doc = att
        .sign(agent.key(), cert.trust_domain())
        .map_err(|e| CliError::input(e.to_string()))?;
    let sink = Sink::open(out, force)?;
    let mut payload = Map::new();
    payload.insert("agent_id".into(), att.agent_id.as_str().into());
    payload.insert("codebase_hash".into(), codebase_hash.to_hex().into());
    payload.insert("config_hash".into(), config_hash.to_hex().into());
    payload.insert("issued_at".into(), att.issued_at.as_str().into());
    payload.insert("expires_at".into(), att.expires_at.as_str().into());
    payload.insert("attestation_hash".into(), doc.hash().to_hex().into());
    agent.stamp(ATTESTED, payload)?;
    sink.write_line(doc.canonical())?;
    Ok(())
}

fn cert_verify(
    cert: &Path,
    ca: &Path,
    crl: Option<&Path>,
    at: Option<&str>,
    json_out: bool,
) -> Result<(), CliError> {
    let now = match at {
        Some(t) => Timestamp::parse(t).map_err(|e| CliError::input(format!("--at: {e}")))?,
        None => SystemEnv.now()?,
    };
    let ca_cert = CaCertificate::parse(&read_file(ca)?).map_err(|e| {
        CliError::input(format!(
            "{} is not a usable CA certificate: {e}",
            ca.display()
        ))
    })?;
    let crl = match crl {
        Some(p) => Some(Crl::parse(&read_file(p)?, &ca_cert, &now).map_err(|e| crl_error(e, p))?),
        None => None,
    };
    let v = verify_certificate(&read_file(cert)?, &ca_cert, crl.as_ref(), &now).map_err(|e| {
        CliError::new(
            cert_code(&e),
            format!("{}: certificate refused: {e}", cert.display()),
        )
    })?;
    if json_out {
        outln!(
            "{}",
            json!({
                "valid": true,
                "agent_id": v.agent_id.as_str(),
                "public_key": v.public_key.to_b64(),
                "spiffe_id": v.spiffe_id,
                "trust_domain": v.trust_domain.as_str(),
                "serial": v.serial.to_hex(),
                "not_before": v.not_before.as_str(),
                "not_after": v.not_after.as_str(),
                "controller": ca_cert.agent_id().as_str(),
                "crl_checked": crl.is_some(),
                "checked_at": now.as_str(),
            })
        );
    } else {
        outln!("valid        {}", v.spiffe_id);
        outln!("agent_id     {}", v.agent_id);
        outln!("serial       {}", v.serial);
        outln!("not_after    {}", v.not_after);
        outln!("controller   {}", ca_cert.agent_id());
        outln!(
            "revocation   {}",
            if crl.is_some() {
                "checked against the CRL"
            } else {
                "NOT checked (no --crl)"
            }
        );
    }
    Ok(())
}

fn verify_attestation_file(
    file: &Path,
    ca: &Path,
    agent: &str,
    (codebase, config): (Option<&str>, Option<&str>),
    at: Option<&str>,
    json_out: bool,
) -> Result<(), CliError> {
    let agent = parse_agent(agent)?;
    let hash = |h: Option<&str>, flag: &str| {
        h.map(|h| {
            Hash32::from_hex(h).ok_or_else(|| {
                CliError::input(format!("{flag} must be 64 lower-case hex digits (SHA-256)"))
            })
        })
        .transpose()
    };
    let codebase = hash(codebase, "--codebase-hash")?;
    let config = hash(config, "--config-hash")?;
    let now = match at {
        Some(t) => Timestamp::parse(t).map_err(|e| CliError::input(format!("--at: {e}")))?,
        None => SystemEnv.now()?,
    };
    let ca_cert = CaCertificate::parse(&read_file(ca)?).map_err(|e| {
        CliError::input(format!(
            "{} is not a usable CA certificate: {e}",
            ca.display()
        ))
    })?;
    let text = read_file(file)?;
    let refused = |e: accord_ca::AttestationError| {
        CliError::new(
            Code::VerifyFailed,
            format!("{}: attestation refused: {e}", file.display()),
        )
    };
    let v = accord_ca::verify_attestation(
        text.trim_ascii_end(),
        ca_cert.public_key(),
        &agent,
        Some(ca_cert.trust_domain()),
        &now,
    )
    .map_err(refused)?;
    v.require(codebase.as_ref(), config.as_ref())
        .map_err(refused)?;
    let a = &v.attestation;
    if json_out {
        outln!(
            "{}",
            json!({
                "valid": true,
                "agent_id": a.agent_id.as_str(),
                "codebase_hash": a.codebase_hash.to_hex(),
                "config_hash": a.config_hash.to_hex(),
                "issued_at": a.issued_at.as_str(),
                "expires_at": a.expires_at.as_str(),
                "controller": ca_cert.agent_id().as_str(),
                "checked_at": now.as_str(),
            })
        );
    } else {
        outln!("valid        attestation of {}", a.agent_id);
        outln!("codebase     {}", a.codebase_hash.to_hex());
        outln!("config       {}", a.config_hash.to_hex());
        outln!("expires_at   {}", a.expires_at);
        outln!("controller   {}", ca_cert.agent_id());
    }
    Ok(())
}

/// An output file opened up front (so that a refusal to replace it comes
/// before anything is recorded) and written atomically, or standard output.
struct Sink(Option<AtomicOutput>);

impl Sink {
    fn open(out: Option<&Path>, force: bool) -> Result<Self, CliError> {
        Ok(Sink(match out {
            Some(p) => Some(AtomicOutput::create(p, force)?),
            None => None,
        }))
    }

    /// Writes `bytes` and a newline, and gives a file its name.
    fn write_line(self, bytes: &[u8]) -> Result<(), CliError> {
        match self.0 {
            Some(f) => write_to(f, bytes),
            None => write_output(None, false, bytes),
        }
    }
}

fn trust_domain(s: &str) -> Result<TrustDomain, CliError> {
    TrustDomain::parse(s).map_err(|e| CliError::input(format!("--trust-domain: {e}")))
}

fn parse_agent(s: &str) -> Result<AgentId, CliError> {
    AgentId::parse(s).map_err(|e| CliError::input(e.to_string()))
}

/// `90s`, `15m`, `24h`, `30d`, or plain seconds.
fn duration(s: &str, flag: &str) -> Result<Duration, CliError> {
    let bad = || {
        CliError::input(format!(
            "{flag} {s:?}: expected a duration such as 90s, 15m, 24h or 30d"
        ))
    };
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        Some(_) => (s, 1),
        None => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = n.checked_mul(mult).filter(|&v| v > 0).ok_or_else(bad)?;
    Ok(Duration::from_secs(secs))
}

fn add(t: &Timestamp, d: Duration) -> Result<Timestamp, CliError> {
    i64::try_from(d.as_micros())
        .ok()
        .and_then(|m| t.unix_micros().checked_add(m))
        .and_then(|m| Timestamp::from_unix_micros(m).ok())
        .ok_or_else(|| CliError::input("the duration goes past the year 9999"))
}

fn unix_text(secs: i64) -> String {
    secs.checked_mul(1_000_000)
        .and_then(|m| Timestamp::from_unix_micros(m).ok())
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default()
}

fn random16() -> Result<[u8; 16], CliError> {
    let mut b = [0u8; 16];
    SystemEnv.fill_random(&mut b)?;
    Ok(b)
}

fn ca_error(e: CaError) -> CliError {
    let code = match &e {
        CaError::Csr(CsrError::BadSignature) | CaError::AgentIdMismatch { .. } => {
            Code::VerifyFailed
        }
        CaError::KeyMismatch { .. } | CaError::CaCertificate(_) | CaError::CaNotValid(_) => {
            Code::Identity
        }
        CaError::Build(_) | CaError::SelfCheck(_) => Code::Io,
        _ => Code::Input,
    };
    CliError::new(code, e.to_string())
}

fn csr_error(e: CsrError, path: &Path) -> CliError {
    let code = match e {
        CsrError::BadSignature => Code::VerifyFailed,
        _ => Code::Input,
    };
    CliError::new(code, format!("{}: CSR refused: {e}", path.display()))
}

fn crl_error(e: CrlError, path: &Path) -> CliError {
    let code = match e {
        CrlError::TooLarge(_) | CrlError::Encoding(_) => Code::Input,
        _ => Code::VerifyFailed,
    };
    CliError::new(code, format!("{}: CRL refused: {e}", path.display()))
}

fn cert_code(e: &CertError) -> Code {
    match e {
        CertError::TooLarge(_) | CertError::Encoding(_) | CertError::Count(_) => Code::Input,
        _ => Code::VerifyFailed,
    }
}
