//! Helpers the command files share: output files, progress, warnings.

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use crate::exit::CliError;
use crate::out;

/// An output file written atomically: the bytes go to a temporary file in
/// the same directory, which [`commit`](Self::commit) syncs and renames to
/// the requested name. Dropped without a commit (an error, a panic, an
/// early return), the temporary file is removed, so a command that fails
/// leaves no file behind — neither a partial one nor an empty one — and an
/// existing file replaced with `--force` is either the old or the new one.
pub(crate) struct AtomicOutput {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
    force: bool,
}

impl AtomicOutput {
    /// Starts writing `path`: refuses an existing file unless `force` (and
    /// says how to override), before anything is computed or recorded.
    pub(crate) fn create(path: &Path, force: bool) -> Result<Self, CliError> {
        let cannot = |e: &dyn std::fmt::Display, hint: &str| {
            CliError::io(format!("cannot create {}: {e}{hint}", path.display()))
        };
        if !force && fs::symlink_metadata(path).is_ok() {
            return Err(cannot(
                &io::Error::from(io::ErrorKind::AlreadyExists),
                " (pass --force to replace it)",
            ));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            // Subject to the umask, like a file created directly.
            .permissions(fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(|e| cannot(&e, ""))?;
        Ok(AtomicOutput {
            tmp,
            path: path.to_owned(),
            force,
        })
    }

    /// The requested name.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the bytes and gives the file its name. Without `--force` a
    /// file that appeared meanwhile is not replaced.
    pub(crate) fn commit(self) -> Result<(), CliError> {
        let path = self.path;
        let cannot = |e: &dyn std::fmt::Display| {
            CliError::io(format!("cannot write {}: {e}", path.display()))
        };
        self.tmp.as_file().sync_all().map_err(|e| cannot(&e))?;
        let done = if self.force {
            self.tmp.persist(&path).map(drop)
        } else {
            self.tmp.persist_noclobber(&path).map(drop)
        };
        done.map_err(|e| {
            let hint = if e.error.kind() == io::ErrorKind::AlreadyExists {
                " (it appeared while this command ran; pass --force to replace it)"
            } else {
                ""
            };
            CliError::io(format!(
                "cannot write {}: {}{hint}",
                path.display(),
                e.error
            ))
        })
    }
}

impl Write for AtomicOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Writes `bytes` and a newline to `out` atomically, or to stdout.
pub(crate) fn write_output(out: Option<&Path>, force: bool, bytes: &[u8]) -> Result<(), CliError> {
    match out {
        Some(path) => {
            let f = AtomicOutput::create(path, force)?;
            write_to(f, bytes)
        }
        None => {
            let mut o = out::Stdout;
            o.write_all(bytes)
                .and_then(|_| o.write_all(b"\n"))
                .map_err(|e| CliError::io(format!("cannot write output: {e}")))
        }
    }
}

/// Writes `bytes` and a newline into an output opened earlier, and commits it.
pub(crate) fn write_to(mut f: AtomicOutput, bytes: &[u8]) -> Result<(), CliError> {
    f.write_all(bytes)
        .and_then(|_| f.write_all(b"\n"))
        .map_err(|e| CliError::io(format!("cannot write {}: {e}", f.path().display())))?;
    f.commit()
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
    fs::File::open(p)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|e| CliError::io(format!("cannot read {}: {e}", p.display())))?;
    Ok(buf)
}
