//! The `heapprof` command: thin glue from arguments to the subcommand
//! modules, and errors to one line on stderr with a non-zero exit. The
//! subcommands map flags onto the views of `heapprof_report`, where all the
//! analysis lives; none of them uses another.

#![deny(unsafe_code)]

mod args;
mod demo;
mod diff;
mod flamegraph;
mod folded;
mod info;
mod lifetimes;
mod load;
mod output;
mod progress;
mod report;
mod symbolize;
mod tags;
mod timeline;
mod top;

use std::io::Write;
use std::process::ExitCode;

// The CLI profiles itself: `heapprof demo` needs it, and the other commands
// cost nothing measurable at the default rate.
#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse_args() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!(
                "heapprof: {} (see heapprof --help)",
                one_line(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match &cli.command {
        args::Command::Top(a) => top::run(a, &mut out),
        args::Command::Flamegraph(a) => flamegraph::run(a),
        args::Command::Folded(a) => folded::run(a, &mut out),
        args::Command::Diff(a) => diff::run(a, &mut out),
        args::Command::Tags(a) => tags::run(a, &mut out),
        args::Command::Info(a) => info::run(a, &mut out),
        args::Command::Lifetimes(a) => lifetimes::run(a, &mut out),
        args::Command::Demo(a) => demo::run(a, &mut out),
        args::Command::Symbolize(a) => symbolize::run(a, &mut out),
        args::Command::Timeline(a) => timeline::run(a, &mut out),
        args::Command::Report(a) => report::run(a),
    }
    .and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) => {
            for line in load::notes() {
                eprintln!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever a cause's message looks like.
            let message = format!("{e:#}");
            eprintln!(
                "heapprof: {}",
                message.lines().map(str::trim).collect::<Vec<_>>().join(" ")
            );
            ExitCode::FAILURE
        }
    }
}

/// clap's message up to its usage section, on one line: `error: the
/// following required arguments were not provided:\n  <PROFILE>` becomes
/// `the following required arguments were not provided: <PROFILE>`.
fn one_line(message: &str) -> String {
    let body = message.split("\n\n").next().unwrap_or(message);
    let words: Vec<&str> = body.split_whitespace().collect();
    words.join(" ").trim_start_matches("error: ").to_owned()
}

/// `heapprof folded x | head` closing the pipe early is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io = c.downcast_ref::<std::io::Error>().or_else(|| {
            // The report's write errors are transparent: the chain skips
            // the io::Error inside.
            match c.downcast_ref::<heapprof_report::Error>() {
                Some(heapprof_report::Error::Io(io)) => Some(io),
                _ => None,
            }
        });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
