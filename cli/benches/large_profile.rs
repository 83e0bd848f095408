//! How fast the CLI turns a large profile into answers: a synthetic heap
//! profile with 300,000 samples, 30,000 locations and 10,000 functions,
//! through `heapprof info`, `top`, `folded` and `flamegraph` as whole
//! processes. Its shape is a real heap profile's: 20,000 distinct stacks
//! 10-40 deep, walked down a call tree so that they share prefixes, and one
//! sample per (stack, object size). Reports the median wall time of 5 runs of each; the
//! target is well under a second.
//!
//! Run: cargo bench -p heapprof-cli --bench large_profile

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use heapprof_pprof::{Function, Label, LabelValue, Line, Location, Profile, Sample, ValueType};

const SAMPLES: usize = 300_000;
const LOCATIONS: usize = 30_000;
const FUNCTIONS: usize = 10_000;
const STACKS: usize = 20_000;
/// Callees of each location in the synthetic call tree.
const FAN_OUT: usize = 6;

fn large_profile() -> Profile {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    // Deterministic xorshift: the same profile every run.
    let mut next = |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let functions = (0..FUNCTIONS)
        .map(|i| Function {
            name: format!("service::module{}::function_{i}", i % 97),
            filename: format!("src/module{}.rs", i % 97),
            ..Function::default()
        })
        .collect();
    let locations = (0..LOCATIONS)
        .map(|i| Location {
            address: 0x10_0000 + i as u64 * 16,
            lines: (0..1 + i % 3)
                .map(|k| Line {
                    function: (i * 7 + k * 13) % FUNCTIONS,
                    line: (10 + k) as i64,
                })
                .collect(),
            ..Location::default()
        })
        .collect();
    // Root first: a root location, then callees chosen among each
    // location's few children; stored leaf first as pprof wants.
    let stacks: Vec<Vec<usize>> = (0..STACKS)
        .map(|_| {
            let depth = 10 + next(31);
            let mut stack = vec![next(16)];
            for _ in 1..depth {
                let caller = *stack.last().unwrap();
                stack.push((caller * FAN_OUT + 1 + next(FAN_OUT)) % LOCATIONS);
            }
            stack.reverse();
            stack
        })
        .collect();
    let samples = (0..SAMPLES)
        .map(|i| {
            let size = 16i64 << (i % 15);
            Sample {
                locations: stacks[next(STACKS)].clone(),
                values: vec![1, size, next(2) as i64, size * next(2) as i64],
                labels: vec![Label {
                    key: "bytes".into(),
                    value: LabelValue::Num {
                        value: size,
                        unit: String::new(),
                    },
                }],
            }
        })
        .collect();
    Profile {
        sample_types: vec![
            ValueType::new("alloc_objects", "count"),
            ValueType::new("alloc_space", "bytes"),
            ValueType::new("inuse_objects", "count"),
            ValueType::new("inuse_space", "bytes"),
        ],
        samples,
        locations,
        functions,
        period_type: Some(ValueType::new("space", "bytes")),
        period: 524_288,
        ..Profile::default()
    }
}

fn median_run(args: &[&str]) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_heapprof"))
                .args(args)
                .output()
                .expect("run heapprof");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            start.elapsed()
        })
        .collect();
    times.sort();
    times[2]
}

fn main() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("large-profile-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("large.pb.gz");
    let start = Instant::now();
    let bytes = large_profile().encode();
    std::fs::write(&path, &bytes).unwrap();
    println!(
        "large profile: {SAMPLES} samples, {LOCATIONS} locations, {FUNCTIONS} functions, {:.1} MB gzipped (built in {:?})",
        bytes.len() as f64 / 1e6,
        start.elapsed()
    );
    let profile = path.to_str().unwrap();
    let svg = dir.join("large.svg");
    let svg = svg.to_str().unwrap();
    for (what, args) in [
        ("info", vec!["info", profile]),
        ("top", vec!["top", profile, "-n", "20"]),
        (
            "top -i alloc_space",
            vec!["top", profile, "-i", "alloc_space", "-n", "20"],
        ),
        ("folded", vec!["folded", profile]),
        ("flamegraph", vec!["flamegraph", profile, "-o", svg]),
    ] {
        let t = median_run(&args);
        println!(
            "heapprof {what:<20} median of 5: {:>7.1} ms",
            t.as_secs_f64() * 1e3
        );
    }
}
