//! `heapprof lifetimes` on real profiles: this test binary, run again as a
//! child with `HEAPPROF=rate=1` (every allocation sampled, unscaled),
//! churns short-lived blocks in one function and holds blocks 1.1 s in
//! another, and writes a heap profile while they are held and a lifetimes
//! profile after. The view must rank the churning function first, as
//! temporary, with a mean lifetime under a millisecond; find the held
//! blocks in `1s-1m` of both profiles; and give per site the freed objects
//! and bytes that `go tool pprof -top` gives as flat. A profile with neither
//! lifetimes nor ages, and a corrupt file, are one-line errors.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

const BIN: &str = env!("CARGO_BIN_EXE_heapprof");
const CHURNED: usize = 5000;
const CHURN_SIZE: usize = 4001;
const HELD: usize = 10;
const HELD_SIZE: usize = 3001;

/// Blocks freed as soon as they are made.
#[inline(never)]
fn lifeview_churn() {
    for i in 0..CHURNED {
        drop(std::hint::black_box(vec![i as u8; CHURN_SIZE]));
    }
}

/// Blocks the caller holds.
#[inline(never)]
fn lifeview_held() -> Vec<Box<[u8]>> {
    let mut held = Vec::with_capacity(HELD);
    for i in 0..HELD {
        held.push(vec![i as u8; HELD_SIZE].into_boxed_slice());
    }
    held
}

/// Writes `heap.pb.gz` (the held blocks 1.1 s old) and `lifetimes.pb.gz`
/// (after they were freed) into `HEAPPROF_TEST_OUT`.
#[test]
#[ignore = "run in a child process by the tests below"]
fn lifeview_child() {
    let dir = PathBuf::from(std::env::var("HEAPPROF_TEST_OUT").unwrap());
    let held = lifeview_held();
    lifeview_churn();
    std::thread::sleep(Duration::from_millis(1100));
    heapprof::write_heap_profile(dir.join("heap.pb.gz")).unwrap();
    drop(held);
    heapprof::write_lifetimes_profile(dir.join("lifetimes.pb.gz")).unwrap();
}

/// The child's profiles, written once for the tests of this file.
fn profiles() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::scratch("lifetimes", "child");
        let status = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "lifeview_child",
                "--test-threads=1",
                "--quiet",
            ])
            .env("HEAPPROF_TEST_OUT", &dir)
            .env("HEAPPROF", "rate=1")
            .status()
            .unwrap();
        assert!(status.success(), "the child failed");
        dir
    })
}

fn path(name: &str) -> String {
    profiles().join(name).to_str().unwrap().to_owned()
}

/// `heapprof lifetimes ARGS --json`, parsed.
fn view(args: &[&str]) -> Value {
    let mut all = vec!["lifetimes"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(&common::heapprof_stdout(&all)).unwrap()
}

/// The site of `json` whose name ends with `site`.
fn site<'a>(json: &'a Value, site: &str) -> &'a Value {
    json["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().unwrap().ends_with(site))
        .unwrap_or_else(|| panic!("no {site} in {json:#}"))
}

/// What the held function allocated: its blocks and its vector of them.
fn held_figures() -> (i64, i64) {
    let vector = HELD * std::mem::size_of::<Box<[u8]>>();
    ((HELD + 1) as i64, (HELD * HELD_SIZE + vector) as i64)
}

#[test]
fn the_churning_function_is_temporary_and_the_held_blocks_lived_seconds() {
    let json = view(&[&path("lifetimes.pb.gz")]);
    assert_eq!(json["kind"], "lifetimes");
    let churn = &json["sites"][0];
    assert!(
        churn["name"].as_str().unwrap().ends_with("lifeview_churn"),
        "{json:#}"
    );
    let churned = CHURNED as i64;
    assert_eq!(
        (&churn["objects"], &churn["bytes"]),
        (&churned.into(), &(churned * CHURN_SIZE as i64).into())
    );
    let mean = churn["mean_lifetime_micros"].as_f64().unwrap();
    assert!(mean < 1000.0, "mean lifetime {mean}µs");
    // All but a few (a preemption between allocation and free) in <1ms.
    let temporary = &churn["classes"][0];
    assert_eq!(temporary["class"], "<1ms");
    assert!(
        temporary["bytes_percent"].as_f64().unwrap() >= 99.0,
        "{churn:#}"
    );

    let held = site(&json, "lifeview_held");
    let (objects, bytes) = held_figures();
    let seconds = &held["classes"][2];
    assert_eq!(seconds["class"], "1s-1m");
    assert_eq!(
        (&seconds["objects"], &seconds["bytes"]),
        (&objects.into(), &bytes.into())
    );
    assert!(
        held["mean_lifetime_micros"].as_f64().unwrap() >= 1.1e6,
        "{held:#}"
    );

    // The table says the same, churn first.
    let table = common::heapprof_stdout(&["lifetimes", &path("lifetimes.pb.gz"), "-n", "1"]);
    assert!(
        table.contains("Type: lifetimes of freed blocks (a lifetimes profile)\n"),
        "{table}"
    );
    let row = table.lines().last().unwrap();
    assert!(
        row.ends_with("lifeview_churn") && row.contains("µs "),
        "{table}"
    );

    // Tag filters select classes: what lived seconds is the held blocks'.
    let seconds = view(&[&path("lifetimes.pb.gz"), "--tag-focus", "lifetime=1s-1m"]);
    let first = &seconds["sites"][0];
    assert!(
        first["name"].as_str().unwrap().ends_with("lifeview_held"),
        "{seconds:#}"
    );
    assert_eq!(first["objects"], objects);
}

#[test]
fn the_heap_profile_holds_the_blocks_in_the_seconds_class() {
    let json = view(&[&path("heap.pb.gz")]);
    assert_eq!(json["kind"], "ages");
    let held = site(&json, "lifeview_held");
    let (objects, bytes) = held_figures();
    assert_eq!(
        (&held["objects"], &held["bytes"]),
        (&objects.into(), &bytes.into())
    );
    let classes: Vec<(&str, i64)> = held["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["class"].as_str().unwrap(), c["bytes"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        classes,
        [("<1s", 0), ("1s-1m", bytes), ("1m-1h", 0), (">1h", 0)]
    );
    // The churned blocks were all freed: nothing of theirs is in use.
    let churn = json["sites"].as_array().unwrap().iter();
    assert!(
        churn
            .clone()
            .all(|s| !s["name"].as_str().unwrap().ends_with("lifeview_churn")),
        "{json:#}"
    );
    let table = common::heapprof_stdout(&["lifetimes", &path("heap.pb.gz")]);
    assert!(
        table.contains("Type: in-use memory by age (a heap profile with age labels)\n"),
        "{table}"
    );
}

/// `go tool pprof -top` of `profile` at `sample_index`: each row's name
/// and flat, in bytes for byte types.
fn pprof_flat(profile: &str, sample_index: &str) -> HashMap<String, i64> {
    let index = format!("-sample_index={sample_index}");
    let out = Command::new("go")
        .args([
            "tool",
            "pprof",
            "-top",
            "-nodefraction=0",
            "-unit=B",
            &index,
            profile,
        ])
        .env("PPROF_BINARY_PATH", "/nonexistent")
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("go tool pprof (apt-get install golang-go)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top = String::from_utf8(out.stdout).unwrap();
    common::table(&top)
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = fields[5..].join(" ");
            let name = name
                .trim_end_matches(" (inline)")
                .trim_end_matches(" (partial-inline)");
            let flat = fields[0].trim_end_matches('B').parse::<i64>().unwrap();
            (name.to_owned(), flat)
        })
        .filter(|(_, flat)| *flat != 0)
        .collect()
}

/// `field` of each site of `json`, by name.
fn by_site(json: &Value, field: &str) -> HashMap<String, i64> {
    json["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s[field].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn per_site_figures_are_go_tool_pprofs_flat() {
    let lifetimes = path("lifetimes.pb.gz");
    let json = view(&[&lifetimes]);
    assert_eq!(
        by_site(&json, "objects"),
        pprof_flat(&lifetimes, "freed_objects")
    );
    assert_eq!(
        by_site(&json, "bytes"),
        pprof_flat(&lifetimes, "freed_space")
    );
    // And a heap profile's in-use bytes by site.
    let heap = path("heap.pb.gz");
    let aged = by_site(&view(&[&heap]), "bytes");
    assert_eq!(aged, pprof_flat(&heap, "inuse_space"));
}

#[test]
fn profiles_without_lifetimes_and_corrupt_files_are_one_line_errors() {
    let dir = common::scratch("lifetimes", "bad");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("lifetimes")
            .args(args)
            .output()
            .unwrap();
        common::one_line_error(args, out)
    };
    // A Go-shaped heap profile without ages, and a CPU profile.
    let go_heap = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/synthetic.pb.gz");
    let cpu = dir.join("cpu.pb.gz");
    let profile = heapprof::pprof::Profile {
        sample_types: vec![
            heapprof::pprof::ValueType::new("samples", "count"),
            heapprof::pprof::ValueType::new("cpu", "nanoseconds"),
        ],
        ..heapprof::pprof::Profile::default()
    };
    std::fs::write(&cpu, profile.encode()).unwrap();
    let cpu = cpu.to_str().unwrap();
    for (file, types) in [
        (
            go_heap,
            "[alloc_objects alloc_space inuse_objects inuse_space]",
        ),
        (cpu, "[samples cpu]"),
    ] {
        let line = run(&[file]);
        for part in [
            &format!("heapprof: {file}: the lifetimes view needs a lifetimes profile"),
            "/debug/pprof/lifetimes",
            "heapprof::write_lifetimes_profile",
            types,
        ] {
            assert!(line.contains(part), "{line:?} lacks {part:?}");
        }
    }
    let bytes = std::fs::read(path("lifetimes.pb.gz")).unwrap();
    let truncated = dir.join("truncated.pb.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let line = run(&[truncated.to_str().unwrap()]);
    assert!(line.contains("truncated.pb.gz"), "{line}");
    let line = run(&[&path("heap.pb.gz"), "--sort", "mean"]);
    assert!(
        line.contains("heap.pb.gz: a heap profile's ages have no lifetimes"),
        "{line}"
    );
    let line = run(&[&path("lifetimes.pb.gz"), "-i", "freed_space"]);
    assert!(line.contains("--sample-index does not apply"), "{line}");
}

#[test]
fn help_says_where_a_lifetimes_profile_comes_from() {
    let help = common::heapprof_stdout(&["lifetimes", "--help"]);
    for part in ["Example:", "heapprof lifetimes", "/debug/pprof/lifetimes"] {
        assert!(help.contains(part), "{help}");
    }
}
