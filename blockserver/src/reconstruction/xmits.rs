//! `xmits_in_progress`: the weight of the reconstruction work a blockserver is doing, which
//! the active subtracts from `max_streams` to decide how much more to send it (DESIGN §7).
//!
//! HDFS-14353: a reconstruction task added its EC weight when it started and subtracted the
//! unweighted count when it ended; the counter went below −1,000, `maxTransfer` grew huge and
//! thousands of tasks flooded a cross-datacenter link. Here the only way to add weight is to
//! take an [`XmitsGuard`], which gives back exactly what it took when it is dropped: on
//! success, on error, on timeout, when its task is cancelled (the future dropped) and when it
//! panics (the guard is dropped while unwinding). The counter is unsigned and every change is
//! checked: it cannot go negative, and a bug that tried would be caught here, not in a flood.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The counter of one blockserver.
#[derive(Debug, Default)]
pub struct Xmits {
    in_progress: AtomicU32,
}

impl Xmits {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The weight of the tasks running now.
    pub fn in_progress(&self) -> u32 {
        self.in_progress.load(Ordering::Acquire)
    }

    /// Adds `weight` until the returned guard is dropped. Saturates at `u32::MAX` (the
    /// active then sends nothing more); the guard gives back only what it added.
    pub fn take(self: &Arc<Self>, weight: u32) -> XmitsGuard {
        let mut added = 0;
        let _ = self
            .in_progress
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                added = weight.min(u32::MAX - now);
                Some(now + added)
            });
        XmitsGuard {
            xmits: self.clone(),
            weight: added,
        }
    }
}

/// Holds a task's weight in [`Xmits`]; gives exactly that weight back when dropped.
#[derive(Debug)]
#[must_use = "the weight is given back when the guard is dropped"]
pub struct XmitsGuard {
    xmits: Arc<Xmits>,
    weight: u32,
}

impl XmitsGuard {
    /// The weight this guard holds.
    pub fn weight(&self) -> u32 {
        self.weight
    }
}

impl Drop for XmitsGuard {
    fn drop(&mut self) {
        let weight = self.weight;
        let r = self
            .xmits
            .in_progress
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_sub(weight)
            });
        // Only this guard's own weight is ever subtracted, and it was added first: an
        // underflow would be a bug in this module, never a reason to wrap.
        debug_assert!(r.is_ok(), "xmits underflow: {weight} from {:?}", r);
        if r.is_err() {
            self.xmits.in_progress.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// HDFS-14353: the weight added at the start of an EC task must be the weight subtracted
    /// at its end. A 6-source task weighs 3; ending it must bring the counter back to 0, not
    /// to 3 - 1 = 2 (or, over many tasks, far below zero in HDFS's signed counter).
    #[test]
    fn hdfs_14353_decrement_without_the_weight() {
        let xmits = Xmits::new();
        // The weight the active computed for a 6-source EC task (0.5 per source).
        let w = 3;
        let tasks: Vec<XmitsGuard> = (0..100).map(|_| xmits.take(w)).collect();
        assert_eq!(xmits.in_progress(), 300);
        drop(tasks);
        assert_eq!(xmits.in_progress(), 0);
    }

    #[test]
    fn the_counter_saturates_and_gives_back_only_what_it_took() {
        let xmits = Xmits::new();
        let a = xmits.take(u32::MAX - 1);
        let b = xmits.take(10);
        assert_eq!(xmits.in_progress(), u32::MAX);
        assert_eq!(b.weight(), 1, "only what fitted");
        drop(a);
        assert_eq!(xmits.in_progress(), 1);
        drop(b);
        assert_eq!(xmits.in_progress(), 0);
    }

    #[derive(Debug, Clone)]
    enum End {
        Success,
        Error,
        Timeout,
        Cancel,
        Panic,
    }

    fn end() -> impl Strategy<Value = End> {
        prop_oneof![
            Just(End::Success),
            Just(End::Error),
            Just(End::Timeout),
            Just(End::Cancel),
            Just(End::Panic),
        ]
    }

    /// A task as the worker runs it: takes its weight, then ends one way or another.
    async fn task(xmits: Arc<Xmits>, weight: u32, how: End) -> Result<(), String> {
        let _guard = xmits.take(weight);
        tokio::task::yield_now().await;
        match how {
            End::Success => Ok(()),
            End::Error => Err("source died".into()),
            End::Timeout => {
                match tokio::time::timeout(
                    std::time::Duration::from_millis(1),
                    std::future::pending::<()>(),
                )
                .await
                {
                    Ok(()) => Ok(()),
                    Err(_) => Err("timed out".into()),
                }
            }
            End::Cancel => {
                std::future::pending::<()>().await;
                Ok(())
            }
            End::Panic => panic!("worker bug"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn xmits_return_to_zero_on_every_exit_path(
            tasks in prop::collection::vec((1u32..8, end()), 1..40),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            let xmits = Xmits::new();
            rt.block_on(async {
                let mut handles = Vec::new();
                let mut expected = 0u32;
                for (w, how) in tasks {
                    expected = expected.saturating_add(w);
                    handles.push((how.clone(), tokio::spawn(task(xmits.clone(), w, how))));
                }
                // Everything started and is running or parked: the weights are all in.
                tokio::task::yield_now().await;
                prop_assert!(xmits.in_progress() <= expected);
                for (how, h) in handles {
                    if matches!(how, End::Cancel) {
                        h.abort();
                    }
                    let _ = h.await;
                    // Never negative (unsigned, checked), never more than what was taken.
                    prop_assert!(xmits.in_progress() <= expected);
                }
                prop_assert_eq!(xmits.in_progress(), 0);
                Ok(())
            })?;
        }
    }
}
