//! Byte-rate budgets of reconstruction traffic (DESIGN §7): token buckets for this node's own
//! reconstruction reads and writes, and for its share of every rack-pair and
//! datacenter-pair budget whose traffic reaches it (the active divides each budget among the
//! servers it applies to and pushes the shares in heartbeat replies).
//!
//! A charge takes the bytes at once and sleeps off any debt (`debt / rate`), so that over
//! any interval the bytes moved stay within `rate × interval` plus a burst of a fifth of a
//! second; buckets start empty, so a rebuild cannot open with a burst.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use raftfs_core::reconstruction::{ByteBudget, Throttle};

/// The burst a bucket may accumulate, in seconds of its rate.
const BURST_SECS: f64 = 0.2;

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64) -> Self {
        Self {
            rate: rate as f64,
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    /// The same bucket at another rate: its debt carries over, its credit at most up to
    /// the new burst.
    fn with_rate(self, rate: u64) -> Self {
        let rate = rate as f64;
        Self {
            rate,
            tokens: self.tokens.min(rate * BURST_SECS),
            last: self.last,
        }
    }

    /// Takes `bytes`; returns how long the caller must wait to stay within the rate.
    fn charge(&mut self, bytes: u64) -> Duration {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate * BURST_SECS);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    node: Option<Bucket>,
    /// name -> (source racks it applies to, bucket)
    shares: HashMap<String, (Vec<String>, Bucket)>,
    /// What each pool's active last sent (DESIGN §10): the buckets run at the lowest of them.
    sent: BTreeMap<u64, Throttle>,
    /// The most tasks any active lets this server run at once (the lowest; 0: no limit).
    max_tasks: u32,
}

/// The budgets several actives sent, as one: every limit at the lowest rate any of them
/// gave it (0, unlimited, lifts no one's limit), so that tasks of every pool, charged to the
/// same buckets, stay within what each nameservice allows.
fn lowest<'a>(sent: impl IntoIterator<Item = &'a Throttle>) -> Throttle {
    let min = |a: u64, b: u64| match (a, b) {
        (0, r) | (r, 0) => r,
        (a, b) => a.min(b),
    };
    let mut node = 0u64;
    let mut max_tasks = 0u32;
    let mut shares: BTreeMap<&str, ByteBudget> = BTreeMap::new();
    for t in sent {
        node = min(node, t.node_bytes_per_sec);
        max_tasks = match (max_tasks, t.max_tasks) {
            (0, m) | (m, 0) => m,
            (a, b) => a.min(b),
        };
        for b in &t.budgets {
            shares
                .entry(b.name.as_str())
                .and_modify(|s| s.bytes_per_sec = min(s.bytes_per_sec, b.bytes_per_sec))
                .or_insert_with(|| b.clone());
        }
    }
    Throttle {
        node_bytes_per_sec: node,
        budgets: shares.into_values().collect(),
        max_tasks,
    }
}

/// The budgets of one blockserver.
#[derive(Debug, Default)]
pub struct Budgets {
    inner: Mutex<Inner>,
}

impl Budgets {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs the budgets the active of pool `pool`'s nameservice sent: with several
    /// pools, the lowest of what each sent ([`lowest`]).
    pub fn update_from(&self, pool: u64, t: &Throttle) {
        let mut inner = self.lock();
        inner.sent.insert(pool, t.clone());
        let merged = lowest(inner.sent.values());
        Self::install(&mut inner, &merged);
    }

    /// Installs the budgets the active sent; a bucket whose rate did not change keeps its
    /// state (so a heartbeat does not refill it).
    pub fn update(&self, t: &Throttle) {
        let mut inner = self.lock();
        Self::install(&mut inner, t);
    }

    /// The most tasks this server may run at once (none: no active set a limit).
    pub fn max_tasks(&self) -> Option<u32> {
        Some(self.lock().max_tasks).filter(|m| *m > 0)
    }

    fn install(inner: &mut Inner, t: &Throttle) {
        inner.max_tasks = t.max_tasks;
        let node_rate = t.node_bytes_per_sec;
        match (&mut inner.node, node_rate) {
            (_, 0) => inner.node = None,
            (Some(b), r) if b.rate == r as f64 => {}
            (Some(b), r) => *b = std::mem::replace(b, Bucket::new(r)).with_rate(r),
            (None, r) => inner.node = Some(Bucket::new(r)),
        }
        let mut shares = HashMap::new();
        for b in &t.budgets {
            if b.bytes_per_sec == 0 {
                continue;
            }
            let bucket = match inner.shares.remove(&b.name) {
                Some((_, old)) if old.rate == b.bytes_per_sec as f64 => old,
                // A new rate keeps the old bucket's debt (and at most the new burst).
                Some((_, old)) => old.with_rate(b.bytes_per_sec),
                None => Bucket::new(b.bytes_per_sec),
            };
            shares.insert(b.name.clone(), (b.from_racks.clone(), bucket));
        }
        inner.shares = shares;
    }

    /// Waits until `bytes` read from a server in `from_rack` fit the budgets.
    pub async fn read(&self, bytes: u64, from_rack: &str) {
        let wait = {
            let mut inner = self.lock();
            let mut wait = inner
                .node
                .as_mut()
                .map_or(Duration::ZERO, |b| b.charge(bytes));
            for (racks, bucket) in inner.shares.values_mut() {
                if racks.iter().any(|r| r == from_rack) {
                    wait = wait.max(bucket.charge(bytes));
                }
            }
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits until `bytes` written here fit the node's budget.
    pub async fn write(&self, bytes: u64) {
        let wait = self
            .lock()
            .node
            .as_mut()
            .map_or(Duration::ZERO, |b| b.charge(bytes));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_pools_budgets_hold_at_the_lowest_each_sent() {
        let share = |name: &str, rate| ByteBudget {
            name: name.into(),
            from_racks: vec!["r2".into()],
            bytes_per_sec: rate,
        };
        let ns1 = Throttle {
            node_bytes_per_sec: 0,
            budgets: vec![share("rack r2>r1", 4_000_000), share("rack r3>r1", 1_000)],
            max_tasks: 8,
        };
        let ns2 = Throttle {
            node_bytes_per_sec: 50_000_000,
            budgets: vec![share("rack r2>r1", 2_000_000), share("rack r3>r1", 0)],
            max_tasks: 0,
        };
        let merged = lowest([&ns1, &ns2]);
        assert_eq!(
            merged.node_bytes_per_sec, 50_000_000,
            "unlimited lifts no limit"
        );
        assert_eq!(
            merged.budgets,
            vec![share("rack r2>r1", 2_000_000), share("rack r3>r1", 1_000)]
        );
        let budgets = Budgets::default();
        budgets.update_from(1, &ns1);
        budgets.update_from(2, &ns2);
        // A later heartbeat of one pool does not undo the other's lower limit.
        budgets.update_from(1, &ns1);
        let inner = budgets.lock();
        assert_eq!(inner.shares["rack r2>r1"].1.rate, 2_000_000.0);
        assert_eq!(inner.node.as_ref().map(|b| b.rate), Some(50_000_000.0));
        drop(inner);
        assert_eq!(budgets.max_tasks(), Some(8), "no limit lifts no limit");
        budgets.update_from(
            2,
            &Throttle {
                max_tasks: 4,
                ..ns2
            },
        );
        assert_eq!(budgets.max_tasks(), Some(4), "the lowest");
    }

    #[test]
    fn a_bucket_holds_its_rate_over_time() {
        let mut b = Bucket::new(1_000_000);
        // 10 MB charged at once: 10 s of debt.
        let w = b.charge(10_000_000);
        assert!(w >= Duration::from_millis(9_900), "{w:?}");
        let mut b = Bucket::new(1_000_000);
        // The burst is capped at 0.2 s of rate even after idling twice that long (or longer,
        // on a loaded machine: the cap makes the wait the same): 450 kB owe 250 ms.
        std::thread::sleep(Duration::from_millis(400));
        let w = b.charge(450_000);
        assert!(w >= Duration::from_millis(249), "{w:?}");
    }

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
            max_tasks: 0,
        });
        let start = Instant::now();
        budgets.read(100_000_000, "r3").await;
        let free = start.elapsed();
        budgets.read(2_000_000, "r1").await;
        // 2 MB at 10 MB/s from an empty bucket: at least 0.2 s (never less; no timing upper
        // bound is asserted).
        assert!(start.elapsed() >= free + Duration::from_millis(190));
    }
}
