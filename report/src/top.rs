//! The top table: the functions that allocate (or hold) the most, with
//! `go tool pprof -top`'s header, columns, numbers and units, or JSON for
//! scripts.

use std::io::Write;

use heapprof_pprof::Profile;

use crate::graph::{self, Top};
use crate::header::{self, Header};
use crate::stacks::{self, Names, Selection};
use crate::units::{percentage, Formatter};
use crate::{json, Error};

/// What [`write()`] prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `go tool pprof -top`'s text.
    #[default]
    Table,
    /// The rows as pretty-printed JSON, with raw values.
    Json,
}

/// Options of a top table.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The sample type and filters.
    pub selection: Selection,
    /// Which rows, in which order.
    pub graph: graph::Options,
    /// Text or JSON.
    pub format: Format,
}

/// Writes the top table of `profile`.
pub fn write(options: &Options, profile: &Profile, out: &mut impl Write) -> Result<(), Error> {
    let mut names = Names::default();
    let selected = stacks::select(profile, &options.selection, &mut names)?;
    let index = selected.index;
    let top = graph::top(&selected.stacks, &names, selected.total, &options.graph);
    match options.format {
        Format::Json => json::write_top(&profile.sample_types[index], &top, out),
        Format::Table => {
            let sample_type = &profile.sample_types[index];
            let header = Header {
                profiles: &[profile],
                sample_type: &sample_type.r#type,
                unit: &sample_type.unit,
                total: top.total,
                format: &formatter(&sample_type.unit, &top),
                filters: &options.selection.filters,
            };
            header::write(&header, out)?;
            write_table(&sample_type.unit, &top, out)
        }
    }
}

/// pprof's unit for a table: from its smallest non-zero row and its total.
pub(crate) fn formatter(unit: &str, top: &Top) -> Formatter {
    let smallest = top
        .nodes
        .iter()
        .map(|n| {
            if n.flat != 0 {
                n.flat.abs()
            } else {
                n.cum.abs()
            }
        })
        .filter(|&v| v > 0)
        .min()
        .unwrap_or(0);
    Formatter::for_range(unit, smallest, top.total)
}

/// The table itself, as `go tool pprof -top` prints it, from its "Showing
/// nodes" line on.
pub(crate) fn write_table(unit: &str, top: &Top, out: &mut dyn Write) -> Result<(), Error> {
    let format = formatter(unit, top);
    let shown: i64 = top.nodes.iter().map(|n| n.flat).sum();
    writeln!(
        out,
        "Showing nodes accounting for {}, {} of {} total",
        format.format(shown),
        percentage(shown, top.total).trim(),
        format.format(top.total)
    )?;
    if top.total != 0 && top.dropped > 0 {
        let plural = if top.dropped == 1 { "" } else { "s" };
        writeln!(
            out,
            "Dropped {} node{plural} (cum <= {})",
            top.dropped,
            format.format(top.cutoff_label.abs())
        )?;
    }
    if top.nodes.len() < top.before_count {
        writeln!(
            out,
            "Showing top {} nodes out of {}",
            top.nodes.len(),
            top.before_count
        )?;
    }
    writeln!(
        out,
        "{:>10} {:>5}% {:>5}% {:>10} {:>5}%",
        "flat", "flat", "sum", "cum", "cum"
    )?;
    let mut running = 0;
    for node in &top.nodes {
        running += node.flat;
        writeln!(
            out,
            "{:>10} {} {} {:>10} {}  {}{}",
            format.format(node.flat),
            percentage(node.flat, top.total),
            percentage(running, top.total),
            format.format(node.cum),
            percentage(node.cum, top.total),
            node.name,
            node.inline_label()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use heapprof_pprof::Mapping;

    use super::*;
    use crate::testing::profile;

    fn held() -> Profile {
        let mut profile = profile(
            &["alloc_objects", "inuse_space"],
            &[
                ("main;insert", &[3, 3 << 20]),
                ("main;parse", &[9, 1 << 20]),
            ],
        );
        profile.mappings.push(Mapping {
            filename: "/srv/bin/app".into(),
            build_id: "ab12".into(),
            ..Mapping::default()
        });
        profile
    }

    fn top(options: &Options) -> String {
        let mut out = Vec::new();
        write(options, &held(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_table_names_the_binary_and_sorts_by_flat_or_cum() {
        let options = Options {
            selection: Selection {
                sample_index: Some("alloc_objects".into()),
                ..Selection::default()
            },
            graph: graph::Options {
                cum_sort: true,
                node_count: 2,
                ..graph::Options::default()
            },
            ..Options::default()
        };
        assert_eq!(
            top(&options),
            "File: app
Build ID: ab12
Type: alloc_objects
Showing nodes accounting for 9, 75.00% of 12 total
Showing top 2 nodes out of 3
      flat  flat%   sum%        cum   cum%
         0     0%     0%         12   100%  main
         9 75.00% 75.00%          9 75.00%  parse
"
        );
    }

    #[test]
    fn json_has_raw_values_and_unrounded_percentages() {
        let options = Options {
            format: Format::Json,
            ..Options::default()
        };
        let json: serde_json::Value = serde_json::from_str(&top(&options)).unwrap();
        assert_eq!(json["sample_type"], "inuse_space");
        assert_eq!(json["unit"], "bytes");
        assert_eq!(json["total"], 4 << 20);
        assert_eq!(json["dropped_nodes"], 0);
        let rows = json["rows"].as_array().unwrap();
        let row = |i: usize, key: &str| rows[i][key].clone();
        assert_eq!(
            (row(0, "name"), row(0, "file")),
            ("insert".into(), "insert.rs".into())
        );
        assert_eq!(
            (row(0, "flat"), row(0, "flat_percent")),
            (3_145_728.into(), 75.0.into())
        );
        assert_eq!(
            (row(1, "sum_percent"), row(2, "cum_percent")),
            (100.0.into(), 100.0.into())
        );
        assert_eq!(rows.len(), 3);
    }
}
