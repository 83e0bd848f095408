//! The chart of memory over time, as hand-written SVG: the in-use figure
//! of every snapshot as a stacked area of the largest sites plus "other",
//! resident memory (RSS) as a line where the profiles carry it, and one
//! invisible rectangle per snapshot that the page's script turns into a
//! click that selects it.
//!
//! Hand-written rather than drawn by a charting library: a stacked area
//! and a line are a few polygons, the page needs an element per snapshot
//! with its index on it (which a library's output would have to be
//! post-processed for), and the SVG stays a few kilobytes, drawn the same
//! in every browser, with no script needed to see it.

use std::fmt::Write;

use crate::timeline::Timeline;
use crate::units::Formatter;

use super::page::escape;

/// The colours of the stacked sites, then "other" (grey).
const COLOURS: [&str; 9] = [
    "#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22",
];
const OTHER_COLOUR: &str = "#c7c7c7";
const RSS_COLOUR: &str = "#222";
const PEAK_COLOUR: &str = "#6a3d9a";

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// A series of the chart's key: its name and colour.
pub(super) struct Key {
    /// A function, "other", or "RSS".
    pub(super) name: String,
    /// Its CSS colour.
    pub(super) colour: &'static str,
    /// True for the line, false for an area.
    pub(super) line: bool,
}

/// The chart of `timeline`, its `sites` largest sites stacked, in `unit`;
/// and its key.
pub(super) fn chart(timeline: &Timeline, sites: usize, unit: &str) -> (String, Vec<Key>) {
    let snapshots = &timeline.snapshots;
    let n = snapshots.len();
    // The largest sites, by the most each ever held, stacked in rank order.
    let mut largest: Vec<usize> = (0..timeline.sites.len()).collect();
    let held = |s: usize| timeline.sites[s].inuse.iter().copied().max().unwrap_or(0);
    largest.sort_by_key(|&s| std::cmp::Reverse(held(s)));
    largest.truncate(sites.min(COLOURS.len()));
    largest.retain(|&s| held(s) > 0);
    largest.sort_unstable();
    let mut series: Vec<Vec<i64>> = largest
        .iter()
        .map(|&s| {
            let inuse = &timeline.sites[s].inuse;
            (0..n)
                .map(|i| inuse.get(i).copied().unwrap_or(0).max(0))
                .collect()
        })
        .collect();
    let other: Vec<i64> = (0..n)
        .map(|i| (snapshots[i].inuse_bytes - series.iter().map(|s| s[i]).sum::<i64>()).max(0))
        .collect();
    series.push(other);
    let stacked_max = (0..n)
        .map(|i| series.iter().map(|s| s[i]).sum::<i64>())
        .max()
        .unwrap_or(0);
    let rss_max = snapshots
        .iter()
        .filter_map(|s| s.rss_bytes)
        .max()
        .unwrap_or(0);
    let top_value = nice_ceiling(stacked_max.max(rss_max as i64), unit);

    let xs = x_positions(timeline);
    let x = |i: usize| LEFT + xs[i] * (WIDTH - LEFT - RIGHT);
    let y = |v: i64| TOP + (1.0 - v as f64 / top_value as f64) * (HEIGHT - TOP - BOTTOM);
    let format = Formatter::auto(unit);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="in-use memory over time">"#
    );
    // Grid and the value axis: five steps of the rounded maximum.
    for step in 0..=4 {
        let value = top_value / 4 * step;
        let at = y(value);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{at:.1}" y2="{at:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            at + 4.0,
            escape(&format.format(value))
        );
    }
    // The areas, bottom up.
    let mut below = vec![0i64; n];
    let mut keys = Vec::new();
    for (k, values) in series.iter().enumerate() {
        let is_other = k == series.len() - 1;
        let colour = if is_other { OTHER_COLOUR } else { COLOURS[k] };
        let name = if is_other {
            "other".to_owned()
        } else {
            timeline.sites[largest[k]].function.clone()
        };
        let mut points = String::new();
        for i in 0..n {
            let _ = write!(points, "{:.1},{:.1} ", x(i), y(below[i] + values[i]));
        }
        for i in (0..n).rev() {
            let _ = write!(points, "{:.1},{:.1} ", x(i), y(below[i]));
        }
        let _ = write!(
            svg,
            r#"<polygon class="area" fill="{colour}" points="{}"><title>{}</title></polygon>"#,
            points.trim_end(),
            escape(&name)
        );
        for i in 0..n {
            below[i] += values[i];
        }
        keys.push(Key {
            name,
            colour,
            line: false,
        });
    }
    // RSS, in segments over the snapshots that know it.
    if rss_max > 0 {
        let mut segment = Vec::new();
        let mut segments = Vec::new();
        for (i, snapshot) in snapshots.iter().enumerate() {
            match snapshot.rss_bytes {
                Some(rss) => segment.push(format!("{:.1},{:.1}", x(i), y(rss as i64))),
                None => segments.push(std::mem::take(&mut segment)),
            }
        }
        segments.push(segment);
        for segment in segments.iter().filter(|s| !s.is_empty()) {
            let _ = write!(
                svg,
                r#"<polyline class="rss" stroke="{RSS_COLOUR}" points="{}"/>"#,
                segment.join(" ")
            );
        }
        keys.push(Key {
            name: "RSS (resident memory)".to_owned(),
            colour: RSS_COLOUR,
            line: true,
        });
    }
    // The time axis: seconds since the first snapshot, at both ends and
    // in between.
    let span_seconds = seconds_between(timeline, 0, n - 1);
    for step in 0..=4 {
        let fraction = f64::from(step) / 4.0;
        let label = match span_seconds {
            Some(span) => elapsed(span * fraction),
            None => format!("#{}", 1 + ((n - 1) as f64 * fraction).round() as usize),
        };
        let anchor = match step {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            svg,
            r#"<text class="axis" x="{:.1}" y="{}" text-anchor="{anchor}">{}</text>"#,
            LEFT + fraction * (WIDTH - LEFT - RIGHT),
            HEIGHT - 8.0,
            escape(&label)
        );
    }
    // heapprof's peak profiles, apart from the series: written when the
    // program ends, of an earlier moment whose time they do not keep, so
    // a level across the chart rather than a point on it.
    for peak in &timeline.peaks {
        let level = y(peak.inuse_bytes);
        let _ = write!(
            svg,
            r#"<line class="peak" x1="{LEFT}" x2="{}" y1="{level:.1}" y2="{level:.1}"><title>{}: peak profile, {} in use</title></line>"#,
            WIDTH - RIGHT,
            escape(&peak.file),
            escape(&format.format(peak.inuse_bytes))
        );
    }
    if !timeline.peaks.is_empty() {
        keys.push(Key {
            name: "peak profile's in-use".to_owned(),
            colour: PEAK_COLOUR,
            line: true,
        });
    }
    // The selected snapshot's marker, moved by the script.
    let _ = write!(
        svg,
        r#"<line id="cursor" x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1}"/>"#,
        x(n - 1),
        HEIGHT - BOTTOM
    );
    // One hit area per snapshot, from halfway to its left neighbour to
    // halfway to its right one.
    for (i, snapshot) in snapshots.iter().enumerate() {
        let left = if i == 0 {
            LEFT
        } else {
            (x(i - 1) + x(i)) / 2.0
        };
        let right = if i + 1 == n {
            WIDTH - RIGHT
        } else {
            (x(i) + x(i + 1)) / 2.0
        };
        let mut title = format!(
            "{}: {} in use",
            snapshot.file,
            format.format(snapshot.inuse_bytes)
        );
        if let Some(rss) = snapshot.rss_bytes {
            let _ = write!(title, ", RSS {}", format.format(rss as i64));
        }
        if snapshot.peak {
            title.push_str(" (peak profile)");
        }
        let _ = write!(
            svg,
            r#"<rect class="hit" data-index="{i}" data-x="{:.1}" x="{left:.1}" y="{TOP}" width="{:.1}" height="{}"><title>{}</title></rect>"#,
            x(i),
            (right - left).max(0.5),
            HEIGHT - TOP - BOTTOM,
            escape(&title)
        );
    }
    svg.push_str("</svg>");
    (svg, keys)
}

/// Where each snapshot is along the time axis, from 0 to 1: by its time
/// when the times increase, else evenly (profiles without times).
fn x_positions(timeline: &Timeline) -> Vec<f64> {
    let n = timeline.snapshots.len();
    if n < 2 {
        return vec![1.0; n];
    }
    match seconds_between(timeline, 0, n - 1) {
        Some(span) => (0..n)
            .map(|i| seconds_between(timeline, 0, i).unwrap_or(0.0) / span)
            .collect(),
        None => (0..n).map(|i| i as f64 / (n - 1) as f64).collect(),
    }
}

/// Seconds from snapshot `a` to snapshot `b`, when the profiles have times
/// and the series spans some time.
fn seconds_between(timeline: &Timeline, a: usize, b: usize) -> Option<f64> {
    let snapshots = &timeline.snapshots;
    let first = snapshots.first()?.time_nanos;
    let last = snapshots.last()?.time_nanos;
    if first <= 0 || last <= first {
        return None;
    }
    Some((snapshots[b].time_nanos - snapshots[a].time_nanos) as f64 / 1e9)
}

/// Time since the first snapshot, in the unit that reads best: `+12.5s`,
/// `+4.5min`, `+26h`.
fn elapsed(seconds: f64) -> String {
    let (value, unit) = if seconds < 120.0 {
        (seconds, "s")
    } else if seconds < 7200.0 {
        (seconds / 60.0, "min")
    } else {
        (seconds / 3600.0, "h")
    };
    let text = format!("{value:.1}");
    format!("+{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
}

/// The top of the value axis: four steps of a round figure (1, 2, 2.5 or 5
/// times a power of ten, of a power of 1024 for bytes) that reach `value`.
fn nice_ceiling(value: i64, unit: &str) -> i64 {
    let base: i64 = if unit == "bytes" { 1024 } else { 1000 };
    let quarter = (value.max(1) + 3) / 4;
    let mut scale: i64 = 1;
    while scale.saturating_mul(base) <= quarter && scale < i64::MAX / base {
        scale *= base;
    }
    let scaled = quarter as f64 / scale as f64;
    let step = [
        1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 200.0, 250.0, 500.0,
    ]
    .into_iter()
    .find(|&m| m >= scaled)
    .map_or(scale.saturating_mul(base), |m| {
        (m * scale as f64).ceil() as i64
    });
    step.saturating_mul(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_reads_in_seconds_minutes_or_hours() {
        assert_eq!(elapsed(0.0), "+0s");
        assert_eq!(elapsed(12.46), "+12.5s");
        assert_eq!(elapsed(270.0), "+4.5min");
        assert_eq!(elapsed(93_600.0), "+26h");
    }

    #[test]
    fn the_axis_ends_at_a_round_figure_above_the_maximum() {
        assert_eq!(nice_ceiling(1, "bytes"), 4);
        assert_eq!(nice_ceiling(7, "bytes"), 8);
        assert_eq!(nice_ceiling(3 << 20, "bytes"), 4 << 20);
        assert_eq!(nice_ceiling((33 << 20) + 5, "bytes"), 40 << 20);
        assert_eq!(nice_ceiling(900, "count"), 1000);
        assert!(nice_ceiling(1 << 40, "bytes") >= 1 << 40);
    }
}
