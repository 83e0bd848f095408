//! A bound of the bookkeeping reached: exact mode (rate 1) with more live
//! blocks than the live-block map holds (131072 slots). Blocks that find no
//! slot are not recorded; the profile counts them as dropped samples in a
//! comment; figures stay consistent, and frees of unrecorded blocks change
//! nothing.

mod common;

use common::{dropped_samples, go_pprof_ok, scratch_dir, site_totals};
use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

const LIVE: usize = 200_000;

/// Each box is one 8-byte heap block: the blocks are the point.
#[allow(clippy::vec_box)]
#[inline(never)]
fn hold_many(into: &mut Vec<Box<u64>>) {
    for i in 0..LIVE {
        into.push(Box::new(i as u64));
    }
}

#[test]
#[allow(clippy::vec_box)]
fn a_full_live_block_map_drops_samples_and_says_so() {
    heapprof::set_sample_rate(1);
    let mut held = Vec::with_capacity(LIVE);
    hold_many(&mut held);
    let dir = scratch_dir("bounds");
    let path = dir.join("full.pb.gz");
    heapprof::write_heap_profile(&path).unwrap();
    let profile = Profile::decode(&std::fs::read(&path).unwrap()).unwrap();

    let [objects, bytes, inuse_objects, inuse_bytes] = site_totals(&profile, "hold_many", Some(8));
    let dropped = dropped_samples(&profile);
    assert!(objects > 100_000, "most blocks recorded: {objects}");
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
