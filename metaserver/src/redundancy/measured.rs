//! Rebuild reads as the blockservers measure them (issue 24): every heartbeat carries the
//! bytes its server has read for reconstruction since it started, by the source's rack, and
//! this member turns them into a rate per rack pair over the last few heartbeats: the
//! operator's figure beside the journaled rack-pair budgets (`/ui/reconstruction`).
//!
//! Per server, not per pool: a server's budgets bound every pool's rebuilds together, so its
//! reads are compared with them together. Nothing here is journaled or decides anything; a
//! member that restarts starts counting again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use raftfs_core::id::BlockServerId;
use serde::Serialize;
use thiserror::Error;

/// Most source racks one heartbeat may name (a fleet has far fewer racks).
pub const MAX_RACKS_PER_REPORT: usize = 4096;
pub use raftfs_core::reconstruction::MAX_RACK_NAME;
/// Samples are kept at least this far apart (a server with a short heartbeat period keeps
/// about `WINDOW_MS / MIN_STEP_MS` samples, not one a heartbeat).
const MIN_STEP_MS: u64 = 500;
/// The rate is taken over at least this long (a heartbeat a second: about ten of them).
const WINDOW_MS: u64 = 10_000;
/// A server silent for this long reads nothing now, as far as the rates go.
const SILENT_MS: u64 = 3 * WINDOW_MS;
/// A server silent for this long is forgotten (its totals too).
const FORGET_MS: u64 = 600_000;

/// A report this member refuses: the heartbeat it came with is refused as a whole.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("a heartbeat names {0} source racks, more than {MAX_RACKS_PER_REPORT}")]
    TooManyRacks(usize),
    #[error("a heartbeat names a source rack that is empty or longer than {MAX_RACK_NAME} bytes")]
    BadRack,
    #[error("a heartbeat names source rack {0:?} twice")]
    DuplicateRack(String),
}

/// Bytes read for reconstruction by one server since it started, by source rack.
pub type Reads = BTreeMap<String, u64>;

/// Checks a heartbeat's reads before they are kept.
pub fn check(reads: &[(String, u64)]) -> Result<(), ReportError> {
    if reads.len() > MAX_RACKS_PER_REPORT {
        return Err(ReportError::TooManyRacks(reads.len()));
    }
    if reads
        .iter()
        .any(|(rack, _)| rack.is_empty() || rack.len() > MAX_RACK_NAME)
    {
        return Err(ReportError::BadRack);
    }
    let mut seen = std::collections::BTreeSet::new();
    match reads.iter().find(|(rack, _)| !seen.insert(rack.as_str())) {
        Some((rack, _)) => Err(ReportError::DuplicateRack(rack.clone())),
        None => Ok(()),
    }
}

#[derive(Debug, Clone)]
struct Sample {
    at_ms: u64,
    reads: Reads,
}

/// A server's samples over the last `WINDOW_MS` (and the one just before it, so that the
/// window spans all of it): about eleven at a heartbeat a second.
#[derive(Debug, Default)]
struct Window(VecDeque<Sample>);

impl Window {
    /// Takes a new sample. A counter that went down means the server restarted (and a clock
    /// that went back, that something did): the window starts again from this sample.
    fn push(&mut self, sample: Sample) {
        if let Some(latest) = self.0.back() {
            let restarted = latest
                .reads
                .iter()
                .any(|(rack, &before)| sample.reads.get(rack).is_none_or(|&now| now < before));
            if restarted || sample.at_ms < latest.at_ms {
                self.0.clear();
            }
        }
        let newest = sample.at_ms;
        // The latest sample is replaced while it is within MIN_STEP_MS of the one before it:
        // the samples kept stay that far apart, and the newest is always the last.
        let before_latest = self.0.len().checked_sub(2).and_then(|i| self.0.get(i));
        if before_latest.is_some_and(|s| newest.saturating_sub(s.at_ms) < MIN_STEP_MS) {
            self.0.pop_back();
        }
        self.0.push_back(sample);
        while self
            .0
            .get(1)
            .is_some_and(|next| newest.saturating_sub(next.at_ms) >= WINDOW_MS)
        {
            self.0.pop_front();
        }
    }

    fn latest(&self) -> Option<&Sample> {
        self.0.back()
    }

    /// Bytes per second from `rack` over the window (0 once the server has gone silent).
    fn rate(&self, rack: &str, now_ms: u64) -> u64 {
        let (Some(first), Some(latest)) = (self.0.front(), self.0.back()) else {
            return 0;
        };
        let span = latest.at_ms.saturating_sub(first.at_ms);
        if span == 0 || now_ms.saturating_sub(latest.at_ms) > SILENT_MS {
            return 0;
        }
        let now = latest.reads.get(rack).copied().unwrap_or(0);
        let then = first.reads.get(rack).copied().unwrap_or(0);
        let bytes = u128::from(now.saturating_sub(then));
        u64::try_from(bytes * 1000 / u128::from(span)).unwrap_or(u64::MAX)
    }
}

/// What the rack pair `from` -> `to` carried for rebuilds: the rate now, and the bytes since
/// the servers of `to` that this member hears from started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairReads {
    pub from: String,
    pub to: String,
    pub bytes_per_sec: u64,
    pub total_bytes: u64,
}

/// Every server's window, kept by each member from the heartbeats it receives.
#[derive(Debug, Default)]
pub struct MeasuredReads {
    servers: Mutex<Servers>,
}

#[derive(Debug, Default)]
struct Servers {
    windows: HashMap<BlockServerId, Window>,
    /// When servers silent for `FORGET_MS` were last dropped (by `record`, so that the map
    /// stays bounded whether or not anyone opens the page).
    pruned_ms: u64,
}

impl Servers {
    fn forget_silent(&mut self, now_ms: u64) {
        self.windows.retain(|_, w| {
            w.latest()
                .is_some_and(|l| now_ms.saturating_sub(l.at_ms) <= FORGET_MS)
        });
        self.pruned_ms = now_ms;
    }
}

impl MeasuredReads {
    /// Keeps a server's reads, as of `at_ms`. Checked by [`check`] first.
    pub fn record(&self, server: BlockServerId, at_ms: u64, reads: Reads) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        if at_ms.saturating_sub(servers.pruned_ms) > FORGET_MS / 10 {
            servers.forget_silent(at_ms);
        }
        if reads.is_empty() && !servers.windows.contains_key(&server) {
            // Never rebuilt anything: nothing to keep for it.
            return;
        }
        servers
            .windows
            .entry(server)
            .or_default()
            .push(Sample { at_ms, reads });
    }

    /// The rack pairs, from each server's rack as `rack_of` gives it (servers it does not
    /// know are left out), summed over servers; servers silent for long are forgotten.
    pub fn by_rack_pair(
        &self,
        rack_of: impl Fn(BlockServerId) -> Option<String>,
        now_ms: u64,
    ) -> Vec<PairReads> {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.forget_silent(now_ms);
        let mut pairs: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for (&server, window) in &servers.windows {
            let (Some(to), Some(latest)) = (rack_of(server), window.latest()) else {
                continue;
            };
            for (from, &total) in &latest.reads {
                let pair = pairs.entry((from.clone(), to.clone())).or_default();
                pair.0 = pair.0.saturating_add(window.rate(from, now_ms));
                pair.1 = pair.1.saturating_add(total);
            }
        }
        pairs
            .into_iter()
            .map(|((from, to), (bytes_per_sec, total_bytes))| PairReads {
                from,
                to,
                bytes_per_sec,
                total_bytes,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(pairs: &[(&str, u64)]) -> Reads {
        pairs.iter().map(|(r, b)| (r.to_string(), *b)).collect()
    }

    fn rack(server: BlockServerId) -> Option<String> {
        Some(format!("r{}", server.get()))
    }

    #[test]
    fn rates_per_rack_pair_over_the_window() {
        let m = MeasuredReads::default();
        let (a, b) = (BlockServerId(1), BlockServerId(2));
        for s in 0..=20u64 {
            // a reads 1 MB/s from r2 and 2 MB/s from its own rack; b 0.5 MB/s from r1.
            let at = s * 1000;
            m.record(
                a,
                at,
                reads(&[("r2", s * 1_000_000), ("r1", s * 2_000_000)]),
            );
            m.record(b, at, reads(&[("r1", s * 500_000)]));
        }
        let pairs = m.by_rack_pair(rack, 20_000);
        let got: Vec<_> = pairs
            .iter()
            .map(|p| {
                (
                    p.from.as_str(),
                    p.to.as_str(),
                    p.bytes_per_sec,
                    p.total_bytes,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("r1", "r1", 2_000_000, 40_000_000),
                ("r1", "r2", 500_000, 10_000_000),
                ("r2", "r1", 1_000_000, 20_000_000),
            ]
        );
    }

    #[test]
    fn a_rebuild_that_ended_falls_to_zero_and_a_silent_server_reads_nothing() {
        let m = MeasuredReads::default();
        let a = BlockServerId(1);
        for s in 0..=5u64 {
            m.record(a, s * 1000, reads(&[("r2", s * 1000)]));
        }
        assert_eq!(m.by_rack_pair(rack, 5_000)[0].bytes_per_sec, 1000);
        // Idle from 5 s on: once the window has slid past the rebuild, the rate is 0.
        for s in 6..=30u64 {
            m.record(a, s * 1000, reads(&[("r2", 5000)]));
        }
        let pair = &m.by_rack_pair(rack, 30_000)[0];
        assert_eq!((pair.bytes_per_sec, pair.total_bytes), (0, 5000));
        // Reading, then silent: the last rate is not shown forever.
        let b = BlockServerId(2);
        m.record(b, 100_000, reads(&[("r1", 0)]));
        m.record(b, 101_000, reads(&[("r1", 10_000)]));
        let rate = |now| {
            m.by_rack_pair(rack, now)
                .into_iter()
                .find(|p| p.to == "r2")
                .map(|p| p.bytes_per_sec)
        };
        assert_eq!(rate(101_000), Some(10_000));
        assert_eq!(rate(101_000 + SILENT_MS + 1), Some(0));
        assert_eq!(rate(101_000 + FORGET_MS + 1), None, "forgotten");
    }

    #[test]
    fn a_restarted_server_starts_a_new_window() {
        let m = MeasuredReads::default();
        let a = BlockServerId(1);
        m.record(a, 0, reads(&[("r2", 0)]));
        m.record(a, 1000, reads(&[("r2", 1_000_000)]));
        // Restarted: its counter is back near zero, which is no negative rate.
        m.record(a, 2000, reads(&[("r2", 100)]));
        m.record(a, 3000, reads(&[("r2", 2100)]));
        let pair = &m.by_rack_pair(rack, 3000)[0];
        assert_eq!((pair.bytes_per_sec, pair.total_bytes), (2000, 2100));
    }

    #[test]
    fn a_fast_heartbeat_keeps_a_bounded_window_and_silent_servers_go_without_a_page() {
        let m = MeasuredReads::default();
        let a = BlockServerId(1);
        // A heartbeat every 10 ms for 20 s.
        for t in (0..=20_000u64).step_by(10) {
            m.record(a, t, reads(&[("r2", t * 100)]));
        }
        {
            let servers = m.servers.lock().expect("lock");
            let samples = servers.windows[&a].0.len() as u64;
            assert!(samples <= WINDOW_MS / MIN_STEP_MS + 2, "{samples} samples");
        }
        assert_eq!(m.by_rack_pair(rack, 20_000)[0].bytes_per_sec, 100_000);
        // Another server's heartbeats alone forget a long-silent one.
        m.record(
            BlockServerId(2),
            20_000 + FORGET_MS + 1,
            reads(&[("r1", 1)]),
        );
        let servers = m.servers.lock().expect("lock");
        assert!(
            !servers.windows.contains_key(&a),
            "forgotten without a page"
        );
    }

    #[test]
    fn unknown_servers_are_left_out() {
        let m = MeasuredReads::default();
        m.record(BlockServerId(9), 0, reads(&[("r1", 5)]));
        assert!(m.by_rack_pair(|_| None, 0).is_empty());
    }

    #[test]
    fn reports_are_checked_before_they_are_kept() {
        assert_eq!(check(&[("r1".into(), 1)]), Ok(()));
        assert_eq!(
            check(&[("r1".into(), 1), ("r1".into(), 2)]),
            Err(ReportError::DuplicateRack("r1".into()))
        );
        assert_eq!(check(&[(String::new(), 1)]), Err(ReportError::BadRack));
        let long = "r".repeat(MAX_RACK_NAME + 1);
        assert_eq!(check(&[(long, 1)]), Err(ReportError::BadRack));
        let many: Vec<_> = (0..=MAX_RACKS_PER_REPORT)
            .map(|i| (format!("r{i}"), 1))
            .collect();
        assert_eq!(
            check(&many),
            Err(ReportError::TooManyRacks(MAX_RACKS_PER_REPORT + 1))
        );
    }
}
