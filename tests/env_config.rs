//! Zero-code configuration: this test binary, run again with `HEAPPROF`
//! set, writes the profiles the variable asks for, at the right times.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// The heap the children keep: `n` blocks of 64 KiB.
#[inline(never)]
fn kept_blocks(into: &mut Vec<Vec<u8>>, n: usize) {
    for _ in 0..n {
        into.push(vec![7u8; 64 << 10]);
    }
}

/// A last 4 MiB, leaked.
#[inline(never)]
fn allocated_last() {
    std::mem::forget(vec![9u8; 4 << 20]);
}

/// How many files are in the directory that `dump=` in `HEAPPROF` names.
fn dumps_on_disk() -> usize {
    let spec = std::env::var("HEAPPROF").unwrap();
    let pattern = spec
        .split(',')
        .find_map(|kv| kv.strip_prefix("dump="))
        .unwrap();
    let dir = Path::new(pattern).parent().unwrap();
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Grows its heap for two and a half seconds and, when the test asks for
/// `HEAPPROF_TEST_DUMPS` interval dumps, until that many are on disk (30 s
/// at most, for a machine so busy that the first dump's symbolization takes
/// most of the 2.5 s); then leaves a last allocation for the exit profile.
#[test]
#[ignore = "run with HEAPPROF set by interval_and_exit_dumps"]
fn dumping_child() {
    let mut kept = Vec::new();
    // Only the interval test waits for its dumps; the others dump at exit.
    let wanted: usize = std::env::var("HEAPPROF_TEST_DUMPS").map_or(0, |n| n.parse().unwrap());
    let mut rounds = 0;
    while rounds < 50 || (dumps_on_disk() < wanted && rounds < 600) {
        kept_blocks(&mut kept, 4);
        std::thread::sleep(Duration::from_millis(50));
        rounds += 1;
    }
    allocated_last();
}

/// A 48 MiB peak, all freed, then a smaller heap at exit.
#[test]
#[ignore = "run with HEAPPROF set by the peak profile test"]
fn peak_child() {
    let mut blocks = Vec::with_capacity(768);
    kept_blocks(&mut blocks, 768);
    drop(blocks);
    allocated_last();
    println!("peak_live_bytes={}", heapprof::stats().peak_live_bytes);
}

fn profiles_in(dir: &Path) -> Vec<(PathBuf, Profile)> {
    let mut found: Vec<(PathBuf, Profile)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let profile = Profile::decode(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, profile)
        })
        .collect();
    found.sort_by_key(|(_, p)| p.time_nanos);
    found
}

#[test]
fn interval_and_exit_dumps() {
    let dir = common::scratch_dir("env-interval");
    let spec = format!(
        "rate=64k,interval=300ms,at_exit=1,dump={}/heap-%p-%t.pb.gz",
        dir.display()
    );
    let out = common::run_child_test_ok(
        "dumping_child",
        &[("HEAPPROF", &spec), ("HEAPPROF_TEST_DUMPS", "3")],
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("heapprof: warning"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let profiles = profiles_in(&dir);
    // 2.5 s of work at 300 ms: about 7 interval dumps (fewer if the first
    // symbolization is slow), then the exit dump.
    assert!(
        (3..=10).contains(&profiles.len()),
        "{} profiles",
        profiles.len()
    );
    let names: std::collections::HashSet<_> = profiles.iter().map(|(p, _)| p).collect();
    assert_eq!(names.len(), profiles.len());
    let gaps: Vec<i64> = profiles
        .windows(2)
        .map(|w| w[1].1.time_nanos - w[0].1.time_nanos)
        .collect();
    let interval_gaps = &gaps[..gaps.len() - 1];
    assert!(
        interval_gaps.iter().all(|&g| g >= 290_000_000),
        "interval dumps closer than the interval: {gaps:?}"
    );
    // The heap grew between interval dumps; the exit dump, after the test
    // function returned, has only what it leaked last.
    let kept = |p: &Profile| common::site_totals(p, "kept_blocks", None)[3];
    let last_interval = &profiles[profiles.len() - 2].1;
    assert!(kept(&profiles[0].1) < kept(last_interval));
    let (exit_path, exit) = profiles.last().unwrap();
    let last = common::site_totals(exit, "allocated_last", None);
    assert_eq!(last[3], 4 << 20, "exit profile: {}", exit_path.display());
    let top = common::go_pprof_ok(&["-top", exit_path.to_str().unwrap()]);
    assert!(top.contains("allocated_last"), "{top}");
}

#[test]
fn the_peak_profile_is_written_at_exit() {
    let dir = common::scratch_dir("env-peak");
    let spec = format!("rate=64k,peak=1,dump={}/mem-%p.pb.gz", dir.display());
    let out = common::run_child_test_ok("peak_child", &[("HEAPPROF", &spec)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let peak_live: i64 = stdout
        .lines()
        .find_map(|l| l.split_once("peak_live_bytes=").map(|(_, n)| n))
        .expect("child's peak")
        .parse()
        .unwrap();
    let profiles = profiles_in(&dir);
    assert_eq!(profiles.len(), 1, "only the peak profile was asked for");
    let (path, peak) = &profiles[0];
    assert!(
        path.to_str().unwrap().ends_with(".peak.pb.gz"),
        "{}",
        path.display()
    );
    // Recorded each time live bytes pass the last record by 1/16, so it
    // holds at least 16/17 of the 48 MiB; estimated from 64 KiB blocks
    // sampled at 64 KiB, 768 blocks: relative sd 2.8%, 4 sd allowed.
    let at_peak = common::site_totals(peak, "kept_blocks", None)[3] as f64;
    let mib = (1 << 20) as f64;
    assert!(
        (48.0 * 16.0 / 17.0 * 0.89..=48.0 * 1.11).contains(&(at_peak / mib)),
        "peak site {:.1} MiB",
        at_peak / mib
    );
    assert_eq!(common::site_totals(peak, "allocated_last", None)[3], 0);
    let total_inuse: i64 = peak.samples.iter().map(|s| s.values[3]).sum();
    let ratio = total_inuse as f64 / peak_live as f64;
    assert!(
        (0.84..=1.11).contains(&ratio),
        "peak profile in use {total_inuse} against the real peak {peak_live}"
    );
}

#[test]
fn bad_values_warn_and_the_rest_applies() {
    let dir = common::scratch_dir("env-bad");
    let spec = format!(
        "rate=lots,interval=0,colour=blue,at_exit=1,dump={}/x.pb.gz",
        dir.display()
    );
    let out = common::run_child_test_ok("dumping_child", &[("HEAPPROF", &spec)]);
    let warnings = common::heapprof_lines(&out);
    assert_eq!(
        warnings,
        [
            "heapprof: warning: HEAPPROF: rate: bad value \"lots\" (expected a number of bytes such as 524288 or 512k); keeping the rate at 524288",
            "heapprof: warning: HEAPPROF: interval: bad value \"0\" (expected a duration above zero such as 30s, 5m or 500ms); no interval dumps",
            "heapprof: warning: HEAPPROF: unknown key \"colour\" ignored (known keys: rate, dump, interval, at_exit, peak, http, symbolize, full_stacks, peak_interval, limit, near_limit, trace, at_signal, thread_labels)",
        ]
    );
    let profiles = profiles_in(&dir);
    assert_eq!(profiles.len(), 1, "at_exit still applies");
    assert_eq!(profiles[0].1.period, 524288, "the default rate");
}

#[test]
fn a_missing_dump_directory_is_one_warning() {
    let out = common::run_child_test_ok(
        "dumping_child",
        &[("HEAPPROF", "at_exit=1,dump=/no/such/dir/heap.pb.gz")],
    );
    let warnings = common::heapprof_lines(&out);
    assert_eq!(
        warnings,
        ["heapprof: warning: HEAPPROF: dump: directory /no/such/dir does not exist; no profiles are dumped"]
    );
}

#[test]
fn symbolize_offline_writes_addresses_only() {
    let dir = common::scratch_dir("env-offline");
    let spec = format!(
        "symbolize=offline,at_exit=1,dump={}/heap.pb.gz",
        dir.display()
    );
    common::run_child_test_ok("dumping_child", &[("HEAPPROF", &spec)]);
    let profiles = profiles_in(&dir);
    assert_eq!(profiles.len(), 1);
    let profile = &profiles[0].1;
    assert!(profile.functions.iter().all(|f| f.name == "[truncated]"));
    assert!(profile
        .locations
        .iter()
        .all(|l| l.lines.is_empty() || l.address == 0));
    assert!(profile.mappings.iter().all(|m| !m.has_functions));
    assert!(!profile.mappings[0].build_id.is_empty());
    assert!(profile.samples.iter().any(|s| s.values[3] >= 4 << 20));
}

/// While another thread of the program allocates without pause, the dump
/// thread writes interval profiles (the first parses this binary's debug
/// info): none of its memory is the program's, so neither the peak nor the
/// live bytes may move from those of the program's steady heap.
#[test]
#[ignore = "run with HEAPPROF set by interval_dumps_leave_the_peak_alone"]
fn dump_thread_child() {
    let held = common::steady_heap();
    let before = heapprof::stats();
    let start = std::time::Instant::now();
    common::while_churning(|| {
        while dumps_on_disk() < 3 {
            assert!(start.elapsed() < Duration::from_secs(120), "no dumps");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let after = heapprof::stats();
    let peak = Profile::decode(&heapprof::peak_profile().unwrap()).unwrap();
    let recorded = common::peak_comment(&peak.comments).expect("a peak comment");
    common::assert_only_the_program_counts(before, after, recorded);
    drop(held);
}

#[test]
fn interval_dumps_leave_the_peak_alone() {
    let dir = common::scratch_dir("env-own-work");
    let spec = format!(
        "peak=1,interval=100ms,dump={}/heap-%p-%t.pb.gz",
        dir.display()
    );
    let out = common::run_child_test_ok("dump_thread_child", &[("HEAPPROF", &spec)]);
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
}
