//! The `GlobalAlloc` wrapper: the hot path, and nothing else.
//!
//! An allocation subtracts its size from a thread-local countdown and
//! branches; a free loads one byte of a 64 KiB filter and branches. All other
//! work is `#[cold]` in `sampler` and `record`. No lock, no allocation, no
//! panic is reachable from here except through those cold paths, which take
//! the reentrancy guard first.
//!
//! `realloc` counts as the free of the old block and the allocation of a new
//! block of the new size (sampled like any allocation of that size), even
//! when the inner allocator resizes in place: that is what `alloc_space`
//! means for a growing `Vec`, every buffer it asked for.

use std::alloc::{GlobalAlloc, Layout, System};

use crate::{blocks, record, sampler};

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

#[inline(always)]
fn after_alloc(ptr: *mut u8, size: usize) {
    if sampler::countdown(size) {
        sample_point(ptr, size);
    }
}

/// An allocation reached the sample point: record it if it is sampled.
#[cold]
#[inline(never)]
fn sample_point(ptr: *mut u8, size: usize) {
    if ptr.is_null() {
        return;
    }
    if let Some(rate) = sampler::on_countdown_expired(size) {
        record::sampled_alloc(ptr, size, rate);
    }
}

/// `alloc` or `alloc_zeroed` for an allocation that reached the sample
/// point: allocate, then maybe record.
#[cold]
#[inline(never)]
unsafe fn allocate_at_sample_point<A: GlobalAlloc>(
    inner: &A,
    layout: Layout,
    zeroed: bool,
) -> *mut u8 {
    // SAFETY: the caller's contract for `alloc`/`alloc_zeroed`, passed on.
    let ptr = unsafe {
        if zeroed {
            inner.alloc_zeroed(layout)
        } else {
            inner.alloc(layout)
        }
    };
    sample_point(ptr, layout.size());
    ptr
}

// SAFETY: every method forwards to the inner allocator with exactly the
// pointer, layout and size it was given, and returns exactly what the inner
// allocator returned; the bookkeeping around it never touches the memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Profiler<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Decide first, so that the common case ends in a tail call.
        if sampler::countdown(layout.size()) {
            // SAFETY: the caller's contract for `alloc`, passed on.
            return unsafe { allocate_at_sample_point(&self.inner, layout, false) };
        }
        // SAFETY: the caller's contract for `alloc`, passed on unchanged.
        unsafe { self.inner.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if sampler::countdown(layout.size()) {
            // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
            return unsafe { allocate_at_sample_point(&self.inner, layout, true) };
        }
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on unchanged.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // The record must go before the memory does: once freed, the address
        // may be handed out and sampled again on another thread.
        if blocks::may_be_sampled(ptr) {
            if let Some(bucket) = record::take_sampled(ptr) {
                record::count_free(bucket);
            }
        }
        // SAFETY: `ptr` and `layout` are the caller's, who got `ptr` from
        // this allocator, i.e. from `inner` with this layout.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_bucket = if blocks::may_be_sampled(ptr) {
            record::take_sampled(ptr)
        } else {
            None
        };
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        let new_ptr = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if let Some(bucket) = old_bucket {
            if new_ptr.is_null() {
                // The old block is still allocated and still the caller's.
                record::put_back(ptr, bucket);
            } else {
                record::count_free(bucket);
            }
        }
        after_alloc(new_ptr, new_size);
        new_ptr
    }
}
