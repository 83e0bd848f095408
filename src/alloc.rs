//! The `GlobalAlloc` wrapper: the hot path, and nothing else.
//!
//! An allocation adds to two thread-local counters, subtracts its size from
//! a thread-local countdown and branches; a free loads one byte of the
//! thread's 64 KiB filter, branches and adds to two thread-local counters.
//! All other work is `#[cold]` in `sampler`, `record`, `counters` and
//! `peak`. No lock, no allocation, no
//! panic is reachable from here except through those cold paths, which take
//! the reentrancy guard first.
//!
//! `realloc` counts as the free of the old block and the allocation of a new
//! block of the new size (sampled like any allocation of that size), even
//! when the inner allocator resizes in place: that is what `alloc_space`
//! means for a growing `Vec`, every buffer it asked for.

use std::alloc::{GlobalAlloc, Layout, System};

use crate::{blocks, counters, peak, record, sampler};

/// A global allocator that samples allocations into heap profiles.
///
/// Wraps any [`GlobalAlloc`] (the system allocator by default); install it
/// with `#[global_allocator]`:
///
/// ```
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// fn main() {
///     let v: Vec<u64> = (0..1000).collect();
///     let profile = heapprof::heap_profile().expect("profile");
///     assert_eq!(&profile[..2], &[0x1f, 0x8b]); // gzipped pprof
///     drop(v);
/// }
/// ```
pub struct Profiler<A = System> {
    inner: A,
}

impl Profiler<System> {
    /// A profiler around the system allocator, sampling every 512 KiB on
    /// average until [`crate::set_sample_rate`] says otherwise.
    pub const fn system() -> Self {
        Profiler { inner: System }
    }
}

impl<A> Profiler<A> {
    /// A profiler around `inner`, e.g. a jemalloc or mimalloc allocator.
    pub const fn new(inner: A) -> Self {
        Profiler { inner }
    }

    /// The wrapped allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

impl Default for Profiler<System> {
    fn default() -> Self {
        Self::system()
    }
}

/// An allocation reached the end of the countdown: record it if it is
/// sampled, and check the peak of live bytes if it is time to.
#[cold]
#[inline(never)]
fn sample_point(ptr: *mut u8, size: usize) {
    counters::uncounted(|| {
        // A thread's first allocation comes here: the countdown starts at 0.
        counters::register_this_thread();
        let expired = sampler::on_countdown_expired(size);
        if let Some(rate) = expired.sample {
            record::sampled_alloc(ptr, size, rate);
        }
        if expired.checkpoint {
            peak::checkpoint();
        }
    });
}

/// `alloc` or `alloc_zeroed` for an allocation that reached the end of the
/// countdown: allocate, then maybe record.
#[cold]
#[inline(never)]
unsafe fn allocate_at_sample_point<A: GlobalAlloc>(
    layout: Layout,
    zeroed: bool,
    inner: &A,
) -> *mut u8 {
    // SAFETY: the caller's contract for `alloc`/`alloc_zeroed`, passed on.
    let ptr = unsafe {
        if zeroed {
            inner.alloc_zeroed(layout)
        } else {
            inner.alloc(layout)
        }
    };
    if ptr.is_null() {
        counters::uncount_alloc(layout.size());
        sampler::uncount(layout.size());
    } else {
        sample_point(ptr, layout.size());
    }
    ptr
}

/// The slow part of a free: the block may have been sampled, or the thread
/// is not registered yet (its first free).
#[cold]
#[inline(never)]
fn forget_block(ptr: *mut u8) -> Option<u32> {
    counters::register_this_thread();
    if blocks::may_be_sampled(ptr) {
        record::take_sampled(ptr)
    } else {
        None
    }
}

/// `dealloc` when [`forget_block`] is needed.
#[cold]
#[inline(never)]
unsafe fn free_slowly<A: GlobalAlloc>(ptr: *mut u8, layout: Layout, inner: &A) {
    // The record must go before the memory does: once freed, the address
    // may be handed out and sampled again on another thread.
    if let Some(bucket) = forget_block(ptr) {
        record::count_free(bucket);
    }
    counters::count_free(layout.size());
    // SAFETY: the caller's contract for `dealloc`, passed on unchanged.
    unsafe { inner.dealloc(ptr, layout) }
}

// SAFETY: every method forwards to the inner allocator with exactly the
// pointer, layout and size it was given, and returns exactly what the inner
// allocator returned; the bookkeeping around it never touches the memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Profiler<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Count and decide before the call, so that the common case ends in
        // a tail call (a failure there stays counted: see `Stats`).
        counters::count_alloc(layout.size());
        if sampler::countdown(layout.size()) {
            // SAFETY: the caller's contract for `alloc`, passed on.
            return unsafe { allocate_at_sample_point(layout, false, &self.inner) };
        }
        // SAFETY: the caller's contract for `alloc`, passed on unchanged.
        unsafe { self.inner.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counters::count_alloc(layout.size());
        if sampler::countdown(layout.size()) {
            // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
            return unsafe { allocate_at_sample_point(layout, true, &self.inner) };
        }
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on unchanged.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counters::free_needs_slow_path(ptr) {
            // SAFETY: the caller's contract for `dealloc`, passed on.
            return unsafe { free_slowly(ptr, layout, &self.inner) };
        }
        counters::count_free(layout.size());
        // SAFETY: `ptr` and `layout` are the caller's, who got `ptr` from
        // this allocator, i.e. from `inner` with this layout.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counters::free_needs_slow_path(ptr) {
            // SAFETY: the caller's contract for `realloc`, passed on.
            return unsafe { realloc_slowly(ptr, layout, new_size, &self.inner) };
        }
        // As in `alloc`: counted before the call, to end in a tail call.
        counters::count_free(layout.size());
        counters::count_alloc(new_size);
        if sampler::countdown(new_size) {
            // SAFETY: the caller's contract for `realloc`, passed on.
            return unsafe { realloc_at_sample_point(ptr, layout, new_size, &self.inner) };
        }
        // SAFETY: the caller's contract for `realloc`, passed on unchanged.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}

/// `realloc` of a block that needs no forgetting, to a new block that
/// reached the end of the countdown.
#[cold]
#[inline(never)]
unsafe fn realloc_at_sample_point<A: GlobalAlloc>(
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
    inner: &A,
) -> *mut u8 {
    // SAFETY: the caller's contract for `realloc`, passed on unchanged.
    let new_ptr = unsafe { inner.realloc(ptr, layout, new_size) };
    if new_ptr.is_null() {
        counters::uncount_alloc(new_size);
        counters::uncount_free(layout.size());
        sampler::uncount(new_size);
    } else {
        sample_point(new_ptr, new_size);
    }
    new_ptr
}

/// `realloc` of a block that may have been sampled (or on a thread not yet
/// registered).
#[cold]
#[inline(never)]
unsafe fn realloc_slowly<A: GlobalAlloc>(
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
    inner: &A,
) -> *mut u8 {
    let old_bucket = forget_block(ptr);
    // SAFETY: the caller's contract for `realloc`, passed on unchanged.
    let new_ptr = unsafe { inner.realloc(ptr, layout, new_size) };
    if let Some(bucket) = old_bucket {
        if new_ptr.is_null() {
            // The old block is still allocated and still the caller's.
            record::put_back(ptr, bucket);
        } else {
            record::count_free(bucket);
        }
    }
    if new_ptr.is_null() {
        return new_ptr;
    }
    counters::count_free(layout.size());
    counters::count_alloc(new_size);
    if sampler::countdown(new_size) {
        sample_point(new_ptr, new_size);
    }
    new_ptr
}
