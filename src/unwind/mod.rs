//! Stack capture: raw return addresses only, symbols come at profile time.
//!
//! Three walkers, one chosen at the first sample by comparing them
//! ([`Unwinder`]):
//!
//! - [`libgcc`]: libgcc's DWARF unwinder, the reference, about 5 µs for
//!   30 frames.
//! - [`frame_pointers`]: a few nanoseconds a frame, when the program was
//!   built with them. Used when the walk agrees with libgcc's on the
//!   innermost frames.
//! - [`cfi`]: the same DWARF rules as libgcc's, each read once per code
//!   address and cached, about 0.3 µs for 30 frames. Used when its first
//!   stack is exactly libgcc's; a later walk it cannot finish (a rule of an
//!   unusual shape, code outside any loaded object) is left to libgcc.
//!
//! The walkers share [`stack`] and never each other. Everything here runs
//! inside the allocator, under the reentrancy guard: it never panics, never
//! allocates through the profiled path and never waits for a lock of the
//! profiler's (the cached walk only tries its own). The only locks it may
//! wait for are glibc's: the loader's, held only while an object is linked
//! in or out, and those of the one call a thread makes for its stack bounds.

mod cfi;
mod frame_pointers;
mod libgcc;
mod stack;

use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, Ordering};

use stack::Registers;
pub use stack::MAX_DEPTH;
pub(crate) use stack::TRUNCATED;

/// The walker that captures stacks, chosen once, at the first sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Unwinder {
    /// [`frame_pointers`]: the chain of saved frame pointers.
    FramePointers = 1,
    /// [`cfi`]: DWARF rules from `.eh_frame`, cached per code address.
    CachedCfi = 2,
    /// [`libgcc`]: libgcc's DWARF unwinder, through the `backtrace` crate.
    Libgcc = 3,
}

/// The chosen [`Unwinder`] as its `u8`; 0 until the first capture.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

impl Unwinder {
    /// The walker chosen at the first capture, `None` before it.
    fn chosen() -> Option<Unwinder> {
        match CHOSEN.load(Ordering::Relaxed) {
            1 => Some(Unwinder::FramePointers),
            2 => Some(Unwinder::CachedCfi),
            3 => Some(Unwinder::Libgcc),
            _ => None,
        }
    }

    /// Makes `self` the walker of every later capture.
    fn choose(self) {
        CHOSEN.store(self as u8, Ordering::Relaxed);
    }
}

/// Addresses of a CFI walk from inside [`capture`] that belong to the
/// capture: `capture` itself and its return into the recording function.
const CFI_SKIP: usize = 2;

/// How many innermost frames the frame-pointer walk must share with the
/// DWARF walk for frame pointers to be trusted.
const AGREEMENT: usize = 6;

/// Fills `frames` with the calling thread's return addresses, leaf first,
/// without the profiler's own innermost frames, and returns how many it
/// wrote. `record_fn` is the address of the function that calls this one.
/// The caller holds the reentrancy guard.
#[inline(never)]
pub(crate) fn capture(frames: &mut [usize; MAX_DEPTH], record_fn: usize) -> usize {
    match Unwinder::chosen() {
        Some(Unwinder::FramePointers) => {
            frame_pointers::walk(frames, frame_pointers::current_frame())
        }
        Some(Unwinder::Libgcc) => libgcc::walk(frames, record_fn),
        Some(Unwinder::CachedCfi) => {
            cfi::walk(frames, Registers::here(), CFI_SKIP, stack::stack_bounds())
                .unwrap_or_else(|| libgcc::walk(frames, record_fn))
        }
        None => {
            let fp = frame_pointers::current_frame();
            let registers = Registers::here();
            let depth = libgcc::walk(frames, record_fn);
            choose(&frames[..depth], fp, registers).choose();
            depth
        }
    }
}

/// The walker to use from now on, given the stack libgcc's found
/// (`reference`) and the starting points of the others, in `capture`.
fn choose(reference: &[usize], fp: usize, registers: Registers) -> Unwinder {
    let mut other = [0usize; MAX_DEPTH];
    let depth = frame_pointers::walk(&mut other, fp);
    if depth >= AGREEMENT
        && reference.len() >= AGREEMENT
        && other[..AGREEMENT] == reference[..AGREEMENT]
    {
        return Unwinder::FramePointers;
    }
    match cfi::walk(&mut other, registers, CFI_SKIP, stack::stack_bounds()) {
        Some(depth) if other[..depth] == *reference => Unwinder::CachedCfi,
        _ => Unwinder::Libgcc,
    }
}

/// Which unwinder captures stacks, for the profile's comments (`None`
/// before the first capture).
pub(crate) fn method() -> Option<&'static str> {
    Some(match Unwinder::chosen()? {
        Unwinder::FramePointers => {
            "stacks walked by frame pointers (frames of code built without them are missing)"
        }
        Unwinder::CachedCfi => "stacks walked with cached DWARF CFI rules",
        Unwinder::Libgcc => "stacks walked by libgcc's DWARF unwinder",
    })
}

/// The function pointer of a recording function as an address.
pub(crate) fn address_of(f: fn(*mut u8, usize, u64)) -> usize {
    f as *const c_void as usize
}
