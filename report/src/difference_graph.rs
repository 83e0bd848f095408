//! The differential flamegraph of a diff: every stack whose value changed,
//! as wide as its change (growth and shrinkage alike), coloured red where a
//! frame's own cumulative change is growth and blue where it is shrinkage,
//! with the signed change in its tooltip.
//!
//! inferno draws it from `stack before after` lines: `after` is the width
//! and `after - before` the change it colours by, so each stack's line is
//! `|d| - d` and `|d|` for a change `d`. inferno's tooltips give the change
//! only as a rounded percentage; each frame's exact signed change is the
//! sum of the changes of the stacks it spans, which its `fg:x` and `fg:w`
//! attributes (its first sample and its width, in the order of the lines)
//! give, so the tooltips are rewritten with it.

use std::io::Write;

use inferno::flamegraph::Options as InfernoOptions;

use crate::flamegraph::{self, thousands};
use crate::Error;

/// Writes the SVG of `changes` (folded stack, signed change; none zero) to
/// `out`, its tooltips counting `unit` ("bytes", "objects").
pub(crate) fn write(
    inferno: &mut InfernoOptions,
    changes: &[(String, i64)],
    unit: &str,
    out: &mut impl Write,
) -> Result<(), Error> {
    let mut lines: Vec<(String, i64)> = changes
        .iter()
        .map(|(stack, d)| (format!("{stack} {} {}", d.abs() - d, d.abs()), *d))
        .collect();
    // In inferno's order (it sorts whole lines), so that sample offsets
    // computed here are the ones it draws.
    lines.sort_unstable();
    let (text, changes): (Vec<String>, Vec<i64>) = lines.into_iter().unzip();
    let mut starts = Vec::with_capacity(changes.len());
    let mut at = 0u64;
    for d in &changes {
        starts.push(at);
        at += d.unsigned_abs();
    }
    inferno.no_sort = true;
    let mut svg = Vec::new();
    flamegraph::render(inferno, &text, &mut svg)?;
    let svg = String::from_utf8(svg)
        .map_err(|e| Error::Render(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    let change_over = |x: u64, w: u64| -> i64 {
        let first = starts.partition_point(|&s| s < x);
        let end = starts.partition_point(|&s| s < x + w);
        changes[first..end].iter().sum()
    };
    out.write_all(with_exact_tooltips(&svg, change_over, unit).as_bytes())
        .map_err(Error::Render)
}

/// `svg` with each frame's tooltip saying its change (from `change_over`
/// its samples) and the amount changed beneath it.
fn with_exact_tooltips(svg: &str, change_over: impl Fn(u64, u64) -> i64, unit: &str) -> String {
    flamegraph::retitle(svg, |name, x, w| {
        format!(
            "{name} ({} {unit}; {} {unit} changed beneath)",
            signed(change_over(x, w)),
            thousands(w as i64)
        )
    })
}

/// `n` with a sign and thousands separators: "+1,234", "-56", "0".
fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{}", thousands(n))
    } else {
        thousands(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_signed_with_separators() {
        assert_eq!(signed(1_234_567), "+1,234,567");
        assert_eq!(signed(-56), "-56");
        assert_eq!(signed(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(-1000), "-1,000");
    }
}
