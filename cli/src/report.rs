//! `heapprof report DUMP... -o report.html`: the files and directories
//! named onto a list of profiles, each read once and handed to
//! [`heapprof_report::html::Builder`], the page into a file. Errors name
//! the file they are about.

use anyhow::{Context, Result};
use heapprof_pprof::Profile;
use heapprof_report::{html, timeline, Error};

use crate::args::ReportArgs;
use crate::{load, output, progress};

/// Runs `heapprof report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    let files = load::series(&args.dumps, "report")?;
    let flags = args.selection.flags();
    let options = html::Options {
        timeline: timeline::Options {
            selection: load::unchecked_selection(flags)?,
            ..timeline::Options::default()
        },
        title: args.title.clone().unwrap_or_default(),
        rows: args.node_count,
        ..html::Options::default()
    };
    let progress = progress::Reading::new(files.len(), files.iter().map(|f| f.size).sum());
    let mut report = html::Builder::new(&options);
    for listed in &files {
        let file = &listed.path;
        let name = load::name(file);
        let bytes = std::fs::read(file).with_context(|| name.clone())?;
        let profile = Profile::decode(&bytes).with_context(|| name.clone())?;
        drop(bytes);
        report.add(&name, profile).map_err(|e| named(&name, e))?;
        progress.read(file, listed.size);
    }
    drop(progress);
    let mut page = Vec::new();
    report.write(&mut page).map_err(anyhow::Error::new)?;
    output::write_atomically(&args.output, |out| Ok(out.write_all(&page)?))
}

/// An error about the profile `name`, named once: the timeline's errors
/// name their file already.
fn named(name: &str, e: Error) -> anyhow::Error {
    match e {
        Error::NotInSeries { .. } | Error::NoTime { .. } => e.into(),
        e => anyhow::Error::new(e).context(name.to_owned()),
    }
}
