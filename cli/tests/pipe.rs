//! A reader that closes the pipe early (`heapprof top --json p | head -1`)
//! ends heapprof quietly: exit 0, nothing on stderr, for every subcommand
//! and format.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use heapprof::pprof::{Function, Line, Location, Profile, Sample, ValueType};

/// 3,000 functions and 30,000 distinct stacks: every report of it is far
/// larger than a pipe's buffer (64 KiB on Linux).
mod common;

fn large() -> Profile {
    let functions: Vec<Function> = (0..3000)
        .map(|i| Function {
            name: format!("app::module_{i}::function_{i}"),
            filename: format!("src/module_{i}.rs"),
            ..Function::default()
        })
        .collect();
    let locations = (0..functions.len())
        .map(|function| Location {
            address: 0x1000 + function as u64,
            lines: vec![Line { function, line: 1 }],
            ..Location::default()
        })
        .collect();
    let samples = (0..30_000)
        .map(|i| Sample {
            locations: vec![i % 3000, (i / 3000) % 3000, (i * 7) % 3000],
            values: vec![1, 1000 + i as i64],
            labels: Vec::new(),
        })
        .collect();
    Profile {
        sample_types: vec![
            ValueType::new("alloc_objects", "count"),
            ValueType::new("alloc_space", "bytes"),
        ],
        samples,
        locations,
        functions,
        comments: (0..3000).map(|i| format!("comment number {i}")).collect(),
        ..Profile::default()
    }
}

/// Runs heapprof with `args`, reads `lines` lines of its output (none:
/// closes the pipe before it writes anything) and closes the pipe.
fn close_early(args: &[&str], lines: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_heapprof"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run heapprof");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..lines {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "{args:?}: no output"
        );
    }
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{args:?}: {:?} {stderr}",
        out.status
    );
}

#[test]
fn a_closed_pipe_is_a_quiet_exit() {
    let dir = common::scratch("pipe", "closed");
    let path = dir.join("large.pb.gz");
    std::fs::write(&path, large().encode()).unwrap();
    let base = dir.join("base.pb.gz");
    let mut small = large();
    small.samples.truncate(10);
    std::fs::write(&base, small.encode()).unwrap();
    let (p, b) = (path.to_str().unwrap(), base.to_str().unwrap());
    let svg = dir.join("diff.svg");
    let reports: [&[&str]; 7] = [
        &["top", p, "--node-fraction", "0"],
        &["top", p, "--node-fraction", "0", "--json"],
        &["top", p, "--node-fraction", "0", "--cum", "-i", "0"],
        &["folded", p],
        &["diff", b, p],
        &["diff", b, p, "--flamegraph", svg.to_str().unwrap()],
        &["info", p],
    ];
    for args in reports {
        close_early(args, 1);
        close_early(args, 0);
    }
    let demo = dir.join("demo");
    close_early(&["demo", "--out", demo.to_str().unwrap()], 0);
}
