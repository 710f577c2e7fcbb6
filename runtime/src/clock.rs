//! The clock the active's soft state runs on: the registry's liveness, the scheduler's task
//! deadlines, a scan pass's start.
//!
//! A server uses the system's monotonic clock (and [`crate::simulation::now_ms`] for the
//! wall clock). The fleet simulator (crate `raftfs-fleet`) drives the same registry and
//! scheduler through hours of simulated time in seconds of real time, so it hands them a
//! [`ManualClock`] that moves only when told. A value rather than a process-wide switch:
//! tests that each run a fleet in one process keep their clocks apart.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A clock: the system's, or a manual one.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// `Instant::now()`, and the wall clock of [`crate::simulation::now_ms`].
    #[default]
    System,
    /// Time that moves only when the simulation advances it.
    Manual(Arc<ManualClock>),
}

impl Clock {
    /// A manual clock starting now, at wall time `wall_ms`; the handle advances it.
    pub fn manual(wall_ms: u64) -> (Self, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(wall_ms));
        (Clock::Manual(clock.clone()), clock)
    }

    /// The monotonic time now.
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(m) => m.now(),
        }
    }

    /// The wall time now, in milliseconds since the epoch.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => crate::simulation::now_ms(),
            Clock::Manual(m) => m.now_ms(),
        }
    }
}

/// Simulated time: an origin and how far the simulation has moved from it.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    origin_wall_ms: u64,
    elapsed_nanos: AtomicU64,
}

impl ManualClock {
    fn new(wall_ms: u64) -> Self {
        Self {
            origin: Instant::now(),
            origin_wall_ms: wall_ms,
            elapsed_nanos: AtomicU64::new(0),
        }
    }

    /// How far the clock has moved since it was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_nanos.load(Ordering::Acquire))
    }

    /// Moves the clock to `elapsed` after its origin; never backwards (a monotonic clock).
    pub fn set(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_nanos.fetch_max(nanos, Ordering::AcqRel);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.set(self.elapsed().saturating_add(by));
    }

    fn now(&self) -> Instant {
        self.origin + self.elapsed()
    }

    fn now_ms(&self) -> u64 {
        let ms = u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.origin_wall_ms.saturating_add(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_forward_and_only_when_told() {
        let (clock, hand) = Clock::manual(1_000);
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        hand.advance(Duration::from_secs(3));
        assert_eq!(clock.now() - t0, Duration::from_secs(3));
        assert_eq!(clock.now_ms(), 4_000);
        hand.set(Duration::from_secs(1));
        assert_eq!(clock.now() - t0, Duration::from_secs(3), "never backwards");
    }
}
