//! What `stat` shows of a raftfs object: its kind, mode, size and times, and its owner and
//! group as this machine's numeric ids. raftfs keeps owners by name, as HDFS does; the mount
//! maps names through the local user database (as fuse-dfs does), and a name the machine
//! does not know but which is a number stands for that number, so that `chown 1234` of a
//! user this machine lacks comes back as 1234.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use nix::unistd::{Gid, Group, Uid, User};
use raftfs_client::{FileKind, FileStatus};

/// The id shown for an owner or group this machine does not know (`nobody`).
pub const NOBODY: u32 = 65534;

/// The I/O size `stat` advises (`st_blksize`): tools such as `cp` read and write in pieces
/// of this size, and bigger pieces mean fewer round trips through the kernel.
pub const IO_SIZE: u32 = 1 << 20;

/// Names to ids and back, remembered for the mount's lifetime.
#[derive(Debug, Default)]
pub struct Owners {
    uids: Mutex<HashMap<String, u32>>,
    gids: Mutex<HashMap<String, u32>>,
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

fn cached<K, V>(map: &Mutex<HashMap<K, V>>, key: K, look_up: impl FnOnce(&K) -> V) -> V
where
    K: std::hash::Hash + Eq,
    V: Clone,
{
    let mut m = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(v) = m.get(&key) {
        return v.clone();
    }
    let v = look_up(&key);
    m.insert(key, v.clone());
    v
}

impl Owners {
    /// The uid of user `name`.
    pub fn uid(&self, name: &str) -> u32 {
        cached(&self.uids, name.to_owned(), |n| {
            match User::from_name(n) {
                Ok(Some(u)) => Some(u.uid.as_raw()),
                _ => n.parse().ok(),
            }
            .unwrap_or(NOBODY)
        })
    }

    /// The gid of group `name`.
    pub fn gid(&self, name: &str) -> u32 {
        cached(&self.gids, name.to_owned(), |n| {
            match Group::from_name(n) {
                Ok(Some(g)) => Some(g.gid.as_raw()),
                _ => n.parse().ok(),
            }
            .unwrap_or(NOBODY)
        })
    }

    /// The name raftfs keeps for uid `uid`.
    pub fn user_name(&self, uid: u32) -> String {
        cached(&self.users, uid, |&id| {
            match User::from_uid(Uid::from_raw(id)) {
                Ok(Some(u)) => u.name,
                _ => id.to_string(),
            }
        })
    }

    /// The name raftfs keeps for gid `gid`.
    pub fn group_name(&self, gid: u32) -> String {
        cached(&self.groups, gid, |&id| {
            match Group::from_gid(Gid::from_raw(id)) {
                Ok(Some(g)) => g.name,
                _ => id.to_string(),
            }
        })
    }
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Milliseconds since the epoch of `t` (0 before it).
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The kernel's view of `status` as inode `ino`; `size` overrides the length while this
/// mount writes the file (the metaservers count only what is complete).
pub fn attr(ino: u64, status: &FileStatus, size: Option<u64>, owners: &Owners) -> FileAttr {
    let size = size.map_or(status.length, |s| s.max(status.length));
    let (kind, nlink, size) = match status.kind {
        FileKind::Directory => (FileType::Directory, 2, 4096),
        FileKind::File => (FileType::RegularFile, 1, size),
        FileKind::Symlink => (FileType::Symlink, 1, status.symlink_target.len() as u64),
    };
    let mtime = time(status.mtime_ms);
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: time(status.atime_ms),
        mtime,
        // raftfs keeps no change time: the modification time stands in (as in HDFS's NFS
        // gateway).
        ctime: mtime,
        crtime: mtime,
        kind,
        perm: u16::try_from(status.permission & 0o7777).unwrap_or(0),
        nlink,
        uid: owners.uid(&status.owner),
        gid: owners.gid(&status.group),
        rdev: 0,
        blksize: IO_SIZE,
        flags: 0,
    }
}

/// Attributes of a directory the mount lists but did not stat (`.` and `..` in a listing,
/// which the kernel does not take).
pub fn directory(ino: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 4096,
        blocks: 8,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::Directory,
        perm: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: IO_SIZE,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(kind: FileKind) -> FileStatus {
        FileStatus {
            id: 7,
            name: "f".into(),
            kind,
            permission: 0o1755,
            owner: "root".into(),
            group: "4321".into(),
            mtime_ms: 1_500,
            atime_ms: 1_000,
            storage_policy: String::new(),
            length: 1000,
            under_construction: false,
            lease_holder: String::new(),
            symlink_target: "../t".into(),
            children: 0,
            block_size: 0,
            block_groups: 0,
        }
    }

    #[test]
    fn a_file_shows_its_mode_size_times_and_owners() {
        let owners = Owners::default();
        let a = attr(9, &status(FileKind::File), None, &owners);
        assert_eq!(a.ino, INodeNo(9));
        assert_eq!(
            (a.kind, a.perm, a.size, a.blocks),
            (FileType::RegularFile, 0o1755, 1000, 2)
        );
        assert_eq!(a.mtime, UNIX_EPOCH + Duration::from_millis(1_500));
        assert_eq!(a.uid, 0, "root is uid 0 on every machine");
        assert_eq!(
            a.gid, 4321,
            "an unknown numeric group stands for its number"
        );
        assert_eq!(
            attr(9, &status(FileKind::File), Some(5000), &owners).size,
            5000
        );
        assert_eq!(attr(9, &status(FileKind::Symlink), None, &owners).size, 4);
    }

    #[test]
    fn names_and_ids_map_both_ways() {
        let owners = Owners::default();
        assert_eq!(owners.user_name(0), "root");
        assert_eq!(owners.uid("no-such-user-here"), NOBODY);
        assert_eq!(owners.user_name(123_456), "123456");
        assert_eq!(owners.uid("123456"), 123_456);
    }
}
