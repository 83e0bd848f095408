//! The workloads and child-process protocol shared by the overhead bench
//! binaries: `overhead` (heapprof installed directly, and the driver),
//! `overhead_system` (the system allocator directly: the baseline) and
//! `overhead_peers` (dhat-rs and jemalloc's profiler, each beside its own
//! baseline).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::Instant;

#[inline(never)]
fn churn_leaf(i: usize, map: &mut HashMap<usize, String>) {
    let key = i % 4096;
    if i % 3 == 0 {
        map.remove(&key);
    } else {
        map.insert(key, format!("value-{i}"));
    }
    black_box(Box::new([i; 4]));
}

#[inline(never)]
fn churn_mid(i: usize, map: &mut HashMap<usize, String>) {
    let s = String::from("a short string that is copied");
    black_box(&s);
    churn_leaf(i, map);
}

/// Malloc-bound churn of small objects through a few call levels.
fn churn(iterations: usize) {
    let mut map = HashMap::new();
    for i in 0..iterations {
        churn_mid(i, &mut map);
    }
    black_box(map.len());
}

/// A realistic mix: a BTreeMap of records, formatting, and a JSON-like
/// encode/decode round trip done by hand (no serialization crate needed).
fn mix(iterations: usize) {
    let mut index: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut checksum = 0usize;
    for i in 0..iterations {
        let key = format!("user-{:05}", i % 5000);
        index.entry(key.clone()).or_default().push(i as u32);
        let encoded = format!("{{\"id\":{i},\"name\":\"{key}\",\"tags\":[\"a\",\"b\",\"c\"]}}");
        let decoded: Vec<&str> = encoded
            .split([',', ':', '{', '}', '[', ']'])
            .filter(|s| !s.is_empty())
            .collect();
        checksum = checksum.wrapping_add(decoded.len()).wrapping_add(work(i));
        if index.len() > 4000 && i % 2 == 0 {
            let first = index.keys().next().cloned().unwrap();
            index.remove(&first);
        }
    }
    black_box((checksum, index.len()));
}

/// Non-allocating work between allocations, as real code has.
fn work(i: usize) -> usize {
    (0..40).fold(i, |acc, k| acc.rotate_left(3) ^ (k * 2654435761))
}

/// Large buffers, 64 KiB to 4 MiB.
fn large(iterations: usize) {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for i in 0..iterations {
        let size = (64 << 10) << (i % 7);
        let mut buffer = vec![0u8; size];
        buffer[size / 2] = i as u8;
        kept.push(buffer);
        if kept.len() > 8 {
            kept.remove(0);
        }
    }
    black_box(kept.len());
}

/// The churn on two threads at once.
fn churn_2_threads(iterations: usize) {
    let threads: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || churn(iterations / 2)))
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
}

/// The bare alloc+free pair, for the fast-path figure.
fn pairs(iterations: usize) {
    for i in 0..iterations {
        black_box(Box::new(i));
    }
}

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

#[inline(never)]
fn bucket_at(depth: usize, size: usize) -> Box<[u8]> {
    if depth > 0 {
        let b = bucket_at(depth - 1, size);
        black_box(depth);
        b
    } else {
        vec![0u8; size].into_boxed_slice()
    }
}

/// Fills the table with `buckets` (stack, size) buckets, then times two
/// profile writes: the first symbolizes, the second finds symbols cached.
fn profile_write(buckets: usize) {
    let kept: Vec<Box<[u8]>> = (0..buckets)
        .map(|i| bucket_at(i % 40, 16 + i / 40))
        .collect();
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
    let kept: Vec<Box<[u8]>> = (0..buckets)
        .map(|i| bucket_at(i % 40, 16 + i / 40))
        .collect();
    eprintln!("{}", resident_bytes());
    drop(kept);
}

pub fn workload(name: &str) -> (fn(usize), usize) {
    match name {
        "buckets" => (buckets, 100_000),
        "deep_pairs" => (deep_pairs, 200_000),
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
