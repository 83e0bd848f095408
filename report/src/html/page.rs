//! The page itself: its sections in order, the static views of the other
//! modules embedded as they are, the per-snapshot data as JSON for the
//! script, the script and the style inline. Every text from a profile
//! passes through [`escape`] (HTML) or serde_json with `<` escaped (the
//! data), since function names hold `<`, `&` and quotes.

use std::fmt::Write as _;
use std::io::Write;

use heapprof_pprof::Profile;
use serde::Serialize;

use crate::timeline::Timeline;
use crate::units::Formatter;
use crate::{diff, flamegraph, graph, top, Error};

use super::chart;
use super::snapshot::{Interned, Reduced};
use super::Options;

/// The page's script: selecting a snapshot redraws its table, flamegraph
/// and memory classes.
const SCRIPT: &str = include_str!("report.js");
/// The page's style.
const STYLE: &str = include_str!("report.css");

/// The profiles kept whole, with their file names, and what the page says
/// of them.
pub(super) struct Moments<'a> {
    /// The first snapshot of the series.
    pub(super) first: (&'a Profile, &'a str),
    /// The last snapshot of the series.
    pub(super) last: (&'a Profile, &'a str),
    /// The last peak profile, or else the largest snapshot.
    pub(super) peak: (&'a Profile, &'a str),
    /// True when `peak` is a peak profile.
    pub(super) peak_is_profile: bool,
    /// The peak's in-use total.
    pub(super) peak_inuse: i64,
    /// Where the last is among the timeline's snapshots.
    pub(super) last_index: usize,
    /// True when the largest snapshot is the last one.
    pub(super) same_peak_and_last: bool,
}

/// What the script reads, in `<script type="application/json">`.
#[derive(Serialize)]
struct Data<'a> {
    /// Function and memory class names, by id.
    names: &'a [String],
    /// The unit of the values in `tree`.
    unit: &'a str,
    /// The snapshot selected when the page opens.
    initial: usize,
    snapshots: Vec<SnapshotData<'a>>,
}

#[derive(Serialize)]
struct SnapshotData<'a> {
    #[serde(flatten)]
    reduced: &'a Reduced,
    /// When it was taken, RFC 3339, or "".
    time: String,
    /// Its in-use total, formatted.
    inuse: String,
}

/// Writes the page.
pub(super) fn write(
    options: &Options,
    timeline: &Timeline,
    snapshots: &[Reduced],
    interned: &Interned,
    moments: &Moments,
    out: &mut impl Write,
) -> Result<(), Error> {
    let sample_type = &timeline.sample_type;
    let unit = &sample_type.unit;
    let format = Formatter::auto(unit);
    let n = timeline.snapshots.len();
    let title = if !options.title.is_empty() {
        options.title.clone()
    } else if n == 1 {
        base_name(moments.last.1).to_owned()
    } else {
        format!(
            "{n} snapshots, {} to {}",
            base_name(moments.first.1),
            base_name(moments.last.1)
        )
    };
    let mut html = String::with_capacity(1 << 20);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"generator\" content=\"heapprof\">\
         <title>heapprof: {}</title><style>{STYLE}</style></head><body>\n\
         <h1>heapprof report: {}</h1>\n",
        escape(&title),
        escape(&title)
    );
    if n == 1 {
        let _ = writeln!(
            html,
            "<p class=\"summary\">One snapshot of {}: {} in use.</p>",
            escape(&sample_type.r#type),
            escape(&format.format(timeline.snapshots[0].inuse_bytes))
        );
    } else {
        let peak_kind = if moments.peak_is_profile {
            "a profile written at the peak of the heap"
        } else {
            "the largest snapshot"
        };
        let _ = writeln!(
            html,
            "<p class=\"summary\">{n} snapshots of {}; the peak is {} ({}, {} in use).</p>",
            escape(&sample_type.r#type),
            escape(moments.peak.1),
            peak_kind,
            escape(&format.format(moments.peak_inuse))
        );
    }
    if n > 1 {
        over_time(options, timeline, &mut html);
        ranking(options, timeline, &mut html);
    }
    selected(n, &mut html);
    let views = Views { options };
    if moments.same_peak_and_last {
        let heading = if n == 1 {
            "The profile"
        } else {
            "At the last snapshot, the peak"
        };
        views.at(heading, "last", moments.last, &mut html)?;
    } else {
        views.at("At the peak", "peak", moments.peak, &mut html)?;
        views.at("At the last snapshot", "last", moments.last, &mut html)?;
    }
    if n > 1 {
        views.growth(moments, &mut html)?;
    }
    let data = Data {
        names: &interned.names,
        unit,
        initial: moments.last_index,
        snapshots: snapshots
            .iter()
            .zip(&timeline.snapshots)
            .map(|(reduced, snapshot)| SnapshotData {
                reduced,
                time: time(snapshot.time_nanos),
                inuse: format.format(snapshot.inuse_bytes),
            })
            .collect(),
    };
    let json = serde_json::to_string(&data)?;
    // Inside <script>, only "</script" or "<!--" could end the data early;
    // no '<' is left to start either.
    let _ = write!(
        html,
        "<script type=\"application/json\" id=\"heapprof-data\">{}</script>\n\
         <script>{SCRIPT}</script>\n</body></html>\n",
        json.replace('<', "\\u003c")
    );
    out.write_all(html.as_bytes())?;
    Ok(())
}

/// The chart and its key.
fn over_time(options: &Options, timeline: &Timeline, html: &mut String) {
    let (svg, keys) = chart::chart(timeline, options.chart_sites, &timeline.sample_type.unit);
    let _ = write!(
        html,
        "<section id=\"over-time\"><h2>{} over time</h2>\
         <p class=\"hint\">Click a snapshot (or use the arrow keys) to see its table and flamegraph below.</p>\
         {svg}<ul class=\"key\">",
        escape(&timeline.sample_type.r#type)
    );
    for key in keys {
        let _ = write!(
            html,
            "<li><span class=\"{}\" style=\"background:{}\"></span>{}</li>",
            if key.line { "swatch line" } else { "swatch" },
            key.colour,
            escape(&key.name)
        );
    }
    html.push_str("</ul></section>\n");
}

/// The leak ranking: the timeline's sites in its order.
fn ranking(options: &Options, timeline: &Timeline, html: &mut String) {
    let format = Formatter::auto(&timeline.sample_type.unit);
    html.push_str(
        "<section id=\"ranking\"><h2>Leak ranking</h2>\
         <table id=\"leaks\"><thead><tr><th>#</th><th>function</th><th>verdict</th>\
         <th>growth</th><th>fit</th><th>in use at the last</th></tr></thead><tbody>",
    );
    for (rank, site) in timeline.sites.iter().take(options.rows).enumerate() {
        let _ = write!(
            html,
            "<tr class=\"{0}\"><td class=\"num\">{1}</td><td class=\"name\">{2}</td><td>{0}</td>\
             <td class=\"num\">{3}/s</td><td class=\"num\">{4:.2}</td><td class=\"num\">{5}</td></tr>",
            site.verdict.as_str(),
            rank + 1,
            escape(&site.function),
            escape(&format.format(site.bytes_per_second.round() as i64)),
            site.fit,
            escape(&format.format(site.last_inuse_bytes))
        );
    }
    if timeline.sites.len() > options.rows {
        let _ = write!(
            html,
            "<tr><td></td><td colspan=\"5\">and {} more</td></tr>",
            timeline.sites.len() - options.rows
        );
    }
    html.push_str("</tbody></table></section>\n");
}

/// The section the script fills with the selected snapshot.
fn selected(n: usize, html: &mut String) {
    let heading = if n == 1 {
        "Top table and flamegraph"
    } else {
        "Selected snapshot"
    };
    let _ = writeln!(
        html,
        "<section id=\"selected\"><h2>{heading}: <span id=\"selected-name\"></span></h2>\
         <pre id=\"selected-notes\" class=\"notes\"></pre>\
         <table id=\"selected-top\" class=\"top\"><thead><tr><th>flat</th><th>flat%</th><th>sum%</th>\
         <th>cum</th><th>cum%</th><th>function</th></tr></thead><tbody></tbody></table>\
         <h3>Flamegraph</h3><div id=\"selected-flame\" class=\"flame\"></div>\
         <div id=\"classes\"><h3>Memory classes</h3><table id=\"selected-classes\"><tbody></tbody></table></div>\
         <noscript>The selected snapshot needs JavaScript; the views below do not.</noscript></section>"
    );
}

/// The static views, by the same functions as the CLI's subcommands.
struct Views<'a> {
    options: &'a Options,
}

impl Views<'_> {
    /// The top table (`heapprof top -n ROWS`) and flamegraph of one
    /// snapshot.
    fn at(
        &self,
        heading: &str,
        id: &str,
        (profile, file): (&Profile, &str),
        html: &mut String,
    ) -> Result<(), Error> {
        let selection = self.options.timeline.selection.clone();
        let table = top::Options {
            selection: selection.clone(),
            graph: graph::Options {
                node_count: self.options.rows,
                ..graph::Options::default()
            },
            ..top::Options::default()
        };
        let mut text = Vec::new();
        top::write(&table, profile, &mut text)?;
        let look = flamegraph::Options {
            selection,
            name: file.to_owned(),
            ..flamegraph::Options::default()
        };
        let mut svg = Vec::new();
        flamegraph::write(&look, profile, &mut svg)?;
        let _ = writeln!(
            html,
            "<section id=\"{id}\"><h2>{}: {}</h2><pre class=\"top\">{}</pre>{}</section>",
            escape(heading),
            escape(file),
            escape(&String::from_utf8_lossy(&text)),
            embedded_svg(&svg, &format!("flamegraph of {file}"))
        );
        Ok(())
    }

    /// The differential flamegraph from the first snapshot to the last
    /// (`heapprof diff FIRST LAST --flamegraph`).
    fn growth(&self, moments: &Moments, html: &mut String) -> Result<(), Error> {
        let options = diff::Options {
            selection: self.options.timeline.selection.clone(),
            format: diff::Format::Flamegraph,
            ..diff::Options::default()
        };
        let mut svg = Vec::new();
        diff::write(&options, moments.first.0, moments.last.0, &mut svg)?;
        let _ = writeln!(
            html,
            "<section id=\"growth\"><h2>From the first snapshot to the last: {} to {}</h2>{}</section>",
            escape(moments.first.1),
            escape(moments.last.1),
            embedded_svg(&svg, "differential flamegraph")
        );
        Ok(())
    }
}

/// An SVG document as an `<object>` of a data URL: inferno's script (search,
/// zoom) runs in it, and its ids cannot clash with the page's.
fn embedded_svg(svg: &[u8], label: &str) -> String {
    format!(
        "<object class=\"flamegraph\" type=\"image/svg+xml\" aria-label=\"{}\" data=\"data:image/svg+xml;base64,{}\"></object>",
        escape(label),
        base64(svg)
    )
}

/// A file's name without its directories, for the title.
fn base_name(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

/// `text` safe in HTML text and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Unix nanoseconds as RFC 3339 in UTC, or "" for no time.
fn time(nanos: i64) -> String {
    if nanos == 0 {
        return String::new();
    }
    jiff::Timestamp::from_nanosecond(i128::from(nanos)).map_or(String::new(), |t| t.to_string())
}

/// Standard base64 with padding (RFC 4648), for data URLs.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_as_rfc_4648_does() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape(r#"<Vec<u8> as Clone>::clone & "x" 'y'"#),
            "&lt;Vec&lt;u8&gt; as Clone&gt;::clone &amp; &quot;x&quot; &#39;y&#39;"
        );
    }
}
