//! Exit codes and the CLI's error type.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | verification failed: the chain, export or store content is not intact |
//! | 2 | usage error (unknown command, bad flag) |
//! | 3 | invalid input: JSON, payload, event type, unreadable input file |
//! | 4 | identity problem: no agent, agent exists, wrong passphrase, corrupt key file |
//! | 5 | store problem: missing, foreign or corrupt store, concurrent-append conflict |
//! | 6 | other I/O or system error |

use std::fmt;
use std::process::ExitCode;

use accord_core::EventError;
use accord_core::jcs::JcsError;
use accord_store::{HomeError, StoreError};

/// Documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1
    VerifyFailed = 1,
    /// 3
    Input = 3,
    /// 4
    Identity = 4,
    /// 5
    Store = 5,
    /// 6
    Io = 6,
}

/// An error to print and exit with.
#[derive(Debug)]
pub struct CliError {
    pub code: Code,
    pub message: String,
}

impl CliError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(Code::Input, message)
    }

    pub fn io(message: impl Into<String>) -> Self {
        Self::new(Code::Io, message)
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code as u8)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<HomeError> for CliError {
    fn from(e: HomeError) -> Self {
        CliError::new(home_code(&e), e.to_string())
    }
}

/// The exit code of a home error.
pub fn home_code(e: &HomeError) -> Code {
    match e {
        HomeError::NoIdentity(_) | HomeError::AlreadyExists(_) | HomeError::KeyFile { .. } => {
            Code::Identity
        }
        HomeError::Store(s) => store_code(s),
        HomeError::Input(_) => Code::Input,
        HomeError::Contradiction(_)
        | HomeError::ChainInvalid(_)
        | HomeError::ExportStopped { .. } => Code::VerifyFailed,
        _ => Code::Io,
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError::new(store_code(&e), e.to_string())
    }
}

/// The exit code of a store error.
pub fn store_code(e: &StoreError) -> Code {
    match e {
        StoreError::Event(_) => Code::Input,
        StoreError::Io(_) => Code::Io,
        _ => Code::Store,
    }
}

impl From<EventError> for CliError {
    fn from(e: EventError) -> Self {
        CliError::input(e.to_string())
    }
}

impl From<JcsError> for CliError {
    fn from(e: JcsError) -> Self {
        CliError::input(e.to_string())
    }
}
