//! The per-thread state of the allocation path, in one const-initialized
//! thread-local with no destructor: the sampling countdown, the exact
//! counters, the thread's filter of sampled addresses, the reentrancy flag
//! and the mark of heapprof's own work. Every access is an offset from one
//! thread-pointer base, never allocates and works during thread teardown
//! (glibc's key destructors run after Rust's).
//!
//! This module owns the state's shape only. What the fields mean and how
//! they change belongs to [`super::sampler`], [`super::counters`] and
//! [`super::guard`], which read and write them through [`with`] and must
//! never hold a reference to them across a call that may allocate.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

use super::blocks::{Filter, UNREGISTERED};

pub(super) struct Local {
    pub sampler: ThreadSampler,
    pub counts: Counts,
    /// The sampled-address filter this thread's frees consult: the real one
    /// once registered, [`UNREGISTERED`] (all "maybe") before, so that the
    /// first free of a thread that never allocated reaches the slow path and
    /// registers it.
    pub filter: Cell<&'static Filter>,
    /// Whether the thread is inside the profiler (see [`super::guard`]).
    pub in_profiler: Cell<bool>,
    /// heapprof's own work on this thread (see [`super::counters::OwnWork`]).
    pub work: Work,
}

/// Whether the thread is doing heapprof's own work, and its counts from
/// before it. The thread changes both, and restores `counts` when its work
/// ends, holding `lock`; other threads read them, and `counts`, holding it
/// too. A lock of the thread's own, so that threads that are recording
/// samples never wait for one another.
pub(super) struct Work {
    pub lock: Mutex<()>,
    pub active: AtomicBool,
    /// `counts` when the work began: the program's part of them.
    pub before: Counts,
}

/// The state of the thread's Poisson countdown (see [`super::sampler`]).
pub(super) struct ThreadSampler {
    pub bytes_until_sample: Cell<i64>,
    /// The part of the distance to the next sample point not yet in the
    /// countdown.
    pub deferred: Cell<i64>,
    /// What the countdown was last loaded with.
    pub loaded: Cell<i64>,
    /// Bytes allocated since the last checkpoint, up to the last load.
    pub unchecked: Cell<i64>,
    pub rng_state: Cell<u64>,
    /// Epoch whose rate and seed this thread uses; 0 before its first sample
    /// point, where the rate and seed are read.
    pub epoch: Cell<u32>,
    /// Read only once `epoch` is adopted.
    pub rate: Cell<u64>,
}

/// Cumulative counts of one thread (or, in [`super::counters`], sums: of
/// the exited threads, of heapprof's own work). Only the owning thread
/// writes a thread's counts; other threads read them under the counter
/// registry's lock and the thread's work lock.
pub(super) struct Counts {
    pub allocs: AtomicU64,
    pub alloc_bytes: AtomicU64,
    pub frees: AtomicU64,
    pub free_bytes: AtomicU64,
}

impl Counts {
    pub(super) const fn new() -> Self {
        Counts {
            allocs: AtomicU64::new(0),
            alloc_bytes: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            free_bytes: AtomicU64::new(0),
        }
    }
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            sampler: ThreadSampler {
                bytes_until_sample: Cell::new(0),
                deferred: Cell::new(0),
                loaded: Cell::new(0),
                unchecked: Cell::new(0),
                rng_state: Cell::new(0),
                epoch: Cell::new(0),
                rate: Cell::new(0),
            },
            counts: Counts::new(),
            filter: Cell::new(&UNREGISTERED),
            in_profiler: Cell::new(false),
            work: Work {
                lock: Mutex::new(()),
                active: AtomicBool::new(false),
                before: Counts::new(),
            },
        }
    };
}

// The state must have no destructor (see the module's documentation).
const _: () = assert!(!std::mem::needs_drop::<Local>());

/// Runs `f` on this thread's state.
#[inline(always)]
pub(super) fn with<R>(f: impl FnOnce(&Local) -> R) -> R {
    LOCAL.with(f)
}
