//! What a run measured: bytes per rack pair and datacenter pair (in total, and per simulated
//! second where a budget applies), the xmits and tasks each server carried against its
//! limits, the hand-out order by priority, and the real code's cost.

use std::collections::BTreeMap;

use serde::Serialize;

/// Bytes of one pair, per simulated second.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    pub per_second: Vec<f64>,
    /// When the first byte and the last byte moved (seconds).
    pub first_s: Option<f64>,
    pub last_s: f64,
}

impl Series {
    /// Adds `bytes` moved evenly over `[from, to)` seconds.
    pub fn spread(&mut self, bytes: f64, from: f64, to: f64) {
        if bytes <= 0.0 {
            return;
        }
        self.first_s = Some(self.first_s.map_or(from, |f| f.min(from)));
        self.last_s = self.last_s.max(to);
        if to <= from {
            self.add(from.floor() as usize, bytes);
            return;
        }
        let rate = bytes / (to - from);
        let mut t = from;
        while t < to {
            let second = t.floor();
            let end = (second + 1.0).min(to);
            self.add(second as usize, rate * (end - t));
            t = end;
        }
    }

    fn add(&mut self, second: usize, bytes: f64) {
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, 0.0);
        }
        self.per_second[second] += bytes;
    }

    /// Total bytes.
    pub fn total(&self) -> f64 {
        self.per_second.iter().sum()
    }

    /// The mean rate from the first byte to the last (bytes a second), as the rebuild
    /// benchmark measures a budgeted pair.
    pub fn mean_rate(&self) -> f64 {
        match self.first_s {
            Some(f) if self.last_s > f => self.total() / (self.last_s - f),
            _ => 0.0,
        }
    }

    /// The busiest whole second, in bytes.
    pub fn peak(&self) -> f64 {
        self.per_second.iter().copied().fold(0.0, f64::max)
    }
}

/// The hand-outs of one priority: how many, the first and the last, and when the last of
/// its rebuilds ended.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct HandOuts {
    pub count: u64,
    pub first_s: Option<f64>,
    pub last_s: Option<f64>,
    pub last_rebuilt_s: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Record {
    /// `from>to` (racks) -> bytes read by rebuilds (a rack's own reads as `r>r`).
    pub rack_pairs: BTreeMap<String, f64>,
    /// Per-second bytes of every pair with a budget (`rack a>b`, `datacenter a>b`).
    pub budgeted: BTreeMap<String, Series>,
    /// When a heartbeat reply first carried each budget (seconds).
    pub budget_seen_s: BTreeMap<String, f64>,
    /// The most the shares in force of each budget added up to (bytes a second).
    pub max_share_sum: BTreeMap<String, f64>,
    /// Per-second bytes between datacenters, budgeted or not (`a>b`).
    pub datacenter_pairs: BTreeMap<String, Series>,
    /// Internal blocks rebuilt and their bytes.
    pub blocks_rebuilt: u64,
    pub bytes_rebuilt: f64,
    /// Tasks that failed (a source or target lost, a busy server, a cancellation).
    pub tasks_failed: u64,
    pub tasks_cancelled: u64,
    /// The most xmits any server reported, and its limit (`max-streams`).
    pub max_xmits: u32,
    /// The lowest any server's xmits count went (it must never be negative).
    pub min_xmits: i64,
    /// The most tasks any server ran at once.
    pub max_running: usize,
    /// The most tasks one heartbeat reply carried.
    pub max_tasks_per_heartbeat: usize,
    /// Replies whose tasks weighed more than `max-streams - xmits` allows (must stay 0; one
    /// task to a server carrying nothing is allowed whatever its weight).
    pub over_handed: u64,
    /// Tasks a server refused because it ran its limit already.
    pub refused_busy: u64,
    /// Hand-outs by the group's priority when handed out (0: one loss from data loss).
    pub hand_outs: [HandOuts; 3],
    /// Replies in which a task of a group closer to loss came after one of a group further
    /// from it (must stay 0: the queues are served most urgent first).
    pub order_inversions: u64,
    /// Real CPU time of the real code: the scan rounds, the heartbeats (registry, scheduler).
    pub scan_cpu_s: f64,
    pub scan_rounds: u64,
    pub heartbeat_cpu_s: f64,
    pub heartbeats: u64,
    pub placement_cpu_s: f64,
    /// Delivering every server's full report (the registry's side).
    pub report_cpu_s: f64,
    /// Resident memory after setup and at the end, and the peak (bytes).
    pub rss_after_setup: u64,
    pub rss_end: u64,
    pub rss_peak: u64,
}

impl Record {
    /// Records one hand-out of priority `p` at `t` seconds.
    pub fn handed_out(&mut self, p: usize, t: f64) {
        if let Some(h) = self.hand_outs.get_mut(p) {
            h.count += 1;
            h.first_s.get_or_insert(t);
            h.last_s = Some(t);
        }
    }

    /// Records that a rebuild of priority `p` ended at `t` seconds.
    pub fn rebuilt(&mut self, p: usize, t: f64) {
        if let Some(h) = self.hand_outs.get_mut(p) {
            h.last_rebuilt_s = Some(t);
        }
    }

    /// Bytes that crossed between racks.
    pub fn cross_rack_bytes(&self) -> f64 {
        self.rack_pairs
            .iter()
            .filter(|(pair, _)| pair.split_once('>').is_some_and(|(a, b)| a != b))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Thread CPU time now, in seconds (the simulator is one thread: the real code's own time).
pub fn thread_cpu() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
}

/// This process's resident memory now and at its peak, in bytes (`/proc/self/status`).
pub fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_spread_over_the_seconds_they_moved_in() {
        let mut s = Series::default();
        s.spread(300.0, 0.5, 3.5);
        assert_eq!(s.per_second, vec![50.0, 100.0, 100.0, 50.0]);
        s.spread(7.0, 2.0, 2.0);
        assert_eq!(s.per_second[2], 107.0);
        assert_eq!(s.total(), 307.0);
    }
}
