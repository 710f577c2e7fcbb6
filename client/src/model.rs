//! What the client hands back: plain Rust types converted from the wire once.

use raftfs_core::federation::{Destination, MountTable, NameserviceId};
use raftfs_core::fsck::{FileHealth, FsckReport};
use raftfs_core::id::{BlockServerId, GroupId, MemberId};
use raftfs_core::member::MemberRole;
use raftfs_core::namespace::NsPath;
use raftfs_core::namespace::throttle::{ThrottleChange, ThrottleSettings};
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

pub use raftfs_core::namespace::snapshot::{DiffEntry, DiffKind};

/// A line of a snapshot diff from the wire; a kind this client does not know is an error
/// (never guessed).
pub(crate) fn diff_entry(e: pb::DiffEntry) -> Result<DiffEntry, ClientError> {
    let kind = match pb::DiffKind::try_from(e.kind) {
        Ok(pb::DiffKind::Created) => DiffKind::Created,
        Ok(pb::DiffKind::Deleted) => DiffKind::Deleted,
        Ok(pb::DiffKind::Modified) => DiffKind::Modified,
        Ok(pb::DiffKind::Renamed) => DiffKind::Renamed,
        _ => {
            return Err(ClientError::Rpc(tonic::Status::internal(format!(
                "a snapshot diff entry of unknown kind {}",
                e.kind
            ))));
        }
    };
    Ok(DiffEntry {
        kind,
        path: e.path,
        target: (kind == DiffKind::Renamed).then_some(e.target),
        content: e.content,
    })
}

/// `hdfs dfs -count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ContentSummary {
    pub directories: u64,
    pub files: u64,
    pub symlinks: u64,
    pub length: u64,
    /// Bytes stored: copies and parity included.
    pub space_consumed: u64,
}

/// One member in `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    pub id: MemberId,
    pub addr: String,
    pub role: MemberRole,
    pub applied_index: u64,
    pub lag: u64,
}

/// `metactl cluster status --json` (DESIGN §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    pub leader: MemberId,
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
    pub id: MemberId,
    pub addr: String,
    pub state: String,
    pub term: u64,
    /// The active this member follows; 0 when it knows none.
    pub leader: MemberId,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    pub snapshots_installed: u64,
    /// This member's background workers.
    pub workers: Vec<WorkerStatus>,
    /// This member's binary, and the newest format level it writes (DESIGN §11).
    pub binary_version: String,
    pub newest_level: u32,
    /// The cluster's format level and when an upgrade was prepared, as this member's state
    /// holds them.
    pub level: u32,
    pub upgrade_prepared_ms: Option<u64>,
}

impl From<pb::NodeStatusResponse> for NodeStatus {
    fn from(n: pb::NodeStatusResponse) -> Self {
        NodeStatus {
            id: MemberId(n.id),
            addr: n.addr,
            state: n.state,
            term: n.term,
            leader: MemberId(n.leader),
            applied_index: n.applied_index,
            last_log_index: n.last_log_index,
            snapshot_index: n.snapshot_index,
            purged_index: n.purged_index,
            snapshots_installed: n.snapshots_installed,
            workers: n.workers.into_iter().map(WorkerStatus::from).collect(),
            binary_version: n.binary_version,
            newest_level: n.newest_level,
            level: n.level,
            upgrade_prepared_ms: (n.upgrade_prepared_ms > 0).then_some(n.upgrade_prepared_ms),
        }
    }
}

/// One member of the cluster, as `Admin.Members` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: MemberId,
    pub addr: String,
    pub role: MemberRole,
}

/// A role name from a metaserver; one the client does not know is a protocol error.
fn role(name: &str) -> Result<MemberRole, ClientError> {
    name.parse()
        .map_err(|e| ClientError::Rpc(tonic::Status::internal(format!("member list: {e}"))))
}

/// `Admin.Members`' (or a membership change's) members.
pub(crate) fn members(ms: Vec<pb::Member>) -> Result<Vec<Member>, ClientError> {
    ms.into_iter()
        .map(|m| {
            Ok(Member {
                id: MemberId(m.id),
                role: role(&m.role)?,
                addr: m.addr,
            })
        })
        .collect()
}

/// `Admin.ClusterStatus`' reply.
pub(crate) fn cluster_status(r: pb::ClusterStatusResponse) -> Result<ClusterStatus, ClientError> {
    Ok(ClusterStatus {
        leader: MemberId(r.leader),
        term: r.term,
        committed_index: r.committed_index,
        members: r
            .members
            .into_iter()
            .map(|m| {
                Ok(MemberStatus {
                    id: MemberId(m.id),
                    role: role(&m.role)?,
                    addr: m.addr,
                    applied_index: m.applied_index,
                    lag: m.lag,
                })
            })
            .collect::<Result<_, ClientError>>()?,
        workers: r.workers.into_iter().map(WorkerStatus::from).collect(),
    })
}

/// Where one internal block of a group is (or is to be written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockLocation {
    /// The internal block: 0 for a replica, 0..k+m for the cells of an erasure-coded group.
    pub index: u32,
    pub node: BlockServerId,
    /// The blockserver's data address.
    pub addr: String,
    pub rack: String,
}

/// A block group of a file as a reader or writer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocatedGroup {
    pub id: GroupId,
    /// The group's position in the file, and the file offset of its first byte.
    pub index: u32,
    pub offset: u64,
    /// Data bytes in the group (0 while it is being written).
    pub length: u64,
    /// The servers the active chose when it allocated the group, one per internal block
    /// (replicated: one per replica, all index 0).
    pub targets: Vec<BlockLocation>,
    /// Where the internal blocks are known to be complete, from block reports (reads).
    pub locations: Vec<BlockLocation>,
    /// The block access token the metaserver signed for this caller (DESIGN §9): read for a
    /// located group, write and read for one just allocated. Never printed or serialized.
    #[serde(skip)]
    pub token: AccessToken,
}

/// A block access token, as opaque bytes (the blockservers check it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccessToken(pub Vec<u8>);

impl AccessToken {
    /// Whether the token still counts `margin_ms` from `now_ms` (as the claims it carries
    /// say; a token the client cannot read is left for the blockserver to judge).
    pub fn fresh(&self, now_ms: u64, margin_ms: u64) -> bool {
        raftfs_core::block_token::BlockToken::decode(&self.0).map_or(true, |t| {
            t.claims.expires_ms > now_ms.saturating_add(margin_ms)
        })
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessToken({} bytes)", self.0.len())
    }
}

/// A page of a file's closed block groups, from `get_blocks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocatedBlocks {
    pub file: FileStatus,
    pub groups: Vec<LocatedGroup>,
    /// More closed groups of the range asked for follow the last one.
    pub more: bool,
    /// Bytes of the file in closed groups: what a reader may read of a file being written.
    pub readable_length: u64,
}

impl LocatedGroup {
    /// The known copies of internal block `index`.
    pub fn copies(&self, index: u32) -> impl Iterator<Item = &BlockLocation> {
        self.locations.iter().filter(move |l| l.index == index)
    }
}

fn block_location(l: pb::BlockLocation) -> BlockLocation {
    BlockLocation {
        index: l.index,
        node: BlockServerId(l.node_id),
        addr: l.addr,
        rack: l.rack,
    }
}

/// A block group from the wire.
pub(crate) fn located_group(g: pb::BlockGroup) -> LocatedGroup {
    LocatedGroup {
        id: GroupId(g.id),
        index: g.index,
        offset: g.offset,
        length: g.length,
        targets: g.targets.into_iter().map(block_location).collect(),
        locations: g.locations.into_iter().map(block_location).collect(),
        token: AccessToken(g.token),
    }
}

/// Where a blockserver stands in or out of service (DESIGN §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminLabel {
    InService,
    Decommissioning,
    /// Decommissioning, and no group needs it any more: it may be stopped.
    Decommissioned,
    InMaintenance,
}

impl std::fmt::Display for AdminLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdminLabel::InService => "in service",
            AdminLabel::Decommissioning => "decommissioning",
            AdminLabel::Decommissioned => "decommissioned",
            AdminLabel::InMaintenance => "in maintenance",
        })
    }
}

/// A blockserver's admin state as the active sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AdminStatus {
    pub state: AdminLabel,
    /// Decommissioning: when it began (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// In maintenance: when it ends (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Decommissioning: its internal blocks that groups still need, from the last whole scan
    /// since it began (none: no such scan ended yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_remaining: Option<u64>,
}

impl From<Option<pb::AdminStatus>> for AdminStatus {
    fn from(a: Option<pb::AdminStatus>) -> Self {
        use pb::admin_status::State;
        let a = a.unwrap_or_default();
        // An unknown state (a newer server's) reads as in service: shown, never acted on.
        let state = match State::try_from(a.state) {
            Ok(State::Decommissioning) => AdminLabel::Decommissioning,
            Ok(State::Decommissioned) => AdminLabel::Decommissioned,
            Ok(State::InMaintenance) => AdminLabel::InMaintenance,
            Ok(State::InService) | Err(_) => AdminLabel::InService,
        };
        Self {
            state,
            since_ms: (a.since_ms > 0).then_some(a.since_ms),
            until_ms: (a.until_ms > 0).then_some(a.until_ms),
            drain_remaining: a.drain_remaining,
        }
    }
}

/// One blockserver in the active's reconstruction view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReconstruction {
    pub node: BlockServerId,
    pub rack: String,
    pub live: bool,
    /// Transfers it reported in progress (HDFS's xmits), and tasks the active sent it.
    pub xmits_in_progress: u32,
    pub tasks_in_flight: u64,
    pub admin: AdminStatus,
}

/// The active's reconstruction queues, tasks and budgets (`metactl reconstruction status`).
/// A blockserver as a nameservice's active knows it, with that nameservice's pool's share
/// of its storage (DESIGN §10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockServerInfo {
    pub id: BlockServerId,
    pub addr: String,
    pub rack: String,
    pub live: bool,
    pub capacity: u64,
    /// Every pool's block bytes.
    pub used: u64,
    /// This nameservice's pool's block bytes.
    pub pool_used: u64,
    pub available: u64,
    /// Internal blocks of this nameservice it reported.
    pub blocks: u64,
    pub volumes: u32,
    pub failed_volumes: u32,
    pub xmits_in_progress: u32,
    pub admin: AdminStatus,
    /// When it last registered with the active (the active's clock, ms since the epoch).
    pub registered_ms: u64,
    /// Whether the active has its full report since that registration.
    pub fully_reported: bool,
}

impl From<pb::BlockServerInfo> for BlockServerInfo {
    fn from(b: pb::BlockServerInfo) -> Self {
        Self {
            id: BlockServerId(b.id),
            addr: b.addr,
            rack: b.rack,
            live: b.live,
            capacity: b.capacity,
            used: b.used,
            pool_used: b.pool_used,
            available: b.available,
            blocks: b.blocks,
            volumes: b.volumes,
            failed_volumes: b.failed_volumes,
            xmits_in_progress: b.xmits_in_progress,
            admin: AdminStatus::from(b.admin),
            registered_ms: b.registered_ms,
            fully_reported: b.fully_reported,
        }
    }
}

/// Not `Serialize`: the budgets are keyed by rack pairs, which JSON maps cannot key; metactl
/// writes its own document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconstructionStatus {
    /// The member that answered: the active.
    pub active: MemberId,
    /// Groups waiting, by priority: 0 = one loss from data loss ... 2 = low redundancy.
    pub queued: Vec<u64>,
    /// Groups with fewer live internal blocks than they need: reported, not schedulable.
    pub unrecoverable: u64,
    pub in_flight: u64,
    pub tasks_started: u64,
    pub tasks_finished: u64,
    pub tasks_failed: u64,
    /// The journaled budgets in force.
    pub throttle: ThrottleSettings,
    pub nodes: Vec<NodeReconstruction>,
}

/// `Admin.ReconstructionStatus`' reply.
pub(crate) fn reconstruction_status(r: pb::ReconstructionStatusResponse) -> ReconstructionStatus {
    let t = r.throttle.unwrap_or_default();
    let pairs = |ps: Vec<pb::RackPairBudget>| {
        ps.into_iter()
            .map(|p| ((p.from, p.to), p.bytes_per_sec))
            .collect()
    };
    ReconstructionStatus {
        active: MemberId(r.leader),
        queued: r.queued,
        unrecoverable: r.unrecoverable,
        in_flight: r.in_flight,
        tasks_started: r.tasks_started,
        tasks_finished: r.tasks_finished,
        tasks_failed: r.tasks_failed,
        throttle: ThrottleSettings {
            node_bytes_per_sec: t.node_bytes_per_sec.unwrap_or(0),
            rack_pairs: pairs(t.rack_pairs),
            racks: t
                .racks
                .into_iter()
                .map(|r| (r.rack, r.datacenter))
                .collect(),
            datacenter_pairs: pairs(t.datacenter_pairs),
        },
        nodes: r
            .nodes
            .into_iter()
            .map(|n| NodeReconstruction {
                node: BlockServerId(n.node_id),
                rack: n.rack,
                live: n.live,
                xmits_in_progress: n.xmits_in_progress,
                tasks_in_flight: n.tasks_in_flight,
                admin: AdminStatus::from(n.admin),
            })
            .collect(),
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

/// `Namespace.GetMountTable`'s reply as core's table; an entry that is not a valid mount (a
/// bad path or name, one mount point twice) is a protocol error, not a table.
pub(crate) fn mount_table(r: pb::GetMountTableResponse) -> Result<MountTable, ClientError> {
    let bad =
        |what: String| ClientError::Rpc(tonic::Status::internal(format!("mount table: {what}")));
    let path = |p: &str| NsPath::parse(p).map_err(|e| bad(e.to_string()));
    let name = |n: &str| NameserviceId::parse(n).map_err(|e| bad(e.to_string()));
    let default = match r.default_nameservice.as_str() {
        "" => None,
        n => Some(name(n)?),
    };
    let mut table = MountTable::new(default);
    for e in r.entries {
        let to = Destination {
            nameservice: name(&e.nameservice)?,
            path: path(&e.path)?,
        };
        table
            .add(path(&e.at)?, to)
            .map_err(|e| bad(e.to_string()))?;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_list_with_a_role_the_client_does_not_know_is_an_error() {
        let member = |id, role: &str| pb::Member {
            id,
            addr: format!("127.0.0.1:{id}"),
            role: role.into(),
        };
        let ok = members(vec![member(1, "voter"), member(4, "observer")]).expect("known roles");
        assert_eq!(
            ok.iter().map(|m| (m.id, m.role)).collect::<Vec<_>>(),
            [
                (MemberId(1), MemberRole::Voter),
                (MemberId(4), MemberRole::Observer)
            ]
        );
        assert!(members(vec![member(1, "voter"), member(2, "learner")]).is_err());
    }

    #[test]
    fn a_wire_group_becomes_typed_locations() {
        let loc = |index, node_id| pb::BlockLocation {
            index,
            node_id,
            addr: format!("b{node_id}"),
            rack: "r1".into(),
        };
        let g = located_group(pb::BlockGroup {
            id: 7,
            index: 2,
            offset: 1 << 20,
            length: 5,
            targets: vec![loc(0, 3), loc(1, 4)],
            locations: vec![loc(1, 4), loc(0, 3), loc(1, 9)],
            token: vec![1, 2, 3],
        });
        assert_eq!(
            (g.id, g.index, g.offset, g.length),
            (GroupId(7), 2, 1 << 20, 5)
        );
        assert_eq!(g.targets[1].node, BlockServerId(4));
        // The token travels as the metaserver signed it, and is never printed.
        assert_eq!(g.token.0, vec![1, 2, 3]);
        assert_eq!(format!("{:?}", g.token), "AccessToken(3 bytes)");
        let copies: Vec<BlockServerId> = g.copies(1).map(|l| l.node).collect();
        assert_eq!(copies, [BlockServerId(4), BlockServerId(9)]);
    }

    #[test]
    fn reconstruction_status_carries_the_budgets_as_settings() {
        let pair = |from: &str, to: &str, bytes_per_sec| pb::RackPairBudget {
            from: from.into(),
            to: to.into(),
            bytes_per_sec,
        };
        let s = reconstruction_status(pb::ReconstructionStatusResponse {
            leader: 2,
            queued: vec![1, 0, 3],
            throttle: Some(pb::SetThrottleOp {
                node_bytes_per_sec: None,
                rack_pairs: vec![pair("r1", "r2", 100)],
                racks: vec![pb::RackDatacenter {
                    rack: "r1".into(),
                    datacenter: "dc1".into(),
                }],
                datacenter_pairs: vec![pair("dc1", "dc2", 50)],
            }),
            nodes: vec![pb::NodeReconstruction {
                node_id: 12,
                rack: "r2".into(),
                xmits_in_progress: 3,
                tasks_in_flight: 1,
                live: true,
                admin: None,
            }],
            ..Default::default()
        });
        assert_eq!(s.active, MemberId(2));
        assert_eq!(s.throttle.node_bytes_per_sec, 0, "absent: unlimited");
        assert_eq!(s.throttle.rack_pairs[&("r1".into(), "r2".into())], 100);
        assert_eq!(s.throttle.racks["r1"], "dc1");
        assert_eq!(
            s.throttle.datacenter_pairs[&("dc1".into(), "dc2".into())],
            50
        );
        assert_eq!(s.nodes[0].node, BlockServerId(12));
    }

    /// A reader renews a group's token before it runs out; one it cannot read is left to the
    /// blockserver.
    #[test]
    fn a_token_is_fresh_until_its_margin() {
        use raftfs_core::block_token::{BlockKey, BlockToken, Claims, Mode};
        let key = BlockKey {
            id: 1,
            secret: [7; 32],
            created_ms: 0,
            expires_ms: u64::MAX,
        };
        let claims = Claims::for_nodes(GroupId(9), &[Mode::Read], 1_000, 100_000);
        let token = AccessToken(BlockToken::mint(&key, claims).encode());
        assert!(token.fresh(1_000, 60_000));
        assert!(token.fresh(40_999, 60_000));
        assert!(!token.fresh(41_000, 60_000));
        assert!(AccessToken(vec![1, 2, 3]).fresh(u64::MAX, 60_000));
    }
}
