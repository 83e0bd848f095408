//! `heapprof lifetimes`: flags onto [`heapprof_report::lifetimes`].

use std::io::Write;

use anyhow::{bail, Result};
use heapprof_report::lifetimes::{self, Format, Share, Sort};

use crate::args::LifetimesArgs;
use crate::load;

/// Runs `heapprof lifetimes`.
pub fn run(args: &LifetimesArgs, out: &mut impl Write) -> Result<()> {
    if args.selection.sample_index.is_some() {
        bail!(
            "--sample-index does not apply to lifetimes: the view reads every sample type it needs"
        );
    }
    let profile = load::profile_for_report(&args.profile)?;
    let sort = args.sort.as_deref().map(|sort| match sort {
        "temporary" => Sort::Temporary,
        "old" => Sort::Old,
        "bytes" => Sort::Bytes,
        "objects" => Sort::Objects,
        _ => Sort::Mean,
    });
    let options = lifetimes::Options {
        selection: load::selection(&args.profile, profile, args.selection.flags())?,
        sort,
        share: match args.share.as_str() {
            "objects" => Share::Objects,
            _ => Share::Bytes,
        },
        cum: args.cum,
        node_count: args.node_count.unwrap_or(0),
        format: if args.json {
            Format::Json
        } else {
            Format::Table
        },
    };
    load::in_file(&args.profile, lifetimes::write(&options, profile, out))
}
