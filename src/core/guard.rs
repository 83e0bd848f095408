//! The reentrancy guard.
//!
//! While the profiler itself runs on a thread (capturing a stack, writing a
//! profile), allocations on that thread must pass straight to the inner
//! allocator: otherwise recording a sample would allocate, which could sample,
//! which would record... The flag lives in the thread's state
//! ([`super::thread`]), so entering and leaving never allocates and works even
//! while the thread's other thread-locals are being destroyed. Neither may
//! ever lock, allocate or panic.

use super::thread;

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
            was_active: thread::with(|local| local.in_profiler.replace(true)),
        }
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        thread::with(|local| local.in_profiler.set(self.was_active));
    }
}

/// Whether the current thread is inside the profiler.
#[inline]
pub(crate) fn is_active() -> bool {
    thread::with(|local| local.in_profiler.get())
}
