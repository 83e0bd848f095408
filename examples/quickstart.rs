//! The smallest useful heapprof program: install the allocator, run a
//! workload, write `heap.pb.gz`, then look at it with
//! `go tool pprof -top heap.pb.gz` or `heapprof top heap.pb.gz`.
//!
//! It prints, for its two main sites, what the profile estimates beside the
//! exact figure (counted by `heapprof::measure`) and the estimate's expected
//! error, so you can see what sampling gives.

use std::collections::HashMap;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// The sampling rate of this example. The default (512 KiB) suits real
/// programs, which allocate gigabytes; this one allocates tens of MiB, and at
/// the default its 8 MiB site would be sampled about 16 times, for an
/// estimate whose standard deviation is about 25%. At 4 KiB it is sampled
/// about 2,000 times: 2.2%.
const RATE: usize = 4096;

// The sites are not inlined, so that a release build's profile gives each
// its own frame and `estimate` finds all of its allocations.

/// Keeps 8 MiB alive in 1 KiB records: the in-use view shows it.
#[inline(never)]
fn load_records() -> Vec<Vec<u8>> {
    // Not `.collect()`: as this function's last call it would become a tail
    // call, and the list's own allocation would be charged to the caller.
    let mut records = Vec::with_capacity(8 * 1024);
    for i in 0..8 * 1024 {
        records.push(vec![i as u8; 1024]);
    }
    records
}

/// Allocates 66.5 MiB of short-lived strings: the alloc view shows it.
#[inline(never)]
fn render_lines(n: usize) -> usize {
    (0..n)
        .map(|i| format!("line {i:>10} {}", "x".repeat(240)).len())
        .sum()
}

/// A map that grows as keys arrive and is kept.
#[inline(never)]
fn build_index(records: &[Vec<u8>]) -> HashMap<usize, usize> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r.len()))
        .collect()
}

/// The profile's estimate for the samples whose stack passes through
/// `function` (pprof's `cum`), in the sample type `sample_type`.
fn estimate(profile: &heapprof::pprof::Profile, sample_type: &str, function: &str) -> f64 {
    let index = profile
        .sample_index(sample_type)
        .expect("a heap profile has Go's four sample types");
    let passes_through = |sample: &&heapprof::pprof::Sample| {
        sample.locations.iter().any(|&location| {
            profile.locations[location].lines.iter().any(|line| {
                let name = &profile.functions[line.function].name;
                name.split("::").any(|segment| segment == function)
            })
        })
    };
    profile
        .samples
        .iter()
        .filter(passes_through)
        .map(|sample| sample.values[index] as f64)
        .sum()
}

/// One line of the report: the exact figure, the estimate and the
/// estimate's relative standard deviation, about 1/sqrt(bytes / rate) for a
/// site of small objects.
fn report(site: &str, view: &str, exact: u64, estimated: f64) {
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let expected_error = 100.0 / (exact as f64 / RATE as f64).sqrt();
    println!(
        "{site}: {:.2} MiB {view}; the profile estimates {:.2} MiB (expected error ±{expected_error:.1}%)",
        mib(exact as f64),
        mib(estimated),
    );
}

fn main() -> Result<(), heapprof::Error> {
    heapprof::set_sample_rate(RATE);
    let mut records = Vec::new();
    let loaded = heapprof::measure(|| records = load_records());
    let mut rendered = 0;
    let rendering = heapprof::measure(|| rendered = render_lines(128 * 1024));
    let index = build_index(&records);

    let profile = heapprof::profile(heapprof::Kind::Heap).build()?;
    profile.write("heap.pb.gz")?;
    println!(
        "kept {} records, rendered {rendered} bytes, indexed {}; wrote heap.pb.gz at rate {RATE}",
        records.len(),
        index.len()
    );
    report(
        "load_records",
        "in use",
        loaded.bytes_allocated - loaded.bytes_freed,
        estimate(profile.data(), "inuse_space", "load_records"),
    );
    report(
        "render_lines",
        "allocated",
        rendering.bytes_allocated,
        estimate(profile.data(), "alloc_space", "render_lines"),
    );
    println!("view it with: go tool pprof -top heap.pb.gz");
    Ok(())
}
