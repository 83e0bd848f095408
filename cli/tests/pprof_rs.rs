//! A real CPU profile from pprof-rs (raw protobuf, not gzipped, no
//! mappings): `heapprof top` agrees with `go tool pprof -top` on it, and the
//! folded stacks add up to its totals.

use std::hint::black_box;
use std::process::Command;

use pprof::protos::Message;

mod common;

use common::{folded_total, table};

#[inline(never)]
fn spin(n: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..n {
        x = black_box(x.wrapping_add(i * i % 7));
    }
    x
}

#[inline(never)]
fn busy_for(duration: std::time::Duration) -> u64 {
    let start = std::time::Instant::now();
    let mut total = 0;
    while start.elapsed() < duration {
        total += spin(200_000);
    }
    total
}

/// Keeps busy until the profiler has taken `enough` samples, for a minute at
/// most: its timer counts CPU time, which a busy machine hands out slowly
/// (300 ms of wall time gave 37 samples with one other process on the core).
fn profile_of_at_least(guard: &pprof::ProfilerGuard, enough: i64) -> pprof::protos::Profile {
    let start = std::time::Instant::now();
    loop {
        black_box(busy_for(std::time::Duration::from_millis(100)));
        let profile = guard.report().build().unwrap().pprof().unwrap();
        let samples: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
        if samples >= enough || start.elapsed() > std::time::Duration::from_secs(60) {
            return profile;
        }
    }
}

#[test]
fn heapprof_reads_pprof_rs_cpu_profiles_like_go_tool_pprof() {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(1000)
        .build()
        .unwrap();
    let profile = profile_of_at_least(&guard, 60);
    drop(guard);
    let mut bytes = Vec::new();
    profile.write_to_vec(&mut bytes).unwrap();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pprof-rs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cpu.pb");
    std::fs::write(&path, &bytes).unwrap();
    let path = path.to_str().unwrap();

    let decoded = heapprof::pprof::Profile::decode(&bytes).unwrap();
    let types: Vec<&str> = decoded
        .sample_types
        .iter()
        .map(|t| t.r#type.as_str())
        .collect();
    assert_eq!(types, ["samples", "cpu"]);
    assert!(
        decoded.total(0) > 50,
        "too few samples: {}",
        decoded.total(0)
    );

    for index in ["samples", "cpu"] {
        let ours = Command::new(env!("CARGO_BIN_EXE_heapprof"))
            .args(["top", path, "-i", index])
            .output()
            .unwrap();
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let theirs = Command::new("go")
            .args([
                "tool",
                "pprof",
                "-top",
                &format!("-sample_index={index}"),
                path,
            ])
            .output()
            .expect("go (Debian: apt-get install golang-go)");
        assert!(
            theirs.status.success(),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let (ours, theirs) = (
            String::from_utf8(ours.stdout).unwrap(),
            String::from_utf8(theirs.stdout).unwrap(),
        );
        assert_eq!(table(&ours), table(&theirs), "{index}");
        assert!(ours.contains("pprof_rs::spin"), "{ours}");

        let folded = Command::new(env!("CARGO_BIN_EXE_heapprof"))
            .args(["folded", path, "-i", index])
            .output()
            .unwrap();
        let sum = folded_total(&String::from_utf8(folded.stdout).unwrap());
        assert_eq!(sum, decoded.total(decoded.sample_index(index).unwrap()));
    }
}
