//! raftfs as a mounted directory (DESIGN §15): a FUSE file system over the client crate, so
//! that shell tools, `cp`, `rsync`, `tar` and programs that know only files reach raftfs.
//! Every operation is a client call (the client's failover, state IDs, striping and
//! degraded reads); the mount adds what the kernel needs: inode numbers, open files, errno.
//!
//! - [`inodes`]: the kernel's inode numbers and the paths they stand for.
//! - [`attrs`]: `stat`'s view of a raftfs object, owners mapped to local ids.
//! - [`fs`]: the callbacks the kernel makes.
//! - [`read`], [`write`]: open files' reads (chunked, read ahead) and writes (front to back).
//! - [`dir`]: directory listings a page at a time.
//! - [`error`]: one errno for each way raftfs refuses.
//! - [`mount`]: mounting, serving until unmounted or interrupted, unmounting.

pub mod attrs;
pub mod dir;
pub mod error;
pub mod fs;
pub mod inodes;
pub mod mount;
pub mod read;
pub mod write;

pub use error::FsError;
pub use fs::{MountOptions, RaftFs};
pub use mount::serve;
