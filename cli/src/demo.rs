//! `heapprof demo`: the whole product in one command. A built-in workload
//! runs in this process under heapprof's own allocator (installed in
//! `main.rs`); the demo writes `heap.pb.gz` and `flamegraph.svg` and prints
//! the in-use top table, through the same report views as the other
//! subcommands.
//!
//! The workload is a small "search service" with a known memory story: an
//! index and a document store that stay, a response cache that leaks
//! (entries are never evicted), and request rendering that churns.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;

use anyhow::{Context, Result};
use heapprof_pprof::Profile;
use heapprof_report::{flamegraph, graph, top};

use crate::args::DemoArgs;
use crate::output;

/// Documents the service keeps.
const DOCUMENTS: usize = 20_000;
/// Requests it serves.
const REQUESTS: usize = 60_000;

/// Runs `heapprof demo`.
pub fn run(args: &DemoArgs, out: &mut impl Write) -> Result<()> {
    heapprof::set_sample_rate(args.rate);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let documents = load_documents();
    let index = build_index(&documents);
    let mut cache = ResponseCache::default();
    let mut served = 0;
    for request in 0..REQUESTS {
        served += serve_request(request, &index, &mut cache);
    }
    black_box(served);

    let heap_path = args.out.join("heap.pb.gz");
    let cost = symbolization_cost(&heap_path)?;
    let profile = Profile::decode(&std::fs::read(&heap_path)?)?;
    let svg_path = args.out.join("flamegraph.svg");
    let mut svg = Vec::new();
    let look = flamegraph::Options {
        title: Some("heapprof demo: in-use space".to_owned()),
        ..flamegraph::Options::default()
    };
    flamegraph::write(&look, &profile, &mut svg)?;
    output::write_atomically(&svg_path, |w| Ok(w.write_all(&svg)?))?;

    let table = top::Options {
        graph: graph::Options {
            node_count: 10,
            ..graph::Options::default()
        },
        ..top::Options::default()
    };
    top::write(&table, &profile, out)?;
    writeln!(out)?;
    writeln!(
        out,
        "Wrote {} and {}",
        heap_path.display(),
        svg_path.display()
    )?;
    writeln!(
        out,
        "Next: heapprof top {} --sample-index alloc_space   |   go tool pprof -top {}",
        heap_path.display(),
        heap_path.display()
    )?;
    writeln!(out, "{cost}")?;
    drop((documents, index, cache));
    Ok(())
}

/// Writes the profile twice and says what the first write cost (time,
/// resident memory at its peak and after, heap heapprof kept: mostly
/// in-process symbolization, unless `HEAPPROF=symbolize=offline`) and what
/// a later write costs.
fn symbolization_cost(path: &std::path::Path) -> Result<String> {
    const MIB: f64 = (1u64 << 20) as f64;
    let before = heapprof::stats();
    let peak_before = peak_resident();
    let start = std::time::Instant::now();
    heapprof::write_heap_profile(path)?;
    let first = start.elapsed();
    let after = heapprof::stats();
    let peak_after = peak_resident();
    let start = std::time::Instant::now();
    heapprof::write_heap_profile(path)?;
    let second = start.elapsed();
    let mib = |a: u64, b: u64| (a as f64 - b as f64) / MIB;
    Ok(format!(
        "Profile writes: first {:.0} ms (resident peak {:+.1} MiB, then {:+.1} MiB resident and {:+.1} MiB heap kept), next {:.0} ms",
        first.as_secs_f64() * 1e3,
        mib(peak_after, peak_before),
        mib(after.resident_bytes, before.resident_bytes),
        mib(after.profiler_bytes, before.profiler_bytes),
        second.as_secs_f64() * 1e3,
    ))
}

/// The process's peak resident set (VmHWM), 0 if unknown.
fn peak_resident() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// Keeps every document's text: ~2 KiB each.
#[inline(never)]
fn load_documents() -> Vec<String> {
    (0..DOCUMENTS)
        .map(|i| {
            format!(
                "document {i}: {}",
                "lorem ipsum dolor sit amet ".repeat(70 + i % 20)
            )
        })
        .collect()
}

/// Keeps a word -> postings map over every document.
#[inline(never)]
fn build_index(documents: &[String]) -> HashMap<String, Vec<u32>> {
    let mut index: HashMap<String, Vec<u32>> = HashMap::new();
    for (id, doc) in documents.iter().enumerate() {
        for word in doc.split_whitespace().step_by(7) {
            index.entry(word.to_owned()).or_default().push(id as u32);
        }
        index
            .entry(format!("doc-{id}"))
            .or_default()
            .push(id as u32);
    }
    index
}

/// A cache that never evicts: the leak this demo's profile points at.
#[derive(Default)]
struct ResponseCache {
    entries: HashMap<usize, Vec<u8>>,
}

impl ResponseCache {
    #[inline(never)]
    fn remember(&mut self, request: usize, response: &[u8]) {
        self.entries.insert(request, response.to_vec());
    }
}

/// Renders a response (temporary buffers) and caches one request in three.
#[inline(never)]
fn serve_request(
    request: usize,
    index: &HashMap<String, Vec<u32>>,
    cache: &mut ResponseCache,
) -> usize {
    let response = render_response(request, index);
    if request % 3 == 0 {
        cache.remember(request, &response);
    }
    response.len()
}

#[inline(never)]
fn render_response(request: usize, index: &HashMap<String, Vec<u32>>) -> Vec<u8> {
    let hits = index
        .get(&format!("doc-{}", request % DOCUMENTS))
        .map_or(0, Vec::len);
    let mut page = Vec::with_capacity(256);
    for line in 0..16 {
        page.extend_from_slice(
            format!("<li>request {request} hit {hits} line {line}</li>\n").as_bytes(),
        );
    }
    page
}
