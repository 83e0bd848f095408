//! What heapprof costs, as ratios to the same program without it, in one run,
//! beside the profilers a Rust user has today.
//!
//! The workloads (`overhead_common`) run in child processes of three
//! binaries: this one, with `heapprof::Profiler` installed directly as the
//! global allocator (default rate, and rate 1); `overhead_system`, with the
//! system allocator installed directly (the baseline: the same program
//! without heapprof); and `overhead_peers`, which compares dhat-rs with the
//! system allocator, and jemalloc's own sampling profiler at 512 KiB with
//! jemalloc alone. Configurations are interleaved over rounds; the table
//! shows median wall times and ratios to each baseline. With valgrind
//! installed, instruction counts (callgrind) follow: the figure to trust on a
//! noisy machine.
//!
//! Run: cargo bench --workspace --bench 'overhead*'

#[path = "overhead_common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// (binary, mode, column title, index of its baseline, runs a tenth of the
/// work). A configuration that runs a tenth is compared with a baseline run
/// of the same tenth, so one-off costs (the first stack walk) weigh the same
/// on both sides. Untitled configurations are baselines only.
const CONFIGS: [(&str, &str, &str, usize, bool); 8] = [
    ("overhead_system", "system", "system alone", 0, false),
    ("overhead", "default", "heapprof 512K", 0, false),
    ("overhead_system", "system", "", 2, true),
    ("overhead", "exact", "heapprof rate 1", 2, true),
    ("overhead_peers", "system", "", 4, true),
    ("overhead_peers", "dhat", "dhat-rs", 4, true),
    ("overhead_peers", "jemalloc", "jemalloc alone", 6, false),
    (
        "overhead_peers",
        "jemalloc_prof",
        "jemalloc prof 512K",
        6,
        false,
    ),
];

/// The newest build of bench binary `name`, beside this one.
fn binary(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap();
    if name == "overhead" {
        return me;
    }
    let dir = me.parent().unwrap();
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let file = p.file_name().unwrap().to_string_lossy();
            file.starts_with(&format!("{name}-")) && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| {
            panic!("{name} is not built: run cargo bench --workspace --bench 'overhead*'")
        })
}

fn run_child(binary_name: &str, mode: &str, name: &str, iterations: Option<usize>) -> Duration {
    let mut command = Command::new(binary(binary_name));
    command.env("HEAPPROF_BENCH_CHILD", format!("{mode}:{name}"));
    if let Some(n) = iterations {
        command.env("HEAPPROF_BENCH_ITERATIONS", n.to_string());
    }
    if mode == "jemalloc_prof" {
        // jemalloc's profiler, sampling every 2^19 bytes, as heapprof's default.
        command.env(
            "_RJEM_MALLOC_CONF",
            "prof:true,prof_active:true,lg_prof_sample:19",
        );
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

/// Instructions of one child run under callgrind, counted inside the
/// workload function only (not the process's start and exit, where dhat
/// writes its profile), or None without valgrind. Callgrind toggles
/// counting per thread: the churn on 2 threads is counted inside each
/// thread's `churn`.
fn instructions(binary_name: &str, mode: &str, name: &str, iterations: usize) -> Option<u64> {
    let function = name.strip_suffix("_2_threads").unwrap_or(name);
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(format!(
            "--toggle-collect=heapprof_bench_workloads::{function}"
        ))
        .arg(binary(binary_name))
        .env("HEAPPROF_BENCH_CHILD", format!("{mode}:{name}"))
        .env("HEAPPROF_BENCH_ITERATIONS", iterations.to_string())
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("Collected :"))?;
    line.split("Collected :").nth(1)?.trim().parse().ok()
}

fn main() {
    let child = common::run_as_child(|mode| -> Box<dyn std::any::Any> {
        // A fixed seed: the same samples every run, so instruction counts
        // repeat exactly.
        heapprof::set_sample_seed(0x5EED);
        match mode {
            "default" => heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize),
            "exact" => heapprof::set_sample_rate(1),
            other => panic!("overhead runs heapprof modes, not {other}"),
        }
        Box::new(())
    });
    if child || std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = 5;
    println!("heapprof overhead: median wall time of {rounds} interleaved rounds; ratio per unit of work to the baseline in brackets");
    print!("{:<16}", "workload");
    for (_, _, title, base, _) in CONFIGS.iter().filter(|c| !c.2.is_empty()) {
        let base = match CONFIGS[*base].2 {
            "" => "system",
            title => title.split(' ').next().unwrap_or_default(),
        };
        print!(" {:>26}", format!("{title} (/{base})"));
    }
    println!();
    for name in ["churn", "mix", "large", "churn_2_threads", "pairs"] {
        let full = common::workload(name).1;
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); CONFIGS.len()];
        for _ in 0..rounds {
            for (i, (binary_name, mode, _, _, tenth)) in CONFIGS.iter().enumerate() {
                times[i].push(run_child(
                    binary_name,
                    mode,
                    name,
                    tenth.then_some(full / 10),
                ));
            }
        }
        let per_unit: Vec<f64> = CONFIGS
            .iter()
            .enumerate()
            .map(|(i, c)| {
                median(times[i].clone()).as_secs_f64() / if c.4 { full / 10 } else { full } as f64
            })
            .collect();
        print!("{name:<16}");
        for (i, (_, _, title, base, _)) in CONFIGS.iter().enumerate() {
            if title.is_empty() {
                continue;
            }
            let ms = median(times[i].clone()).as_secs_f64() * 1e3;
            print!(
                " {:>26}",
                format!("{ms:.1} ms {:.3}x", per_unit[i] / per_unit[*base])
            );
        }
        println!();
    }

    // A sampled allocation: every allocation at rate 1, 30 frames deep.
    let n = 200_000;
    let sampled = median(
        (0..5)
            .map(|_| run_child("overhead", "exact", "deep_pairs", Some(n)))
            .collect(),
    );
    let unsampled = median(
        (0..5)
            .map(|_| run_child("overhead_system", "system", "deep_pairs", Some(n)))
            .collect(),
    );
    println!(
        "sampled alloc+free at depth 30: {:.2} us each (system alone {:.3} us)",
        sampled.as_secs_f64() * 1e6 / n as f64,
        unsampled.as_secs_f64() * 1e6 / n as f64
    );
    // Labels: a scope entered and left, and the same sampled pairs with
    // labels (cached in the scope's frame, or resolved in a new scope each).
    let median_of = |binary_name: &str, mode: &str, name: &str, n: usize| {
        median(
            (0..5)
                .map(|_| run_child(binary_name, mode, name, Some(n)))
                .collect(),
        )
        .as_secs_f64()
            / n as f64
    };
    let scopes = 50_000_000;
    println!(
        "label scope entered and left: {:.2} ns each",
        median_of("overhead", "default", "scopes", scopes) * 1e9
    );
    println!(
        "labelled sampled alloc+free at depth 30: {:.2} us each in one scope, {:.2} us in a new scope each",
        median_of("overhead", "exact", "labeled_deep_pairs", n) * 1e6,
        median_of("overhead", "exact", "scoped_deep_pairs", n) * 1e6
    );

    // Profile writes of tables of 1k, 10k and 100k buckets.
    for buckets in [1_000, 10_000, 100_000] {
        let out = Command::new(binary("overhead"))
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

    // Memory: fixed (a small run at the default rate) and per bucket (every
    // block of 100,000 distinct buckets recorded), against the system alone.
    let resident = |binary_name: &str, mode: &str, name: &str, n: usize| -> f64 {
        let out = Command::new(binary(binary_name))
            .env("HEAPPROF_BENCH_CHILD", format!("{mode}:{name}"))
            .env("HEAPPROF_BENCH_ITERATIONS", n.to_string())
            .output()
            .unwrap();
        let rss: Vec<f64> = String::from_utf8_lossy(&out.stderr)
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        rss.last().copied().unwrap_or(f64::NAN)
    };
    let fixed = resident("overhead", "default", "buckets", 1_000)
        - resident("overhead_system", "system", "buckets", 1_000);
    let n = 100_000;
    let per_bucket = (resident("overhead", "exact", "buckets", n)
        - resident("overhead_system", "system", "buckets", n)
        - fixed)
        / n as f64;
    println!("memory: {:.2} MiB fixed (resident, default rate), {per_bucket:.0} bytes per recorded bucket (stacks of 2 x 17 call frames)", fixed / 1048576.0);

    // Instruction counts: the same on a busy machine as on an idle one.
    // The default rate against the system allocator, then rate 1 and dhat-rs
    // (each against the system allocator in its own binary) on less work.
    let default_rate = [
        ("pairs", 1_000_000),
        ("churn", 200_000),
        ("mix", 30_000),
        ("churn_2_threads", 200_000),
    ];
    for (name, n) in default_rate {
        let (Some(system), Some(heapprof)) = (
            instructions("overhead_system", "system", name, n),
            instructions("overhead", "default", name, n),
        ) else {
            println!("callgrind: valgrind not found, instruction counts skipped");
            return;
        };
        let extra = heapprof.saturating_sub(system) as f64 / n as f64;
        println!(
            "callgrind {name:<15} x{n}: system {system} instructions, heapprof 512 KiB {heapprof}: {:.3}x (+{extra:.1} per iteration)",
            heapprof as f64 / system as f64
        );
    }
    for (name, n) in [
        ("pairs", 20_000),
        ("churn", 5_000),
        ("mix", 1_000),
        ("large", 300),
        ("churn_2_threads", 5_000),
    ] {
        let counts = (
            instructions("overhead_system", "system", name, n),
            instructions("overhead", "exact", name, n),
            instructions("overhead_peers", "system", name, n),
            instructions("overhead_peers", "dhat", name, n),
        );
        if let (Some(system), Some(exact), Some(peers_system), Some(dhat)) = counts {
            let exact_extra = exact.saturating_sub(system) as f64;
            let dhat_extra = dhat.saturating_sub(peers_system) as f64;
            println!(
                "callgrind {name:<15} x{n}: heapprof rate 1 {:.2}x, dhat-rs {:.2}x: {:.1} times less overhead",
                exact as f64 / system as f64,
                dhat as f64 / peers_system as f64,
                dhat_extra / exact_extra
            );
        }
    }
}
