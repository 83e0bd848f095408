//! The `GlobalAlloc` wrapper: the hot path, and nothing else.
//!
//! An allocation adds to two thread-local counters, subtracts its size from
//! a thread-local countdown and branches; a free loads one byte of the
//! thread's 64 KiB filter, branches and adds to two thread-local counters.
//! Each method is a composition of [`crate::core`]'s tests and slow paths,
//! the same a C shim's `malloc`, `free` and `realloc` are: all other work is
//! `#[cold]` there. No lock, no allocation, no panic is reachable from here
//! except through those cold paths, which take the reentrancy guard first.
//!
//! `realloc` counts as the free of the old block and the allocation of a new
//! block of the new size (sampled like any allocation of that size), even
//! when the inner allocator resizes in place: that is what `alloc_space`
//! means for a growing `Vec`, every buffer it asked for.

use std::alloc::{GlobalAlloc, Layout, System};

use crate::core::{
    alloc_at_sample_point, count_alloc, count_free, free_needs_slow_path, free_slowly,
    realloc_at_sample_point, realloc_slowly,
};

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

/// What a slow path's closure captures: the inner allocator and the
/// caller's alignment, the two words the slow path cannot pass back. Two
/// words travel in registers, so the call to a slow path stays a tail call
/// and the fast path needs no stack frame; `repr(C)` puts the alignment
/// first, in the register where `alloc` and `dealloc` receive it, so that
/// the fast path moves no argument out of the way of that call.
#[repr(C)]
struct InnerCall<'a, A> {
    align: usize,
    allocator: &'a A,
}

impl<'a, A> InnerCall<'a, A> {
    fn new(allocator: &'a A, layout: Layout) -> Self {
        InnerCall {
            align: layout.align(),
            allocator,
        }
    }

    /// The caller's layout again, from the size a slow path passed back.
    ///
    /// # Safety
    ///
    /// `size` must be the size of the layout this was made from.
    unsafe fn layout(&self, size: usize) -> Layout {
        // SAFETY: `size` and `self.align` are those of the caller's layout,
        // which is valid.
        unsafe { Layout::from_size_align_unchecked(size, self.align) }
    }
}

// SAFETY: every method forwards to the inner allocator with exactly the
// pointer, layout and size it was given, and returns exactly what the inner
// allocator returned; the bookkeeping around it never touches the memory.
// The slow paths call their closure, which holds the one inner call, exactly
// once, with the pointer and sizes they were given, and return its result.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Profiler<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // A failure in the inner allocator stays counted: see `Stats`.
        if count_alloc(layout.size()) {
            let inner = InnerCall::new(&self.inner, layout);
            return alloc_at_sample_point(layout.size(), move |size| {
                // SAFETY: the caller's contract for `alloc`, passed on: `size`
                // is `layout.size()`.
                unsafe { inner.allocator.alloc(inner.layout(size)) }
            });
        }
        // SAFETY: the caller's contract for `alloc`, passed on unchanged.
        unsafe { self.inner.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if count_alloc(layout.size()) {
            let inner = InnerCall::new(&self.inner, layout);
            return alloc_at_sample_point(layout.size(), move |size| {
                // SAFETY: the caller's contract for `alloc_zeroed`, passed on:
                // `size` is `layout.size()`.
                unsafe { inner.allocator.alloc_zeroed(inner.layout(size)) }
            });
        }
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on unchanged.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if free_needs_slow_path(ptr) {
            let inner = InnerCall::new(&self.inner, layout);
            return free_slowly(ptr, layout.size(), move |ptr, size| {
                // SAFETY: the caller's contract for `dealloc`, passed on: `ptr`
                // is the caller's and `size` is `layout.size()`.
                unsafe { inner.allocator.dealloc(ptr, inner.layout(size)) }
            });
        }
        count_free(layout.size());
        // SAFETY: `ptr` and `layout` are the caller's, who got `ptr` from
        // this allocator, i.e. from `inner` with this layout.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let inner = InnerCall::new(&self.inner, layout);
        let resize = move |ptr, old_size, new_size| {
            // SAFETY: the caller's contract for `realloc`, passed on: the slow
            // paths pass back the caller's `ptr`, `layout.size()` and
            // `new_size`.
            unsafe {
                inner
                    .allocator
                    .realloc(ptr, inner.layout(old_size), new_size)
            }
        };
        if free_needs_slow_path(ptr) {
            return realloc_slowly(ptr, layout.size(), new_size, resize);
        }
        count_free(layout.size());
        if count_alloc(new_size) {
            return realloc_at_sample_point(ptr, layout.size(), new_size, resize);
        }
        // SAFETY: the caller's contract for `realloc`, passed on unchanged.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}
