//! The internal blocks one server reported, as a set of 8-byte keys: a sorted base, rebuilt
//! from every full report, and the incremental changes since, merged into it once they are
//! an eighth of it.
//!
//! A `HashSet<(GroupId, u32)>` cost 16 bytes a key and, at its load factors, about 26 bytes
//! a copy: with nine copies of an RS-6-3 group on nine servers, more than the group's own
//! record (measured with the fleet simulator: 490 bytes a group in all). Sorted `u64` keys
//! cost 8 bytes a copy; a server's set is read whole (a full report's replacement, the groups
//! of a dead server) and otherwise only added to, removed from and counted.

use std::collections::HashSet;

use crate::namespace::blocks::GroupId;

use super::MAX_INDEX;

/// Bits of a key that hold the internal block's position.
const INDEX_BITS: u32 = MAX_INDEX.trailing_zeros();

/// The first group id a key cannot hold (ids are given out in order from 1: unreachable).
pub const GROUP_ID_LIMIT: u64 = 1 << (64 - INDEX_BITS);

/// Changes kept beside the base before it is rebuilt, at least.
const MIN_PENDING: usize = 1024;

/// One copy's key: the group's id, then the position (the caller checked both).
fn key(group: GroupId, index: u32) -> u64 {
    (group.0 << INDEX_BITS) | u64::from(index)
}

fn unkey(key: u64) -> (GroupId, u32) {
    // The low bits are below `MAX_INDEX`: the cast keeps them.
    (
        GroupId(key >> INDEX_BITS),
        (key & u64::from(MAX_INDEX - 1)) as u32,
    )
}

/// Whether `group` and `index` fit a key.
pub fn fits(group: GroupId, index: u32) -> bool {
    group.0 < GROUP_ID_LIMIT && index < MAX_INDEX
}

/// A server's reported copies, by (group, position).
#[derive(Debug, Default)]
pub struct BlockSet {
    /// Sorted, without duplicates, exactly sized.
    base: Box<[u64]>,
    /// Keys not in `base`.
    added: HashSet<u64>,
    /// Keys of `base` removed since.
    removed: HashSet<u64>,
}

impl BlockSet {
    /// The set of `copies` (which must fit a key: [`fits`]).
    pub fn of(copies: impl IntoIterator<Item = (GroupId, u32)>) -> Self {
        let mut base: Vec<u64> = copies.into_iter().map(|(g, i)| key(g, i)).collect();
        base.sort_unstable();
        base.dedup();
        Self {
            base: base.into_boxed_slice(),
            added: HashSet::new(),
            removed: HashSet::new(),
        }
    }

    fn in_base(&self, key: u64) -> bool {
        self.base.binary_search(&key).is_ok()
    }

    pub fn contains(&self, group: GroupId, index: u32) -> bool {
        let k = key(group, index);
        self.added.contains(&k) || (self.in_base(k) && !self.removed.contains(&k))
    }

    pub fn insert(&mut self, group: GroupId, index: u32) {
        let k = key(group, index);
        if self.in_base(k) {
            self.removed.remove(&k);
        } else {
            self.added.insert(k);
        }
        self.merge_if_large();
    }

    pub fn remove(&mut self, group: GroupId, index: u32) {
        let k = key(group, index);
        if !self.added.remove(&k) && self.in_base(k) {
            self.removed.insert(k);
        }
        self.merge_if_large();
    }

    pub fn len(&self) -> usize {
        self.base.len() - self.removed.len() + self.added.len()
    }

    /// Every copy, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (GroupId, u32)> + '_ {
        self.base
            .iter()
            .filter(|k| !self.removed.contains(k))
            .chain(self.added.iter())
            .map(|k| unkey(*k))
    }

    /// Folds the changes into the base once they are an eighth of it (each change then costs
    /// a constant share of the rebuild).
    fn merge_if_large(&mut self) {
        let pending = self.added.len() + self.removed.len();
        if pending <= MIN_PENDING.max(self.base.len() / 8) {
            return;
        }
        let mut base: Vec<u64> = Vec::with_capacity(self.len());
        base.extend(self.base.iter().filter(|k| !self.removed.contains(k)));
        base.extend(self.added.drain());
        base.sort_unstable();
        self.base = base.into_boxed_slice();
        self.removed = HashSet::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn keys_round_trip_at_the_limits() {
        for (g, i) in [(1, 0), (GROUP_ID_LIMIT - 1, MAX_INDEX - 1), (12345, 7)] {
            assert!(fits(GroupId(g), i));
            assert_eq!(unkey(key(GroupId(g), i)), (GroupId(g), i));
        }
        assert!(!fits(GroupId(GROUP_ID_LIMIT), 0));
        assert!(!fits(GroupId(1), MAX_INDEX));
    }

    /// Against a `BTreeSet` through enough changes to merge several times.
    #[test]
    fn behaves_as_a_set_through_merges() {
        let mut model: BTreeSet<(GroupId, u32)> = (0..3000u64)
            .map(|g| (GroupId(g + 1), (g % 9) as u32))
            .collect();
        let mut set = BlockSet::of(model.iter().copied());
        let mut x = 7u64;
        for step in 0..20_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let copy = (GroupId((x >> 33) % 5000 + 1), ((x >> 20) % 9) as u32);
            if step % 3 == 0 {
                set.remove(copy.0, copy.1);
                model.remove(&copy);
            } else {
                set.insert(copy.0, copy.1);
                model.insert(copy);
            }
            assert_eq!(set.contains(copy.0, copy.1), model.contains(&copy));
            assert_eq!(set.len(), model.len());
        }
        let got: BTreeSet<(GroupId, u32)> = set.iter().collect();
        assert_eq!(got, model);
    }
}
