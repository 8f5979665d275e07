//! Standard output that a reader may close early.
//!
//! `accord verify x.jsonl | head -1` closes the pipe after one line; Rust's
//! `println!` then panics (exit 101). Here a closed pipe stops the output
//! quietly and the command finishes with its own exit code, so a script
//! still learns the verdict. Any other write error (a full disk behind a
//! redirect) is reported once and turns the exit code into 6. Invisible
//! format characters are escaped on the way out (see [`crate::text`]).

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU8, Ordering};

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const FAILED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(OPEN);

/// Writes formatted output to stdout (what `out!` and `outln!` call).
pub(crate) fn write(args: fmt::Arguments<'_>) {
    if STATE.load(Ordering::Relaxed) != OPEN {
        return;
    }
    // Hidden format characters can only come from untrusted text; written
    // as \uXXXX they stay the same JSON value and become visible in text.
    let text = crate::text::json_printable(&args.to_string());
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        note_error(&e);
    }
}

/// Records a failed write to stdout: a closed pipe silently, anything else
/// with a message on stderr. Later output is dropped.
pub(crate) fn note_error(e: &io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        STATE.store(CLOSED, Ordering::Relaxed);
    } else if STATE.swap(FAILED, Ordering::Relaxed) != FAILED {
        eprintln!("error: cannot write to standard output: {e}");
    }
}

/// Whether stdout still takes output (long listings stop when it does not).
pub(crate) fn is_open() -> bool {
    STATE.load(Ordering::Relaxed) == OPEN
}

/// Whether a write to stdout failed for another reason than a closed pipe.
pub(crate) fn failed() -> bool {
    STATE.load(Ordering::Relaxed) == FAILED
}

/// `print!` that survives a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*)) };
}

/// `println!` that survives a closed stdout.
macro_rules! outln {
    () => { $crate::out::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Stdout as a [`Write`] for streamed output (exports, logs): a closed pipe
/// swallows the rest; other errors are returned.
pub(crate) struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !is_open() {
            return Ok(buf.len());
        }
        match io::stdout().lock().write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                note_error(&e);
                Ok(buf.len())
            }
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if !is_open() {
            return Ok(());
        }
        match io::stdout().lock().flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                note_error(&e);
                Ok(())
            }
            r => r,
        }
    }
}
