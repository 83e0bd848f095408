//! The streaming half of a timeline: reduced profiles in, one series per
//! sample type while they come, and at the end the series of the most
//! profiles, ordered by time, aligned, judged and ranked. It holds figures,
//! never a profile.

use std::collections::HashMap;

use heapprof_pprof::{Profile, ValueType};

use super::{fit, reduce, Options, Reduced, Site, Skipped, Snapshot, Timeline};
use crate::Error;

/// Builds a [`Timeline`] one profile at a time, holding the reduced
/// per-site series and never a profile.
///
/// Without a sample type in the options, profiles are grouped by the one
/// each is read at (`inuse_space` where a profile has it, else its
/// default), and [`finish`](Self::finish) keeps the group of the most
/// profiles: a CPU profile among heap dumps is left out, whatever order
/// they come in, and named in [`Timeline::skipped`].
#[derive(Debug)]
pub struct Builder {
    options: Options,
    /// One per sample type met, in the order first met.
    series: Vec<Series>,
}

/// The profiles of one sample type.
#[derive(Debug)]
struct Series {
    sample_type: ValueType,
    /// Every snapshot added, peaks too, in arrival order.
    snapshots: Vec<Snapshot>,
    site_names: Vec<String>,
    site_index: HashMap<String, u32>,
    /// Per site: (snapshot in arrival order, value, variance).
    sites: Vec<Vec<(u32, i64, f64)>>,
}

impl Series {
    fn new(sample_type: ValueType) -> Self {
        Series {
            sample_type,
            snapshots: Vec::new(),
            site_names: Vec::new(),
            site_index: HashMap::new(),
            sites: Vec::new(),
        }
    }

    fn add(&mut self, reduced: Reduced) {
        let snapshot = self.snapshots.len() as u32;
        self.snapshots.push(reduced.snapshot);
        for (name, value, variance) in reduced.sites {
            let id = match self.site_index.get(&name) {
                Some(&id) => id,
                None => {
                    let id = self.sites.len() as u32;
                    self.site_names.push(name.clone());
                    self.site_index.insert(name, id);
                    self.sites.push(Vec::new());
                    id
                }
            };
            self.sites[id as usize].push((snapshot, value, variance));
        }
    }

    /// Snapshots that are not peaks.
    fn len(&self) -> usize {
        self.snapshots.iter().filter(|s| !s.peak).count()
    }
}

impl Builder {
    /// A builder of a timeline by `options`.
    pub fn new(options: &Options) -> Self {
        Builder {
            options: options.clone(),
            series: Vec::new(),
        }
    }

    /// The options profiles are read by: for callers that [`reduce`] them
    /// themselves (on other threads) and hand them to
    /// [`add_reduced`](Self::add_reduced).
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Adds `profile`, named `file`. A profile without the sample type that
    /// the options name, or without a time, is refused with an error
    /// naming `file` ([`Error::NotInSeries`], [`Error::NoTime`]) and leaves
    /// the builder as it was, so that a caller may skip it and go on.
    pub fn add(&mut self, file: &str, profile: &Profile) -> Result<(), Error> {
        let reduced = reduce(&self.options, file, profile)?;
        self.add_reduced(reduced)
    }

    /// Adds a profile that [`reduce`] read by [`options`](Self::options).
    /// With a sample type named in the options, a profile whose unit for it
    /// differs from the first one's is refused ([`Error::NotInSeries`]).
    pub fn add_reduced(&mut self, reduced: Reduced) -> Result<(), Error> {
        let at = self
            .series
            .iter()
            .position(|s| s.sample_type == reduced.sample_type);
        let at = match at {
            Some(at) => at,
            None => {
                if let (Some(_), Some(first)) =
                    (&self.options.selection.sample_index, self.series.first())
                {
                    return Err(Error::NotInSeries {
                        file: reduced.snapshot.file.clone(),
                        wanted: type_and_unit(&first.sample_type),
                        found: type_and_unit(&reduced.sample_type),
                    });
                }
                self.series.push(Series::new(reduced.sample_type.clone()));
                self.series.len() - 1
            }
        };
        self.series[at].add(reduced);
        Ok(())
    }

    /// How many profiles were added, peaks too.
    pub fn len(&self) -> usize {
        self.series.iter().map(|s| s.snapshots.len()).sum()
    }

    /// True before the first profile is added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The timeline: the series of the most profiles (the first met of
    /// those of as many), its snapshots by time (ties by file name),
    /// every site's series aligned to them, judged and ranked. Errors with
    /// [`Error::EmptyTimeline`] when no profile of a series was added
    /// (peak profiles alone are no series).
    pub fn finish(self) -> Result<Timeline, Error> {
        let Builder { options, series } = self;
        let chosen = series
            .iter()
            .enumerate()
            .filter(|(_, s)| s.len() > 0)
            .max_by_key(|&(at, s)| (s.len(), std::cmp::Reverse(at)))
            .map(|(at, _)| at)
            .ok_or(Error::EmptyTimeline)?;
        let kept_type = type_and_unit(&series[chosen].sample_type);
        let mut skipped = Vec::new();
        let mut kept = None;
        for (at, one) in series.into_iter().enumerate() {
            if at == chosen {
                kept = Some(one);
                continue;
            }
            let of_type = type_and_unit(&one.sample_type);
            skipped.extend(one.snapshots.into_iter().map(|snapshot| Skipped {
                reason: format!(
                    "{}: of sample type {of_type}, not the series' {kept_type} (of more profiles)",
                    snapshot.file
                ),
                file: snapshot.file,
            }));
        }
        let mut timeline = judged(kept.expect("the chosen series"), options);
        timeline.skipped = skipped;
        Ok(timeline)
    }
}

/// `inuse_space/bytes`.
fn type_and_unit(sample_type: &ValueType) -> String {
    format!("{}/{}", sample_type.r#type, sample_type.unit)
}

/// The timeline of one series.
fn judged(series: Series, options: Options) -> Timeline {
    let Series {
        sample_type,
        snapshots,
        site_names,
        sites,
        ..
    } = series;
    let mut order: Vec<usize> = (0..snapshots.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&snapshots[a], &snapshots[b]);
        (a.time_nanos, &a.file).cmp(&(b.time_nanos, &b.file))
    });
    // Where each arrival lands: its place in the series, or among the peaks.
    let mut place = vec![(false, 0usize); snapshots.len()];
    let (mut in_series, mut in_peaks) = (0, 0);
    for &i in &order {
        place[i] = if snapshots[i].peak {
            in_peaks += 1;
            (true, in_peaks - 1)
        } else {
            in_series += 1;
            (false, in_series - 1)
        };
    }
    let mut arrivals: Vec<Option<Snapshot>> = snapshots.into_iter().map(Some).collect();
    let (mut kept, mut peaks) = (Vec::with_capacity(in_series), Vec::new());
    for &i in &order {
        let snapshot = arrivals[i].take().expect("each once");
        if snapshot.peak {
            peaks.push(snapshot);
        } else {
            kept.push(snapshot);
        }
    }
    let start = kept[0].time_nanos;
    let seconds: Vec<f64> = kept
        .iter()
        .map(|s| (s.time_nanos - start) as f64 / 1e9)
        .collect();
    let mut ranked: Vec<Site> = site_names
        .into_iter()
        .zip(sites)
        .map(|(function, points)| {
            let mut inuse = vec![0; in_series];
            let mut variance = vec![0.0; in_series];
            let mut peak_inuse = vec![0; in_peaks];
            for (arrival, value, v) in points {
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
                last_inuse_bytes: inuse[in_series - 1],
                inuse,
                inuse_error,
                late_bytes_per_second: judged.late_slope,
                significance: judged.significance,
                peak_inuse,
            }
        })
        .collect();
    fit::rank(&mut ranked);
    Timeline {
        sample_type,
        snapshots: kept,
        sites: ranked,
        peaks,
        granularity: options.granularity,
        skipped: Vec::new(),
    }
}
