//! What every walker shares: the frame buffer and its bound, the registers
//! a walk starts from, and the calling thread's stack bounds, which every
//! stack read is checked against.
//!
//! The walkers stand on this module and never on each other or on the
//! module that chooses between them. Nothing here may panic, allocate
//! through the profiled path or take a lock: it runs inside the allocator.

use std::cell::Cell;

use crate::sys;

/// Most frames kept per stack, counted from the allocation site. Deeper stacks
/// are cut at the root end and marked with a `[truncated]` frame.
pub const MAX_DEPTH: usize = 128;

/// Stands in for the frames cut from a stack deeper than [`MAX_DEPTH`].
pub(crate) const TRUNCATED: usize = 1;

thread_local! {
    /// This thread's stack: (lowest, highest) address, (0, 0) until known.
    static STACK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// This thread's stack bounds, (lowest, highest) address, asked of the
/// platform once per thread; `(usize::MAX, 0)`, which holds no address,
/// where it cannot say. Inlined: it is read on every capture.
#[inline]
pub(super) fn stack_bounds() -> (usize, usize) {
    STACK.with(|cell| {
        if cell.get() == (0, 0) {
            cell.set(sys::thread_stack().unwrap_or((usize::MAX, 0)));
        }
        cell.get()
    })
}

/// Registers at the point a walk starts from.
#[derive(Clone, Copy, Debug)]
pub(super) struct Registers {
    pub(super) pc: usize,
    pub(super) sp: usize,
    pub(super) bp: usize,
}

impl Registers {
    /// The caller's program counter, stack and frame pointers, at the point
    /// of the call (inlined into it).
    #[inline(always)]
    pub(super) fn here() -> Registers {
        #[cfg(not(target_arch = "x86_64"))]
        let (pc, sp, bp) = (0, 0, 0); // no rule for address 0: walks fail
        #[cfg(target_arch = "x86_64")]
        let (pc, sp, bp): (usize, usize, usize);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: reads three registers; no memory access, no stack use.
        unsafe {
            std::arch::asm!(
                "lea {pc}, [rip]",
                "mov {sp}, rsp",
                "mov {bp}, rbp",
                pc = out(reg) pc,
                sp = out(reg) sp,
                bp = out(reg) bp,
                options(nomem, nostack, preserves_flags),
            );
        }
        Registers { pc, sp, bp }
    }
}
