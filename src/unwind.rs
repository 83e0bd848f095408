//! Stack capture: raw return addresses only, symbols come at profile time.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most frames kept per stack, counted from the allocation site. Deeper stacks
/// are cut at the root end and marked with a `[truncated]` frame.
pub const MAX_DEPTH: usize = 128;

/// Stands in for the frames cut from a stack deeper than [`MAX_DEPTH`].
pub(crate) const TRUNCATED: usize = 1;

/// How many innermost frames belong to the capture itself (the unwinder,
/// `capture` and the recording function that called it): always the same
/// frames, found once by looking for `record_fn`'s start address, then
/// skipped by count. `usize::MAX` while unknown, 0 if it was not found.
static OWN_FRAMES: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Fills `frames` with the calling thread's return addresses, leaf first,
/// without the profiler's own innermost frames, and returns how many it
/// wrote. `record_fn` is the address of the function that calls this one.
/// Takes no lock; the caller holds the reentrancy guard.
#[inline(never)]
pub(crate) fn capture(frames: &mut [usize; MAX_DEPTH], record_fn: usize) -> usize {
    let own = OWN_FRAMES.load(Ordering::Relaxed);
    let discovering = own == usize::MAX;
    let skip = if discovering { 0 } else { own };
    let mut seen = 0;
    let mut depth = 0;
    let mut found_own = None;
    // SAFETY: `trace_unsynchronized` requires that nothing else unwinds this
    // thread at the same time: the reentrancy guard held by the caller keeps
    // this the only capture, and libgcc's unwinder is thread-safe.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            let ip = frame.ip() as usize;
            if ip == 0 {
                return false; // the outermost frame has no caller
            }
            seen += 1;
            if seen <= skip {
                return true;
            }
            if discovering
                && found_own.is_none()
                && seen <= 16
                && frame.symbol_address() as usize == record_fn
            {
                found_own = Some(seen);
            }
            if depth == MAX_DEPTH {
                frames[MAX_DEPTH - 1] = TRUNCATED;
                return false;
            }
            frames[depth] = ip;
            depth += 1;
            true
        });
    }
    if discovering {
        let own = found_own.unwrap_or(0);
        OWN_FRAMES.store(own, Ordering::Relaxed);
        frames.copy_within(own..depth, 0);
        depth -= own;
    }
    depth
}

/// The function pointer of a recording function as an address.
pub(crate) fn address_of(f: fn(*mut u8, usize, u64)) -> usize {
    f as *const c_void as usize
}
