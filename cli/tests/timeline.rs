//! `heapprof timeline` end to end on real series: this test binary, run
//! again as a child under `HEAPPROF=...,interval=200ms`, leaks at a known
//! byte rate in one function and churns a bounded cache in another; a Go
//! program written by the test does the same with Go's heap profiles. The
//! leak must rank first as growing, at its true rate within 20%, and the
//! cache must not be called growing. Then bad input: one line naming the
//! file, or a skip with a warning.

mod common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{one_line_error, scratch};
use serde_json::Value;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// What both programs leak, in bytes per second of wall time, in blocks of
/// 4 KiB; and how long they run.
const LEAK_BYTES_PER_SECOND: f64 = 4.0 * 1024.0 * 1024.0;
const LEAK_BLOCK: usize = 4096;
const RUN: Duration = Duration::from_millis(4000);
/// The cache: 8 MiB of 2 KiB entries, filled over the first 1.2 s of wall
/// time, then the oldest 64 replaced at each step.
const CACHE_ENTRIES: usize = 4096;
const CACHE_ENTRY: usize = 2048;
const CACHE_FILL_MS: u128 = 1200;
/// The sampling rate of both: 16 KiB, so that 16 MiB of leak (4 s) is about
/// 900 samples. The slope's sampling error is then about 4%: a least-squares
/// slope over T seconds of a Poisson path of rate b, each sample standing
/// for w bytes (18.5 KiB for 4 KiB objects at 16 KiB), has variance
/// 6·w·b/(5T). 20% is more than 5 of them.
const RATE: &str = "16384";

const BIN: &str = env!("CARGO_BIN_EXE_heapprof");

fn heapprof(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run heapprof")
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[inline(never)]
fn leak_site(into: &mut Vec<Box<[u8]>>) {
    into.push(vec![7u8; LEAK_BLOCK].into_boxed_slice());
}

/// Fills the cache to what is due after `elapsed`, or replaces its 64
/// oldest entries once it is full.
#[inline(never)]
fn cache_site(cache: &mut VecDeque<Box<[u8]>>, elapsed: Duration) {
    let due = (CACHE_ENTRIES as u128 * elapsed.as_millis() / CACHE_FILL_MS) as usize;
    let entries = if cache.len() < CACHE_ENTRIES {
        due.min(CACHE_ENTRIES) - cache.len().min(due)
    } else {
        64
    };
    for _ in 0..entries {
        if cache.len() == CACHE_ENTRIES {
            cache.pop_front();
        }
        cache.push_back(vec![1u8; CACHE_ENTRY].into_boxed_slice());
    }
}

/// Leaks `LEAK_BYTES_PER_SECOND` of wall time and churns the cache for
/// `RUN`, while heapprof dumps every 200 ms (`HEAPPROF` set by the parent).
#[test]
#[ignore = "run in a child process by the tests below"]
fn timeline_child() {
    let mut leaked = Vec::with_capacity(8192);
    let mut cache = VecDeque::with_capacity(CACHE_ENTRIES);
    let start = Instant::now();
    while start.elapsed() < RUN {
        let due = start.elapsed().as_secs_f64() * LEAK_BYTES_PER_SECOND;
        while ((leaked.len() * LEAK_BLOCK) as f64) < due {
            leak_site(&mut leaked);
        }
        cache_site(&mut cache, start.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    std::hint::black_box((&leaked, &cache));
}

/// The timeline's JSON of `dir`, which must have succeeded.
fn timeline_json(dir: &Path) -> Value {
    let out = heapprof(&["timeline", "--json", s(dir)]);
    assert!(
        out.status.success(),
        "heapprof timeline: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The site whose name is `name` or ends with `::name` (or `.name`, Go's).
fn site<'j>(json: &'j Value, name: &str) -> (usize, &'j Value) {
    json["sites"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .find(|(_, s)| {
            let f = s["function"].as_str().unwrap();
            f == name || f.ends_with(&format!("::{name}")) || f.ends_with(&format!(".{name}"))
        })
        .unwrap_or_else(|| panic!("no site {name} in {json:#}"))
}

/// The assertions both series must pass.
fn assert_leak_ranked_first(json: &Value, leak: &str, cache: &str) {
    let snapshots = json["snapshots"].as_array().unwrap();
    // 20 dumps at most; fewer on a busy machine, where heapprof's first
    // dump (which symbolizes) or Go's build can take a second.
    assert!(snapshots.len() >= 8, "{} snapshots", snapshots.len());
    let times: Vec<i64> = snapshots
        .iter()
        .map(|s| s["time_nanos"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    eprintln!("{} snapshots", snapshots.len());
    for site in json["sites"].as_array().unwrap().iter().take(3) {
        eprintln!(
            "{} {} {:.0} B/s fit {:.3} significance {:.1}",
            site["function"],
            site["verdict"],
            site["bytes_per_second"].as_f64().unwrap(),
            site["fit"].as_f64().unwrap(),
            site["significance"].as_f64().unwrap()
        );
    }
    let (rank, leak) = site(json, leak);
    assert_eq!(rank, 0, "{json:#}");
    assert_eq!(leak["verdict"], "growing", "{leak:#}");
    let slope = leak["bytes_per_second"].as_f64().unwrap();
    assert!(
        (slope / LEAK_BYTES_PER_SECOND - 1.0).abs() < 0.2,
        "leak at {slope:.0} B/s, truth {LEAK_BYTES_PER_SECOND} B/s"
    );
    let (_, cache) = site(json, cache);
    assert_ne!(cache["verdict"], "growing", "{cache:#}");
    // It holds its 8 MiB (and a little of the entry being replaced).
    let held = cache["last_inuse_bytes"].as_f64().unwrap();
    let full = (CACHE_ENTRIES * CACHE_ENTRY) as f64;
    assert!((held / full - 1.0).abs() < 0.25, "cache holds {held}");
}

#[test]
fn heapprof_interval_dumps_rank_the_leak_first_and_not_the_cache() {
    let dir = scratch("timeline", "heapprof");
    let spec = format!(
        "rate={RATE},interval=200ms,dump={}/heap-%p-%t.pb.gz",
        dir.display()
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "timeline_child", "--nocapture"])
        .env("HEAPPROF", spec)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = timeline_json(&dir);
    assert_leak_ranked_first(&json, "leak_site", "cache_site");
    // heapprof's profiles carry RSS and the live heap.
    let last = json["snapshots"].as_array().unwrap().last().unwrap();
    assert!(last["rss_bytes"].as_u64().unwrap() > last["live_bytes"].as_u64().unwrap());
    assert!(last["classes"]["profiler_bytes"].is_u64(), "{last:#}");
    // The text form says the same in its ranking's first row.
    let out = heapprof(&["timeline", s(&dir)]);
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text
        .lines()
        .skip_while(|l| !l.starts_with("verdict"))
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        first.starts_with("growing") && first.ends_with("leak_site"),
        "{text}"
    );
}

/// The Go program: the same leak and cache, a heap profile every 200 ms.
const GO_PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"
)

var leaked = make([][]byte, 0, 1<<16)
var cache [][]byte
var cacheNext int
var filled int

//go:noinline
func leak() {
	leaked = append(leaked, make([]byte, LEAK_BLOCK))
}

// Fills the cache to what is due after elapsed, or replaces its 64 oldest
// entries once it is full.
//
//go:noinline
func fillCache(elapsed time.Duration) {
	n := 64
	if filled < len(cache) {
		due := int(int64(len(cache)) * elapsed.Milliseconds() / CACHE_FILL_MS)
		if due > len(cache) {
			due = len(cache)
		}
		n = due - filled
		if n < 0 {
			n = 0
		}
		filled += n
	}
	for i := 0; i < n; i++ {
		cache[cacheNext] = make([]byte, CACHE_ENTRY)
		cacheNext = (cacheNext + 1) % len(cache)
	}
}

func write(path string) {
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		panic(err)
	}
	f.Close()
}

func main() {
	runtime.MemProfileRate = RATE
	dir := os.Args[1]
	cache = make([][]byte, CACHE_ENTRIES)
	start := time.Now()
	next := start
	for n := 0; time.Since(start) < RUN_MS*time.Millisecond; {
		due := time.Since(start).Seconds() * LEAK_BYTES_PER_SECOND
		for float64(len(leaked)*LEAK_BLOCK) < due {
			leak()
		}
		fillCache(time.Since(start))
		if !time.Now().Before(next) {
			runtime.GC()
			write(filepath.Join(dir, fmt.Sprintf("heap-%03d.pb.gz", n)))
			n++
			next = next.Add(200 * time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
"#;

#[test]
fn go_heap_profiles_rank_the_leak_first_and_not_the_cache() {
    let dir = scratch("timeline", "go");
    let source = GO_PROGRAM
        .replace("LEAK_BLOCK", &LEAK_BLOCK.to_string())
        .replace("CACHE_ENTRIES", &CACHE_ENTRIES.to_string())
        .replace("CACHE_FILL_MS", &CACHE_FILL_MS.to_string())
        .replace("CACHE_ENTRY", &CACHE_ENTRY.to_string())
        .replace("RUN_MS", &RUN.as_millis().to_string())
        .replace(
            "LEAK_BYTES_PER_SECOND",
            &format!("{LEAK_BYTES_PER_SECOND:.1}"),
        )
        .replace("RATE", RATE);
    let program = dir.join("main.go");
    std::fs::write(&program, source).unwrap();
    let dumps = dir.join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    let out = Command::new("go")
        .args(["run", s(&program), s(&dumps)])
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run go ({e}): install Go (Debian: apt-get install golang-go)")
        });
    assert!(
        out.status.success(),
        "go run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = timeline_json(&dumps);
    assert_eq!(json["sample_type"], "inuse_space");
    assert_leak_ranked_first(&json, "leak", "fillCache");
    // Go's profiles carry no RSS.
    assert!(json["snapshots"][0]["rss_bytes"].is_null());
}

/// A small heap profile at `second` with `bytes` in use at `main;leak`.
fn heap_profile(second: i64, bytes: i64) -> Vec<u8> {
    use heapprof::pprof::{Function, Line, Location, Profile, Sample, ValueType};
    Profile {
        sample_types: ValueType::go_heap(),
        functions: ["main", "leak"]
            .map(|name| Function {
                name: name.into(),
                ..Function::default()
            })
            .to_vec(),
        locations: (0..2)
            .map(|function| Location {
                lines: vec![Line { function, line: 1 }],
                ..Location::default()
            })
            .collect(),
        samples: vec![Sample {
            locations: vec![1, 0],
            values: vec![bytes / 1024, bytes, bytes / 1024, bytes],
            labels: vec![],
        }],
        time_nanos: 1_750_000_000_000_000_000 + second * 1_000_000_000,
        period_type: Some(ValueType::new("space", "bytes")),
        period: 1,
        ..Profile::default()
    }
    .encode()
}

/// A directory of `n` heap profiles a second apart, leaking 1 MiB each.
fn heap_dumps(name: &str, n: i64) -> PathBuf {
    let dir = scratch("timeline", name);
    for second in 0..n {
        let path = dir.join(format!("heap-{second:02}.pb.gz"));
        std::fs::write(path, heap_profile(second, (second + 1) << 20)).unwrap();
    }
    dir
}

/// A Go CPU profile from the corpus of other producers' profiles.
fn cpu_profile() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "../../shared/pprof-corpus/google-pprof-converted/profile/testdata/gobench.cpu.pb.gz",
    );
    assert!(
        path.is_file(),
        "the pprof corpus is missing: {}",
        path.display()
    );
    path
}

/// Asserts that heapprof fails with `args`, printing one line on stderr
/// that starts with `prefix`.
fn assert_error_starts(args: &[&str], prefix: &str) {
    let error = one_line_error(args, heapprof(args));
    assert!(error.starts_with(prefix), "{error}");
}

/// The warnings of a run that succeeded.
fn run_warned(args: &[&str]) -> (Value, Vec<String>) {
    let out = heapprof(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{args:?}: {stderr}");
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        stderr.lines().map(str::to_owned).collect(),
    )
}

#[test]
fn an_empty_directory_or_a_missing_file_is_a_one_line_error() {
    let dir = scratch("timeline", "empty");
    let args = ["timeline", s(&dir)];
    assert_eq!(
        one_line_error(&args, heapprof(&args)),
        format!("heapprof: {}: no files in the directory\n", dir.display())
    );
    let missing = dir.join("gone.pb.gz");
    assert_error_starts(
        &["timeline", s(&missing)],
        &format!("heapprof: cannot read {}: ", missing.display()),
    );
    let args = ["timeline", "-"];
    assert_eq!(
        one_line_error(&args, heapprof(&args)),
        "heapprof: timeline reads files and directories, not standard input (-)\n"
    );
}

#[test]
fn a_file_that_is_not_a_profile_is_skipped_in_a_directory_and_an_error_when_named() {
    let dir = heap_dumps("not-a-profile", 4);
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "not a profile\n").unwrap();
    let (json, warnings) = run_warned(&["timeline", "--json", s(&dir)]);
    assert_eq!(json["snapshots"].as_array().unwrap().len(), 4);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(&format!(
            "heapprof: warning: {}: parsing profile: ",
            notes.display()
        )) && warnings[0].ends_with("; skipped"),
        "{warnings:?}"
    );
    // Named on the command line, it is an error naming it.
    let first = dir.join("heap-00.pb.gz");
    assert_error_starts(
        &["timeline", s(&first), s(&notes)],
        &format!("heapprof: {}: parsing profile: ", notes.display()),
    );
    // So is a truncated one.
    let bytes = std::fs::read(&first).unwrap();
    let truncated = dir.join("truncated.pb.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_error_starts(
        &["timeline", s(&first), s(&truncated)],
        &format!("heapprof: {}: decompressing profile: ", truncated.display()),
    );
}

#[test]
fn a_profile_of_another_sample_type_is_skipped_with_a_warning() {
    let dir = heap_dumps("mixed", 5);
    // A Go CPU profile, as the corpus has it (no time), and with a time,
    // in the middle of the series; both sort before the heap dumps.
    let timeless = dir.join("cpu-0.pb.gz");
    std::fs::copy(cpu_profile(), &timeless).unwrap();
    let mut cpu = heapprof::pprof::Profile::decode(&std::fs::read(cpu_profile()).unwrap()).unwrap();
    cpu.time_nanos = 1_750_000_000_000_000_000 + 2_500_000_000;
    let timed = dir.join("cpu-1.pb.gz");
    std::fs::write(&timed, cpu.encode()).unwrap();
    let (json, warnings) = run_warned(&["timeline", "--json", s(&dir)]);
    assert_eq!(json["sample_type"], "inuse_space");
    assert_eq!(json["snapshots"].as_array().unwrap().len(), 5);
    assert_eq!(
        warnings,
        [
            format!(
                "heapprof: warning: {}: the profile has no time (time_nanos is 0), so it has no place in a series; skipped",
                timeless.display()
            ),
            format!(
                "heapprof: warning: {}: of sample type cpu/nanoseconds, not the series' inuse_space/bytes (of more profiles); skipped",
                timed.display()
            )
        ]
    );
    let leak = &json["sites"][0];
    assert_eq!(
        (&leak["function"], &leak["verdict"]),
        (&"leak".into(), &"growing".into())
    );
    assert_eq!(leak["bytes_per_second"].as_f64().unwrap(), (1 << 20) as f64);
    // Asked for a sample type, profiles without it are skipped by name.
    let (json, warnings) = run_warned(&["timeline", "--json", s(&dir), "-i", "alloc_space"]);
    assert_eq!(json["sample_type"], "alloc_space");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[1].starts_with(&format!(
            "heapprof: warning: {}: no sample type alloc_space to join the series with (it has samples/count cpu/nanoseconds)",
            timed.display()
        )),
        "{warnings:?}"
    );
    // A sample type that no file has: every file skipped, one line.
    assert_error_starts(
        &["timeline", s(&dir), "-i", "bogus"],
        &format!("heapprof: no profiles to make a timeline of: all 7 files were skipped (the first: {}: no sample type bogus", timeless.display()),
    );
}

#[test]
fn the_text_form_lists_the_series_and_the_ranking() {
    let dir = heap_dumps("text", 3);
    let out = heapprof(&["timeline", s(&dir)]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Type: inuse_space");
    assert_eq!(lines[1], "Series: 3 profiles over 2.0s");
    assert!(
        lines[3].contains("  1MB ") && lines[3].ends_with("heap-00.pb.gz"),
        "{text}"
    );
    assert!(
        lines[5].contains(" +1MB ") && lines[5].ends_with("heap-02.pb.gz"),
        "{text}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("growing") && last.ends_with(" leak"),
        "{text}"
    );
    assert!(last.contains(" +3.52GB/h "), "{text}");
}
