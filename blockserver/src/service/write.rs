//! WriteBlock: the first message names the block, every message may carry bytes, the last one
//! says finalize.
//!
//! The bytes go to a worker on a blocking thread through a short queue, so that receiving the
//! next message and writing the last one overlap. The worker finalizes when told to and also
//! when the queue closes without being told: a stream that ends or fails before finalize (the
//! writer died, or its connection did, which drops this handler altogether) leaves a
//! finalized block of the bytes that arrived, which lease recovery measures. A write refused
//! for space leaves nothing: the worker drops its writer, which removes the temporary file.
//! Lease recovery ends a stream the same way (`streams`): its writer is cut off.
//!
//! The block is stamped with the generation of the write token: the group's when the
//! writer was given it.

use std::sync::Arc;

use raftfs_core::block_token::Mode;
use raftfs_core::identity::Caller;
use raftfs_proto as pb;
use tokio::sync::mpsc;
use tonic::Streaming;

use crate::convert;
use crate::error::BlockError;
use crate::metrics::Metrics;
use crate::service::BlockNode;
use crate::store::BlockId;
use crate::volumes::VolumeWriter;

/// Messages received but not yet written; bounds the memory of one write (and pushes back on
/// a writer faster than the disk through HTTP/2 flow control).
const QUEUE: usize = 4;

/// What the handler hands the worker.
#[derive(Debug)]
enum Piece {
    Data(Vec<u8>),
    /// The writer said finalize.
    Finalize,
    /// The stream broke the protocol: keep nothing.
    Abort(String),
}

pub(super) async fn write_block(
    node: &BlockNode,
    caller: &Caller,
    mut stream: Streaming<pb::WriteBlockRequest>,
) -> Result<u64, BlockError> {
    let first = match tokio::time::timeout(node.write_idle, stream.message()).await {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => return Err(BlockError::InvalidArgument("empty write stream".into())),
        // Nothing arrived: there is no block to keep.
        Ok(Err(status)) => {
            return Err(BlockError::InvalidArgument(format!(
                "write stream failed before its first message: {}",
                status.message()
            )));
        }
        Err(_) => {
            return Err(BlockError::InvalidArgument(format!(
                "no first message within {:?}",
                node.write_idle
            )));
        }
    };
    let block = convert::block_ref(super::pool_of(&first.token), first.block.as_ref())?;
    let span = tracing::Span::current();
    span.record("group", block.group);
    span.record("index", block.index);
    let want = super::want(node.id, block, Mode::Write);
    let claims = super::check_token(node, "write_block", caller, &first.token, want).await?;

    // Listed before the block is created, so that a recovery that comes in between finds it
    // (and kept until the block is finalized: the recovery waits for that).
    let mut registered = node.streams.open(block);
    let volumes = node.volumes.clone();
    let generation = claims.generation;
    let writer = tokio::task::spawn_blocking(move || volumes.create(block, generation)).await??;
    let (tx, rx) = mpsc::channel(QUEUE);
    let metrics = node.metrics.clone();
    let worker = tokio::task::spawn_blocking(move || write_pieces(writer, rx, &metrics));

    let mut message = first;
    let mut recovered = false;
    loop {
        if let Some(other) = &message.block
            && (other.group, other.index) != (block.group, u32::from(block.index))
        {
            let why = format!(
                "a message names block {}/{} mid-stream",
                other.group, other.index
            );
            let _ = tx.send(Piece::Abort(why)).await;
            break;
        }
        if !message.data.is_empty() && tx.send(Piece::Data(message.data)).await.is_err() {
            // The worker stopped on an error, which it returns below.
            break;
        }
        if message.finalize {
            let _ = tx.send(Piece::Finalize).await;
            break;
        }
        let next = tokio::select! {
            next = tokio::time::timeout(node.write_idle, stream.message()) => next,
            () = registered.ended() => {
                tracing::info!(%block, "write stream ended by lease recovery");
                recovered = true;
                break;
            }
        };
        match next {
            Ok(Ok(Some(m))) => message = m,
            // Ended or failed without finalize: closing the queue finalizes what arrived.
            Ok(Ok(None)) => break,
            Ok(Err(status)) => {
                tracing::info!(%block, error = %status, "write stream failed before finalize");
                break;
            }
            // A writer that went silent (its host lost power): the same.
            Err(_) => {
                tracing::info!(%block, idle = ?node.write_idle, "write stream idle: ended");
                node.metrics.idle_write_ended();
                break;
            }
        }
    }
    drop(tx);
    let finalized = worker.await??;
    drop(registered);
    if recovered {
        // What arrived is kept, for the recovery; the writer is told its block was not
        // the one it wrote (it must not count it as a finalized copy).
        return Err(BlockError::Recovered {
            block,
            length: finalized,
        });
    }
    Ok(finalized)
}

/// The worker: writes every piece, then finalizes (asked to, or because the queue closed).
fn write_pieces(
    mut writer: VolumeWriter,
    mut rx: mpsc::Receiver<Piece>,
    metrics: &Arc<Metrics>,
) -> Result<u64, BlockError> {
    let block: BlockId = writer.id();
    let mut told = false;
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Data(data) => {
                writer.write(&data)?;
                metrics.written(data.len() as u64);
            }
            Piece::Finalize => {
                told = true;
                break;
            }
            Piece::Abort(why) => return Err(BlockError::InvalidArgument(why)),
        }
    }
    if !told {
        tracing::info!(
            %block, length = writer.length(),
            "writer gone before finalize: keeping the bytes that arrived"
        );
    }
    writer.finalize()
}
