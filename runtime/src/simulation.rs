//! The switch a deterministic simulation turns on (crate `raftfs-sim`, DESIGN §14).
//!
//! In a simulation every member runs on one thread, on a paused clock, and a run must be the
//! same each time its seed is given. Three things in a server would make it otherwise, and
//! go through here: work handed to other threads (RocksDB calls on tokio's blocking pool,
//! the long-read pool), the wall clock, and random numbers. Outside a simulation this module
//! changes nothing: work goes to the blocking pool, the clock is the system's, and random
//! numbers come from the operating system (secrets directly through `rand`'s secure thread
//! generator; shuffles from a generator seeded from it).
//!
//! The switch is a process-wide value set at run time, not a Cargo feature: a feature
//! would be unified across the workspace and could reach a production binary unnoticed.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a simulation provides in place of the machine's.
#[derive(Debug, Clone, Copy)]
pub struct Simulation {
    /// The simulated time since the Unix epoch, or `None` outside a simulated host (then
    /// the system clock is read).
    pub since_epoch: fn() -> Option<Duration>,
    /// A seeded 64-bit random number (deterministic in the order it is asked for).
    pub random: fn() -> u64,
    /// Whether the storage write at `point` fails, and how (drawn from the seed).
    pub io_fault: fn(IoPoint) -> Option<IoFault>,
}

/// A storage write a simulation may make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoPoint {
    /// A synced write to the Raft log (entries, vote, truncation, purge).
    LogWrite,
    /// The write of a batch of applied entries to the state machine.
    Apply,
}

/// How a simulated storage write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFault {
    /// Nothing is written and an error is returned.
    Before,
    /// The write happens, and an error is returned all the same (an fsync that reports a
    /// failure after the data reached the disk).
    After,
}

static SIMULATION: OnceLock<Simulation> = OnceLock::new();

/// Turns the simulation on for the rest of the process. A second call keeps the first
/// value (the hooks are functions of the running simulation, not of one run).
pub fn enter(simulation: Simulation) {
    let _ = SIMULATION.set(simulation);
}

/// Whether this process runs simulations.
pub fn active() -> bool {
    SIMULATION.get().is_some()
}

/// Whether the storage write at `point` is to fail (only ever in a simulation).
pub fn io_fault(point: IoPoint) -> Option<IoFault> {
    SIMULATION.get().and_then(|s| (s.io_fault)(point))
}

/// Runs `f`, which blocks (RocksDB, files), off the async threads; in a simulation, on this
/// thread at once, so that its result arrives at the same point of every run.
pub async fn blocking<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if active() {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f).await
}

/// The wall clock: the simulated one in a simulated host, the system's otherwise.
pub fn now() -> SystemTime {
    match SIMULATION.get().and_then(|s| (s.since_epoch)()) {
        Some(d) => UNIX_EPOCH + d,
        None => SystemTime::now(),
    }
}

/// [`now`] in milliseconds since the epoch (what entries and leases carry).
pub fn now_ms() -> u64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// [`now`] in nanoseconds since the epoch (names that must not repeat).
pub fn now_nanos() -> u128 {
    now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// A random 64-bit number: the simulation's seeded one, the operating system's otherwise.
pub fn random_u64() -> u64 {
    match SIMULATION.get() {
        Some(s) => (s.random)(),
        None => rand::random(),
    }
}

/// Fills `bytes` with random bytes: from the operating system's generator (through
/// `rand`'s cryptographically secure thread generator), or the simulation's seeded one.
pub fn fill(bytes: &mut [u8]) {
    use rand::Rng;
    if active() {
        rng().fill(bytes);
    } else {
        rand::rng().fill(bytes);
    }
}

/// A name part that no earlier call in this process returned: the clock's nanoseconds and a
/// counter (a simulated clock stands still between steps).
pub fn unique_suffix() -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{seq}", now_nanos())
}

/// A random number generator seeded from [`random_u64`]: deterministic in a simulation.
pub fn rng() -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::seed_from_u64(random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outside_a_simulation_nothing_changes() {
        assert!(!active());
        let on = std::thread::current().id();
        let ran = blocking(move || std::thread::current().id() != on).await;
        assert_eq!(ran.ok(), Some(true), "the blocking pool's thread");
        let drift = now_ms().abs_diff(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        );
        assert!(drift < 5_000);
    }
}
