//! What symbolization costs, on a realistically large binary: this
//! project's own CLI (a ~26 MB release build with line-table debug info).
//! `heapprof demo` profiles its workload in process and reports its first
//! and a later profile write (time, peak and kept resident memory, kept
//! heap); this runs it five times with in-process symbolization and five
//! times with `HEAPPROF=symbolize=offline`, then times `heapprof symbolize`
//! on the offline profile (wall time and peak resident memory of that
//! process). Medians.
//!
//! Run: cargo bench -p heapprof-cli --bench symbolization

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_heapprof");
const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The numbers of `heapprof demo`'s "Profile writes:" line: first ms,
/// resident peak MiB, resident kept MiB, heap kept MiB, next ms.
fn demo(out: &Path, offline: bool) -> [f64; 5] {
    let mut command = Command::new(BIN);
    command.args(["demo", "--out"]).arg(out);
    if offline {
        command.env("HEAPPROF", "symbolize=offline");
    }
    let output = command.output().expect("run heapprof demo");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Profile writes:"))
        .expect("cost line");
    let numbers: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter_map(|t| t.parse().ok())
        .collect();
    numbers[..5].try_into().expect("five figures")
}

/// Wall seconds and peak resident MiB of one `heapprof symbolize` run
/// (reaped with `wait4` for its resource usage, not `Child::wait`).
#[allow(clippy::zombie_processes)]
fn symbolize(profile: &Path, output: &Path) -> (f64, f64) {
    let start = Instant::now();
    let child = Command::new(BIN)
        .arg("symbolize")
        .arg(profile)
        .args(["--binary", BIN, "-o"])
        .arg(output)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run heapprof symbolize");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    (
        start.elapsed().as_secs_f64(),
        usage.ru_maxrss as f64 / 1024.0,
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let size = std::fs::metadata(BIN).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64;
    println!("heapprof demo, binary {BIN} ({size:.1} MiB); medians of {RUNS} runs");
    let dir = std::env::temp_dir().join(format!("heapprof-symbolization-{}", std::process::id()));
    for (title, offline) in [("in process", false), ("offline", true)] {
        let runs: Vec<[f64; 5]> = (0..RUNS).map(|_| demo(&dir, offline)).collect();
        let m = |i: usize| median(runs.iter().map(|r| r[i]).collect());
        println!(
            "{title:<11} first write {:>5.0} ms, resident peak {:+6.1} MiB, kept {:+6.1} MiB resident, {:+5.1} MiB heap; later write {:.0} ms",
            m(0),
            m(1),
            m(2),
            m(3),
            m(4)
        );
    }
    let offline = dir.join("heap.pb.gz");
    let runs: Vec<(f64, f64)> = (0..RUNS)
        .map(|_| symbolize(&offline, &dir.join("symbolized.pb.gz")))
        .collect();
    println!(
        "heapprof symbolize of the offline profile: {:.0} ms, peak resident {:.1} MiB (its own process)",
        median(runs.iter().map(|r| r.0 * 1e3).collect()),
        median(runs.iter().map(|r| r.1).collect())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
