//! ReadBlock: bytes `[offset, offset+length)` of a finalized block (length 0: to the end),
//! verified against their checksums and streamed in pieces of at most [`READ_PIECE`] bytes,
//! aligned to piece boundaries of the block so that no checksum chunk is read twice.
//!
//! A producer task reads the next piece on a blocking thread while the previous one is being
//! sent. A checksum mismatch ends the stream with `DataLoss`/`CORRUPT_BLOCK` and is reported
//! to every metaserver in the background, so that the active rebuilds the block.

use std::sync::Arc;
use std::time::Instant;

use raftfs_core::block_token::Mode;
use raftfs_core::identity::Caller;
use raftfs_core::policy::CHECKSUM_CHUNK;
use raftfs_proto as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::Instrument;

use super::{BlockNode, READ_PIECE, ReadStream};
use crate::convert;
use crate::error::BlockError;
use crate::store::{BlockId, StoreError};

/// Pieces read ahead of the one being sent.
const READ_AHEAD: usize = 2;

/// The pieces `[from, to)` is sent in: each ends at a multiple of `piece` or at `to`.
pub(crate) fn pieces(from: u64, to: u64, piece: u64) -> impl Iterator<Item = (u64, u64)> {
    let mut pos = from;
    std::iter::from_fn(move || {
        if pos >= to || piece == 0 {
            return None;
        }
        let len = (piece - pos % piece).min(to - pos);
        let p = (pos, len);
        pos += len;
        Some(p)
    })
}

/// Checks the request and starts the producer; errors before the first byte (no such block,
/// a range beyond it) are the RPC's status.
pub(super) async fn read_block(
    node: Arc<BlockNode>,
    caller: &Caller,
    request: pb::ReadBlockRequest,
    start: Instant,
) -> Result<ReadStream, BlockError> {
    let block = convert::block_ref(super::pool_of(&request.token), request.block.as_ref())?;
    let want = super::want(node.id, block, Mode::Read);
    let claims = super::check_token(&node, "read_block", caller, &request.token, want).await?;
    let (length, _) = super::current(&node, block, claims.generation).await?;
    let (offset, len) = (request.offset, request.length);
    let end = if len == 0 {
        Some(length).filter(|_| offset <= length)
    } else {
        offset.checked_add(len).filter(|e| *e <= length)
    };
    let Some(end) = end else {
        return Err(StoreError::OutOfRange {
            block,
            length,
            offset,
            len,
        }
        .into());
    };
    // With checksums, whole chunks: the reader can check each against its stored CRC32C.
    let (offset, end) = if request.checksums {
        (
            offset - offset % CHECKSUM_CHUNK,
            end.next_multiple_of(CHECKSUM_CHUNK).min(length),
        )
    } else {
        (offset, end)
    };
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let read = Read {
        block,
        offset,
        end,
        checksums: request.checksums,
    };
    tokio::spawn(produce(node, read, tx, start).instrument(tracing::Span::current()));
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// What the producer sends.
#[derive(Debug, Clone, Copy)]
struct Read {
    block: BlockId,
    offset: u64,
    end: u64,
    /// Whole chunks, each message with its offset and stored checksums.
    checksums: bool,
}

/// One piece of a read, with its checksums when asked for.
fn read_piece(
    volumes: &crate::volumes::Volumes,
    read: Read,
    pos: u64,
    len: u64,
) -> Result<pb::ReadBlockResponse, BlockError> {
    if read.checksums {
        let c = volumes.read_chunks(read.block, pos, len)?;
        Ok(pb::ReadBlockResponse {
            data: c.data,
            offset: c.offset,
            checksums: c.sums,
        })
    } else {
        Ok(pb::ReadBlockResponse {
            data: volumes.read(read.block, pos, len)?,
            offset: pos,
            checksums: Vec::new(),
        })
    }
}

async fn produce(
    node: Arc<BlockNode>,
    read: Read,
    tx: mpsc::Sender<Result<pb::ReadBlockResponse, Status>>,
    start: Instant,
) {
    let mut ok = true;
    let block = read.block;
    for (pos, len) in pieces(read.offset, read.end, READ_PIECE) {
        let volumes = node.volumes.clone();
        let r = tokio::task::spawn_blocking(move || read_piece(&volumes, read, pos, len))
            .await
            .map_err(BlockError::from)
            .and_then(|r| r);
        match r {
            Ok(piece) => {
                if tx.send(Ok(piece)).await.is_err() {
                    // The reader went away; nothing more to do.
                    ok = false;
                    break;
                }
                node.metrics.read(len);
            }
            Err(e) => {
                ok = false;
                if let BlockError::Store(StoreError::Corrupt { .. }) = &e {
                    tracing::warn!(%block, error = %e, "corrupt block: reporting it");
                    node.metrics.corrupt_read();
                    node.metaservers.report_corrupt(block, e.to_string());
                } else {
                    tracing::info!(%block, error = %e, "read failed");
                }
                let _ = tx.send(Err(e.into())).await;
                break;
            }
        }
    }
    node.metrics.observe_rpc("read_block", start.elapsed(), ok);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_range_once_and_end_on_piece_boundaries() {
        let got: Vec<_> = pieces(0, 0, 10).collect();
        assert!(got.is_empty());
        let got: Vec<_> = pieces(3, 25, 10).collect();
        assert_eq!(got, vec![(3, 7), (10, 10), (20, 5)]);
        let got: Vec<_> = pieces(10, 20, 10).collect();
        assert_eq!(got, vec![(10, 10)]);
        for (from, to) in [(0, 1), (0, 10), (7, 31), (9, 11)] {
            let ps: Vec<_> = pieces(from, to, 10).collect();
            assert_eq!(ps.first().map(|p| p.0), Some(from));
            assert_eq!(ps.iter().map(|p| p.1).sum::<u64>(), to - from);
            assert!(ps.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
            assert!(ps.iter().all(|p| p.1 > 0 && p.1 <= 10));
        }
    }
}
