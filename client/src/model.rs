//! What the client hands back: plain Rust types converted from the wire once.

use raftfs_proto as pb;
use serde::Serialize;

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
