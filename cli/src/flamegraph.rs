//! `heapprof flamegraph`: an SVG flamegraph of one sample type via inferno,
//! counting bytes (or objects) with the memory palette.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use heapprof::pprof::ValueType;
use inferno::flamegraph::{self, color::BasicPalette, color::Palette, Direction, Options};

use crate::args::FlamegraphArgs;
use crate::stacks::{Names, Stack};
use crate::{folded, load, output};

/// Frames narrower than this many pixels are left out by default: invisible
/// at the graph's width, they made a large profile's SVG 27 MB (at inferno's
/// 0.1) instead of under 1 MB, and rendering three times slower.
pub const DEFAULT_MIN_WIDTH: f64 = 0.5;

/// How a flamegraph looks.
pub struct Look<'a> {
    /// Title at the top.
    pub title: &'a str,
    /// Roots at the top instead of the bottom.
    pub icicle: bool,
    /// Narrowest frame drawn, in pixels.
    pub min_width: f64,
}

/// Runs `heapprof flamegraph`.
pub fn run(args: &FlamegraphArgs) -> Result<()> {
    let profile = load::profile(&args.profile)?;
    let mut names = Names::default();
    let selected = load::stacks(&args.profile, profile, &args.selection, &mut names)?;
    let sample_type = &profile.sample_types[selected.index];
    let title = args.title.clone().unwrap_or_else(|| {
        let file = args
            .profile
            .file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned());
        format!("{file}: {}", sample_type.r#type)
    });
    let look = Look {
        title: &title,
        icicle: args.icicle,
        min_width: args.min_width,
    };
    write_svg(&selected.stacks, &names, sample_type, &look, &args.output)
}

/// Renders `stacks` to an SVG file at `path`.
pub fn write_svg(
    stacks: &[Stack],
    names: &Names,
    sample_type: &ValueType,
    look: &Look,
    path: &Path,
) -> Result<()> {
    let lines: Vec<String> = folded::fold_all(stacks, names)
        .into_iter()
        .filter(|&(_, value)| value > 0)
        .map(|(stack, value)| format!("{stack} {value}"))
        .collect();
    if lines.is_empty() {
        bail!(
            "nothing to draw: no sample has a positive {} value",
            sample_type.r#type
        );
    }
    let mut options = options(sample_type, look);
    output::write_atomically(path, |out| {
        flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
            .context("rendering the flamegraph")
    })
}

/// inferno options for memory: counts named after the unit, memory palette.
pub fn options(sample_type: &ValueType, look: &Look) -> Options<'static> {
    let mut options = Options::default();
    options.title = look.title.to_owned();
    options.min_width = look.min_width;
    options.count_name = match sample_type.unit.as_str() {
        "count" if sample_type.r#type.contains("objects") => "objects".to_owned(),
        "count" => "samples".to_owned(),
        unit => unit.to_owned(),
    };
    options.colors = Palette::Basic(BasicPalette::Mem);
    if look.icicle {
        options.direction = Direction::Inverted;
    }
    options
}

/// Writes a flamegraph from differential lines (`stack before after`).
pub fn write_differential(
    lines: &[String],
    sample_type: &ValueType,
    title: &str,
    path: &Path,
) -> Result<()> {
    if lines.is_empty() {
        bail!(
            "nothing to draw: neither profile has a non-zero {} value",
            sample_type.r#type
        );
    }
    let look = Look {
        title,
        icicle: false,
        min_width: DEFAULT_MIN_WIDTH,
    };
    let mut options = options(sample_type, &look);
    options.colors = Palette::Basic(BasicPalette::Hot);
    output::write_atomically(path, |out: &mut dyn Write| {
        flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
            .context("rendering the flamegraph")
    })
}
