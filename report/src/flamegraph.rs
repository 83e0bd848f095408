//! An SVG flamegraph of one sample type via inferno, counting bytes (or
//! objects) with the memory palette.

use std::io::Write;

use heapprof_pprof::{Profile, ValueType};
use inferno::flamegraph::{self as inferno_flamegraph, color::BasicPalette, color::Palette};
use inferno::flamegraph::{Direction, Options as InfernoOptions};

use crate::stacks::{self, Names, Selection};
use crate::units::{self, percentage, Formatter};
use crate::{folded, Error};

/// Frames narrower than this many pixels are left out by default: invisible
/// at the graph's width, they made a large profile's SVG 27 MB (at inferno's
/// 0.1) instead of under 1 MB, and rendering three times slower.
pub const DEFAULT_MIN_WIDTH: f64 = 0.5;

/// Options of a flamegraph.
#[derive(Clone, Debug)]
pub struct Options {
    /// The sample type and filters.
    pub selection: Selection,
    /// The title at the top; `None`: `NAME: SAMPLE_TYPE` with [`Options::name`].
    pub title: Option<String>,
    /// What the profile is called in the default title (its file name, say);
    /// "" for the sample type alone.
    pub name: String,
    /// Roots at the top instead of the bottom (an icicle graph).
    pub icicle: bool,
    /// Narrowest frame drawn, in pixels of the graph's 1200.
    pub min_width: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            selection: Selection::default(),
            title: None,
            name: String::new(),
            icicle: false,
            min_width: DEFAULT_MIN_WIDTH,
        }
    }
}

/// Writes the flamegraph of `profile` as SVG. With nothing to draw (no
/// positive value: an empty sample type, or filters that keep nothing) the
/// SVG says so under its title, as `top` shows a zero total.
pub fn write(options: &Options, profile: &Profile, out: &mut impl Write) -> Result<(), Error> {
    let mut names = Names::default();
    let selected = stacks::select(profile, &options.selection, &mut names)?;
    let sample_type = &profile.sample_types[selected.index];
    let folded: Vec<(String, i64)> = folded::fold_all(&selected.stacks, &names)
        .into_iter()
        .filter(|&(_, value)| value > 0)
        .collect();
    let total: i64 = folded.iter().map(|(_, value)| value).sum();
    let lines: Vec<String> = folded
        .into_iter()
        .map(|(stack, value)| format!("{stack} {value}"))
        .collect();
    let title = match &options.title {
        Some(title) => title.clone(),
        None if options.name.is_empty() => sample_type.r#type.clone(),
        None => format!("{}: {}", options.name, sample_type.r#type),
    };
    if lines.is_empty() {
        let note = format!("No sample has a positive {} value.", sample_type.r#type);
        return write_empty(&title, &note, out);
    }
    let mut inferno = inferno_options(sample_type, title, options);
    let count_name = inferno.count_name.clone();
    let amount = |value: i64| amount(value, &sample_type.unit, &count_name);
    let mut subtitle = format!("{} in all", amount(total));
    if let Some(period_type) = profile.period_type.as_ref().filter(|_| profile.period > 0) {
        let period = Formatter::auto(&period_type.unit).format(profile.period);
        subtitle.push_str(&format!(
            "; sampling period {period} of {}",
            period_type.r#type
        ));
    }
    inferno.subtitle = Some(subtitle);
    let mut svg = Vec::new();
    render(&mut inferno, &lines, &mut svg)?;
    let svg = String::from_utf8(svg)
        .map_err(|e| Error::Render(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    // inferno's tooltips count raw values ("49,910,473 bytes").
    let titled = retitle(&svg, |name, _, width| {
        let width = width as i64;
        format!(
            "{name} ({}, {})",
            amount(width),
            percentage(width, total).trim()
        )
    });
    out.write_all(titled.as_bytes()).map_err(Error::Render)
}

/// `value` of `unit` for a person: pprof's scaling for units it knows
/// ("47.60MB", "1.50s"), a count with separators and `count_name` for the
/// others ("1,234 objects").
pub(crate) fn amount(value: i64, unit: &str, count_name: &str) -> String {
    if units::scales(unit) {
        Formatter::auto(unit).format(value)
    } else {
        format!("{} {count_name}", thousands(value))
    }
}

/// `n` with thousands separators: "1,234", "-56".
pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `svg` (inferno's) with each frame's tooltip replaced by `title(name, x,
/// width)`, `x` and `width` being the frame's first sample and its number
/// of samples (its `fg:x` and `fg:w`).
pub(crate) fn retitle(svg: &str, title: impl Fn(&str, u64, u64) -> String) -> String {
    let mut out = String::with_capacity(svg.len() + svg.len() / 8);
    let mut rest = svg;
    while let Some(open) = rest.find("<title>") {
        let after_open = open + "<title>".len();
        let Some(close) = rest[after_open..].find("</title>").map(|c| after_open + c) else {
            break;
        };
        let group_end = rest[close..].find("</g>").map_or(rest.len(), |g| close + g);
        let frame = &rest[close..group_end];
        let attribute = |name: &str| -> Option<u64> {
            let start = frame.find(name)? + name.len();
            let len = frame[start..].find('"')?;
            frame[start..start + len].parse().ok()
        };
        out.push_str(&rest[..after_open]);
        let old = &rest[after_open..close];
        match (attribute("fg:x=\""), attribute("fg:w=\""), old.rfind(" (")) {
            (Some(x), Some(w), Some(cut)) => out.push_str(&title(&old[..cut], x, w)),
            _ => out.push_str(old),
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// inferno options for memory: counts named after the unit, memory palette.
pub(crate) fn inferno_options(
    sample_type: &ValueType,
    title: String,
    options: &Options,
) -> InfernoOptions<'static> {
    let mut inferno = InfernoOptions::default();
    inferno.title = title;
    inferno.min_width = options.min_width;
    inferno.count_name = match sample_type.unit.as_str() {
        "count" if sample_type.r#type.contains("objects") => "objects".to_owned(),
        "count" => "samples".to_owned(),
        unit => unit.to_owned(),
    };
    inferno.colors = Palette::Basic(BasicPalette::Mem);
    if options.icicle {
        inferno.direction = Direction::Inverted;
    }
    inferno
}

/// An SVG of inferno's size with `title` and `note` and no frames.
pub(crate) fn write_empty(title: &str, note: &str, out: &mut impl Write) -> Result<(), Error> {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    write!(
        out,
        concat!(
            r#"<?xml version="1.0" standalone="no"?>"#,
            r#"<svg version="1.1" width="1200" height="96" viewBox="0 0 1200 96" xmlns="http://www.w3.org/2000/svg">"#,
            r##"<rect x="0" y="0" width="100%" height="100%" fill="#eeeeee"/>"##,
            r#"<text x="600" y="24" text-anchor="middle" font-family="Verdana" font-size="17">{}</text>"#,
            r#"<text x="600" y="60" text-anchor="middle" font-family="Verdana" font-size="12">{}</text>"#,
            "</svg>\n"
        ),
        escape(title),
        escape(note)
    )
    .map_err(Error::Render)
}

/// Renders folded `lines` (`stack value`, or `stack before after` for a
/// differential graph).
pub(crate) fn render(
    inferno: &mut InfernoOptions,
    lines: &[String],
    out: &mut impl Write,
) -> Result<(), Error> {
    inferno_flamegraph::from_lines(inferno, lines.iter().map(String::as_str), out)
        .map_err(Error::Render)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::profile;

    fn svg(profile: &Profile) -> String {
        let mut out = Vec::new();
        write(&Options::default(), profile, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tooltips_and_subtitle_say_amounts_for_a_person() {
        let mut bytes = profile(
            &["inuse_space"],
            &[("main;cache", &[3 << 20]), ("main;parse", &[1536 << 10])],
        );
        bytes.period_type = Some(ValueType::new("space", "bytes"));
        bytes.period = 512 << 10;
        let drawn = svg(&bytes);
        assert!(
            drawn.contains("<title>cache (3MB, 66.67%)</title>"),
            "{drawn}"
        );
        assert!(
            drawn.contains("<title>parse (1.50MB, 33.33%)</title>"),
            "{drawn}"
        );
        assert!(drawn.contains(">4.50MB in all; sampling period 512kB of space<"));
        let objects = profile(&["inuse_objects"], &[("main;cache", &[1234])]);
        assert!(svg(&objects).contains("<title>cache (1,234 objects, 100%)</title>"));
    }

    #[test]
    fn unsymbolized_frames_are_drawn_with_pprofs_names() {
        let profile = profile(
            &["samples"],
            &[
                ("[/lib/libc.so.6];main;[/usr/bin/server]", &[7]),
                ("[]", &[3]),
            ],
        );
        let svg = svg(&profile);
        for name in ["[libc.so.6]", "[server]", "&lt;unknown&gt;", "main"] {
            assert!(svg.contains(&format!("<title>{name} (")), "{name} in {svg}");
        }
    }
}
