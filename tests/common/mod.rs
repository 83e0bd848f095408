//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use heapprof::pprof::Profile;

/// Values of the four heap sample types, summed over the samples whose leaf
/// function is `site` (a function name's last path segment) and, if given,
/// whose object size is `size`.
pub fn site_totals(profile: &Profile, site: &str, size: Option<i64>) -> [i64; 4] {
    let mut totals = [0i64; 4];
    for sample in &profile.samples {
        let Some(&leaf) = sample.locations.first() else {
            continue;
        };
        let Some(line) = profile.locations[leaf].lines.first() else {
            continue;
        };
        let name = &profile.functions[line.function].name;
        if !(name.ends_with(&format!("::{site}")) || name == site) {
            continue;
        }
        if let Some(size) = size {
            if object_size(sample) != Some(size) {
                continue;
            }
        }
        for (total, value) in totals.iter_mut().zip(&sample.values) {
            *total += value;
        }
    }
    totals
}

/// The `bytes` label of a sample.
pub fn object_size(sample: &heapprof::pprof::Sample) -> Option<i64> {
    sample
        .labels
        .iter()
        .find_map(|l| match (&l.key[..], &l.value) {
            ("bytes", heapprof::pprof::LabelValue::Num { value, .. }) => Some(*value),
            _ => None,
        })
}

/// A sample's string label `key` (the labels of `heapprof::with_labels`).
pub fn str_label<'a>(sample: &'a heapprof::pprof::Sample, key: &str) -> Option<&'a str> {
    sample.labels.iter().find_map(|l| match &l.value {
        heapprof::pprof::LabelValue::Str(value) if l.key == key => Some(&value[..]),
        _ => None,
    })
}

/// A fresh directory for one test's files.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs the real `go tool pprof` with `args`. Fails loudly if Go is missing:
/// these tests are the proof of compatibility and must not be skipped
/// (`.ci/run` installs golang-go).
pub fn go_pprof(args: &[&str]) -> Output {
    let output = Command::new("go")
        .arg("tool")
        .arg("pprof")
        .args(args)
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `go tool pprof` ({e}): install Go (Debian: apt-get install golang-go)"
            )
        });
    output
}

/// `go tool pprof` output, asserting success.
pub fn go_pprof_ok(args: &[&str]) -> String {
    let output = go_pprof(args);
    assert!(
        output.status.success(),
        "go tool pprof {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// The `flat` and `cum` columns of the `-top` row for the function whose
/// name ends with `site`, in the units printed (use `-unit=B` for bytes).
pub fn top_row(top: &str, site: &str) -> Option<(i64, i64)> {
    top.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 {
            return None;
        }
        let name = fields[5];
        if !(name.ends_with(&format!("::{site}")) || name == site) {
            return None;
        }
        let number = |s: &str| {
            s.trim_end_matches('B')
                .parse::<i64>()
                .unwrap_or_else(|_| panic!("{s:?} is not a plain number: run -top with -unit=B"))
        };
        Some((number(fields[0]), number(fields[3])))
    })
}

/// How many samples a profile says it dropped (its heapprof comment), or 0.
pub fn dropped_samples(profile: &Profile) -> u64 {
    profile
        .comments
        .iter()
        .find_map(|c| {
            c.strip_prefix("heapprof: ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Asserts that the profile's comments name the unwinder that walked its
/// stacks (`stacks walked ...`, as heapprof writes it).
pub fn assert_walked_by(profile: &Profile, unwinder: &str) {
    let expected = format!("stacks walked {unwinder}");
    assert!(
        profile.comments.iter().any(|c| c.contains(&expected)),
        "not {expected}: {:?}",
        profile.comments
    );
}

/// What must hold in any heap profile, however threads interleaved: every
/// value non-negative, and in-use never above allocated.
pub fn assert_consistent(profile: &Profile) {
    for sample in &profile.samples {
        let [alloc_objects, alloc_space, inuse_objects, inuse_space] = sample.values[..] else {
            panic!("four values expected: {sample:?}")
        };
        assert!(sample.values.iter().all(|&v| v >= 0), "{sample:?}");
        assert!(
            inuse_objects <= alloc_objects && inuse_space <= alloc_space,
            "{sample:?}"
        );
    }
}

/// Runs the ignored test `name` of the current test binary in a fresh
/// process with `env` set, and returns what it printed and how it exited.
pub fn run_child_test(name: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command.args([
        "--ignored",
        "--exact",
        name,
        "--test-threads=1",
        "--nocapture",
    ]);
    command.env_remove("HEAPPROF");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run child test")
}

/// [`run_child_test`], asserting that the child passed.
pub fn run_child_test_ok(name: &str, env: &[(&str, &str)]) -> Output {
    let out = run_child_test(name, env);
    assert!(
        out.status.success(),
        "child test {name} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The lines heapprof wrote to a child's stderr.
pub fn heapprof_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("heapprof:"))
        .map(str::to_owned)
        .collect()
}

/// The program's steady heap in the tests of heapprof's own work: 2 MiB in
/// 32 blocks.
#[inline(never)]
pub fn steady_heap() -> Vec<Vec<u8>> {
    (0..32).map(|i| vec![i as u8; 64 << 10]).collect()
}

/// Runs `f` while another thread of the program allocates and frees 64 KiB
/// blocks, so that its checkpoints of the peak (at least one every 256 KiB
/// it allocates, each summing every thread's counters) land while `f`
/// waits on heapprof's threads. The thread never holds more than one block.
pub fn while_churning<R>(f: impl FnOnce() -> R) -> R {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let churn = scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..16 {
                    drop(std::hint::black_box(Vec::<u8>::with_capacity(64 << 10)));
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        let result = f();
        stop.store(true, Ordering::Relaxed);
        churn.join().expect("churn thread");
        result
    })
}

/// The live bytes a peak profile says it was taken at (its heapprof
/// comment, in the pprof or the `?debug=1` text form).
pub fn peak_comment(comments: impl IntoIterator<Item = impl AsRef<str>>) -> Option<u64> {
    comments.into_iter().find_map(|c| {
        c.as_ref()
            .trim_start_matches("# ")
            .strip_prefix("heapprof: in-use profile at the peak of live heap: ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

/// Asserts that heapprof's work between `before` and `after` (its threads
/// writing profiles while the program held a steady heap) moved neither the
/// peak (`stats()` and the peak profile's, `recorded`) nor the live bytes:
/// the program's true peak is its steady heap plus a churned block and the
/// client's buffers, well within 1 MiB of what was live before.
pub fn assert_only_the_program_counts(
    before: heapprof::Stats,
    after: heapprof::Stats,
    recorded: u64,
) {
    let figures = format!(
        "live bytes {} before, {} after; peak {} before, {} after; peak profile at {recorded}",
        before.live_bytes, after.live_bytes, before.peak_live_bytes, after.peak_live_bytes
    );
    println!("{figures}");
    let bound = before.peak_live_bytes.max(before.live_bytes) + (1 << 20);
    assert!(after.peak_live_bytes <= bound, "the peak moved: {figures}");
    assert!(recorded <= bound, "the peak profile moved: {figures}");
    assert!(
        after.live_bytes.abs_diff(before.live_bytes) <= 64 << 10,
        "the live bytes moved: {figures}"
    );
}
