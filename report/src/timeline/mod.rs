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

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

use heapprof_pprof::{Profile, ValueType};

use crate::shorten::display_name;
use crate::stacks::{self, Names, Selection};
use crate::Error;

mod builder;
pub mod fit;
mod render;

pub use builder::Builder;
pub use fit::Verdict;
pub use render::{Format, WriteOptions};

/// What a timeline is made of.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The sample type (`-i`) and pprof's filters, as every view takes
    /// them. Without a sample type, each profile is read at `inuse_space`
    /// where it has it (a heap or allocs profile: what is held), else at
    /// its default, and the series is of the sample type of the most
    /// profiles ([`Builder`]).
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
    /// The late pace, per second: from the middle third's mean in-use to
    /// the last third's, over the time between them (the whole series'
    /// pace when there is no middle third). It tells growth that goes on
    /// from growth that levelled off.
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
    /// Profiles added but left out of the series: without a sample type
    /// in the options, those of a sample type of fewer profiles than the
    /// series' (a CPU profile among heap dumps), in the order added.
    pub skipped: Vec<Skipped>,
}

/// A profile left out of the series, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The profile, as the caller named it.
    pub file: String,
    /// Why, in one line that names the file.
    pub reason: String,
}

/// Whether `profile` is heapprof's peak profile (the in-use profile at the
/// high-water mark of live bytes), by the comment heapprof writes into it.
pub fn is_peak(profile: &Profile) -> bool {
    heapprof_pprof::peak_bytes(profile).is_some()
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
    let index = match &options.selection.sample_index {
        None => match profile
            .sample_types
            .iter()
            .position(|t| t.r#type == "inuse_space")
        {
            Some(index) => index,
            None => options
                .selection
                .index_in(profile)
                .map_err(|_| not_in_series("at all"))?,
        },
        Some(name) => options
            .selection
            .index_in(profile)
            .map_err(|_| not_in_series(name))?,
    };
    if profile.time_nanos == 0 {
        return Err(Error::NoTime {
            file: file.to_owned(),
        });
    }
    let peak = heapprof_pprof::peak_bytes(profile);
    let classes = if peak.is_some() {
        Vec::new()
    } else {
        heapprof_pprof::memory_classes(profile)
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
    let selection = &options.selection;
    let filters = &selection.filters;
    // Anything that drops samples, hides frames or adds pseudo frames (at
    // the leaf, or at the root: a stack of nothing else has it as its leaf)
    // takes the way through the stacks.
    let plain = filters.focus.is_none()
        && filters.ignore.is_none()
        && filters.hide.is_none()
        && filters.tag_focus.is_none()
        && filters.tag_ignore.is_none()
        && selection.tag_root.is_empty()
        && selection.tag_leaf.is_empty();
    if plain && options.granularity == Granularity::Function {
        return leaf_values(profile, index, noise);
    }
    let mut names = Names::default();
    let (filtered, of_sample) = stacks::stacks_by_sample(profile, index, selection, &mut names);
    // Each stack's sampling variance: the sum of its samples' (the
    // variance depends on each sample's object size, which merging loses).
    let mut variance = vec![0.0; filtered.len()];
    for (sample, stack) in profile.samples.iter().zip(&of_sample) {
        if let Some(stack) = stack {
            variance[*stack as usize] += noise.variance(sample, index);
        }
    }
    // Names are borrowed while stacks are summed, and owned once per site.
    let mut per_site: HashMap<Cow<str>, (i64, f64)> = HashMap::new();
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
        .map(|(site, (value, variance))| (site.into_owned(), value, variance))
        .collect()
}

/// [`site_values`] by leaf function without filters, the common case: a
/// sample's site is the innermost frame of its first location, named as
/// [`stacks::stacks`] names it, found once per location; no stacks are
/// built. (A fifth of the time of reading a dump went into building them.)
fn leaf_values(
    profile: &Profile,
    index: usize,
    noise: fit::SamplingNoise,
) -> Vec<(String, i64, f64)> {
    let mut names = Names::default();
    let mut site_of_location: Vec<Option<u32>> = vec![None; profile.locations.len()];
    let mut sums: Vec<(i64, f64)> = Vec::new();
    let mut no_frames = (0, 0.0);
    for sample in &profile.samples {
        let value = sample.values[index];
        if value == 0 {
            continue;
        }
        let sum = match sample.locations.first() {
            None => &mut no_frames,
            Some(&leaf) => {
                let site = *site_of_location[leaf]
                    .get_or_insert_with(|| leaf_function(profile, leaf, &mut names));
                if sums.len() <= site as usize {
                    sums.resize(site as usize + 1, (0, 0.0));
                }
                &mut sums[site as usize]
            }
        };
        sum.0 += value;
        sum.1 += noise.variance(sample, index);
    }
    let mut sites: Vec<(String, i64, f64)> = sums
        .into_iter()
        .enumerate()
        .filter(|(_, (value, _))| *value != 0)
        .map(|(id, (value, variance))| (names.name(id as u32).to_owned(), value, variance))
        .collect();
    if no_frames.0 != 0 {
        sites.push(("<no frames>".to_owned(), no_frames.0, no_frames.1));
    }
    sites
}

/// The id in `names` of the innermost frame of location `at`: its first
/// line's function, or for a location without lines or a function
/// without a name, its object file (as [`stacks::stacks`] names them).
fn leaf_function<'p>(profile: &'p Profile, at: usize, names: &mut Names<'p>) -> u32 {
    let location = &profile.locations[at];
    let objfile = location
        .mapping
        .and_then(|m| profile.mappings.get(m))
        .map_or("", |m| m.filename.as_str());
    match location.lines.first() {
        Some(line) => {
            let function = &profile.functions[line.function];
            let shown = display_name(function);
            if shown.is_empty() {
                names.intern_object(objfile)
            } else {
                names.insert(shown, &function.filename, "")
            }
        }
        None => names.intern_object(objfile),
    }
}

/// A stack's site name at `granularity`.
fn site_name<'n>(
    names: &'n Names,
    stack: &stacks::Stack,
    granularity: Granularity,
) -> Cow<'n, str> {
    let Some(leaf) = stack.frames.first() else {
        return Cow::Borrowed("<no frames>");
    };
    match granularity {
        Granularity::Function => Cow::Borrowed(names.name(leaf.function)),
        Granularity::File => Cow::Borrowed(match names.file(leaf.function) {
            "" => "<unknown>",
            file => file,
        }),
        Granularity::Stack => {
            let frames: Vec<&str> = stack
                .frames
                .iter()
                .rev()
                .map(|f| names.name(f.function))
                .collect();
            Cow::Owned(frames.join(";"))
        }
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
