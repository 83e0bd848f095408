//! What heapprof costs, as ratios to the same program without it, in one run,
//! beside the profilers a Rust user has today.
//!
//! Each configuration runs in a child process (this binary re-executed)
//! whose global allocator is chosen before the first allocation: the system
//! allocator alone; heapprof around it at the default rate or at rate 1
//! (exact); dhat-rs (`dhat::Alloc`, compared with the system allocator);
//! jemalloc alone and jemalloc with its own sampling profiler at 512 KiB
//! (`prof:true,lg_prof_sample:19`, compared with jemalloc alone). All go
//! through the same dispatch branch, so each ratio is the profiler's cost. Configurations are interleaved over rounds; the table shows median
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
static DHAT: dhat::Alloc = dhat::Alloc;
static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
static MODE: AtomicU8 = AtomicU8::new(SYSTEM);

const SYSTEM: u8 = 0;
const HEAPPROF: u8 = 1;
const DHAT_MODE: u8 = 2;
const JEMALLOC_MODE: u8 = 3;

/// Picks the allocator before the Rust runtime's first allocation, so that
/// every block of the process comes from (and returns to) the same one.
#[used]
#[link_section = ".init_array"]
static SELECT_ALLOCATOR: extern "C" fn() = select_allocator;

extern "C" fn select_allocator() {
    // SAFETY: getenv with a NUL-terminated name; the value is read at once.
    let spec = unsafe {
        let value = libc::getenv(c"HEAPPROF_BENCH_CHILD".as_ptr());
        if value.is_null() {
            return;
        }
        std::ffi::CStr::from_ptr(value).to_bytes()
    };
    let mode = spec.split(|&b| b == b':').next().unwrap_or_default();
    MODE.store(
        match mode {
            b"default" | b"exact" => HEAPPROF,
            b"dhat" => DHAT_MODE,
            b"jemalloc" | b"jemalloc_prof" => JEMALLOC_MODE,
            _ => SYSTEM,
        },
        Ordering::Relaxed,
    );
}

/// Calls `$method` on the allocator of this process, statically dispatched
/// in each arm so that heapprof is inlined as it is when installed directly.
macro_rules! on_chosen {
    ($method:ident($($arg:expr),*)) => {
        match MODE.load(Ordering::Relaxed) {
            SYSTEM => System.$method($($arg),*),
            HEAPPROF => PROFILER.$method($($arg),*),
            DHAT_MODE => DHAT.$method($($arg),*),
            _ => JEMALLOC.$method($($arg),*),
        }
    };
}

/// Forwards to the allocator chosen before main.
struct Switch;

// SAFETY: forwards every call to the one allocator chosen before the first
// allocation of the process.
unsafe impl GlobalAlloc for Switch {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { on_chosen!(alloc(layout)) }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { on_chosen!(dealloc(ptr, layout)) }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { on_chosen!(alloc_zeroed(layout)) }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { on_chosen!(realloc(ptr, layout, new_size)) }
    }
}

#[global_allocator]
static ALLOC: Switch = Switch;

/// (mode, column title, the mode it is a ratio to, runs a tenth of the work)
const CONFIGS: [(&str, &str, &str, bool); 6] = [
    ("system", "system alone", "system", false),
    ("default", "heapprof 512K", "system", false),
    ("exact", "heapprof rate 1", "system", true),
    ("dhat", "dhat-rs", "system", true),
    ("jemalloc", "jemalloc alone", "jemalloc", false),
    ("jemalloc_prof", "jemalloc prof 512K", "jemalloc", false),
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

fn workload(name: &str) -> (fn(usize), usize) {
    match name {
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

// ---- driver --------------------------------------------------------------

/// In a child: set the mode, run the workload, print its time in ns.
fn child(mode: &str, name: &str, iterations: Option<usize>) {
    // The allocator was chosen before main (select_allocator).
    let dhat_file =
        std::env::temp_dir().join(format!("heapprof-bench-dhat-{}.json", std::process::id()));
    let dhat = (mode == "dhat").then(|| dhat::Profiler::builder().file_name(&dhat_file).build());
    match mode {
        "default" => heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize),
        "exact" => heapprof::set_sample_rate(1),
        _ => {}
    }
    let (run, default_iterations) = workload(name);
    let start = Instant::now();
    run(iterations.unwrap_or(default_iterations));
    println!("{}", start.elapsed().as_nanos());
    if let Some(profiler) = dhat {
        drop(profiler); // writes its file, which is not needed here
        let _ = std::fs::remove_file(&dhat_file);
    }
}

fn run_child(mode: &str, name: &str, iterations: Option<usize>) -> Duration {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env("HEAPPROF_BENCH_CHILD", format!("{mode}:{name}"));
    if mode == "jemalloc_prof" {
        // jemalloc's profiler, sampling every 2^19 bytes, as heapprof's default.
        command.env(
            "_RJEM_MALLOC_CONF",
            "prof:true,prof_active:true,lg_prof_sample:19",
        );
    }
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
    println!("heapprof overhead: median wall time of {rounds} interleaved rounds; each ratio is per unit of work, to the baseline named");
    print!("{:<16}", "workload");
    for (_, title, base, _) in CONFIGS {
        print!(" {:>24}", format!("{title} (/{base})"));
    }
    println!();
    for name in ["churn", "mix", "large", "churn_2_threads", "pairs"] {
        let full = workload(name).1;
        let mut per_unit: Vec<f64> = Vec::new();
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); CONFIGS.len()];
        for _ in 0..rounds {
            for (i, (mode, _, _, tenth)) in CONFIGS.iter().enumerate() {
                times[i].push(run_child(mode, name, tenth.then_some(full / 10)));
            }
        }
        for (i, (_, _, _, tenth)) in CONFIGS.iter().enumerate() {
            let n = if *tenth { full / 10 } else { full };
            per_unit.push(median(times[i].clone()).as_secs_f64() / n as f64);
        }
        print!("{name:<16}");
        for (i, (_, _, base, _)) in CONFIGS.iter().enumerate() {
            let base_index = CONFIGS.iter().position(|c| c.0 == *base).unwrap();
            let ms = median(times[i].clone()).as_secs_f64() * 1e3;
            print!(
                " {:>24}",
                format!("{ms:.1} ms {:.3}x", per_unit[i] / per_unit[base_index])
            );
        }
        println!();
    }

    // A sampled allocation: every allocation at rate 1, 30 frames deep.
    let n = 200_000;
    let sampled = median(
        (0..5)
            .map(|_| run_child("exact", "deep_pairs", Some(n)))
            .collect(),
    );
    let unsampled = median(
        (0..5)
            .map(|_| run_child("system", "deep_pairs", Some(n)))
            .collect(),
    );
    println!(
        "sampled alloc+free at depth 30: {:.2} us each (system alone {:.3} us)",
        sampled.as_secs_f64() * 1e6 / n as f64,
        unsampled.as_secs_f64() * 1e6 / n as f64
    );

    // Profile writes of tables of 1k, 10k and 100k buckets.
    for buckets in [1_000, 10_000, 100_000] {
        let out = Command::new(std::env::current_exe().unwrap())
            .env("HEAPPROF_BENCH_CHILD", "exact:profile_write")
            .env("HEAPPROF_BENCH_ITERATIONS", buckets.to_string())
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stderr);
        let fields: Vec<u128> = report
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if let [first, second, size] = fields[..] {
            println!(
                "profile write, {buckets:>6} buckets: {:>8.1} ms first (symbolizing), {:>7.1} ms after, {:.1} MB",
                first as f64 / 1e6,
                second as f64 / 1e6,
                size as f64 / 1e6
            );
        }
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
