//! The wall clock every time-dependent decision of this crate reads.
//!
//! Bundle validity and rotation, session age and idleness, tombstones,
//! exchange-key grace periods, the times stored with replay windows and the
//! hub's registration check all compare *wall-clock* milliseconds with
//! timestamps other parties made or that were persisted, so they read a
//! [`Clock`] injected at construction instead of [`std::time::SystemTime`].
//! [`SystemClock`] is the default everywhere; [`ManualClock`] lets tests and
//! simulations choose the instant (days pass in a line of code, nothing
//! sleeps).
//!
//! I/O deadlines (socket connect, request and write timeouts, the hub's
//! registration deadline, rate limiting, periodic tasks) are not on this
//! clock: they measure elapsed time on the local machine, so they use
//! tokio's monotonic time, which tests control with tokio's paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A source of wall-clock time, in milliseconds since the Unix epoch.
///
/// Implementations must be cheap (it is read for every message) and may go
/// backwards (the system clock can be set back): callers compare with
/// saturating arithmetic.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// A shared clock, as agents and hubs hold it.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            // Before 1970: report the epoch; every check then fails closed
            // (bundles are "not yet valid") rather than wrapping around.
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to: for tests and simulations.
///
/// Clones share the same instant, so one `ManualClock` handed to several
/// agents and a hub moves them all at once. Not meant for production use:
/// nothing advances it by itself.
///
/// ```
/// use accord_net::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(1_800_000_000_000);
/// let seen_by_agent = clock.clone();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(seen_by_agent.now_ms(), 1_800_003_600_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `start_ms` (milliseconds since the Unix epoch).
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock {
            ms: Arc::new(AtomicU64::new(start_ms)),
        }
    }

    /// Sets the instant (it may go backwards, as a system clock can).
    pub fn set(&self, ms: u64) {
        self.ms.store(ms, Ordering::SeqCst);
    }

    /// Moves the clock forward by `by` (saturating at `u64::MAX` ms).
    pub fn advance(&self, by: Duration) {
        self.advance_ms(u64::try_from(by.as_millis()).unwrap_or(u64::MAX));
    }

    /// Moves the clock forward by `ms` milliseconds (saturating).
    pub fn advance_ms(&self, ms: u64) {
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(ms))
            });
    }

    /// This clock as a [`SharedClock`] (for the `*_with_clock` constructors).
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// The default clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_by_clones_and_saturates() {
        let c = ManualClock::new(10);
        let d = c.clone();
        c.advance_ms(5);
        assert_eq!(d.now_ms(), 15);
        d.set(3);
        assert_eq!(c.now_ms(), 3);
        c.advance(Duration::MAX);
        assert_eq!(c.now_ms(), u64::MAX);
        let shared = c.shared();
        c.set(7);
        assert_eq!(shared.now_ms(), 7);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
