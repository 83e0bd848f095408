//! `heapprof timeline DUMP...`: the files (directories listed in name
//! order), read and reduced on two threads into
//! [`heapprof_report::timeline`]'s builder, with a progress bar on stderr
//! when it is a terminal; then the series and the leak ranking. What
//! cannot join the series is a warning (a file of a directory that is not
//! a profile, a profile of another sample type or without a time); a file
//! named on the command line that is not a profile is an error.
//!
//! Memory stays at a few profiles whatever the length of the series: each
//! reader holds one file and its profile, reduces it to the figures the
//! timeline keeps and drops it before taking the next, and at most a few
//! reduced profiles wait in the channel.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::{Context, Result};
use heapprof_pprof::Profile;
use heapprof_report::timeline::{self, Builder, Reduced};
use heapprof_report::Error;

use crate::args::{SiteKind, TimelineArgs};
use crate::load::{self, Listed};
use crate::progress;

/// Threads that read and decode profiles: decoding is most of the cost,
/// and the machines this runs on have at least two cores.
const READERS: usize = 2;

/// Sites shown in the text ranking unless `-n` says otherwise.
const TEXT_SITES: usize = 20;

/// Runs `heapprof timeline`.
pub fn run(args: &TimelineArgs, out: &mut impl Write) -> Result<()> {
    let inputs = load::series(&args.dumps, "timeline")?;
    let options = timeline::Options {
        selection: load::unchecked_selection(args.selection.flags())?,
        granularity: match args.by {
            SiteKind::Function => timeline::Granularity::Function,
            SiteKind::File => timeline::Granularity::File,
            SiteKind::Stack => timeline::Granularity::Stack,
        },
    };
    let progress = progress::Reading::new(inputs.len(), inputs.iter().map(|i| i.size).sum());
    let mut builder = Builder::new(&options);
    let mut skipped: Vec<String> = Vec::new();
    read_in_parallel(&inputs, &mut builder, &mut skipped, &progress)?;
    drop(progress);
    let result = builder.finish();
    if let Ok(timeline) = &result {
        skipped.extend(timeline.skipped.iter().map(|s| s.reason.clone()));
    }
    for warning in &skipped {
        load::note(format!("heapprof: warning: {warning}; skipped"));
    }
    let timeline = match result {
        Err(Error::EmptyTimeline) if !skipped.is_empty() => anyhow::bail!(
            "no profiles to make a timeline of: all {} files were skipped (the first: {})",
            skipped.len(),
            skipped[0]
        ),
        other => other?,
    };
    let write_options = timeline::WriteOptions {
        format: if args.json {
            timeline::Format::Json
        } else {
            timeline::Format::Text
        },
        sparklines: std::io::stdout().is_terminal(),
        max_sites: args
            .node_count
            .unwrap_or(if args.json { 0 } else { TEXT_SITES }),
    };
    Ok(timeline::write(&write_options, &timeline, out)?)
}

/// What reading one input gave: a reduced profile, or why not.
type Read = Result<Reduced, ReadError>;

enum ReadError {
    /// The file could not be read or is not a profile.
    Unreadable(anyhow::Error),
    /// A profile that cannot join the series (its sample type, its time).
    NotInSeries(Error),
}

/// Reads, decodes and reduces one input.
fn read(input: &Listed, options: &timeline::Options) -> Read {
    let name = load::name(&input.path);
    let profile = std::fs::read(&input.path)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| Ok(Profile::decode(&bytes)?))
        .with_context(|| name.clone())
        .map_err(ReadError::Unreadable)?;
    timeline::reduce(options, &name, &profile).map_err(|e| match e {
        Error::NotInSeries { .. } | Error::NoTime { .. } => ReadError::NotInSeries(e),
        e => ReadError::Unreadable(anyhow::Error::new(e).context(name)),
    })
}

/// Adds what reading `input` gave to the builder; a profile that cannot
/// join the series, and a listed file that is not a profile, become a
/// warning in `skipped`; a named file that is not a profile is an error.
fn accept(
    input: &Listed,
    read: Read,
    builder: &mut Builder,
    skipped: &mut Vec<String>,
) -> Result<()> {
    let refused = match read {
        Ok(reduced) => match builder.add_reduced(reduced) {
            Ok(()) => return Ok(()),
            Err(e) => e.to_string(),
        },
        Err(ReadError::NotInSeries(e)) => e.to_string(),
        Err(ReadError::Unreadable(e)) if input.listed => format!("{e:#}"),
        Err(ReadError::Unreadable(e)) => return Err(e),
    };
    skipped.push(refused);
    Ok(())
}

/// Reads `inputs` on [`READERS`] threads, adding each to the builder as it
/// comes (the builder orders them by time). On an error, the readers stop
/// and the error of the earliest input among those read is returned.
fn read_in_parallel(
    inputs: &[Listed],
    builder: &mut Builder,
    skipped: &mut Vec<String>,
    progress: &progress::Reading,
) -> Result<()> {
    let options = builder.options().clone();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // Skips are put in input order afterwards, whatever order reads end in.
    let mut skips: Vec<(usize, String)> = Vec::new();
    let mut failed: Option<(usize, anyhow::Error)> = None;
    std::thread::scope(|scope| {
        let (send, receive) = mpsc::sync_channel::<(usize, Read)>(READERS * 2);
        for _ in 0..READERS.min(inputs.len()) {
            let send = send.clone();
            let (next, stop, options) = (&next, &stop, &options);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = inputs.get(i) else { break };
                    if send.send((i, read(input, options))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(send);
        for (i, result) in receive {
            progress.read(&inputs[i].path, inputs[i].size);
            let mut refused = Vec::new();
            if let Err(e) = accept(&inputs[i], result, builder, &mut refused) {
                stop.store(true, Ordering::Relaxed);
                if failed.as_ref().is_none_or(|(at, _)| i < *at) {
                    failed = Some((i, e));
                }
            }
            skips.extend(refused.into_iter().map(|r| (i, r)));
        }
    });
    if let Some((_, e)) = failed {
        return Err(e);
    }
    skips.sort_by_key(|&(i, _)| i);
    skipped.extend(skips.into_iter().map(|(_, r)| r));
    Ok(())
}
