//! The entry points of the allocation path, shared by the `GlobalAlloc` impl
//! and a C shim: the inline tests of the fast path, and every cold path
//! behind them (the sample point, recording a sample, the free of a block
//! that may have been sampled, the slow paths of `realloc`).
//!
//! The fast-path tests never lock, allocate or panic. The cold paths take the
//! reentrancy guard before anything that may allocate or lock, so the
//! profiler's own work passes straight to the inner allocator, and none of
//! them panics or calls back into itself. Each calls the inner allocator
//! exactly once, through the closure it is given, with the pointer and sizes
//! it was given (so the closure need capture no more than the caller cannot
//! pass: an allocator, an alignment), and returns what that returned.

use crate::core::blocks::Block;
use crate::core::counters::OwnWork;
use crate::core::guard::{self, Guard};
use crate::core::{blocks, counters, labels, peak, sampler, table, thread};
use crate::{sys, unwind};

/// Counts an allocation of `size` bytes on this thread and runs the sampling
/// countdown: true when the allocation reached the end of the countdown, and
/// must be made through [`alloc_at_sample_point`] (or, for `realloc`,
/// [`realloc_at_sample_point`]) rather than directly. Counted before the
/// allocation, so that the common case ends in a tail call.
#[inline(always)]
#[must_use = "an allocation that reached the sample point must go through alloc_at_sample_point"]
pub fn count_alloc(size: usize) -> bool {
    counters::count_alloc(size);
    sampler::countdown(size)
}

/// Whether freeing (or reallocating) `ptr` must go through [`free_slowly`]
/// (or [`realloc_slowly`]): the block may have been sampled, or this thread
/// is not registered yet. One load of the thread's filter; false for almost
/// every block.
#[inline(always)]
#[must_use = "a block that needs the slow path must be freed through free_slowly"]
pub fn free_needs_slow_path(ptr: *mut u8) -> bool {
    thread::with(|local| blocks::may_be_sampled_in(local.filter.get(), ptr))
}

/// Counts the free of `size` bytes on this thread, when
/// [`free_needs_slow_path`] said no.
#[inline(always)]
pub fn count_free(size: usize) {
    counters::count_free(size);
}

/// Makes an allocation of `size` bytes that [`count_alloc`] sent here:
/// `alloc(size)` allocates it from the inner allocator; a sampled block is
/// then recorded, a failed allocation uncounted.
#[cold]
#[inline(never)]
pub fn alloc_at_sample_point(size: usize, alloc: impl FnOnce(usize) -> *mut u8) -> *mut u8 {
    let ptr = alloc(size);
    sample_or_uncount(ptr, size);
    ptr
}

/// Frees the block of `size` bytes at `ptr` that [`free_needs_slow_path`]
/// sent here: forgets it if it was sampled, counts the free, then calls
/// `free(ptr, size)`, which hands it back to the inner allocator. `size`
/// is the size the block was allocated with: the freed bytes of a sampled
/// block are counted from it.
#[cold]
#[inline(never)]
pub fn free_slowly(ptr: *mut u8, size: usize, free: impl FnOnce(*mut u8, usize)) {
    // The record must go before the memory does: once freed, the address
    // may be handed out and sampled again on another thread.
    if let Some(block) = forget_block(ptr) {
        count_sampled_free(block, size);
    }
    counters::count_free(size);
    free(ptr, size);
}

/// Resizes the block of `old_size` bytes at `ptr`, which needs no forgetting
/// (its free is counted already), to `new_size` bytes, an allocation that
/// [`count_alloc`] sent here: `realloc(ptr, old_size, new_size)` resizes it
/// in the inner allocator; the new block is then recorded if sampled, and a
/// failure uncounted.
#[cold]
#[inline(never)]
pub fn realloc_at_sample_point(
    ptr: *mut u8,
    old_size: usize,
    new_size: usize,
    realloc: impl FnOnce(*mut u8, usize, usize) -> *mut u8,
) -> *mut u8 {
    let new_ptr = realloc(ptr, old_size, new_size);
    if new_ptr.is_null() {
        counters::uncount_free(old_size);
    }
    sample_or_uncount(new_ptr, new_size);
    new_ptr
}

/// Resizes the block of `old_size` bytes at `ptr` that
/// [`free_needs_slow_path`] sent here to `new_size` bytes, counting nothing
/// beforehand: `realloc(ptr, old_size, new_size)` resizes it in the inner
/// allocator. A sampled old
/// block is forgotten before the call (and remembered again if it fails);
/// on success the free and the allocation are counted, and the new block
/// sampled like any allocation.
#[cold]
#[inline(never)]
pub fn realloc_slowly(
    ptr: *mut u8,
    old_size: usize,
    new_size: usize,
    realloc: impl FnOnce(*mut u8, usize, usize) -> *mut u8,
) -> *mut u8 {
    let old_block = forget_block(ptr);
    let new_ptr = realloc(ptr, old_size, new_size);
    if let Some(block) = old_block {
        if new_ptr.is_null() {
            // The old block is still allocated and still the caller's.
            put_back(ptr, block, old_size);
        } else {
            count_sampled_free(block, old_size);
        }
    }
    if new_ptr.is_null() {
        return new_ptr;
    }
    counters::count_free(old_size);
    if count_alloc(new_size) {
        sample_point(new_ptr, new_size);
    }
    new_ptr
}

/// After the inner call of an allocation of `size` bytes that reached the
/// end of the countdown: the sample point for a block at `ptr`, or, if the
/// allocation failed, takes back what [`count_alloc`] counted.
#[inline(always)]
fn sample_or_uncount(ptr: *mut u8, size: usize) {
    if ptr.is_null() {
        counters::uncount_alloc(size);
        sampler::uncount(size);
    } else {
        sample_point(ptr, size);
    }
}

/// An allocation reached the end of the countdown: record it if it is
/// sampled, and check the peak of live bytes if it is time to. Both are
/// heapprof's own work, which the peak must not see: its checkpoint sums
/// the program's counts only, this thread's from before the sample.
#[cold]
#[inline(never)]
fn sample_point(ptr: *mut u8, size: usize) {
    // A thread's first allocation comes here: the countdown starts at 0.
    counters::register_this_thread();
    let expired = sampler::on_countdown_expired(size);
    // heapprof's own allocations (under the guard) are never sampled and
    // check no peak: a peak of them would not be the program's.
    if guard::is_active() || (expired.sample.is_none() && !expired.checkpoint) {
        return;
    }
    let _work = OwnWork::enter();
    if let Some(rate) = expired.sample {
        sampled_alloc(ptr, size, rate);
    }
    if expired.checkpoint {
        peak::checkpoint();
    }
}

/// Records the allocation of `size` bytes at `ptr`, sampled at `rate`:
/// captures the stack, reads the clock, counts it in the table under the
/// thread's current label set (resolved under the table's lock, which the
/// sample takes anyway), remembers the block with its size and time.
#[cold]
#[inline(never)]
fn sampled_alloc(ptr: *mut u8, size: usize, rate: u64) {
    let _guard = Guard::enter();
    let mut frames = [0usize; unwind::MAX_DEPTH];
    let depth = unwind::capture(&mut frames, unwind::address_of(sampled_alloc));
    let born = sys::monotonic_nanos();
    let bucket = {
        let mut table = table::lock();
        let labels = labels::current(&mut table.label_sets);
        table.record_alloc(&frames[..depth], size as u64, rate, labels)
    };
    let Some(bucket) = bucket else {
        return;
    };
    let block = Block {
        bucket,
        size: u32::try_from(size).unwrap_or(u32::MAX),
        born,
    };
    if !blocks::insert(ptr, block) {
        table::lock().unrecord_alloc(bucket, size as u64);
    }
}

/// The first half of a slow free: registers the thread if this is its first
/// free, and forgets the block at `ptr`, returning it, if it was sampled.
/// The caller then either counts the free ([`count_sampled_free`]) or, if
/// the block stays alive, puts it back ([`put_back`]).
#[cold]
#[inline(never)]
fn forget_block(ptr: *mut u8) -> Option<Block> {
    counters::register_this_thread();
    if blocks::may_be_sampled(ptr) {
        blocks::remove(ptr)
    } else {
        None
    }
}

/// Counts the free of the sampled `block` of `size` bytes (its size when
/// it was allocated, as the `Layout` of its free says), and its lifetime,
/// in its bucket: the labels of its allocation, whichever thread frees it.
#[cold]
#[inline(never)]
fn count_sampled_free(block: Block, size: usize) {
    // The guard makes an allocation by a signal handler that interrupts this
    // thread while it holds the lock pass straight through, not wait for it.
    let _guard = Guard::enter();
    let lifetime = sys::monotonic_nanos().saturating_sub(block.born);
    table::lock().record_free(block.bucket, size as u64, Some(lifetime));
}

/// Remembers again a block of `size` bytes taken by [`forget_block`] that
/// stayed alive.
#[cold]
#[inline(never)]
fn put_back(ptr: *mut u8, block: Block, size: usize) {
    let _guard = Guard::enter();
    if !blocks::insert(ptr, block) {
        // Without a slot its free could never be seen: count it as freed now
        // (a free of no known lifetime) and as a dropped sample, rather than
        // leave it in use forever.
        let mut table = table::lock();
        table.record_free(block.bucket, size as u64, None);
        table.count_dropped();
    }
}
