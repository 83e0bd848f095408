//! A bound of the bookkeeping reached: exact mode (rate 1) with more live
//! blocks than the live-block map can hold. The map grows by mapping levels
//! from the kernel; here the kernel refuses the third (an address-space
//! limit leaves room for the program's blocks, not for 8 MiB more), as it
//! would past the map's budget. Blocks that find no slot are not recorded;
//! the profile counts them as dropped samples in a comment; figures stay
//! consistent, and frees of unrecorded blocks change nothing.

mod common;

use common::{dropped_samples, go_pprof_ok, run_child_test_ok, scratch_dir, site_totals};
use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// Past the first two levels of the map (131,072 + 262,144 slots).
const LIVE: usize = 420_000;
/// Held before the limit: past the first level, so the second is mapped.
const BEFORE_LIMIT: usize = 200_000;

/// Each box is one 8-byte heap block: the blocks are the point.
#[allow(clippy::vec_box)]
#[inline(never)]
fn hold_many(into: &mut Vec<Box<u64>>, until: usize) {
    for i in into.len()..until {
        into.push(Box::new(i as u64));
    }
}

fn set_address_space_limit(bytes: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer, then a limit within the hard one.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut limit), 0);
        limit.rlim_cur = bytes.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &limit), 0);
    }
}

/// Grows malloc's heap by what `blocks` boxes take and keeps it (freed,
/// never trimmed), so that boxes allocated under the limit need no new
/// address space whether the heap is the main arena's or a thread's.
#[allow(clippy::vec_box)]
fn reserve_heap_for(blocks: usize) {
    heapprof::set_sample_rate(0);
    // SAFETY: mallopt only changes when glibc's malloc trims its heap.
    assert_eq!(
        unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) },
        1
    );
    let boxes: Vec<Box<u64>> = (0..blocks as u64).map(Box::new).collect();
    drop(boxes);
}

#[test]
fn a_full_live_block_map_drops_samples_and_says_so() {
    run_child_test_ok("full_map_child", &[]);
}

#[test]
#[ignore = "run by a_full_live_block_map_drops_samples_and_says_so"]
#[allow(clippy::vec_box)]
fn full_map_child() {
    let mut held = Vec::with_capacity(LIVE);
    reserve_heap_for(LIVE);
    heapprof::set_sample_rate(1);
    hold_many(&mut held, BEFORE_LIMIT);
    // 3 MiB to spare (the heap the boxes need is there already), less than
    // the 8 MiB the map's third level needs.
    let virtual_bytes = heapprof::stats().virtual_bytes;
    assert!(virtual_bytes > 0, "no /proc/self/statm");
    set_address_space_limit(virtual_bytes + (3 << 20));
    hold_many(&mut held, LIVE);
    set_address_space_limit(u64::MAX);

    let dir = scratch_dir("bounds");
    let path = dir.join("full.pb.gz");
    heapprof::write_heap_profile(&path).unwrap();
    let profile = Profile::decode(&std::fs::read(&path).unwrap()).unwrap();

    let [objects, bytes, inuse_objects, inuse_bytes] = site_totals(&profile, "hold_many", Some(8));
    let dropped = dropped_samples(&profile);
    assert!(objects > 300_000, "two levels hold most blocks: {objects}");
    assert!(
        (objects as usize) < LIVE,
        "the map cannot hold them all: {objects}"
    );
    assert!(
        dropped as usize >= LIVE - objects as usize,
        "{dropped} dropped"
    );
    assert_eq!(
        (inuse_objects, inuse_bytes, bytes),
        (objects, objects * 8, objects * 8)
    );
    // The real client shows the comment.
    let comments = go_pprof_ok(&["-comments", path.to_str().unwrap()]);
    assert!(comments.contains("samples dropped"), "{comments}");

    // Freeing everything, recorded or not, leaves nothing in use.
    drop(held);
    let profile = heapprof::heap_profile_data().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    let [after_objects, _, after_inuse, after_inuse_bytes] =
        site_totals(&profile, "hold_many", Some(8));
    assert_eq!(
        (after_objects, after_inuse, after_inuse_bytes),
        (objects, 0, 0)
    );
}
