//! The leak ranking's statistics: a site's sampling error in one profile,
//! the straight-line fit of its series, the verdict, and the rank.
//!
//! # The verdict, and how it allows for the sampling error
//!
//! A heap profile is sampled: at rate R (the profile's `period`, Go's
//! `MemProfileRate`, heapprof's `rate`) an allocation of s bytes is
//! recorded with probability p = 1 − e^(−s/R) and counted as s/p bytes.
//! A site's estimate of B bytes in objects of s bytes therefore has
//! variance B·s·(1−p)/p = B·s/(e^(s/R) − 1), which is B·R for small objects
//! and falls to 0 for objects much larger than R (always sampled); in
//! objects, B/s·(1−p)/p. [`SamplingNoise`] sums that over a site's samples,
//! with each sample's object size (from the paired `*_space` and
//! `*_objects` values, or else Go's and heapprof's `bytes` label), or B·R
//! when the size is unknown, which bounds it. A profile whose period is 1
//! (every allocation recorded), or whose period is not in bytes of space,
//! has no sampling error.
//!
//! [`judge`] splits the series into thirds (by snapshot order) and takes
//! each third's level (its mean in-use) and the noise of that level. A
//! block sampled once stays sampled while it lives, so the errors of
//! successive profiles are correlated, by an amount that depends on how
//! long the site's blocks live; the third's scatter around its own
//! straight line tells how much: m points with sampling error σ (the mean
//! of their standard errors) and correlation ρ scatter by σ²(1 − ρ), and
//! their mean has variance σ²(1 + (m − 1)ρ)/m. So the level's variance is
//! σ² − (m − 1)/m·S² for a scatter S² below σ² (σ² when the points do not
//! scatter at all: one error shared by all), and S²/m when they scatter
//! more than sampling explains (the program's own ups and downs, taken as
//! independent). It is never below σ²/m, the noise of independent
//! samples.
//!
//! * The **rise** is the last third's level minus the first's, and its
//!   noise the two levels' noises combined (errors of one site at two
//!   moments are never negatively correlated, so this bounds it). A rise
//!   within [`RISE_Z`] (4) noises of zero is **flat**: a site whose sampled
//!   estimate wobbles is never called growing.
//! * A fall of more than 4 noises is **shrinking**.
//! * A rise of more than 4 noises is **growing** when it does not level
//!   off: the pace from the middle third to the last is at least
//!   [`LATE_PACE`] (half) of the whole series' pace, and that late rise is
//!   itself more than [`LATE_Z`] (2) noises. Otherwise it rose and
//!   stopped (or slowed to under half its pace): **bounded**, as a cache
//!   that fills and then holds.
//!
//! With two profiles there is no middle third: a rise is called growing.
//! The growth figure is the least-squares slope over every snapshot
//! (`bytes_per_second`), and `fit` its R²; [`rank`] puts growing sites
//! first, by slope × fit (steady growth before erratic growth), then
//! bounded, flat and shrinking. The bound on the noise is conservative: a
//! slow leak in a site that holds much more than it leaks may be called
//! flat or bounded until its rise stands clear of the site's sampling
//! error; a wobble is not called growing.

use heapprof_pprof::{LabelValue, Profile, Sample};

use super::Site;

/// How many noises a rise over the series must exceed to be a rise.
pub const RISE_Z: f64 = 4.0;
/// How many noises the late rise (middle third to last) of a growing site
/// must exceed.
pub const LATE_Z: f64 = 2.0;
/// The fraction of the whole series' pace that a growing site keeps in its
/// late part.
pub const LATE_PACE: f64 = 0.5;
/// The significance of a change in profiles without sampling error or
/// scatter (instead of an infinite one).
pub const EXACT_SIGNIFICANCE: f64 = 1e9;

/// What a site's series does, allowing for the sampling error (see the
/// module's documentation for the rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Steady growth that does not level off: a leak, or a heap that grows
    /// with its load.
    Growing,
    /// Rose by more than the noise, then levelled off, as a cache does.
    Bounded,
    /// Fell by more than the noise.
    Shrinking,
    /// No change that stands clear of the noise.
    Flat,
}

impl Verdict {
    /// `growing`, `bounded`, `shrinking` or `flat`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Growing => "growing",
            Verdict::Bounded => "bounded",
            Verdict::Shrinking => "shrinking",
            Verdict::Flat => "flat",
        }
    }

    /// Its place in the ranking: growing first.
    fn rank(self) -> u8 {
        match self {
            Verdict::Growing => 0,
            Verdict::Bounded => 1,
            Verdict::Flat => 2,
            Verdict::Shrinking => 3,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one profile's values of one sample type are sampled.
#[derive(Clone, Copy, Debug)]
pub struct SamplingNoise {
    /// The sampling rate in bytes; `None` for values without sampling error.
    rate: Option<f64>,
    /// Whether the values are counts of objects (else bytes).
    objects: bool,
    /// The index of the paired sample type (`inuse_objects` for
    /// `inuse_space` and back), which gives each sample's object size.
    paired: Option<usize>,
}

impl SamplingNoise {
    /// The sampling of `profile`'s values at sample type `index`.
    pub fn of(profile: &Profile, index: usize) -> Self {
        let none = SamplingNoise {
            rate: None,
            objects: false,
            paired: None,
        };
        let sampled_by_space = profile
            .period_type
            .as_ref()
            .is_some_and(|t| t.r#type == "space" && t.unit == "bytes");
        if !sampled_by_space || profile.period <= 1 {
            return none;
        }
        let sample_type = &profile.sample_types[index];
        let (objects, partner) = if let Some(kind) = sample_type.r#type.strip_suffix("_space") {
            (false, format!("{kind}_objects"))
        } else if let Some(kind) = sample_type.r#type.strip_suffix("_objects") {
            (true, format!("{kind}_space"))
        } else {
            return none;
        };
        SamplingNoise {
            rate: Some(profile.period as f64),
            objects,
            paired: profile
                .sample_types
                .iter()
                .position(|t| t.r#type == partner),
        }
    }

    /// The variance of `sample`'s value at sample type `index`.
    pub fn variance(&self, sample: &Sample, index: usize) -> f64 {
        let Some(rate) = self.rate else {
            return 0.0;
        };
        let value = (sample.values[index] as f64).abs();
        let size = self
            .paired
            .and_then(|paired| {
                let (space, objects) = if self.objects {
                    (sample.values[paired], sample.values[index])
                } else {
                    (sample.values[index], sample.values[paired])
                };
                (objects != 0 && space != 0).then(|| (space as f64 / objects as f64).abs())
            })
            .or_else(|| object_size_label(sample).map(|s| s as f64));
        match size {
            // Var = N·w²·(1−p)/p for N objects of weight w (s bytes, or 1
            // object), p = 1 − e^(−s/R): in bytes B·s/(e^(s/R) − 1).
            Some(size) => {
                let odds = (size / rate).exp_m1();
                if self.objects {
                    value / odds
                } else {
                    value * size / odds
                }
            }
            // The bound: s/(e^(s/R) − 1) < R for every s; for objects, as
            // if each were of one byte.
            None => value * rate,
        }
    }
}

/// A sample's `bytes` label (Go's and heapprof's object size), if any.
fn object_size_label(sample: &Sample) -> Option<i64> {
    sample
        .labels
        .iter()
        .find_map(|l| match (&l.key[..], &l.value) {
            ("bytes", LabelValue::Num { value, .. }) if *value > 0 => Some(*value),
            _ => None,
        })
}

/// What [`judge`] finds in one site's series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judged {
    /// The verdict.
    pub verdict: Verdict,
    /// The least-squares slope, per second.
    pub slope: f64,
    /// R² of that line (1 for a series without change).
    pub r_squared: f64,
    /// The pace from the middle third's level to the last's, per second
    /// (the whole series' pace when there is no middle third).
    pub late_slope: f64,
    /// The rise from the first third's level to the last's, in noises.
    pub significance: f64,
}

/// One third of a series: its level, time and the noise of its level.
#[derive(Clone, Copy, Debug)]
struct Level {
    value: f64,
    seconds: f64,
    noise: f64,
}

impl Level {
    fn of(seconds: &[f64], values: &[f64], errors: &[f64]) -> Level {
        let m = values.len() as f64;
        let mean_error = errors.iter().sum::<f64>() / m;
        let line = Line::fit(seconds, values);
        let scatter = if values.len() > 2 {
            line.residual_sum_of_squares / (m - 2.0)
        } else {
            0.0
        };
        let sampling = mean_error * mean_error;
        // Errors of m points with variance σ² and correlation ρ leave a
        // scatter of σ²(1 − ρ) and a mean of variance σ²(1 + (m − 1)ρ)/m;
        // a scatter beyond σ² is the program's own, counted as independent.
        let variance = if scatter >= sampling {
            scatter / m
        } else {
            sampling - (m - 1.0) / m * scatter
        };
        Level {
            value: line.mean_value,
            seconds: line.mean_seconds,
            noise: variance.sqrt(),
        }
    }
}

/// A least-squares line.
#[derive(Clone, Copy, Debug)]
struct Line {
    slope: f64,
    mean_seconds: f64,
    mean_value: f64,
    residual_sum_of_squares: f64,
    total_sum_of_squares: f64,
}

impl Line {
    fn fit(seconds: &[f64], values: &[f64]) -> Line {
        let n = values.len() as f64;
        let mean_seconds = seconds.iter().sum::<f64>() / n;
        let mean_value = values.iter().sum::<f64>() / n;
        let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
        for (&t, &y) in seconds.iter().zip(values) {
            let (dt, dy) = (t - mean_seconds, y - mean_value);
            sxx += dt * dt;
            sxy += dt * dy;
            syy += dy * dy;
        }
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        Line {
            slope,
            mean_seconds,
            mean_value,
            // Σ(dy − b·dt)² = Syy − b·Sxy, never below 0 in exact arithmetic.
            residual_sum_of_squares: (syy - slope * sxy).max(0.0),
            total_sum_of_squares: syy,
        }
    }
}

/// Judges one site's series: `values` at `seconds` (ascending, from any
/// origin), each with its sampling standard error in `errors`.
pub fn judge(seconds: &[f64], values: &[i64], errors: &[f64]) -> Judged {
    let values: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    let n = values.len();
    let line = Line::fit(seconds, &values);
    let r_squared = if line.total_sum_of_squares > 0.0 {
        1.0 - line.residual_sum_of_squares / line.total_sum_of_squares
    } else {
        1.0
    };
    let flat = Judged {
        verdict: Verdict::Flat,
        slope: line.slope,
        r_squared,
        late_slope: line.slope,
        significance: 0.0,
    };
    if n < 2 {
        return flat;
    }
    // Thirds by order: the first and last of (n+1)/3 snapshots each, the
    // middle the rest (none for two snapshots).
    let end = ((n + 1) / 3).max(1);
    let level = |range: std::ops::Range<usize>| {
        Level::of(
            &seconds[range.clone()],
            &values[range.clone()],
            &errors[range],
        )
    };
    let (first, last) = (level(0..end), level(n - end..n));
    let middle = (n - 2 * end > 0).then(|| level(end..n - end));
    let rise = last.value - first.value;
    let significance = ratio(rise, first.noise.hypot(last.noise));
    let pace = |from: &Level, to: &Level| {
        let span = to.seconds - from.seconds;
        if span > 0.0 {
            (to.value - from.value) / span
        } else {
            0.0
        }
    };
    let whole_pace = pace(&first, &last);
    let late_slope = middle.as_ref().map_or(whole_pace, |m| pace(m, &last));
    let verdict = if significance > RISE_Z {
        match &middle {
            None => Verdict::Growing,
            Some(middle) => {
                let late_rise = ratio(last.value - middle.value, middle.noise.hypot(last.noise));
                if late_slope >= LATE_PACE * whole_pace && late_rise > LATE_Z {
                    Verdict::Growing
                } else {
                    Verdict::Bounded
                }
            }
        }
    } else if significance < -RISE_Z {
        Verdict::Shrinking
    } else {
        Verdict::Flat
    };
    Judged {
        verdict,
        late_slope,
        significance,
        ..flat
    }
}

/// `change / noise`, [`EXACT_SIGNIFICANCE`] for a change without noise.
fn ratio(change: f64, noise: f64) -> f64 {
    if noise > 0.0 {
        (change / noise).clamp(-EXACT_SIGNIFICANCE, EXACT_SIGNIFICANCE)
    } else if change == 0.0 {
        0.0
    } else {
        EXACT_SIGNIFICANCE.copysign(change)
    }
}

/// Puts `sites` in rank order: growing, bounded, flat, shrinking; growing
/// and bounded sites by slope × fit (steady growth first, the strongest
/// first), flat ones by their last in-use (the largest first), shrinking
/// ones by slope × fit (the steepest fall first); ties by name.
pub fn rank(sites: &mut [Site]) {
    let key = |site: &Site| match site.verdict {
        Verdict::Growing | Verdict::Bounded => -site.bytes_per_second * site.fit,
        Verdict::Flat => -(site.last_inuse_bytes as f64),
        Verdict::Shrinking => site.bytes_per_second * site.fit,
    };
    sites.sort_by(|a, b| {
        a.verdict
            .rank()
            .cmp(&b.verdict.rank())
            .then(key(a).total_cmp(&key(b)))
            .then_with(|| a.function.cmp(&b.function))
    });
}
