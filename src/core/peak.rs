//! The high-water mark of live bytes, and the in-use profile at it.
//!
//! Every thread visits the allocator's cold path at least every
//! `sampler::CHECKPOINT_BYTES` of its allocations; there, live bytes are
//! summed from the exact counters and the peak raised. While peak profiles
//! are on, each time live bytes pass the last recorded peak by a sixteenth
//! (and 64 KiB at least), the sampled buckets' counts are copied: that copy
//! is the in-use profile at the peak (since tracking began), the profile
//! that explains an out-of-memory kill.
//! The copy takes the table's lock as long as a profile write does, and
//! happens O(log peak) times in a run.
//!
//! A checkpoint runs on the allocation path, as heapprof's own work (see
//! [`counters::OwnWork`]): what it allocates is not the program's, and the
//! live bytes it sums are the program's only, whichever threads are writing
//! profiles meanwhile. It must never panic, and does its locking and
//! allocating under the reentrancy guard; it never waits for the recorded
//! peak's lock (another thread recording makes it skip).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::SystemTime;

use super::guard::Guard;
use super::{counters, table};

/// No peak profile is recorded below this many live bytes.
const MIN_PROFILE_BYTES: u64 = 64 << 10;

static PEAK_BYTES: AtomicU64 = AtomicU64::new(0);
static TRACKING: AtomicBool = AtomicBool::new(false);
/// Live bytes when the recorded peak profile was taken.
static RECORDED_AT: AtomicU64 = AtomicU64::new(0);
static RECORDED: Mutex<Option<Recorded>> = Mutex::new(None);

/// Locks the recorded peak (for the fork handlers: taken before the table's
/// lock, as `record` does).
pub(crate) fn lock() -> std::sync::MutexGuard<'static, Option<Recorded>> {
    RECORDED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The sampled counts at the peak.
#[derive(Clone)]
pub(crate) struct Recorded {
    pub buckets: Vec<table::Bucket>,
    pub live_bytes: u64,
    pub time: SystemTime,
}

/// Called on the allocator's cold path after an allocation of the
/// program's, inside the sample point's own work (which holds the guard).
#[cold]
#[inline(never)]
pub(crate) fn checkpoint() {
    let live = counters::totals().live_bytes();
    PEAK_BYTES.fetch_max(live, Relaxed);
    if TRACKING.load(Relaxed) && live >= next_record_at() {
        record(live);
    }
}

fn next_record_at() -> u64 {
    let at = RECORDED_AT.load(Relaxed);
    (at + at / 16).max(MIN_PROFILE_BYTES)
}

fn record(live: u64) {
    // One thread records at a time; the others' peaks are within a step.
    let Ok(mut slot) = RECORDED.try_lock() else {
        return;
    };
    if live < next_record_at() {
        return;
    }
    let Ok(buckets) = table::lock().copy_buckets() else {
        return;
    };
    *slot = Some(Recorded {
        buckets,
        live_bytes: live,
        time: SystemTime::now(),
    });
    RECORDED_AT.store(live, Relaxed);
}

/// The highest live bytes seen at a checkpoint.
pub(crate) fn peak_bytes() -> u64 {
    PEAK_BYTES.load(Relaxed)
}

/// Live bytes when the recorded peak profile was taken (0 before the
/// first): it only rises, so a change means a new peak profile, for
/// whoever rewrites the peak file.
pub(crate) fn recorded_at() -> u64 {
    RECORDED_AT.load(Relaxed)
}

/// Turns recording of the peak profile on or off.
pub(crate) fn set_tracking(on: bool) {
    TRACKING.store(on, Relaxed);
}

/// Whether the peak profile is recorded.
pub(crate) fn tracking() -> bool {
    TRACKING.load(Relaxed)
}

/// The recorded peak, if any.
pub(crate) fn recorded() -> Option<Recorded> {
    let _guard = Guard::enter();
    lock().clone()
}
