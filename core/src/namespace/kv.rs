//! The small storage interface the namespace logic runs on, and a write overlay.
//!
//! The namespace never holds the tree in memory: every lookup is a point read or a prefix
//! scan of a column family. [`Txn`] buffers the writes of one apply batch so that later
//! operations in the same batch read them, then hands them to RocksDB as one `WriteBatch`
//! (atomic with the applied log index). [`MemKv`] is the in-memory implementation for fast
//! unit tests; the real one is the state machine's RocksDB (see `journal::state_machine`).

use std::collections::BTreeMap;
use std::ops::Bound;

use super::error::StoreError;

/// Column families of the namespace (DESIGN §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    /// inode id (u64 BE) -> inode
    Inodes,
    /// parent id (u64 BE) ++ name -> child id (u64 BE); a directory listing is a prefix scan
    Dentries,
    /// inode id (u64 BE) ++ name -> value
    Xattrs,
    /// holder -> lease record
    Leases,
    /// holder ++ 0 ++ inode id (u64 BE) -> () : the files a holder is writing
    LeaseFiles,
    /// client id ++ call id (u64 BE) -> cached result
    Retry,
    /// entry time (u64 BE) ++ client id ++ call id -> principal tag (8 bytes; empty when
    /// recorded without one): eviction order of `Retry`
    RetryOrder,
    /// principal tag ++ a `RetryOrder` key -> () : each principal's results in age order, so
    /// that a principal past its share evicts its own oldest
    RetryByPrincipal,
    /// counters, applied log id, membership
    Meta,
    /// group id (u64 BE) -> block group
    BlockGroups,
    /// inode id (u64 BE) ++ group position (u32 BE) -> group id (u64 BE)
    FileBlocks,
    /// Snapshots' own records (`snapshot::keys`): snapshottable directories, snapshot names
    /// and ids, escaped subtrees, deleted snapshots awaiting collection, retained groups
    Snapshots,
    /// Saved versions of namespace records, as they were at a snapshot (`snapshot::cow`)
    SnapshotRecords,
    /// The saved versions of each snapshot id, by owner (diff and collection)
    SnapshotChanges,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 14] = [
        Cf::Inodes,
        Cf::Dentries,
        Cf::Xattrs,
        Cf::Leases,
        Cf::LeaseFiles,
        Cf::Retry,
        Cf::RetryOrder,
        Cf::RetryByPrincipal,
        Cf::Meta,
        Cf::BlockGroups,
        Cf::FileBlocks,
        Cf::Snapshots,
        Cf::SnapshotRecords,
        Cf::SnapshotChanges,
    ];

    /// The RocksDB column family name.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Inodes => "inodes",
            Cf::Dentries => "dentries",
            Cf::Xattrs => "xattrs",
            Cf::Leases => "leases",
            Cf::LeaseFiles => "lease_files",
            Cf::Retry => "retry",
            Cf::RetryOrder => "retry_order",
            Cf::RetryByPrincipal => "retry_by_principal",
            Cf::Meta => "meta",
            Cf::BlockGroups => "block_groups",
            Cf::FileBlocks => "file_blocks",
            Cf::Snapshots => "snapshots",
            Cf::SnapshotRecords => "snapshot_records",
            Cf::SnapshotChanges => "snapshot_changes",
        }
    }
}

/// A key-value pair read from a column family.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// Read access to the stored namespace.
pub trait KvRead {
    /// The value under `key`, if any.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` pairs whose key starts with `prefix` and is strictly greater than
    /// `after` (when given), in key order.
    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreError>;
}

impl<T: KvRead + ?Sized> KvRead for &T {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(cf, key)
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreError> {
        (**self).scan(cf, prefix, after, limit)
    }
}

/// Buffered writes: `None` is a delete.
pub type Writes = BTreeMap<(Cf, Vec<u8>), Option<Vec<u8>>>;

/// A write overlay over a [`KvRead`]: reads see the overlay first.
#[derive(Debug)]
pub struct Txn<'a, R: KvRead + ?Sized> {
    base: &'a R,
    writes: Writes,
    /// What each write replaced in the overlay (`None`: the key was not in it), newest last,
    /// so that a rollback undoes exactly the writes since its savepoint. Cloning the overlay
    /// at each savepoint instead made one apply of a large batch quadratic.
    undo: Vec<Undo>,
    /// The cluster's format level: which version of each record family the writes use
    /// (`crate::level`); set by the state machine from the replicated state.
    level: crate::level::Level,
}

/// One overlay write, as [`Txn::rollback_to`] undoes it.
#[derive(Debug)]
struct Undo {
    key: (Cf, Vec<u8>),
    /// The overlay's entry before the write (`None`: there was none).
    previous: Option<Option<Vec<u8>>>,
}

/// One key an operation changed ([`Txn::changes_since`]): `None` is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub cf: Cf,
    pub key: Vec<u8>,
    pub before: Option<Vec<u8>>,
    pub after: Option<Vec<u8>>,
}

/// A point to roll a [`Txn`] back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Savepoint(usize);

impl<'a, R: KvRead + ?Sized> Txn<'a, R> {
    pub fn new(base: &'a R) -> Self {
        Self {
            base,
            writes: BTreeMap::new(),
            undo: Vec::new(),
            level: crate::level::Level::FIRST,
        }
    }

    /// Writes records at `level` from now on.
    pub fn set_level(&mut self, level: crate::level::Level) {
        self.level = level;
    }

    /// The format level the writes use.
    pub fn level(&self) -> crate::level::Level {
        self.level
    }

    fn write(&mut self, cf: Cf, key: Vec<u8>, value: Option<Vec<u8>>) {
        let previous = self.writes.insert((cf, key.clone()), value);
        self.undo.push(Undo {
            key: (cf, key),
            previous,
        });
    }

    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.write(cf, key, Some(value));
    }

    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.write(cf, key, None);
    }

    /// The buffered writes, in key order, to be committed atomically.
    pub fn into_writes(self) -> Writes {
        self.writes
    }

    /// Marks a point for [`Txn::rollback_to`].
    pub fn savepoint(&self) -> Savepoint {
        Savepoint(self.undo.len())
    }

    /// Drops every write made since `savepoint` (an operation that fails part-way leaves
    /// nothing behind).
    pub fn rollback_to(&mut self, savepoint: Savepoint) {
        while self.undo.len() > savepoint.0 {
            let Some(Undo { key, previous }) = self.undo.pop() else {
                break;
            };
            match previous {
                Some(v) => {
                    self.writes.insert(key, v);
                }
                None => {
                    self.writes.remove(&key);
                }
            }
        }
    }

    /// Every key written since `savepoint` whose value differs from what it held before the
    /// first of those writes, with both values, in key order: what one operation changed
    /// (snapshots save the `before` of what they protect).
    pub fn changes_since(&self, savepoint: Savepoint) -> Result<Vec<Change>, StoreError> {
        self.changes_since_where(savepoint, |_, _| true)
    }

    /// [`Txn::changes_since`] of the keys `wanted` picks: the value before is read (from the
    /// store, for a key the overlay did not hold) only for those.
    pub fn changes_since_where(
        &self,
        savepoint: Savepoint,
        wanted: impl Fn(Cf, &[u8]) -> bool,
    ) -> Result<Vec<Change>, StoreError> {
        let mut first: BTreeMap<&(Cf, Vec<u8>), &Undo> = BTreeMap::new();
        for undo in self.undo.get(savepoint.0..).unwrap_or_default() {
            if wanted(undo.key.0, &undo.key.1) {
                first.entry(&undo.key).or_insert(undo);
            }
        }
        let mut out = Vec::with_capacity(first.len());
        for ((cf, key), undo) in first {
            let before = match &undo.previous {
                Some(v) => v.clone(),
                None => self.base.get(*cf, key)?,
            };
            let after = self.writes.get(&(*cf, key.clone())).cloned().flatten();
            if before != after {
                out.push(Change {
                    cf: *cf,
                    key: key.clone(),
                    before,
                    after,
                });
            }
        }
        Ok(out)
    }

    /// Number of buffered writes.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

impl<R: KvRead + ?Sized> KvRead for Txn<'_, R> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(&(cf, key.to_vec())) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(cf, key),
        }
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreError> {
        let mut out: Vec<KvPair> = Vec::new();
        let mut cursor: Option<Vec<u8>> = after.map(<[u8]>::to_vec);
        // Pages of the base merged with the overlay; deletes in the overlay can make a page
        // shrink, so keep reading until `limit` or the end of the prefix.
        while out.len() < limit {
            let want = limit - out.len();
            let base = self.base.scan(cf, prefix, cursor.as_deref(), want)?;
            let base_exhausted = base.len() < want;
            let upper: Option<Vec<u8>> = if base_exhausted {
                None
            } else {
                base.last().map(|(k, _)| k.clone())
            };
            let lower = match &cursor {
                Some(c) => Bound::Excluded((cf, c.clone())),
                None => Bound::Included((cf, prefix.to_vec())),
            };
            let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> =
                base.into_iter().map(|(k, v)| (k, Some(v))).collect();
            for ((wcf, k), v) in self.writes.range((lower, Bound::Unbounded)) {
                if *wcf != cf || !k.starts_with(prefix) {
                    break;
                }
                if let Some(u) = &upper
                    && k > u
                {
                    break;
                }
                merged.insert(k.clone(), v.clone());
            }
            let last_key = match &upper {
                Some(u) => Some(u.clone()),
                None => merged.keys().next_back().cloned(),
            };
            for (k, v) in merged {
                if out.len() >= limit {
                    return Ok(out);
                }
                if let Some(v) = v {
                    out.push((k, v));
                }
            }
            if base_exhausted {
                break;
            }
            cursor = last_key;
        }
        Ok(out)
    }
}

/// An in-memory store, for unit tests of the namespace logic.
#[derive(Debug, Default, Clone)]
pub struct MemKv {
    data: BTreeMap<(Cf, Vec<u8>), Vec<u8>>,
}

impl MemKv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies committed writes.
    pub fn commit(&mut self, writes: Writes) {
        for (k, v) in writes {
            match v {
                Some(v) => {
                    self.data.insert(k, v);
                }
                None => {
                    self.data.remove(&k);
                }
            }
        }
    }
}

impl KvRead for MemKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.data.get(&(cf, key.to_vec())).cloned())
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreError> {
        let lower = match after {
            Some(a) => Bound::Excluded((cf, a.to_vec())),
            None => Bound::Included((cf, prefix.to_vec())),
        };
        Ok(self
            .data
            .range((lower, Bound::Unbounded))
            .take_while(|((c, k), _)| *c == cf && k.starts_with(prefix))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> MemKv {
        let mut m = MemKv::new();
        let mut w = Writes::new();
        for (k, v) in pairs {
            w.insert(
                (Cf::Dentries, k.as_bytes().to_vec()),
                Some(v.as_bytes().to_vec()),
            );
        }
        m.commit(w);
        m
    }

    fn keys(pairs: Vec<KvPair>) -> Vec<String> {
        pairs
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).expect("utf8"))
            .collect()
    }

    #[test]
    fn rollback_undoes_exactly_the_writes_since_the_savepoint() {
        let base = kv(&[("a", "base"), ("b", "base")]);
        let mut txn = Txn::new(&base);
        let get = |t: &Txn<'_, MemKv>, k: &str| {
            t.get(Cf::Dentries, k.as_bytes())
                .expect("get")
                .map(|v| String::from_utf8(v).expect("utf8"))
        };
        txn.put(Cf::Dentries, b"a".to_vec(), b"first".to_vec());
        let sp = txn.savepoint();
        txn.put(Cf::Dentries, b"a".to_vec(), b"second".to_vec());
        txn.put(Cf::Dentries, b"a".to_vec(), b"third".to_vec());
        txn.delete(Cf::Dentries, b"b".to_vec());
        txn.put(Cf::Dentries, b"c".to_vec(), b"new".to_vec());
        assert_eq!(get(&txn, "a").as_deref(), Some("third"));
        assert_eq!(get(&txn, "b"), None);
        txn.rollback_to(sp);
        assert_eq!(get(&txn, "a").as_deref(), Some("first"));
        assert_eq!(get(&txn, "b").as_deref(), Some("base"));
        assert_eq!(get(&txn, "c"), None);
        assert_eq!(
            txn.len(),
            1,
            "only the write before the savepoint stays buffered"
        );
    }

    #[test]
    fn overlay_scan_merges_puts_and_deletes_across_pages() {
        let base = kv(&[
            ("p/a", "1"),
            ("p/b", "1"),
            ("p/c", "1"),
            ("p/d", "1"),
            ("q/a", "1"),
        ]);
        let mut txn = Txn::new(&base);
        txn.delete(Cf::Dentries, b"p/a".to_vec());
        txn.delete(Cf::Dentries, b"p/b".to_vec());
        txn.put(Cf::Dentries, b"p/bb".to_vec(), b"2".to_vec());
        txn.put(Cf::Dentries, b"p/e".to_vec(), b"2".to_vec());
        txn.put(Cf::Inodes, b"p/zz".to_vec(), b"2".to_vec());
        let all = txn.scan(Cf::Dentries, b"p/", None, 100).expect("scan");
        assert_eq!(keys(all), ["p/bb", "p/c", "p/d", "p/e"]);
        let page = txn.scan(Cf::Dentries, b"p/", None, 2).expect("scan");
        assert_eq!(keys(page), ["p/bb", "p/c"]);
        let next = txn
            .scan(Cf::Dentries, b"p/", Some(b"p/c"), 2)
            .expect("scan");
        assert_eq!(keys(next), ["p/d", "p/e"]);
        assert_eq!(txn.get(Cf::Dentries, b"p/a").expect("get"), None);
        assert_eq!(
            txn.get(Cf::Dentries, b"p/c").expect("get"),
            Some(b"1".to_vec())
        );
    }

    #[test]
    fn overlay_scan_with_limit_one_skips_deleted_runs() {
        let base = kv(&[("p/a", "1"), ("p/b", "1"), ("p/c", "1")]);
        let mut txn = Txn::new(&base);
        txn.delete(Cf::Dentries, b"p/a".to_vec());
        txn.delete(Cf::Dentries, b"p/b".to_vec());
        assert_eq!(
            keys(txn.scan(Cf::Dentries, b"p/", None, 1).expect("scan")),
            ["p/c"]
        );
        txn.delete(Cf::Dentries, b"p/c".to_vec());
        assert!(
            txn.scan(Cf::Dentries, b"p/", None, 1)
                .expect("scan")
                .is_empty()
        );
    }
}
