//! The verdicts on simulated series: each snapshot is a real sampled heap
//! profile of a known heap (every object sampled with Go's and heapprof's
//! probability, weighted as they weight it), read through the builder, so
//! the sampling error the verdict allows for is the one the simulation
//! makes, not one the test assumes. Seeds are fixed.

use heapprof_pprof::{Profile, ValueType};

use super::fit::{judge, SamplingNoise, Verdict};
use super::*;
use crate::testing::profile;

const KIB: i64 = 1 << 10;
const MIB: i64 = 1 << 20;
/// Go's default MemProfileRate and heapprof's default rate.
const RATE: i64 = 512 * KIB;

/// splitmix64: a small seeded generator, uniform in [0, 1).
struct Random(u64);

impl Random {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// How many of `n` objects of `size` bytes are sampled at `rate`, each
    /// with probability p = 1 − e^(−size/rate): the gaps between sampled
    /// objects are geometric, so the cost is in the samples, not the
    /// objects.
    fn sampled(&mut self, n: i64, size: i64, rate: i64) -> i64 {
        let log_miss = -(size as f64) / rate as f64; // ln(1 − p)
        let (mut at, mut count) = (0i64, 0);
        loop {
            at += ((1.0 - self.next()).ln() / log_miss).floor() as i64 + 1;
            if at > n {
                return count;
            }
            count += 1;
        }
    }
}

/// One site's sampled objects of one size.
#[derive(Clone, Copy)]
struct Held {
    site: &'static str,
    sampled: i64,
    size: i64,
}

/// A heap profile of `held` at `second`, values unsampled as Go and
/// heapprof write them (count/p, bytes/p).
fn sampled_profile(second: f64, held: &[Held], rate: i64) -> Profile {
    let values: Vec<(String, Vec<i64>)> = held
        .iter()
        .map(|h| {
            // At rate 1 every allocation is recorded, unscaled.
            let p = if rate <= 1 {
                1.0
            } else {
                1.0 - (-(h.size as f64) / rate as f64).exp()
            };
            let objects = (h.sampled as f64 / p).round() as i64;
            let bytes = (h.sampled as f64 * h.size as f64 / p).round() as i64;
            (format!("main;{}", h.site), vec![objects, bytes])
        })
        .collect();
    let samples: Vec<(&str, &[i64])> = values.iter().map(|(s, v)| (&s[..], &v[..])).collect();
    let mut profile = profile(&["inuse_objects", "inuse_space"], &samples);
    profile.period_type = Some(ValueType::new("space", "bytes"));
    profile.period = rate;
    profile.time_nanos = 1_700_000_000_000_000_000 + (second * 1e9) as i64;
    profile
}

/// The timeline of `snapshots` profiles a second apart, each of the
/// objects `at(second, random)` gives.
fn timeline(snapshots: usize, mut at: impl FnMut(usize) -> Vec<Held>) -> Timeline {
    let mut builder = Builder::new(&Options::default());
    for second in 0..snapshots {
        let profile = sampled_profile(second as f64, &at(second), RATE);
        builder.add(&format!("heap-{second:03}"), &profile).unwrap();
    }
    builder.finish().unwrap()
}

fn site<'t>(timeline: &'t Timeline, name: &str) -> &'t Site {
    timeline.sites.iter().find(|s| s.function == name).unwrap()
}

#[test]
fn the_noise_model_is_the_spread_of_sampled_estimates() {
    // 8 MiB in 1 KiB objects at 512 KiB: relative sd 1/sqrt(16) = 25%.
    let mut random = Random(7);
    let estimates: Vec<f64> = (0..2000)
        .map(|_| {
            let held = Held {
                site: "cache",
                sampled: random.sampled(8 * KIB, KIB, RATE),
                size: KIB,
            };
            sampled_profile(0.0, &[held], RATE).samples[0].values[1] as f64
        })
        .collect();
    let mean = estimates.iter().sum::<f64>() / estimates.len() as f64;
    let sd = (estimates.iter().map(|e| (e - mean).powi(2)).sum::<f64>()
        / (estimates.len() - 1) as f64)
        .sqrt();
    let model = {
        let profile = sampled_profile(
            0.0,
            &[Held {
                site: "cache",
                sampled: 16,
                size: KIB,
            }],
            RATE,
        );
        let noise = SamplingNoise::of(&profile, 1);
        noise.variance(&profile.samples[0], 1).sqrt()
    };
    assert!((mean / (8 * MIB) as f64 - 1.0).abs() < 0.02, "mean {mean}");
    assert!((model / sd - 1.0).abs() < 0.06, "model {model} vs sd {sd}");
    // Objects far larger than the rate are always sampled: no error.
    let big = sampled_profile(
        0.0,
        &[Held {
            site: "big",
            sampled: 4,
            size: 64 * MIB,
        }],
        RATE,
    );
    let noise = SamplingNoise::of(&big, 1);
    assert!(noise.variance(&big.samples[0], 1) < 1.0);
}

#[test]
fn a_flat_site_that_wobbles_at_the_sampling_error_is_never_growing() {
    // 8 MiB of 1 KiB objects, replaced between profiles, so each profile
    // samples it afresh: estimates wobble by 25%.
    for seed in 0..200 {
        let mut random = Random(seed);
        let timeline = timeline(20, |_| {
            vec![Held {
                site: "pool",
                sampled: random.sampled(8 * KIB, KIB, RATE),
                size: KIB,
            }]
        });
        let pool = site(&timeline, "pool");
        assert_eq!(pool.verdict, Verdict::Flat, "seed {seed}: {pool:?}");
    }
}

#[test]
fn a_flat_site_of_long_lived_blocks_is_never_growing() {
    // Blocks that outlive several profiles: a block sampled stays sampled
    // until freed, so successive errors are correlated and the series
    // wanders rather than wobbles. Each profile, a fraction of the 8192
    // blocks is replaced: a sampled one is freed with that probability,
    // and the new ones are sampled afresh.
    for replaced in [1.0, 0.25, 0.125, 1.0 / 24.0] {
        let blocks = 8 * KIB;
        for seed in 0..200 {
            let mut random = Random(seed);
            let mut sampled = random.sampled(blocks, KIB, RATE);
            let timeline = timeline(24, |_| {
                let freed = (0..sampled).filter(|_| random.next() < replaced).count() as i64;
                let new = (blocks as f64 * replaced).round() as i64;
                sampled += random.sampled(new, KIB, RATE) - freed;
                vec![Held {
                    site: "sessions",
                    sampled,
                    size: KIB,
                }]
            });
            let sessions = site(&timeline, "sessions");
            assert_eq!(
                sessions.verdict,
                Verdict::Flat,
                "replaced {replaced}, seed {seed}: {sessions:?}"
            );
        }
    }
}

#[test]
fn a_steady_leak_is_growing_at_its_rate() {
    // 4 MiB a second in 4 KiB objects, each sampled once when allocated
    // and kept: the series' errors are correlated, as in a real leak.
    let rate = 4 * MIB;
    for seed in 0..50 {
        let mut random = Random(seed);
        let mut sampled = 0;
        let timeline = timeline(20, |second| {
            if second > 0 {
                sampled += random.sampled(rate / (4 * KIB), 4 * KIB, RATE);
            }
            vec![Held {
                site: "leak",
                sampled,
                size: 4 * KIB,
            }]
        });
        let leak = site(&timeline, "leak");
        assert_eq!(leak.verdict, Verdict::Growing, "seed {seed}: {leak:?}");
        assert_eq!(timeline.sites[0].function, "leak");
        // 76 MiB of growth is about 152 samples: the slope's error is
        // about 8%; 30% is far out.
        assert!(
            (leak.bytes_per_second / rate as f64 - 1.0).abs() < 0.3,
            "seed {seed}: {} B/s",
            leak.bytes_per_second
        );
        assert!(leak.fit > 0.9, "seed {seed}: fit {}", leak.fit);
    }
}

#[test]
fn a_cache_that_fills_and_holds_is_bounded_and_a_leak_beside_it_ranks_first() {
    // The cache fills 64 MiB over its first 8 s, then replaces entries at
    // the same size; the leak grows by 4 MiB a second throughout (192
    // samples over the series: under the bound on correlated errors, a
    // leak needs a few hundred to stand clear in its last third).
    for seed in 0..50 {
        let mut random = Random(seed);
        let mut leaked = 0;
        let timeline = timeline(24, |second| {
            let cache_bytes = (64 * MIB * second.min(8) as i64) / 8;
            if second > 0 {
                leaked += random.sampled(4 * MIB / KIB, KIB, RATE);
            }
            vec![
                Held {
                    site: "cache",
                    sampled: random.sampled(cache_bytes / KIB, KIB, RATE),
                    size: KIB,
                },
                Held {
                    site: "leak",
                    sampled: leaked,
                    size: KIB,
                },
            ]
        });
        let cache = site(&timeline, "cache");
        assert_eq!(cache.verdict, Verdict::Bounded, "seed {seed}: {cache:?}");
        assert_eq!(timeline.sites[0].function, "leak", "seed {seed}");
        assert_eq!(timeline.sites[0].verdict, Verdict::Growing, "seed {seed}");
    }
}

#[test]
fn a_site_that_is_freed_is_shrinking() {
    let mut random = Random(3);
    let timeline = timeline(12, |second| {
        let held = 64 * MIB - 5 * MIB * second as i64;
        vec![Held {
            site: "drain",
            sampled: random.sampled(held / (4 * KIB), 4 * KIB, RATE),
            size: 4 * KIB,
        }]
    });
    assert_eq!(site(&timeline, "drain").verdict, Verdict::Shrinking);
}

#[test]
fn exact_series_are_judged_by_their_own_scatter() {
    let seconds: Vec<f64> = (0..9).map(f64::from).collect();
    let no_error = [0.0; 9];
    // Without sampling error a constant is flat and any steady rise is one.
    let same = judge(&seconds, &[100; 9], &no_error);
    assert_eq!(
        (same.verdict, same.slope, same.r_squared),
        (Verdict::Flat, 0.0, 1.0)
    );
    let steady: Vec<i64> = (0..9).map(|i| 1000 + 10 * i).collect();
    let judged = judge(&seconds, &steady, &no_error);
    assert_eq!(judged.verdict, Verdict::Growing);
    assert!((judged.slope - 10.0).abs() < 1e-9);
    // A workload that swings (no sampling error, but its own ups and
    // downs) is not growing because it ended on an up.
    let swings = [100, 900, 100, 900, 100, 900, 100, 900, 900];
    assert_eq!(judge(&seconds, &swings, &no_error).verdict, Verdict::Flat);
    // Rise, then hold: bounded.
    let plateau = [0, 500, 1000, 1000, 1000, 1000, 1000, 1000, 1000];
    assert_eq!(
        judge(&seconds, &plateau, &no_error).verdict,
        Verdict::Bounded
    );
    // Two profiles: no late part to judge; a rise is growing.
    let two = judge(&seconds[..2], &[100, 200], &no_error[..2]);
    assert_eq!(two.verdict, Verdict::Growing);
}

#[test]
fn snapshots_are_ordered_by_time_and_peaks_kept_apart() {
    let at = |second: f64, bytes: i64| {
        let mut p = sampled_profile(
            second,
            &[Held {
                site: "leak",
                sampled: bytes,
                size: 1,
            }],
            1,
        );
        p.comments.push(format!(
            "heapprof: memory rss_bytes={} live_bytes={} profiler_bytes=9 allocator=glibc",
            bytes * 3,
            bytes * 2
        ));
        p
    };
    let mut builder = Builder::new(&Options::default());
    builder.add("b", &at(2.0, 300)).unwrap();
    let mut peak = at(1.5, 900);
    peak.comments
        .push("heapprof: in-use profile at the peak of live heap: 1800 bytes".into());
    assert!(is_peak(&peak));
    builder.add("heap.peak", &peak).unwrap();
    builder.add("a2", &at(1.0, 200)).unwrap();
    builder.add("a1", &at(1.0, 100)).unwrap();
    let timeline = builder.finish().unwrap();
    let files: Vec<&str> = timeline.snapshots.iter().map(|s| &s.file[..]).collect();
    assert_eq!(files, ["a1", "a2", "b"]);
    let leak = site(&timeline, "leak");
    assert_eq!(leak.inuse, [100, 200, 300]);
    assert_eq!(leak.peak_inuse, [900]);
    let b = &timeline.snapshots[2];
    assert_eq!((b.rss_bytes, b.live_bytes), (Some(900), Some(600)));
    assert_eq!(b.classes[2], ("profiler_bytes".to_owned(), 9));
    assert_eq!(b.classes.len(), 3);
    let peak = &timeline.peaks[0];
    assert_eq!(
        (peak.peak, peak.rss_bytes, peak.live_bytes),
        (true, None, Some(1800))
    );
}

#[test]
fn profiles_of_another_sample_type_are_left_out_or_refused() {
    let heap = |second: f64| {
        sampled_profile(
            second,
            &[Held {
                site: "leak",
                sampled: 10,
                size: 1,
            }],
            1,
        )
    };
    let mut cpu = profile(&["samples", "cpu"], &[("main;spin", &[3, 30])]);
    cpu.time_nanos = heap(0.0).time_nanos + 1;
    // Without a sample type, the series is of the type of the most
    // profiles, whichever comes first.
    let mut builder = Builder::new(&Options::default());
    builder.add("cpu.pprof", &cpu).unwrap();
    builder.add("heap-1", &heap(1.0)).unwrap();
    builder.add("heap-2", &heap(2.0)).unwrap();
    let mut timeless = heap(3.0);
    timeless.time_nanos = 0;
    assert_eq!(
        builder.add("old", &timeless).unwrap_err().to_string(),
        "old: the profile has no time (time_nanos is 0), so it has no place in a series"
    );
    assert_eq!(builder.len(), 3);
    let timeline = builder.finish().unwrap();
    assert_eq!(timeline.sample_type, ValueType::new("inuse_space", "bytes"));
    assert_eq!(timeline.snapshots.len(), 2);
    assert_eq!(
        timeline.skipped,
        [Skipped {
            file: "cpu.pprof".into(),
            reason: "cpu.pprof: of sample type cpu/bytes, not the series' inuse_space/bytes (of more profiles)".into()
        }]
    );
    // Asked for one, a profile without it is refused, naming the file.
    let options = Options {
        selection: Selection {
            sample_index: Some("inuse_space".into()),
            ..Selection::default()
        },
        ..Options::default()
    };
    let mut builder = Builder::new(&options);
    builder.add("heap-1", &heap(1.0)).unwrap();
    assert_eq!(
        builder.add("cpu.pprof", &cpu).unwrap_err().to_string(),
        "cpu.pprof: no sample type inuse_space to join the series with (it has samples/bytes cpu/bytes)"
    );
    assert_eq!(builder.finish().unwrap().snapshots.len(), 1);
    assert_eq!(
        Builder::new(&Options::default())
            .finish()
            .unwrap_err()
            .to_string(),
        "no profiles to make a timeline of"
    );
}

#[test]
fn sites_at_each_granularity() {
    let mut p = profile(
        &["inuse_space"],
        &[
            ("main;a;alloc", &[10]),
            ("main;b;alloc", &[20]),
            ("main;b", &[5]),
        ],
    );
    p.time_nanos = 1;
    let names = |granularity| {
        let mut builder = Builder::new(&Options {
            granularity,
            ..Options::default()
        });
        builder.add("p", &p).unwrap();
        let timeline = builder.finish().unwrap();
        let mut sites: Vec<(String, i64)> = timeline
            .sites
            .iter()
            .map(|s| (s.function.clone(), s.last_inuse_bytes))
            .collect();
        sites.sort();
        sites
    };
    let owned = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
        v.iter().map(|&(s, n)| (s.to_owned(), n)).collect()
    };
    assert_eq!(
        names(Granularity::Function),
        owned(&[("alloc", 30), ("b", 5)])
    );
    assert_eq!(
        names(Granularity::File),
        owned(&[("alloc.rs", 30), ("b.rs", 5)])
    );
    assert_eq!(
        names(Granularity::Stack),
        owned(&[("main;a;alloc", 10), ("main;b", 5), ("main;b;alloc", 20)])
    );
}

#[test]
fn text_and_json() {
    let mut random = Random(1);
    let mut leaked = 0;
    let timeline = timeline(6, |_| {
        leaked += random.sampled(4 * KIB, 4 * KIB, RATE);
        vec![Held {
            site: "leak",
            sampled: leaked,
            size: 4 * KIB,
        }]
    });
    let mut text = Vec::new();
    write(&WriteOptions::default(), &timeline, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.starts_with("Type: inuse_space\nSeries: 6 profiles over 5.0s\n"),
        "{text}"
    );
    let ranking = text.lines().last().unwrap();
    assert!(ranking.starts_with("growing "), "{text}");
    assert!(ranking.ends_with("  leak"), "{text}");
    assert_eq!(super::render::sparkline(&[0, 1, 2, 4, 8]), "▁▂▃▅█");
    let mut json = Vec::new();
    let options = WriteOptions {
        format: Format::Json,
        ..WriteOptions::default()
    };
    write(&options, &timeline, &mut json).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["snapshots"].as_array().unwrap().len(), 6);
    assert_eq!(json["snapshots"][0]["file"], "heap-000");
    assert!(json["snapshots"][0]["rss_bytes"].is_null());
    let leak = &json["sites"][0];
    assert_eq!(leak["function"], "leak");
    assert_eq!(leak["verdict"], "growing");
    assert!(leak["bytes_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(leak["inuse"].as_array().unwrap().len(), 6);
}
