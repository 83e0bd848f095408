//! `heapprof tags`: flags onto [`heapprof_report::tags`].

use std::io::Write;

use anyhow::Result;
use heapprof_report::tags;

use crate::args::{TagsArgs, TagsFormat};
use crate::load;

/// Runs `heapprof tags`.
pub fn run(args: &TagsArgs, out: &mut impl Write) -> Result<()> {
    let profile = load::profile_for_report(&args.profile)?;
    let format = match (args.json, args.format) {
        (true, _) | (false, TagsFormat::Json) => tags::Format::Json,
        (false, TagsFormat::Table) => tags::Format::Table,
        (false, TagsFormat::Pprof) => tags::Format::Pprof,
    };
    let options = tags::Options {
        selection: load::selection(&args.profile, profile, args.selection.flags())?,
        format,
    };
    load::in_file(&args.profile, tags::write(&options, profile, out))
}
