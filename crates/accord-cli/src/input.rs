//! Bounded readers for untrusted input (files, stdin).

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;

use accord_core::{Map, Value, event, jcs};

use crate::exit::CliError;

/// Largest input `accord jcs` reads.
pub const MAX_JCS_INPUT: usize = 64 << 20;

/// Reads all of `file` (stdin when `None`), refusing more than `limit` bytes.
pub fn read_all(file: Option<&Path>, limit: usize) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    let (name, res) = match file {
        Some(p) => {
            let f = File::open(p)
                .map_err(|e| CliError::input(format!("cannot open {}: {e}", p.display())))?;
            (
                p.display().to_string(),
                f.take(limit as u64 + 1).read_to_end(&mut buf),
            )
        }
        None => (
            "stdin".to_owned(),
            io::stdin()
                .lock()
                .take(limit as u64 + 1)
                .read_to_end(&mut buf),
        ),
    };
    res.map_err(|e| CliError::input(format!("cannot read {name}: {e}")))?;
    if buf.len() > limit {
        return Err(CliError::input(format!(
            "{name} is larger than the {limit}-byte limit"
        )));
    }
    Ok(buf)
}

/// Why a line could not be read.
#[derive(Debug)]
pub enum LineError {
    /// The line exceeds the limit (`len` is how much was read of it).
    TooLong {
        /// 1-based line number.
        line: u64,
        /// Bytes read before giving up.
        len: usize,
    },
    /// The stream failed.
    Read(String),
}

impl From<LineError> for CliError {
    fn from(e: LineError) -> Self {
        match e {
            LineError::TooLong { line, len } => CliError::input(format!(
                "line {line} is longer than the limit ({len}+ bytes)"
            )),
            LineError::Read(m) => CliError::input(m),
        }
    }
}

/// Splits a stream into `\n`-terminated lines of at most `max` bytes
/// (a trailing `\r` is not stripped: exports never contain one).
pub struct Lines<R> {
    reader: R,
    max: usize,
    line_no: u64,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader`, each at most `max` bytes.
    pub fn new(reader: R, max: usize) -> Self {
        Lines {
            reader,
            max,
            line_no: 0,
        }
    }

    /// The next line without its `\n`, with its 1-based number; `None` at
    /// the end. A final line without `\n` is returned as well.
    pub fn next_line(&mut self) -> Result<Option<(u64, Vec<u8>)>, LineError> {
        let mut buf = Vec::new();
        let limit = self.max as u64 + 2;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|e| LineError::Read(format!("cannot read input: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.len() > self.max {
            return Err(LineError::TooLong {
                line: self.line_no,
                len: buf.len(),
            });
        }
        Ok(Some((self.line_no, buf)))
    }
}

/// Parses one `accord stamp --stdin` line: `{"type":"…","payload":{…}}`
/// (`payload` optional).
pub fn parse_stamp_line(line: &[u8]) -> Result<(String, Map<String, Value>), String> {
    let value = jcs::parse(line).map_err(|e| e.to_string())?;
    let Value::Object(mut obj) = value else {
        return Err("expected a JSON object {\"type\":…,\"payload\":{…}}".into());
    };
    let event_type = match obj.remove("type") {
        Some(Value::String(t)) => t,
        _ => return Err("missing string member \"type\"".into()),
    };
    event::check_type(&event_type, 1).map_err(|e| e.to_string())?;
    let payload = match obj.remove("payload") {
        None => Map::new(),
        Some(Value::Object(m)) => {
            for v in m.values() {
                jcs::check_signable(v).map_err(|e| format!("payload: {e}"))?;
            }
            m
        }
        Some(_) => return Err("payload: must be a JSON object".into()),
    };
    if let Some(k) = obj.keys().next() {
        return Err(format!(
            "unknown member {k:?} (expected only \"type\" and \"payload\")"
        ));
    }
    Ok((event_type, payload))
}
