//! Lifetimes, exactly at rate 1: blocks held for known durations are in
//! the right `age` class of the heap profile (and `go tool pprof
//! -tagfocus=age=...` picks them), churned blocks show as short-lived in
//! the lifetimes profile, blocks freed after a known time land in its
//! matching class with their summed lifetime, and the heap profile keeps
//! Go's four sample types.

mod common;

use std::time::{Duration, Instant};

use common::{go_pprof_ok, scratch_dir, str_label, top_row};
use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// Values summed over the samples of blocks of `size` bytes with label
/// `key=value`.
fn summed(profile: &Profile, size: i64, key: &str, value: &str) -> Vec<i64> {
    let mut totals = vec![0; profile.sample_types.len()];
    for sample in &profile.samples {
        if common::object_size(sample) == Some(size) && str_label(sample, key) == Some(value) {
            for (t, v) in totals.iter_mut().zip(&sample.values) {
                *t += v;
            }
        }
    }
    totals
}

#[inline(never)]
fn held_long(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![1u8; 3001]).collect()
}

#[inline(never)]
fn held_briefly(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![2u8; 3101]).collect()
}

#[inline(never)]
fn churn(n: usize) {
    for _ in 0..n {
        drop(std::hint::black_box(vec![3u8; 3201]));
    }
}

#[test]
fn ages_and_lifetimes_land_in_their_classes() {
    heapprof::set_sample_rate(1);
    let started = Instant::now();
    let long = held_long(10);
    churn(2000);
    std::thread::sleep(Duration::from_millis(1100));
    let brief = held_briefly(20);
    let dir = scratch_dir("lifetimes");
    let heap = dir.join("heap.pb.gz");
    heapprof::write_heap_profile(&heap).unwrap();
    // Held 1.1 s and more, then freed.
    drop(long);
    let held_for = started.elapsed();
    let lifetimes = dir.join("lifetimes.pb.gz");
    heapprof::write_lifetimes_profile(&lifetimes).unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);

    let profile = Profile::decode(&std::fs::read(&heap).unwrap()).unwrap();
    assert_eq!(profile.sample_types, heapprof::pprof::ValueType::go_heap());
    assert_eq!(
        summed(&profile, 3001, "age", "1s-1m"),
        [10, 30010, 10, 30010]
    );
    assert_eq!(summed(&profile, 3001, "age", "<1s"), [0; 4]);
    assert_eq!(summed(&profile, 3101, "age", "<1s"), [20, 62020, 20, 62020]);
    // Freed blocks are allocations with no in-use part.
    assert_eq!(
        summed(&profile, 3201, "age", "freed"),
        [2000, 6_402_000, 0, 0]
    );

    let heap = heap.to_str().unwrap();
    let top = go_pprof_ok(&[
        "-tagfocus=age=1s-1m",
        "-top",
        "-nodefraction=0",
        "-unit=B",
        "-sample_index=inuse_space",
        heap,
    ]);
    assert_eq!(
        top_row(&top, "held_long").map(|r| r.1),
        Some(30010 + 240),
        "{top}"
    );
    assert!(top_row(&top, "held_briefly").is_none(), "{top}");

    let profile = Profile::decode(&std::fs::read(&lifetimes).unwrap()).unwrap();
    let types: Vec<&str> = profile.sample_types.iter().map(|t| &t.r#type[..]).collect();
    assert_eq!(types, ["freed_objects", "freed_space", "lifetime"]);
    assert_eq!(profile.sample_types[2].unit, "microseconds");
    // The churned blocks lived microseconds: all but a few (a preemption
    // between allocation and free) under a millisecond.
    let short = summed(&profile, 3201, "lifetime", "<1ms");
    assert!(short[0] >= 1990 && short[1] == short[0] * 3201, "{short:?}");
    assert!(short[2] < short[0] * 1000, "{short:?}");
    let long = summed(&profile, 3001, "lifetime", "1s-1m");
    assert_eq!(long[..2], [10, 30010]);
    let mean = Duration::from_micros((long[2] / 10) as u64);
    assert!(
        mean >= Duration::from_millis(1100) && mean <= held_for,
        "mean lifetime {mean:?}, held {held_for:?}"
    );

    // The temporary allocations, as go tool pprof shows them.
    let lifetimes = lifetimes.to_str().unwrap();
    let top = go_pprof_ok(&[
        "-tagfocus=lifetime=<1ms",
        "-top",
        "-nodefraction=0",
        "-unit=B",
        "-sample_index=freed_space",
        lifetimes,
    ]);
    let (_, cum) = top_row(&top, "churn").unwrap_or_else(|| panic!("{top}"));
    assert_eq!(cum, short[1], "{top}");
    assert!(top_row(&top, "held_long").is_none(), "{top}");
    drop(brief);
}
