//! Readable stacks in a real profile: this test binary, run again as a
//! child, writes an in-process and an address-only profile of the same
//! samples (allocations on the main thread and on a spawned one, through
//! closures); by default their stacks begin at the program's entry, with
//! `HEAPPROF=full_stacks=1` they keep the start-up frames, `heapprof
//! symbolize` cuts the address-only one exactly as the process did, and
//! every closure is named in one style.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use heapprof::pprof::Profile;
use heapprof::{Config, Symbolize};

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

const BIN: &str = env!("CARGO_BIN_EXE_heapprof");

/// Blocks made in a closure, kept.
#[inline(never)]
fn roots_main_site(into: &mut Vec<Vec<u8>>) {
    into.extend((0..200).map(|i| vec![i as u8; 300]));
}

/// Blocks made on a spawned thread, in its closure, kept.
#[inline(never)]
fn roots_thread_site() -> Vec<Vec<u8>> {
    std::thread::spawn(|| (0..200).map(|i| vec![i as u8; 500]).collect())
        .join()
        .unwrap()
}

/// Writes `offline.pb.gz` and `inprocess.pb.gz` into `HEAPPROF_TEST_OUT`
/// from the same samples (every allocation: rate 1).
#[test]
#[ignore = "run in a child process by the tests below"]
fn roots_child() {
    heapprof::set_sample_rate(1);
    let dir = PathBuf::from(std::env::var("HEAPPROF_TEST_OUT").unwrap());
    let mut kept = Vec::with_capacity(200);
    roots_main_site(&mut kept);
    let from_thread = roots_thread_site();
    // Nothing allocates between the two writes: they show the same samples.
    Config::new().symbolize(Symbolize::Offline).start().unwrap();
    heapprof::write_heap_profile(dir.join("offline.pb.gz")).unwrap();
    Config::new()
        .symbolize(Symbolize::InProcess)
        .start()
        .unwrap();
    heapprof::write_heap_profile(dir.join("inprocess.pb.gz")).unwrap();
    drop((kept, from_thread));
}

/// The child's profiles in a fresh directory, `HEAPPROF` set to `spec`.
fn child_profiles(name: &str, spec: &str) -> PathBuf {
    let dir = common::scratch("stack_roots", name);
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "roots_child",
            "--test-threads=1",
            "--quiet",
        ])
        .env("HEAPPROF_TEST_OUT", &dir)
        .env("HEAPPROF", spec)
        .status()
        .unwrap();
    assert!(status.success(), "child with HEAPPROF={spec} failed");
    dir
}

/// `heapprof symbolize DIR/offline.pb.gz --binary THIS ARGS`, decoded.
fn symbolized(dir: &Path, args: &[&str]) -> Profile {
    let out = dir.join(format!("symbolized{}.pb.gz", args.len()));
    let exe = std::env::current_exe().unwrap();
    let run = Command::new(BIN)
        .arg("symbolize")
        .arg(dir.join("offline.pb.gz"))
        .arg("--binary")
        .arg(exe)
        .args(args)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    decode(&out)
}

fn decode(path: &Path) -> Profile {
    Profile::decode(&std::fs::read(path).unwrap()).unwrap()
}

/// Each sample's stack of function names, leaf first (inlined levels
/// innermost first), for the samples of this file's two sites.
fn site_stacks(profile: &Profile) -> BTreeSet<Vec<String>> {
    profile
        .samples
        .iter()
        .map(|sample| {
            sample
                .locations
                .iter()
                .flat_map(|&l| &profile.locations[l].lines)
                .map(|line| profile.functions[line.function].name.clone())
                .collect::<Vec<_>>()
        })
        .filter(|stack| stack.iter().any(|f| f.contains("roots_")))
        .collect()
}

/// Start-up frames that a stack beginning at the program's entry lacks.
fn start_up(frame: &str) -> bool {
    [
        "_start",
        "__libc_start",
        "lang_start",
        "__rust_begin_short_backtrace",
        "start_thread",
        "clone3",
    ]
    .iter()
    .any(|s| frame.contains(s))
}

fn assert_begin_at_entry(stacks: &BTreeSet<Vec<String>>, what: &str) {
    let sites = ["roots_main_site", "roots_thread_site"];
    for site in sites {
        assert!(
            stacks.iter().any(|s| s.iter().any(|f| f.contains(site))),
            "{what}: no stack through {site}: {stacks:#?}"
        );
    }
    for stack in stacks {
        assert!(
            !stack.iter().any(|f| start_up(f)),
            "{what}: a start-up frame in {stack:#?}"
        );
    }
}

fn assert_full(stacks: &BTreeSet<Vec<String>>, what: &str) {
    let has = |s: &Vec<String>, frame: &str| s.iter().any(|f| f.contains(frame));
    let main = stacks.iter().find(|s| has(s, "roots_main_site")).unwrap();
    let thread = stacks
        .iter()
        .find(|s| has(s, "roots_thread_site::{{closure}}"));
    let thread = thread.unwrap_or_else(|| panic!("{what}: no thread stack in {stacks:#?}"));
    for stack in [main, thread] {
        assert!(
            has(stack, "__rust_begin_short_backtrace"),
            "{what}: {stack:#?}"
        );
    }
    // The harness may run the test on its main thread or on one of its own.
    assert!(
        has(main, "__libc_start_main") || has(main, "start_thread"),
        "{what}: {main:#?}"
    );
    assert!(has(thread, "start_thread"), "{what}: {thread:#?}");
}

#[test]
fn stacks_begin_at_the_programs_entry_in_process_and_offline() {
    let dir = child_profiles("default", "");
    let in_process = site_stacks(&decode(&dir.join("inprocess.pb.gz")));
    assert_begin_at_entry(&in_process, "in process");
    let offline = site_stacks(&symbolized(&dir, &[]));
    assert_begin_at_entry(&offline, "heapprof symbolize");
    // Cut where the process cut: the same roots.
    let roots = |stacks: &BTreeSet<Vec<String>>| -> BTreeSet<String> {
        stacks.iter().map(|s| s.last().unwrap().clone()).collect()
    };
    assert_eq!(roots(&offline), roots(&in_process));
    // And what the process cut is still there to keep when asked.
    assert_full(
        &site_stacks(&symbolized(&dir, &["--full-stacks"])),
        "--full-stacks",
    );
}

#[test]
fn full_stacks_keeps_the_start_up_frames_in_process_and_offline() {
    let dir = child_profiles("full", "full_stacks=1");
    assert_full(
        &site_stacks(&decode(&dir.join("inprocess.pb.gz"))),
        "in process",
    );
    // The address-only profile says it wants whole stacks.
    assert_full(&site_stacks(&symbolized(&dir, &[])), "heapprof symbolize");
}

#[test]
fn closures_are_named_in_one_style() {
    let dir = child_profiles("closures", "full_stacks=1");
    for (what, profile) in [
        ("in process", decode(&dir.join("inprocess.pb.gz"))),
        ("heapprof symbolize", symbolized(&dir, &[])),
    ] {
        let names: Vec<&str> = profile.functions.iter().map(|f| f.name.as_str()).collect();
        assert!(
            names
                .iter()
                .any(|n| n.contains("roots_thread_site::{{closure}}")),
            "{what}: {names:#?}"
        );
        // std's own closures (v0-mangled) among them, in the same style.
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("std::") && n.contains("{{closure}}")),
            "{what}: {names:#?}"
        );
        let numbered: Vec<&&str> = names
            .iter()
            .filter(|n| n.contains("{closure#") || n.contains("{shim:"))
            .collect();
        assert!(numbered.is_empty(), "{what}: {numbered:#?}");
    }
}
