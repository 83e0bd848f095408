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
//!
//! The totals are the program's memory only. heapprof's own work (recording
//! a sample, checking the peak, registering, building and writing a
//! profile, on whatever thread, and the whole life of heapprof's own
//! threads) runs as [`OwnWork`]. The hot path counts it into the thread's
//! counters as it counts anything, but while it lasts readers take the
//! thread's counts from before it, and when it ends the counters are put
//! back to those and what it did is added to [`own_totals`] instead. So
//! nothing of it reaches the totals or the peak, whichever thread reads,
//! while heapprof's own memory is still known. The start and the end of
//! the work, and every read of the thread's counts by another, hold a lock
//! of that thread's own (see [`thread::Work`]): the hot path never takes
//! it, and threads recording samples never wait for one another.
//!
//! That split stays exact only if no memory crosses it: a block allocated
//! on one side and freed on the other would leave a count behind on both.
//! So what heapprof's work hands the program (a profile) is a copy made
//! outside the work, the original freed inside it; what the program hands
//! it (a comment, a file name pattern) is copied in, not moved; and
//! heapprof's threads are started inside its work and are its own from
//! their first line to their end, so that what their spawner allocated for
//! them is freed where it was counted.

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

    fn add(self, t: Totals) -> Totals {
        Totals {
            allocs: self.allocs.wrapping_add(t.allocs),
            alloc_bytes: self.alloc_bytes.wrapping_add(t.alloc_bytes),
            frees: self.frees.wrapping_add(t.frees),
            free_bytes: self.free_bytes.wrapping_add(t.free_bytes),
        }
    }

    fn since(self, earlier: Totals) -> Totals {
        Totals {
            allocs: self.allocs.wrapping_sub(earlier.allocs),
            alloc_bytes: self.alloc_bytes.wrapping_sub(earlier.alloc_bytes),
            frees: self.frees.wrapping_sub(earlier.frees),
            free_bytes: self.free_bytes.wrapping_sub(earlier.free_bytes),
        }
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

    fn set(&self, t: Totals) {
        self.allocs.store(t.allocs, Relaxed);
        self.alloc_bytes.store(t.alloc_bytes, Relaxed);
        self.frees.store(t.frees, Relaxed);
        self.free_bytes.store(t.free_bytes, Relaxed);
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

/// heapprof's own work on this thread, from [`OwnWork::enter`] until
/// dropped: nothing it allocates or frees reaches the program's totals (see
/// the module's documentation). Holds the reentrancy guard, so nothing in it
/// is sampled either. Nests: only the outermost one changes anything.
#[must_use = "the work ends when this is dropped"]
pub(crate) struct OwnWork {
    outermost: bool,
    _guard: Guard,
}

impl OwnWork {
    /// Begins heapprof's own work on this thread. Takes the thread's work
    /// lock for a moment; on the allocation path only outside the profiler
    /// (where a signal handler's allocation cannot have interrupted this
    /// thread holding it).
    pub(crate) fn enter() -> OwnWork {
        Self::begin(false)
    }

    /// [`enter`](Self::enter); with `whole_thread`, everything the thread
    /// counted before is heapprof's too.
    fn begin(whole_thread: bool) -> OwnWork {
        let guard = Guard::enter();
        let outermost = thread::with(|local| {
            if local.work.active.load(Relaxed) {
                return false;
            }
            let _held = lock_work(&local.work);
            let before = if whole_thread {
                Totals::default()
            } else {
                local.counts.read()
            };
            local.work.before.set(before);
            local.work.active.store(true, Relaxed);
            true
        });
        OwnWork {
            outermost,
            _guard: guard,
        }
    }
}

impl Drop for OwnWork {
    fn drop(&mut self) {
        if !self.outermost {
            return;
        }
        thread::with(|local| {
            let _held = lock_work(&local.work);
            let before = local.work.before.read();
            let work = local.counts.read().since(before);
            if work != Totals::default() {
                OWN.add_shared(work);
            }
            local.counts.set(before);
            local.work.active.store(false, Relaxed);
        });
    }
}

/// Locks a thread's work state (see [`thread::Work`]): a lock that is
/// only ever held for a few loads and stores, and never while taking
/// another.
fn lock_work(work: &thread::Work) -> MutexGuard<'_, ()> {
    work.lock.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` as heapprof's own work (see [`OwnWork`]).
pub(crate) fn own_work<R>(f: impl FnOnce() -> R) -> R {
    let _work = OwnWork::enter();
    f()
}

/// Makes this thread's whole life heapprof's own work: for its own threads
/// (the dump thread, the endpoint's), called first thing. Their start is
/// part of it: there std frees what the spawner allocated for them (the
/// closure), which was counted inside the spawner's own work, and makes
/// the thread's own state. Registers the thread, so that its work is
/// summed in [`own_totals`] until it exits.
pub(crate) fn own_thread() {
    std::mem::forget(OwnWork::begin(true));
    thread::with(register);
}

/// Starts a thread of heapprof's own, named `name`. `make` builds its body
/// inside heapprof's work, so that what the body captures (a copy of a
/// pattern, a listener) is heapprof's from its making; the thread's whole
/// life is heapprof's own ([`own_thread`]). Every background thread
/// heapprof starts goes through here. The error is an OS error code, which
/// holds no heap memory.
pub(crate) fn spawn_own_thread<F>(name: &str, make: impl FnOnce() -> F) -> std::io::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    own_work(|| {
        let body = make();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                own_thread();
                body()
            })
            .map(drop)
    })
}

/// This thread's own counts so far.
pub(crate) fn this_thread() -> Totals {
    with(|c| c.read())
}

/// A registered thread's state. The pointer stays valid until the thread's
/// key destructor removes it from the registry, under the registry lock.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ThreadPtr(*const Local);
// SAFETY: other threads touch only the pointee's counts and work state
// (atomics and a lock; see `ThreadPtr::state`), only under the registry lock
// while its thread is alive (see `ThreadPtr`).
unsafe impl Send for ThreadPtr {}

impl ThreadPtr {
    /// The thread's counts, split into the program's part and that of the
    /// own work it is doing.
    ///
    /// # Safety
    ///
    /// The thread must be alive: registered, read under the registry lock,
    /// or the calling thread.
    unsafe fn read(self) -> (Totals, Totals) {
        // SAFETY: the caller's promise that the thread is alive.
        let (counts, work) = unsafe { self.state() };
        let _held = lock_work(work);
        split(counts, work)
    }

    /// [`read`](Self::read) for a thread that was not copied into this
    /// forked child. It may have died holding its work lock, between two of
    /// the stores it makes under it; but it made them in an order (`before`
    /// then `active`; the restored `counts` then `!active`) that shows the
    /// program's part whole in the fork's copy either way, since on x86-64
    /// stores reach memory in the order they are made.
    ///
    /// # Safety
    ///
    /// The thread's memory must have been copied into this child (it was
    /// registered in the parent when the registry lock was taken for the
    /// fork).
    unsafe fn read_in_child(self) -> (Totals, Totals) {
        // SAFETY: the caller's promise: the memory is the parent's copy,
        // which nothing in the child writes.
        let (counts, work) = unsafe { self.state() };
        split(counts, work)
    }

    /// # Safety
    ///
    /// The pointee must be alive (see the callers).
    unsafe fn state<'a>(self) -> (&'a Counts, &'a thread::Work) {
        // SAFETY: the caller's promise that the state is alive. Only its
        // counts and work state are borrowed (atomics and a lock), never the
        // whole `Local`, whose `Cell`s belong to its thread alone.
        unsafe { (&(*self.0).counts, &(*self.0).work) }
    }
}

/// A thread's counts, split into the program's part and that of the own
/// work under way (see [`ThreadPtr::read`]).
fn split(counts: &Counts, work: &thread::Work) -> (Totals, Totals) {
    let now = counts.read();
    if work.active.load(Relaxed) {
        let before = work.before.read();
        (before, now.since(before))
    } else {
        (now, Totals::default())
    }
}

pub(crate) struct Registry {
    threads: Vec<ThreadPtr>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    threads: Vec::new(),
});
/// Counts of threads that have exited (or, in a forked child, that were not
/// copied into it).
static EXITED: Counts = Counts::new();
/// Counts of heapprof's own work that has ended, on any thread.
static OWN: Counts = Counts::new();
static EXIT_KEY: OnceLock<Option<ThreadExitKey>> = OnceLock::new();

/// Locks the registry. Whoever holds it must hold the guard too: a signal
/// handler's allocation on the same thread then skips registration and its
/// sample point instead of waiting for this lock. Nothing that holds it
/// begins or ends [`OwnWork`].
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
    let _work = OwnWork::enter();
    thread::with(register);
}

/// Registers the current thread, inside heapprof's own work (whose guard
/// makes a signal handler's allocation skip registration rather than wait
/// for the lock).
fn register(local: &Local) {
    if registered(local) {
        return;
    }
    let ptr = ThreadPtr(local);
    {
        let mut registry = lock();
        if registry.threads.try_reserve(1).is_err() {
            return; // counted on this thread; registered at a later try
        }
        registry.threads.push(ptr);
    }
    local.filter.set(blocks::filter());
    // A non-null value makes glibc call the destructor at thread exit,
    // after Rust's thread-local destructors.
    if let Some(key) = EXIT_KEY.get_or_init(|| ThreadExitKey::new(on_thread_exit)) {
        key.set(ptr.0.cast());
    }
}

/// Key destructor: folds the exiting thread's counts into [`EXITED`], and
/// those of the own work it was doing (all of a heapprof thread's) into
/// [`OWN`].
extern "C" fn on_thread_exit(local: *mut c_void) {
    let _guard = Guard::enter();
    let ptr = ThreadPtr(local.cast_const().cast());
    let mut registry = lock();
    if let Some(i) = registry.threads.iter().position(|&p| p == ptr) {
        registry.threads.swap_remove(i);
        // SAFETY: the pointer is this thread's own state, still alive.
        let (program, own) = unsafe { ptr.read() };
        EXITED.add_shared(program);
        OWN.add_shared(own);
        // Folded: the thread starts again from nothing, so that should it
        // allocate again (a later destructor) and register again, only what
        // it does after this is counted, once, when glibc runs this
        // destructor once more. No reader sees the thread any more.
        thread::with(|local| {
            let _held = lock_work(&local.work);
            local.counts.set(Totals::default());
            local.work.before.set(Totals::default());
        });
    }
    drop(registry);
    thread::with(|local| local.filter.set(&blocks::UNREGISTERED));
}

/// The program's counts: every thread's, summed, without heapprof's own
/// work. Each counter is exact at some moment during the read; with other
/// threads allocating, the four need not be from the same moment.
pub(crate) fn totals() -> Totals {
    let _guard = Guard::enter();
    lock().sums().0
}

/// The counts of heapprof's own work, ended and under way, on every thread
/// (exact at some moment during the read, like [`totals`]).
pub(crate) fn own_totals() -> Totals {
    let _guard = Guard::enter();
    lock().sums().1
}

impl Registry {
    /// (the program's counts, those of heapprof's own work).
    fn sums(&self) -> (Totals, Totals) {
        let mut program = EXITED.read();
        let mut own = OWN.read();
        for &thread in &self.threads {
            // SAFETY: registered threads are alive while the lock is held.
            let (p, o) = unsafe { thread.read() };
            program = program.add(p);
            own = own.add(o);
        }
        (program, own)
    }

    /// In a forked child, only the forking thread exists: fold the others
    /// away (their memory may be reused by the child's new threads).
    pub(crate) fn keep_only_this_thread(&mut self) {
        let this = thread::with(|local| ThreadPtr(local));
        let mut i = 0;
        while i < self.threads.len() {
            let p = self.threads[i];
            if p == this {
                i += 1;
            } else {
                // SAFETY: a thread registered when the fork took the
                // registry lock: its memory was copied into the child.
                let (program, own) = unsafe { p.read_in_child() };
                EXITED.add_shared(program);
                OWN.add_shared(own);
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
