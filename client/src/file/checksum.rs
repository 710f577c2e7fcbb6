//! A file's checksum comparable across layouts (`metactl fs checksum`; HDFS's COMPOSITE_CRC):
//! the CRC32C of its bytes, put together from the chunk checksums the blockservers stored
//! ([`raftfs_core::file_checksum`]), so that a replicated and an erasure-coded copy of the
//! same bytes, on two clusters, compare equal without either being read through the client.
//! A group whose stored checksums cannot give it (a data block missing or unreachable, cells
//! that are not whole chunks) is read instead, degraded if need be, and counted as such.

use std::time::Duration;

use raftfs_core::file_checksum::{BlockSums, Crc, group_crc};
use raftfs_core::layout::Layout;
use raftfs_core::policy::StoragePolicy;
use raftfs_proto as pb;
use serde::Serialize;

use super::FileError;
use super::block_io::data_client;
use super::reader::FileReader;
use crate::client::Client;
use crate::model::LocatedGroup;

/// How long one blockserver may take to send a block's checksums.
const SUMS_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes a group read for its checksum is read in at a time.
const READ_PIECE: u64 = 4 << 20;

/// A file's checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FileChecksum {
    /// The CRC32C of the file's bytes.
    pub crc32c: u32,
    /// The bytes it covers: the file's closed groups (all of a closed file).
    pub length: u64,
    /// Block groups, and of them those whose bytes had to be read.
    pub groups: u64,
    pub groups_read: u64,
}

/// The checksum of the file at `path` (of its closed groups, for a file being written).
pub async fn file_checksum(client: &Client, path: &str) -> Result<FileChecksum, FileError> {
    let mut out = FileChecksum {
        crc32c: 0,
        length: 0,
        groups: 0,
        groups_read: 0,
    };
    let mut crc = Crc::default();
    let mut reader: Option<FileReader> = None;
    let mut offset = 0u64;
    loop {
        let page = client.get_blocks(path, offset, 0, 0).await?;
        let policy = page.file.storage_policy.parse::<StoragePolicy>()?;
        let layout = policy.layout();
        for group in &page.groups {
            let sums = match group_from_sums(client, group, layout.as_ref()).await {
                Some(c) => c,
                None => {
                    out.groups_read += 1;
                    let r = match reader.take() {
                        Some(r) => r,
                        None => FileReader::open(client, path).await?,
                    };
                    let crc = group_from_bytes(&r, group).await?;
                    reader = Some(r);
                    crc
                }
            };
            crc = crc.then(sums);
            out.groups += 1;
            offset = group.offset.saturating_add(group.length);
        }
        if !page.more || page.groups.is_empty() {
            break;
        }
    }
    out.crc32c = crc.crc;
    out.length = crc.len;
    Ok(out)
}

/// The group's CRC from its data blocks' stored checksums; none when they cannot give it.
async fn group_from_sums(
    client: &Client,
    group: &LocatedGroup,
    layout: Option<&Layout>,
) -> Option<Crc> {
    let data_blocks = layout.map_or(1, Layout::data_cells);
    let fetched =
        futures::future::join_all((0..data_blocks).map(|i| block_sums(client, group, i as u32)))
            .await;
    group_crc(layout, group.length, |i| {
        fetched
            .get(i)
            .and_then(Option::as_ref)
            .map(|(len, sums)| BlockSums {
                len: *len,
                sums: sums.as_slice(),
            })
    })
}

/// Internal block `index`'s length and stored checksums, from the first copy that answers.
async fn block_sums(client: &Client, group: &LocatedGroup, index: u32) -> Option<(u64, Vec<u32>)> {
    for copy in group.copies(index) {
        let Ok(mut rpc) = data_client(client, &copy.addr) else {
            continue;
        };
        let req = pb::BlockChecksumsRequest {
            block: Some(pb::BlockRef {
                group: group.id.get(),
                index,
            }),
            token: group.token.0.clone(),
        };
        match tokio::time::timeout(SUMS_TIMEOUT, rpc.block_checksums(req)).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                return Some((r.length, r.checksums));
            }
            Ok(Err(e)) => {
                tracing::debug!(addr = %copy.addr, group = %group.id, index, error = %e, "no checksums");
            }
            Err(_) => {
                tracing::debug!(addr = %copy.addr, group = %group.id, index, "checksums timed out")
            }
        }
    }
    None
}

/// The group's CRC from its bytes, read (decoded around missing blocks) a piece at a time.
async fn group_from_bytes(reader: &FileReader, group: &LocatedGroup) -> Result<Crc, FileError> {
    let mut crc = Crc::default();
    let end = group.offset.saturating_add(group.length);
    let mut at = group.offset;
    while at < end {
        let n = READ_PIECE.min(end - at);
        let bytes = reader.read_at(at, n).await?;
        if bytes.len() as u64 != n {
            return Err(FileError::Unreadable {
                group: group.id,
                offset: at,
                why: format!("{} of {n} bytes", bytes.len()),
            });
        }
        crc = crc.then(Crc::of(&bytes));
        at += n;
    }
    Ok(crc)
}
