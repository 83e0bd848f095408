//! `heapprof top`: the top-allocators table, with `go tool pprof -top`'s
//! columns, numbers and units, or JSON for scripts.

use std::io::Write;

use anyhow::Result;
use heapprof::pprof::Profile;
use serde::Serialize;

use crate::args::TopArgs;
use crate::graph::{self, Top, TopOptions};
use crate::load;
use crate::stacks::Names;
use crate::units::{percentage, Formatter};

/// Runs `heapprof top`.
pub fn run(args: &TopArgs, out: &mut dyn Write) -> Result<()> {
    let profile = load::profile(&args.profile)?;
    let mut names = Names::default();
    let selected = load::stacks(&args.profile, profile, &args.selection, &mut names)?;
    let index = selected.index;
    let options = TopOptions {
        node_fraction: args.node_fraction,
        node_count: args.node_count.unwrap_or(0),
        cum_sort: args.cum,
        ..TopOptions::default()
    };
    let top = graph::top(&selected.stacks, &names, selected.total, &options);
    if args.json {
        write_json(profile, index, &top, out)
    } else {
        write_header(profile, index, out)?;
        write_table(&profile.sample_types[index].unit, &top, out)
    }
}

/// pprof's unit for a table: from its smallest non-zero row and its total.
pub fn formatter(unit: &str, top: &Top) -> Formatter {
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

/// The lines that say what the table shows.
pub fn write_header(profile: &Profile, index: usize, out: &mut dyn Write) -> Result<()> {
    if let Some(main) = profile.mappings.first() {
        let file = main.filename.rsplit('/').next().unwrap_or(&main.filename);
        if !file.is_empty() {
            writeln!(out, "File: {file}")?;
        }
        if !main.build_id.is_empty() {
            writeln!(out, "Build ID: {}", main.build_id)?;
        }
    }
    writeln!(out, "Type: {}", profile.sample_types[index].r#type)?;
    Ok(())
}

/// The table itself, as `go tool pprof -top` prints it.
pub fn write_table(unit: &str, top: &Top, out: &mut dyn Write) -> Result<()> {
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

#[derive(Serialize)]
struct JsonTop<'a> {
    sample_type: &'a str,
    unit: &'a str,
    total: i64,
    dropped_nodes: usize,
    rows: Vec<JsonRow<'a>>,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    name: &'a str,
    file: &'a str,
    flat: i64,
    flat_percent: f64,
    sum_percent: f64,
    cum: i64,
    cum_percent: f64,
    inline: bool,
}

fn write_json(profile: &Profile, index: usize, top: &Top, out: &mut dyn Write) -> Result<()> {
    let percent = |v: i64| {
        if top.total == 0 {
            0.0
        } else {
            v as f64 * 100.0 / top.total as f64
        }
    };
    let mut running = 0;
    let rows = top
        .nodes
        .iter()
        .map(|n| {
            running += n.flat;
            JsonRow {
                name: n.name,
                file: n.file,
                flat: n.flat,
                flat_percent: percent(n.flat),
                sum_percent: percent(running),
                cum: n.cum,
                cum_percent: percent(n.cum),
                inline: n.inlined_in,
            }
        })
        .collect();
    let json = JsonTop {
        sample_type: &profile.sample_types[index].r#type,
        unit: &profile.sample_types[index].unit,
        total: top.total,
        dropped_nodes: top.dropped,
        rows,
    };
    serde_json::to_writer_pretty(&mut *out, &json)?;
    writeln!(out)?;
    Ok(())
}
