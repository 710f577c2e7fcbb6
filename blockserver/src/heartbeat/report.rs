//! Block reports as they go on the wire: a full report split into parts of one report id, and
//! the incremental changes waiting to be sent to one metaserver.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use raftfs_proto as pb;

use crate::convert::reported;
use crate::store::{BlockId, Generation, Listed};
use crate::volumes::BlockEvent;

/// A report id not used before by this process, and unlikely to have been used by an earlier
/// run of it (the metaserver may still hold a partial report of that run).
pub fn next_report_id() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    });
    base.wrapping_add(SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The RPCs of one full report: `blocks` in parts of at most `max_per_part` blocks, all with
/// `report_id`, numbered `0..parts`. An empty report is one empty part (it still tells the
/// metaserver that this node holds nothing).
pub fn split_full_report(
    node_id: u64,
    report_id: u64,
    blocks: &[Listed],
    max_per_part: usize,
) -> Vec<pb::BlockReportRequest> {
    let max = max_per_part.max(1);
    let mut chunks: Vec<&[Listed]> = blocks.chunks(max).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let parts = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    chunks
        .into_iter()
        .zip(0u32..)
        .map(|(chunk, part)| pb::BlockReportRequest {
            node_id,
            full: true,
            report_id,
            part,
            parts,
            blocks: chunk
                .iter()
                .map(|b| reported(b.id, b.length, b.generation))
                .collect(),
            removed: Vec::new(),
        })
        .collect()
}

/// Changes not yet acknowledged by one metaserver. The net effect of the events counts: a
/// block added and then deleted before the report went out is only removed, and the reverse
/// only added (the metaserver applies `removed` before `blocks`, so a block must never be in
/// both).
#[derive(Debug, Default)]
pub struct Pending {
    /// Block -> (length, generation).
    added: BTreeMap<BlockId, (u64, Generation)>,
    removed: BTreeSet<BlockId>,
}

impl Pending {
    /// Takes one event in; returns false for an event that calls for a full report instead.
    pub fn note(&mut self, event: BlockEvent) -> bool {
        match event {
            BlockEvent::Added {
                block,
                length,
                generation,
            } => {
                self.removed.remove(&block);
                self.added.insert(block, (length, generation));
                true
            }
            BlockEvent::Removed(block) => {
                self.added.remove(&block);
                self.removed.insert(block);
                true
            }
            BlockEvent::VolumeFailed => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Forgets everything (a full report is about to cover it).
    pub fn clear(&mut self) {
        self.added.clear();
        self.removed.clear();
    }

    /// The incremental report of everything pending.
    pub fn request(&self, node_id: u64) -> pb::BlockReportRequest {
        pb::BlockReportRequest {
            node_id,
            full: false,
            report_id: 0,
            part: 0,
            parts: 1,
            blocks: self
                .added
                .iter()
                .map(|(b, (len, generation))| reported(*b, *len, *generation))
                .collect(),
            removed: self
                .removed
                .iter()
                .map(|b| reported(*b, 0, Generation::FIRST))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn blocks(n: u64) -> Vec<Listed> {
        (0..n)
            .map(|g| Listed {
                id: BlockId {
                    pool: 0,
                    group: g / 3,
                    index: (g % 3) as u16,
                },
                length: g * 10,
                generation: Generation(1 + g % 2),
            })
            .collect()
    }

    #[test]
    fn a_full_report_is_split_into_numbered_parts_holding_every_block_once() {
        for (n, max, parts) in [
            (0, 5, 1),
            (1, 5, 1),
            (5, 5, 1),
            (6, 5, 2),
            (25, 5, 5),
            (26, 5, 6),
        ] {
            let all = blocks(n);
            let reqs = split_full_report(9, 77, &all, max);
            assert_eq!(reqs.len(), parts, "{n} blocks by {max}");
            let mut seen = BTreeSet::new();
            for (i, r) in reqs.iter().enumerate() {
                assert!(r.full && r.removed.is_empty());
                assert_eq!((r.node_id, r.report_id), (9, 77));
                assert_eq!((r.part as usize, r.parts as usize), (i, parts));
                assert!(r.blocks.len() <= max);
                for b in &r.blocks {
                    assert!(
                        seen.insert((b.group, b.index, b.length, b.generation)),
                        "{b:?} twice"
                    );
                }
            }
            let want: BTreeSet<_> = all
                .iter()
                .map(|b| {
                    let (id, len) = (b.id, b.length);
                    (id.group, u32::from(id.index), len, b.generation.get())
                })
                .collect();
            assert_eq!(seen, want, "every block exactly once");
        }
    }

    #[test]
    fn report_ids_differ() {
        let a = next_report_id();
        assert_ne!(a, next_report_id());
    }

    #[test]
    fn pending_changes_keep_their_net_effect() {
        let b = |g| BlockId {
            pool: 0,
            group: g,
            index: 0,
        };
        let mut p = Pending::default();
        assert!(p.is_empty());
        assert!(p.note(BlockEvent::Added {
            block: b(1),
            length: 5,
            generation: Generation::FIRST,
        }));
        p.note(BlockEvent::Removed(b(1)));
        p.note(BlockEvent::Removed(b(2)));
        p.note(BlockEvent::Added {
            block: b(2),
            length: 7,
            generation: Generation::FIRST,
        });
        p.note(BlockEvent::Added {
            block: b(3),
            length: 1,
            generation: Generation::FIRST,
        });
        assert!(!p.note(BlockEvent::VolumeFailed));
        let r = p.request(4);
        assert!(!r.full);
        let added: Vec<_> = r.blocks.iter().map(|x| (x.group, x.length)).collect();
        let removed: Vec<_> = r.removed.iter().map(|x| x.group).collect();
        assert_eq!(added, vec![(2, 7), (3, 1)]);
        assert_eq!(removed, vec![1]);
        p.clear();
        assert!(p.is_empty());
    }
}
