//! How fast, and in how much memory, `heapprof timeline` reads a long
//! series: 500 heap dumps of 10,000 buckets each (a service's profile:
//! 3,000 distinct stacks 10-30 deep over 6,000 locations and 2,000
//! functions, several object sizes per stack; a few sites leak, the rest
//! wobble), written with heapprof-pprof's writer, then read by the built
//! `heapprof timeline` as a whole process, the path a user takes.
//!
//! Reports the wall time and the peak RSS (wait4's maxrss) of the timeline
//! over 100 and over 500 dumps, beside `heapprof info` of one dump (the
//! memory of one profile) and the time to decode all 500 on one thread.
//! The figures it protects: 500 dumps in under 5 s on two cores, and peak
//! memory that does not grow with the series' length beyond its figures.
//!
//! Run: cargo bench -p heapprof-cli --bench timeline

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use heapprof_pprof::{Function, Label, LabelValue, Line, Location, Profile, Sample, ValueType};

const DUMPS: usize = 500;
const BUCKETS: usize = 10_000;
const STACKS: usize = 3_000;
const LOCATIONS: usize = 6_000;
const FUNCTIONS: usize = 2_000;
/// Dumps a minute apart: the series spans eight hours.
const INTERVAL_NANOS: i64 = 60_000_000_000;

/// Deterministic xorshift: the same series every run.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

/// The profile every dump shares: functions, locations, and the buckets'
/// stacks and sizes; [`dump`] gives each its values and time.
fn base_profile() -> Profile {
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let functions = (0..FUNCTIONS)
        .map(|i| Function {
            name: format!("service::module{}::function_{i}", i % 61),
            filename: format!("src/module{}.rs", i % 61),
            ..Function::default()
        })
        .collect();
    let locations = (0..LOCATIONS)
        .map(|i| Location {
            address: 0x10_0000 + i as u64 * 16,
            lines: vec![Line {
                function: (i * 7) % FUNCTIONS,
                line: 10 + (i % 50) as i64,
            }],
            ..Location::default()
        })
        .collect();
    let stacks: Vec<Vec<usize>> = (0..STACKS)
        .map(|_| {
            let depth = 10 + random.below(21);
            let mut stack = vec![random.below(16)];
            for _ in 1..depth {
                let caller = *stack.last().unwrap();
                stack.push((caller * 5 + 1 + random.below(5)) % LOCATIONS);
            }
            stack.reverse();
            stack
        })
        .collect();
    let samples = (0..BUCKETS)
        .map(|i| {
            let size = 32i64 << (i % 10);
            Sample {
                locations: stacks[i % STACKS].clone(),
                values: vec![0; 4],
                labels: vec![Label {
                    key: "bytes".into(),
                    value: LabelValue::Num {
                        value: size,
                        unit: String::new(),
                    },
                }],
            }
        })
        .collect();
    Profile {
        sample_types: ValueType::go_heap(),
        samples,
        locations,
        functions,
        period_type: Some(ValueType::new("space", "bytes")),
        period: 524_288,
        ..Profile::default()
    }
}

/// The buckets that leak: one in 500, each of 16 KiB objects, four more
/// objects a dump (64 KiB a minute, 31 MiB over the series).
fn leaks(bucket: usize) -> bool {
    bucket % 500 == 9
}

/// Dump `n` of the series: every bucket holds a wobbling number of
/// objects, but the leaking ones hold more each dump.
fn dump(base: &Profile, n: usize) -> Vec<u8> {
    let mut profile = base.clone();
    let mut random = Random(0x2545_F491_4F6C_DD1D ^ (n as u64 + 1));
    for (i, sample) in profile.samples.iter_mut().enumerate() {
        let size = 32i64 << (i % 10);
        let held = if leaks(i) {
            8 + 4 * n as i64
        } else {
            4 + random.below(4) as i64
        };
        sample.values = vec![held * 2, held * 2 * size, held, held * size];
    }
    profile.time_nanos = 1_750_000_000_000_000_000 + n as i64 * INTERVAL_NANOS;
    profile.encode()
}

/// Writes the series into `dir` on two threads (once; kept between runs).
fn write_series(dir: &Path) -> Vec<PathBuf> {
    let paths: Vec<PathBuf> = (0..DUMPS)
        .map(|n| dir.join(format!("heap-{n:04}.pb.gz")))
        .collect();
    if paths.iter().all(|p| p.is_file()) {
        return paths;
    }
    let base = base_profile();
    std::thread::scope(|scope| {
        for half in 0..2 {
            let (base, paths) = (&base, &paths);
            scope.spawn(move || {
                for n in (half..DUMPS).step_by(2) {
                    std::fs::write(&paths[n], dump(base, n)).unwrap();
                }
            });
        }
    });
    paths
}

/// Runs heapprof with `args`, output discarded: wall time, CPU seconds
/// (user and system) and peak RSS.
fn measure(args: &[&str]) -> (Duration, f64, u64) {
    let start = Instant::now();
    // Waited for below by wait4, which std cannot do, for its rusage.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_heapprof"))
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("run heapprof");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; both pointers are to
    // live locals of the right types.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "heapprof {args:?} failed"
    );
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    // Linux gives maxrss in KiB.
    (elapsed, cpu, usage.ru_maxrss as u64 * 1024)
}

/// CPU time of this thread, in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a live timespec for the call to fill in.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn main() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("timeline-bench-2");
    let first = dir.join("first-100");
    std::fs::create_dir_all(&first).unwrap();
    let start = Instant::now();
    let paths = write_series(&dir);
    let bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    println!(
        "series: {DUMPS} dumps of {BUCKETS} buckets, {:.1} MB gzipped in all (ready in {:.1} s)",
        bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    for (n, path) in paths.iter().enumerate().take(100) {
        let link = first.join(path.file_name().unwrap());
        if !link.exists() {
            std::os::unix::fs::symlink(path, link).unwrap_or_else(|e| panic!("symlink {n}: {e}"));
        }
    }
    // Where a dump's time goes, in this thread's CPU time (the machine may
    // be shared): reading, decoding, reducing, freeing the profile.
    let mut spent = [0.0f64; 4];
    let options = heapprof_report::timeline::Options::default();
    for path in &paths[..100] {
        let mut clock = thread_cpu_seconds();
        let mut lap = |phase: usize| {
            let now = thread_cpu_seconds();
            spent[phase] += now - clock;
            clock = now;
        };
        let bytes = std::fs::read(path).unwrap();
        lap(0);
        let profile = Profile::decode(&bytes).unwrap();
        lap(1);
        let reduced = heapprof_report::timeline::reduce(&options, "dump", &profile).unwrap();
        lap(2);
        drop((profile, bytes));
        lap(3);
        std::hint::black_box(reduced);
    }
    println!(
        "per dump, CPU ms (mean of 100, one thread, in process): read {:.1}, decode {:.1}, reduce {:.1}, free {:.1}",
        spent[0] * 10.0,
        spent[1] * 10.0,
        spent[2] * 10.0,
        spent[3] * 10.0
    );
    let one = paths[0].to_str().unwrap();
    let (time, cpu, rss) = measure(&["info", one]);
    println!(
        "heapprof info (one dump):         {:>6.2} s, CPU {:>6.2} s, peak RSS {:>6.1} MiB",
        time.as_secs_f64(),
        cpu,
        mib(rss)
    );
    let series = dir.to_str().unwrap();
    let hundred = first.to_str().unwrap();
    // The answer, before its speed: the leaking sites rank first.
    let out = Command::new(env!("CARGO_BIN_EXE_heapprof"))
        .args(["timeline", "--json", "-n", "30", series])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let growing = json["sites"]
        .as_array()
        .unwrap()
        .iter()
        .take_while(|s| s["verdict"] == "growing")
        .count();
    let base = base_profile();
    let leaking: std::collections::HashSet<&str> = (0..BUCKETS)
        .filter(|&i| leaks(i))
        .map(|i| {
            let leaf = &base.locations[base.samples[i].locations[0]];
            base.functions[leaf.lines[0].function].name.as_str()
        })
        .collect();
    let first: std::collections::HashSet<&str> = json["sites"]
        .as_array()
        .unwrap()
        .iter()
        .take(growing)
        .map(|s| s["function"].as_str().unwrap())
        .collect();
    assert_eq!(first, leaking, "the growing sites are the leaking ones");
    println!(
        "the {growing} growing sites, ranked first, are the {} leaking leaf functions",
        leaking.len()
    );
    for (what, args) in [
        ("timeline, 100 dumps", vec!["timeline", hundred]),
        ("timeline, 500 dumps", vec!["timeline", series]),
        ("timeline --json, 500", vec!["timeline", "--json", series]),
    ] {
        let (time, cpu, rss) = measure(&args);
        println!(
            "heapprof {what:<24} {:>6.2} s, CPU {:>6.2} s, peak RSS {:>6.1} MiB",
            time.as_secs_f64(),
            cpu,
            mib(rss)
        );
    }
}
