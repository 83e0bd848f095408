//! Fork safety. `fork` copies only the calling thread; a lock held by any
//! other thread at that moment stays locked forever in the child. So the
//! locks the profiler takes (its walks of the loader's list, the symbol
//! cache's, the peak profile's, the sample table's and the counter
//! registry's, in that order) are
//! acquired just before `fork` and released just after it, in the parent and
//! in the child, with `pthread_atfork` handlers registered before `main`.
//! A child then samples and writes profiles like any process.
//!
//! Its figures start as a copy of the parent's (the same live blocks exist
//! in both after a fork); each process then records its own allocations. In
//! the child, the counters of the parent's other threads are folded into the
//! exited threads' totals, since their memory may be reused.
//!
//! It sits beside the core, not in it, because it orders the dashboard's
//! lock (the symbol cache's) with the core's; the allocation path never
//! calls it. The handlers must never take a lock out of that order, nor
//! panic: they run inside `fork`.

use std::cell::UnsafeCell;
use std::sync::MutexGuard;

use crate::core::guard::Guard;
use crate::core::{counters, peak, table};
use crate::{symbolize, sys};

/// The guards held from the prepare handler to the parent/child handlers,
/// all of which run on the forking thread.
struct HeldAcrossFork(UnsafeCell<Option<Held>>);

/// The profiler's locks, in the order they are taken.
type Held = (
    MutexGuard<'static, ()>,
    MutexGuard<'static, symbolize::Cache>,
    MutexGuard<'static, Option<peak::Recorded>>,
    MutexGuard<'static, table::Table>,
    MutexGuard<'static, counters::Registry>,
);

// SAFETY: only the forking thread touches it, between the prepare handler
// and the parent/child handler of one `fork` call; glibc serializes forks'
// handlers.
unsafe impl Sync for HeldAcrossFork {}

static HELD: HeldAcrossFork = HeldAcrossFork(UnsafeCell::new(None));
/// Installs the fork handlers, from the loader, once, before `main` and
/// while the process has one thread: the registry lock is taken at every
/// thread's first allocation, long before any sample, so the handlers must
/// be in place before any other thread exists.
extern "C" fn register_before_main() {
    sys::at_fork(before_fork, after_fork_in_parent, after_fork_in_child);
}

sys::run_before_main!(FORK_HANDLERS, register_before_main);

extern "C" fn before_fork() {
    let _guard = Guard::enter();
    let walks = sys::lock_loader_walks();
    let cache = symbolize::lock_cache();
    let peak = peak::lock();
    let table = table::lock();
    let registry = counters::lock();
    // SAFETY: see `HeldAcrossFork`.
    unsafe { *HELD.0.get() = Some((walks, cache, peak, table, registry)) };
}

extern "C" fn after_fork_in_parent() {
    // SAFETY: see `HeldAcrossFork`. Dropping the guards unlocks the locks.
    unsafe { (*HELD.0.get()).take() };
}

extern "C" fn after_fork_in_child() {
    // SAFETY: see `HeldAcrossFork`. In the child the forking thread is the
    // locks' owner, so unlocking them there is valid too.
    if let Some((_, _, _, _, mut registry)) = unsafe { (*HELD.0.get()).take() } {
        registry.keep_only_this_thread();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Forks while another thread holds every lock the handlers order (the
    /// counter registry's, for one, is taken at a thread's first
    /// allocation, before any sample): without the handlers the child would
    /// find them locked forever. Nothing here registers them: they are installed before main.
    #[test]
    fn a_child_forked_while_the_table_is_locked_can_lock_it() {
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let _walks = sys::lock_loader_walks();
            let _table = table::lock();
            let _registry = counters::lock();
            let _cache = symbolize::lock_cache();
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        locked_rx.recv().unwrap();
        // SAFETY: the child only takes the profiler's locks and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            drop(sys::lock_loader_walks());
            drop(symbolize::lock_cache());
            drop(table::lock());
            drop(counters::lock());
            // SAFETY: leave the child without running the test harness.
            unsafe { libc::_exit(0) };
        }
        let start = Instant::now();
        let mut status = 0;
        let exited = loop {
            // SAFETY: waiting for our own child.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                break true;
            }
            if start.elapsed() > Duration::from_secs(10) {
                // SAFETY: killing and reaping our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        holder.join().unwrap();
        assert!(
            exited && libc::WIFEXITED(status),
            "the child deadlocked on an inherited lock"
        );
    }
}
