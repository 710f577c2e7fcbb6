//! proptest strategies for the domain's stored and replicated types, shared by the format
//! round-trip tests of this crate and of the metaserver (feature `proptest`). They cover the
//! whole value space the encoding must carry, not only values the namespace would accept.

use proptest::prelude::*;

use crate::id::{BlockServerId, GroupId, InodeId};
use crate::namespace::blocks::BlockGroup;
use crate::namespace::inode::{Inode, InodeKind, UnderConstruction};
use crate::namespace::throttle::ThrottleSettings;
use crate::policy::{EcCodec, StoragePolicy};

/// A short name (holders, owners, xattr names, racks), possibly empty.
pub fn name() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{0,12}"
}

/// Any policy the encoding must carry, within the caps or not.
pub fn policy() -> impl Strategy<Value = StoragePolicy> {
    prop_oneof![
        any::<u8>().prop_map(StoragePolicy::Replicated),
        (
            prop::sample::select(vec![EcCodec::Rs, EcCodec::Xor]),
            any::<u8>(),
            any::<u8>(),
            any::<u32>()
        )
            .prop_map(
                |(codec, data, parity, cell_kib)| StoragePolicy::ErasureCoded {
                    codec,
                    data,
                    parity,
                    cell_kib
                }
            ),
    ]
}

prop_compose! {
    pub fn inode()(
        ids in any::<(u64, u64)>(),
        name in name(),
        kind in prop::sample::select(vec![InodeKind::Directory, InodeKind::File, InodeKind::Symlink]),
        permission in any::<u16>(),
        owners in (name(), name()),
        times in any::<(u64, u64)>(),
        policy in policy(),
        length in any::<u64>(),
        holder in prop::option::of(name()),
        symlink_target in prop::option::of("\\PC{0,20}"),
        sizes in any::<(u64, u64, u32)>(),
    ) -> Inode {
        Inode {
            id: InodeId(ids.0),
            parent: InodeId(ids.1),
            name,
            kind,
            permission,
            owner: owners.0,
            group: owners.1,
            mtime_ms: times.0,
            atime_ms: times.1,
            policy,
            length,
            under_construction: holder.map(|holder| UnderConstruction {
                holder,
                client_machine: String::new(),
            }),
            symlink_target,
            children: sizes.0,
            block_size: sizes.1,
            block_groups: sizes.2,
        }
    }
}

prop_compose! {
    pub fn block_group()(
        id in any::<u64>(),
        inode in any::<u64>(),
        index in any::<u32>(),
        offset in any::<u64>(),
        length in prop::option::of(any::<u64>()),
        targets in prop::collection::vec(any::<u64>().prop_map(BlockServerId), 0..40),
    ) -> BlockGroup {
        BlockGroup { id: GroupId(id), inode: InodeId(inode), index, offset, length, targets }
    }
}

prop_compose! {
    pub fn throttle_settings()(
        node_bytes_per_sec in any::<u64>(),
        rack_pairs in prop::collection::btree_map((name(), name()), any::<u64>(), 0..5),
        racks in prop::collection::btree_map(name(), name(), 0..5),
        datacenter_pairs in prop::collection::btree_map((name(), name()), any::<u64>(), 0..5),
    ) -> ThrottleSettings {
        ThrottleSettings { node_bytes_per_sec, rack_pairs, racks, datacenter_pairs }
    }
}
