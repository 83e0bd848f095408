//! `heapprof report DUMP... -o report.html`: the files and directories
//! named onto a list of profiles, each read once and handed to
//! [`heapprof_report::html::Builder`], the page into a file. Errors name
//! the file they are about.

use std::path::PathBuf;

use anyhow::{Context, Result};
use heapprof_pprof::Profile;
use heapprof_report::{html, timeline, Error, Selection};

use crate::args::ReportArgs;
use crate::{load, output, progress};

/// Runs `heapprof report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    let files = profiles_named(&args.dumps)?;
    let flags = args.selection.flags();
    let options = html::Options {
        timeline: timeline::Options {
            selection: Selection {
                sample_index: flags.sample_index.map(str::to_owned),
                filters: load::filters(flags)?,
            },
            ..timeline::Options::default()
        },
        title: args.title.clone().unwrap_or_default(),
        rows: args.node_count,
        ..html::Options::default()
    };
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| f.metadata().map_or(0, |m| m.len()))
        .collect();
    let progress = progress::Reading::new(files.len(), sizes.iter().sum());
    let mut report = html::Builder::new(&options);
    for (file, size) in files.iter().zip(sizes) {
        let name = load::name(file);
        let bytes = std::fs::read(file).with_context(|| name.clone())?;
        let profile = Profile::decode(&bytes).with_context(|| name.clone())?;
        drop(bytes);
        report.add(&name, profile).map_err(|e| named(&name, e))?;
        progress.read(file, size);
    }
    drop(progress);
    let mut page = Vec::new();
    report.write(&mut page).map_err(anyhow::Error::new)?;
    output::write_atomically(&args.output, |out| Ok(out.write_all(&page)?))
}

/// The files of `paths`: each file as it is, each directory's files in name
/// order, leaving out hidden ones (such as the temporary file of a dump
/// being written). A directory without files is an error: a report of
/// nothing would hide a wrong path.
fn profiles_named(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if load::is_stdin(path) {
            anyhow::bail!("report reads files and directories, not standard input (-)");
        }
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let listed = std::fs::read_dir(path)
            .and_then(|entries| entries.map(|e| e.map(|e| e.path())).collect())
            .with_context(|| format!("cannot list {}", path.display()));
        let mut in_dir: Vec<PathBuf> = listed?;
        let hidden = |p: &PathBuf| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        };
        in_dir.retain(|p| p.is_file() && !hidden(p));
        if in_dir.is_empty() {
            anyhow::bail!("{}: no profiles in this directory", path.display());
        }
        in_dir.sort();
        files.extend(in_dir);
    }
    Ok(files)
}

/// An error about the profile `name`, named once: the timeline's errors
/// name their file already.
fn named(name: &str, e: Error) -> anyhow::Error {
    match e {
        Error::NotInSeries { .. } | Error::NoTime { .. } => e.into(),
        e => anyhow::Error::new(e).context(name.to_owned()),
    }
}
