//! One budget for the file bytes all worker threads hold at once.
//!
//! The scanners read files in chunks on rayon's workers. A buffer per
//! worker made peak memory grow with the number of cores (8 MiB each for
//! the soname-literal scan: 143 MB with 16 threads on the CUDA-sized
//! package). Here a fixed number of equal buffers is shared by every
//! thread: a worker takes one (waiting while all are lent) and gives it
//! back when it is done, so the bytes in flight are [`READ_BUFFERS`] x
//! [`READ_BUFFER_LEN`] whatever the thread count. Buffers are kept for the
//! process: a fresh one would be memory the kernel must clear and fault in
//! again before each read.
//!
//! A holder must not wait for anything while it holds a buffer (no rayon
//! call, no second buffer): then every lent buffer comes back and no taker
//! waits forever.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Length of each shared buffer: a 1 MiB chunk and its overlap (the
/// scanners' overlap is below 8 KiB: a store dir path and a hash).
pub(crate) const READ_BUFFER_LEN: usize = (1 << 20) + (8 << 10);

/// How many buffers all threads share: enough for 32 workers reading at
/// once, 32 MiB in all.
pub(crate) const READ_BUFFERS: usize = 32;

/// The process's read buffers, shared by every scanner.
pub(crate) static READ_POOL: BufferPool = BufferPool::new(READ_BUFFER_LEN, READ_BUFFERS);

/// A fixed number of equal buffers, lent to one thread at a time.
pub(crate) struct BufferPool {
    len: usize,
    count: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    /// Buffers made so far (at most `count`), lent or free.
    made: usize,
    free: Vec<Vec<u8>>,
}

/// A buffer lent by a [`BufferPool`]; it goes back to the pool on drop.
pub(crate) struct Lease<'p> {
    pool: Option<&'p BufferPool>,
    buf: Vec<u8>,
}

impl BufferPool {
    /// A pool of `count` buffers of `len` bytes, made when first needed.
    pub(crate) const fn new(len: usize, count: usize) -> Self {
        BufferPool {
            len,
            count,
            state: Mutex::new(PoolState {
                made: 0,
                free: Vec::new(),
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic elsewhere cannot leave the list half-changed: push and
        // pop are the only writes.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of at least `want` bytes (its contents are whatever the
    /// last holder left), waiting while every buffer is lent. A `want`
    /// over the pool's length gets a buffer of its own, outside the pool.
    pub(crate) fn take(&self, want: usize) -> Lease<'_> {
        if want > self.len {
            return Lease {
                pool: None,
                buf: vec![0; want],
            };
        }
        let mut st = self.lock();
        loop {
            if let Some(buf) = st.free.pop() {
                return Lease {
                    pool: Some(self),
                    buf,
                };
            }
            if st.made < self.count.max(1) {
                st.made += 1;
                drop(st);
                return Lease {
                    pool: Some(self),
                    buf: vec![0; self.len],
                };
            }
            st = self.returned.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Deref for Lease<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(pool) = self.pool {
            pool.lock().free.push(std::mem::take(&mut self.buf));
            pool.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Many threads taking buffers at once never hold more than the pool's
    /// count (its bytes), and every taker gets one.
    #[test]
    fn never_lends_more_than_its_budget() {
        let pool = BufferPool::new(4096, 3);
        let out = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let served = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..16 {
                let (pool, out, peak, served) = (&pool, &out, &peak, &served);
                s.spawn(move || {
                    for i in 0..200 {
                        let mut b = pool.take(100 + (t * 37 + i) % 3000);
                        assert!(b.len() >= 100);
                        let now = out.fetch_add(b.len(), Ordering::SeqCst) + b.len();
                        peak.fetch_max(now, Ordering::SeqCst);
                        b[0] = t as u8;
                        std::thread::yield_now();
                        out.fetch_sub(b.len(), Ordering::SeqCst);
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(served.load(Ordering::SeqCst), 16 * 200);
        assert!(peak.load(Ordering::SeqCst) <= 3 * 4096, "{peak:?}");
        assert!(peak.load(Ordering::SeqCst) > 4096, "never lent two at once");
        let st = pool.lock();
        assert_eq!((st.made, st.free.len()), (3, 3));
    }

    /// A request over the buffer length is served outside the pool (and
    /// does not wait for it).
    #[test]
    fn oversize_requests_do_not_take_from_the_pool() {
        let pool = BufferPool::new(64, 1);
        let held = pool.take(10);
        let big = pool.take(100);
        assert_eq!(big.len(), 100);
        drop((held, big));
        assert_eq!(pool.lock().made, 1);
    }
}
