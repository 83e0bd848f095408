//! A thread that allocates again after heapprof folded its counts at exit
//! (in a `pthread_key` destructor of another library, which glibc runs
//! after heapprof's) registers again; its counts must still be counted once.
//! One test in this binary: the counters are the process's.

use std::ffi::c_void;
use std::hint::black_box;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

const BLOCKS: u64 = 10_000;
const LATE_BLOCK: usize = 64;

/// A key destructor that allocates and frees one block: after heapprof's
/// own destructor has folded this thread away, since this key was made
/// after heapprof's (glibc runs them in the order keys were made).
extern "C" fn allocate_late(_value: *mut c_void) {
    drop(black_box(vec![0u8; LATE_BLOCK]));
}

/// Allocation and byte counts of a thread that makes `BLOCKS` boxes, with
/// (or without) a value for `key`, whose destructor allocates late.
fn counted_by_a_thread(key: libc::pthread_key_t, late: bool) -> (u64, u64) {
    let before = heapprof::stats();
    std::thread::spawn(move || {
        for i in 0..BLOCKS {
            drop(black_box(Box::new(i)));
        }
        if late {
            // SAFETY: `key` was made by pthread_key_create; the value is
            // only a non-null marker, never dereferenced.
            unsafe { libc::pthread_setspecific(key, std::ptr::dangling::<c_void>()) };
        }
    })
    .join()
    .unwrap();
    let after = heapprof::stats();
    (
        after.allocations - before.allocations,
        after.allocated_bytes - before.allocated_bytes,
    )
}

#[test]
fn a_thread_that_allocates_after_its_exit_is_counted_once() {
    // Registers this thread (and heapprof's exit key) before ours is made.
    drop(black_box(Box::new(0u64)));
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor has the
    // signature pthread_key_create expects and lives for the program.
    assert_eq!(
        unsafe { libc::pthread_key_create(&mut key, Some(allocate_late)) },
        0
    );
    // Twice each, so that a first spawn's one-time allocations do not count.
    counted_by_a_thread(key, false);
    counted_by_a_thread(key, true);
    let (allocations, bytes) = counted_by_a_thread(key, false);
    let (late_allocations, late_bytes) = counted_by_a_thread(key, true);
    assert!(allocations >= BLOCKS, "{allocations} allocations counted");
    assert_eq!(
        (late_allocations - allocations, late_bytes - bytes),
        (1, LATE_BLOCK as u64),
        "the late block alone, not the thread's counts again ({late_allocations} against {allocations})"
    );
}
