//! The namespace as it was at a snapshot, as a [`KvRead`]: every read of `tree` (stat, list,
//! blocks, attributes, content summary) runs on it unchanged.

use std::collections::VecDeque;

use super::cow::saved_from;
use super::{SnapshotInfo, keys};
use crate::id::InodeId;
use crate::namespace::error::StoreError;
use crate::namespace::inode::ROOT_ID;
use crate::namespace::kv::{Cf, KvPair, KvRead};

/// Rows read at once from the live tree while merging a listing.
const PAGE: usize = 256;

/// The records of the snapshot `info` over the live store: for a versioned record, the
/// version saved under the smallest id `>=` the snapshot's, else the live one; nothing of an
/// inode created after it. Other column families (block groups, generations) read live:
/// the groups a snapshot shows are kept while it exists (`cow`).
pub struct SnapshotView<'a, R: ?Sized> {
    base: &'a R,
    info: SnapshotInfo,
}

impl<R: ?Sized> std::fmt::Debug for SnapshotView<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotView")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<'a, R: KvRead + ?Sized> SnapshotView<'a, R> {
    pub fn new(base: &'a R, info: SnapshotInfo) -> Self {
        Self { base, info }
    }

    pub fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    /// Whether the records of `owner` did not exist at the snapshot.
    fn after_snapshot(&self, key: &[u8]) -> bool {
        keys::u64_at(key, 0).is_none_or(|owner| InodeId(owner) >= self.info.next_inode)
    }

    /// The record at the snapshot: `Some(value)` from a saved version, `None` when none is
    /// saved for it (the live record is the snapshot's).
    fn saved(&self, tag: u8, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        Ok(saved_from(self.base, tag, key, self.info.id)?.map(|(_, s)| s.value.map(|b| b.0)))
    }

    /// The first record key above `cursor` under `prefix` that has saved versions.
    fn next_saved(
        &self,
        tag: u8,
        prefix: &[u8],
        cursor: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut scan_prefix = vec![tag];
        scan_prefix.extend_from_slice(prefix);
        // Past every version of `cursor`: its keys are `tag ++ cursor ++ 0 ++ id`, and any
        // later record key differs from `cursor` at a byte that is not 0 (names hold no NUL).
        let after = cursor.map(|c| {
            let mut k = vec![tag];
            k.extend_from_slice(c);
            k.push(0);
            k.extend_from_slice(&[0xff; 8]);
            k
        });
        let found = self
            .base
            .scan(Cf::SnapshotRecords, &scan_prefix, after.as_deref(), 1)?;
        match found.into_iter().next() {
            Some((k, _)) => {
                let end = k.len().checked_sub(9).filter(|e| *e >= 1).ok_or_else(|| {
                    StoreError::Corrupt {
                        cf: "snapshot_records",
                        reason: "short saved-record key".into(),
                    }
                })?;
                Ok(Some(k[1..end].to_vec()))
            }
            None => Ok(None),
        }
    }
}

/// A tree read from directory `anchor` down, as if it were the root: `/` loads the
/// anchor's inode, and everything below is found from it by id. A snapshot is read so, from
/// its directory: the snapshot saves the records below the directory, not the entries above
/// it, which may have moved since (the directory itself renamed).
pub struct Anchored<K> {
    inner: K,
    anchor: InodeId,
}

impl<K: KvRead> Anchored<K> {
    pub fn new(inner: K, anchor: InodeId) -> Self {
        Self { inner, anchor }
    }
}

impl<K> std::fmt::Debug for Anchored<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anchored")
            .field("anchor", &self.anchor)
            .finish_non_exhaustive()
    }
}

impl<K: KvRead> KvRead for Anchored<K> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let root = crate::namespace::keys::inode(ROOT_ID);
        if cf == Cf::Inodes && key == root.as_slice() {
            return self
                .inner
                .get(cf, &crate::namespace::keys::inode(self.anchor));
        }
        self.inner.get(cf, key)
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreError> {
        self.inner.scan(cf, prefix, after, limit)
    }
}

impl<R: KvRead + ?Sized> KvRead for SnapshotView<'_, R> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(tag) = keys::record_tag(cf) else {
            return self.base.get(cf, key);
        };
        if self.after_snapshot(key) {
            return Ok(None);
        }
        match self.saved(tag, key)? {
            Some(value) => Ok(value),
            None => self.base.get(cf, key),
        }
    }

    /// A merge of the live rows and the saved versions under `prefix`, which must be one
    /// inode's (a directory's entries, an inode's attributes): the scans `tree` makes.
    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreError> {
        let Some(tag) = keys::record_tag(cf) else {
            return self.base.scan(cf, prefix, after, limit);
        };
        if prefix.len() != 8 {
            return Err(StoreError::Corrupt {
                cf: cf.name(),
                reason: format!(
                    "a snapshot reads one inode's rows, not a {}-byte prefix",
                    prefix.len()
                ),
            });
        }
        if self.after_snapshot(prefix) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut cursor: Option<Vec<u8>> = after.map(<[u8]>::to_vec);
        let mut live: VecDeque<KvPair> = VecDeque::new();
        let mut live_after = cursor.clone();
        let mut live_done = false;
        // The next saved record key, read again only once the cursor passed it.
        let mut saved_next: Option<Option<Vec<u8>>> = None;
        while out.len() < limit {
            if live.is_empty() && !live_done {
                let page = self.base.scan(cf, prefix, live_after.as_deref(), PAGE)?;
                live_done = page.len() < PAGE;
                live_after = page.last().map(|(k, _)| k.clone()).or(live_after);
                live.extend(page);
            }
            let stale = match &saved_next {
                None => true,
                Some(Some(k)) => cursor.as_ref().is_some_and(|c| k <= c),
                Some(None) => false,
            };
            if stale {
                saved_next = Some(self.next_saved(tag, prefix, cursor.as_deref())?);
            }
            let saved_key = saved_next.clone().flatten();
            let live_key = live.front().map(|(k, _)| k.clone());
            let key = match (&live_key, &saved_key) {
                (None, None) => break,
                (Some(l), None) => l.clone(),
                (None, Some(s)) => s.clone(),
                (Some(l), Some(s)) => l.min(s).clone(),
            };
            let live_value = if live_key.as_ref() == Some(&key) {
                live.pop_front().map(|(_, v)| v)
            } else {
                None
            };
            let value = if saved_key.as_ref() == Some(&key) {
                match self.saved(tag, &key)? {
                    Some(v) => v,
                    None => live_value,
                }
            } else {
                live_value
            };
            if let Some(v) = value {
                out.push((key.clone(), v));
            }
            cursor = Some(key);
        }
        Ok(out)
    }
}
