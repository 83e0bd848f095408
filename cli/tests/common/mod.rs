//! Helpers shared by the CLI's test binaries.
#![allow(dead_code)]

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

/// The one line on stderr of a failed run, which printed nothing on stdout.
pub fn one_line_error(args: &[&str], out: std::process::Output) -> String {
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(stderr.lines().count(), 1, "{args:?}:\n{stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    stderr
}
