//! Byte-rate budgets of reconstruction traffic (DESIGN §7), as plain values on an explicit
//! clock: token buckets for a blockserver's own reconstruction reads and writes, and for its
//! share of every rack-pair and datacenter-pair budget whose traffic reaches it (the active
//! divides each budget among the servers it applies to and pushes the shares in heartbeat
//! replies).
//!
//! A charge takes the bytes at once and returns the debt to sleep off (`debt / rate`), so
//! that over any interval the bytes moved stay within `rate × interval` plus a burst of a
//! twentieth of a second ([`BURST_SECS`]); buckets start empty, so a rebuild cannot open
//! with a burst. The
//! blockserver sleeps on tokio's clock; the fleet simulator moves its transfers by the same
//! numbers on simulated time.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::{ByteBudget, Throttle};

/// The burst a bucket may accumulate, in seconds of its rate. The shares of a budget add up
/// to it at most, so their bursts add up to this much of it: the bytes of a budgeted pair
/// in any second stay within 5% of the budget. With 0.2 s, a server that idled between tasks
/// let the pair's busiest second reach 1.17 of the budget in the fleet simulator's run of
/// the rebuild benchmark.
pub const BURST_SECS: f64 = 0.05;

/// One token bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
    /// Bytes ever charged: a charge's position in the queue of charges. `charged + tokens`
    /// grows only with time, so a charge is paid when it reaches the charge's position,
    /// whatever the rate did meanwhile.
    charged: f64,
    /// Which bucket this is: a share removed and installed again is a new bucket, and
    /// positions in the old one mean nothing in it.
    epoch: u64,
}

impl Bucket {
    /// An empty bucket filling at `rate` bytes a second from `now`.
    pub fn new(rate: u64, now: Instant) -> Self {
        Self {
            rate: rate as f64,
            tokens: 0.0,
            last: now,
            charged: 0.0,
            epoch: 0,
        }
    }

    /// Its rate, in bytes a second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The same bucket at another rate from `now`: the time until now is credited at the old
    /// rate, then its debt carries over and its credit is kept at most up to the new burst.
    pub fn with_rate(self, rate: u64, now: Instant) -> Self {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = (self.tokens + dt * self.rate).min(self.rate * BURST_SECS);
        let rate = rate as f64;
        Self {
            rate,
            tokens: tokens.min(rate * BURST_SECS),
            last: self.last.max(now),
            ..self
        }
    }

    /// Takes `bytes` at `now`; returns how long the caller must wait to stay within the rate
    /// at the rate now, and the charge's position ([`Self::owed`]).
    pub fn charge(&mut self, bytes: u64, now: Instant) -> (Duration, f64) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate).min(self.rate * BURST_SECS);
        self.tokens -= bytes as f64;
        self.charged += bytes as f64;
        let wait = if self.tokens >= 0.0 || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        };
        (wait, self.charged)
    }

    /// How long from `now` until the charge at `position` is paid, at the rate now: every
    /// charge is paid in turn, so charges made together are let through one after another,
    /// not all at once when the last is paid.
    pub fn owed(&self, position: f64, now: Instant) -> Duration {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        let credited = self.charged + self.tokens + dt * self.rate;
        let owed = position - credited;
        if owed <= 0.0 || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(owed / self.rate)
        }
    }
}

/// The charges of one read or write, to wait on ([`Budgets::owed`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ticket {
    /// (bucket epoch, position) in the node's bucket.
    node: Option<(u64, f64)>,
    /// (share name, bucket epoch, position).
    shares: Vec<(String, u64, f64)>,
}

/// The budgets several actives sent, as one: every limit at the lowest rate any of them
/// gave it (0, unlimited, lifts no one's limit), so that tasks of every pool, charged to the
/// same buckets, stay within what each nameservice allows.
pub fn lowest<'a>(sent: impl IntoIterator<Item = &'a Throttle>) -> Throttle {
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

/// The budgets of one blockserver: its own bucket and its shares.
#[derive(Debug, Default, Clone)]
pub struct Budgets {
    node: Option<Bucket>,
    /// name -> (source racks it applies to, bucket)
    shares: HashMap<String, (Vec<String>, Bucket)>,
    /// What each pool's active last sent (DESIGN §10): the buckets run at the lowest of them.
    sent: BTreeMap<u64, Throttle>,
    /// The most tasks any active lets this server run at once (the lowest; 0: no limit).
    max_tasks: u32,
    /// Buckets made so far (each gets its own epoch).
    made: u64,
}

impl Budgets {
    fn bucket(&mut self, rate: u64, now: Instant) -> Bucket {
        self.made += 1;
        Bucket {
            epoch: self.made,
            ..Bucket::new(rate, now)
        }
    }

    /// Installs the budgets the active of pool `pool`'s nameservice sent: with several
    /// pools, the lowest of what each sent ([`lowest`]).
    pub fn update_from(&mut self, pool: u64, t: &Throttle, now: Instant) {
        self.sent.insert(pool, t.clone());
        let merged = lowest(self.sent.values());
        self.install(&merged, now);
    }

    /// Installs the budgets the active sent; a bucket whose rate did not change keeps its
    /// state (so a heartbeat does not refill it).
    pub fn install(&mut self, t: &Throttle, now: Instant) {
        self.max_tasks = t.max_tasks;
        let node_rate = t.node_bytes_per_sec;
        self.node = match (self.node.take(), node_rate) {
            (_, 0) => None,
            (Some(b), r) if b.rate == r as f64 => Some(b),
            (Some(b), r) => Some(b.with_rate(r, now)),
            (None, r) => Some(self.bucket(r, now)),
        };
        let mut shares = HashMap::new();
        for b in &t.budgets {
            if b.bytes_per_sec == 0 {
                continue;
            }
            let bucket = match self.shares.remove(&b.name) {
                Some((_, old)) if old.rate == b.bytes_per_sec as f64 => old,
                // A new rate keeps the old bucket's debt (and at most the new burst).
                Some((_, old)) => old.with_rate(b.bytes_per_sec, now),
                None => self.bucket(b.bytes_per_sec, now),
            };
            shares.insert(b.name.clone(), (b.from_racks.clone(), bucket));
        }
        self.shares = shares;
    }

    /// The most tasks this server may run at once (none: no active set a limit).
    pub fn max_tasks(&self) -> Option<u32> {
        Some(self.max_tasks).filter(|m| *m > 0)
    }

    /// The rate of the share named `name`, if one is installed.
    pub fn share_rate(&self, name: &str) -> Option<f64> {
        self.shares.get(name).map(|(_, b)| b.rate)
    }

    /// The rate of the node's own bucket, if one is installed.
    pub fn node_rate(&self) -> Option<f64> {
        self.node.as_ref().map(|b| b.rate)
    }

    /// Charges `bytes` read at `now` from a server in `from_rack` ("" for this server's
    /// own rack: only the node's bucket); returns the charge to wait on.
    pub fn charge_read(&mut self, bytes: u64, from_rack: &str, now: Instant) -> Ticket {
        let mut ticket = Ticket {
            node: self
                .node
                .as_mut()
                .map(|b| (b.epoch, b.charge(bytes, now).1)),
            shares: Vec::new(),
        };
        for (name, (racks, bucket)) in self.shares.iter_mut() {
            if racks.iter().any(|r| r == from_rack) {
                let (_, position) = bucket.charge(bytes, now);
                ticket.shares.push((name.clone(), bucket.epoch, position));
            }
        }
        ticket
    }

    /// Charges `bytes` written here at `now` to the node's bucket.
    pub fn charge_write(&mut self, bytes: u64, now: Instant) -> Ticket {
        Ticket {
            node: self
                .node
                .as_mut()
                .map(|b| (b.epoch, b.charge(bytes, now).1)),
            shares: Vec::new(),
        }
    }

    /// How long from `now` until `ticket`'s charges are paid, at the rates now. A caller
    /// waits on this in slices rather than once on the wait a charge implied: the shares
    /// the active sends with every heartbeat apply to the waits under way, so a share cut
    /// to almost nothing pauses a rebuild until the next heartbeat instead of for the debt
    /// at that rate (days). A bucket removed since is owed nothing.
    pub fn owed(&self, ticket: &Ticket, now: Instant) -> Duration {
        let mut wait = match (&self.node, ticket.node) {
            (Some(b), Some((epoch, position))) if b.epoch == epoch => b.owed(position, now),
            _ => Duration::ZERO,
        };
        for (name, epoch, position) in &ticket.shares {
            if let Some((_, b)) = self.shares.get(name).filter(|(_, b)| b.epoch == *epoch) {
                wait = wait.max(b.owed(*position, now));
            }
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(name: &str, rate: u64) -> ByteBudget {
        ByteBudget {
            name: name.into(),
            from_racks: vec!["r2".into()],
            bytes_per_sec: rate,
        }
    }

    #[test]
    fn several_pools_budgets_hold_at_the_lowest_each_sent() {
        let now = Instant::now();
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
        let mut budgets = Budgets::default();
        budgets.update_from(1, &ns1, now);
        budgets.update_from(2, &ns2, now);
        // A later heartbeat of one pool does not undo the other's lower limit.
        budgets.update_from(1, &ns1, now);
        assert_eq!(budgets.share_rate("rack r2>r1"), Some(2_000_000.0));
        assert_eq!(budgets.node_rate(), Some(50_000_000.0));
        assert_eq!(budgets.max_tasks(), Some(8), "no limit lifts no limit");
        budgets.update_from(
            2,
            &Throttle {
                max_tasks: 4,
                ..ns2
            },
            now,
        );
        assert_eq!(budgets.max_tasks(), Some(4), "the lowest");
    }

    #[test]
    fn a_bucket_holds_its_rate_over_time() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1_000_000, t0);
        // 10 MB charged at once: 10 s of debt.
        assert_eq!(b.charge(10_000_000, t0).0, Duration::from_secs(10));
        // The burst is capped at 0.05 s of rate however long the bucket idled: 450 kB owe
        // 400 ms after 400 ms idle.
        let mut b = Bucket::new(1_000_000, t0);
        let (w, at) = b.charge(450_000, t0 + Duration::from_millis(400));
        assert_eq!(w.as_millis(), 400);
        // A clock read out of order (an older `now`) neither refills nor rewinds it.
        let (w, _) = b.charge(0, t0);
        assert_eq!(w.as_millis(), 400);
        // Two more charges queue behind the first: each is paid in its turn.
        let (_, second) = b.charge(100_000, t0 + Duration::from_millis(400));
        let (_, third) = b.charge(100_000, t0 + Duration::from_millis(400));
        let later = t0 + Duration::from_millis(400);
        assert_eq!(b.owed(at, later).as_millis(), 400);
        assert_eq!(b.owed(second, later).as_millis(), 500);
        assert_eq!(b.owed(third, later).as_millis(), 600);
        assert_eq!(
            b.owed(second, later + Duration::from_millis(500)),
            Duration::ZERO
        );
    }

    /// The budgets a server of r2 gets: an r1 -> r2 share of `rate`.
    fn r1_to_r2(rate: u64) -> Throttle {
        Throttle {
            node_bytes_per_sec: 0,
            budgets: vec![ByteBudget {
                name: "rack r1>r2".into(),
                from_racks: vec!["r1".into()],
                bytes_per_sec: rate,
            }],
            max_tasks: 0,
        }
    }

    #[test]
    fn shares_apply_to_their_source_racks_only() {
        let t0 = Instant::now();
        let mut budgets = Budgets::default();
        budgets.install(&r1_to_r2(10_000_000), t0);
        let free = budgets.charge_read(100_000_000, "r3", t0);
        assert_eq!(budgets.owed(&free, t0), Duration::ZERO);
        let free = budgets.charge_read(100_000_000, "", t0);
        assert_eq!(budgets.owed(&free, t0), Duration::ZERO);
        // 2 MB at 10 MB/s from an empty bucket: 0.2 s.
        let ticket = budgets.charge_read(2_000_000, "r1", t0);
        assert_eq!(budgets.owed(&ticket, t0).as_millis(), 200);
        let later = t0 + Duration::from_millis(150);
        assert_eq!(budgets.owed(&ticket, later).as_millis(), 50);
        // A new rate keeps the debt, and the wait under way follows it.
        budgets.install(&r1_to_r2(1_000_000), t0);
        assert_eq!(budgets.owed(&ticket, t0).as_millis(), 2_000);
        // Raised again 1 s later: the second already passed counts at 1 MB/s (1 MB of the 2
        // owed), the rest at 10 MB/s.
        let t1 = t0 + Duration::from_secs(1);
        budgets.install(&r1_to_r2(10_000_000), t1);
        assert_eq!(budgets.owed(&ticket, t1).as_millis(), 100);
        // A share removed owes nothing.
        budgets.install(&Throttle::default(), t0);
        assert_eq!(budgets.owed(&ticket, t0), Duration::ZERO);
    }
}
