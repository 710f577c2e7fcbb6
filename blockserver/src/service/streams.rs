//! The write streams open on this server, by block, so that lease recovery can end them.
//!
//! A writer cut off from the metaservers (a partition, a paused host) keeps its streams to
//! the blockservers open: its lease runs out while its blocks are still being written, so
//! they are not finalized and a measurement would find nothing. HDFS's recovery first stops
//! the writer's threads on each DataNode; here `RecoverBlock` ends every open stream of the
//! block (what arrived is finalized, as when a writer goes) and waits for it to be, before it
//! measures and restamps the block.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::BlockId;

/// One open stream: told to end through `stop`, says it has finalized through `done`.
#[derive(Debug)]
struct Stream {
    seq: u64,
    stop: watch::Sender<bool>,
    done: watch::Receiver<bool>,
}

/// The open write streams of every block.
#[derive(Debug, Default)]
pub struct Streams {
    open: Mutex<HashMap<BlockId, Vec<Stream>>>,
    next: std::sync::atomic::AtomicU64,
}

/// Held by a write stream while it runs; dropping it (the block finalized, or the stream
/// failed) takes the stream off the list and tells whoever ended it.
#[derive(Debug)]
pub struct Registered {
    streams: Arc<Streams>,
    block: BlockId,
    seq: u64,
    stop: watch::Receiver<bool>,
    done: watch::Sender<bool>,
}

impl Streams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BlockId, Vec<Stream>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lists a new stream of `block`.
    pub fn open(self: &Arc<Self>, block: BlockId) -> Registered {
        let seq = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        self.lock().entry(block).or_default().push(Stream {
            seq,
            stop: stop_tx,
            done: done_rx,
        });
        Registered {
            streams: Arc::clone(self),
            block,
            seq,
            stop: stop_rx,
            done: done_tx,
        }
    }

    /// Tells every open stream of `block` to end and waits up to `wait` for each to have
    /// finalized what arrived; returns how many there were, or `Err` with how many did not
    /// finish in time.
    pub async fn end(&self, block: BlockId, wait: Duration) -> Result<usize, usize> {
        let done: Vec<watch::Receiver<bool>> = {
            let open = self.lock();
            let streams = open.get(&block).map(Vec::as_slice).unwrap_or_default();
            for s in streams {
                s.stop.send_replace(true);
            }
            streams.iter().map(|s| s.done.clone()).collect()
        };
        let n = done.len();
        let waits = done.into_iter().map(|mut rx| async move {
            // A closed channel: the stream is gone, which is as good as done.
            let finished = rx.wait_for(|d| *d);
            tokio::time::timeout(wait, finished).await.is_ok()
        });
        let late = futures::future::join_all(waits)
            .await
            .into_iter()
            .filter(|ok| !ok)
            .count();
        if late == 0 { Ok(n) } else { Err(late) }
    }

    /// Open streams of `block` (for tests).
    #[cfg(test)]
    fn count(&self, block: BlockId) -> usize {
        self.lock().get(&block).map_or(0, Vec::len)
    }
}

impl Registered {
    /// Resolves once recovery has told this stream to end.
    pub async fn ended(&mut self) {
        // A dropped sender (the list is gone): never told; wait forever.
        if self.stop.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        {
            let mut open = self.streams.lock();
            if let Some(list) = open.get_mut(&self.block) {
                list.retain(|s| s.seq != self.seq);
                if list.is_empty() {
                    open.remove(&self.block);
                }
            }
        }
        self.done.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: BlockId = BlockId {
        pool: 0,
        group: 7,
        index: 1,
    };

    #[tokio::test]
    async fn ending_a_block_stops_its_streams_and_waits_for_them() {
        let streams = Arc::new(Streams::default());
        assert_eq!(streams.end(B, Duration::from_millis(10)).await, Ok(0));
        let mut a = streams.open(B);
        let other = streams.open(BlockId {
            pool: 0,
            group: 8,
            index: 1,
        });
        assert_eq!(streams.count(B), 1);
        let finish = tokio::spawn(async move {
            a.ended().await;
            // Finalizing takes a moment; the recovery waits for it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(a);
        });
        assert_eq!(streams.end(B, Duration::from_secs(5)).await, Ok(1));
        finish.await.expect("stream task");
        assert_eq!(streams.count(B), 0);
        // Another block's stream was not told.
        assert!(!*other.stop.borrow());
    }

    #[tokio::test]
    async fn a_stream_that_does_not_finish_in_time_is_counted_late() {
        let streams = Arc::new(Streams::default());
        let _stuck = streams.open(B);
        assert_eq!(streams.end(B, Duration::from_millis(20)).await, Err(1));
    }
}
