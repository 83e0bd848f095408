//! Stack capture: raw return addresses only, symbols come at profile time.
//!
//! Three unwinders, chosen at the first sample by comparing them:
//!
//! - libgcc's DWARF unwinder, through the `backtrace` crate: the reference.
//!   It works on any binary with unwind tables but interprets every frame's
//!   CFI program from scratch, about 5 µs for 30 frames.
//! - Frame pointers, when the program was built with them
//!   (`-C force-frame-pointers=yes`): a few nanoseconds a frame. Used when
//!   the walk agrees with libgcc's on the innermost frames. Every frame
//!   pointer is checked against the thread's stack bounds before it is
//!   read, and the walk stops at the first one that is out of bounds or not
//!   above the last: the standard library is built without frame pointers,
//!   so a stack may end early there, never with a read outside the stack.
//! - Cached CFI ([`cfi`]): the same DWARF rules as libgcc's, each read once
//!   per code address and cached, about 0.3 µs for 30 frames. Used when its
//!   first stack is exactly libgcc's; a later walk it cannot finish (a rule
//!   of an unusual shape, code outside any loaded object) is left to libgcc.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::cfi::{self, Registers};

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

/// Which unwinder: unknown until the first capture, then one of the three.
static METHOD: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const DWARF: u8 = 1;
const FRAME_POINTERS: u8 = 2;
const CFI: u8 = 3;

/// Addresses of a CFI walk from inside [`capture`] that belong to the
/// capture: `capture` itself and its return into the recording function.
const CFI_SKIP: usize = 2;

/// How many innermost frames the frame-pointer walk must share with the
/// DWARF walk for frame pointers to be trusted.
const AGREEMENT: usize = 6;

thread_local! {
    /// This thread's stack: (lowest, highest) address, (0, 0) until known.
    static STACK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Fills `frames` with the calling thread's return addresses, leaf first,
/// without the profiler's own innermost frames, and returns how many it
/// wrote. `record_fn` is the address of the function that calls this one.
/// Never waits for a lock; the caller holds the reentrancy guard.
#[inline(never)]
pub(crate) fn capture(frames: &mut [usize; MAX_DEPTH], record_fn: usize) -> usize {
    match METHOD.load(Ordering::Relaxed) {
        FRAME_POINTERS => walk_frame_pointers(frames, current_frame()),
        DWARF => capture_dwarf(frames, record_fn),
        CFI => cfi::walk(frames, Registers::here(), CFI_SKIP, stack_bounds())
            .unwrap_or_else(|| capture_dwarf(frames, record_fn)),
        _ => {
            let fp = current_frame();
            let registers = Registers::here();
            let depth = capture_dwarf(frames, record_fn);
            METHOD.store(choose(&frames[..depth], fp, registers), Ordering::Relaxed);
            depth
        }
    }
}

/// The unwinder to use from now on, given the stack libgcc's found
/// (`reference`) and the starting points of the others, in `capture`.
fn choose(reference: &[usize], fp: usize, registers: Registers) -> u8 {
    let mut other = [0usize; MAX_DEPTH];
    let depth = walk_frame_pointers(&mut other, fp);
    if depth >= AGREEMENT
        && reference.len() >= AGREEMENT
        && other[..AGREEMENT] == reference[..AGREEMENT]
    {
        return FRAME_POINTERS;
    }
    match cfi::walk(&mut other, registers, CFI_SKIP, stack_bounds()) {
        Some(depth) if other[..depth] == *reference => CFI,
        _ => DWARF,
    }
}

/// Which unwinder captures stacks, for the profile's comments (`None`
/// before the first capture).
pub(crate) fn method() -> Option<&'static str> {
    match METHOD.load(Ordering::Relaxed) {
        FRAME_POINTERS => {
            Some("stacks walked by frame pointers (frames of code built without them are missing)")
        }
        CFI => Some("stacks walked with cached DWARF CFI rules"),
        DWARF => Some("stacks walked by libgcc's DWARF unwinder"),
        _ => None,
    }
}

/// The frame pointer of `capture`'s frame (0 where there is none to read).
#[inline(always)]
fn current_frame() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let fp: usize;
        // SAFETY: reads a register; no memory access.
        unsafe { std::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack)) };
        fp
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Walks the frame-pointer chain from `fp` (the frame of `capture`, whose
/// caller is the recording function: its return address is skipped).
fn walk_frame_pointers(frames: &mut [usize; MAX_DEPTH], mut fp: usize) -> usize {
    let (low, high) = stack_bounds();
    let mut depth = 0;
    let mut skip = 1;
    while fp >= low && fp % 8 == 0 && fp + 16 <= high {
        // SAFETY: `fp` and `fp + 8` lie inside this thread's stack, which is
        // mapped and readable; what they hold is checked before it is used.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        if ret < 4096 {
            break;
        }
        if skip > 0 {
            skip -= 1;
        } else {
            if depth == MAX_DEPTH {
                frames[MAX_DEPTH - 1] = TRUNCATED;
                break;
            }
            frames[depth] = ret;
            depth += 1;
        }
        if next <= fp {
            break;
        }
        fp = next;
    }
    depth
}

/// This thread's stack bounds, asked of pthreads once per thread.
pub(crate) fn stack_bounds() -> (usize, usize) {
    STACK.with(|cell| {
        if cell.get() == (0, 0) {
            cell.set(query_stack_bounds().unwrap_or((usize::MAX, 0)));
        }
        cell.get()
    })
}

fn query_stack_bounds() -> Option<(usize, usize)> {
    // SAFETY: `attr` is initialized by pthread_getattr_np before it is read
    // and destroyed after; the out-pointers are valid.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok.then(|| (addr as usize, addr as usize + size))
    }
}

/// [`capture`] with the backtrace crate's DWARF unwinder. Never inlined:
/// the number of frames it skips must not depend on the call site.
#[inline(never)]
fn capture_dwarf(frames: &mut [usize; MAX_DEPTH], record_fn: usize) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of frame records built on this thread's stack: (saved frame
    /// pointer, return address) pairs at increasing addresses.
    #[test]
    fn frame_pointer_walks_stop_at_anything_suspicious() {
        let mut chain = [0usize; 12];
        let base = chain.as_ptr() as usize;
        for i in 0..5 {
            chain[2 * i] = base + 16 * (i + 1);
            chain[2 * i + 1] = 0x5000 + i;
        }
        chain[10] = 0; // the outermost record: no caller
        chain[11] = 0x5005;
        let mut frames = [0usize; MAX_DEPTH];
        // The walk reads `chain` through addresses: keep the writes.
        let walk = |chain: &mut [usize; 12], frames: &mut [usize; MAX_DEPTH]| {
            std::hint::black_box(&mut *chain);
            walk_frame_pointers(frames, base)
        };
        let depth = walk(&mut chain, &mut frames);
        // The first return address (into the recording function) is skipped.
        assert_eq!(&frames[..depth], &[0x5001, 0x5002, 0x5003, 0x5004, 0x5005]);

        // A saved pointer below the current one ends the walk.
        chain[4] = base;
        let depth = walk(&mut chain, &mut frames);
        assert_eq!(&frames[..depth], &[0x5001, 0x5002]);

        // One outside the thread's stack is never read.
        chain[4] = 0x10;
        let depth = walk(&mut chain, &mut frames);
        assert_eq!(&frames[..depth], &[0x5001, 0x5002]);
        assert_eq!(walk_frame_pointers(&mut frames, 0x1000), 0);
        assert_eq!(walk_frame_pointers(&mut frames, base + 3), 0, "misaligned");

        // A return address that cannot be code ends it too.
        chain[4] = base + 48;
        chain[5] = 7;
        let depth = walk(&mut chain, &mut frames);
        assert_eq!(&frames[..depth], &[0x5001]);
    }
}
