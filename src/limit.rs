//! Profiles written before an out-of-memory kill: a SIGKILL runs no exit
//! handler, so the profile that explains it must already be on disk.
//!
//! A heapprof thread polls the process's resident set size (as
//! [`crate::stats`] reads it, from `/proc/self/statm`) every [`POLL`]; when
//! it first reaches `near_limit` percent of the memory limit, and again at
//! each further [`STEP_PERCENT`] (never twice within [`MIN_GAP`]), it writes
//! the heap profile and the peak profile (see [`dump::write_near_limit`]).
//! The limit is the `limit` setting, or else the memory limit of the
//! process's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`).
//!
//! This module never runs on the allocation path: only on its own thread
//! (heapprof's own work from start to end) and in [`crate::Config::start`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::core::counters;
use crate::{dump, Error};

/// How often resident memory is read: one `/proc/self/statm` read (a few
/// microseconds) ten times a second.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// Profiles are written at `near_limit`, `near_limit + 5`, ... percent.
pub(crate) const STEP_PERCENT: u32 = 5;
/// The least time between two near-limit writes, so that a program hovering
/// at its limit is not slowed by writes; steps passed meanwhile are written
/// as one, at the highest step reached.
pub(crate) const MIN_GAP: Duration = Duration::from_secs(3);

/// A cgroup limit at or above this is no limit: v1 writes "none" as the page
/// counter's maximum (2^63 - 1 rounded down to a page).
const NO_LIMIT_FROM: u64 = 1 << 62;

static STARTED: AtomicBool = AtomicBool::new(false);

/// A memory limit and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Limit {
    pub bytes: u64,
    /// For the start-up line: `limit=`, or the cgroup file read.
    pub source: String,
}

/// Finds the limit (`explicit`, else the cgroup's) and starts the watcher
/// thread, saying on stderr in one line which limit it watches, or that it
/// found none (then nothing is started). A second call changes nothing.
pub(crate) fn start(explicit: Option<u64>, percent: u32, pattern: &str) -> Result<(), Error> {
    dump::check_pattern(pattern)?;
    if STARTED.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    let limit = match explicit {
        Some(bytes) => Some(Limit {
            bytes,
            source: "limit=".to_owned(),
        }),
        None => cgroup_limit(Path::new("/proc/self/cgroup"), Path::new("/sys/fs/cgroup")),
    };
    let Some(limit) = limit else {
        eprintln!(
            "heapprof: warning: near_limit: no memory limit found (no limit= setting, no cgroup memory limit); no near-limit profiles"
        );
        return Ok(());
    };
    eprintln!(
        "heapprof: near_limit: watching resident memory against a limit of {} bytes ({}); profiles at {percent}% and every {STEP_PERCENT}% above",
        limit.bytes, limit.source
    );
    counters::spawn_own_thread("heapprof-limit", || {
        let pattern = pattern.to_owned();
        move || {
            let mut watch = Watch::new(limit.bytes, percent);
            loop {
                std::thread::sleep(POLL);
                // The resident size alone: `stats()` would also sum every
                // thread's counters, which the watch does not need.
                let resident = crate::stats::process_memory().map_or(0, |(resident, _)| resident);
                if let Some(step) = watch.due(resident, Instant::now()) {
                    dump::write_near_limit(&pattern, step);
                }
            }
        }
    })
    .map_err(|e| Error::Config(format!("near_limit: cannot start its thread: {e}")))
}

/// When to write: the steps reached and the last write.
#[derive(Debug)]
struct Watch {
    limit: u64,
    first: u32,
    next: u32,
    last_write: Option<Instant>,
}

impl Watch {
    fn new(limit: u64, first: u32) -> Self {
        Watch {
            limit,
            first,
            next: first,
            last_write: None,
        }
    }

    /// The step to write profiles for now, if any: the highest reached, if
    /// it is above the last written and the last write is [`MIN_GAP`] old.
    fn due(&mut self, resident: u64, now: Instant) -> Option<u32> {
        let step = reached_step(resident, self.limit, self.first)?;
        if step < self.next {
            return None;
        }
        if self
            .last_write
            .is_some_and(|last| now.saturating_duration_since(last) < MIN_GAP)
        {
            return None;
        }
        self.next = step + STEP_PERCENT;
        self.last_write = Some(now);
        Some(step)
    }
}

/// The highest of `first`, `first + 5`, ... percent of `limit` that
/// `resident` has reached (past 100% too), or `None` below `first`.
fn reached_step(resident: u64, limit: u64, first: u32) -> Option<u32> {
    if limit == 0 {
        return None;
    }
    // Whole percent reached, without overflow for any u64.
    let percent = u128::from(resident) * 100 / u128::from(limit);
    let percent = u32::try_from(percent).unwrap_or(u32::MAX);
    if percent < first {
        return None;
    }
    Some(first + (percent - first) / STEP_PERCENT * STEP_PERCENT)
}

/// The memory limit of this process's cgroup, given `/proc/self/cgroup` and
/// the cgroup mount (`/sys/fs/cgroup`): v2 `memory.max` of the "0::" line's
/// cgroup, else v1 `memory.limit_in_bytes` of the `memory` controller's
/// (under `memory/`), each tried at the cgroup's path and, for a cgroup
/// namespace that shows the process at the mount's root, at the root.
fn cgroup_limit(proc_cgroup: &Path, mount: &Path) -> Option<Limit> {
    let text = std::fs::read_to_string(proc_cgroup).ok()?;
    let (v2, v1) = cgroup_paths(&text);
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(v1) = v1 {
        let dir = mount.join("memory");
        candidates.push(
            dir.join(v1.trim_start_matches('/'))
                .join("memory.limit_in_bytes"),
        );
        candidates.push(dir.join("memory.limit_in_bytes"));
    }
    if let Some(v2) = v2 {
        candidates.insert(0, mount.join("memory.max"));
        candidates.insert(0, mount.join(v2.trim_start_matches('/')).join("memory.max"));
    }
    // The first file that exists decides: "max" there is no limit, even if
    // a file further down names one.
    let file = candidates.into_iter().find(|f| f.is_file())?;
    let bytes = parse_limit(&std::fs::read_to_string(&file).ok()?)?;
    Some(Limit {
        bytes,
        source: format!("cgroup {}", file.display()),
    })
}

/// The cgroup v2 path (the "0::" line) and the v1 `memory` controller's
/// path, from `/proc/self/cgroup`.
fn cgroup_paths(text: &str) -> (Option<&str>, Option<&str>) {
    let (mut v2, mut v1) = (None, None);
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path);
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path);
        }
    }
    // Under v1 the "0::" line names only the empty unified hierarchy.
    if v1.is_some() {
        v2 = None;
    }
    (v2, v1)
}

/// A limit file's value: a number of bytes; "max" or a huge number is none.
fn parse_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes > 0 && bytes < NO_LIMIT_FROM).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_start_at_near_limit_and_rise_by_five() {
        let limit = 1000;
        assert_eq!(reached_step(899, limit, 90), None);
        assert_eq!(reached_step(900, limit, 90), Some(90));
        assert_eq!(reached_step(949, limit, 90), Some(90));
        assert_eq!(reached_step(950, limit, 90), Some(95));
        assert_eq!(reached_step(1000, limit, 90), Some(100));
        assert_eq!(reached_step(1234, limit, 90), Some(120), "past the limit");
        assert_eq!(reached_step(u64::MAX, 1, 80).map(|s| s % 5), Some(0));
        assert_eq!(reached_step(5, 0, 80), None);
    }

    #[test]
    fn each_step_is_written_once_and_not_twice_within_the_gap() {
        let t0 = Instant::now();
        let mut watch = Watch::new(1000, 80);
        assert_eq!(watch.due(700, t0), None);
        assert_eq!(watch.due(810, t0), Some(80));
        assert_eq!(watch.due(820, t0 + MIN_GAP * 2), None, "80% again");
        let t1 = t0 + MIN_GAP * 2;
        assert_eq!(watch.due(860, t1), Some(85));
        // 90 and 95 are passed within the gap: written once, as 95.
        assert_eq!(watch.due(910, t1 + MIN_GAP / 2), None);
        assert_eq!(watch.due(960, t1 + MIN_GAP / 2), None);
        assert_eq!(watch.due(960, t1 + MIN_GAP), Some(95));
        // Memory that falls and comes back writes nothing new.
        assert_eq!(watch.due(500, t1 + MIN_GAP * 3), None);
        assert_eq!(watch.due(970, t1 + MIN_GAP * 4), None);
        assert_eq!(watch.due(1000, t1 + MIN_GAP * 4), Some(100));
    }

    #[test]
    fn limit_files_say_max_or_huge_for_none() {
        assert_eq!(parse_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None, "v1 none");
        assert_eq!(parse_limit("18446744073709551615"), None);
        assert_eq!(parse_limit("0"), None);
        assert_eq!(parse_limit(""), None);
    }

    #[test]
    fn proc_cgroup_lines_name_the_v1_memory_or_the_v2_cgroup() {
        let v1 = "9:name=systemd:/\n4:memory:/process_api/2bb5\n3:cpu,cpuacct:/x\n0::/\n";
        assert_eq!(cgroup_paths(v1), (None, Some("/process_api/2bb5")));
        let v2 = "0::/system.slice/app.service\n";
        assert_eq!(cgroup_paths(v2), (Some("/system.slice/app.service"), None));
        assert_eq!(cgroup_paths("garbage\n"), (None, None));
        assert_eq!(
            cgroup_paths("5:cpu,memory:/a\n"),
            (None, Some("/a")),
            "a controller among others"
        );
    }

    /// A made-up cgroup mount: `files` are (path under the mount, text).
    fn mount(test: &str, proc_cgroup: &str, files: &[(&str, &str)]) -> Option<Limit> {
        let dir = std::env::temp_dir().join(format!("heapprof-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join("fs").join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup"), proc_cgroup).unwrap();
        let found = cgroup_limit(&dir.join("cgroup"), &dir.join("fs"));
        std::fs::remove_dir_all(&dir).unwrap();
        found.map(|l| Limit {
            source: l.source.rsplit("/fs/").next().unwrap().to_owned(),
            ..l
        })
    }

    #[test]
    fn the_cgroups_limit_is_found_in_v1_and_v2_mounts() {
        let limit = |bytes, source: &str| {
            Some(Limit {
                bytes,
                source: source.to_owned(),
            })
        };
        assert_eq!(
            mount(
                "v2",
                "0::/app\n",
                &[("app/memory.max", "67108864\n"), ("memory.max", "max\n")]
            ),
            limit(64 << 20, "app/memory.max")
        );
        assert_eq!(
            mount("v2-max", "0::/app\n", &[("app/memory.max", "max\n")]),
            None
        );
        assert_eq!(
            mount("v2-ns", "0::/\n", &[("memory.max", "1073741824\n")]),
            limit(1 << 30, "memory.max"),
            "a cgroup namespace shows the process at the root"
        );
        assert_eq!(
            mount(
                "v1",
                "4:memory:/process_api/x\n0::/\n",
                &[
                    ("memory/process_api/x/memory.limit_in_bytes", "268435456\n"),
                    ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
                ]
            ),
            limit(256 << 20, "memory/process_api/x/memory.limit_in_bytes")
        );
        assert_eq!(
            mount(
                "v1-none",
                "4:memory:/process_api/x\n",
                &[(
                    "memory/process_api/x/memory.limit_in_bytes",
                    "9223372036854771712\n"
                )]
            ),
            None
        );
        assert_eq!(mount("none", "4:memory:/x\n", &[]), None);
    }
}
