//! An SVG flamegraph of one sample type via inferno, counting bytes (or
//! objects), its frames coloured by crate: the program's own, the standard
//! library's, other crates', and frames of no crate (C functions, object
//! files), each a hue of its own whatever the profile, each name always the
//! same shade of it.

use std::io::Write;

use std::collections::{BTreeMap, BTreeSet};

use heapprof_pprof::{crate_name, Profile, ValueType};
use inferno::flamegraph::color::{BasicPalette, Color, Palette, PaletteMap};
use inferno::flamegraph::{self as inferno_flamegraph};
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
    let colours = CrateColours::of(&lines);
    let mut palette = colours.palette();
    let mut inferno = inferno_options(sample_type, title, options);
    inferno.palette_map = Some(&mut palette);
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
    subtitle.push_str("; ");
    subtitle.push_str(&colours.key());
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

/// Which part of a program a frame is, for its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// The crate of the program's root frames.
    Program,
    /// std, core or alloc.
    Std,
    /// Any other crate.
    Dependency,
    /// No Rust crate: a C function, an object file, an address.
    NoCrate,
}

/// The standard library's crates, one colour.
const STD_CRATES: &[&str] = &["std", "core", "alloc"];

impl Part {
    /// What the flamegraph's key calls it.
    fn describe(self, program: &str) -> String {
        let (what, colour) = match self {
            Part::Program => (program, "orange"),
            Part::Std => ("std/core/alloc", "blue"),
            Part::Dependency => ("other crates", "purple"),
            Part::NoCrate => ("no crate (C, object files)", "grey"),
        };
        format!("{what} {colour}")
    }

    /// The colour of a frame named `name` in this part: the part's hue, in
    /// a shade that depends on the name only, so neighbours differ and a
    /// function has the same colour in every graph.
    fn colour(self, name: &str) -> Color {
        let hash = fnv1a(name);
        let shade = |range: (u8, u8), shift: u32| {
            let span = u64::from(range.1 - range.0) + 1;
            range.0 + ((hash >> shift) % span) as u8
        };
        match self {
            Part::Program => Color {
                r: shade((225, 255), 0),
                g: shade((95, 165), 16),
                b: shade((30, 70), 32),
            },
            Part::Std => Color {
                r: shade((80, 130), 0),
                g: shade((150, 195), 16),
                b: shade((225, 255), 32),
            },
            Part::Dependency => Color {
                r: shade((180, 215), 0),
                g: shade((110, 145), 16),
                b: shade((205, 240), 32),
            },
            Part::NoCrate => {
                let grey = shade((175, 215), 0);
                Color {
                    r: grey,
                    g: grey,
                    b: grey,
                }
            }
        }
    }
}

/// FNV-1a, 64 bits: a fixed hash, the same in every run and build.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The colour of every frame of a flamegraph, by crate.
struct CrateColours {
    /// The crate of the program's root frames, if any has one.
    program: Option<String>,
    /// Each frame name's part.
    parts: BTreeMap<String, Part>,
}

impl CrateColours {
    /// The colours of the frames of folded `lines` (`stack value`). The
    /// program is the crate that most of the value's stacks first reach
    /// from the root outside std (`main` under `FnOnce::call_once`, a
    /// thread's closure), ties going to the first name.
    fn of(lines: &[String]) -> CrateColours {
        let mut roots: BTreeMap<&str, i64> = BTreeMap::new();
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for line in lines {
            let (stack, value) = line.rsplit_once(' ').unwrap_or((line, "0"));
            let value: i64 = value.parse().unwrap_or(0);
            names.extend(stack.split(';'));
            let root = stack
                .split(';')
                .filter_map(crate_name)
                .find(|krate| !STD_CRATES.contains(krate));
            if let Some(root) = root {
                *roots.entry(root).or_default() += value;
            }
        }
        let program = roots
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(krate, _)| (*krate).to_owned());
        let parts = names
            .into_iter()
            .map(|name| {
                let part = match crate_name(name) {
                    None => Part::NoCrate,
                    Some(krate) if STD_CRATES.contains(&krate) => Part::Std,
                    Some(krate) if Some(krate) == program.as_deref() => Part::Program,
                    Some(_) => Part::Dependency,
                };
                (name.to_owned(), part)
            })
            .collect();
        CrateColours { program, parts }
    }

    /// Every frame's colour, for inferno.
    fn palette(&self) -> PaletteMap {
        let mut palette = PaletteMap::default();
        // inferno's root frame ("all", the total; named "" inside) would
        // otherwise be a random green.
        palette.insert("", Part::NoCrate.colour("all"));
        for (name, part) in &self.parts {
            palette.insert(name, part.colour(name));
        }
        palette
    }

    /// The key to the colours the graph shows: `colours: myapp orange,
    /// std/core/alloc blue, ...`.
    fn key(&self) -> String {
        let shown: BTreeSet<Part> = self.parts.values().copied().collect();
        let program = self.program.as_deref().unwrap_or("");
        let parts: Vec<String> = shown.iter().map(|p| p.describe(program)).collect();
        format!("colours: {}", parts.join(", "))
    }
}

/// inferno options for memory: counts named after the unit, memory palette
/// (for graphs that colour frames by name, not by crate).
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
        assert!(drawn.contains(">4.50MB in all; sampling period 512kB of space; colours: "));
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

    /// The fill of the frame whose tooltip begins `name (`.
    fn fill(svg: &str, name: &str) -> (u8, u8, u8) {
        let title = format!(
            "<title>{} (",
            name.replace('<', "&lt;").replace('>', "&gt;")
        );
        let at = svg
            .find(&title)
            .unwrap_or_else(|| panic!("{name} in {svg}"));
        let rgb = &svg[at..];
        let rgb = &rgb[rgb.find("fill=\"rgb(").unwrap() + 10..];
        let rgb = &rgb[..rgb.find(')').unwrap()];
        let v: Vec<u8> = rgb.split(',').map(|c| c.trim().parse().unwrap()).collect();
        (v[0], v[1], v[2])
    }

    #[test]
    fn frames_are_coloured_by_crate_the_same_in_every_graph() {
        let stacks: &[(&str, &[i64])] = &[
            (
                "core::ops::function::FnOnce::call_once;myapp::main;myapp::load;alloc::raw_vec::finish_grow",
                &[600],
            ),
            ("core::ops::function::FnOnce::call_once;myapp::main;serde_json::de::from_str", &[300]),
            ("[libc.so.6];c_callback;rayon_core::registry::main_loop;myapp::work", &[100]),
        ];
        let drawn = svg(&profile(&["inuse_space"], stacks));
        let warm = |(r, g, b): (u8, u8, u8)| r > g && g > b;
        let blue = |(r, g, b): (u8, u8, u8)| b > g && g > r;
        let purple = |(r, g, b): (u8, u8, u8)| r > g && b > g && b.abs_diff(r) < 60;
        let grey = |(r, g, b): (u8, u8, u8)| r == g && g == b;
        for name in ["myapp::main", "myapp::load", "myapp::work"] {
            assert!(warm(fill(&drawn, name)), "{name}: {:?}", fill(&drawn, name));
        }
        for name in [
            "core::ops::function::FnOnce::call_once",
            "alloc::raw_vec::finish_grow",
        ] {
            assert!(blue(fill(&drawn, name)), "{name}: {:?}", fill(&drawn, name));
        }
        for name in [
            "serde_json::de::from_str",
            "rayon_core::registry::main_loop",
        ] {
            assert!(
                purple(fill(&drawn, name)),
                "{name}: {:?}",
                fill(&drawn, name)
            );
        }
        for name in ["[libc.so.6]", "c_callback", "all"] {
            assert!(grey(fill(&drawn, name)), "{name}: {:?}", fill(&drawn, name));
        }
        assert!(
            drawn.contains("; colours: myapp orange, std/core/alloc blue, other crates purple, no crate (C, object files) grey<"),
            "{drawn}"
        );
        // Not random: the same graph twice, and a name's colour in another
        // graph whose program is the same.
        assert_eq!(drawn, svg(&profile(&["inuse_space"], stacks)));
        let other = svg(&profile(&["inuse_space"], &stacks[..1]));
        assert_eq!(fill(&other, "myapp::load"), fill(&drawn, "myapp::load"));
        assert_ne!(fill(&drawn, "myapp::load"), fill(&drawn, "myapp::main"));
    }
}
