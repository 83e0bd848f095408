//! Pathological stacks: very deep recursion is cut at `heapprof::MAX_DEPTH`
//! frames and marked `[truncated]` at its root end; more distinct stacks
//! than the table holds are dropped, counted and reported, while the table
//! stays within its bound.

mod common;

use std::hint::black_box;

use common::{go_pprof_ok, scratch_dir, site_totals};
use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

#[inline(never)]
fn recurse(depth: usize) -> Vec<u8> {
    if depth == 0 {
        return deep_leaf();
    }
    let v = recurse(depth - 1);
    black_box(v)
}

#[inline(never)]
fn deep_leaf() -> Vec<u8> {
    vec![9u8; 4321]
}

/// Allocates at the end of one of `2^depth` distinct stacks, `path`'s bits
/// choosing at each level whether the recursion passes through
/// [`odd_step`].
#[inline(never)]
fn many_stacks(path: u32, depth: u32) {
    if depth == 0 {
        black_box(vec![0u8; 8]);
    } else if path & 1 == 0 {
        many_stacks(black_box(path >> 1), depth - 1);
    } else {
        odd_step(black_box(path >> 1), depth - 1);
    }
    black_box(());
}

#[inline(never)]
fn odd_step(path: u32, depth: u32) {
    many_stacks(path, depth);
    black_box(());
}

#[test]
fn deep_stacks_are_truncated_and_a_full_table_drops_and_reports() {
    heapprof::set_sample_rate(1);
    let dir = scratch_dir("stack-bounds");

    let kept = recurse(300);
    let path = dir.join("deep.pb.gz");
    heapprof::write_heap_profile(&path).unwrap();
    let profile = Profile::decode(&std::fs::read(&path).unwrap()).unwrap();
    let sample = profile
        .samples
        .iter()
        .find(|s| common::object_size(s) == Some(4321))
        .expect("the deep allocation");
    assert!(
        sample.locations.len() <= heapprof::MAX_DEPTH,
        "{} locations",
        sample.locations.len()
    );
    // Built without frame pointers, stacks are walked with cached CFI rules
    // (tests/frame_pointers.rs covers a build with them).
    common::assert_walked_by(&profile, "with cached DWARF CFI rules");
    let root = &profile.locations[*sample.locations.last().unwrap()];
    assert_eq!(
        profile.functions[root.lines[0].function].name,
        "[truncated]"
    );
    assert_eq!(
        site_totals(&profile, "deep_leaf", Some(4321))[..2],
        [1, 4321]
    );
    let traces = go_pprof_ok(&["-traces", path.to_str().unwrap()]);
    assert!(
        traces.contains("[truncated]"),
        "go tool pprof shows the marker"
    );
    drop(kept);

    // Each stack is a bucket of its own: more than the table holds.
    let depth = 17;
    let stacks = 1usize << depth;
    for path in 0..stacks as u32 {
        many_stacks(path, depth);
    }
    let path = dir.join("full.pb.gz");
    heapprof::write_heap_profile(&path).unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    let profile = Profile::decode(&std::fs::read(&path).unwrap()).unwrap();
    let recorded = profile
        .samples
        .iter()
        .filter(|s| {
            let leaf = &profile.locations[s.locations[0]];
            profile.functions[leaf.lines[0].function]
                .name
                .ends_with("many_stacks")
        })
        .count();
    assert!(
        recorded < stacks && recorded > 30_000,
        "{recorded} buckets recorded"
    );
    assert!(
        profile.samples.len() <= 131_072,
        "the table stays within its bound"
    );
    let dropped = common::dropped_samples(&profile) as usize;
    assert!(dropped > 0, "a dropped-samples comment");
    assert!(
        dropped >= stacks - recorded,
        "{dropped} dropped, {recorded} recorded"
    );
}
