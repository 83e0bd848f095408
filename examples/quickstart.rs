//! The smallest useful heapprof program: install the allocator, run a
//! workload, write `heap.pb.gz`, then look at it with
//! `go tool pprof -top heap.pb.gz` or `heapprof top heap.pb.gz`.

use std::collections::HashMap;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// Keeps 8 MiB alive in 1 KiB records: the in-use view shows it.
fn load_records() -> Vec<Vec<u8>> {
    (0..8 * 1024).map(|i| vec![i as u8; 1024]).collect()
}

/// Allocates 32 MiB of short-lived strings: the alloc view shows it.
fn render_lines(n: usize) -> usize {
    (0..n)
        .map(|i| format!("line {i:>10} {}", "x".repeat(240)).len())
        .sum()
}

/// A map that grows as keys arrive and is kept.
fn build_index(records: &[Vec<u8>]) -> HashMap<usize, usize> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r.len()))
        .collect()
}

fn main() -> Result<(), heapprof::Error> {
    let records = load_records();
    let rendered = render_lines(128 * 1024);
    let index = build_index(&records);
    heapprof::write_heap_profile("heap.pb.gz")?;
    println!(
        "kept {} records, rendered {rendered} bytes, indexed {}; wrote heap.pb.gz",
        records.len(),
        index.len()
    );
    println!("view it with: go tool pprof -top heap.pb.gz");
    Ok(())
}
