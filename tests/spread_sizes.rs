//! One stack allocating sizes spread over 200,000 distinct values, more
//! than the table has buckets (131,072): buckets are per size class, so a
//! million allocations (and, at a small rate, a million and a half samples)
//! make at most a few hundred buckets, drop nothing, and the totals are
//! exact at rate 1 and within sampling error of the truth at 64 KiB.

mod common;

use common::{dropped_samples, object_size, run_child_test_ok, site_totals};
use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

const ALLOCATIONS: u64 = 1_000_000;
/// Sizes run over 1 to this, each of them `ALLOCATIONS / DISTINCT` times
/// (7919 is prime to it, so `i * 7919 % DISTINCT` visits every value).
const DISTINCT: u64 = 200_000;

fn size_of_allocation(i: u64) -> u64 {
    1 + (i * 7919) % DISTINCT
}

/// Allocates and frees every size in turn, from one stack.
#[inline(never)]
fn spread_churn() {
    for i in 0..ALLOCATIONS {
        let block = Vec::<u8>::with_capacity(size_of_allocation(i) as usize);
        std::hint::black_box(&block);
    }
}

/// Runs the workload and returns the profile and the site's samples.
fn profile_of_the_workload() -> (Profile, Vec<heapprof::pprof::Sample>) {
    spread_churn();
    let profile = heapprof::heap_profile_data().unwrap();
    assert_eq!(dropped_samples(&profile), 0, "{:?}", profile.comments);
    let site: Vec<_> = profile
        .samples
        .iter()
        .filter(|s| {
            let leaf = profile.locations[s.locations[0]].lines.first();
            leaf.is_some_and(|l| {
                profile.functions[l.function]
                    .name
                    .ends_with("::spread_churn")
            })
        })
        .cloned()
        .collect();
    // Sizes of 1 to 200,000 fall in 8 classes per power of two up to 2^17.
    assert!(
        !site.is_empty() && site.len() <= 8 * 18,
        "{} buckets",
        site.len()
    );
    for sample in &site {
        let label = object_size(sample).expect("a bytes label");
        assert!((1..=DISTINCT as i64).contains(&label), "{label}");
    }
    (profile, site)
}

#[test]
fn spread_sizes_at_rate_1_are_exact() {
    run_child_test_ok("exact_child", &[("HEAPPROF", "rate=1")]);
}

#[test]
#[ignore = "run by spread_sizes_at_rate_1_are_exact"]
fn exact_child() {
    let (profile, site) = profile_of_the_workload();
    let bytes: u64 = (0..ALLOCATIONS).map(size_of_allocation).sum();
    assert_eq!(
        site_totals(&profile, "spread_churn", None),
        [ALLOCATIONS as i64, bytes as i64, 0, 0]
    );
    // A bucket's label is the average of its sizes, exactly.
    for sample in &site {
        assert_eq!(
            object_size(sample),
            Some(sample.values[1] / sample.values[0])
        );
    }
}

#[test]
fn spread_sizes_at_a_small_rate_are_within_sampling_error() {
    run_child_test_ok("sampled_child", &[("HEAPPROF", "rate=64k")]);
}

#[test]
#[ignore = "run by spread_sizes_at_a_small_rate_are_within_sampling_error"]
fn sampled_child() {
    let rate = 65536.0f64;
    let (profile, _) = profile_of_the_workload();
    let [objects, bytes, inuse_objects, inuse_bytes] = site_totals(&profile, "spread_churn", None);
    // The truth, and the standard deviation of each estimate: a block of s
    // bytes is sampled with probability p = 1 - exp(-s/R) and weighted 1/p.
    let (mut true_bytes, mut var_objects, mut var_bytes) = (0.0, 0.0, 0.0);
    for i in 0..ALLOCATIONS {
        let s = size_of_allocation(i) as f64;
        let p = -(-s / rate).exp_m1();
        true_bytes += s;
        var_objects += (1.0 - p) / p;
        var_bytes += s * s * (1.0 - p) / p;
    }
    let true_objects = ALLOCATIONS as f64;
    // Five standard deviations, plus the most that weighting a class by its
    // average size can bias a figure (0.35%, see src/core/table.rs).
    let check = |name: &str, estimate: i64, truth: f64, variance: f64| {
        let tolerance = 5.0 * variance.sqrt() + 0.0035 * truth;
        let error = estimate as f64 - truth;
        println!("{name}: {estimate} for {truth}, error {error:.0}, tolerance {tolerance:.0}");
        assert!(
            error.abs() <= tolerance,
            "{name}: {estimate} is {error:.0} from {truth}, more than {tolerance:.0}"
        );
    };
    check("alloc_objects", objects, true_objects, var_objects);
    check("alloc_space", bytes, true_bytes, var_bytes);
    // Every sampled block was freed: nothing in use, exactly.
    assert_eq!((inuse_objects, inuse_bytes), (0, 0));
}
