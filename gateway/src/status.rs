//! WebHDFS's JSON shapes for what the client crate returns: `FileStatus`, `ContentSummary`,
//! `FileChecksum`. Field names and types are HDFS's (permission an octal string, times in
//! milliseconds, `type` in capitals), so that clients written for HDFS parse them unchanged.

use raftfs_client::file::checksum::FileChecksum;
use raftfs_client::{ContentSummary, DiffEntry, DiffKind, FileKind, FileStatus};
use raftfs_core::policy::StoragePolicy;
use serde_json::{Value, json};

/// One `FileStatus` object. `pathSuffix` is the entry's name in a listing and empty for the
/// path itself, as HDFS answers `GETFILESTATUS`.
pub fn file_status(f: &FileStatus, path_suffix: &str) -> Value {
    let kind = match f.kind {
        FileKind::Directory => "DIRECTORY",
        FileKind::File => "FILE",
        FileKind::Symlink => "SYMLINK",
    };
    let mut v = json!({
        "accessTime": f.atime_ms,
        "blockSize": f.block_size,
        "childrenNum": f.children,
        "fileId": f.id,
        "group": f.group,
        "length": f.length,
        "modificationTime": f.mtime_ms,
        "owner": f.owner,
        "pathSuffix": path_suffix,
        "permission": format!("{:o}", f.permission & 0o7777),
        "replication": 0,
        "storagePolicy": 0,
        "type": kind,
    });
    if f.kind == FileKind::Symlink {
        v["symlink"] = json!(f.symlink_target);
    }
    if f.kind == FileKind::File {
        // HDFS shows an erasure-coded file with replication 1 and its policy's name.
        match f.storage_policy.parse::<StoragePolicy>() {
            Ok(StoragePolicy::Replicated(n)) => v["replication"] = json!(n),
            Ok(p @ StoragePolicy::ErasureCoded { .. }) => {
                v["replication"] = json!(1);
                v["ecPolicy"] = json!(p.to_string());
                v["ecBit"] = json!(true);
            }
            Err(_) => {}
        }
    }
    v
}

/// `GETFILESTATUS`'s answer.
pub fn get_file_status(f: &FileStatus) -> Value {
    json!({ "FileStatus": file_status(f, "") })
}

/// `LISTSTATUS`'s answer.
pub fn list_status(entries: &[FileStatus]) -> Value {
    let list: Vec<Value> = entries.iter().map(|e| file_status(e, &e.name)).collect();
    json!({ "FileStatuses": { "FileStatus": list } })
}

/// `LISTSTATUS_BATCH`'s answer: a page of (status, path suffix), and how many remain.
pub fn list_status_batch(entries: &[(FileStatus, &str)], remaining: u64) -> Value {
    let list: Vec<Value> = entries
        .iter()
        .map(|(e, name)| file_status(e, name))
        .collect();
    json!({
        "DirectoryListing": {
            "partialListing": { "FileStatuses": { "FileStatus": list } },
            "remainingEntries": remaining,
        }
    })
}

/// `GETCONTENTSUMMARY`'s answer. raftfs has no quotas (-1, HDFS's "none"); symbolic links
/// count as files, as HDFS counts them.
pub fn content_summary(s: &ContentSummary) -> Value {
    json!({
        "ContentSummary": {
            "directoryCount": s.directories,
            "fileCount": s.files + s.symlinks,
            "length": s.length,
            "spaceConsumed": s.space_consumed,
            "quota": -1,
            "spaceQuota": -1,
            "typeQuota": {},
        }
    })
}

/// `GETFILECHECKSUM`'s answer: HDFS's composite CRC (`dfs.checksum.combine.mode=COMPOSITE_CRC`),
/// the CRC32C of the file's bytes, which does not depend on how the file is laid out in
/// blocks, so it compares across clusters and policies as HDFS's does across block sizes.
pub fn file_checksum(c: &FileChecksum) -> Value {
    json!({
        "FileChecksum": {
            "algorithm": "COMPOSITE-CRC32C",
            "bytes": format!("{:08x}", c.crc32c),
            "length": 4,
        }
    })
}

/// `GETECPOLICY`'s answer: the erasure-coding policy in effect (HDFS's `ErasureCodingPolicy`
/// object), or null where files are replicated.
pub fn ec_policy(policy: &str) -> Value {
    let v = match policy.parse::<StoragePolicy>() {
        Ok(
            p @ StoragePolicy::ErasureCoded {
                codec,
                data,
                parity,
                cell_kib,
            },
        ) => json!({
            "name": p.to_string(),
            "codecName": codec.name().to_ascii_lowercase(),
            "numDataUnits": data,
            "numParityUnits": parity,
            "cellSize": u64::from(cell_kib) * 1024,
            "replicationPolicy": false,
            "systemPolicy": true,
        }),
        _ => Value::Null,
    };
    json!({ "ErasureCodingPolicy": v })
}

/// `GETSNAPSHOTDIFF`'s answer (HDFS's `SnapshotDiffReport`): paths relative to the snapshot
/// root, "" for the root itself; a rename has its new path as `targetPath`.
pub fn snapshot_diff(root: &str, from: &str, to: &str, diff: &[DiffEntry]) -> Value {
    let relative = |p: &str| -> String {
        let p = p.strip_prefix("./").unwrap_or(p);
        if p == "." {
            String::new()
        } else {
            p.to_owned()
        }
    };
    let list: Vec<Value> = diff
        .iter()
        .map(|e| {
            let kind = match e.kind {
                DiffKind::Created => "CREATE",
                DiffKind::Deleted => "DELETE",
                DiffKind::Modified => "MODIFY",
                DiffKind::Renamed => "RENAME",
            };
            let mut v = json!({ "sourcePath": relative(&e.path), "type": kind });
            if let Some(t) = &e.target {
                v["targetPath"] = json!(relative(t));
            }
            v
        })
        .collect();
    json!({
        "SnapshotDiffReport": {
            "diffList": list,
            "fromSnapshot": from,
            "snapshotRoot": root,
            "toSnapshot": to,
        }
    })
}
