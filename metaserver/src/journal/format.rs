//! The journal's record families in the versioned envelope of [`raftfs_core::format`] (read
//! its module doc first: the envelope, the rules, how to add a version). Everything the
//! journal persists or sends to another metaserver is one of these; nothing is written as a
//! bare postcard dump.
//!
//! Each family's version covers every type its body reaches, except a nested record (a byte
//! string holding its own envelope):
//!
//! | family (`RECORD`)           | where                                   | body reaches |
//! |-----------------------------|-----------------------------------------|--------------|
//! | `batch` ([`Batch`])         | nested in every `raft entry` and entry of `append entries` | `Batch`, `Proposal`, `ClientId`, `ApplyCtx`, `Access`, `Op` and all it holds (`NsPath`, `StoragePolicy`, `XattrExpect`, `ThrottleChange`, `BlockKey`, federation's `Destination` and `NameserviceId`) |
//! | `raft entry` ([`LogEntry`]) | log store, CF `log`                     | openraft `Entry`, `LogId`, `EntryPayload`, `Membership`, `BasicNode`; the batch nested |
//! | `vote` ([`VoteRecord`])     | log store, CF `store`, `vote`           | openraft `Vote` |
//! | `committed log id`          | log store, `committed`                  | `Option<LogId>` |
//! | `purged log id`             | log store, `last_purged`                | `LogId` |
//! | `applied log id`            | state machine, `meta` `applied`         | `Option<LogId>` |
//! | `membership`                | state machine, `meta` `membership`      | `StoredMembership` |
//! | `retry result`              | state machine, CF `retry`               | `Result<OpOutput, NsError>`, so `Inode` and `BlockGroup` |
//! | `snapshot meta`             | `snapshots/<id>.meta`                   | `SnapshotMeta` |
//! | `append entries` / `... reply` | `Raft.AppendEntries` request / response bytes | `AppendEntriesRequest` (entries as in `raft entry`) / `Result<AppendEntriesResponse, RaftError>` |
//! | `vote request` / `... reply` | `Raft.Vote`                            | `VoteRequest` / `Result<VoteResponse, RaftError>` |
//! | `install snapshot` / `... reply` | `Raft.InstallSnapshot`             | `InstallSnapshotRequest` / `Result<InstallSnapshotResponse, RaftError<_, InstallSnapshotError>>` |
//!
//! Every family is at version 1 but `batch`, at 2 (version 1 had no caller per proposal) and
//! `retry result`, at 2 (version 1 had no fingerprint). The batch is nested so that a change to
//! `Op` (the likeliest change) is a new version of `batch` alone, whose old layout can be
//! frozen in a `v1` module of our own types; the families around it are openraft's types, which
//! only an openraft upgrade changes (openraft is pinned; the golden fixtures fail if an upgrade
//! moves a byte, and the old layouts then need frozen copies too).
//!
//! A family at version 1 only is declared with `v1_family!`; to give one a version 2,
//! replace its line by a hand-written [`Schema`] impl (as `Batch`'s below) with an arm for
//! each version.
//!
//! The namespace records (`inode`, `lease record`, `block group`, `throttle settings`) are
//! `raftfs_core`'s families (`namespace::inode`). The retry result, which reaches `Inode`,
//! takes a new version whenever `inode` does.

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest as RaftVoteRequest, VoteResponse,
};
use openraft::{Entry, LogId, SnapshotMeta, StoredMembership, Vote};
use raftfs_core::format::{self, FormatError, Schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{BasicNodeMeta, Batch, MemberId, Proposal, TypeConfig};
use crate::namespace::{ApplyCtx, NsError, OpOutput};

/// Declares a family whose only version, 1, is the postcard encoding of `$value`.
macro_rules! v1_family {
    ($(#[$doc:meta])* $name:ident = $record:literal: $value:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub enum $name {}

        impl Schema for $name {
            type Value = $value;
            const RECORD: &'static str = $record;
            const CURRENT: u16 = 1;

            fn decode_body(version: u16, bytes: &[u8]) -> Result<$value, FormatError> {
                match version {
                    1 => format::body(Self::RECORD, bytes),
                    v => Err(format::unknown_version::<Self>(v)),
                }
            }
        }
    };
}

v1_family!(
    /// A Raft log entry, as the log store keeps it.
    LogEntry = "raft entry": Entry<TypeConfig>
);
v1_family!(
    /// The vote the log store keeps.
    VoteRecord = "vote": Vote<MemberId>
);
v1_family!(
    /// The committed log id the log store keeps.
    CommittedRecord = "committed log id": Option<LogId<MemberId>>
);
v1_family!(
    /// The last purged log id the log store keeps.
    PurgedRecord = "purged log id": LogId<MemberId>
);
v1_family!(
    /// The applied log id in the state machine's `meta`.
    AppliedRecord = "applied log id": Option<LogId<MemberId>>
);
v1_family!(
    /// The membership in the state machine's `meta`.
    MembershipRecord = "membership": StoredMembership<MemberId, BasicNodeMeta>
);
/// A client mutation's result in the retry cache, with the fingerprint of the operation it
/// answers ([`crate::namespace::Op::fingerprint`]): a retry of the call id with another
/// operation is refused instead of answered (issue #16). Version 1 records (before the
/// fingerprint) have none, and answer any retry of their call id as they used to; they
/// expire within the cache's 10 minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRecord {
    pub fingerprint: Option<[u8; 32]>,
    pub result: Result<OpOutput, NsError>,
}

/// The retry cache's records: version 1 is the bare result, version 2 a [`RetryRecord`].
#[derive(Debug)]
pub enum RetryResult {}

impl Schema for RetryResult {
    type Value = RetryRecord;
    const RECORD: &'static str = "retry result";
    /// Version 3 (inodes with the writer's machine) only in the `next-format` build.
    const CURRENT: u16 = if cfg!(feature = "next-format") { 3 } else { 2 };

    fn decode_body(version: u16, bytes: &[u8]) -> Result<RetryRecord, FormatError> {
        match version {
            1 => format::body::<Result<retry_v2::OpOutput, NsError>>(Self::RECORD, bytes).map(
                |result| RetryRecord {
                    fingerprint: None,
                    result: result.map(OpOutput::from),
                },
            ),
            2 => format::body::<retry_v2::RetryRecord>(Self::RECORD, bytes).map(|r| RetryRecord {
                fingerprint: r.fingerprint,
                result: r.result.map(OpOutput::from),
            }),
            3 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }

    /// Version 2 unless an inode of the result records a writer's machine.
    fn version_for(r: &RetryRecord) -> u16 {
        let new = |i: &crate::namespace::Inode| {
            i.under_construction
                .as_ref()
                .is_some_and(|uc| !uc.client_machine.is_empty())
        };
        match &r.result {
            Ok(OpOutput::Inode(i) | OpOutput::Group(i, _)) if new(i) => 3,
            _ => 2,
        }
    }

    fn encode_body(r: &RetryRecord, version: u16, out: Vec<u8>) -> Result<Vec<u8>, FormatError> {
        let unwritable = |reason: String| FormatError::Unwritable {
            record: Self::RECORD,
            version,
            reason,
        };
        match version {
            2 => {
                let result = match &r.result {
                    Ok(o) => Ok(retry_v2::OpOutputRef::try_from(o).map_err(unwritable)?),
                    Err(e) => Err(e),
                };
                let record = retry_v2::RetryRecordRef {
                    fingerprint: &r.fingerprint,
                    result,
                };
                postcard::to_extend(&record, out).map_err(|e| unwritable(e.to_string()))
            }
            3 if version <= Self::CURRENT => {
                postcard::to_extend(r, out).map_err(|e| unwritable(e.to_string()))
            }
            _ => Err(unwritable(format!(
                "this binary writes versions 2 to {}",
                Self::CURRENT
            ))),
        }
    }
}

/// Versions 1 and 2 of a retry result, frozen: the results' inodes are inode version 1
/// (without the writer's machine); read into the current types, written from borrowed views.
mod retry_v2 {
    use serde::{Deserialize, Serialize};

    use crate::namespace::blocks::BlockGroup;
    use crate::namespace::inode::v1;
    use crate::namespace::{NsError, OpOutput as Current};

    #[derive(Debug, Deserialize)]
    pub enum OpOutput {
        Inode(v1::Inode),
        Removed(u64),
        Done,
        Group(v1::Inode, BlockGroup),
    }

    impl From<OpOutput> for Current {
        fn from(o: OpOutput) -> Self {
            match o {
                OpOutput::Inode(i) => Current::Inode(i.into()),
                OpOutput::Removed(n) => Current::Removed(n),
                OpOutput::Done => Current::Done,
                OpOutput::Group(i, g) => Current::Group(i.into(), g),
            }
        }
    }

    #[derive(Debug, Deserialize)]
    pub struct RetryRecord {
        pub fingerprint: Option<[u8; 32]>,
        pub result: Result<OpOutput, NsError>,
    }

    #[derive(Debug, Serialize)]
    pub enum OpOutputRef<'a> {
        Inode(v1::InodeRef<'a>),
        Removed(u64),
        Done,
        Group(v1::InodeRef<'a>, &'a BlockGroup),
    }

    impl<'a> TryFrom<&'a Current> for OpOutputRef<'a> {
        type Error = String;

        fn try_from(o: &'a Current) -> Result<Self, String> {
            Ok(match o {
                Current::Inode(i) => OpOutputRef::Inode(i.try_into()?),
                Current::Removed(n) => OpOutputRef::Removed(*n),
                Current::Done => OpOutputRef::Done,
                Current::Group(i, g) => OpOutputRef::Group(i.try_into()?, g),
            })
        }
    }

    #[derive(Debug, Serialize)]
    pub struct RetryRecordRef<'a> {
        pub fingerprint: &'a Option<[u8; 32]>,
        pub result: Result<OpOutputRef<'a>, &'a NsError>,
    }
}
v1_family!(
    /// The metadata file beside a snapshot's tar.
    SnapshotMetaRecord = "snapshot meta": SnapshotMeta<MemberId, BasicNodeMeta>
);

/// The payloads of the `Raft` gRPC service between metaservers (`RaftMessage.data`).
pub mod rpc {
    use super::*;

    v1_family!(
        /// `Raft.AppendEntries` request.
        AppendEntries = "append entries": AppendEntriesRequest<TypeConfig>
    );
    v1_family!(
        /// `Raft.AppendEntries` response.
        AppendEntriesReply = "append entries reply":
            Result<AppendEntriesResponse<MemberId>, RaftError<MemberId>>
    );
    v1_family!(
        /// `Raft.Vote` request.
        VoteRequest = "vote request": RaftVoteRequest<MemberId>
    );
    v1_family!(
        /// `Raft.Vote` response.
        VoteReply = "vote reply": Result<VoteResponse<MemberId>, RaftError<MemberId>>
    );
    v1_family!(
        /// `Raft.InstallSnapshot` request (a chunk of the snapshot).
        InstallSnapshot = "install snapshot": InstallSnapshotRequest<TypeConfig>
    );
    v1_family!(
        /// `Raft.InstallSnapshot` response.
        InstallSnapshotReply = "install snapshot reply":
            Result<InstallSnapshotResponse<MemberId>, RaftError<MemberId, InstallSnapshotError>>
    );
}

// ---------------------------------------------------------------- batch

/// Version 3 of a batch's body (the `next-format` build): `Batch`'s fields in order, each
/// proposal with the caller it runs as (`Proposal::access`), the caller's machine included.
/// `Batch`'s own serde impls write the nested record (below), so its body goes through
/// these. To add a version, freeze these and the types they reach in a module of their own,
/// as `v1` and `v2` below.
#[derive(Serialize)]
struct BatchFields<'a> {
    ctx: &'a ApplyCtx,
    proposals: &'a [Proposal],
}

#[derive(Deserialize)]
struct OwnedBatchFields {
    ctx: ApplyCtx,
    proposals: Vec<Proposal>,
}

/// Version 1 of a batch, frozen: proposals without the caller (written before permissions
/// were checked; read as the active's own work, `access: None`).
mod v1 {
    use serde::Deserialize;

    use crate::journal::{CallId, ClientId};
    use crate::namespace::{ApplyCtx, Op};

    #[derive(Debug, Deserialize)]
    pub struct Proposal {
        pub client: ClientId,
        pub call_id: CallId,
        pub op: Op,
    }

    #[derive(Debug, Deserialize)]
    pub struct Batch {
        pub ctx: ApplyCtx,
        pub proposals: Vec<Proposal>,
    }
}

/// Version 2 of a batch, frozen: the caller without its machine. Read into the current
/// types (an empty machine), written from borrowed views.
mod v2 {
    use serde::{Deserialize, Serialize};

    use crate::journal::{CallId, ClientId};
    use crate::namespace::{ApplyCtx, Op};

    #[derive(Debug, Deserialize)]
    pub struct Access {
        pub user: String,
        pub groups: Vec<String>,
        pub superuser: bool,
    }

    #[derive(Debug, Deserialize)]
    pub struct Proposal {
        pub client: ClientId,
        pub call_id: CallId,
        pub op: Op,
        pub access: Option<Access>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Batch {
        pub ctx: ApplyCtx,
        pub proposals: Vec<Proposal>,
    }

    #[derive(Debug, Serialize)]
    pub struct AccessRef<'a> {
        pub user: &'a str,
        pub groups: &'a [String],
        pub superuser: bool,
    }

    #[derive(Debug, Serialize)]
    pub struct ProposalRef<'a> {
        pub client: ClientId,
        pub call_id: CallId,
        pub op: &'a Op,
        pub access: Option<AccessRef<'a>>,
    }

    #[derive(Debug, Serialize)]
    pub struct BatchRef<'a> {
        pub ctx: &'a ApplyCtx,
        pub proposals: Vec<ProposalRef<'a>>,
    }

    impl From<Proposal> for super::Proposal {
        fn from(p: Proposal) -> Self {
            super::Proposal {
                client: p.client,
                call_id: p.call_id,
                op: p.op,
                access: p.access.map(|a| crate::namespace::permission::Access {
                    user: a.user,
                    groups: a.groups,
                    superuser: a.superuser,
                    machine: String::new(),
                }),
            }
        }
    }

    impl<'a> TryFrom<&'a super::Batch> for BatchRef<'a> {
        type Error = String;

        /// Refuses a batch that version 2 cannot hold (a caller's machine).
        fn try_from(b: &'a super::Batch) -> Result<Self, String> {
            let proposals = b
                .proposals
                .iter()
                .map(|p| {
                    let access = match &p.access {
                        Some(a) if !a.machine.is_empty() => {
                            return Err("version 2 has no caller's machine".to_owned());
                        }
                        Some(a) => Some(AccessRef {
                            user: &a.user,
                            groups: &a.groups,
                            superuser: a.superuser,
                        }),
                        None => None,
                    };
                    Ok(ProposalRef {
                        client: p.client,
                        call_id: p.call_id,
                        op: &p.op,
                        access,
                    })
                })
                .collect::<Result<_, String>>()?;
            Ok(BatchRef {
                ctx: &b.ctx,
                proposals,
            })
        }
    }
}

impl Schema for Batch {
    type Value = Self;
    const RECORD: &'static str = "batch";
    /// Version 3 (the caller's machine) only in the `next-format` build.
    const CURRENT: u16 = if cfg!(feature = "next-format") { 3 } else { 2 };

    /// Version 2 unless a proposal carries its caller's machine (from format level 2 on).
    fn version_for(batch: &Self) -> u16 {
        let new = batch
            .proposals
            .iter()
            .any(|p| p.access.as_ref().is_some_and(|a| !a.machine.is_empty()));
        if new { 3 } else { 2 }
    }

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body::<v1::Batch>(Self::RECORD, bytes).map(|b| Batch {
                ctx: b.ctx,
                proposals: b
                    .proposals
                    .into_iter()
                    .map(|p| Proposal {
                        client: p.client,
                        call_id: p.call_id,
                        op: p.op,
                        access: None,
                    })
                    .collect(),
            }),
            2 => format::body::<v2::Batch>(Self::RECORD, bytes).map(|b| Batch {
                ctx: b.ctx,
                proposals: b.proposals.into_iter().map(Proposal::from).collect(),
            }),
            3 => format::body::<OwnedBatchFields>(Self::RECORD, bytes)
                .map(|OwnedBatchFields { ctx, proposals }| Batch { ctx, proposals }),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }

    fn encode_body(batch: &Self, version: u16, out: Vec<u8>) -> Result<Vec<u8>, FormatError> {
        let unwritable = |reason: String| FormatError::Unwritable {
            record: Self::RECORD,
            version,
            reason,
        };
        match version {
            2 => postcard::to_extend(&v2::BatchRef::try_from(batch).map_err(unwritable)?, out)
                .map_err(|e| unwritable(e.to_string())),
            3 if version <= Self::CURRENT => postcard::to_extend(
                &BatchFields {
                    ctx: &batch.ctx,
                    proposals: &batch.proposals,
                },
                out,
            )
            .map_err(|e| unwritable(e.to_string())),
            _ => Err(unwritable(format!(
                "this binary writes versions 2 to {}",
                Self::CURRENT
            ))),
        }
    }
}

/// A batch inside an openraft container (an entry, an AppendEntries request) is its own
/// record, so that it carries its own version.
impl Serialize for Batch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        format::serialize_nested::<Batch, S>(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        format::deserialize_nested::<Batch, D>(deserializer)
    }
}

#[cfg(test)]
mod tests;
