//! Where an agent gets the time and fresh randomness.
//!
//! The core takes both as arguments; this is the one place they come from.
//! [`SystemEnv`] reads the system clock and the operating system's RNG;
//! [`ManualEnv`] is a clock that moves only when told and a deterministic
//! byte stream, so sessions, handoffs and chains can be driven to chosen
//! instants in tests without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use accord_core::{Hash32, Timestamp, Uuid};

use crate::home::HomeError;

/// A source of time and randomness.
pub trait Env: Send + Sync {
    /// The current time.
    fn now(&self) -> Result<Timestamp, HomeError>;

    /// Fills `buf` with fresh random bytes.
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HomeError>;

    /// A fresh random UUIDv4 (an event or session nonce).
    fn nonce(&self) -> Result<Uuid, HomeError> {
        let mut b = [0u8; 16];
        self.fill_random(&mut b)?;
        Ok(uuid::Builder::from_random_bytes(b).into_uuid())
    }
}

/// The system clock and the operating system's RNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnv;

impl Env for SystemEnv {
    fn now(&self) -> Result<Timestamp, HomeError> {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| HomeError::Io("system clock is before 1970".into()))?
            .as_micros();
        Timestamp::from_unix_micros(micros as i64).map_err(|e| HomeError::Io(e.to_string()))
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HomeError> {
        getrandom::fill(buf).map_err(|e| HomeError::Random(e.to_string()))
    }
}

/// A clock set by hand and a deterministic byte stream, for tests and
/// simulations. Clones share the same clock, so a test keeps one and
/// advances the time of every agent it handed a clone to.
///
/// The bytes are SHA-256(seed ‖ counter): reproducible, and **not secret**
/// (anyone who knows the seed knows them). Never use it for real keys.
#[derive(Debug, Clone)]
pub struct ManualEnv {
    inner: Arc<Manual>,
}

#[derive(Debug)]
struct Manual {
    micros: AtomicI64,
    counter: AtomicU64,
    seed: u64,
}

impl ManualEnv {
    /// A clock at `start` whose random bytes derive from `seed`.
    pub fn new(start: &Timestamp, seed: u64) -> Self {
        ManualEnv {
            inner: Arc::new(Manual {
                micros: AtomicI64::new(start.unix_micros()),
                counter: AtomicU64::new(0),
                seed,
            }),
        }
    }

    /// A clock at `ms` milliseconds since the Unix epoch whose random bytes
    /// derive from `seed`.
    pub fn from_unix_ms(ms: u64, seed: u64) -> Self {
        ManualEnv {
            inner: Arc::new(Manual {
                micros: AtomicI64::new(i64::try_from(ms).unwrap_or(i64::MAX / 1000) * 1000),
                counter: AtomicU64::new(0),
                seed,
            }),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        self.advance_micros(i64::try_from(by.as_micros()).unwrap_or(i64::MAX));
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.advance_micros(i64::try_from(ms).unwrap_or(i64::MAX / 1000) * 1000);
    }

    /// Sets the clock to `ms` milliseconds since the Unix epoch.
    pub fn set_unix_ms(&self, ms: u64) {
        let micros = i64::try_from(ms).unwrap_or(i64::MAX / 1000) * 1000;
        self.inner.micros.store(micros, Ordering::SeqCst);
    }

    /// Moves the clock forward (or, with a negative value, back).
    pub fn advance_micros(&self, micros: i64) {
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .inner
            .micros
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(micros))
            });
    }

    /// Moves the clock forward by whole seconds.
    pub fn advance_secs(&self, secs: i64) {
        self.advance_micros(secs * 1_000_000);
    }

    /// Sets the clock.
    pub fn set(&self, t: &Timestamp) {
        self.inner.micros.store(t.unix_micros(), Ordering::SeqCst);
    }
}

impl Env for ManualEnv {
    fn now(&self) -> Result<Timestamp, HomeError> {
        Timestamp::from_unix_micros(self.inner.micros.load(Ordering::SeqCst))
            .map_err(|e| HomeError::Io(e.to_string()))
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HomeError> {
        for chunk in buf.chunks_mut(32) {
            let n = self.inner.counter.fetch_add(1, Ordering::SeqCst);
            let mut input = [0u8; 16];
            input[..8].copy_from_slice(&self.inner.seed.to_be_bytes());
            input[8..].copy_from_slice(&n.to_be_bytes());
            chunk.copy_from_slice(&Hash32::of(&input).0[..chunk.len()]);
        }
        Ok(())
    }
}
