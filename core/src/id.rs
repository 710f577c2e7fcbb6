//! Identifiers as types (as Neon's `id_newtype!`): an inode number, a block group, a
//! blockserver, a metaserver member, a client's call, a reconstruction task. Each is a
//! `u64` on the wire and on disk (`#[serde(transparent)]`: the bytes of every versioned record,
//! and the golden fixtures, are unchanged), but a function that takes a group and an inode
//! cannot be handed them in the wrong order, nor a count where an id goes.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize,
            Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The id as the wire and the keys carry it.
            pub const fn get(self) -> u64 {
                self.0
            }

            /// The id's big-endian bytes: keys sort by id.
            pub const fn to_be_bytes(self) -> [u8; 8] {
                self.0.to_be_bytes()
            }

            /// The id stored as 8 big-endian bytes (a key's or a value's), if that is what
            /// `bytes` holds.
            pub fn from_be_slice(bytes: &[u8]) -> Option<Self> {
                Some(Self(u64::from_be_bytes(bytes.try_into().ok()?)))
            }

            /// The id `n` after this one (ids come from counters), if there is one.
            pub fn checked_add(self, n: u64) -> Option<Self> {
                self.0.checked_add(n).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                Self(v)
            }
        }

        impl From<$name> for u64 {
            fn from(v: $name) -> u64 {
                v.0
            }
        }
    };
}

id_newtype!(
    /// An inode number: allocated from a counter in the replicated state, so that every
    /// replica gives the same file the same number.
    InodeId
);
id_newtype!(
    /// A block group: allocated from a counter in the replicated state, never reused.
    GroupId
);
id_newtype!(
    /// A blockserver: chosen by its operator (its config), stable across restarts, the key
    /// of the active's registry and what a block group's targets name.
    BlockServerId
);
id_newtype!(
    /// A metaserver member: its Raft node id, chosen by the operator when the member is
    /// added; memberships, votes and log ids carry it.
    MemberId
);
id_newtype!(
    /// One call of a client, numbered by the client: with the client's id, the key of the
    /// retry cache. 0 marks a call that is not cached (the active's own operations).
    CallId
);
id_newtype!(
    /// A reconstruction task: numbered by the active's scheduler from
    /// [`TaskId::first_of_term`] of the term it is active in, so that ids are unique across
    /// failovers; an outcome is matched to its task by id, group and index together.
    TaskId
);

id_newtype!(
    /// A namespace snapshot (DESIGN §13): allocated from a counter in the replicated state,
    /// from 1, never reused, so that ids are in the order the snapshots were taken, across
    /// every directory.
    SnapshotId
);

id_newtype!(
    /// The generation stamp of a block group (HDFS's `GenerationStamp`): the active gives a
    /// new group [`Generation::FIRST`] and lease recovery the next one, so that a copy
    /// written before the recovery (a stale writer's, one the recovery never reached) is
    /// told from the copies the recovery settled. Blockservers keep it with each block.
    Generation
);

impl Generation {
    /// The generation of every new group (and of every block written before generations
    /// existed: version 1 of the token and of the checksum file).
    pub const FIRST: Generation = Generation(1);

    /// In a deletion order: whatever generation the copy has (a copy reported corrupt).
    pub const ANY: Generation = Generation(u64::MAX);

    /// The generation after this one.
    pub const fn next(self) -> Generation {
        Generation(self.0.saturating_add(1))
    }
}

impl TaskId {
    /// The first task id of Raft term `term`: the term in the high 32 bits, a counter from 1
    /// in the low ones (4 billion tasks a term; terms past 2^32 saturate).
    pub const fn first_of_term(term: u64) -> TaskId {
        TaskId(term.saturating_mul(1 << 32).saturating_add(1))
    }
}

impl CallId {
    /// The id of calls that the retry cache does not keep.
    pub const UNCACHED: CallId = CallId(0);
}

/// A client's identity: 16 random bytes drawn by each client object, with [`CallId`] the key
/// of the retry cache (as HDFS's RetryCache keys on its client id and call id).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct ClientId(pub [u8; 16]);

impl ClientId {
    /// The id the retry cache files a call under: this client id bound to the authenticated
    /// principal that sent it (DESIGN §9). Another principal that learns the client id (it is
    /// the lease holder `stat` shows) files its calls under another key, so it can neither
    /// pre-record results under the victim's future call ids nor be answered from them.
    /// Computed by the active and carried in the entry, so every member files alike.
    pub fn scoped_to(&self, principal: &str) -> ClientId {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"raftfs retry scope v1\0");
        h.update((principal.len() as u64).to_be_bytes());
        h.update(principal.as_bytes());
        h.update(self.0);
        let digest = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        ClientId(out)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
