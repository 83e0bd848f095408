//! libgcc's DWARF unwinder, through the `backtrace` crate: the reference
//! the other walkers are checked against at the first sample, and the
//! fallback for any walk they cannot finish. It works on any binary with
//! unwind tables but interprets every frame's CFI program from scratch,
//! about 5 µs for 30 frames.
//!
//! Nothing here may panic, allocate through the profiled path or take a
//! lock a profiled allocation may hold: it runs inside the allocator.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::stack::{MAX_DEPTH, TRUNCATED};

/// How many innermost frames belong to the capture itself (this walk,
/// `capture` and the recording function that called it): always the same
/// frames, found once by looking for `record_fn`'s start address, then
/// skipped by count. `usize::MAX` while unknown, 0 if it was not found.
static OWN_FRAMES: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Fills `frames` with the calling thread's return addresses, leaf first,
/// without the capture's own innermost frames (up to and including
/// `record_fn`, the recording function), and returns how many it wrote.
/// Never inlined: the number of frames it skips must not depend on the call
/// site.
#[inline(never)]
pub(super) fn walk(frames: &mut [usize; MAX_DEPTH], record_fn: usize) -> usize {
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
