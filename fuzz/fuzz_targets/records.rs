//! Decoding of every versioned record raftfs persists or sends between metaservers
//! (`core/src/format.rs`'s envelope): the namespace's records (`core/src/namespace/inode.rs`:
//! inode, lease record, block group, throttle settings, block keys, the federation's mount
//! table) and the journal's
//! (`metaserver/src/journal/format.rs`: Raft entries and the batch nested in them, vote, log
//! ids, membership, retry results, snapshot metadata, and each Raft RPC's request and reply).
//! These bytes come from disk (a corrupt or foreign file) or from a peer.
//!
//! Property: decoding any bytes as any family never panics and allocates within the heap
//! cap (a length prefix is never trusted for an allocation); and whenever decoding succeeds,
//! the value re-encodes, that encoding decodes to the same value (compared by `Debug`, which
//! every family has), and re-encoding that gives the same bytes: decode -> encode -> decode
//! round-trips, so a record a member accepted is one it can pass on unchanged.
//!
//! The first byte picks the family; the rest is the record.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use raftfs_core::format::{self, Schema};
use raftfs_core::namespace::Inode;
use raftfs_core::namespace::block_keys::BlockKeys;
use raftfs_core::namespace::blocks::BlockGroup;
use raftfs_core::namespace::inode::LeaseRecord;
use raftfs_core::namespace::mounts::MountRecord;
use raftfs_core::namespace::throttle::ThrottleSettings;
use raftfs_fuzz as _;
use raftfs_metaserver::journal::Batch;
use raftfs_metaserver::journal::format::{
    AppliedRecord, CommittedRecord, LogEntry, MembershipRecord, PurgedRecord, RetryResult,
    SnapshotMetaRecord, VoteRecord, rpc,
};

fn round_trip<S: Schema>(bytes: &[u8])
where
    S::Value: Debug,
{
    let Ok(value) = format::decode::<S>(bytes) else {
        return;
    };
    let encoded = format::encode::<S>(&value).expect("a decoded record encodes");
    let again = format::decode::<S>(&encoded).expect("a re-encoded record decodes");
    assert_eq!(format!("{value:?}"), format!("{again:?}"), "{}", S::RECORD);
    let twice = format::encode::<S>(&again).expect("encodes");
    assert_eq!(encoded, twice, "{}: encoding is not stable", S::RECORD);
    assert_eq!(format::version_of(S::RECORD, &encoded), Ok(S::CURRENT));
}

fuzz_target!(|data: &[u8]| {
    let Some((&family, bytes)) = data.split_first() else {
        return;
    };
    match family % 20 {
        0 => round_trip::<Inode>(bytes),
        1 => round_trip::<LeaseRecord>(bytes),
        2 => round_trip::<BlockGroup>(bytes),
        3 => round_trip::<ThrottleSettings>(bytes),
        4 => round_trip::<Batch>(bytes),
        5 => round_trip::<LogEntry>(bytes),
        6 => round_trip::<VoteRecord>(bytes),
        7 => round_trip::<CommittedRecord>(bytes),
        8 => round_trip::<PurgedRecord>(bytes),
        9 => round_trip::<AppliedRecord>(bytes),
        10 => round_trip::<MembershipRecord>(bytes),
        11 => round_trip::<RetryResult>(bytes),
        12 => round_trip::<SnapshotMetaRecord>(bytes),
        13 => round_trip::<rpc::AppendEntries>(bytes),
        14 => round_trip::<rpc::AppendEntriesReply>(bytes),
        15 => round_trip::<rpc::VoteRequest>(bytes),
        16 => round_trip::<rpc::VoteReply>(bytes),
        17 => {
            round_trip::<rpc::InstallSnapshot>(bytes);
            round_trip::<rpc::InstallSnapshotReply>(bytes);
        }
        18 => round_trip::<MountRecord>(bytes),
        _ => round_trip::<BlockKeys>(bytes),
    }
});
