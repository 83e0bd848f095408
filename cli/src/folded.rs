//! `heapprof folded`: flags onto [`heapprof_report::folded`].

use std::io::Write;

use anyhow::Result;
use heapprof_report::folded;

use crate::args::FoldedArgs;
use crate::load;

/// Runs `heapprof folded`.
pub fn run(args: &FoldedArgs, out: &mut impl Write) -> Result<()> {
    let profile = load::profile_for_report(&args.profile)?;
    let options = folded::Options {
        selection: load::selection(&args.profile, profile, args.selection.flags())?,
    };
    load::in_file(&args.profile, folded::write(&options, profile, out))
}
