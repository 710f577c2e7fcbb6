//! Byte-rate budgets of reconstruction traffic (DESIGN §7), shared by this blockserver's
//! running tasks: the buckets of `raftfs_core::reconstruction::budget` (the same ones the
//! fleet simulator runs), behind a lock, their debts slept off on tokio's clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use raftfs_core::reconstruction::Throttle;
use raftfs_core::reconstruction::budget;

/// The budgets of one blockserver, shared by its running tasks.
#[derive(Debug, Default)]
pub struct Budgets {
    inner: Mutex<budget::Budgets>,
}

impl Budgets {
    fn lock(&self) -> std::sync::MutexGuard<'_, budget::Budgets> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs the budgets the active of pool `pool`'s nameservice sent: with several
    /// pools, the lowest of what each sent ([`budget::lowest`]).
    pub fn update_from(&self, pool: u64, t: &Throttle) {
        self.lock().update_from(pool, t, Instant::now());
    }

    /// Installs the budgets the active sent; a bucket whose rate did not change keeps its
    /// state (so a heartbeat does not refill it).
    pub fn update(&self, t: &Throttle) {
        self.lock().install(t, Instant::now());
    }

    /// The most tasks this server may run at once (none: no active set a limit).
    pub fn max_tasks(&self) -> Option<u32> {
        self.lock().max_tasks()
    }

    /// Waits until `bytes` read from a server in `from_rack` fit the budgets.
    pub async fn read(&self, bytes: u64, from_rack: &str) {
        let ticket = self.lock().charge_read(bytes, from_rack, Instant::now());
        self.settle(&ticket).await;
    }

    /// Waits until `bytes` written here fit the node's budget.
    pub async fn write(&self, bytes: u64) {
        let ticket = self.lock().charge_write(bytes, Instant::now());
        self.settle(&ticket).await;
    }

    /// Sleeps until `ticket`'s charges are paid, in slices of at most [`SLICE`], reading
    /// what is owed again after each: the shares the active sends with every heartbeat apply
    /// to the wait under way (`budget::Budgets::owed`).
    async fn settle(&self, ticket: &budget::Ticket) {
        loop {
            let wait = self.lock().owed(ticket, Instant::now());
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait.min(SLICE)).await;
        }
    }
}

/// The longest a charge sleeps before it reads its debt again.
const SLICE: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;
    use raftfs_core::reconstruction::ByteBudget;

    /// The shared buckets, slept off on tokio's clock (the arithmetic is tested in core).
    #[tokio::test]
    async fn shares_apply_to_their_source_racks_only() {
        let budgets = Budgets::default();
        budgets.update(&Throttle {
            node_bytes_per_sec: 0,
            budgets: vec![ByteBudget {
                name: "rack r1>r2".into(),
                from_racks: vec!["r1".into()],
                bytes_per_sec: 10_000_000,
            }],
            max_tasks: 3,
        });
        assert_eq!(budgets.max_tasks(), Some(3));
        let start = Instant::now();
        budgets.read(100_000_000, "r3").await;
        let free = start.elapsed();
        budgets.read(2_000_000, "r1").await;
        // 2 MB at 10 MB/s from an empty bucket: at least 0.2 s (never less; no timing upper
        // bound is asserted).
        assert!(start.elapsed() >= free + Duration::from_millis(190));
    }
}
