//! `heapprof top`: flags onto [`heapprof_report::top`].

use std::io::Write;

use anyhow::Result;
use heapprof_report::{graph, top};

use crate::args::TopArgs;
use crate::load;

/// Runs `heapprof top`.
pub fn run(args: &TopArgs, out: &mut impl Write) -> Result<()> {
    let profile = load::profile_for_report(&args.profile)?;
    let options = top::Options {
        selection: load::selection(&args.profile, profile, args.selection.flags())?,
        graph: graph::Options {
            node_fraction: args.node_fraction,
            node_count: args.node_count.unwrap_or(0),
            cum_sort: args.cum,
            ..graph::Options::default()
        },
        format: if args.json {
            top::Format::Json
        } else {
            top::Format::Table
        },
    };
    load::in_file(&args.profile, top::write(&options, profile, out))
}
