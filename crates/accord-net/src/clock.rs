//! The wall clock every time-dependent decision of this crate reads.
//!
//! Bundle validity and rotation, session age and idleness, tombstones,
//! exchange-key grace periods, the times stored with replay windows and the
//! hub's registration check all compare *wall-clock* milliseconds with
//! timestamps other parties made or that were persisted, so they read a
//! [`Clock`] injected at construction instead of [`std::time::SystemTime`].
//! [`SystemEnv`] is the default everywhere; [`ManualEnv`] lets tests and
//! simulations choose the instant (days pass in a line of code, nothing
//! sleeps).
//!
//! I/O deadlines (socket connect, request and write timeouts, the hub's
//! registration deadline, rate limiting, periodic tasks) are not on this
//! clock: they measure elapsed time on the local machine, so they use
//! tokio's monotonic time, which tests control with tokio's paused time.

use std::sync::Arc;

pub use accord_store::env::{Env, ManualEnv, SystemEnv};

/// A source of wall-clock time: any [`Env`] (the one trait time and
/// randomness come from in Accord), read here in milliseconds since the
/// Unix epoch.
///
/// Implementations must be cheap (it is read for every message) and may go
/// backwards (the system clock can be set back): callers compare with
/// saturating arithmetic. An agent opened on a clock also stamps its
/// chain's events by it, so a simulation moves both at once.
///
/// ```
/// use accord_net::{Clock, ManualEnv};
/// use std::time::Duration;
///
/// let clock = ManualEnv::from_unix_ms(1_800_000_000_000, 7);
/// let seen_by_agent = clock.clone();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(seen_by_agent.now_ms(), 1_800_003_600_000);
/// ```
pub trait Clock: Env + std::fmt::Debug {
    /// Milliseconds since the Unix epoch; the epoch itself when the clock
    /// cannot be read (every check then fails closed: bundles are "not yet
    /// valid") rather than wrapping around.
    fn now_ms(&self) -> u64 {
        self.now()
            .map(|t| u64::try_from(t.unix_micros() / 1000).unwrap_or(0))
            .unwrap_or(0)
    }
}

impl<T: Env + std::fmt::Debug + ?Sized> Clock for T {}

/// A shared clock, as agents and hubs hold it.
pub type SharedClock = Arc<dyn Clock>;

/// The default clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemEnv)
}

/// A manual clock as a [`SharedClock`] (for the `*_with_clock`
/// constructors); clones share its instant.
pub fn manual(clock: &ManualEnv) -> SharedClock {
    Arc::new(clock.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn manual_clock_is_shared_by_clones_and_saturates() {
        let c = ManualEnv::from_unix_ms(10, 1);
        let d = c.clone();
        c.advance_ms(5);
        assert_eq!(d.now_ms(), 15);
        d.set_unix_ms(3);
        assert_eq!(c.now_ms(), 3);
        let shared = manual(&c);
        c.set_unix_ms(7);
        assert_eq!(shared.now_ms(), 7);
        // Past the largest time a timestamp holds, the clock reads as
        // unreadable: the epoch, so every check fails closed.
        c.advance(Duration::MAX);
        assert_eq!(c.now_ms(), 0);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemEnv.now_ms() > 1_577_836_800_000);
    }
}
