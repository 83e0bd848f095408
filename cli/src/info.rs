//! `heapprof info`: flags onto [`heapprof_report::info`].

use std::io::Write;

use anyhow::Result;
use heapprof_report::info;

use crate::args::InfoArgs;
use crate::load;

/// Runs `heapprof info`.
pub fn run(args: &InfoArgs, out: &mut impl Write) -> Result<()> {
    let profile = load::profile(&args.profile)?;
    let options = info::Options {
        name: Some(load::name(&args.profile)),
    };
    Ok(info::write(&options, profile, out)?)
}
