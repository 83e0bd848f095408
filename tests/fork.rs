//! A multi-threaded process that forks while its other threads are in the
//! middle of recording samples (rate 1: every allocation takes the table
//! lock): each child keeps allocating, is profiled, and writes a profile,
//! instead of deadlocking on a lock inherited from a thread it does not have.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{scratch_dir, site_totals};
use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

#[inline(never)]
fn allocate_in_child(into: &mut Vec<Vec<u8>>, n: usize) {
    for i in 0..n {
        into.push(vec![i as u8; 100]);
    }
}

/// Waits for `pid`; false if it has not exited within `limit`.
fn wait_exited_ok(pid: libc::pid_t, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            return libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        }
        if start.elapsed() > limit {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn forked_children_keep_profiling_while_parent_threads_sample() {
    heapprof::set_sample_rate(1);
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    black_box(vec![0u8; 64]);
                }
            })
        })
        .collect();
    let dir = scratch_dir("fork");
    // Children inherit the symbol cache: warm it once here.
    heapprof::heap_profile().unwrap();
    // Many cheap rounds, so that some forks land while a parent thread
    // holds the table lock; every 10th child also writes a profile. The
    // deterministic proof that an inherited lock is released is the unit
    // test in src/fork.rs.
    for round in 0..40 {
        let write = round % 10 == 0;
        let path = dir.join(format!("child-{round}.pb.gz"));
        let path_for_child = path.clone();
        // SAFETY: the child only allocates, writes a file and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            heapprof::set_sample_rate(1);
            let mut kept = Vec::with_capacity(1000);
            allocate_in_child(&mut kept, if write { 1000 } else { 20 });
            let ok = !write || heapprof::write_heap_profile(&path_for_child).is_ok();
            drop(kept);
            // SAFETY: leave without running the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert!(
            wait_exited_ok(pid, Duration::from_secs(20)),
            "child {round} deadlocked or failed"
        );
        if write {
            let profile = Profile::decode(&std::fs::read(&path).unwrap()).unwrap();
            let [objects, bytes, inuse, _] = site_totals(&profile, "allocate_in_child", Some(100));
            assert_eq!(
                (objects, bytes, inuse),
                (1000, 100_000, 1000),
                "child {round} profiled its own allocations"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for thread in busy {
        thread.join().unwrap();
    }
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
}

/// glibc leaves its loader lock held in a child forked while another thread
/// walks the loaded objects, as writing a profile does (its mappings): the
/// fork handlers wait for the profiler's own walks, so a child forked at
/// any moment of a write can write a profile.
#[test]
fn children_forked_while_a_profile_is_written_can_write_one() {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut written = 0;
            while !stop.load(Ordering::Relaxed) {
                black_box(heapprof::heap_profile().unwrap());
                written += 1;
            }
            written
        })
    };
    heapprof::heap_profile().unwrap();
    for round in 0..150 {
        // SAFETY: the child only builds a profile and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = heapprof::heap_profile().is_ok();
            // SAFETY: leave without running the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert!(
            wait_exited_ok(pid, Duration::from_secs(20)),
            "child {round} deadlocked or failed"
        );
    }
    stop.store(true, Ordering::Relaxed);
    assert!(
        writer.join().unwrap() > 0,
        "the writer wrote during the forks"
    );
}
