//! The child-process protocol shared by the overhead bench binaries:
//! `overhead` (heapprof installed directly, and the driver),
//! `overhead_system` (the system allocator directly: the baseline) and
//! `overhead_peers` (dhat-rs and jemalloc's profiler, each beside its own
//! baseline). The timed workloads live in `heapprof-bench-workloads`;
//! the ones here measure heapprof itself.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::Instant;

use heapprof_bench_workloads::{churn, churn_2_threads, large, mix, pairs};

#[inline(never)]
fn at_depth(depth: usize, iterations: usize) {
    if depth > 1 {
        at_depth(depth - 1, iterations);
        black_box(depth);
    } else {
        pairs(iterations);
    }
}

/// Alloc+free pairs 30 frames deep: in exact mode, every one is sampled.
fn deep_pairs(iterations: usize) {
    at_depth(30, iterations);
}

/// Enters and leaves a label scope around a closure that allocates
/// nothing, `iterations` times: what a scope costs a program.
#[inline(never)]
pub fn scopes(iterations: usize) {
    for i in 0..iterations {
        heapprof::with_labels(&[("endpoint", "/users")], || black_box(i));
    }
}

/// [`deep_pairs`] inside one label scope: in exact mode every allocation is
/// a labelled sample, whose label set is cached in the scope's frame.
fn labeled_deep_pairs(iterations: usize) {
    heapprof::with_labels(&[("endpoint", "/users"), ("tenant", "acme")], || {
        deep_pairs(iterations)
    });
}

/// One alloc+free pair 30 frames deep in a scope entered for it alone: in
/// exact mode each sample merges the scope's labels and finds their set
/// in the table, the cost of the first sample in a scope.
fn scoped_deep_pairs(iterations: usize) {
    for _ in 0..iterations {
        heapprof::with_labels(&[("endpoint", "/users"), ("tenant", "acme")], || {
            deep_pairs(1)
        });
    }
}

/// A block of 16 bytes allocated at the end of a call path that spells the
/// low `bits` bits of `path` (one of two functions per bit): each path is a
/// stack of its own, so each block is a bucket of its own. (Buckets are per
/// size class, so distinct sizes would not make distinct buckets.)
#[inline(never)]
fn bucket_at(path: usize, bits: u32) -> Box<[u8]> {
    if bits == 0 {
        return vec![0u8; 16].into_boxed_slice();
    }
    let b = if path & 1 == 0 {
        zero_bit(path >> 1, bits - 1)
    } else {
        one_bit(path >> 1, bits - 1)
    };
    // Keeps the calls from becoming tail calls, which would merge frames.
    black_box(bits);
    b
}

#[inline(never)]
fn zero_bit(path: usize, bits: u32) -> Box<[u8]> {
    let b = bucket_at(path, bits);
    black_box(0);
    b
}

#[inline(never)]
fn one_bit(path: usize, bits: u32) -> Box<[u8]> {
    let b = bucket_at(path, bits);
    black_box(1);
    b
}

/// `buckets` blocks, each in a bucket of its own.
fn blocks_in_distinct_buckets(buckets: usize) -> Vec<Box<[u8]>> {
    let bits = usize::BITS - buckets.saturating_sub(1).leading_zeros();
    (0..buckets).map(|i| bucket_at(i, bits)).collect()
}

/// Fills the table with `buckets` buckets, then times two
/// profile writes: the first symbolizes, the second finds symbols cached.
fn profile_write(buckets: usize) {
    let kept = blocks_in_distinct_buckets(buckets);
    let first = Instant::now();
    let bytes = heapprof::heap_profile().unwrap();
    let first = first.elapsed();
    let second = Instant::now();
    black_box(heapprof::heap_profile().unwrap());
    let second = second.elapsed();
    eprintln!("{} {} {}", first.as_nanos(), second.as_nanos(), bytes.len());
    drop(kept);
}

/// Resident memory of this process, in bytes.
pub fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 4096
}

/// Keeps `buckets` blocks of distinct (stack, size), then reports resident
/// memory on stderr: against the system allocator alone, what heapprof keeps
/// per recorded bucket.
fn buckets(buckets: usize) {
    let kept = blocks_in_distinct_buckets(buckets);
    eprintln!("{}", resident_bytes());
    drop(kept);
}

pub fn workload(name: &str) -> (fn(usize), usize) {
    match name {
        "buckets" => (buckets, 100_000),
        "deep_pairs" => (deep_pairs, 200_000),
        "labeled_deep_pairs" => (labeled_deep_pairs, 200_000),
        "scoped_deep_pairs" => (scoped_deep_pairs, 200_000),
        "scopes" => (scopes, 50_000_000),
        "profile_write" => (profile_write, 10_000),
        "churn" => (churn, 2_000_000),
        "mix" => (mix, 300_000),
        "large" => (large, 3_000),
        "churn_2_threads" => (churn_2_threads, 2_000_000),
        "pairs" => (pairs, 20_000_000),
        other => panic!("unknown workload {other}"),
    }
}

/// In a child: run the workload named in `HEAPPROF_BENCH_CHILD` (after the
/// mode, `mode:workload`) and print its time in ns. Returns false if this
/// process is not a child.
pub fn run_as_child(prepare: impl FnOnce(&str) -> Box<dyn std::any::Any>) -> bool {
    let Ok(spec) = std::env::var("HEAPPROF_BENCH_CHILD") else {
        return false;
    };
    let (mode, name) = spec.split_once(':').expect("mode:workload");
    let iterations = std::env::var("HEAPPROF_BENCH_ITERATIONS")
        .ok()
        .map(|n| n.parse().unwrap());
    // Kept alive while the workload runs (a profiler session, say).
    let session = prepare(mode);
    let (run, default_iterations) = workload(name);
    let start = Instant::now();
    run(iterations.unwrap_or(default_iterations));
    println!("{}", start.elapsed().as_nanos());
    drop(session);
    true
}
