//! `heapprof diff BASE NEW`: flags onto [`heapprof_report::diff`], the
//! table on stdout and the differential flamegraph into a file.

use std::io::Write;

use anyhow::Result;
use heapprof_report::{diff, graph, Selection};

use crate::args::DiffArgs;
use crate::{load, output};

/// Runs `heapprof diff`.
pub fn run(args: &DiffArgs, out: &mut impl Write) -> Result<()> {
    if load::is_stdin(&args.base) && load::is_stdin(&args.new) {
        anyhow::bail!("BASE and NEW cannot both be - (stdin holds one profile)");
    }
    let base = load::profile_for_report(&args.base)?;
    let new = load::profile_for_report(&args.new)?;
    let flags = args.selection.flags();
    let index_only = Selection {
        sample_index: flags.sample_index.map(str::to_owned),
        ..Selection::default()
    };
    // A bad sample type is reported before a bad regexp, as it always was.
    load::in_files(
        &args.base,
        &args.new,
        diff::sample_indices(&index_only, base, new),
    )?;
    let selection = load::unchecked_selection(flags)?;
    load::note_unmatched(&selection, &[base, new], flags);
    let mut options = diff::Options {
        selection,
        graph: graph::Options {
            node_count: args.node_count.unwrap_or(0),
            ..graph::Options::default()
        },
        format: diff::Format::Top,
    };
    load::in_files(&args.base, &args.new, diff::write(&options, base, new, out))?;
    if let Some(path) = &args.flamegraph {
        options.format = diff::Format::Flamegraph;
        let mut svg = Vec::new();
        load::in_files(
            &args.base,
            &args.new,
            diff::write(&options, base, new, &mut svg),
        )?;
        output::write_atomically(path, |out| Ok(out.write_all(&svg)?))?;
    }
    let build_id = |p: &'static heapprof_pprof::Profile| {
        p.mappings.first().map_or("", |m| m.build_id.as_str())
    };
    let (b, n) = (build_id(base), build_id(new));
    if !b.is_empty() && !n.is_empty() && b != n {
        load::note(format!(
            "heapprof: warning: BASE and NEW are of different builds (main binary build ids {b} and {n}): the difference mixes changes to the code with changes in memory"
        ));
    }
    Ok(())
}
