//! Memory over time: a series of heap profiles of one program (heapprof's
//! interval dumps, Go's heap profiles, any producer's) reduced to the
//! series' totals and, per site, its in-use over time; then the leak
//! ranking, which judges each site's growth against the sampling error
//! ([`Verdict`], and the mechanism in [`fit`]).
//!
//! It streams: a [`Builder`] takes one profile at a time and keeps only the
//! reduced series (one value and one sampling variance per site and
//! profile), never a profile, so that days of dumps cost the memory of the
//! series' figures, not of its profiles. [`reduce`] is the part of
//! [`Builder::add`] that reads a profile and needs no builder, so that
//! callers may run it on several threads and hand the results to
//! [`Builder::add_reduced`] in any order: [`Builder::finish`] orders the
//! snapshots by time.
//!
//! The module never reads files: its callers name each profile, and errors
//! about a profile name it.
//!
//! # Example
//!
//! ```
//! use heapprof_pprof::{Function, Line, Location, Profile, Sample, ValueType};
//! use heapprof_report::timeline::{self, Builder, Verdict};
//!
//! // Ten profiles a second apart: `leak` holds 1 MiB more in each.
//! let at = |second: i64| Profile {
//!     sample_types: vec![ValueType::new("inuse_space", "bytes")],
//!     functions: vec![Function { name: "leak".into(), ..Function::default() }],
//!     locations: vec![Location { lines: vec![Line { function: 0, line: 0 }], ..Location::default() }],
//!     samples: vec![Sample { locations: vec![0], values: vec![(second + 1) << 20], labels: vec![] }],
//!     time_nanos: 1_700_000_000_000_000_000 + second * 1_000_000_000,
//!     ..Profile::default()
//! };
//! let mut builder = Builder::new(&timeline::Options::default());
//! for second in 0..10 {
//!     builder.add(&format!("heap-{second}.pb.gz"), &at(second))?;
//! }
//! let timeline = builder.finish()?;
//! let leak = &timeline.sites[0];
//! assert_eq!((leak.function.as_str(), leak.verdict), ("leak", Verdict::Growing));
//! assert_eq!(leak.bytes_per_second.round(), (1 << 20) as f64);
//! let mut text = Vec::new();
//! timeline::write(&timeline::WriteOptions::default(), &timeline, &mut text)?;
//! # Ok::<(), heapprof_report::Error>(())
//! ```

use std::collections::HashMap;
use std::io::Write;

use heapprof_pprof::{Profile, ValueType};

use crate::stacks::{self, Names, Selection};
use crate::Error;

pub mod fit;
mod render;

pub use fit::Verdict;
pub use render::{Format, WriteOptions};

/// What a timeline is made of.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The sample type (`-i`; default: the first profile's default, which
    /// every later profile must have) and pprof's filters, as every view
    /// takes them.
    pub selection: Selection,
    /// What one site of the leak ranking is.
    pub granularity: Granularity,
}

/// What one site of the leak ranking is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Granularity {
    /// The function at the leaf of each stack (after `--hide`), as `go tool
    /// pprof -top` names it: where the memory was allocated.
    #[default]
    Function,
    /// The source file of the leaf function (`<unknown>` when the profile
    /// has none, or a function of one name is in several files).
    File,
    /// The whole stack, root first, `main;caller;leaf`, as folded stacks
    /// print it.
    Stack,
}

impl Granularity {
    /// The word for it: `function`, `file` or `stack`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Granularity::Function => "function",
            Granularity::File => "file",
            Granularity::Stack => "stack",
        }
    }
}

/// One profile of the series: its time and totals.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The profile's name, as the caller gave it.
    pub file: String,
    /// When the profile was taken (Unix nanoseconds).
    pub time_nanos: i64,
    /// The total of the selected sample type over the whole profile (before
    /// filters, as pprof's percentages are): in-use bytes for a heap
    /// profile's default; in the sample type's unit for others.
    pub inuse_bytes: i64,
    /// The process's resident memory, from heapprof's `heapprof: memory`
    /// comment (not given for a peak profile: its comment is of the moment
    /// the profile was written, not of the peak).
    pub rss_bytes: Option<u64>,
    /// The exact live heap, from the same comment; for a peak profile, the
    /// peak's live bytes from its own comment.
    pub live_bytes: Option<u64>,
    /// Every numeric `key=value` pair of the `heapprof: memory` comment, in
    /// its order (`rss_bytes`, `live_bytes`, `profiler_bytes`, ...); empty
    /// when the profile has none, and for a peak profile.
    pub classes: Vec<(String, u64)>,
    /// Whether this is heapprof's peak profile ([`is_peak`]). Peak profiles
    /// are kept out of the series and the ranking (a peak is a copy of one
    /// earlier moment, written later) and listed in [`Timeline::peaks`].
    pub peak: bool,
    /// The profile's sampling period (for heap profiles, the mean bytes
    /// between samples); 0 when it has none.
    pub period: i64,
}

/// One site of the leak ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// The site's name at the chosen [`Granularity`] (for the default, the
    /// leaf function's).
    pub function: String,
    /// What its series does, allowing for the sampling error.
    pub verdict: Verdict,
    /// The least-squares slope of its in-use over time, per second (in the
    /// sample type's unit).
    pub bytes_per_second: f64,
    /// How well that straight line holds: R², from 0 (no better than the
    /// mean) to 1 (every point on the line); 1 for a series without change.
    pub fit: f64,
    /// Its in-use in the last snapshot.
    pub last_inuse_bytes: i64,
    /// Its in-use in each snapshot, in [`Timeline::snapshots`] order (0
    /// where a snapshot has none).
    pub inuse: Vec<i64>,
    /// The sampling standard error of each of those values (0 for a profile
    /// of every allocation), as the verdict takes it ([`fit`]).
    pub inuse_error: Vec<f64>,
    /// The slope over the last third of the series, per second: the figure
    /// that tells growth that goes on from growth that levelled off.
    pub late_bytes_per_second: f64,
    /// The rise from the first third of the series to the last, in units
    /// of its noise: above 4 it is a rise, below −4 a fall.
    pub significance: f64,
    /// Its in-use in each peak profile, in [`Timeline::peaks`] order.
    pub peak_inuse: Vec<i64>,
}

/// A series of profiles and its leak ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// The sample type of every figure.
    pub sample_type: ValueType,
    /// The profiles of the series, by time (ties by file name); peak
    /// profiles are not among them.
    pub snapshots: Vec<Snapshot>,
    /// Every site, in rank order: growing first, then bounded, flat and
    /// shrinking; within each, the strongest first ([`fit::rank`]).
    pub sites: Vec<Site>,
    /// heapprof's peak profiles among the input, by time.
    pub peaks: Vec<Snapshot>,
    /// What a site is.
    pub granularity: Granularity,
}

/// Whether `profile` is heapprof's peak profile (the in-use profile at the
/// high-water mark of live bytes), by the comment heapprof writes into it.
pub fn is_peak(profile: &Profile) -> bool {
    peak_bytes(profile).is_some()
}

/// The peak's live bytes, from a peak profile's comment.
fn peak_bytes(profile: &Profile) -> Option<u64> {
    profile.comments.iter().find_map(|c| {
        c.trim()
            .strip_prefix("heapprof: in-use profile at the peak of live heap: ")?
            .strip_suffix(" bytes")?
            .parse()
            .ok()
    })
}

/// The numeric pairs of heapprof's `heapprof: memory key=value ...`
/// comment, in order; empty without one.
fn memory_classes(profile: &Profile) -> Vec<(String, u64)> {
    let Some(pairs) = profile
        .comments
        .iter()
        .find_map(|c| c.trim().strip_prefix("heapprof: memory "))
    else {
        return Vec::new();
    };
    pairs
        .split_whitespace()
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// One profile, reduced to what a timeline keeps of it: made by
/// [`reduce`], taken by [`Builder::add_reduced`].
#[derive(Clone, Debug)]
pub struct Reduced {
    snapshot: Snapshot,
    sample_type: ValueType,
    /// (site, value, sampling variance), one per site with a non-zero value.
    sites: Vec<(String, i64, f64)>,
}

impl Reduced {
    /// The profile's time and totals.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

/// Reads what a timeline keeps of `profile`, named `file`: its totals, the
/// memory comment, and each site's value and sampling variance for the
/// selected sample type.
///
/// Errors name `file`: [`Error::NotInSeries`] when it does not have the
/// sample type asked for, [`Error::NoTime`] without a time.
pub fn reduce(options: &Options, file: &str, profile: &Profile) -> Result<Reduced, Error> {
    let not_in_series = |wanted: &str| Error::NotInSeries {
        file: file.to_owned(),
        wanted: wanted.to_owned(),
        found: sample_types(profile),
    };
    let index = options
        .selection
        .index_in(profile)
        .map_err(|_| not_in_series(options.selection.sample_index.as_deref().unwrap_or("")))?;
    if profile.time_nanos == 0 {
        return Err(Error::NoTime {
            file: file.to_owned(),
        });
    }
    let peak = peak_bytes(profile);
    let classes = if peak.is_some() {
        Vec::new()
    } else {
        memory_classes(profile)
    };
    let class = |key: &str| classes.iter().find(|(k, _)| k == key).map(|&(_, v)| v);
    let snapshot = Snapshot {
        file: file.to_owned(),
        time_nanos: profile.time_nanos,
        inuse_bytes: profile.total(index),
        rss_bytes: class("rss_bytes"),
        live_bytes: peak.or_else(|| class("live_bytes")),
        classes: classes.clone(),
        peak: peak.is_some(),
        period: profile.period,
    };
    Ok(Reduced {
        sample_type: profile.sample_types[index].clone(),
        sites: site_values(options, profile, index),
        snapshot,
    })
}

/// `type/unit` of each of the profile's sample types, space-separated.
fn sample_types(profile: &Profile) -> String {
    let types: Vec<String> = profile
        .sample_types
        .iter()
        .map(|t| format!("{}/{}", t.r#type, t.unit))
        .collect();
    if types.is_empty() {
        "none".to_owned()
    } else {
        types.join(" ")
    }
}

/// Each site's value and sampling variance in `profile` at sample type
/// `index`, after the selection's filters.
fn site_values(options: &Options, profile: &Profile, index: usize) -> Vec<(String, i64, f64)> {
    let noise = fit::SamplingNoise::of(profile, index);
    let mut names = Names::default();
    let (filtered, of_sample) =
        stacks::stacks_by_sample(profile, index, &options.selection.filters, &mut names);
    // Each stack's sampling variance: the sum of its samples' (the
    // variance depends on each sample's object size, which merging loses).
    let mut variance = vec![0.0; filtered.len()];
    for (sample, stack) in profile.samples.iter().zip(&of_sample) {
        if let Some(stack) = stack {
            variance[*stack as usize] += noise.variance(sample, index);
        }
    }
    let mut per_site: HashMap<String, (i64, f64)> = HashMap::new();
    for (stack, variance) in filtered.iter().zip(variance) {
        if stack.value == 0 {
            continue;
        }
        let entry = per_site
            .entry(site_name(&names, stack, options.granularity))
            .or_default();
        entry.0 += stack.value;
        entry.1 += variance;
    }
    per_site
        .into_iter()
        .filter(|(_, (value, _))| *value != 0)
        .map(|(site, (value, variance))| (site, value, variance))
        .collect()
}

/// A stack's site name at `granularity`.
fn site_name(names: &Names, stack: &stacks::Stack, granularity: Granularity) -> String {
    let Some(leaf) = stack.frames.first() else {
        return "<no frames>".to_owned();
    };
    match granularity {
        Granularity::Function => names.name(leaf.function).to_owned(),
        Granularity::File => match names.file(leaf.function) {
            "" => "<unknown>".to_owned(),
            file => file.to_owned(),
        },
        Granularity::Stack => {
            let frames: Vec<&str> = stack
                .frames
                .iter()
                .rev()
                .map(|f| names.name(f.function))
                .collect();
            frames.join(";")
        }
    }
}

/// One site's reduced series while the builder runs.
#[derive(Debug, Default)]
struct SiteSeries {
    /// (snapshot index in arrival order, value, variance).
    points: Vec<(u32, i64, f64)>,
}

/// Builds a [`Timeline`] one profile at a time, holding the reduced
/// per-site series and never a profile.
#[derive(Debug)]
pub struct Builder {
    options: Options,
    sample_type: Option<ValueType>,
    /// Every snapshot added, peaks too, in arrival order.
    snapshots: Vec<Snapshot>,
    site_names: Vec<String>,
    site_index: HashMap<String, u32>,
    sites: Vec<SiteSeries>,
}

impl Builder {
    /// A builder of a timeline by `options`.
    pub fn new(options: &Options) -> Self {
        Builder {
            options: options.clone(),
            sample_type: None,
            snapshots: Vec::new(),
            site_names: Vec::new(),
            site_index: HashMap::new(),
            sites: Vec::new(),
        }
    }

    /// Adds `profile`, named `file`. The first profile added fixes the
    /// series' sample type (the one the options name, or that profile's
    /// default); a later profile without that sample type (by name and
    /// unit), or without a time, is refused with an error naming `file`
    /// ([`Error::NotInSeries`], [`Error::NoTime`]) and leaves the builder
    /// as it was, so a caller may skip it and go on.
    pub fn add(&mut self, file: &str, profile: &Profile) -> Result<(), Error> {
        let options = self.options_for_next();
        let reduced = reduce(&options, file, profile)?;
        self.add_reduced(reduced)
    }

    /// The options that a profile to be added is reduced by: after the
    /// first, its sample type by name. Callers that [`reduce`] profiles
    /// themselves use these.
    pub fn options_for_next(&self) -> Options {
        let mut options = self.options.clone();
        if let Some(sample_type) = &self.sample_type {
            options.selection.sample_index = Some(sample_type.r#type.clone());
        }
        options
    }

    /// Adds a profile that [`reduce`] read, with the same checks as
    /// [`add`](Self::add).
    pub fn add_reduced(&mut self, reduced: Reduced) -> Result<(), Error> {
        match &self.sample_type {
            None => self.sample_type = Some(reduced.sample_type.clone()),
            Some(series) if *series != reduced.sample_type => {
                return Err(Error::NotInSeries {
                    file: reduced.snapshot.file.clone(),
                    wanted: format!("{}/{}", series.r#type, series.unit),
                    found: format!(
                        "{}/{}",
                        reduced.sample_type.r#type, reduced.sample_type.unit
                    ),
                })
            }
            Some(_) => {}
        }
        let snapshot = self.snapshots.len() as u32;
        self.snapshots.push(reduced.snapshot);
        for (name, value, variance) in reduced.sites {
            let id = match self.site_index.get(&name) {
                Some(&id) => id,
                None => {
                    let id = self.sites.len() as u32;
                    self.site_names.push(name.clone());
                    self.site_index.insert(name, id);
                    self.sites.push(SiteSeries::default());
                    id
                }
            };
            self.sites[id as usize]
                .points
                .push((snapshot, value, variance));
        }
        Ok(())
    }

    /// How many profiles were added, peaks too.
    pub fn len(&self) -> usize {
        self.snapshots.len()
    }

    /// True before the first profile is added.
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    /// The timeline: snapshots by time (ties by file name), every site's
    /// series aligned to them, judged and ranked. Errors with
    /// [`Error::EmptyTimeline`] when no profile of the series was added
    /// (peak profiles alone are no series).
    pub fn finish(self) -> Result<Timeline, Error> {
        let Builder {
            options,
            sample_type,
            snapshots,
            site_names,
            sites,
            ..
        } = self;
        let sample_type = sample_type.ok_or(Error::EmptyTimeline)?;
        let mut order: Vec<u32> = (0..snapshots.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&snapshots[a as usize], &snapshots[b as usize]);
            (a.time_nanos, &a.file).cmp(&(b.time_nanos, &b.file))
        });
        // Where each arrival lands: in the series, or among the peaks.
        let mut place = vec![(false, 0usize); snapshots.len()];
        let (mut in_series, mut in_peaks) = (0, 0);
        for &i in &order {
            let peak = snapshots[i as usize].peak;
            place[i as usize] = if peak {
                in_peaks += 1;
                (true, in_peaks - 1)
            } else {
                in_series += 1;
                (false, in_series - 1)
            };
        }
        if in_series == 0 {
            return Err(Error::EmptyTimeline);
        }
        let mut series = Vec::with_capacity(in_series);
        let mut peaks = Vec::with_capacity(in_peaks);
        let mut snapshots: Vec<Option<Snapshot>> = snapshots.into_iter().map(Some).collect();
        for &i in &order {
            let snapshot = snapshots[i as usize].take().expect("each once");
            if snapshot.peak {
                peaks.push(snapshot);
            } else {
                series.push(snapshot);
            }
        }
        let start = series[0].time_nanos;
        let seconds: Vec<f64> = series
            .iter()
            .map(|s| (s.time_nanos - start) as f64 / 1e9)
            .collect();
        let mut ranked: Vec<Site> = site_names
            .into_iter()
            .zip(sites)
            .map(|(function, site)| {
                let mut inuse = vec![0; in_series];
                let mut variance = vec![0.0; in_series];
                let mut peak_inuse = vec![0; in_peaks];
                for (arrival, value, v) in site.points {
                    match place[arrival as usize] {
                        (true, at) => peak_inuse[at] += value,
                        (false, at) => {
                            inuse[at] += value;
                            variance[at] += v;
                        }
                    }
                }
                let inuse_error: Vec<f64> = variance.iter().map(|v| v.sqrt()).collect();
                let judged = fit::judge(&seconds, &inuse, &inuse_error);
                Site {
                    function,
                    verdict: judged.verdict,
                    bytes_per_second: judged.slope,
                    fit: judged.r_squared,
                    last_inuse_bytes: *inuse.last().expect("a series"),
                    inuse,
                    inuse_error,
                    late_bytes_per_second: judged.late_slope,
                    significance: judged.significance,
                    peak_inuse,
                }
            })
            .collect();
        fit::rank(&mut ranked);
        Ok(Timeline {
            sample_type,
            snapshots: series,
            sites: ranked,
            peaks,
            granularity: options.granularity,
        })
    }
}

/// Writes `timeline` as text (the series, then the leak ranking) or JSON.
pub fn write(
    options: &WriteOptions,
    timeline: &Timeline,
    out: &mut impl Write,
) -> Result<(), Error> {
    render::write(options, timeline, out)
}

#[cfg(test)]
mod tests;
