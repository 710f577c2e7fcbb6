//! Lease recovery (HDFS's `recoverLease`): when a writer's lease runs out, the active closes
//! its files. The open last block group is cut at the longest length that every surviving
//! internal block agrees on, measured on the blockservers themselves (a writer that died
//! mid-stripe leaves internal blocks of different lengths; block reports may lag).
//!
//! - A replicated group keeps the shortest surviving replica's length (every replica holds
//!   at least that much of the same bytes, as HDFS's block recovery does).
//! - An erasure-coded group needs at least k surviving internal blocks. If the survivors'
//!   lengths are exactly those of one group length (the writer finished its last, possibly
//!   short, stripe), that length is kept; otherwise only the stripes every survivor holds in
//!   full: a stripe cut in the middle would have parity computed over cells some survivors
//!   lack, and a degraded read of it would decode garbage.
//!
//! The active runs [`monitor`] and proposes `RecoverLease` with the measured length, so that
//! every replica applies the same decision.

use std::time::Duration;

use raftfs_client::striping::Layout;
use raftfs_proto as pb;
use raftfs_proto::block_data_client::BlockDataClient;

use crate::error::MetaError;
use crate::journal::rocks::SnapshotKv;
use crate::journal::{ClientId, Proposal};
use crate::namespace::blocks::{self, BlockGroup};
use crate::namespace::{Inode, NsPath, Op, StoragePolicy, tree};
use crate::observer::Role;
use crate::service::MetaNode;

/// How long the active waits for one blockserver's answer about one internal block.
const INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// The length of the open group that every surviving internal block agrees on, from
/// `(index, length)` of each survivor; `None` when too few survived (an erasure-coded group
/// with fewer than k).
pub fn agreed_length(policy: &StoragePolicy, survivors: &[(u32, u64)]) -> Option<u64> {
    match policy {
        StoragePolicy::Replicated(_) => survivors.iter().map(|(_, l)| *l).min(),
        StoragePolicy::ErasureCoded {
            data,
            parity,
            cell_kib,
            ..
        } => {
            let (k, m) = (usize::from(*data), usize::from(*parity));
            let cell = u64::from(*cell_kib) * 1024;
            let layout = Layout::new(k, m, cell).ok()?;
            let mut indices: Vec<u32> = survivors.iter().map(|(i, _)| *i).collect();
            indices.sort_unstable();
            indices.dedup();
            if indices.len() < k || indices.iter().any(|i| *i as usize >= k + m) {
                return None;
            }
            let full_cells = survivors.iter().map(|(_, l)| l / cell).min()?;
            let full = full_cells.saturating_mul(layout.stripe_data());
            // The longest length consistent with the data blocks that survived, and whether
            // every survivor has exactly that length's bytes.
            // Block lengths only grow with the group length, so the longest length no
            // survivor is too short for, and the shortest no survivor is too long for, are
            // found by bisection. When they meet, the survivors agree on exactly one length
            // (the writer finished its last stripe); when they do not (lost data blocks leave
            // the end of a short stripe unknown) only the full stripes are certain.
            let top = full.saturating_add(layout.stripe_data());
            let longest = bisect(full, top, |len| {
                survivors
                    .iter()
                    .all(|(i, l)| layout.block_len(len, *i as usize) <= *l)
            });
            // The first length at which every survivor is covered: one past the last at
            // which some survivor still holds more than the layout gives it.
            let covered = |len: u64| {
                survivors
                    .iter()
                    .all(|(i, l)| layout.block_len(len, *i as usize) >= *l)
            };
            let below = bisect(full, top, |len| !covered(len));
            let shortest = if covered(below) {
                below
            } else {
                below.saturating_add(1)
            };
            let exact = longest == shortest
                && survivors
                    .iter()
                    .all(|(i, l)| layout.block_len(longest, *i as usize) == *l);
            let candidate = longest;
            Some(if exact { candidate } else { full })
        }
    }
}

/// The largest `x` in `[lo, hi]` with `pred(x)`, for a predicate true up to some point and
/// false after it (`lo` when it holds nowhere).
fn bisect(mut lo: u64, mut hi: u64, pred: impl Fn(u64) -> bool) -> u64 {
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if pred(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Asks the servers of `group` how long their internal blocks are; returns the agreed length.
pub async fn measure(
    node: &MetaNode,
    file: &Inode,
    group: &BlockGroup,
) -> Result<Option<u64>, MetaError> {
    let replicated = matches!(file.policy, StoragePolicy::Replicated(_));
    let mut asks = Vec::new();
    for (i, target) in group.targets.iter().enumerate() {
        let index = if replicated { 0 } else { i as u32 };
        let Some((addr, _)) = node.registry.node(*target) else {
            continue;
        };
        let block = pb::BlockRef {
            group: group.id,
            index,
        };
        asks.push(async move {
            let ask = async {
                let mut client = BlockDataClient::connect(format!("http://{addr}"))
                    .await
                    .ok()?;
                let info = client
                    .block_info(pb::BlockInfoRequest { block: Some(block) })
                    .await
                    .ok()?;
                Some((index, info.into_inner().length))
            };
            tokio::time::timeout(INFO_TIMEOUT, ask).await.ok().flatten()
        });
    }
    let survivors: Vec<(u32, u64)> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    tracing::info!(
        group = group.id,
        ?survivors,
        "lease recovery measured the open group"
    );
    if survivors.is_empty() {
        // Nothing of the group reached a disk (the writer died before its first byte): the
        // group is empty.
        return Ok(Some(0));
    }
    Ok(agreed_length(&file.policy, &survivors)
        .map(|l| l.min(blocks::capacity(&file.policy, file.block_size))))
}

/// The `RecoverLease` entry for `path`: with the open group's measured length, if it has one.
/// Fails (`Unavailable`) when too few internal blocks answered; the caller retries later.
pub async fn prepare(node: &MetaNode, path: &NsPath) -> Result<Op, MetaError> {
    let (file, open) = {
        let path = path.clone();
        let sm = node.sm.clone();
        tokio::task::spawn_blocking(move || -> Result<_, MetaError> {
            let db = sm.db();
            let kv = SnapshotKv::new(&db);
            let file = tree::stat(&kv, &path)?;
            let open = blocks::of_file(&kv, &file)?
                .pop()
                .filter(|g| g.length.is_none());
            Ok((file, open))
        })
        .await
        .map_err(|e| MetaError::Internal(format!("lease recovery read: {e}")))??
    };
    let last_group_length = match &open {
        Some(group) => Some(measure(node, &file, group).await?.ok_or_else(|| {
            MetaError::Unavailable(format!(
                "{path}: too few internal blocks of group {} answered to recover it",
                group.id
            ))
        })?),
        None => None,
    };
    Ok(Op::RecoverLease {
        path: path.clone(),
        last_group_length,
    })
}

/// On the active, every `every`: recovers the files of every expired lease.
pub async fn monitor(node: MetaNode, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if node.role() != Role::Active {
            continue;
        }
        if let Err(e) = recover_expired(&node).await {
            tracing::warn!(error = %e, "lease recovery round failed");
        }
    }
}

async fn recover_expired(node: &MetaNode) -> Result<(), MetaError> {
    let now = crate::journal::proposer::now_ms();
    let sm = node.sm.clone();
    let expired = tokio::task::spawn_blocking(move || -> Result<_, MetaError> {
        let db = sm.db();
        let kv = SnapshotKv::new(&db);
        let mut out = Vec::new();
        for (holder, files) in tree::expired_leases(&kv, now)? {
            for id in files {
                if let Some(path) = tree::path_of(&kv, id)? {
                    out.push((holder.clone(), path));
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| MetaError::Internal(format!("lease scan: {e}")))??;
    for (holder, path) in expired {
        let Ok(path) = NsPath::parse(&path) else {
            continue;
        };
        let op = match prepare(node, &path).await {
            Ok(op) => op,
            Err(e) => {
                tracing::warn!(%holder, %path, error = %e, "lease recovery postponed");
                continue;
            }
        };
        let proposal = Proposal {
            client: ClientId::default(),
            call_id: 0,
            op,
        };
        match node.proposer.propose(proposal).await {
            Ok((index, Ok(_))) => {
                tracing::info!(%holder, %path, index, "lease recovered: file closed");
            }
            Ok((_, Err(e))) => tracing::info!(%holder, %path, error = %e, "lease recovery refused"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::inode::EcCodec;

    fn rs(k: u8, m: u8, cell_kib: u32) -> StoragePolicy {
        StoragePolicy::ErasureCoded {
            codec: EcCodec::Rs,
            data: k,
            parity: m,
            cell_kib,
        }
    }

    fn lengths(layout: &Layout, len: u64, blocks: usize) -> Vec<(u32, u64)> {
        (0..blocks)
            .map(|i| (i as u32, layout.block_len(len, i)))
            .collect()
    }

    #[test]
    fn replicas_agree_on_the_shortest() {
        let p = StoragePolicy::Replicated(3);
        assert_eq!(agreed_length(&p, &[(0, 10), (0, 7), (0, 12)]), Some(7));
        assert_eq!(agreed_length(&p, &[]), None);
    }

    #[test]
    fn a_finished_group_keeps_its_exact_length_even_with_a_short_last_stripe() {
        let p = rs(3, 2, 1);
        let layout = Layout::new(3, 2, 1024).expect("layout");
        for len in [
            0,
            1,
            1023,
            1024,
            1025,
            3 * 1024,
            3 * 1024 + 5,
            7 * 1024 + 2048 + 3,
        ] {
            let all = lengths(&layout, len, 5);
            assert_eq!(agreed_length(&p, &all), Some(len), "len {len}");
            // Losing the parity blocks changes nothing.
            assert_eq!(
                agreed_length(&p, &all[..3]),
                Some(len),
                "len {len}, lost 3,4"
            );
            // Losing data blocks may hide where a short stripe ended: then only the full
            // stripes are kept, never more than was written.
            let got = agreed_length(&p, &all[2..]).expect("3 survivors");
            assert!(got == len || got == len / 3072 * 3072, "len {len}: {got}");
        }
    }

    #[test]
    fn an_interrupted_stripe_is_dropped() {
        let p = rs(3, 2, 1);
        let layout = Layout::new(3, 2, 1024).expect("layout");
        // Two full stripes written everywhere; the third reached blocks 0 and 1 and half of 3.
        let mut l = lengths(&layout, 2 * 3 * 1024, 5);
        l[0].1 += 1024;
        l[1].1 += 1024;
        l[3].1 += 512;
        assert_eq!(agreed_length(&p, &l), Some(2 * 3 * 1024));
        // Too few survivors.
        assert_eq!(agreed_length(&p, &l[..2]), None);
    }
}
