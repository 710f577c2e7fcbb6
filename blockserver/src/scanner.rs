//! The block scanner: every stored block read back and checked against its checksums, at a
//! low byte rate, once per period (HDFS's `VolumeScanner`).
//!
//! A read verifies the chunks it touches, but a block nobody reads can rot unseen until the
//! day it is needed, perhaps when its group has already lost other blocks and that copy was
//! the one left to decode from. The scanner finds such corruption while the group can still
//! be rebuilt: it reports the copy to every metaserver as a failed read would
//! ([`Metaservers::report_corrupt`]), the active stops handing it out and reconstructs the
//! block elsewhere, and the bad copy is deleted once the group is healthy again.
//!
//! A pass walks the blocks stored when it starts, each in `SCAN_PIECE` reads, paced so that
//! the pass never reads faster than `scan-bytes-per-sec` (HDFS's default is 1 MiB/s per
//! volume, so that client I/O hardly notices); the next pass starts a `scan-period-secs`
//! after this one started (HDFS: three weeks), or right after it ends if it took longer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::BlockError;
use crate::metaservers::Metaservers;
use crate::metrics::Metrics;
use crate::store::{Listed, StoreError};
use crate::volumes::Volumes;

/// Bytes verified per read of a block.
const SCAN_PIECE: u64 = 1 << 20;

/// How fast and how often to scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanPolicy {
    /// Most bytes read per second, over all volumes; 0 turns scanning off.
    pub bytes_per_sec: u64,
    /// From the start of one pass to the start of the next.
    pub period: Duration,
}

/// Where the scanner stands, for the operator pages: the pass under way and the last one
/// ended.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ScanProgress {
    /// Scanning is on (`scan-bytes-per-sec` > 0).
    pub enabled: bool,
    pub bytes_per_sec: u64,
    pub period_ms: u64,
    /// The pass under way: when it began, the blocks it walks, those done, bytes read.
    pub pass_started_ms: Option<u64>,
    pub pass_blocks: u64,
    pub pass_done: u64,
    pub pass_bytes: u64,
    pub passes: u64,
    /// The last pass ended: when, its blocks, its corrupt finds.
    pub last_ended_ms: Option<u64>,
    pub last_blocks: u64,
    pub last_corrupt: u64,
    pub corrupt_total: u64,
}

/// The scanner's progress, shared with the pages that show it.
#[derive(Debug, Default, Clone)]
pub struct SharedProgress(Arc<std::sync::Mutex<ScanProgress>>);

impl SharedProgress {
    /// The progress now.
    pub fn get(&self) -> ScanProgress {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ScanProgress> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut ScanProgress)) {
        f(&mut self.lock());
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy)]
struct PassOutcome {
    blocks: u64,
    /// Bytes read, verified or not (what the pace counts).
    bytes: u64,
    corrupt: u64,
}

/// Starts the scanner; it stops when `stopped` turns true. Nothing when scanning is off.
pub fn spawn(
    policy: ScanPolicy,
    volumes: Arc<Volumes>,
    metaservers: Metaservers,
    metrics: Arc<Metrics>,
    progress: SharedProgress,
    mut stopped: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    progress.update(|p| {
        p.enabled = policy.bytes_per_sec > 0;
        p.bytes_per_sec = policy.bytes_per_sec;
        p.period_ms = u64::try_from(policy.period.as_millis()).unwrap_or(u64::MAX);
    });
    if policy.bytes_per_sec == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            let start = Instant::now();
            let outcome = tokio::select! {
                o = pass(&policy, &volumes, &metaservers, &metrics, &progress) => o,
                _ = stopped.wait_for(|s| *s) => return,
            };
            metrics.scan_pass();
            progress.update(|p| {
                p.passes += 1;
                p.pass_started_ms = None;
                p.last_ended_ms = Some(raftfs_runtime::simulation::now_ms());
                p.last_blocks = outcome.blocks;
                p.last_corrupt = outcome.corrupt;
            });
            tracing::info!(
                blocks = outcome.blocks,
                bytes = outcome.bytes,
                corrupt = outcome.corrupt,
                seconds = start.elapsed().as_secs_f64(),
                "block scan pass done"
            );
            let next = policy.period.saturating_sub(start.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    }))
}

/// Verifies every block stored now, paced to `policy.bytes_per_sec`.
async fn pass(
    policy: &ScanPolicy,
    volumes: &Arc<Volumes>,
    metaservers: &Metaservers,
    metrics: &Metrics,
    progress: &SharedProgress,
) -> PassOutcome {
    let start = Instant::now();
    let mut out = PassOutcome::default();
    let blocks = volumes.list();
    progress.update(|p| {
        p.pass_started_ms = Some(raftfs_runtime::simulation::now_ms());
        p.pass_blocks = blocks.len() as u64;
        p.pass_done = 0;
        p.pass_bytes = 0;
    });
    for Listed { id, length, .. } in blocks {
        let mut offset = 0;
        while offset < length {
            let len = SCAN_PIECE.min(length - offset);
            let v = volumes.clone();
            let read = tokio::task::spawn_blocking(move || v.read(id, offset, len))
                .await
                .map_err(BlockError::from)
                .and_then(|r| r);
            out.bytes += len;
            match read {
                Ok(_) => {
                    metrics.scanned(len);
                    offset += len;
                }
                Err(BlockError::Store(e @ StoreError::Corrupt { .. })) => {
                    tracing::warn!(block = %id, error = %e, "block scan found a corrupt block");
                    out.corrupt += 1;
                    metrics.scan_corrupt();
                    progress.update(|p| p.corrupt_total += 1);
                    metaservers.report_corrupt(id, format!("block scanner: {e}"));
                    break;
                }
                // Deleted since the pass began, or its volume failed (taken out of use and
                // reported by the volume check): nothing for the scanner to add.
                Err(e) => {
                    tracing::debug!(block = %id, error = %e, "block scan skipped a block");
                    break;
                }
            }
            // Paced from the pass's start: `bytes` may take no less than bytes / rate.
            let due = Duration::from_secs_f64(out.bytes as f64 / policy.bytes_per_sec as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        out.blocks += 1;
        progress.update(|p| {
            p.pass_done = out.blocks;
            p.pass_bytes = out.bytes;
        });
    }
    out
}
