//! What `fsck` reports (DESIGN §6 group health, §8 `fsck --json`): the active computes it
//! from the namespace and the blockservers' reports, the client receives it, `metactl fsck`
//! and `ec report` print it. One type on both sides of the wire.

use crate::policy::StoragePolicy;

/// What `fsck` found at or below a path (DESIGN §8): counts of files and closed groups by
/// health, the files with an unhealthy group, and every file when asked (`ec report`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    pub files: u64,
    /// Closed groups (the open group of a file being written is not judged yet).
    pub groups: u64,
    pub healthy: u64,
    pub degraded: u64,
    pub missing: u64,
    /// Files with a degraded or missing group.
    pub unhealthy: Vec<FileHealth>,
    /// Every file, when asked for.
    pub all: Vec<FileHealth>,
    pub live_blockservers: u64,
}

impl FsckReport {
    /// Adds one page of a paged `fsck` to the report of the pages before it. The number of
    /// live blockservers is the latest page's.
    pub fn merge(&mut self, page: FsckReport) {
        self.files += page.files;
        self.groups += page.groups;
        self.healthy += page.healthy;
        self.degraded += page.degraded;
        self.missing += page.missing;
        self.unhealthy.extend(page.unhealthy);
        self.all.extend(page.all);
        self.live_blockservers = page.live_blockservers;
    }
}

/// One file's groups by health, and what they store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileHealth {
    pub path: String,
    pub policy: StoragePolicy,
    pub length: u64,
    pub under_construction: bool,
    pub groups: u64,
    pub degraded: u64,
    pub missing: u64,
    /// Internal blocks the closed groups hold (a small erasure-coded group still has its m
    /// parity blocks; data blocks without bytes are not stored), and their bytes.
    pub internal_blocks: u64,
    pub stored_bytes: u64,
}
