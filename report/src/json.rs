//! The JSON form of a top table: the rows with raw values and unrounded
//! percentages, for scripts. Field names are a public format: only add.

use std::io::Write;

use heapprof_pprof::ValueType;
use serde::Serialize;

use crate::graph::Top;
use crate::Error;

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

/// Writes `top`, of values of `sample_type`, as pretty-printed JSON and a
/// newline.
pub(crate) fn write_top(
    sample_type: &ValueType,
    top: &Top,
    out: &mut impl Write,
) -> Result<(), Error> {
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
        sample_type: &sample_type.r#type,
        unit: &sample_type.unit,
        total: top.total,
        dropped_nodes: top.dropped,
        rows,
    };
    write_pretty(&json, out)
}

/// Writes `json` pretty-printed, and a newline.
pub(crate) fn write_pretty(json: &impl Serialize, out: &mut impl Write) -> Result<(), Error> {
    // serde_json wraps a failed write in its own error; unwrapped, a closed
    // pipe is an io::Error that the caller can recognize and end quietly on.
    serde_json::to_writer_pretty(&mut *out, json).map_err(|e| {
        if e.is_io() {
            Error::Io(e.into())
        } else {
            Error::Json(e)
        }
    })?;
    writeln!(out)?;
    Ok(())
}
