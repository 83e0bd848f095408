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
