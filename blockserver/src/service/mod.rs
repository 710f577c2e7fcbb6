//! The `BlockData` gRPC service: clients, and reconstruction workers on other blockservers,
//! write, read and measure internal blocks here (workers also ask for a rack's part of a lost
//! cell, `Partial`).
//!
//! `write.rs` streams a block into a volume; `read.rs` streams it out, verified; `status.rs`
//! is the one map from [`BlockError`] (and reconstruction's `TaskError`) to `tonic::Status`.
//! File-system work runs on blocking threads; the handlers only move messages.

mod read;
mod status;
mod streams;
mod write;

pub use streams::Streams;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use raftfs_core::block_token::{Claims, Indices, Mode, Want};
use raftfs_core::id::{BlockServerId, GroupId};
use raftfs_core::identity::{Authorizer, Caller, Need};
use raftfs_proto as pb;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::error::{BlockError, TaskError};
use crate::metaservers::Metaservers;
use crate::metrics::Metrics;
use crate::store::{BlockId, Generation};
use crate::tokens::Keys;
use crate::volumes::Volumes;

/// Most bytes in one data message (a write's pieces; reads send at most [`READ_PIECE`]).
pub const MAX_DATA_MESSAGE: usize = 16 << 20;

/// Bytes per ReadBlock message: the unit in which reads are verified and sent.
pub const READ_PIECE: u64 = 1 << 20;

/// What the handlers share.
#[derive(Debug)]
pub struct BlockNode {
    /// This server's id, as the metaservers know it.
    pub id: u64,
    pub volumes: Arc<Volumes>,
    pub metrics: Arc<Metrics>,
    pub metaservers: Metaservers,
    /// Reconstruction (also serves other servers' `Partial` requests).
    pub worker: Arc<crate::reconstruction::Worker>,
    /// Who may make which class of call (`claimed_nodes` only without certificates).
    pub authorizer: Authorizer,
    /// The block keys, to check every data call's token with (DESIGN §9).
    pub keys: Arc<Keys>,
    /// How long a write stream may bring nothing before it is ended (`write-idle-secs`).
    pub write_idle: std::time::Duration,
    /// The write streams open here, for lease recovery to end.
    pub streams: Arc<Streams>,
}

/// How long `RecoverBlock` waits for the streams it ended to finalize their blocks.
const RECOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The service; cheap to clone.
#[derive(Debug, Clone)]
pub struct BlockDataService {
    node: Arc<BlockNode>,
}

impl BlockDataService {
    pub fn new(node: Arc<BlockNode>) -> Self {
        Self { node }
    }
}

type ReadStream = Pin<Box<dyn Stream<Item = Result<pb::ReadBlockResponse, Status>> + Send>>;

/// Refuses a call of class `need` from a caller that may not make it. No superuser or admin
/// group applies on a blockserver: the classes checked here depend on the caller alone.
fn authorize<T>(rule: &Authorizer, req: &Request<T>, need: Need) -> Result<(), BlockError> {
    let caller =
        raftfs_runtime::caller_of(req).map_err(|s| BlockError::Internal(s.message().into()))?;
    rule.check(&caller, need).map_err(|denied| {
        tracing::warn!(%denied, "refused");
        BlockError::Denied(denied)
    })
}

/// The caller the port established (`raftfs_runtime::ports::Authenticate`).
fn caller_of<T>(req: &Request<T>) -> Result<Arc<Caller>, BlockError> {
    raftfs_runtime::caller_of(req).map_err(|s| BlockError::Internal(s.message().into()))
}

/// Refuses a data call whose block access token does not cover `want` for `caller` (DESIGN
/// §9), before anything is read, written or allocated; counted by method and reason.
/// Returns the token's claims (the group generation it names).
async fn check_token(
    node: &BlockNode,
    method: &'static str,
    caller: &Caller,
    token: &[u8],
    want: Want,
) -> Result<Claims, BlockError> {
    node.keys.check(token, &want, caller).await.map_err(|e| {
        node.metrics.token_refused(method, e.reason());
        tracing::info!(method, error = %e, "block token refused");
        BlockError::Token(e)
    })
}

/// The length and generation of block `id`, refused as [`BlockError::Stale`] when it is
/// stamped older than `wanted` (the generation the caller's token names): a copy written
/// before a lease recovery settled its group is never served.
async fn current(
    node: &BlockNode,
    id: BlockId,
    wanted: Generation,
) -> Result<(u64, Generation), BlockError> {
    let volumes = node.volumes.clone();
    tokio::task::spawn_blocking(move || {
        let stamped = fresh(id, volumes.generation(id)?, wanted)?;
        Ok((volumes.length(id)?, stamped))
    })
    .await?
}

/// A copy stamped `stamped` may answer for a token of generation `wanted` only when it is at
/// least that new (an older one was written before lease recovery settled its group).
fn fresh(id: BlockId, stamped: Generation, wanted: Generation) -> Result<Generation, BlockError> {
    if stamped < wanted {
        return Err(BlockError::Stale {
            block: id,
            stamped,
            wanted,
        });
    }
    Ok(stamped)
}

/// The pool a call's token names: the call is about a block of that pool, and the pool's
/// key ring checks the token (whatever a forger puts here picks a ring that refuses it; a
/// token that is not one is refused by the check, whatever pool it is taken for).
fn pool_of(token: &[u8]) -> u64 {
    raftfs_core::block_token::pool_of(token).unwrap_or(raftfs_core::block_token::DEFAULT_POOL)
}

/// What a call on one internal block, made to server `me`, asks.
fn want(me: u64, block: BlockId, mode: Mode) -> Want {
    Want {
        pool: block.pool,
        group: GroupId(block.group),
        indices: Indices::one(u32::from(block.index)),
        mode,
        server: BlockServerId(me),
    }
}

#[tonic::async_trait]
impl pb::block_data_server::BlockData for BlockDataService {
    #[tracing::instrument(skip_all, fields(group, index, length))]
    async fn write_block(
        &self,
        request: Request<Streaming<pb::WriteBlockRequest>>,
    ) -> Result<Response<pb::WriteBlockResponse>, Status> {
        let start = Instant::now();
        let r = match caller_of(&request) {
            Ok(caller) => write::write_block(&self.node, &caller, request.into_inner()).await,
            Err(e) => Err(e),
        };
        self.node
            .metrics
            .observe_rpc("write_block", start.elapsed(), r.is_ok());
        match r {
            Ok(length) => {
                tracing::Span::current().record("length", length);
                Ok(Response::new(pb::WriteBlockResponse { length }))
            }
            Err(e) => {
                tracing::info!(error = %e, "write refused");
                Err(e.into())
            }
        }
    }

    type ReadBlockStream = ReadStream;

    #[tracing::instrument(skip_all, fields(
        group = request.get_ref().block.as_ref().map(|b| b.group),
        index = request.get_ref().block.as_ref().map(|b| b.index),
        offset = request.get_ref().offset,
        length = request.get_ref().length,
    ))]
    async fn read_block(
        &self,
        request: Request<pb::ReadBlockRequest>,
    ) -> Result<Response<Self::ReadBlockStream>, Status> {
        let start = Instant::now();
        let r = match caller_of(&request) {
            Ok(caller) => {
                read::read_block(self.node.clone(), &caller, request.into_inner(), start).await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(stream) => Ok(Response::new(stream)),
            Err(e) => {
                self.node
                    .metrics
                    .observe_rpc("read_block", start.elapsed(), false);
                tracing::debug!(error = %e, "read refused");
                Err(e.into())
            }
        }
    }

    #[tracing::instrument(skip_all, fields(
        group = request.get_ref().block.as_ref().map(|b| b.group),
        index = request.get_ref().block.as_ref().map(|b| b.index),
    ))]
    async fn block_info(
        &self,
        request: Request<pb::BlockInfoRequest>,
    ) -> Result<Response<pb::BlockInfoResponse>, Status> {
        let start = Instant::now();
        let r = async {
            let caller = caller_of(&request)?;
            let req = request.get_ref();
            let block = convert::block_ref(pool_of(&req.token), req.block.as_ref())?;
            let want = want(self.node.id, block, Mode::Read);
            let claims = check_token(&self.node, "block_info", &caller, &req.token, want).await?;
            current(&self.node, block, claims.generation).await
        }
        .await;
        self.node
            .metrics
            .observe_rpc("block_info", start.elapsed(), r.is_ok());
        r.map(|(length, generation)| {
            Response::new(pb::BlockInfoResponse {
                length,
                generation: generation.get(),
            })
        })
        .map_err(|e: BlockError| e.into())
    }

    /// The block's stored chunk checksums (see the proto), from a copy at least as new as
    /// the token's generation.
    #[tracing::instrument(skip_all, fields(
        group = request.get_ref().block.as_ref().map(|b| b.group),
        index = request.get_ref().block.as_ref().map(|b| b.index),
    ))]
    async fn block_checksums(
        &self,
        request: Request<pb::BlockChecksumsRequest>,
    ) -> Result<Response<pb::BlockChecksumsResponse>, Status> {
        let start = Instant::now();
        let r = async {
            let caller = caller_of(&request)?;
            let req = request.get_ref();
            let block = convert::block_ref(pool_of(&req.token), req.block.as_ref())?;
            let want = want(self.node.id, block, Mode::Read);
            let claims =
                check_token(&self.node, "block_checksums", &caller, &req.token, want).await?;
            let volumes = self.node.volumes.clone();
            let (length, generation, sums) =
                tokio::task::spawn_blocking(move || volumes.checksums(block)).await??;
            Ok((length, fresh(block, generation, claims.generation)?, sums))
        }
        .await;
        self.node
            .metrics
            .observe_rpc("block_checksums", start.elapsed(), r.is_ok());
        r.map(|(length, generation, checksums)| {
            Response::new(pb::BlockChecksumsResponse {
                length,
                generation: generation.get(),
                checksums,
            })
        })
        .map_err(|e: BlockError| e.into())
    }

    /// Lease recovery (see the proto): ends the block's open write streams, then stamps it
    /// with the token's generation. Only a metaserver recovers.
    #[tracing::instrument(skip_all, fields(
        group = request.get_ref().block.as_ref().map(|b| b.group),
        index = request.get_ref().block.as_ref().map(|b| b.index),
        length,
    ))]
    async fn recover_block(
        &self,
        request: Request<pb::RecoverBlockRequest>,
    ) -> Result<Response<pb::RecoverBlockResponse>, Status> {
        let start = Instant::now();
        let r = async {
            authorize(&self.node.authorizer, &request, Need::Member)?;
            let caller = caller_of(&request)?;
            let req = request.get_ref();
            let block = convert::block_ref(pool_of(&req.token), req.block.as_ref())?;
            let want = want(self.node.id, block, Mode::Recover);
            let claims =
                check_token(&self.node, "recover_block", &caller, &req.token, want).await?;
            if let Err(late) = self.node.streams.end(block, RECOVER_WAIT).await {
                return Err(BlockError::Unavailable(format!(
                    "{late} write stream(s) of {block} did not finish within {RECOVER_WAIT:?}"
                )));
            }
            let volumes = self.node.volumes.clone();
            let generation = claims.generation;
            let length =
                tokio::task::spawn_blocking(move || volumes.restamp(block, generation)).await??;
            tracing::info!(%block, length, %generation, "block recovered");
            Ok((length, generation))
        }
        .await;
        self.node
            .metrics
            .observe_rpc("recover_block", start.elapsed(), r.is_ok());
        if let Ok((length, _)) = &r {
            tracing::Span::current().record("length", length);
        }
        r.map(|(length, generation)| {
            Response::new(pb::RecoverBlockResponse {
                length,
                generation: generation.get(),
            })
        })
        .map_err(|e: BlockError| e.into())
    }

    #[tracing::instrument(skip_all, fields(group, lost, offset))]
    async fn partial(
        &self,
        request: Request<pb::PartialRequest>,
    ) -> Result<Response<pb::PartialResponse>, Status> {
        let start = Instant::now();
        // A partial cell is work only a blockserver rebuilding a block asks for.
        if let Err(e) = authorize(&self.node.authorizer, &request, Need::AnyBlockServer) {
            return Err(TaskError::from(e).into());
        }
        let caller = caller_of(&request).map_err(TaskError::from)?;
        let mut req = request.into_inner();
        let span = tracing::Span::current();
        span.record("group", req.group);
        span.record("lost", req.lost);
        span.record("offset", req.offset);
        let token = std::mem::take(&mut req.token);
        let r = match convert::partial_cell(req) {
            Ok(cell) => {
                let want = Want {
                    pool: pool_of(&token),
                    group: cell.group,
                    indices: Indices::of(cell.local.iter().map(|s| s.index)),
                    mode: Mode::Read,
                    server: BlockServerId(self.node.id),
                };
                match check_token(&self.node, "partial", &caller, &token, want).await {
                    // The rack's cells are read with the same token (a node's).
                    Ok(_) => self.node.worker.partial(&cell, &token).await,
                    Err(e) => Err(e.into()),
                }
            }
            Err(why) => Err(why.into()),
        };
        self.node
            .metrics
            .observe_rpc("partial", start.elapsed(), r.is_ok());
        r.map(|data| Response::new(pb::PartialResponse { data }))
            .map_err(|e| e.into())
    }
}
