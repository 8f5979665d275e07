//! Helpers the command files share: output files, progress, warnings.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use crate::exit::CliError;
use crate::out;

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

pub(crate) fn ignore_broken_pipe(e: io::Error) -> io::Result<()> {
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
