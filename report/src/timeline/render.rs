//! A timeline as text (the series, then the leak ranking, with a sparkline
//! per site) or as JSON for scripts. JSON field names are a public format:
//! only add.

use std::io::Write;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use super::{Site, Snapshot, Timeline};
use crate::units::Formatter;
use crate::{json, Error};

/// Text or JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// The series and the ranking as tables.
    #[default]
    Text,
    /// One pretty-printed JSON object (see the README for its fields).
    Json,
}

/// How [`write`](super::write) prints a timeline.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Text or JSON.
    pub format: Format,
    /// A sparkline of each site's in-use in the text ranking (for a
    /// terminal).
    pub sparklines: bool,
    /// Show at most this many sites (0: all).
    pub max_sites: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            format: Format::Text,
            sparklines: true,
            max_sites: 0,
        }
    }
}

/// The widest sparkline, in characters: longer series are averaged into
/// this many columns.
const SPARKLINE_WIDTH: usize = 32;

pub(super) fn write(
    options: &WriteOptions,
    timeline: &Timeline,
    out: &mut impl Write,
) -> Result<(), Error> {
    let shown = match options.max_sites {
        0 => timeline.sites.len(),
        n => n.min(timeline.sites.len()),
    };
    match options.format {
        Format::Json => write_json(timeline, &timeline.sites[..shown], out),
        Format::Text => write_text(options, timeline, &timeline.sites[..shown], out),
    }
}

fn write_text(
    options: &WriteOptions,
    timeline: &Timeline,
    sites: &[Site],
    out: &mut impl Write,
) -> Result<(), Error> {
    let unit = &timeline.sample_type.unit;
    let value = Formatter::auto(unit);
    let bytes = Formatter::auto("bytes");
    let zone = TimeZone::system();
    let snapshots = &timeline.snapshots;
    let span = (snapshots[snapshots.len() - 1].time_nanos - snapshots[0].time_nanos) as f64 / 1e9;
    writeln!(out, "Type: {}", timeline.sample_type.r#type)?;
    writeln!(
        out,
        "Series: {} profile{} over {}",
        snapshots.len(),
        plural(snapshots.len()),
        duration(span)
    )?;
    for peak in &timeline.peaks {
        writeln!(
            out,
            "Peak profile (kept out of the series): {} at {}, live heap {}",
            peak.file,
            clock(peak.time_nanos, &zone),
            peak.live_bytes
                .map_or("unknown".to_owned(), |b| bytes.format(b as i64))
        )?;
    }
    writeln!(
        out,
        "{:<23} {:>10} {:>10} {:>10} {:>10}  file",
        "time", "in-use", "RSS", "live", "change"
    )?;
    let optional = |b: Option<u64>| b.map_or("-".to_owned(), |b| bytes.format(b as i64));
    let mut previous: Option<&Snapshot> = None;
    for snapshot in snapshots {
        let change = previous.map_or("-".to_owned(), |p| {
            signed(&value, snapshot.inuse_bytes - p.inuse_bytes)
        });
        writeln!(
            out,
            "{:<23} {:>10} {:>10} {:>10} {:>10}  {}",
            clock(snapshot.time_nanos, &zone),
            value.format(snapshot.inuse_bytes),
            optional(snapshot.rss_bytes),
            optional(snapshot.live_bytes),
            change,
            snapshot.file
        )?;
        previous = Some(snapshot);
    }
    writeln!(out)?;
    writeln!(
        out,
        "Leak ranking by {} ({} of {} sites): growth per hour from a least-squares fit, R² of the fit; the verdict allows for the sampling error",
        timeline.granularity.as_str(),
        sites.len(),
        timeline.sites.len()
    )?;
    let trend = if options.sparklines { "trend" } else { "" };
    let trend_width = if options.sparklines {
        snapshots.len().min(SPARKLINE_WIDTH)
    } else {
        0
    };
    writeln!(
        out,
        "{:<9} {:>12} {:>5} {:>10}  {:<trend_width$}{}site",
        "verdict",
        "growth/h",
        "fit",
        "in-use",
        trend,
        if options.sparklines { "  " } else { "" }
    )?;
    for site in sites {
        let per_hour = (site.bytes_per_second * 3600.0).round() as i64;
        let line = if options.sparklines {
            format!("{:<trend_width$}  ", sparkline(&site.inuse))
        } else {
            String::new()
        };
        writeln!(
            out,
            "{:<9} {:>12} {:>5.2} {:>10}  {line}{}",
            site.verdict.as_str(),
            format!("{}/h", signed(&value, per_hour)),
            site.fit,
            value.format(site.last_inuse_bytes),
            site.function
        )?;
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `+1.50MB`, `-512kB`, `0`.
fn signed(format: &Formatter, value: i64) -> String {
    let text = format.format(value);
    if value > 0 {
        format!("+{text}")
    } else {
        text
    }
}

/// A time span for a person: `3.6s`, `14m`, `2.5h`, `3.2d`.
fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 120.0 => format!("{s:.1}s"),
        s if s < 7200.0 => format!("{:.0}m", s / 60.0),
        s if s < 172_800.0 => format!("{:.1}h", s / 3600.0),
        s => format!("{:.1}d", s / 86_400.0),
    }
}

/// Unix nanoseconds as a local date and time to the millisecond.
fn clock(nanos: i64, zone: &TimeZone) -> String {
    match Timestamp::from_nanosecond(i128::from(nanos)) {
        Ok(time) => time
            .to_zoned_datetime(zone.clone())
            .strftime("%Y-%m-%d %H:%M:%S%.3f")
            .to_string(),
        Err(_) => nanos.to_string(),
    }
}

/// One character per snapshot (or per group of snapshots, averaged, past
/// [`SPARKLINE_WIDTH`]), from ▁ for 0 to █ for the series' largest value.
pub(super) fn sparkline(values: &[i64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let columns = values.len().min(SPARKLINE_WIDTH);
    if columns == 0 {
        return String::new();
    }
    let averaged: Vec<f64> = (0..columns)
        .map(|c| {
            let (from, to) = (c * values.len() / columns, (c + 1) * values.len() / columns);
            let group = &values[from..to.max(from + 1)];
            group.iter().map(|&v| v as f64).sum::<f64>() / group.len() as f64
        })
        .collect();
    let top = averaged.iter().copied().fold(0.0, f64::max);
    averaged
        .iter()
        .map(|&v| {
            if top <= 0.0 || v <= 0.0 {
                BARS[0]
            } else {
                BARS[((v / top * 7.0).round() as usize).min(7)]
            }
        })
        .collect()
}

#[derive(Serialize)]
struct JsonTimeline<'a> {
    sample_type: &'a str,
    unit: &'a str,
    granularity: &'a str,
    snapshots: Vec<JsonSnapshot<'a>>,
    peaks: Vec<JsonSnapshot<'a>>,
    sites: Vec<JsonSite<'a>>,
}

#[derive(Serialize)]
struct JsonSnapshot<'a> {
    file: &'a str,
    time_nanos: i64,
    inuse_bytes: i64,
    rss_bytes: Option<u64>,
    live_bytes: Option<u64>,
    classes: serde_json::Map<String, serde_json::Value>,
    peak: bool,
    period: i64,
}

#[derive(Serialize)]
struct JsonSite<'a> {
    function: &'a str,
    verdict: &'a str,
    bytes_per_second: f64,
    fit: f64,
    last_inuse_bytes: i64,
    late_bytes_per_second: f64,
    significance: f64,
    inuse: &'a [i64],
    inuse_error: Vec<f64>,
    peak_inuse: &'a [i64],
}

fn json_snapshot(snapshot: &Snapshot) -> JsonSnapshot<'_> {
    JsonSnapshot {
        file: &snapshot.file,
        time_nanos: snapshot.time_nanos,
        inuse_bytes: snapshot.inuse_bytes,
        rss_bytes: snapshot.rss_bytes,
        live_bytes: snapshot.live_bytes,
        classes: snapshot
            .classes
            .iter()
            .map(|(k, v)| (k.clone(), (*v).into()))
            .collect(),
        peak: snapshot.peak,
        period: snapshot.period,
    }
}

fn write_json(timeline: &Timeline, sites: &[Site], out: &mut impl Write) -> Result<(), Error> {
    let json = JsonTimeline {
        sample_type: &timeline.sample_type.r#type,
        unit: &timeline.sample_type.unit,
        granularity: timeline.granularity.as_str(),
        snapshots: timeline.snapshots.iter().map(json_snapshot).collect(),
        peaks: timeline.peaks.iter().map(json_snapshot).collect(),
        sites: sites
            .iter()
            .map(|site| JsonSite {
                function: &site.function,
                verdict: site.verdict.as_str(),
                bytes_per_second: site.bytes_per_second,
                fit: site.fit,
                last_inuse_bytes: site.last_inuse_bytes,
                late_bytes_per_second: site.late_bytes_per_second,
                significance: site.significance,
                inuse: &site.inuse,
                // Whole bytes are precision enough, and keep the output short.
                inuse_error: site.inuse_error.iter().map(|e| e.round()).collect(),
                peak_inuse: &site.peak_inuse,
            })
            .collect(),
    };
    json::write_pretty(&json, out)
}
