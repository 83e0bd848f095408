//! The thread-local reentrancy guard.
//!
//! While the profiler itself runs on a thread (capturing a stack, writing a
//! profile), allocations on that thread must pass straight to the inner
//! allocator: otherwise recording a sample would allocate, which could sample,
//! which would record... The flag is a const-initialized `Cell<bool>` with no
//! destructor, so touching it never allocates and works even while the
//! thread's other thread-locals are being destroyed.

use std::cell::Cell;

thread_local! {
    static IN_PROFILER: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as "inside the profiler" until dropped; restores
/// the previous state, so guards nest.
pub(crate) struct Guard {
    was_active: bool,
}

impl Guard {
    /// Enters the profiler on this thread.
    #[inline]
    pub(crate) fn enter() -> Guard {
        Guard {
            was_active: IN_PROFILER.with(|flag| flag.replace(true)),
        }
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        IN_PROFILER.with(|flag| flag.set(self.was_active));
    }
}

/// Whether the current thread is inside the profiler.
#[inline]
pub(crate) fn is_active() -> bool {
    IN_PROFILER.with(Cell::get)
}
