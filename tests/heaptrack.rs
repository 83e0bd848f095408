//! Exact mode against heaptrack, which records every call to the C
//! allocator: a real serde_json program (building, printing and parsing
//! records, with hundreds of thousands of blocks live at once) makes as
//! many allocations, of as many bytes, by heapprof's exact counters and by
//! its rate-1 profile as heaptrack counts for the same program, with no
//! sample dropped.
//!
//! Each figure is the difference between a run with the workload and one
//! without, so what the C library allocates for itself (which heaptrack
//! sees and Rust's allocator does not) cancels out.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use heapprof::pprof::Profile;
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// Records built, printed and parsed back; both copies stay live, about
/// six blocks a record, so the live-block map must hold more than its
/// first level's 131,072.
const RECORDS: usize = 20_000;

#[derive(Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    attributes: BTreeMap<String, String>,
}

#[inline(never)]
fn workload(records: usize) -> (Vec<Record>, Vec<Record>) {
    let built: Vec<Record> = (0..records as u64)
        .map(|id| Record {
            id,
            name: format!("record number {id}"),
            tags: (0..id % 4).map(|t| format!("tag-{t}")).collect(),
            attributes: (0..id % 3)
                .map(|a| (format!("key{a}"), format!("value {id} {a}")))
                .collect(),
        })
        .collect();
    let text = serde_json::to_string(&built).unwrap();
    let parsed: Vec<Record> = serde_json::from_str(&text).unwrap();
    (built, parsed)
}

/// Runs the workload on `HEAPPROF_TEST_RECORDS` records and prints what
/// heapprof's counters saw it allocate; with `HEAPPROF_TEST_PROFILE` set,
/// writes the heap profile there while the records are still live.
#[test]
#[ignore = "run in a child process by the tests below"]
fn serde_child() {
    let records: usize = std::env::var("HEAPPROF_TEST_RECORDS")
        .unwrap()
        .parse()
        .unwrap();
    let before = heapprof::stats();
    let kept = std::hint::black_box(workload(records));
    let after = heapprof::stats();
    println!(
        "counted allocations={} bytes={}",
        after.allocations - before.allocations,
        after.allocated_bytes - before.allocated_bytes
    );
    if let Ok(path) = std::env::var("HEAPPROF_TEST_PROFILE") {
        heapprof::write_heap_profile(&path).unwrap();
    }
    drop(kept);
}

/// `records` in five digits: the child's reads of its settings allocate
/// their lengths, which must be the same in the runs that are subtracted.
fn padded(records: usize) -> String {
    format!("{records:05}")
}

/// (allocations, bytes) of a `key=value` line the child printed.
fn counted(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        // libtest prints the test's name on the same line.
        .find_map(|l| Some(l.split_once("counted ")?.1))
        .expect(stdout);
    let mut values = line.split(' ').map(|kv| kv.split_once('=').unwrap().1);
    let mut next = || values.next().unwrap().parse().unwrap();
    (next(), next())
}

/// heaptrack's (allocations, bytes allocated) for the child on `records`
/// records, to the byte: from its histogram of allocation sizes, whose
/// counts add up to the "calls to allocation functions" of its summary
/// (checked too).
fn heaptrack_counts(records: usize) -> (u64, u64) {
    let dir = common::scratch_dir(&format!("heaptrack-{records}"));
    let out = Command::new("heaptrack")
        .arg("-o")
        .arg(dir.join("trace"))
        .arg(std::env::current_exe().unwrap())
        // Printing as the heapprof runs print (not into libtest's capture
        // buffer, whose growth would differ between the runs).
        .args([
            "--ignored",
            "--exact",
            "serde_child",
            "--test-threads=1",
            "--nocapture",
        ])
        // Nothing is sampled, so heapprof allocates nothing of its own.
        .env("HEAPPROF", "rate=1024g")
        .env("HEAPPROF_TEST_RECORDS", padded(records))
        .output()
        .expect("heaptrack (apt-get install heaptrack)");
    assert!(out.status.success(), "{out:?}");
    let trace = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("trace.")
        })
        .expect("heaptrack's data file");
    let histogram = dir.join("sizes.txt");
    let print = Command::new("heaptrack_print")
        .arg("--print-histogram")
        .arg(&histogram)
        .arg(&trace)
        .output()
        .unwrap();
    assert!(print.status.success(), "{print:?}");
    let summary = String::from_utf8_lossy(&print.stdout);
    let calls: u64 = summary
        .lines()
        .find_map(|l| l.strip_prefix("calls to allocation functions: "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no call count in heaptrack_print's summary:\n{summary}"));
    let (mut count, mut bytes) = (0, 0);
    for line in std::fs::read_to_string(&histogram).unwrap().lines() {
        let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().unwrap());
        let (size, n) = (fields.next().unwrap(), fields.next().unwrap());
        count += n;
        bytes += size * n;
    }
    assert_eq!(count, calls, "the histogram holds every call");
    (count, bytes)
}

/// The child on `records` records at rate 1: what heapprof's counters saw
/// the workload allocate, and the heap profile written after it.
fn heapprof_run(records: usize, dir: &std::path::Path) -> ((u64, u64), Profile) {
    let path = dir.join(format!("heap-{}.pb.gz", padded(records)));
    let out = common::run_child_test_ok(
        "serde_child",
        &[
            ("HEAPPROF", "rate=1"),
            ("HEAPPROF_TEST_RECORDS", &padded(records)),
            ("HEAPPROF_TEST_PROFILE", path.to_str().unwrap()),
        ],
    );
    let counts = counted(&String::from_utf8_lossy(&out.stdout));
    let profile = Profile::decode(&std::fs::read(&path).unwrap()).unwrap();
    (counts, profile)
}

#[test]
fn exact_mode_counts_what_heaptrack_counts_on_a_serde_json_program() {
    let (calls, bytes) = heaptrack_counts(RECORDS);
    let (base_calls, base_bytes) = heaptrack_counts(0);
    let heaptrack = (calls - base_calls, bytes - base_bytes);

    let dir = common::scratch_dir("heaptrack-heapprof");
    let ((allocations, allocated), profile) = heapprof_run(RECORDS, &dir);
    let ((base_allocations, base_allocated), base) = heapprof_run(0, &dir);
    let counters = (allocations - base_allocations, allocated - base_allocated);
    assert_eq!(
        counters, heaptrack,
        "(allocations, bytes) of the workload by heapprof's counters and by heaptrack"
    );

    // The rate-1 profile holds every one of them, none dropped.
    assert_eq!(
        common::dropped_samples(&profile),
        0,
        "{:?}",
        profile.comments
    );
    let total = |p: &Profile, index: usize| -> u64 {
        p.samples.iter().map(|s| s.values[index]).sum::<i64>() as u64
    };
    assert_eq!(
        (
            total(&profile, 0) - total(&base, 0),
            total(&profile, 1) - total(&base, 1)
        ),
        heaptrack,
        "alloc_objects and alloc_space of the rate-1 profile"
    );
    // Both copies of the records were live as the profile was written.
    assert!(
        total(&profile, 2) - total(&base, 2) > 200_000,
        "inuse_objects: {}",
        total(&profile, 2) - total(&base, 2)
    );
}
