//! Helpers shared by the CLI's test binaries.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// A `-top` report from its "Showing nodes" line on: the part heapprof and
/// `go tool pprof` print alike.
pub fn table(report: &str) -> &str {
    let start = report
        .find("Showing nodes")
        .unwrap_or_else(|| panic!("no table in:\n{report}"));
    &report[start..]
}

/// The sum of the values of folded-stack output (`stack value` lines).
pub fn folded_total(folded: &str) -> i64 {
    folded
        .lines()
        .map(|l| {
            l.rsplit_once(' ')
                .expect("stack value")
                .1
                .parse::<i64>()
                .expect("integer")
        })
        .sum()
}

/// A fresh, empty directory for one test's files, `tests`-`name`-pid.
pub fn scratch(tests: &str, name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{tests}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The stdout of `heapprof ARGS`, which must succeed.
pub fn heapprof_stdout(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_heapprof"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The one line on stderr of a failed run, which printed nothing on stdout.
pub fn one_line_error(args: &[&str], out: std::process::Output) -> String {
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(stderr.lines().count(), 1, "{args:?}:\n{stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    stderr
}

/// The corpus of other producers' profiles beside the checkout
/// (`../shared/pprof-corpus`, whose README says where each comes from).
pub fn corpus() -> PathBuf {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/pprof-corpus");
    assert!(
        corpus.join("README.md").is_file(),
        "the pprof corpus is missing at {}",
        corpus.display()
    );
    corpus
}

/// A corpus file by its path there.
pub fn data(path: &str) -> String {
    let path = corpus().join(path);
    assert!(path.is_file(), "{} is missing", path.display());
    path.to_str().expect("UTF-8 path").to_owned()
}

/// The corpus's protobuf profiles, by their paths there (the legacy text
/// formats and the inputs pprof rejects are in folders of their own).
pub fn corpus_profiles() -> Vec<String> {
    corpus_files(|origin| !origin.ends_with("-legacy") && !origin.ends_with("-rejected"))
}

/// The corpus's files in the origin folders that `take` accepts.
pub fn corpus_files(take: impl Fn(&str) -> bool) -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, into: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, into);
            } else if path.file_name().is_some_and(|n| n != "README.md") {
                let relative = path.strip_prefix(root).unwrap();
                into.push(relative.to_str().unwrap().to_owned());
            }
        }
    }
    let root = corpus();
    let mut profiles = Vec::new();
    for origin in std::fs::read_dir(&root).unwrap() {
        let origin = origin.unwrap().path();
        let name = origin.file_name().unwrap().to_str().unwrap().to_owned();
        if origin.is_dir() && take(&name) {
            walk(&origin, &root, &mut profiles);
        }
    }
    profiles.sort();
    profiles
}

/// The time zone the whole-output comparisons run in: not UTC, so that
/// the header's `Time:` proves it follows the zone as pprof's does.
pub const ZONE: &str = "America/New_York";

/// `go tool pprof` with `pprof_args` (no binaries) and heapprof with
/// `ours_args`, both in the time zone [`ZONE`], whose headers name it.
pub fn both_in_zone(pprof_args: &[String], ours_args: &[String]) -> (Output, Output) {
    let theirs = Command::new("go")
        .args(["tool", "pprof"])
        .args(pprof_args)
        .env("PPROF_BINARY_PATH", "/nonexistent")
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .env("TZ", ZONE)
        .output()
        .expect("go tool pprof (apt-get install golang-go)");
    let ours = Command::new(env!("CARGO_BIN_EXE_heapprof"))
        .args(ours_args)
        .env("TZ", ZONE)
        .output()
        .unwrap();
    (theirs, ours)
}
