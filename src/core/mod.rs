//! The runtime core: everything on the allocation path below the
//! `GlobalAlloc` impl, and the contract a C `malloc`/`free` shim calls.
//!
//! [`crate::Profiler`]'s methods are compositions of the functions re-exported
//! here, and a shim's `malloc`, `free` and `realloc` are the same
//! compositions over `__libc_malloc` and friends:
//!
//! ```text
//! alloc:   if count_alloc(size) { return alloc_at_sample_point(size, inner_alloc) }
//!          inner_alloc(size)
//! free:    if free_needs_slow_path(ptr) { return free_slowly(ptr, size, inner_free) }
//!          count_free(size); inner_free(ptr, size)
//! realloc: if free_needs_slow_path(ptr) { return realloc_slowly(ptr, old, new, inner_realloc) }
//!          count_free(old);
//!          if count_alloc(new) { return realloc_at_sample_point(ptr, old, new, inner_realloc) }
//!          inner_realloc(ptr, old, new)
//! ```
//!
//! The three fast-path helpers are `#[inline(always)]` (thread-local adds, a
//! subtraction or one filter load, and a branch); the four slow paths are `#[cold]` and never
//! inlined, and call the inner allocator exactly once, through the closure
//! they are given, passing it back the pointer and sizes they were given: a
//! closure that captures at most two words (`__libc_malloc` captures none)
//! keeps the call to a slow path a tail call, with no stack frame on the
//! fast path. None of them is generic over an allocator type, so a shim needs no
//! `GlobalAlloc` to call them. This module is hidden from the docs: it is
//! the shim's contract, not an API for programs.
//!
//! Everything under this module must never panic, block on a lock that an
//! allocating path may hold, allocate through the profiled path (its own
//! memory comes under the reentrancy guard, straight from the inner
//! allocator) or recurse into itself; the fast-path tests also never lock.
//! Every frame of the allocation path is under `heapprof::core::` (besides
//! `heapprof::alloc::` and the unwinder's), the prefix symbolization hides.
#![doc(hidden)]

pub(crate) mod blocks;
pub(crate) mod counters;
pub(crate) mod guard;
mod hooks;
pub(crate) mod labels;
pub(crate) mod lifetimes;
pub(crate) mod peak;
pub(crate) mod sampler;
pub(crate) mod table;
mod thread;

pub use hooks::{
    alloc_at_sample_point, count_alloc, count_free, free_needs_slow_path, free_slowly,
    realloc_at_sample_point, realloc_slowly,
};
