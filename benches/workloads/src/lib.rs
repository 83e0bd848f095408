//! The overhead benchmark's workloads, in a crate of their own: compiled
//! once, they are the same machine code in every benchmark binary, which
//! differ only in the allocator behind `__rust_alloc` (in one crate with
//! them, the allocator's fast path was inlined into their std containers
//! and changed the compiler's inlining of them, by more than the cost
//! being measured).

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

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
pub fn churn(iterations: usize) {
    let mut map = HashMap::new();
    for i in 0..iterations {
        churn_mid(i, &mut map);
    }
    black_box(map.len());
}

/// A realistic mix: a BTreeMap of records, formatting, and a JSON-like
/// encode/decode round trip done by hand (no serialization crate needed).
pub fn mix(iterations: usize) {
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
pub fn large(iterations: usize) {
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
pub fn churn_2_threads(iterations: usize) {
    let threads: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || churn(iterations / 2)))
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
}

/// The bare alloc+free pair, for the fast-path figure.
pub fn pairs(iterations: usize) {
    for i in 0..iterations {
        black_box(Box::new(i));
    }
}
