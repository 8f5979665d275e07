//! RFC 3161 over HTTP (RFC 3161 §3.4): POST a `application/timestamp-query`,
//! read an `application/timestamp-reply`, and verify it before anyone uses
//! it.
//!
//! The nonce comes from the operating system's RNG; the reply must carry it
//! back and time-stamp exactly the imprint sent, so a replayed or misrouted
//! reply is refused here, not later.

use std::time::Duration;

use crate::exit::{CliError, Code};
use accord_tsp::{self as tsp, Imprint, Nonce, TokenReport, Trust};

/// Largest reply read from a TSA.
pub const MAX_REPLY_BYTES: u64 = tsp::MAX_TOKEN_BYTES as u64;
/// Time allowed for the whole exchange.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh 128-bit nonce from the operating system's RNG.
pub fn fresh_nonce() -> Result<Nonce, CliError> {
    let mut bytes = [0u8; 16];
    // The same OS source as key generation, but its failure is an error
    // to report, not a panic.
    getrandom::fill(&mut bytes)
        .map_err(|e| CliError::io(format!("the operating system's RNG failed: {e}")))?;
    // A leading zero byte would shorten the integer; keep all 128 bits.
    bytes[0] |= 0x80;
    Nonce::from_random(&bytes).map_err(|e| CliError::io(e.to_string()))
}

/// Asks the TSA at `url` to time-stamp `imprint`, verifies the reply
/// against the request (imprint, nonce) and `trust`, and returns the token's
/// DER with its report.
pub fn request(
    url: &str,
    imprint: &Imprint,
    trust: &Trust,
) -> Result<(Vec<u8>, TokenReport), CliError> {
    let nonce = fresh_nonce()?;
    let query = tsp::request(imprint, &nonce).map_err(|e| CliError::input(e.to_string()))?;
    let reply = post(url, &query)?;
    tsp::verify_response(&reply, imprint, &nonce, Some(trust)).map_err(|e| match e {
        // The TSA declined: a service problem, not forged evidence.
        tsp::TspError::Status { .. } | tsp::TspError::NoToken => {
            CliError::io(format!("the TSA at {url} did not time-stamp: {e}"))
        }
        e => CliError::new(
            Code::VerifyFailed,
            format!("the reply from the TSA at {url} does not verify: {e}"),
        ),
    })
}

/// Refuses URLs this client cannot use, before any work is done.
pub fn check_url(url: &str) -> Result<(), CliError> {
    if url.starts_with("https://") {
        // No TLS stack is built in; the token carries its own signature, so
        // plain HTTP loses no integrity (RFC 3161 §3.4 uses plain HTTP).
        return Err(CliError::input(format!(
            "--tsa {url}: this build speaks plain HTTP only; use the TSA's http:// URL (the token is signed, so HTTP loses no integrity)"
        )));
    }
    if !url.starts_with("http://") {
        return Err(CliError::input(format!(
            "--tsa {url}: give an http:// URL (for example http://127.0.0.1:3180/)"
        )));
    }
    Ok(())
}

/// One POST of a DER query; returns the reply body.
pub fn post(url: &str, query: &[u8]) -> Result<Vec<u8>, CliError> {
    check_url(url)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut resp = agent
        .post(url)
        .content_type("application/timestamp-query")
        .header("Accept", "application/timestamp-reply")
        .send(query)
        .map_err(|e| network_error(url, e))?;
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if !status.is_success() {
        return Err(CliError::io(format!(
            "the TSA at {url} answered HTTP {status} (check the URL and that the TSA accepts RFC 3161 queries)"
        )));
    }
    if ctype.as_deref() != Some("application/timestamp-reply") {
        return Err(CliError::io(format!(
            "the TSA at {url} answered with content type {}, not application/timestamp-reply (is this URL an RFC 3161 TSA?)",
            ctype.as_deref().unwrap_or("(none)")
        )));
    }
    resp.body_mut()
        .with_config()
        .limit(MAX_REPLY_BYTES)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => CliError::io(format!(
                "the reply from the TSA at {url} is larger than {MAX_REPLY_BYTES} bytes; refused"
            )),
            e => network_error(url, e),
        })
}

fn network_error(url: &str, e: ureq::Error) -> CliError {
    let msg = match &e {
        ureq::Error::ConnectionFailed => {
            format!("cannot connect to {url}: is the TSA running at {url}?")
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {url}: is the TSA running at {url}?")
        }
        ureq::Error::HostNotFound => format!("{url}: host not found (check the --tsa URL)"),
        ureq::Error::Timeout(_) => format!(
            "the TSA at {url} did not answer within {} s",
            TIMEOUT.as_secs()
        ),
        ureq::Error::BadUri(m) => format!("--tsa {url}: bad URL: {m}"),
        _ => format!("request to the TSA at {url} failed: {e} (is the TSA running at {url}?)"),
    };
    CliError::new(Code::Io, msg)
}
