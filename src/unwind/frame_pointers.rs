//! The frame-pointer walk, for programs built with
//! `-C force-frame-pointers=yes`: a few nanoseconds a frame.
//!
//! Every frame pointer is checked against the thread's stack bounds before
//! it is read, and the walk stops at the first one that is out of bounds or
//! not above the last: the standard library is built without frame
//! pointers, so a stack may end early there, never with a read outside the
//! stack. Nothing here may panic, allocate or take a lock: it runs inside
//! the allocator.

use super::stack::{stack_bounds, MAX_DEPTH, TRUNCATED};

/// The frame pointer of the caller's frame (0 where there is none to read),
/// inlined into it.
#[inline(always)]
pub(super) fn current_frame() -> usize {
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
pub(super) fn walk(frames: &mut [usize; MAX_DEPTH], mut fp: usize) -> usize {
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

#[cfg(test)]
mod tests {
    use super::walk as walk_frame_pointers;
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
