//! A synthetic namespace written straight into a state machine's RocksDB, for benchmarks at
//! sizes that cannot be created one RPC at a time (issue #15: 100 million objects at ~7,000
//! creates/s would take four hours).
//!
//! The records are those the namespace's own operations write (the same keys and versioned
//! encodings, `namespace::keys`, `namespace::inode`), streamed in key order into RocksDB SST
//! files (`SstFileWriter`, no WAL, no memtable, no compaction) and ingested into a new DB. A
//! state machine opened over it serves the tree; every member of a cluster started from the
//! same generated DB holds the same state (`metactl local up --seed`), and the applied log id
//! is none, so the journal starts empty.
//!
//! # The tree
//!
//! `/gen` holds a tree of directories with at most `fanout` subdirectories each; its leaves
//! hold `files_per_dir` files each (the last one the rest). Directories are named `dNNNN` and
//! files `fNNNNNN`, by position in their parent. Inode ids are handed out breadth first
//! (directories level by level, then the files leaf by leaf), so that every column family is
//! written in key order in one pass: a directory's entries sort by name and their ids grow
//! with their names. Each file is closed, `file_length` bytes long, in groups of
//! `block_size` bytes (the last one shorter) of the default policy, placed on blockservers
//! 1, 2 and 3: a generated namespace has no blocks on any blockserver (fsck reports its
//! groups missing); it is a namespace to measure the metaserver with, not data.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rocksdb::{Cache, IngestExternalFileOptions, Options, SstFileWriter};

use crate::journal::rocks;
use crate::namespace::blocks::{BlockGroup, FIRST_GROUP_ID, GroupId};
use crate::namespace::inode::{
    FIRST_ALLOCATED_ID, Inode, InodeId, InodeKind, ROOT_ID, StoragePolicy, encode,
};
use crate::namespace::keys;
use crate::namespace::kv::Cf;
use raftfs_core::id::BlockServerId;

/// SST files are rolled over at this size, near the size of RocksDB's own compaction
/// outputs (64 MiB by default), so that later compactions work on pieces.
const SST_BYTES: u64 = 32 << 20;

pub use raftfs_core::synthetic::Shape;
use raftfs_core::synthetic::levels;

/// What a generation wrote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Generated {
    pub directories: u64,
    pub files: u64,
    pub groups: u64,
    /// Bytes of the DB's files once ingested.
    pub bytes: u64,
    pub seconds: f64,
}

impl Generated {
    /// Namespace objects as HDFS counts them: files, directories and blocks.
    pub fn objects(&self) -> u64 {
        self.files + self.directories + self.groups
    }
}

/// Why a generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid shape: {0}")]
    Shape(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rocksdb: {0}")]
    Engine(#[from] rocksdb::Error),
}

/// Ids, counts and names of the tree, from its shape alone.
struct Tree {
    shape: Shape,
    levels: Vec<u64>,
    /// First id of each level; the files' first id after the last.
    bases: Vec<u64>,
    groups_per_file: u32,
    now_ms: u64,
}

impl Tree {
    fn new(shape: Shape, now_ms: u64) -> Result<Self, GenerateError> {
        // Names are fixed-width (`dNNNN`, `fNNNNNN`), so that they sort as their ids.
        if shape.files == 0
            || !(1..=1_000_000).contains(&shape.files_per_dir)
            || !(2..=10_000).contains(&shape.fanout)
        {
            return Err(GenerateError::Shape(
                "files must be > 0, files-per-dir 1..=1000000 and fanout 2..=10000".into(),
            ));
        }
        if shape.block_size == 0 || !shape.block_size.is_multiple_of(1 << 20) {
            return Err(GenerateError::Shape(
                "block-size must be a positive multiple of 1 MiB".into(),
            ));
        }
        let groups_per_file = u32::try_from(shape.file_length.div_ceil(shape.block_size))
            .map_err(|_| GenerateError::Shape("too many groups per file".into()))?;
        shape
            .files
            .checked_mul(u64::from(groups_per_file))
            .and_then(|n| n.checked_add(FIRST_GROUP_ID.0))
            .ok_or_else(|| GenerateError::Shape("block group ids exhausted".into()))?;
        let levels = levels(&shape);
        let mut bases = Vec::with_capacity(levels.len() + 1);
        let mut next = FIRST_ALLOCATED_ID.0;
        for n in levels.iter().chain(std::iter::once(&shape.files)) {
            bases.push(next);
            next = next
                .checked_add(*n)
                .ok_or_else(|| GenerateError::Shape("inode ids exhausted".into()))?;
        }
        Ok(Self {
            shape,
            levels,
            bases,
            groups_per_file,
            now_ms,
        })
    }

    fn files_base(&self) -> u64 {
        self.bases[self.levels.len()]
    }

    fn next_inode(&self) -> u64 {
        self.files_base() + self.shape.files
    }

    fn directories(&self) -> u64 {
        self.levels.iter().sum()
    }

    /// Children of directory `j` of level `level`: (first child's index in the level below,
    /// how many).
    fn children(&self, level: usize, j: u64) -> (u64, u64) {
        let (per, below) = match self.levels.get(level + 1) {
            Some(n) => (self.shape.fanout, *n),
            None => (self.shape.files_per_dir, self.shape.files),
        };
        let first = j * per;
        (first, per.min(below.saturating_sub(first)))
    }

    fn dir_inode(&self, level: usize, j: u64) -> Inode {
        let (parent, name) = if level == 0 {
            (ROOT_ID, "gen".to_owned())
        } else {
            let per = self.shape.fanout;
            (
                InodeId(self.bases[level - 1] + j / per),
                raftfs_core::synthetic::dir_name(j % per),
            )
        };
        Inode {
            id: InodeId(self.bases[level] + j),
            parent,
            name,
            kind: InodeKind::Directory,
            children: self.children(level, j).1,
            mtime_ms: self.now_ms,
            atime_ms: self.now_ms,
            ..Inode::root()
        }
    }

    fn file_inode(&self, f: u64) -> Inode {
        let per = self.shape.files_per_dir;
        let leaves = self.levels.len() - 1;
        Inode {
            id: InodeId(self.files_base() + f),
            parent: InodeId(self.bases[leaves] + f / per),
            name: raftfs_core::synthetic::file_name(f % per),
            kind: InodeKind::File,
            permission: 0o644,
            owner: "gen".into(),
            mtime_ms: self.now_ms,
            atime_ms: self.now_ms,
            policy: StoragePolicy::default(),
            length: self.shape.file_length,
            block_size: self.shape.block_size,
            block_groups: self.groups_per_file,
            ..Inode::root()
        }
    }

    fn group(&self, f: u64, index: u32) -> BlockGroup {
        let offset = u64::from(index) * self.shape.block_size;
        BlockGroup {
            id: GroupId(FIRST_GROUP_ID.0 + f * u64::from(self.groups_per_file) + u64::from(index)),
            inode: InodeId(self.files_base() + f),
            index,
            offset,
            length: Some(self.shape.block_size.min(self.shape.file_length - offset)),
            targets: [1, 2, 3].map(BlockServerId).to_vec(),
        }
    }
}

/// SST files of one column family, rolled over at [`SST_BYTES`].
struct CfWriter<'a> {
    opts: &'a Options,
    dir: PathBuf,
    cf: Cf,
    writer: Option<SstFileWriter<'a>>,
    files: Vec<PathBuf>,
}

impl<'a> CfWriter<'a> {
    fn new(opts: &'a Options, dir: &Path, cf: Cf) -> Self {
        Self {
            opts,
            dir: dir.to_owned(),
            cf,
            writer: None,
            files: Vec::new(),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), GenerateError> {
        if self
            .writer
            .as_ref()
            .is_some_and(|w| w.file_size() >= SST_BYTES)
        {
            self.finish_file()?;
        }
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                let path = self
                    .dir
                    .join(format!("{}-{:05}.sst", self.cf.name(), self.files.len()));
                let w = SstFileWriter::create(self.opts);
                w.open(&path)?;
                self.files.push(path);
                self.writer.insert(w)
            }
        };
        writer.put(key, value)?;
        Ok(())
    }

    fn finish_file(&mut self) -> Result<(), GenerateError> {
        if let Some(mut w) = self.writer.take() {
            w.finish()?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(Cf, Vec<PathBuf>), GenerateError> {
        self.finish_file()?;
        Ok((self.cf, self.files))
    }
}

/// Writes the inodes and directory entries, in key order.
fn write_tree(
    tree: &Tree,
    opts: &Options,
    dir: &Path,
) -> Result<Vec<(Cf, Vec<PathBuf>)>, GenerateError> {
    let mut inodes = CfWriter::new(opts, dir, Cf::Inodes);
    let mut dentries = CfWriter::new(opts, dir, Cf::Dentries);
    let root = Inode {
        children: 1,
        mtime_ms: tree.now_ms,
        ..Inode::root()
    };
    inodes.put(&keys::inode(ROOT_ID), &encode(&root))?;
    dentries.put(
        &keys::dentry(ROOT_ID, "gen"),
        &InodeId(tree.bases[0]).to_be_bytes(),
    )?;
    for (level, count) in tree.levels.iter().enumerate() {
        for j in 0..*count {
            let dir_inode = tree.dir_inode(level, j);
            inodes.put(&keys::inode(dir_inode.id), &encode(&dir_inode))?;
        }
    }
    for f in 0..tree.shape.files {
        let file = tree.file_inode(f);
        inodes.put(&keys::inode(file.id), &encode(&file))?;
    }
    // Entries, parent by parent in id order (the same breadth-first order).
    let leaves = tree.levels.len() - 1;
    for (level, count) in tree.levels.iter().enumerate() {
        for j in 0..*count {
            let parent = InodeId(tree.bases[level] + j);
            let (first, n) = tree.children(level, j);
            for c in first..first + n {
                let child = if level == leaves {
                    tree.file_inode(c)
                } else {
                    tree.dir_inode(level + 1, c)
                };
                dentries.put(&keys::dentry(parent, &child.name), &child.id.to_be_bytes())?;
            }
        }
    }
    Ok(vec![inodes.finish()?, dentries.finish()?])
}

/// Writes the files' block groups and the id counters, in key order.
fn write_groups(
    tree: &Tree,
    opts: &Options,
    dir: &Path,
) -> Result<Vec<(Cf, Vec<PathBuf>)>, GenerateError> {
    let mut file_blocks = CfWriter::new(opts, dir, Cf::FileBlocks);
    let mut groups = CfWriter::new(opts, dir, Cf::BlockGroups);
    for f in 0..tree.shape.files {
        for index in 0..tree.groups_per_file {
            let g = tree.group(f, index);
            file_blocks.put(&keys::file_block(g.inode, index), &g.id.to_be_bytes())?;
            groups.put(&keys::group(g.id), &encode(&g))?;
        }
    }
    let mut meta = CfWriter::new(opts, dir, Cf::Meta);
    let next_group = FIRST_GROUP_ID.0 + tree.shape.files * u64::from(tree.groups_per_file);
    // Keys in byte order: next_group < next_inode.
    meta.put(keys::meta::NEXT_GROUP, &next_group.to_be_bytes())?;
    meta.put(keys::meta::NEXT_INODE, &tree.next_inode().to_be_bytes())?;
    Ok(vec![
        file_blocks.finish()?,
        groups.finish()?,
        meta.finish()?,
    ])
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Generates the namespace of `shape` into a new state-machine DB at `out` (which must not
/// exist), with `now_ms` as every inode's times.
pub fn generate(out: &Path, shape: &Shape, now_ms: u64) -> Result<Generated, GenerateError> {
    let start = Instant::now();
    let tree = Tree::new(*shape, now_ms)?;
    if out.exists() {
        return Err(GenerateError::Shape(format!(
            "{} exists already",
            out.display()
        )));
    }
    let staging = out.with_extension("sst-staging");
    std::fs::create_dir_all(&staging).map_err(|source| GenerateError::Io {
        path: staging.clone(),
        source,
    })?;
    // The column families' own options (LZ4, bloom filters), so that the ingested files
    // serve lookups as flushed ones do.
    let opts = rocks::cf_options(&Cache::new_lru_cache(8 << 20));
    // The two halves on the two cores.
    let written = std::thread::scope(|s| {
        let groups = s.spawn(|| write_groups(&tree, &opts, &staging));
        let tree_files = write_tree(&tree, &opts, &staging);
        let groups = groups
            .join()
            .map_err(|_| GenerateError::Shape("the group writer panicked".into()))?;
        Ok::<_, GenerateError>([tree_files?, groups?].concat())
    })?;
    let cf_names: Vec<&str> = Cf::ALL.iter().map(|c| c.name()).collect();
    let db = rocks::open(out, &cf_names, &rocks::Memory::default())?;
    let mut ingest = IngestExternalFileOptions::default();
    ingest.set_move_files(true);
    for (cf, files) in written {
        if files.is_empty() {
            continue;
        }
        let handle = db
            .cf_handle(cf.name())
            .ok_or_else(|| GenerateError::Shape(format!("no column family {}", cf.name())))?;
        db.ingest_external_file_cf_opts(handle, &ingest, files)?;
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&staging);
    Ok(Generated {
        directories: tree.directories(),
        files: shape.files,
        groups: shape.files * u64::from(tree.groups_per_file),
        bytes: dir_bytes(out),
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::rocks::LiveKv;
    use crate::namespace::{NsPath, blocks, tree};

    fn small() -> Shape {
        Shape {
            files: 2_345,
            files_per_dir: 100,
            fanout: 4,
            file_length: 300 << 20,
            block_size: 128 << 20,
        }
    }

    #[test]
    fn shapes_that_cannot_be_written_are_refused() {
        let refused = |shape: Shape| matches!(Tree::new(shape, 0), Err(GenerateError::Shape(_)));
        assert!(refused(Shape {
            fanout: 1,
            ..small()
        }));
        assert!(refused(Shape {
            fanout: 10_001,
            ..small()
        }));
        assert!(refused(Shape {
            files_per_dir: 0,
            ..small()
        }));
        assert!(refused(Shape {
            block_size: 1000,
            ..small()
        }));
        assert!(refused(Shape {
            files: u64::MAX / 2,
            ..small()
        }));
        assert!(refused(Shape {
            file_length: u64::MAX,
            block_size: 1 << 20,
            ..small()
        }));
        assert!(!refused(small()));
    }

    #[test]
    fn a_generated_namespace_reads_as_if_its_operations_had_written_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("sm");
        let got = generate(&out, &small(), 1_000).expect("generate");
        assert_eq!(
            (got.directories, got.files, got.groups),
            (1 + 2 + 6 + 24, 2_345, 3 * 2_345)
        );
        let cf_names: Vec<&str> = Cf::ALL.iter().map(|c| c.name()).collect();
        let db = rocks::open(&out, &cf_names, &rocks::Memory::default()).expect("open");
        let kv = LiveKv(&db);
        let p = |s: &str| NsPath::parse(s).expect("path");
        // The walk of the whole tree finds every file, each with its three groups.
        let mut files = 0;
        tree::walk_files(&kv, &p("/gen"), |path, inode| {
            // The shape's path arithmetic (loadgen's) names the same files in the same order.
            assert_eq!(
                raftfs_core::synthetic::file_path(&small(), files).as_deref(),
                Some(path)
            );
            files += 1;
            assert_eq!(
                tree::path_of(&kv, inode.id).expect("path").as_deref(),
                Some(path)
            );
            let groups = blocks::of_file(&kv, inode).expect("groups");
            let lengths: Vec<_> = groups.iter().map(|g| g.length).collect();
            assert_eq!(
                lengths,
                vec![Some(128 << 20), Some(128 << 20), Some(44 << 20)]
            );
            Ok(())
        })
        .expect("walk");
        assert_eq!(files, 2_345);
        let summary = tree::content_summary(&kv, &p("/gen"), None).expect("summary");
        assert_eq!((summary.directories, summary.files), (33, 2_345));
        assert_eq!(summary.length, 2_345 * (300 << 20));
        // The last leaf holds the rest; listings are in name order.
        let (last, more) = tree::list(&kv, &p("/gen/d0001/d0001/d0003"), None, 1_000).expect("ls");
        assert!(!more);
        assert_eq!(last.len(), 45);
        assert_eq!(last[0].name, "f000000");
        // New operations go on from the generated counters.
        let mut txn = crate::namespace::kv::Txn::new(&kv);
        let ctx = crate::namespace::ApplyCtx {
            now_ms: 2_000,
            lease_ms: 60_000,
        };
        let made = tree::apply(
            &mut txn,
            &ctx,
            &crate::namespace::Op::Mkdir {
                path: p("/gen/new"),
                parents: false,
                permission: 0o755,
                owner: "u".into(),
                group: None,
            },
        )
        .expect("mkdir");
        let crate::namespace::OpOutput::Inode(made) = made else {
            panic!("mkdir gave {made:?}");
        };
        assert_eq!(
            made.id,
            InodeId(
                tree::stat(&kv, &p("/gen/d0001/d0001/d0003/f000044"))
                    .expect("stat")
                    .id
                    .0
                    + 1
            )
        );
    }
}
