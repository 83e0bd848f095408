//! The lifetimes view: from one heapprof profile, the two questions users
//! ask of lifetimes, per site (the leaf function, named as in the top
//! table, after the selection's filters).
//!
//! - Of a **lifetimes profile** (sample types `freed_objects`,
//!   `freed_space`, `lifetime`; one sample per site and `lifetime` class):
//!   which sites make short-lived, temporary allocations. Per site its
//!   freed objects and bytes, their mean lifetime (`lifetime` /
//!   `freed_objects`) and the share in each lifetime class, `<1ms` first;
//!   sites with the most bytes freed within 1 ms first.
//! - Of a **heap profile with `age` labels** (heapprof's own): which sites
//!   hold old memory, the leak suspects. Per site its in-use objects and
//!   bytes and the share in each age class; sites with the most bytes in
//!   the oldest classes first.
//!
//! [`kind`] tells which a profile is, from its sample types and labels;
//! any other profile is [`Error::NotLifetimes`]. Figures are the samples'
//! own, added up: per site, freed objects and bytes equal the flat
//! figures of `go tool pprof -top -sample_index=freed_objects` (and
//! `freed_space`). A sample whose class label is missing or unknown counts
//! in its site's totals and in no class, so that no figure is invented.

use std::collections::HashMap;
use std::io::Write;

use heapprof_pprof::{Profile, Sample, ValueType};
use serde::Serialize;

use crate::header::{self, Header};
use crate::labels::strings;
use crate::stacks::{self, Names, Selection};
use crate::units::{duration_micros, percentage, ratio, Formatter};
use crate::Error;

/// The `lifetime` label values of a lifetimes profile, shortest first.
pub const LIFETIME_CLASSES: [&str; 5] = ["<1ms", "1ms-1s", "1s-1m", "1m-1h", ">1h"];
/// The `age` label values of a heap profile's in-use samples, youngest
/// first.
pub const AGE_CLASSES: [&str; 4] = ["<1s", "1s-1m", "1m-1h", ">1h"];

/// Which question a profile answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A lifetimes profile: freed blocks by lifetime class.
    Lifetimes,
    /// A heap profile whose in-use samples carry an `age` label.
    Ages,
}

impl Kind {
    /// The class label's key.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Lifetimes => "lifetime",
            Kind::Ages => "age",
        }
    }

    /// The class names, shortest (youngest) first.
    pub fn classes(self) -> &'static [&'static str] {
        match self {
            Kind::Lifetimes => &LIFETIME_CLASSES,
            Kind::Ages => &AGE_CLASSES,
        }
    }

    /// The sample types the view reads: objects, bytes and, for a
    /// lifetimes profile, the lifetime sum.
    fn sample_types(self) -> &'static [&'static str] {
        match self {
            Kind::Lifetimes => &["freed_objects", "freed_space", "lifetime"],
            Kind::Ages => &["inuse_objects", "inuse_space"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Lifetimes => "lifetimes",
            Kind::Ages => "ages",
        }
    }
}

/// Which sites come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// Most bytes in the shortest class, then the next, ...: temporary
    /// allocations (a lifetimes profile's default), or the youngest memory.
    Temporary,
    /// Most bytes in the longest (oldest) non-empty classes: leak suspects
    /// (a heap profile's default), or the longest-lived freed blocks.
    Old,
    /// Most bytes.
    Bytes,
    /// Most objects.
    Objects,
    /// Longest mean lifetime (lifetimes profiles only).
    Mean,
}

/// What the class columns are shares of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Share {
    /// Of each site's bytes.
    #[default]
    Bytes,
    /// Of each site's objects.
    Objects,
}

/// What [`write()`] prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// A table per site with a header like the top table's.
    #[default]
    Table,
    /// The figures as pretty-printed JSON, with raw values.
    Json,
}

/// Options of the lifetimes view.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The filters. Its sample type is not used: the view reads the
    /// sample types it needs ([`Kind`]).
    pub selection: Selection,
    /// The order of the sites; `None` for the kind's own (temporary for a
    /// lifetimes profile, old for a heap profile).
    pub sort: Option<Sort>,
    /// What the class columns are shares of.
    pub share: Share,
    /// Count each stack for every function on it, once (top's cum),
    /// instead of for its leaf alone.
    pub cum: bool,
    /// Show at most this many sites (0: all).
    pub node_count: usize,
    /// Text or JSON.
    pub format: Format,
}

/// One site's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Site {
    /// The function's name, as the top table shows it.
    pub name: String,
    /// Its source file ("" when unknown or more than one).
    pub file: String,
    /// Objects (freed, or in use).
    pub objects: i64,
    /// Bytes (freed, or in use).
    pub bytes: i64,
    /// The freed objects' lifetimes summed, in microseconds (0 for ages).
    pub lifetime_micros: i64,
    /// Per class, shortest first: (objects, bytes, lifetime in µs).
    pub classes: Vec<(i64, i64, i64)>,
}

impl Site {
    /// The mean lifetime in microseconds, if any object was freed.
    pub fn mean_micros(&self) -> Option<f64> {
        (self.objects > 0).then(|| self.lifetime_micros as f64 / self.objects as f64)
    }
}

/// The view's figures of a profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Lifetimes {
    /// Which question they answer.
    pub kind: Kind,
    /// The whole profile's objects, bytes and lifetime sum (µs), before
    /// filters, as the top table's total.
    pub total: (i64, i64, i64),
    /// The unit of the bytes.
    pub bytes_unit: String,
    /// The sites, in the order asked for, cut to the node count.
    pub sites: Vec<Site>,
    /// How many sites there were before the cut.
    pub site_count: usize,
}

/// Which kind of profile `profile` is, or why the view cannot show it.
pub fn kind(profile: &Profile) -> Result<Kind, Error> {
    let has = |name: &str| profile.sample_types.iter().any(|t| t.r#type == name);
    if Kind::Lifetimes.sample_types().iter().all(|t| has(t)) {
        return Ok(Kind::Lifetimes);
    }
    let aged = profile
        .samples
        .iter()
        .any(|s| strings(s).any(|(key, _)| key == "age"));
    if aged && Kind::Ages.sample_types().iter().all(|t| has(t)) {
        return Ok(Kind::Ages);
    }
    let types: Vec<&str> = profile
        .sample_types
        .iter()
        .map(|t| t.r#type.as_str())
        .collect();
    Err(Error::NotLifetimes {
        sample_types: types.join(" "),
    })
}

/// The figures of `profile` under `options`' filters, sort and cut.
pub fn tally(profile: &Profile, options: &Options) -> Result<Lifetimes, Error> {
    let kind = kind(profile)?;
    let sort = options.sort.unwrap_or(match kind {
        Kind::Lifetimes => Sort::Temporary,
        Kind::Ages => Sort::Old,
    });
    if sort == Sort::Mean && kind == Kind::Ages {
        return Err(Error::NoLifetimes);
    }
    let types: Vec<usize> = kind
        .sample_types()
        .iter()
        .map(|name| profile.sample_types.iter().position(|t| t.r#type == *name))
        .collect::<Option<_>>()
        .expect("kind() found every sample type");
    // Lifetimes in any time unit, read as microseconds.
    let micros_per_unit = match kind {
        Kind::Lifetimes => {
            let unit = &profile.sample_types[types[2]].unit;
            if Formatter::nanoseconds(1, unit).is_none() {
                return Err(Error::LifetimeUnit { unit: unit.clone() });
            }
            ratio(unit, "microseconds")
        }
        Kind::Ages => 0.0,
    };
    let classes = kind.classes();
    let class_of = |sample: &Sample| {
        strings(sample)
            .find(|(key, _)| *key == kind.key())
            .and_then(|(_, value)| classes.iter().position(|c| *c == value))
            .unwrap_or(classes.len())
    };
    // One column per (class or "other", sample type), each holding a
    // sample's value in its own class and 0 elsewhere: the stacks of one
    // column then add up one class alone, through the selection's filters.
    let columns = (classes.len() + 1) * types.len();
    let split = Profile {
        sample_types: (0..columns)
            .map(|c| ValueType::new(&format!("column{c}"), "count"))
            .collect(),
        samples: profile
            .samples
            .iter()
            .map(|sample| {
                let mut values = vec![0; columns];
                let class = class_of(sample);
                for (t, &index) in types.iter().enumerate() {
                    values[class * types.len() + t] = sample.values[index];
                }
                Sample {
                    values,
                    ..sample.clone()
                }
            })
            .collect(),
        mappings: profile.mappings.clone(),
        locations: profile.locations.clone(),
        functions: profile.functions.clone(),
        ..Profile::default()
    };
    let mut names = Names::default();
    let mut figures: HashMap<u32, Vec<i64>> = HashMap::new();
    for column in 0..columns {
        if split.samples.iter().all(|s| s.values[column] == 0) {
            continue;
        }
        let selection = options.selection.with_sample_type(&column.to_string());
        let selected = stacks::select(&split, &selection, &mut names)?;
        for stack in &selected.stacks {
            let mut add = |function: u32| {
                figures.entry(function).or_insert_with(|| vec![0; columns])[column] += stack.value;
            };
            if options.cum {
                let mut seen: Vec<u32> = Vec::with_capacity(stack.frames.len());
                for frame in &stack.frames {
                    if !seen.contains(&frame.function) {
                        seen.push(frame.function);
                        add(frame.function);
                    }
                }
            } else if let Some(leaf) = stack.frames.first() {
                add(leaf.function);
            }
        }
    }
    let micros = |value: i64| (value as f64 * micros_per_unit) as i64;
    let mut sites: Vec<Site> = figures
        .into_iter()
        .map(|(function, values)| {
            let at = |class: usize, t: usize| values[class * types.len() + t];
            let all = |t: usize| (0..=classes.len()).map(|c| at(c, t)).sum::<i64>();
            let lifetime = |class: usize| {
                if kind == Kind::Lifetimes {
                    micros(at(class, 2))
                } else {
                    0
                }
            };
            Site {
                name: names.name(function).to_owned(),
                file: names.file(function).to_owned(),
                objects: all(0),
                bytes: all(1),
                lifetime_micros: (0..=classes.len()).map(lifetime).sum(),
                classes: (0..classes.len())
                    .map(|c| (at(c, 0), at(c, 1), lifetime(c)))
                    .collect(),
            }
        })
        .collect();
    sort_sites(&mut sites, sort);
    let site_count = sites.len();
    if options.node_count > 0 {
        sites.truncate(options.node_count);
    }
    let sum = |index: usize| profile.samples.iter().map(|s| s.values[index].abs()).sum();
    Ok(Lifetimes {
        kind,
        total: (
            sum(types[0]),
            sum(types[1]),
            if kind == Kind::Lifetimes {
                micros(sum(types[2]))
            } else {
                0
            },
        ),
        bytes_unit: profile.sample_types[types[1]].unit.clone(),
        sites,
        site_count,
    })
}

fn sort_sites(sites: &mut [Site], sort: Sort) {
    let bytes_by_class = |site: &Site| site.classes.iter().map(|c| c.1).collect::<Vec<i64>>();
    sites.sort_by(|a, b| {
        let order = match sort {
            Sort::Temporary => bytes_by_class(b).cmp(&bytes_by_class(a)),
            Sort::Old => {
                let oldest_first = |s: &Site| {
                    let mut bytes = bytes_by_class(s);
                    bytes.reverse();
                    bytes
                };
                oldest_first(b).cmp(&oldest_first(a))
            }
            Sort::Bytes => b.bytes.cmp(&a.bytes),
            Sort::Objects => b.objects.cmp(&a.objects),
            Sort::Mean => {
                let mean = |s: &Site| s.mean_micros().unwrap_or(0.0);
                mean(b).total_cmp(&mean(a))
            }
        };
        order
            .then_with(|| b.bytes.cmp(&a.bytes))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.file.cmp(&b.file))
    });
}

/// Writes the lifetimes view of `profile`.
///
/// ```
/// use heapprof_pprof::{Function, Label, LabelValue, Line, Location, Profile, Sample, ValueType};
/// use heapprof_report::lifetimes;
///
/// // parse freed 100 blocks of 4 KiB, 5 µs each on average.
/// let profile = Profile {
///     sample_types: vec![
///         ValueType::new("freed_objects", "count"),
///         ValueType::new("freed_space", "bytes"),
///         ValueType::new("lifetime", "microseconds"),
///     ],
///     functions: vec![Function { name: "parse".into(), ..Function::default() }],
///     locations: vec![Location { lines: vec![Line { function: 0, line: 0 }], ..Location::default() }],
///     samples: vec![Sample {
///         locations: vec![0],
///         values: vec![100, 409_600, 500],
///         labels: vec![Label { key: "lifetime".into(), value: LabelValue::Str("<1ms".into()) }],
///     }],
///     ..Profile::default()
/// };
/// let mut out = Vec::new();
/// lifetimes::write(&lifetimes::Options::default(), &profile, &mut out)?;
/// let table = String::from_utf8(out).unwrap();
/// assert!(table.ends_with("       100      400kB        5µs   100%     0%     0%     0%     0%  parse\n"));
/// # Ok::<(), heapprof_report::Error>(())
/// ```
pub fn write(options: &Options, profile: &Profile, out: &mut impl Write) -> Result<(), Error> {
    let figures = tally(profile, options)?;
    match options.format {
        Format::Json => write_json(&figures, out),
        Format::Table => {
            let unit = &figures.bytes_unit;
            let smallest = figures
                .sites
                .iter()
                .map(|s| s.bytes.abs())
                .filter(|&b| b > 0)
                .min()
                .unwrap_or(0);
            let format = Formatter::for_range(unit, smallest, figures.total.1);
            let header = Header {
                profiles: &[profile],
                sample_type: match figures.kind {
                    Kind::Lifetimes => "lifetimes of freed blocks (a lifetimes profile)",
                    Kind::Ages => "in-use memory by age (a heap profile with age labels)",
                },
                unit,
                total: figures.total.1,
                format: &format,
                filters: &options.selection.filters,
            };
            header::write(&header, out)?;
            write_table(&figures, options.share, &format, out)
        }
    }
}

fn write_table(
    figures: &Lifetimes,
    share: Share,
    format: &Formatter,
    out: &mut impl Write,
) -> Result<(), Error> {
    let (objects, bytes, micros) = figures.total;
    let lifetimes = figures.kind == Kind::Lifetimes;
    let (verb, of) = if lifetimes {
        ("Freed", "freed")
    } else {
        ("In use", "in use")
    };
    if lifetimes {
        let mean = match objects {
            0 => "none".to_owned(),
            n => duration_micros(micros as f64 / n as f64),
        };
        writeln!(
            out,
            "{verb}: {objects} objects, {}, mean lifetime {mean}",
            format.format(bytes)
        )?;
    } else {
        writeln!(out, "{verb}: {objects} objects, {}", format.format(bytes))?;
    }
    let shown: i64 = figures.sites.iter().map(|s| s.bytes).sum();
    let sites = figures.site_count;
    let plural = if sites == 1 { "" } else { "s" };
    let count = if figures.sites.len() < sites {
        format!("{} of {sites} site{plural}", figures.sites.len())
    } else {
        format!("{sites} site{plural}")
    };
    let (class_kind, share_of) = match (lifetimes, share) {
        (true, Share::Bytes) => ("lifetime", "freed bytes"),
        (true, Share::Objects) => ("lifetime", "freed objects"),
        (false, Share::Bytes) => ("age", "in-use bytes"),
        (false, Share::Objects) => ("age", "in-use objects"),
    };
    writeln!(
        out,
        "Showing {count} accounting for {}, {} of {} {of}; {class_kind} classes as shares of each site's {share_of}",
        format.format(shown),
        percentage(shown, bytes).trim(),
        format.format(bytes),
    )?;
    write!(out, "{:>10} {:>10}", "objects", "bytes")?;
    if lifetimes {
        write!(out, " {:>10}", "mean")?;
    }
    for class in figures.kind.classes() {
        write!(out, " {class:>6}")?;
    }
    writeln!(out, "  site")?;
    for site in &figures.sites {
        write!(
            out,
            "{:>10} {:>10}",
            site.objects,
            format.format(site.bytes)
        )?;
        if lifetimes {
            let mean = site.mean_micros().map_or("-".to_owned(), duration_micros);
            write!(out, " {mean:>10}")?;
        }
        for &(objects, bytes, _) in &site.classes {
            let part = match share {
                Share::Bytes => percentage(bytes, site.bytes),
                Share::Objects => percentage(objects, site.objects),
            };
            write!(out, " {part}")?;
        }
        writeln!(out, "  {}", site.name)?;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonLifetimes<'a> {
    kind: &'static str,
    classes: &'static [&'static str],
    bytes_unit: &'a str,
    total: JsonFigures,
    site_count: usize,
    sites: Vec<JsonSite<'a>>,
}

#[derive(Serialize)]
struct JsonFigures {
    objects: i64,
    bytes: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifetime_micros: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mean_lifetime_micros: Option<f64>,
}

#[derive(Serialize)]
struct JsonSite<'a> {
    name: &'a str,
    file: &'a str,
    #[serde(flatten)]
    figures: JsonFigures,
    classes: Vec<JsonClass>,
}

#[derive(Serialize)]
struct JsonClass {
    class: &'static str,
    #[serde(flatten)]
    figures: JsonFigures,
    objects_percent: f64,
    bytes_percent: f64,
}

fn write_json(figures: &Lifetimes, out: &mut impl Write) -> Result<(), Error> {
    let lifetimes = figures.kind == Kind::Lifetimes;
    let json_figures = |objects: i64, bytes: i64, micros: i64| JsonFigures {
        objects,
        bytes,
        lifetime_micros: lifetimes.then_some(micros),
        mean_lifetime_micros: (lifetimes && objects > 0).then(|| micros as f64 / objects as f64),
    };
    let percent = |v: i64, of: i64| {
        if of == 0 {
            0.0
        } else {
            v as f64 * 100.0 / of as f64
        }
    };
    let (objects, bytes, micros) = figures.total;
    let json = JsonLifetimes {
        kind: figures.kind.name(),
        classes: figures.kind.classes(),
        bytes_unit: &figures.bytes_unit,
        total: json_figures(objects, bytes, micros),
        site_count: figures.site_count,
        sites: figures
            .sites
            .iter()
            .map(|site| JsonSite {
                name: &site.name,
                file: &site.file,
                figures: json_figures(site.objects, site.bytes, site.lifetime_micros),
                classes: figures
                    .kind
                    .classes()
                    .iter()
                    .zip(&site.classes)
                    .map(|(class, &(objects, bytes, micros))| JsonClass {
                        class,
                        figures: json_figures(objects, bytes, micros),
                        objects_percent: percent(objects, site.objects),
                        bytes_percent: percent(bytes, site.bytes),
                    })
                    .collect(),
            })
            .collect(),
    };
    crate::json::write_pretty(&json, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::TagFilter;
    use crate::testing::{profile, text};

    /// churn: 2000 blocks freed within 1 ms (12µs each) and 10 within a
    /// second; parse: 100 temporary blocks and one held 2 minutes; cache:
    /// 10 blocks held 1.1 s each.
    fn freed() -> Profile {
        let mut profile = profile(
            &["freed_objects", "freed_space", "lifetime"],
            &[
                ("main;work;churn", &[2000, 6_402_000, 24_000]),
                ("main;work;churn", &[10, 32_010, 50_000]),
                ("main;cache", &[10, 30_010, 11_000_000]),
                ("main;parse", &[100, 409_600, 30_000]),
                ("main;parse", &[1, 4096, 120_000_000]),
            ],
        );
        profile.sample_types[2].unit = "microseconds".into();
        profile.default_sample_type = "freed_space".into();
        let classes = ["<1ms", "1ms-1s", "1s-1m", "<1ms", "1m-1h"];
        for (sample, class) in profile.samples.iter_mut().zip(classes) {
            sample.labels = vec![text("lifetime", class)];
        }
        profile.samples[3].labels.push(text("endpoint", "/parse"));
        profile
    }

    /// cache holds 10 blocks 1.1 s old and 2 over an hour old; young holds
    /// 20 new ones; gone's blocks were all freed.
    fn aged() -> Profile {
        let mut profile = profile(
            &[
                "alloc_objects",
                "alloc_space",
                "inuse_objects",
                "inuse_space",
            ],
            &[
                ("main;cache", &[10, 30_010, 10, 30_010]),
                ("main;cache", &[2, 8192, 2, 8192]),
                ("main;young", &[20, 62_020, 20, 62_020]),
                ("main;gone", &[2000, 6_402_000, 0, 0]),
            ],
        );
        for (sample, age) in profile
            .samples
            .iter_mut()
            .zip(["1s-1m", ">1h", "<1s", "freed"])
        {
            sample.labels = vec![text("age", age)];
        }
        profile
    }

    fn shown(options: &Options, profile: &Profile) -> String {
        let mut out = Vec::new();
        write(options, profile, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn temporary_sites_come_first_with_their_mean_lifetime() {
        assert_eq!(
            shown(&Options::default(), &freed()),
            "Type: lifetimes of freed blocks (a lifetimes profile)
Freed: 2121 objects, 6.56MB, mean lifetime 61.81ms
Showing 3 sites accounting for 6.56MB, 100% of 6.56MB freed; lifetime classes as shares of each site's freed bytes
   objects      bytes       mean   <1ms 1ms-1s  1s-1m  1m-1h    >1h  site
      2010     6.14MB    36.82µs 99.50%   0.5%     0%     0%     0%  churn
       101     0.39MB      1.19s 99.01%     0%     0%  0.99%     0%  parse
        10     0.03MB      1.10s     0%     0%   100%     0%     0%  cache
"
        );
    }

    #[test]
    fn filters_sorts_shares_and_cuts_apply() {
        let mut selection = Selection::default();
        selection.filters.tag_ignore = Some(TagFilter::parse("endpoint=/parse").unwrap());
        let options = Options {
            selection,
            sort: Some(Sort::Mean),
            share: Share::Objects,
            node_count: 2,
            ..Options::default()
        };
        // parse's temporary sample is gone: its one block held 2 minutes is
        // left, the longest mean lifetime; the totals stay the profile's,
        // and the unit follows the smallest row shown, as in top.
        assert_eq!(
            shown(&options, &freed()),
            "Type: lifetimes of freed blocks (a lifetimes profile)
Active filters:
   tagignore=endpoint=/parse
Freed: 2121 objects, 6716.52kB, mean lifetime 61.81ms
Showing 2 of 3 sites accounting for 33.31kB, 0.5% of 6716.52kB freed; lifetime classes as shares of each site's freed objects
   objects      bytes       mean   <1ms 1ms-1s  1s-1m  1m-1h    >1h  site
         1        4kB       2min     0%     0%     0%   100%     0%  parse
        10    29.31kB      1.10s     0%     0%   100%     0%     0%  cache
"
        );
        let order = |sort: Sort, cum: bool| {
            let options = Options {
                sort: Some(sort),
                cum,
                ..Options::default()
            };
            let figures = tally(&freed(), &options).unwrap();
            let sites = figures.sites.iter().map(|s| (s.name.clone(), s.bytes));
            sites.collect::<Vec<_>>()
        };
        let named = |list: &[(&str, i64)]| {
            list.iter()
                .map(|&(n, b)| (n.to_owned(), b))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(Sort::Old, false),
            named(&[("parse", 413_696), ("cache", 30_010), ("churn", 6_434_010)])
        );
        assert_eq!(
            order(Sort::Objects, false),
            named(&[("churn", 6_434_010), ("parse", 413_696), ("cache", 30_010)])
        );
        // By every function on the stack: main holds all of it.
        assert_eq!(
            order(Sort::Bytes, true),
            named(&[
                ("main", 6_877_716),
                ("churn", 6_434_010),
                ("work", 6_434_010),
                ("parse", 413_696),
                ("cache", 30_010)
            ])
        );
    }

    #[test]
    fn json_has_raw_figures_per_site_and_class() {
        let options = Options {
            format: Format::Json,
            ..Options::default()
        };
        let json: serde_json::Value = serde_json::from_str(&shown(&options, &freed())).unwrap();
        assert_eq!(json["kind"], "lifetimes");
        assert_eq!(json["classes"][0], "<1ms");
        assert_eq!(json["bytes_unit"], "bytes");
        assert_eq!(json["site_count"], 3);
        assert_eq!(json["total"]["objects"], 2121);
        assert_eq!(json["total"]["lifetime_micros"], 131_104_000);
        let churn = &json["sites"][0];
        assert_eq!(
            (&churn["name"], &churn["file"]),
            (&"churn".into(), &"churn.rs".into())
        );
        assert_eq!(
            (&churn["objects"], &churn["bytes"]),
            (&2010.into(), &6_434_010.into())
        );
        assert_eq!(churn["mean_lifetime_micros"], 74_000.0 / 2010.0);
        let short = &churn["classes"][0];
        assert_eq!(short["class"], "<1ms");
        assert_eq!(
            (&short["objects"], &short["lifetime_micros"]),
            (&2000.into(), &24_000.into())
        );
        assert_eq!(short["mean_lifetime_micros"], 12.0);
        assert_eq!(short["bytes_percent"], 6_402_000.0 * 100.0 / 6_434_010.0);
        assert!(churn["classes"][4].get("mean_lifetime_micros").is_none());
        // A heap profile's, whole: no lifetime fields.
        let aged: serde_json::Value = serde_json::from_str(&shown(&options, &aged())).unwrap();
        let class = |class: &str, objects: i64, bytes: i64, of: (i64, i64)| {
            serde_json::json!({
                "class": class,
                "objects": objects,
                "bytes": bytes,
                "objects_percent": objects as f64 * 100.0 / of.0 as f64,
                "bytes_percent": bytes as f64 * 100.0 / of.1 as f64,
            })
        };
        let (cache, young) = ((12, 38_202), (20, 62_020));
        assert_eq!(
            aged,
            serde_json::json!({
                "kind": "ages",
                "classes": ["<1s", "1s-1m", "1m-1h", ">1h"],
                "bytes_unit": "bytes",
                "total": {"objects": 32, "bytes": 100_222},
                "site_count": 2,
                "sites": [
                    {
                        "name": "cache",
                        "file": "cache.rs",
                        "objects": 12,
                        "bytes": 38_202,
                        "classes": [
                            class("<1s", 0, 0, cache),
                            class("1s-1m", 10, 30_010, cache),
                            class("1m-1h", 0, 0, cache),
                            class(">1h", 2, 8192, cache),
                        ],
                    },
                    {
                        "name": "young",
                        "file": "young.rs",
                        "objects": 20,
                        "bytes": 62_020,
                        "classes": [
                            class("<1s", 20, 62_020, young),
                            class("1s-1m", 0, 0, young),
                            class("1m-1h", 0, 0, young),
                            class(">1h", 0, 0, young),
                        ],
                    },
                ],
            })
        );
    }

    #[test]
    fn old_memory_comes_first_in_a_heap_profile() {
        assert_eq!(
            shown(&Options::default(), &aged()),
            "Type: in-use memory by age (a heap profile with age labels)
In use: 32 objects, 97.87kB
Showing 2 sites accounting for 97.87kB, 100% of 97.87kB in use; age classes as shares of each site's in-use bytes
   objects      bytes    <1s  1s-1m  1m-1h    >1h  site
        12    37.31kB     0% 78.56%     0% 21.44%  cache
        20    60.57kB   100%     0%     0%     0%  young
"
        );
    }

    #[test]
    fn profiles_without_lifetimes_or_ages_are_refused() {
        let error = |profile: &Profile, sort: Option<Sort>| {
            let options = Options {
                sort,
                ..Options::default()
            };
            tally(profile, &options).unwrap_err().to_string()
        };
        // A Go heap profile: the sample types, and no age labels.
        let go_heap = profile(
            &[
                "alloc_objects",
                "alloc_space",
                "inuse_objects",
                "inuse_space",
            ],
            &[("main;f", &[1, 2, 1, 2])],
        );
        let message = error(&go_heap, None);
        assert!(
            message.contains("/debug/pprof/lifetimes")
                && message.contains("heapprof::write_lifetimes_profile")
                && message.contains("[alloc_objects alloc_space inuse_objects inuse_space]"),
            "{message}"
        );
        assert!(error(&profile(&["samples"], &[("f", &[1])]), None).contains("[samples]"));
        assert!(error(&aged(), Some(Sort::Mean)).contains("no lifetimes"));
        let mut in_bytes = freed();
        in_bytes.sample_types[2].unit = "bytes".into();
        assert_eq!(
            error(&in_bytes, None),
            "the lifetime sample type is in \"bytes\", not a unit of time"
        );
        // Lifetimes in another unit of time are converted.
        let mut in_ms = freed();
        in_ms.sample_types[2].unit = "milliseconds".into();
        let figures = tally(&in_ms, &Options::default()).unwrap();
        assert_eq!(figures.total.2, 131_104_000_000);
    }
}
