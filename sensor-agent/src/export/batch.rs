//! A bounded queue of batches between the pipeline thread and a blocking writer thread.
//!
//! Exchanges travel in batches: one wake-up (a futex wake and a context switch on each side) per
//! batch instead of per exchange. Per exchange, those took ~20% of the live agent's CPU at 100k
//! exchanges/s (BENCHMARKS.md, "overhead"). The bound counts items, not batches (whose size
//! varies with the load), so memory stays bounded, and a slow writer costs counted drops, never
//! a blocked ring-buffer reader.
use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use tokio::sync::mpsc;

/// Items per batch, at most.
pub const BATCH: usize = 256;

pub struct BatchQueue<T> {
    tx: mpsc::Sender<Vec<T>>,
    queued: Arc<AtomicUsize>,
    taken: Arc<AtomicU64>,
    limit: usize,
}

pub struct BatchReceiver<T> {
    rx: mpsc::Receiver<Vec<T>>,
    queued: Arc<AtomicUsize>,
    taken: Arc<AtomicU64>,
}

/// A queue holding at most `limit` items in flight.
#[must_use]
pub fn queue<T>(limit: usize) -> (BatchQueue<T>, BatchReceiver<T>) {
    // Every batch holds at least one item, so `limit` slots always suffice; `queued` is what
    // really bounds the items.
    let (tx, rx) = mpsc::channel(limit.max(1));
    let queued = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(AtomicU64::new(0));
    (
        BatchQueue { tx, queued: Arc::clone(&queued), taken: Arc::clone(&taken), limit },
        BatchReceiver { rx, queued, taken },
    )
}

impl<T> BatchQueue<T> {
    /// Items the receiving side has taken so far.
    #[must_use]
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Hands `batch` over, or says how many items were dropped (the queue is full or closed).
    pub fn send(&self, batch: Vec<T>) -> Result<(), usize> {
        let n = batch.len();
        if n == 0 {
            return Ok(());
        }
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > self.limit {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(n);
        }
        self.tx.try_send(batch).map_err(|_| {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            n
        })
    }
}

impl<T> BatchReceiver<T> {
    /// The next batch, waiting for it; `None` once every sender is gone and the queue is empty.
    /// Blocking: for the writer's own thread.
    pub fn blocking_recv(&mut self) -> Option<Vec<T>> {
        let batch = self.rx.blocking_recv()?;
        self.took(batch.len());
        Some(batch)
    }

    /// The next batch if one is waiting.
    pub fn try_recv(&mut self) -> Option<Vec<T>> {
        let batch = self.rx.try_recv().ok()?;
        self.took(batch.len());
        Some(batch)
    }

    fn took(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
        self.taken.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_counts_items_and_frees_as_batches_are_taken() {
        let (tx, mut rx) = queue::<u32>(5);
        assert_eq!(tx.send(vec![1, 2, 3]), Ok(()));
        assert_eq!(tx.send(vec![4, 5, 6]), Err(3), "8 items would exceed 5");
        assert_eq!(tx.send(vec![4, 5]), Ok(()));
        assert_eq!(tx.send(vec![6]), Err(1));
        assert_eq!(tx.send(Vec::new()), Ok(()), "an empty batch is not sent, and not a drop");
        assert_eq!(rx.try_recv(), Some(vec![1, 2, 3]));
        assert_eq!(tx.send(vec![6, 7, 8]), Ok(()), "taking a batch frees its room");
        assert_eq!(rx.try_recv(), Some(vec![4, 5]));
        assert_eq!(rx.try_recv(), Some(vec![6, 7, 8]));
        assert_eq!(rx.try_recv(), None);
        assert_eq!(tx.taken(), 8);
    }

    #[test]
    fn a_closed_queue_drops_and_a_finished_sender_ends_the_receiver() {
        let (tx, mut rx) = queue::<u32>(4);
        assert_eq!(tx.send(vec![1]), Ok(()));
        drop(tx);
        assert_eq!(rx.blocking_recv(), Some(vec![1]));
        assert_eq!(rx.blocking_recv(), None);
        let (tx, rx) = queue::<u32>(4);
        drop(rx);
        assert_eq!(tx.send(vec![1, 2]), Err(2));
        assert_eq!(tx.send(vec![3, 4, 5]), Err(3), "a failed send gives its room back");
    }
}
