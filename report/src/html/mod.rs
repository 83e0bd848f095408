//! One self-contained HTML page about a series of profiles of one program
//! (the dumps of a run, say): memory over time with the largest sites
//! stacked, the leak ranking, and for any snapshot clicked on the chart its
//! top table and flamegraph; the top table and flamegraph at the last
//! snapshot and at the peak, and the differential flamegraph from the first
//! snapshot to the last, drawn by the same views as `heapprof top`,
//! `flamegraph` and `diff`.
//!
//! The page works offline: its script, style and data are inline, the
//! static flamegraphs are inferno's SVGs as data URLs. Profiles are
//! streamed: [`Builder::add`] feeds each to the [`timeline`] and reduces it
//! to what the page needs of a snapshot (the first rows of its table, its
//! flamegraph tree pruned to the frames that can be seen), keeping whole
//! only the profiles of the first, the last and the peak snapshot.
//!
//! # Example
//!
//! ```
//! use heapprof_pprof::{Function, Line, Location, Profile, Sample, ValueType};
//! use heapprof_report::html;
//!
//! // Two dumps, a second apart, of a program whose cache grows.
//! let dump = |seconds: i64, cache: i64| Profile {
//!     sample_types: vec![ValueType::new("inuse_space", "bytes")],
//!     functions: vec![Function { name: "cache_insert".into(), ..Function::default() }],
//!     locations: vec![Location { lines: vec![Line { function: 0, line: 0 }], ..Location::default() }],
//!     samples: vec![Sample { locations: vec![0], values: vec![cache], labels: vec![] }],
//!     time_nanos: 1_700_000_000_000_000_000 + seconds * 1_000_000_000,
//!     ..Profile::default()
//! };
//! let mut report = html::Builder::new(&html::Options::default());
//! report.add("heap-1.pb.gz", dump(0, 1 << 20))?;
//! report.add("heap-2.pb.gz", dump(1, 2 << 20))?;
//! let mut page = Vec::new();
//! report.write(&mut page)?;
//! let page = String::from_utf8(page).unwrap();
//! assert!(page.starts_with("<!DOCTYPE html>"));
//! assert!(page.contains(r#"<svg id="chart""#));
//! # Ok::<(), heapprof_report::Error>(())
//! ```

mod chart;
mod page;
mod snapshot;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use heapprof_pprof::{Profile, ValueType};

use crate::stacks::Selection;
use crate::timeline::{self, Timeline};
use crate::units::Formatter;
use crate::Error;

use snapshot::{Interned, Reduced, Reduction};

/// Options of the report.
#[derive(Clone, Debug)]
pub struct Options {
    /// The timeline's options: the sample type and filters, for every view
    /// of the page.
    pub timeline: timeline::Options,
    /// The page's title; "" for one from the files.
    pub title: String,
    /// Sites stacked in the chart (at most 9), the rest being "other".
    pub chart_sites: usize,
    /// Rows of the top tables (`heapprof top -n`).
    pub rows: usize,
    /// Frames of a clicked snapshot's flamegraph narrower than this
    /// fraction of its total are left out, to keep the page small.
    pub min_fraction: f64,
    /// At most this many frames of a clicked snapshot's flamegraph are
    /// kept, the widest: what bounds the page's size per snapshot.
    pub max_frames: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeline: timeline::Options::default(),
            title: String::new(),
            chart_sites: 8,
            rows: 30,
            min_fraction: 0.005,
            max_frames: 256,
        }
    }
}

/// A profile kept whole for the static views, with where it sorts.
#[derive(Clone)]
struct Kept {
    /// (time, file): the order of the timeline's snapshots.
    key: (i64, String),
    /// Its in-use total, for the largest snapshot.
    total: i64,
    profile: Arc<Profile>,
}

/// Reads the profiles of a report one at a time ([`Builder::add`]), then
/// writes the page ([`Builder::write`]).
pub struct Builder {
    options: Options,
    timeline: timeline::Builder,
    interned: Interned,
    snapshots: Vec<Reduced>,
    first: Option<Kept>,
    last: Option<Kept>,
    /// The last of the peak profiles (written at the peak of the heap).
    peak: Option<Kept>,
    /// The snapshot of the largest total, the peak when no profile is one.
    largest: Option<Kept>,
    /// Each file's sample types (`type/unit ...`), for the error about a
    /// profile that is not of the series.
    sample_types: HashMap<String, String>,
}

impl Builder {
    /// A report with `options` and no profile yet.
    pub fn new(options: &Options) -> Self {
        Builder {
            options: options.clone(),
            timeline: timeline::Builder::new(&options.timeline),
            interned: Interned::default(),
            snapshots: Vec::new(),
            first: None,
            last: None,
            peak: None,
            largest: None,
            sample_types: HashMap::new(),
        }
    }

    /// Adds the profile read from `file` (the name the page shows). Errors
    /// are about its content; the caller adds the file's name.
    pub fn add(&mut self, file: &str, profile: Profile) -> Result<(), Error> {
        self.timeline.add(file, &profile)?;
        let selection = read_as_timeline_reads(&self.options.timeline.selection, &profile);
        let reduction = Reduction {
            rows: self.options.rows,
            min_fraction: self.options.min_fraction,
            max_frames: self.options.max_frames,
        };
        let reduced = snapshot::reduce(file, &profile, &selection, reduction, &mut self.interned)?;
        let kept = Kept {
            key: (profile.time_nanos, file.to_owned()),
            total: reduced.total,
            profile: Arc::new(profile),
        };
        self.snapshots.push(reduced);
        let types: Vec<String> = (kept.profile.sample_types.iter())
            .map(type_and_unit)
            .collect();
        self.sample_types.insert(file.to_owned(), types.join(" "));
        let replace = |slot: &mut Option<Kept>, better: &dyn Fn(&Kept) -> bool| {
            if slot.as_ref().is_none_or(better) {
                *slot = Some(kept.clone());
            }
        };
        // A peak profile is not a snapshot of the series: the timeline sets
        // it apart, and so does the page.
        if timeline::is_peak(&kept.profile) {
            replace(&mut self.peak, &|k| kept.key >= k.key);
        } else {
            replace(&mut self.first, &|k| kept.key < k.key);
            replace(&mut self.last, &|k| kept.key >= k.key);
            replace(&mut self.largest, &|k| kept.total > k.total);
        }
        Ok(())
    }

    /// Writes the page. With no profile added, the timeline's error; with
    /// a profile of another sample type than the series' (a CPU profile
    /// among heap dumps, which the timeline leaves out),
    /// [`Error::NotInSeries`] naming it: a page should not silently chart
    /// fewer profiles than it was given.
    pub fn write(self, out: &mut impl Write) -> Result<(), Error> {
        let timeline = self.timeline.finish()?;
        if let Some(skipped) = timeline.skipped.first() {
            return Err(Error::NotInSeries {
                file: skipped.file.clone(),
                wanted: type_and_unit(&timeline.sample_type),
                found: self
                    .sample_types
                    .get(&skipped.file)
                    .cloned()
                    .unwrap_or_default(),
            });
        }
        let mut interned = self.interned;
        let snapshots = in_timeline_order(self.snapshots, &timeline, &mut interned);
        let peak_is_profile = self.peak.is_some();
        let peak = self.peak.or(self.largest);
        let (Some(first), Some(last), Some(peak)) = (self.first, self.last, peak) else {
            // The timeline has refused a series without snapshots already.
            return Err(Error::NoSampleTypes);
        };
        let index_of = |kept: &Kept| timeline.snapshots.iter().position(|s| s.file == kept.key.1);
        let last_index = index_of(&last).unwrap_or(timeline.snapshots.len() - 1);
        let peak_inuse = if peak_is_profile {
            timeline.peaks.iter().find(|s| s.file == peak.key.1)
        } else {
            index_of(&peak).map(|i| &timeline.snapshots[i])
        }
        .map_or(peak.total, |s| s.inuse_bytes);
        let moments = page::Moments {
            first: (&first.profile, &first.key.1),
            last: (&last.profile, &last.key.1),
            peak: (&peak.profile, &peak.key.1),
            peak_is_profile,
            peak_inuse,
            last_index,
            same_peak_and_last: !peak_is_profile && peak.key == last.key,
        };
        // Every view shows the series' sample type, by name.
        let mut options = self.options;
        options.timeline.selection = Selection {
            sample_index: Some(timeline.sample_type.r#type.clone()),
            ..options.timeline.selection
        };
        page::write(&options, &timeline, &snapshots, &interned, &moments, out)
    }
}

/// `inuse_space/bytes`, as the timeline's errors name sample types.
fn type_and_unit(sample_type: &ValueType) -> String {
    format!("{}/{}", sample_type.r#type, sample_type.unit)
}

/// `selection` with the sample type that [`timeline::reduce`] reads
/// `profile` at: the one named, else `inuse_space` where the profile has
/// it (so that heap profiles of any default join one series), else the
/// profile's default.
fn read_as_timeline_reads(selection: &Selection, profile: &Profile) -> Selection {
    let inuse = profile
        .sample_types
        .iter()
        .any(|t| t.r#type == "inuse_space");
    match &selection.sample_index {
        None if inuse => selection.with_sample_type("inuse_space"),
        _ => selection.clone(),
    }
}

/// `reduced` in the order of the timeline's snapshots (matched by file,
/// in reading order among files of one name), with their memory classes.
fn in_timeline_order(
    reduced: Vec<Reduced>,
    timeline: &Timeline,
    interned: &mut Interned,
) -> Vec<Reduced> {
    let bytes_format = Formatter::auto("bytes");
    let mut by_file: HashMap<String, Vec<Reduced>> = HashMap::new();
    for r in reduced.into_iter().rev() {
        by_file.entry(r.file.clone()).or_default().push(r);
    }
    timeline
        .snapshots
        .iter()
        .filter_map(|snapshot| {
            let mut reduced = by_file.get_mut(&snapshot.file)?.pop()?;
            reduced.classes = snapshot
                .classes
                .iter()
                .map(|(key, bytes)| {
                    // `rss_bytes` reads as `rss` in a table of bytes.
                    let name = key.strip_suffix("_bytes").unwrap_or(key);
                    (interned.id(name), bytes_format.format(*bytes as i64))
                })
                .collect();
            Some(reduced)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::profile;

    const AWKWARD: &str = "<Vec<u8> as Clone>::clone & \"x\"";

    /// A dump `second`s into the run holding `leak` bytes in the awkward
    /// function and 1 MiB in a cache.
    fn dump(second: i64, leak: i64) -> Profile {
        let stacks = format!("main;{}", AWKWARD.replace('>', ")"));
        let mut dump = profile(
            &["inuse_space"],
            &[(&stacks, &[leak]), ("main;cache", &[1 << 20])],
        );
        dump.time_nanos = 1_700_000_000_000_000_000 + second * 1_000_000_000;
        dump
    }

    fn page(profiles: Vec<(&str, Profile)>) -> String {
        let mut report = Builder::new(&Options::default());
        for (file, profile) in profiles {
            report.add(file, profile).unwrap();
        }
        let mut page = Vec::new();
        report.write(&mut page).unwrap();
        String::from_utf8(page).unwrap()
    }

    #[test]
    fn a_peak_profile_is_the_peak_and_not_a_snapshot() {
        let mut peak = dump(9, 64 << 20);
        peak.comments
            .push("heapprof: in-use profile at the peak of live heap: 68157440 bytes".into());
        // Read out of order: the page follows the times.
        let page = page(vec![
            ("b.pb.gz", dump(1, 2 << 20)),
            ("peak.pb.gz", peak),
            ("a.pb.gz", dump(0, 1 << 20)),
            ("c.pb.gz", dump(2, 3 << 20)),
        ]);
        assert!(page.contains("3 snapshots of inuse_space; the peak is peak.pb.gz"));
        assert_eq!(page.matches(r#"<rect class="hit""#).count(), 3);
        assert!(page.contains(r#"<line class="peak""#));
        assert!(page.contains(r#"<section id="peak"><h2>At the peak: peak.pb.gz</h2>"#));
        assert!(page.contains(r#"<section id="last"><h2>At the last snapshot: c.pb.gz</h2>"#));
        assert!(page.contains("From the first snapshot to the last: a.pb.gz to c.pb.gz"));
        let data = page.split(r#"id="heapprof-data">"#).nth(1).unwrap();
        let data: serde_json::Value =
            serde_json::from_str(data.split("</script>").next().unwrap()).unwrap();
        let files: Vec<&str> = data["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["file"].as_str().unwrap())
            .collect();
        assert_eq!(files, ["a.pb.gz", "b.pb.gz", "c.pb.gz"]);
        assert_eq!(data["initial"], 2);
    }

    #[test]
    fn names_reach_the_page_escaped() {
        let page = page(vec![("a.pb.gz", dump(0, 1)), ("b.pb.gz", dump(1, 2 << 20))]);
        let name = AWKWARD.replace('>', ")");
        assert!(!page.contains(&name));
        assert!(page.contains(&page::escape(&name)));
        // In the data, as JSON with '<' escaped: no name can close the script.
        assert!(page.contains(
            &serde_json::to_string(&name)
                .unwrap()
                .replace('<', "\\u003c")
        ));
        assert_eq!(page.matches("</script>").count(), 2);
    }

    #[test]
    fn one_profile_is_one_snapshot_without_chart() {
        let page = page(vec![("a.pb.gz", dump(0, 1 << 20))]);
        assert!(page.contains("One snapshot of inuse_space: 2MB in use."));
        assert!(!page.contains(r#"<svg id="chart""#));
        assert!(!page.contains(r#"id="leaks""#));
        assert!(page.contains(r#"<section id="last"><h2>The profile: a.pb.gz</h2>"#));
    }
}
