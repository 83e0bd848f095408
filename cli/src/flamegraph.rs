//! `heapprof flamegraph`: flags onto [`heapprof_report::flamegraph`], the
//! SVG into a file.

use anyhow::Result;
use heapprof_report::flamegraph;

use crate::args::FlamegraphArgs;
use crate::{load, output};

/// Runs `heapprof flamegraph`.
pub fn run(args: &FlamegraphArgs) -> Result<()> {
    let profile = load::profile_for_report(&args.profile)?;
    let options = flamegraph::Options {
        selection: load::selection(&args.profile, profile, args.selection.flags())?,
        title: args.title.clone(),
        name: if load::is_stdin(&args.profile) {
            load::name(&args.profile)
        } else {
            args.profile
                .file_name()
                .map_or(String::new(), |f| f.to_string_lossy().into_owned())
        },
        icicle: args.icicle,
        min_width: args.min_width,
    };
    // Rendered before the file is created: a profile that cannot be drawn
    // leaves no file, and its error comes before any error creating it.
    let mut svg = Vec::new();
    load::in_file(
        &args.profile,
        flamegraph::write(&options, profile, &mut svg),
    )?;
    output::write_atomically(&args.output, |out| Ok(out.write_all(&svg)?))
}
