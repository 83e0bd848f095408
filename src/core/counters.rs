//! Exact allocation counters: one set per thread, summed on read.
//!
//! Each thread counts its own allocations and frees in thread-local atomics
//! that only it writes (a relaxed load and store: plain `add`s, no `lock`
//! prefix, no shared cache line), so counting costs the hot path a few
//! instructions and never contends. A reader sums the counters of every
//! registered thread plus those of threads that have exited, under a mutex
//! that allocating threads never take on the hot path.
//!
//! A thread registers at its first allocation (the sampling countdown starts
//! at zero, so that one takes the cold path) or its first free (its filter of
//! sampled addresses starts as one that sends every free to the slow path).
//! It unregisters in a `pthread_key` destructor, which glibc runs after every
//! Rust thread-local destructor, folding its counts into the totals of exited
//! threads.
//!
//! Counting must never lock, allocate or panic. Registration and reads lock
//! the registry, always under the reentrancy guard, so a signal handler's
//! allocation on the same thread skips registration rather than wait for it;
//! what the registry allocates is the profiler's own and is not counted.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::blocks;
use super::guard::{self, Guard};
use super::thread::{self, Counts, Local};
use crate::sys::ThreadExitKey;

/// A plain copy of [`Counts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub allocs: u64,
    pub alloc_bytes: u64,
    pub frees: u64,
    pub free_bytes: u64,
}

impl Totals {
    /// Bytes allocated and not freed.
    pub(crate) fn live_bytes(&self) -> u64 {
        self.alloc_bytes.saturating_sub(self.free_bytes)
    }
}

impl Counts {
    fn read(&self) -> Totals {
        Totals {
            allocs: self.allocs.load(Relaxed),
            alloc_bytes: self.alloc_bytes.load(Relaxed),
            frees: self.frees.load(Relaxed),
            free_bytes: self.free_bytes.load(Relaxed),
        }
    }

    fn add_shared(&self, t: Totals) {
        self.allocs.fetch_add(t.allocs, Relaxed);
        self.alloc_bytes.fetch_add(t.alloc_bytes, Relaxed);
        self.frees.fetch_add(t.frees, Relaxed);
        self.free_bytes.fetch_add(t.free_bytes, Relaxed);
    }
}

#[inline(always)]
fn with<R>(f: impl FnOnce(&Counts) -> R) -> R {
    thread::with(|local| f(&local.counts))
}

/// Adds to a counter that only the current thread writes: a relaxed load
/// and store, which compile to one non-atomic `add`.
#[inline(always)]
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(by), Relaxed);
}

/// Counts an allocation of `size` bytes on this thread.
#[inline(always)]
pub(crate) fn count_alloc(size: usize) {
    with(|c| {
        bump(&c.allocs, 1);
        bump(&c.alloc_bytes, size as u64);
    });
}

/// Counts a free of `size` bytes on this thread.
#[inline(always)]
pub(crate) fn count_free(size: usize) {
    with(|c| {
        bump(&c.frees, 1);
        bump(&c.free_bytes, size as u64);
    });
}

/// Takes back an allocation counted by [`count_alloc`] that failed.
pub(crate) fn uncount_alloc(size: usize) {
    with(|c| {
        bump(&c.allocs, 1u64.wrapping_neg());
        bump(&c.alloc_bytes, (size as u64).wrapping_neg());
    });
}

/// Takes back a free counted by [`count_free`] that did not happen.
pub(crate) fn uncount_free(size: usize) {
    with(|c| {
        bump(&c.frees, 1u64.wrapping_neg());
        bump(&c.free_bytes, (size as u64).wrapping_neg());
    });
}

fn registered(local: &Local) -> bool {
    std::ptr::eq(local.filter.get(), blocks::filter())
}

/// Runs `f` (heapprof's own work on the allocation path: recording a sample,
/// registering, checking the peak) without counting what it allocates and
/// frees, so the counters and [`crate::measure`] show only the program's
/// own allocations. The memory it keeps (the sample table) is reported by
/// the `/profile/...` metrics instead.
#[inline]
pub(crate) fn uncounted<R>(f: impl FnOnce() -> R) -> R {
    with(|c| {
        let before = c.read();
        let result = f();
        c.allocs.store(before.allocs, Relaxed);
        c.alloc_bytes.store(before.alloc_bytes, Relaxed);
        c.frees.store(before.frees, Relaxed);
        c.free_bytes.store(before.free_bytes, Relaxed);
        result
    })
}

/// This thread's own counts so far.
pub(crate) fn this_thread() -> Totals {
    with(|c| c.read())
}

/// A registered thread's counters. The pointer stays valid until the thread's
/// key destructor removes it from the registry, under the registry lock.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ThreadPtr(*const Counts);
// SAFETY: the pointee is atomics, read from other threads only under the
// registry lock while its thread is alive (see `ThreadPtr`).
unsafe impl Send for ThreadPtr {}

pub(crate) struct Registry {
    threads: Vec<ThreadPtr>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    threads: Vec::new(),
});
/// Counts of threads that have exited (or, in a forked child, that were not
/// copied into it).
static EXITED: Counts = Counts::new();
static EXIT_KEY: OnceLock<Option<ThreadExitKey>> = OnceLock::new();

/// Locks the registry. Whoever holds it must hold the guard too: a signal
/// handler's allocation on the same thread then skips registration instead
/// of waiting for this lock.
pub(crate) fn lock() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers the current thread, once (called from the allocator's cold
/// paths; does nothing inside the profiler, so never waits on itself).
#[cold]
#[inline(never)]
pub(crate) fn register_this_thread() {
    if thread::with(registered) || guard::is_active() {
        return;
    }
    let _guard = Guard::enter();
    uncounted(|| {
        thread::with(|local| {
            if registered(local) {
                return;
            }
            let ptr = ThreadPtr(&local.counts);
            {
                let mut registry = lock();
                if registry.threads.try_reserve(1).is_err() {
                    return; // counted on this thread; registered at a later try
                }
                registry.threads.push(ptr);
            }
            local.filter.set(blocks::filter());
            // A non-null value makes glibc call the destructor at thread
            // exit, after Rust's thread-local destructors.
            if let Some(key) = EXIT_KEY.get_or_init(|| ThreadExitKey::new(on_thread_exit)) {
                key.set(ptr.0.cast());
            }
        })
    });
}

/// Key destructor: folds the exiting thread's counts into [`EXITED`].
extern "C" fn on_thread_exit(counts: *mut c_void) {
    let _guard = Guard::enter();
    let ptr = ThreadPtr(counts.cast_const().cast());
    let mut registry = lock();
    if let Some(i) = registry.threads.iter().position(|&p| p == ptr) {
        registry.threads.swap_remove(i);
        // SAFETY: the pointer is this thread's own counters, still alive.
        EXITED.add_shared(unsafe { &*ptr.0 }.read());
    }
    drop(registry);
    // Should this thread allocate again (a later destructor), it registers
    // again and glibc runs this destructor once more.
    thread::with(|local| local.filter.set(&blocks::UNREGISTERED));
}

/// The process's counts: every thread's, summed. Each counter is exact at
/// some moment during the read; with other threads allocating, the four
/// need not be from the same moment.
pub(crate) fn totals() -> Totals {
    let _guard = Guard::enter();
    let registry = lock();
    registry.totals()
}

impl Registry {
    pub(crate) fn totals(&self) -> Totals {
        let mut sum = EXITED.read();
        for &ThreadPtr(counts) in &self.threads {
            // SAFETY: registered threads are alive while the lock is held.
            let t = unsafe { &*counts }.read();
            sum.allocs += t.allocs;
            sum.alloc_bytes += t.alloc_bytes;
            sum.frees += t.frees;
            sum.free_bytes += t.free_bytes;
        }
        sum
    }

    /// In a forked child, only the forking thread exists: fold the others
    /// away (their memory may be reused by the child's new threads).
    pub(crate) fn keep_only_this_thread(&mut self) {
        let own = with(|c| ThreadPtr(c));
        let mut i = 0;
        while i < self.threads.len() {
            let p = self.threads[i];
            if p == own {
                i += 1;
            } else {
                // SAFETY: the copied memory of a thread that does not exist
                // in the child; nothing writes it, reading it is sound.
                EXITED.add_shared(unsafe { &*p.0 }.read());
                self.threads.swap_remove(i);
            }
        }
    }
}

/// Whether the global allocator is heapprof's: an allocation made now shows
/// in this thread's counters only if it went through [`count_alloc`].
pub(crate) fn profiler_installed() -> bool {
    let before = this_thread().allocs;
    drop(std::hint::black_box(Box::new(0u64)));
    this_thread().allocs != before
}
