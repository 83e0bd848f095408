//! What heapprof costs, as ratios to the same program without it, in one run.
//!
//! Each configuration runs in a child process (this binary re-executed)
//! whose global allocator is chosen once at start: the system allocator
//! alone, or heapprof around it at the default rate or at rate 1 (exact).
//! Both go through the same dispatch branch, so the ratio is heapprof's
//! cost. Configurations are interleaved over rounds; the table shows median
//! wall times and their ratios to the baseline. With valgrind installed, the
//! unsampled alloc+free pair is also counted in instructions (callgrind),
//! the figure to trust on a noisy machine.
//!
//! Run: cargo bench --bench overhead

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

static PROFILER: heapprof::Profiler = heapprof::Profiler::system();
static MODE: AtomicU8 = AtomicU8::new(0);

/// The system allocator or heapprof, fixed per process before the workload.
struct Switch;

// SAFETY: forwards every call to System or to heapprof's Profiler<System>;
// both free System blocks correctly (heapprof's free of a block it never
// sampled is System's free), so blocks from before the switch are safe too.
unsafe impl GlobalAlloc for Switch {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if MODE.load(Ordering::Relaxed) == 0 {
                System.alloc(layout)
            } else {
                PROFILER.alloc(layout)
            }
        }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if MODE.load(Ordering::Relaxed) == 0 {
                System.dealloc(ptr, layout)
            } else {
                PROFILER.dealloc(ptr, layout)
            }
        }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if MODE.load(Ordering::Relaxed) == 0 {
                System.alloc_zeroed(layout)
            } else {
                PROFILER.alloc_zeroed(layout)
            }
        }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if MODE.load(Ordering::Relaxed) == 0 {
                System.realloc(ptr, layout, new_size)
            } else {
                PROFILER.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[global_allocator]
static ALLOC: Switch = Switch;

const CONFIGS: [(&str, &str); 3] = [
    ("system", "system alone"),
    ("default", "heapprof 512 KiB"),
    ("exact", "heapprof rate 1"),
];

// ---- workloads -----------------------------------------------------------

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

fn workload(name: &str) -> (fn(usize), usize) {
    match name {
        "churn" => (churn, 2_000_000),
        "mix" => (mix, 300_000),
        "large" => (large, 3_000),
        "churn_2_threads" => (churn_2_threads, 2_000_000),
        "pairs" => (pairs, 20_000_000),
        other => panic!("unknown workload {other}"),
    }
}

// ---- driver --------------------------------------------------------------

/// In a child: set the mode, run the workload, print its time in ns.
fn child(mode: &str, name: &str, iterations: Option<usize>) {
    match mode {
        "system" => MODE.store(0, Ordering::Relaxed),
        "default" => {
            MODE.store(1, Ordering::Relaxed);
            heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
        }
        "exact" => {
            MODE.store(1, Ordering::Relaxed);
            heapprof::set_sample_rate(1);
        }
        other => panic!("unknown mode {other}"),
    }
    let (run, default_iterations) = workload(name);
    let start = Instant::now();
    run(iterations.unwrap_or(default_iterations));
    println!("{}", start.elapsed().as_nanos());
}

fn run_child(mode: &str, name: &str, iterations: Option<usize>) -> Duration {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env("HEAPPROF_BENCH_CHILD", format!("{mode}:{name}"));
    if let Some(n) = iterations {
        command.env("HEAPPROF_BENCH_ITERATIONS", n.to_string());
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Duration::from_nanos(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    )
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Instructions of one child run under callgrind, or None without valgrind.
fn instructions(mode: &str, name: &str, iterations: usize) -> Option<u64> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(std::env::current_exe().unwrap())
        .env("HEAPPROF_BENCH_CHILD", format!("{mode}:{name}"))
        .env("HEAPPROF_BENCH_ITERATIONS", iterations.to_string())
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("Collected :"))?;
    line.split("Collected :").nth(1)?.trim().parse().ok()
}

fn main() {
    if let Ok(spec) = std::env::var("HEAPPROF_BENCH_CHILD") {
        let (mode, name) = spec.split_once(':').unwrap();
        let iterations = std::env::var("HEAPPROF_BENCH_ITERATIONS")
            .ok()
            .map(|n| n.parse().unwrap());
        return child(mode, name, iterations);
    }
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench -- --list
    }
    let rounds = 5;
    println!("heapprof overhead: median wall time of {rounds} interleaved rounds, ratio to the system allocator alone");
    println!(
        "{:<18} {:>14} {:>20} {:>20}",
        "workload", CONFIGS[0].1, CONFIGS[1].1, CONFIGS[2].1
    );
    for name in ["churn", "mix", "large", "churn_2_threads", "pairs"] {
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); CONFIGS.len()];
        for _ in 0..rounds {
            for (i, (mode, _)) in CONFIGS.iter().enumerate() {
                // Exact mode records every allocation: a tenth of the work.
                let iterations = (*mode == "exact").then(|| workload(name).1 / 10);
                times[i].push(run_child(mode, name, iterations));
            }
        }
        let base = median(times[0].clone()).as_secs_f64();
        let base_per_iteration = base / workload(name).1 as f64;
        let cells: Vec<String> = CONFIGS
            .iter()
            .enumerate()
            .map(|(i, (mode, _))| {
                let t = median(times[i].clone()).as_secs_f64();
                let n = if *mode == "exact" {
                    workload(name).1 / 10
                } else {
                    workload(name).1
                };
                let ratio = (t / n as f64) / base_per_iteration;
                format!("{:>8.1} ms {:>6.3}x", t * 1e3, ratio)
            })
            .collect();
        println!(
            "{name:<18} {:>14} {:>20} {:>20}",
            cells[0], cells[1], cells[2]
        );
    }
    // Instruction counts: the same on a busy machine as on an idle one.
    for (name, n) in [("pairs", 1_000_000), ("churn", 200_000), ("mix", 30_000)] {
        match (
            instructions("system", name, n),
            instructions("default", name, n),
        ) {
            (Some(system), Some(heapprof)) => {
                let extra = heapprof.saturating_sub(system) as f64 / n as f64;
                println!(
                    "callgrind {name:<6} x{n}: system {system} instructions, heapprof 512 KiB {heapprof}: {:.3}x (+{extra:.1} per iteration)",
                    heapprof as f64 / system as f64
                );
            }
            _ => println!("callgrind: valgrind not found, instruction counts skipped"),
        }
    }
}
