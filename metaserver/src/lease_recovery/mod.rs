//! Lease recovery (HDFS's `recoverLease`): when a writer's lease runs out, the active closes
//! its files. The open last block group is cut at the longest length that every surviving
//! internal block agrees on, measured on the blockservers themselves (a writer that died
//! mid-stripe leaves internal blocks of different lengths; block reports may lag).
//!
//! - A replicated group keeps the longest surviving replica (every replica received the same
//!   bytes in the same order).
//! - An erasure-coded group keeps the stripes that at least k surviving internal blocks hold
//!   in full (HDFS's safe length): a full cell on a server means the writer had the whole
//!   stripe and its parity when it sent it; a partly written stripe is dropped, since its
//!   parity may cover cells some blocks lack.
//! - A server that answers without the block holds 0 bytes of it; one the registry holds
//!   dead holds nothing it can serve. One that is live but does not answer may hold more than
//!   any other: unless what it could hold cannot change the length (see [`decided_length`]),
//!   recovery waits and tries again, so that a few silent or empty servers never cut a group
//!   shorter than a live holder would have reported (and its real copies then swept).
//!
//! The active runs [`monitor`] and proposes `RecoverLease` with the measured length, so that
//! every replica applies the same decision.

use std::time::Duration;

use raftfs_proto as pb;
use raftfs_proto::block_data_client::BlockDataClient;

use crate::error::MetaError;
use crate::journal::{CallId, ClientId, Proposal};
use crate::namespace::blocks::{self, BlockGroup, Generation};
use crate::namespace::{Inode, InodeId, NsPath, Op, StoragePolicy, tree};
use crate::node::MetaNode;
use crate::observer::Role;
use crate::registry::Reported;
use raftfs_runtime::Outcome;

/// How long the active waits to have applied its own `BeginLeaseRecovery`.
const FENCE_APPLY_WAIT: Duration = Duration::from_secs(10);

/// How long the active waits for one blockserver's answer about one internal block (it may
/// first wait up to 10 s for a writer's open stream to finalize).
const INFO_TIMEOUT: Duration = Duration::from_secs(15);

/// A server's answer to `RecoverBlock`.
enum Answer {
    /// Its block, restamped, has this many bytes.
    Holds(u64),
    /// It has no block (nor stream) of the group.
    Nothing,
    /// Its block's checksum file is damaged: nothing usable.
    Damaged,
}

/// The length of the open group that every surviving internal block agrees on, from
/// `(index, length)` of each survivor; `None` when too few survived (an erasure-coded group
/// with fewer than k).
pub fn agreed_length(policy: &StoragePolicy, survivors: &[(u32, u64)]) -> Option<u64> {
    match policy {
        // Every replica received the same bytes in the same order: the longest one holds
        // every byte any of them has.
        StoragePolicy::Replicated(_) => survivors.iter().map(|(_, l)| *l).max(),
        StoragePolicy::ErasureCoded { data, parity, .. } => {
            let (k, m) = (usize::from(*data), usize::from(*parity));
            let layout = policy.layout()?;
            let mut indices: Vec<u32> = survivors.iter().map(|(i, _)| *i).collect();
            indices.sort_unstable();
            indices.dedup();
            if indices.len() < k || indices.iter().any(|i| *i as usize >= k + m) {
                return None;
            }
            // A full cell of stripe s on a server means the writer had the whole stripe and
            // its parity when it sent it: the stripes that at least k survivors hold in full
            // are decodable and consistent. A partly written stripe is never kept (HDFS's
            // safe length): its parity may cover cells that some blocks lack.
            let mut full: Vec<u64> = survivors.iter().map(|(_, l)| l / layout.cell()).collect();
            full.sort_unstable_by(|a, b| b.cmp(a));
            let stripes = *full.get(k - 1)?;
            Some(stripes.saturating_mul(layout.stripe_data()))
        }
    }
}

/// The agreed length when the servers that did not answer cannot change it: computed once
/// without them and once as if each held a full internal block of `block_size`; `None` (wait)
/// when the two differ or too few answered.
pub fn decided_length(
    policy: &StoragePolicy,
    answered: &[(u32, u64)],
    silent: &[u32],
    block_size: u64,
) -> Option<u64> {
    let without = agreed_length(policy, answered)?;
    if silent.is_empty() {
        return Some(without);
    }
    let mut most = answered.to_vec();
    most.extend(silent.iter().map(|i| (*i, block_size)));
    (agreed_length(policy, &most)? == without).then_some(without)
}

/// Asks the servers of `group` to recover their internal blocks at `generation` (the
/// group's next: `RecoverBlock` ends the writer's open streams, then restamps what arrived)
/// and how long they are; returns the agreed length. Restamping before the entry is
/// proposed makes the survivors the copies of the recovered group the moment it commits; a
/// copy the recovery did not reach keeps the old stamp and is never served or counted. A
/// recovery whose entry never commits leaves its survivors stamped one ahead, which the
/// next attempt (computing the same generation from the same state) finds already done.
pub async fn measure(
    node: &MetaNode,
    file: &Inode,
    group: &BlockGroup,
    generation: Generation,
) -> Result<Option<u64>, MetaError> {
    let replicated = matches!(file.policy, StoragePolicy::Replicated(_));
    let dead = node.blocks.registry.dead_nodes();
    let mut asks = Vec::new();
    let mut silent = Vec::new();
    let mut dead_indices = Vec::new();
    let ring = crate::block_tokens::signing_keys(node, &node.tokens).await?;
    let token =
        crate::block_tokens::for_recovery(&ring, &node.tokens, node.pool(), group, generation);
    for (i, target) in group.targets.iter().copied().enumerate() {
        let index = if replicated { 0 } else { i as u32 };
        if dead.contains(&target) {
            dead_indices.push(index);
            continue;
        }
        let Some((addr, _)) = node.blocks.registry.node(target) else {
            // Not registered (yet, after a failover): it may hold the block.
            silent.push(index);
            continue;
        };
        let block = pb::BlockRef {
            group: group.id.into(),
            index,
        };
        let token = token.clone();
        asks.push(async move {
            let ask = async {
                let channel = node.dialer.endpoint(&addr).ok()?.connect().await.ok()?;
                let mut client = BlockDataClient::new(channel);
                match client
                    .recover_block(pb::RecoverBlockRequest {
                        block: Some(block),
                        token,
                    })
                    .await
                {
                    Ok(info) => Some(Answer::Holds(info.into_inner().length)),
                    // It answered, with no stream of the block open: it holds nothing of it.
                    Err(s) if s.code() == tonic::Code::NotFound => Some(Answer::Nothing),
                    // Its copy's checksums are damaged: nothing usable either.
                    Err(s) if s.code() == tonic::Code::DataLoss => Some(Answer::Damaged),
                    Err(s) => {
                        tracing::info!(%addr, index, error = %s.message(), "recover block failed");
                        None
                    }
                }
            };
            (
                index,
                target,
                tokio::time::timeout(INFO_TIMEOUT, ask).await.ok().flatten(),
            )
        });
    }
    let mut survivors = Vec::new();
    let mut damaged = false;
    for (index, target, answer) in futures::future::join_all(asks).await {
        match answer {
            Some(Answer::Holds(length)) => {
                survivors.push((index, length));
                // The restamped copy counts here at once: its server's report may arrive
                // after the entry commits, and the recovered group must be readable then.
                let copy = Reported {
                    group: group.id,
                    index,
                    length,
                    generation,
                };
                node.blocks.registry.restamped(target, copy);
            }
            Some(Answer::Nothing) => survivors.push((index, 0)),
            Some(Answer::Damaged) => {
                damaged = true;
                survivors.push((index, 0));
            }
            None => silent.push(index),
        }
    }
    let mut decided = decided_length(&file.policy, &survivors, &silent, file.block_size);
    if damaged {
        // A damaged copy counts as holding nothing only when the dead servers, back with
        // whole blocks, could not change the length either: otherwise an outage and one
        // bad checksum file would cut a group their return could still decode.
        let mut unknown = silent.clone();
        unknown.extend_from_slice(&dead_indices);
        let with_dead = decided_length(&file.policy, &survivors, &unknown, file.block_size);
        decided = decided.filter(|d| with_dead == Some(*d));
    }
    tracing::info!(
        group = %group.id,
        %generation,
        ?survivors,
        ?silent,
        ?decided,
        "lease recovery measured the open group"
    );
    Ok(decided.map(|l| l.min(file.policy.group_capacity(file.block_size))))
}

/// The `RecoverLease` entry for `path`: with the open group's measured length, if it has one.
/// Fails (`Unavailable`) when too few internal blocks answered; the caller retries later.
pub async fn prepare(
    node: &MetaNode,
    path: &NsPath,
    expired: Option<(InodeId, &str)>,
) -> Result<Op, MetaError> {
    let (file, open) = read_open_group(node, path).await?;
    let (file, open) = match open {
        // Fence the writer before its streams are ended: from `BeginLeaseRecovery` on, its
        // `AddBlock` and `Complete` are refused, so it cannot close the group at a length no
        // copy has (nor open another one) while the servers restamp what arrived. Proposed
        // at every attempt: it renews the recovery's own lease, so that a recovery that
        // cannot finish yet is tried again a lease later, not at every round.
        Some(_) => {
            let holder = file
                .under_construction
                .as_ref()
                .map(|uc| uc.holder.clone())
                .unwrap_or_default();
            let (inode, holder, force) = match expired {
                Some((inode, holder)) => (inode, holder.to_owned(), false),
                // A caller's `RecoverLease`: whoever writes the file now.
                None => (file.id, holder, true),
            };
            begin(node, path, inode, holder, force).await?;
            read_open_group(node, path).await?
        }
        None => (file, open),
    };
    let open = open.as_ref();
    let last_group_length = match open {
        Some((generation, group)) => Some(
            measure(node, &file, group, *generation)
                .await?
                .ok_or_else(|| {
                    MetaError::Unavailable(format!(
                        "{path}: too few internal blocks of group {} answered to recover it",
                        group.id
                    ))
                })?,
        ),
        None => None,
    };
    Ok(Op::RecoverLease {
        path: path.clone(),
        last_group_length: last_group_length.zip(open.map(|(_, g)| g.id)),
    })
}

/// The file at `path` and its open group, with the generation recovery moves it to.
async fn read_open_group(
    node: &MetaNode,
    path: &NsPath,
) -> Result<(Inode, Option<(Generation, BlockGroup)>), MetaError> {
    let path = path.clone();
    node.read_local(move |kv| -> Result<_, MetaError> {
        let file = tree::stat(kv, &path)?;
        let open = match blocks::open_group(kv, &file)? {
            // The entry moves the group to its next generation (`blocks::recover_open`).
            Some(g) => Some((blocks::generation(kv, g.id)?.next(), g)),
            None => None,
        };
        Ok((file, open))
    })
    .await
}

/// Journals `BeginLeaseRecovery` for `path` and waits for it to apply here.
async fn begin(
    node: &MetaNode,
    path: &NsPath,
    inode: InodeId,
    holder: String,
    force: bool,
) -> Result<(), MetaError> {
    let proposal = Proposal {
        client: ClientId::default(),
        call_id: CallId::UNCACHED,
        op: Op::BeginLeaseRecovery {
            path: path.clone(),
            inode,
            holder,
            force,
        },
        access: None,
    };
    let (index, applied) = node.proposer.propose(proposal).await?;
    applied.map_err(|source| MetaError::Namespace {
        source,
        state_id: index,
    })?;
    tracing::info!(%path, index, "lease recovery began: the writer is fenced");
    crate::observer::wait_applied(node.sm.applied_watch(), index, FENCE_APPLY_WAIT)
        .await
        .map(drop)
}

/// One round of lease recovery (a worker of the active, every `lease-check-ms`): closes the
/// files of every expired lease. Returns the files closed.
pub async fn recovery_round(node: &MetaNode) -> Result<Outcome, MetaError> {
    if node.role() != Role::Active {
        return Ok(Outcome::Skipped);
    }
    recover_expired(node)
        .await
        .map(|items| Outcome::Done { items })
}

/// Closes the files of expired leases; returns how many it closed.
async fn recover_expired(node: &MetaNode) -> Result<u64, MetaError> {
    let now = crate::journal::proposer::now_ms();
    let expired = node
        .read_local(move |kv| -> Result<_, MetaError> {
            let mut out = Vec::new();
            for (holder, files) in tree::expired_leases(kv, now)? {
                for id in files {
                    if let Some(path) = tree::path_of(kv, id)? {
                        out.push((holder.clone(), id, path));
                    }
                }
            }
            Ok(out)
        })
        .await?;
    let mut closed = 0;
    for (holder, id, path) in expired {
        let Ok(path) = NsPath::parse(&path) else {
            continue;
        };
        let op = match prepare(node, &path, Some((id, &holder))).await {
            Ok(op) => op,
            Err(e) => {
                tracing::warn!(%holder, %path, error = %e, "lease recovery postponed");
                continue;
            }
        };
        let proposal = Proposal {
            client: ClientId::default(),
            call_id: CallId::UNCACHED,
            op,
            access: None,
        };
        match node.proposer.propose(proposal).await {
            Ok((index, Ok(_))) => {
                closed += 1;
                tracing::info!(%holder, %path, index, "lease recovered: file closed");
            }
            Ok((_, Err(e))) => tracing::info!(%holder, %path, error = %e, "lease recovery refused"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::inode::EcCodec;
    use raftfs_core::layout::Layout;

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
    fn replicas_agree_on_the_longest() {
        let p = StoragePolicy::Replicated(3);
        assert_eq!(agreed_length(&p, &[(0, 10), (0, 7), (0, 12)]), Some(12));
        assert_eq!(agreed_length(&p, &[]), None);
    }

    #[test]
    fn only_stripes_that_k_survivors_hold_in_full_are_kept() {
        let p = rs(3, 2, 1);
        let layout = Layout::new(3, 2, 1024).expect("layout");
        // Every block finished 2 full stripes; the third reached blocks 0 and 1 and half of 3.
        let mut l = lengths(&layout, 2 * 3 * 1024, 5);
        l[0].1 += 1024;
        l[1].1 += 1024;
        l[3].1 += 512;
        assert_eq!(agreed_length(&p, &l), Some(2 * 3 * 1024));
        // A stripe only parity reached is not kept either (its parity covers cells that
        // the data blocks lack): the reviewer's case.
        let l = vec![(1, 2048), (2, 2048), (3, 3072)];
        assert_eq!(agreed_length(&p, &l), Some(2 * 3 * 1024));
        // A block the writer gave up on early does not drag the group down: 3 of the
        // survivors hold 5 stripes.
        let l = vec![(0, 5120), (1, 1024), (2, 5120), (3, 5120), (4, 6144)];
        assert_eq!(agreed_length(&p, &l), Some(5 * 3 * 1024));
        // Too few survivors.
        assert_eq!(agreed_length(&p, &l[..2]), None);
    }

    #[test]
    fn a_short_last_stripe_is_not_kept() {
        let p = rs(3, 2, 1);
        let layout = Layout::new(3, 2, 1024).expect("layout");
        let all = lengths(&layout, 2 * 3072 + 100, 5);
        assert_eq!(agreed_length(&p, &all), Some(2 * 3072));
    }

    /// Issue 17: empty or silent servers never decide a length shorter than a live holder
    /// would report; recovery waits instead.
    #[test]
    fn silent_or_empty_servers_never_cut_a_group_short() {
        let block = 1 << 20;
        // Replicated: two servers answer "nothing", the holder is silent: wait, not 0.
        let p = StoragePolicy::Replicated(3);
        assert_eq!(decided_length(&p, &[(0, 0), (0, 0)], &[0], block), None);
        // A holder answered, another is silent: replicas receive in parallel, so the silent
        // one may hold more; wait, unless the answer is already a full block.
        assert_eq!(decided_length(&p, &[(0, 4096), (0, 0)], &[0], block), None);
        assert_eq!(decided_length(&p, &[(0, block)], &[0], block), Some(block));
        assert_eq!(
            decided_length(&p, &[(0, 4096), (0, 0)], &[], block),
            Some(4096)
        );
        // RS-3-2 on 5 servers, 3 stripes written, two data holders silent: the three that
        // answer cannot tell (2 with 3 full cells, parity 4 empty): wait, never 0.
        let rs32 = rs(3, 2, 1);
        let answered = [(2, 3 * 1024), (3, 3 * 1024), (4, 0)];
        assert_eq!(
            agreed_length(&rs32, &answered),
            Some(0),
            "what the old rule decided"
        );
        assert_eq!(decided_length(&rs32, &answered, &[0, 1], block), None);
        // Once they answer, the three stripes.
        let all = [
            (0, 3 * 1024),
            (1, 3 * 1024),
            (2, 3 * 1024),
            (3, 3 * 1024),
            (4, 3 * 1024),
        ];
        assert_eq!(decided_length(&rs32, &all, &[], block), Some(3 * 3 * 1024));
        // A silent server cannot raise what the others agree on when a further stripe would
        // need k full cells and only the silent one could hold one: decided without it.
        assert_eq!(
            decided_length(&rs32, &all[..4], &[4], block),
            Some(3 * 3 * 1024)
        );
    }
}
