//! What the client hands back: plain Rust types converted from the wire once.

use raftfs_core::fsck::{FileHealth, FsckReport};
use raftfs_core::namespace::throttle::ThrottleChange;
use raftfs_core::policy::PolicyError;
use raftfs_proto as pb;
use serde::Serialize;

use crate::error::ClientError;

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Directory,
    File,
    Symlink,
}

/// `stat` of a file, directory or symlink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStatus {
    pub id: u64,
    pub name: String,
    pub kind: FileKind,
    pub permission: u32,
    pub owner: String,
    pub group: String,
    pub mtime_ms: u64,
    pub atime_ms: u64,
    pub storage_policy: String,
    pub length: u64,
    pub under_construction: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lease_holder: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub symlink_target: String,
    pub children: u64,
    /// Bytes per internal block (files).
    pub block_size: u64,
    /// Block groups (files).
    pub block_groups: u64,
}

impl From<pb::Inode> for FileStatus {
    fn from(i: pb::Inode) -> Self {
        let kind = match pb::InodeKind::try_from(i.kind) {
            Ok(pb::InodeKind::Directory) => FileKind::Directory,
            Ok(pb::InodeKind::Symlink) => FileKind::Symlink,
            _ => FileKind::File,
        };
        FileStatus {
            id: i.id,
            name: i.name,
            kind,
            permission: i.permission,
            owner: i.owner,
            group: i.group,
            mtime_ms: i.mtime_ms,
            atime_ms: i.atime_ms,
            storage_policy: i.storage_policy,
            length: i.length,
            under_construction: i.under_construction,
            lease_holder: i.lease_holder,
            symlink_target: i.symlink_target,
            children: i.children,
            block_size: i.block_size,
            block_groups: i.block_groups,
        }
    }
}

impl FileStatus {
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Directory
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub entries: Vec<FileStatus>,
    pub has_more: bool,
}

/// `hdfs dfs -count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ContentSummary {
    pub directories: u64,
    pub files: u64,
    pub symlinks: u64,
    pub length: u64,
}

/// One member in `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    pub id: u64,
    pub addr: String,
    pub role: String,
    pub applied_index: u64,
    pub lag: u64,
}

/// `metactl cluster status --json` (DESIGN §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    pub leader: u64,
    pub term: u64,
    pub committed_index: u64,
    pub members: Vec<MemberStatus>,
    /// The active's background workers.
    pub workers: Vec<WorkerStatus>,
}

/// One background worker of a metaserver (redundancy scan, garbage sweep, lease recovery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    /// `"idle"`, `"running"` or `"stopped"`.
    pub state: String,
    pub period_ms: u64,
    /// Rounds that ran (rounds skipped off the active are not counted).
    pub runs: u64,
    pub errors: u64,
    /// Items handled by every round, and by the last one.
    pub items: u64,
    pub last_items: u64,
    /// When the last round ended, ms since the epoch.
    pub last_run_ms: Option<u64>,
    /// The last round's error, if it failed.
    pub last_error: Option<String>,
}

impl From<pb::WorkerStatus> for WorkerStatus {
    fn from(w: pb::WorkerStatus) -> Self {
        WorkerStatus {
            name: w.name,
            state: w.state,
            period_ms: w.period_ms,
            runs: w.runs,
            errors: w.errors,
            items: w.items,
            last_items: w.last_items,
            last_run_ms: (w.last_run_ms != 0).then_some(w.last_run_ms),
            last_error: (!w.last_error.is_empty()).then_some(w.last_error),
        }
    }
}

/// One node's own view (`Admin.NodeStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub id: u64,
    pub addr: String,
    pub state: String,
    pub term: u64,
    pub leader: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    pub snapshots_installed: u64,
    /// This member's background workers.
    pub workers: Vec<WorkerStatus>,
}

impl From<pb::NodeStatusResponse> for NodeStatus {
    fn from(n: pb::NodeStatusResponse) -> Self {
        NodeStatus {
            id: n.id,
            addr: n.addr,
            state: n.state,
            term: n.term,
            leader: n.leader,
            applied_index: n.applied_index,
            last_log_index: n.last_log_index,
            snapshot_index: n.snapshot_index,
            purged_index: n.purged_index,
            snapshots_installed: n.snapshots_installed,
            workers: n.workers.into_iter().map(WorkerStatus::from).collect(),
        }
    }
}

/// One member of the cluster, as `Admin.Members` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: u64,
    pub addr: String,
    /// `"voter"` or `"observer"`.
    pub role: String,
}

impl From<pb::Member> for Member {
    fn from(m: pb::Member) -> Self {
        Member {
            id: m.id,
            addr: m.addr,
            role: m.role,
        }
    }
}

/// `Namespace.Fsck`'s reply as the domain report; a policy name the client cannot parse is a
/// protocol error, not a report.
pub(crate) fn fsck_report(r: pb::FsckResponse) -> Result<FsckReport, ClientError> {
    let file = |f: pb::FsckFile| -> Result<FileHealth, ClientError> {
        Ok(FileHealth {
            policy: f.policy.parse().map_err(|e: PolicyError| {
                ClientError::Rpc(tonic::Status::internal(format!(
                    "fsck reply for {}: {e}",
                    f.path
                )))
            })?,
            path: f.path,
            length: f.length,
            under_construction: f.under_construction,
            groups: f.groups,
            degraded: f.degraded,
            missing: f.missing,
            internal_blocks: f.internal_blocks,
            stored_bytes: f.stored_bytes,
        })
    };
    Ok(FsckReport {
        files: r.files,
        groups: r.groups,
        healthy: r.healthy,
        degraded: r.degraded,
        missing: r.missing,
        unhealthy: r
            .unhealthy
            .into_iter()
            .map(file)
            .collect::<Result<_, _>>()?,
        all: r.all.into_iter().map(file).collect::<Result<_, _>>()?,
        live_blockservers: r.live_blockservers,
    })
}

/// A change of the reconstruction budgets, for the wire.
pub(crate) fn throttle_change_pb(c: &ThrottleChange) -> pb::SetThrottleOp {
    let pair = |(from, to, bytes_per_sec): &(String, String, u64)| pb::RackPairBudget {
        from: from.clone(),
        to: to.clone(),
        bytes_per_sec: *bytes_per_sec,
    };
    pb::SetThrottleOp {
        node_bytes_per_sec: c.node_bytes_per_sec,
        rack_pairs: c.rack_pairs.iter().map(pair).collect(),
        racks: c
            .racks
            .iter()
            .map(|(rack, datacenter)| pb::RackDatacenter {
                rack: rack.clone(),
                datacenter: datacenter.clone(),
            })
            .collect(),
        datacenter_pairs: c.datacenter_pairs.iter().map(pair).collect(),
    }
}
