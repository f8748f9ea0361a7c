//! [`HashGate`]: how many argon2 hashes run at once, and the memory they run in. Each hash
//! needs its whole memory cost (19 MiB with the default parameters) for as long as it runs, so
//! without a bound a burst of sign-ins is a burst of resident memory (40 admitted at once:
//! 760 MiB). And letting argon2 allocate and free those 19 MiB each time is not enough: the
//! allocator keeps freed blocks of that size (one heap per thread, fragmented by small
//! allocations in between), so resident memory grows with the hashes done, not the hashes
//! running (measured: 20 sequential sign-ins, 19 → 234 MiB, never given back).
//!
//! So the gate is a semaphore sized to a memory budget, and each permit's memory is a buffer
//! allocated once and reused: hashing never takes more than the budget, and after the first
//! few sign-ins it allocates nothing. A caller that cannot get a permit within [`HASH_WAIT`],
//! or arrives while [`MAX_HASH_WAITERS`] are already waiting, is refused with
//! [`StoreError::Busy`] (a 503 with `Retry-After` over HTTP) instead of queueing without limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use argon2::{Block, Params};
use tokio::sync::Semaphore;

use crate::store::{DbContext, StoreError};

/// Memory all concurrent password hashes of a process may take together: 64 MiB.
pub const HASH_MEMORY_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// Memory one hash with the default parameters takes: `m` blocks of 1 KiB (19 MiB).
pub const HASH_MEMORY_BYTES: usize = DEFAULT_BLOCKS * Block::SIZE;
/// Blocks of one hash with the default parameters.
const DEFAULT_BLOCKS: usize = Params::DEFAULT_M_COST as usize;
/// Longest a caller waits for its turn before it is refused.
pub const HASH_WAIT: Duration = Duration::from_secs(3);
/// Most callers waiting for a turn at once; any more are refused at once.
pub const MAX_HASH_WAITERS: usize = 64;

/// A bound on concurrent hashing: `permits` of [`HASH_MEMORY_BYTES`] each, and the buffers
/// of default-cost hashes (at most one per permit, kept for reuse).
#[derive(Debug)]
pub(crate) struct HashGate {
    semaphore: Arc<Semaphore>,
    permits: u32,
    per_hash_bytes: usize,
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
    waiting: AtomicUsize,
    max_waiting: usize,
    wait: Duration,
}

/// The process's gate: the budget is the process's memory, whatever the number of stores.
pub(crate) fn gate() -> &'static HashGate {
    static GATE: OnceLock<HashGate> = OnceLock::new();
    GATE.get_or_init(|| {
        HashGate::new(
            HASH_MEMORY_BUDGET_BYTES,
            HASH_MEMORY_BYTES,
            MAX_HASH_WAITERS,
            HASH_WAIT,
        )
    })
}

/// Counts a caller among the waiters while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl HashGate {
    /// A gate letting `budget_bytes / per_hash_bytes` hashes (at least one) run at once.
    pub(crate) fn new(
        budget_bytes: usize,
        per_hash_bytes: usize,
        max_waiting: usize,
        wait: Duration,
    ) -> HashGate {
        let permits = (budget_bytes / per_hash_bytes.max(1)).clamp(1, Semaphore::MAX_PERMITS);
        let permits = u32::try_from(permits).unwrap_or(u32::MAX);
        HashGate {
            semaphore: Arc::new(Semaphore::new(permits as usize)),
            permits,
            per_hash_bytes: per_hash_bytes.max(1),
            buffers: Arc::default(),
            waiting: AtomicUsize::new(0),
            max_waiting,
            wait,
        }
    }

    /// How many hashes of the default cost may run at once.
    #[cfg(test)]
    pub(crate) fn permits(&self) -> u32 {
        self.permits
    }

    /// Runs `work` on a blocking thread with memory for a hash of `blocks` argon2 blocks, once
    /// its share of the budget is free: one permit per [`HASH_MEMORY_BYTES`] or part of it, at
    /// most all of them. Hashes of the default cost or less get a reused buffer (of the default
    /// size); bigger ones (a stored hash with other parameters) get one of their own, freed
    /// afterwards. The permit moves into the blocking task, so it is held until the hash is
    /// done even if the caller gives up (its memory is in use until then).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        blocks: usize,
        step: &'static str,
        work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let bytes = blocks.saturating_mul(Block::SIZE);
        let weight = u32::try_from(bytes.div_ceil(self.per_hash_bytes))
            .unwrap_or(u32::MAX)
            .clamp(1, self.permits);
        let permit = match Arc::clone(&self.semaphore).try_acquire_many_owned(weight) {
            Ok(permit) => permit,
            Err(_) => {
                let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
                let _waiting = Waiting(&self.waiting);
                if ahead >= self.max_waiting {
                    return Err(StoreError::Busy);
                }
                let acquire = Arc::clone(&self.semaphore).acquire_many_owned(weight);
                match tokio::time::timeout(self.wait, acquire).await {
                    Ok(Ok(permit)) => permit,
                    // Timed out (or, never, closed).
                    Ok(Err(_)) | Err(_) => return Err(StoreError::Busy),
                }
            }
        };
        let buffers = Arc::clone(&self.buffers);
        tokio::task::spawn_blocking(move || {
            let pooled = blocks <= DEFAULT_BLOCKS;
            let mut buffer = if pooled { lock(&buffers).pop() } else { None }
                .unwrap_or_else(|| vec![Block::default(); blocks.max(DEFAULT_BLOCKS)]);
            let result = work(&mut buffer);
            if pooled {
                lock(&buffers).push(buffer);
            }
            drop(permit);
            result
        })
        .await
        .map_err(anyhow::Error::new)
        .db(step)
    }

    /// Buffers kept for reuse (never more than the permits).
    #[cfg(test)]
    fn pooled(&self) -> usize {
        lock(&self.buffers).len()
    }
}

/// The pool stays consistent whatever panicked while it was held (each change is one push or
/// pop).
fn lock(buffers: &Mutex<Vec<Vec<Block>>>) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
    buffers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn the_default_budget_admits_three_default_hashes() {
        assert_eq!(HASH_MEMORY_BYTES, 19 * 1024 * 1024);
        assert_eq!(gate().permits(), 3);
        // Never zero, however small the budget.
        assert_eq!(
            HashGate::new(1, HASH_MEMORY_BYTES, 1, HASH_WAIT).permits(),
            1
        );
    }

    /// `work` for [`HashGate::run`]: counts itself running, records the most seen at once,
    /// holds its turn for `hold`.
    fn counted(
        running: &Arc<AtomicU32>,
        most: &Arc<AtomicU32>,
        hold: Duration,
    ) -> impl FnOnce(&mut [Block]) + Send + 'static {
        let (running, most) = (Arc::clone(running), Arc::clone(most));
        move |_| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(hold);
            running.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hashing_concurrency_never_exceeds_the_permits() {
        // A 64 MiB budget of 19 MiB hashes: 3 at once, 24 callers, all served in turn.
        let gate = Arc::new(HashGate::new(
            HASH_MEMORY_BUDGET_BYTES,
            HASH_MEMORY_BYTES,
            MAX_HASH_WAITERS,
            Duration::from_secs(30),
        ));
        let (running, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let gate = Arc::clone(&gate);
                let work = counted(&running, &most, Duration::from_millis(30));
                tokio::spawn(async move { gate.run(DEFAULT_BLOCKS, "test", work).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            gate.permits(),
            "the gate was not full"
        );
        assert_eq!(running.load(Ordering::SeqCst), 0);

        // A hash of twice the default memory takes two permits: at most one such runs
        // beside one default hash.
        let (running, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let gate = Arc::clone(&gate);
                let work = counted(&running, &most, Duration::from_millis(30));
                tokio::spawn(async move { gate.run(2 * DEFAULT_BLOCKS, "test", work).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        // Those had buffers of their own, not kept.
        assert_eq!(gate.pooled(), gate.permits() as usize);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn callers_that_cannot_get_a_turn_are_refused_not_queued() {
        // One permit, one waiter at most, a 200 ms wait; the permit is held for 2 s.
        let gate = Arc::new(HashGate::new(1, 1, 1, Duration::from_millis(200)));
        let (running, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let holder = {
            let gate = Arc::clone(&gate);
            let work = counted(&running, &most, Duration::from_secs(2));
            tokio::spawn(async move { gate.run(1, "test", work).await })
        };
        while running.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The first waiter waits its 200 ms and is refused; the second, arriving meanwhile,
        // is refused at once.
        let waiter = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                (gate.run(1, "test", |_| ()).await, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let second = gate.run(1, "test", |_| ()).await;
        assert!(matches!(second, Err(StoreError::Busy)), "{second:?}");
        assert!(started.elapsed() < Duration::from_millis(100));
        let (first, waited) = waiter.await.unwrap();
        assert!(matches!(first, Err(StoreError::Busy)), "{first:?}");
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        holder.await.unwrap().unwrap();
        // Once the holder is done, the next caller is served, and the waiters were counted out.
        gate.run(1, "test", |_| ()).await.unwrap();
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
    }
}
