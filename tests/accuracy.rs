//! Estimates against known truth. A workload allocates known totals in known
//! sizes from known functions; each run happens in a child process (this test
//! binary re-executed) so that its profile holds that run alone.
//!
//! * At rate 1 every figure is exact.
//! * At the default 512 KiB, each site's estimate is within 4 standard
//!   deviations of the truth in every run and the mean over runs within
//!   4 sd/sqrt(runs), where for n objects of s bytes sampled with
//!   p = 1 - exp(-s/R), sd = s * sqrt(n (1-p) / p) (a binomial count of
//!   samples weighted by 1/p). Seeds are fixed, so the test is deterministic.
//! * Blocks that were all freed show zero in use, exactly.

mod common;

use std::hint::black_box;
use std::process::Command;

use common::{scratch_dir, site_totals};
use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// A workload site: `count` objects of `size` bytes, kept or freed.
struct Site {
    name: &'static str,
    count: usize,
    size: usize,
    kept: bool,
}

const SCALE_ENV: &str = "HEAPPROF_ACCURACY_SCALE";

fn sites(scale: usize) -> [Site; 5] {
    [
        Site {
            name: "small_kept",
            count: 64 * 1024 / scale,
            size: 1024,
            kept: true,
        },
        Site {
            name: "small_freed",
            count: 256 * 1024 / scale,
            size: 256,
            kept: false,
        },
        Site {
            name: "large_kept",
            count: 8,
            size: 3 << 20,
            kept: true,
        },
        Site {
            name: "large_freed",
            count: 16,
            size: 1 << 20,
            kept: false,
        },
        // Half the default rate: whether each is sampled depends on how
        // far the countdown had left to go, not on its own size alone.
        Site {
            name: "medium_freed",
            count: 512 / scale.min(64),
            size: 256 << 10,
            kept: false,
        },
    ]
}

#[inline(never)]
fn small_kept(into: &mut Vec<Box<[u8]>>, count: usize, size: usize) {
    for i in 0..count {
        into.push(vec![i as u8; size].into_boxed_slice());
    }
}

#[inline(never)]
fn small_freed(count: usize, size: usize) {
    for i in 0..count {
        black_box(vec![i as u8; size]);
    }
}

#[inline(never)]
fn large_kept(into: &mut Vec<Box<[u8]>>, count: usize, size: usize) {
    for i in 0..count {
        into.push(vec![i as u8; size].into_boxed_slice());
    }
}

#[inline(never)]
fn large_freed(count: usize, size: usize) {
    for i in 0..count {
        black_box(vec![i as u8; size]);
    }
}

#[inline(never)]
fn medium_freed(count: usize, size: usize) {
    for i in 0..count {
        black_box(vec![i as u8; size]);
    }
}

/// The child's side: run the workload under the rate and seed in the
/// environment and write the profile. Ignored in normal runs; the tests
/// below run it in a fresh process.
#[test]
#[ignore = "helper run in a child process by the accuracy tests"]
fn accuracy_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    heapprof::set_sample_seed(var("HEAPPROF_ACCURACY_SEED").parse().unwrap());
    heapprof::set_sample_rate(var("HEAPPROF_ACCURACY_RATE").parse().unwrap());
    let [a, b, c, d, e] = sites(var(SCALE_ENV).parse().unwrap());
    let mut kept = Vec::with_capacity(a.count + c.count);
    small_kept(&mut kept, a.count, a.size);
    small_freed(b.count, b.size);
    large_kept(&mut kept, c.count, c.size);
    large_freed(d.count, d.size);
    medium_freed(e.count, e.size);
    heapprof::write_heap_profile(var("HEAPPROF_ACCURACY_OUT")).unwrap();
    drop(kept);
}

fn run_child(rate: u64, seed: u64, scale: usize, dir: &std::path::Path) -> Profile {
    let out = dir.join(format!("rate{rate}-seed{seed}.pb.gz"));
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "accuracy_child",
            "--test-threads=1",
            "--quiet",
        ])
        .env("HEAPPROF_ACCURACY_SEED", seed.to_string())
        .env("HEAPPROF_ACCURACY_RATE", rate.to_string())
        .env(SCALE_ENV, scale.to_string())
        .env("HEAPPROF_ACCURACY_OUT", &out)
        .status()
        .expect("run child");
    assert!(status.success(), "child for rate {rate} seed {seed} failed");
    Profile::decode(&std::fs::read(&out).unwrap()).unwrap()
}

#[test]
fn every_figure_is_exact_at_rate_1() {
    let dir = scratch_dir("accuracy-exact");
    // A 64th of the sizes: recording every allocation is slow in debug builds.
    let scale = 64;
    let profile = run_child(1, 1, scale, &dir);
    for site in sites(scale) {
        let (n, bytes) = (site.count as i64, (site.count * site.size) as i64);
        let in_use = if site.kept { [n, bytes] } else { [0, 0] };
        assert_eq!(
            site_totals(&profile, site.name, Some(site.size as i64)),
            [n, bytes, in_use[0], in_use[1]],
            "{}",
            site.name
        );
    }
}

#[test]
fn estimates_are_unbiased_within_sampling_error_at_512k() {
    let dir = scratch_dir("accuracy-sampled");
    let rate = heapprof::DEFAULT_RATE;
    let seeds = [11u64, 22, 33, 44, 55, 66];
    let profiles: Vec<Profile> = seeds
        .iter()
        .map(|&seed| run_child(rate, seed, 1, &dir))
        .collect();
    let mut report = String::new();
    for site in sites(1) {
        let (n, s) = (site.count as f64, site.size as f64);
        let p = 1.0 - (-s / rate as f64).exp();
        let sd_bytes = s * (n * (1.0 - p) / p).sqrt();
        let sd_objects = sd_bytes / s;
        let truth_bytes = n * s;
        let mut sum = [0.0f64; 4];
        for (seed, profile) in seeds.iter().zip(&profiles) {
            let [objects, bytes, inuse_objects, inuse_bytes] =
                site_totals(profile, site.name, Some(site.size as i64));
            report += &format!(
                "{} seed {seed}: {bytes} of {truth_bytes} bytes\n",
                site.name
            );
            assert!(
                (bytes as f64 - truth_bytes).abs() <= 4.0 * sd_bytes + s,
                "{}: seed {seed} estimated {bytes} bytes, truth {truth_bytes}, sd {sd_bytes:.0}",
                site.name
            );
            assert!(
                (objects as f64 - n).abs() <= 4.0 * sd_objects + 1.0,
                "{}: {objects} objects",
                site.name
            );
            if site.kept {
                assert_eq!(
                    [inuse_objects, inuse_bytes],
                    [objects, bytes],
                    "{}: kept blocks are in use",
                    site.name
                );
            } else {
                assert_eq!(
                    [inuse_objects, inuse_bytes],
                    [0, 0],
                    "{}: freed blocks are not in use",
                    site.name
                );
            }
            for (total, value) in sum
                .iter_mut()
                .zip([objects, bytes, inuse_objects, inuse_bytes])
            {
                *total += value as f64;
            }
        }
        let runs = seeds.len() as f64;
        let mean_bytes = sum[1] / runs;
        assert!(
            (mean_bytes - truth_bytes).abs() <= 4.0 * sd_bytes / runs.sqrt(),
            "{}: mean {mean_bytes:.0} over {runs} runs, truth {truth_bytes}, sd of mean {:.0}\n{report}",
            site.name,
            sd_bytes / runs.sqrt()
        );
    }
    println!("{report}");
}
