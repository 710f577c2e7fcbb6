//! Wire -> domain conversion, done once where a request enters: paths are parsed, defaults
//! filled in, identities checked. Handlers only see validated domain types; their replies
//! are built from domain types here too (inodes, groups, fsck, reconstruction tasks).

use raftfs_core::block_token::KeyRing;
use raftfs_core::federation::{Destination, MountTable, NameserviceId};
use raftfs_core::id::{BlockServerId, GroupId, TaskId};
use raftfs_proto as pb;
use raftfs_proto::mutate_request::Op as PbOp;

use crate::journal::{CallId, ClientId};
use crate::namespace::admin_state::{Admin, AdminChange};
use crate::namespace::blocks::BlockGroup;
use crate::namespace::throttle::{ThrottleChange, ThrottleSettings};
use crate::namespace::upgrade::UpgradeStep;
use crate::namespace::{Inode, InodeKind, NsError, NsPath, Op, OpOutput, XattrExpect};
use crate::redundancy::{FileHealth, FsckReport};
use crate::registry::Replica;
use raftfs_core::level::Level;
use raftfs_core::reconstruction::{BlockSource, ReconstructionTask, TaskOutcome, Throttle};

/// Identity and position of the caller.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub client: ClientId,
    pub call_id: CallId,
    pub last_seen_state_id: u64,
}

/// Parses a request header. A missing header or client id means "no retry cache".
pub fn caller(header: Option<&pb::RequestHeader>) -> Result<Caller, NsError> {
    let Some(h) = header else {
        return Ok(Caller {
            client: ClientId::default(),
            call_id: CallId::UNCACHED,
            last_seen_state_id: 0,
        });
    };
    if h.client_id.is_empty() {
        return Ok(Caller {
            client: ClientId::default(),
            call_id: CallId::UNCACHED,
            last_seen_state_id: h.last_seen_state_id,
        });
    }
    let bytes: [u8; 16] = h.client_id.as_slice().try_into().map_err(|_| {
        NsError::InvalidArgument(format!(
            "client id must be 16 bytes, got {}",
            h.client_id.len()
        ))
    })?;
    Ok(Caller {
        client: ClientId(bytes),
        call_id: CallId(h.call_id),
        last_seen_state_id: h.last_seen_state_id,
    })
}

/// Blockserver ids as the wire carries them.
pub fn block_servers(ids: &[u64]) -> Vec<BlockServerId> {
    ids.iter().copied().map(BlockServerId).collect()
}

pub fn path(s: &str) -> Result<NsPath, NsError> {
    NsPath::parse(s)
}

/// A nameservice's name from the wire (DESIGN §10).
fn nameservice(s: &str) -> Result<NameserviceId, NsError> {
    NameserviceId::parse(s).map_err(|e| NsError::InvalidArgument(e.to_string()))
}

/// The mount table as `GetMountTable` answers it.
pub fn mount_table(table: &MountTable) -> (Vec<pb::MountEntry>, String) {
    let entries = table
        .entries()
        .map(|(at, to)| pb::MountEntry {
            at: at.to_string(),
            nameservice: to.nameservice.to_string(),
            path: to.path.to_string(),
        })
        .collect();
    let default = table
        .default_nameservice()
        .map_or_else(String::new, ToString::to_string);
    (entries, default)
}

fn permission(p: u32, default: u16) -> Result<u16, NsError> {
    if p == 0 {
        return Ok(default);
    }
    u16::try_from(p)
        .ok()
        .filter(|p| *p <= 0o7777)
        .ok_or_else(|| NsError::InvalidArgument(format!("permission {p:o} is above 7777")))
}

fn owner(s: String) -> String {
    if s.is_empty() { "nobody".to_owned() } else { s }
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

/// Converts the operation of a `Mutate` request.
/// A line of a snapshot diff on the wire.
pub fn diff_entry(e: &crate::namespace::snapshot::DiffEntry) -> pb::DiffEntry {
    use crate::namespace::snapshot::DiffKind;
    let kind = match e.kind {
        DiffKind::Created => pb::DiffKind::Created,
        DiffKind::Deleted => pb::DiffKind::Deleted,
        DiffKind::Modified => pb::DiffKind::Modified,
        DiffKind::Renamed => pb::DiffKind::Renamed,
    };
    pb::DiffEntry {
        kind: kind as i32,
        path: e.path.clone(),
        target: e.target.clone().unwrap_or_default(),
        content: e.content,
    }
}

pub fn op(op: Option<PbOp>) -> Result<Op, NsError> {
    let op =
        op.ok_or_else(|| NsError::InvalidArgument("mutate request without an operation".into()))?;
    Ok(match op {
        PbOp::Mkdir(m) => Op::Mkdir {
            path: path(&m.path)?,
            parents: m.parents,
            permission: permission(m.permission, 0o755)?,
            owner: owner(m.owner),
            group: non_empty(m.group),
        },
        PbOp::Create(c) => Op::Create {
            path: path(&c.path)?,
            overwrite: c.overwrite,
            create_parents: c.create_parents,
            permission: permission(c.permission, 0o644)?,
            owner: owner(c.owner),
            group: non_empty(c.group),
            policy: non_empty(c.storage_policy).map(|p| p.parse()).transpose()?,
            holder: c.lease_holder,
            block_size: c.block_size,
        },
        PbOp::Complete(c) => Op::Complete {
            path: path(&c.path)?,
            holder: c.lease_holder,
            length: c.length,
        },
        PbOp::Append(a) => Op::Append {
            path: path(&a.path)?,
            holder: a.lease_holder,
        },
        PbOp::Rename(r) => Op::Rename {
            src: path(&r.src)?,
            dst: path(&r.dst)?,
            overwrite: r.overwrite,
        },
        PbOp::Delete(d) => Op::Delete {
            path: path(&d.path)?,
            recursive: d.recursive,
        },
        PbOp::SetPermission(s) => {
            let p = u16::try_from(s.permission)
                .ok()
                .filter(|p| *p <= 0o7777)
                .ok_or_else(|| {
                    NsError::InvalidArgument(format!("permission {:o} is above 7777", s.permission))
                })?;
            Op::SetPermission {
                path: path(&s.path)?,
                permission: p,
            }
        }
        PbOp::SetOwner(s) => Op::SetOwner {
            path: path(&s.path)?,
            owner: non_empty(s.owner),
            group: non_empty(s.group),
        },
        PbOp::SetTimes(s) => Op::SetTimes {
            path: path(&s.path)?,
            mtime_ms: s.mtime_ms,
            atime_ms: s.atime_ms,
        },
        PbOp::SetStoragePolicy(s) => Op::SetStoragePolicy {
            path: path(&s.path)?,
            policy: s.policy.parse()?,
        },
        PbOp::RenewLease(r) => Op::RenewLease {
            holder: r.lease_holder,
        },
        PbOp::RecoverLease(r) => Op::RecoverLease {
            path: path(&r.path)?,
            last_group_length: None,
        },
        PbOp::Symlink(s) => Op::Symlink {
            path: path(&s.path)?,
            target: s.target,
            create_parents: s.create_parents,
            owner: "nobody".into(),
        },
        PbOp::SetXattr(s) => Op::SetXattr {
            path: path(&s.path)?,
            name: s.name,
            value: s.value,
            expect: match (s.expect_absent, s.expected) {
                (true, _) => XattrExpect::Absent,
                (false, Some(v)) => XattrExpect::Value(v),
                (false, None) => XattrExpect::Any,
            },
        },
        PbOp::RemoveXattr(r) => Op::RemoveXattr {
            path: path(&r.path)?,
            name: r.name,
        },
        PbOp::AppendXattr(a) => Op::AppendXattr {
            path: path(&a.path)?,
            name: a.name,
            value: a.value,
        },
        PbOp::SetThrottle(t) => Op::SetThrottle(throttle_change(t)),
        PbOp::MountAdd(m) => Op::MountAdd {
            at: path(&m.at)?,
            to: Destination {
                nameservice: nameservice(&m.nameservice)?,
                path: path(&m.path)?,
            },
        },
        PbOp::MountRemove(m) => Op::MountRemove { at: path(&m.at)? },
        PbOp::MountMove(m) => Op::MountMove {
            at: path(&m.at)?,
            from: Destination {
                nameservice: nameservice(&m.from_nameservice)?,
                path: path(&m.from_path)?,
            },
            to: Destination {
                nameservice: nameservice(&m.nameservice)?,
                path: path(&m.path)?,
            },
        },
        PbOp::Upgrade(u) => Op::Upgrade(upgrade_step(&u)?),
        PbOp::SetAdminState(a) => Op::SetAdminState {
            server: BlockServerId(a.server),
            change: admin_change(&a)?,
        },
        PbOp::Freeze(f) => Op::Freeze {
            path: path(&f.path)?,
            frozen: f.frozen,
        },
        PbOp::SetDefaultNameservice(d) => Op::SetDefaultNameservice {
            nameservice: match d.nameservice.as_str() {
                "" => None,
                name => Some(nameservice(name)?),
            },
        },
        PbOp::AllowSnapshot(a) => Op::AllowSnapshot {
            path: path(&a.path)?,
        },
        PbOp::DisallowSnapshot(a) => Op::DisallowSnapshot {
            path: path(&a.path)?,
        },
        PbOp::CreateSnapshot(c) => Op::CreateSnapshot {
            path: path(&c.path)?,
            name: (!c.name.is_empty()).then_some(c.name),
        },
        PbOp::DeleteSnapshot(d) => Op::DeleteSnapshot {
            path: path(&d.path)?,
            name: d.name,
        },
        PbOp::RenameSnapshot(r) => Op::RenameSnapshot {
            path: path(&r.path)?,
            from: r.from,
            to: r.to,
        },
        PbOp::AddBlock(a) => Op::AddBlock {
            path: path(&a.path)?,
            holder: a.lease_holder,
            file_length: a.file_length,
            targets: Vec::new(),
        },
    })
}

/// A blockserver's admin state as the active sees it -> wire.
pub fn admin_status(n: &crate::registry::NodeView) -> pb::AdminStatus {
    use crate::namespace::admin_state::AdminState;
    use pb::admin_status::State;
    let state = if n.decommissioned() {
        State::Decommissioned
    } else {
        match n.admin {
            Admin::InService => State::InService,
            Admin::Decommissioning => State::Decommissioning,
            Admin::InMaintenance => State::InMaintenance,
        }
    };
    let (since_ms, until_ms) = match n.admin_state {
        Some(AdminState::Decommissioning { since_ms }) => (since_ms, 0),
        Some(AdminState::Maintenance { until_ms }) => (0, until_ms),
        None => (0, 0),
    };
    pb::AdminStatus {
        state: state as i32,
        since_ms,
        until_ms,
        drain_remaining: n.drain_remaining,
    }
}

/// Wire upgrade step -> domain; an unknown step or a level beyond u16 is refused.
fn upgrade_step(u: &pb::UpgradeOp) -> Result<UpgradeStep, NsError> {
    use pb::upgrade_op::Step;
    match Step::try_from(u.step) {
        Ok(Step::Prepare) => Ok(UpgradeStep::Prepare),
        Ok(Step::Rollback) => Ok(UpgradeStep::Rollback),
        Ok(Step::Finalize) => u16::try_from(u.level)
            .ok()
            .filter(|l| *l >= 1)
            .map(|l| UpgradeStep::Finalize { to: Level(l) })
            .ok_or_else(|| NsError::InvalidArgument(format!("no format level {}", u.level))),
        Err(_) => Err(NsError::InvalidArgument(format!(
            "unknown upgrade step {}",
            u.step
        ))),
    }
}

/// Wire admin change -> domain; an unknown change is refused (a newer client's).
fn admin_change(a: &pb::SetAdminStateOp) -> Result<AdminChange, NsError> {
    use pb::set_admin_state_op::Change;
    match Change::try_from(a.change) {
        Ok(Change::InService) => Ok(AdminChange::InService),
        Ok(Change::Decommission) => Ok(AdminChange::Decommission),
        Ok(Change::Maintenance) => Ok(AdminChange::Maintenance {
            for_ms: a.maintenance_ms,
        }),
        Err(_) => Err(NsError::InvalidArgument(format!(
            "unknown admin state change {}",
            a.change
        ))),
    }
}

fn throttle_change(t: pb::SetThrottleOp) -> ThrottleChange {
    let pairs = |v: Vec<pb::RackPairBudget>| {
        v.into_iter()
            .map(|p| (p.from, p.to, p.bytes_per_sec))
            .collect()
    };
    ThrottleChange {
        node_bytes_per_sec: t.node_bytes_per_sec,
        rack_pairs: pairs(t.rack_pairs),
        racks: t
            .racks
            .into_iter()
            .map(|r| (r.rack, r.datacenter))
            .collect(),
        datacenter_pairs: pairs(t.datacenter_pairs),
    }
}

/// Domain throttle settings -> wire (the whole setting, as a change that sets it).
pub fn throttle(s: &ThrottleSettings) -> pb::SetThrottleOp {
    let pairs = |m: &std::collections::BTreeMap<(String, String), u64>| {
        m.iter()
            .map(|((from, to), bps)| pb::RackPairBudget {
                from: from.clone(),
                to: to.clone(),
                bytes_per_sec: *bps,
            })
            .collect()
    };
    pb::SetThrottleOp {
        node_bytes_per_sec: Some(s.node_bytes_per_sec),
        rack_pairs: pairs(&s.rack_pairs),
        racks: s
            .racks
            .iter()
            .map(|(rack, dc)| pb::RackDatacenter {
                rack: rack.clone(),
                datacenter: dc.clone(),
            })
            .collect(),
        datacenter_pairs: pairs(&s.datacenter_pairs),
    }
}

/// Domain inode -> wire inode.
pub fn inode(i: &Inode) -> pb::Inode {
    pb::Inode {
        id: i.id.into(),
        parent: i.parent.into(),
        name: i.name.clone(),
        kind: match i.kind {
            InodeKind::Directory => pb::InodeKind::Directory,
            InodeKind::File => pb::InodeKind::File,
            InodeKind::Symlink => pb::InodeKind::Symlink,
        } as i32,
        permission: u32::from(i.permission),
        owner: i.owner.clone(),
        group: i.group.clone(),
        mtime_ms: i.mtime_ms,
        atime_ms: i.atime_ms,
        storage_policy: i.policy.to_string(),
        length: i.length,
        under_construction: i.under_construction.is_some(),
        lease_holder: i
            .under_construction
            .as_ref()
            .map(|u| u.holder.clone())
            .unwrap_or_default(),
        symlink_target: i.symlink_target.clone().unwrap_or_default(),
        children: i.children,
        block_size: i.block_size,
        block_groups: u64::from(i.block_groups),
    }
}

/// A domain block group -> wire, with the registry's address and rack of each node
/// (`locate`), and the copies known from block reports.
pub fn group(
    g: &BlockGroup,
    replicated: bool,
    locate: impl Fn(u64) -> Option<(String, String)>,
    replicas: &[Replica],
) -> pb::BlockGroup {
    let location = |index: u32, node: u64| {
        let (addr, rack) = locate(node).unwrap_or_default();
        pb::BlockLocation {
            index,
            node_id: node,
            addr,
            rack,
        }
    };
    pb::BlockGroup {
        id: g.id.into(),
        index: g.index,
        offset: g.offset,
        length: g.length.unwrap_or(0),
        targets: g
            .targets
            .iter()
            .enumerate()
            .map(|(i, n)| location(if replicated { 0 } else { i as u32 }, n.get()))
            .collect(),
        locations: replicas
            .iter()
            .map(|r| location(r.index, r.node.get()))
            .collect(),
        token: Vec::new(),
    }
}

/// A mutation's output -> the wire response body.
pub fn output(out: &OpOutput, state_id: u64) -> pb::MutateResponse {
    let header = Some(pb::ResponseHeader {
        state_id,
        ..Default::default()
    });
    match out {
        OpOutput::Inode(i) | OpOutput::Group(i, _) => pb::MutateResponse {
            header,
            inode: Some(inode(i)),
            ..Default::default()
        },
        OpOutput::Removed(n) => pb::MutateResponse {
            header,
            removed: *n,
            ..Default::default()
        },
        OpOutput::Done => pb::MutateResponse {
            header,
            ..Default::default()
        },
    }
}

/// `fsck`'s findings -> the wire response (its header is the caller's to fill).
pub fn fsck_report(r: FsckReport) -> pb::FsckResponse {
    let file = |f: FileHealth| pb::FsckFile {
        path: f.path,
        policy: f.policy.to_string(),
        length: f.length,
        groups: f.groups,
        degraded: f.degraded,
        missing: f.missing,
        internal_blocks: f.internal_blocks,
        under_construction: f.under_construction,
        stored_bytes: f.stored_bytes,
    };
    pb::FsckResponse {
        header: None,
        files: r.files,
        groups: r.groups,
        healthy: r.healthy,
        degraded: r.degraded,
        missing: r.missing,
        unhealthy: r.unhealthy.into_iter().map(file).collect(),
        all: r.all.into_iter().map(file).collect(),
        live_blockservers: r.live_blockservers,
        next_after: String::new(),
    }
}

/// A reconstruction task the scheduler planned -> the wire, for a heartbeat reply.
/// A task -> the wire, with the token its target reads the sources with.
pub fn reconstruction_task(t: &ReconstructionTask, token: Vec<u8>) -> pb::ReconstructionTask {
    pb::ReconstructionTask {
        task_id: t.id.get(),
        group: t.group.into(),
        policy: t.policy.to_string(),
        group_length: t.group_length,
        index: t.index,
        sources: t.sources.iter().map(block_source).collect(),
        weight: t.weight,
        aggregate: t.aggregate,
        token,
    }
}

/// The block keys -> the wire, for a heartbeat reply.
pub fn block_keys(ring: &KeyRing) -> Vec<pb::BlockKey> {
    ring.keys()
        .map(|k| pb::BlockKey {
            id: k.id,
            secret: k.secret.to_vec(),
            created_ms: k.created_ms,
            expires_ms: k.expires_ms,
        })
        .collect()
}

fn block_source(s: &BlockSource) -> pb::BlockLocation {
    pb::BlockLocation {
        index: s.index,
        node_id: s.node.get(),
        addr: s.addr.clone(),
        rack: s.rack.clone(),
    }
}

/// A blockserver's share of the budgets -> the wire, for a heartbeat reply.
pub fn node_throttle(t: &Throttle) -> pb::Throttle {
    pb::Throttle {
        node_bytes_per_sec: t.node_bytes_per_sec,
        max_tasks: t.max_tasks,
        budgets: t
            .budgets
            .iter()
            .map(|b| pb::ByteBudget {
                name: b.name.clone(),
                from_racks: b.from_racks.clone(),
                bytes_per_sec: b.bytes_per_sec,
            })
            .collect(),
    }
}

/// A task's outcome from a heartbeat. Nothing to refuse: an outcome that names no task in
/// flight is ignored by the scheduler.
pub fn task_outcome(o: pb::TaskOutcome) -> TaskOutcome {
    TaskOutcome {
        task_id: TaskId(o.task_id),
        group: GroupId(o.group),
        index: o.index,
        error: (!o.ok).then_some(o.error),
    }
}

/// A background worker's status as `Admin` reports it.
pub fn worker_status_pb(s: &raftfs_runtime::WorkerStatus) -> pb::WorkerStatus {
    pb::WorkerStatus {
        name: s.name.clone(),
        state: match s.state {
            raftfs_runtime::WorkerState::Idle => "idle",
            raftfs_runtime::WorkerState::Running => "running",
            raftfs_runtime::WorkerState::Stopped => "stopped",
        }
        .to_owned(),
        period_ms: s.period_ms,
        runs: s.runs,
        errors: s.errors,
        items: s.items,
        last_items: s.last_items,
        last_run_ms: s.last_run_ms.unwrap_or(0),
        last_error: s.last_error.clone().unwrap_or_default(),
    }
}
