//! Command-line arguments (clap derive). Only parsing lives here; each
//! subcommand's module maps these onto its work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Where memory goes: top tables, flamegraphs, folded stacks and diffs for
/// any pprof profile (heapprof's, Go's heap and allocs profiles, CPU profiles
/// from Go or pprof-rs), gzipped or not.
#[derive(Debug, Parser)]
#[command(name = "heapprof", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The arguments of this process. `--version` prints `heapprof X.Y.Z`
    /// after any subcommand too (clap would name it `heapprof-top`).
    pub fn try_parse_args() -> Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command().mut_subcommands(|c| c.display_name("heapprof"));
        Cli::from_arg_matches(&command.try_get_matches()?)
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Table of the functions that allocate (or hold) the most, like `go tool pprof -top`.
    #[command(after_help = "Example:\n  heapprof top heap.pb.gz --sample-index alloc_space -n 20")]
    Top(TopArgs),
    /// Render an SVG flamegraph (via inferno).
    #[command(
        after_help = "Example:\n  heapprof flamegraph heap.pb.gz -o heap.svg --sample-index inuse_space"
    )]
    Flamegraph(FlamegraphArgs),
    /// Print folded stacks (`root;...;leaf value`) for flamegraph.pl, inferno or speedscope.
    #[command(after_help = "Example:\n  heapprof folded heap.pb.gz > heap.folded")]
    Folded(FoldedArgs),
    /// Where memory grew between two profiles of one program: NEW minus BASE.
    #[command(
        after_help = "Example:\n  heapprof diff before.pb.gz after.pb.gz --flamegraph growth.svg"
    )]
    Diff(DiffArgs),
    /// Table by label value (per label key, what the samples of each value hold), like `go tool pprof -tags`.
    #[command(
        after_help = "Example:\n  heapprof tags heap.pb.gz -i alloc_space\n  heapprof tags heap.pb.gz --tag-focus endpoint=/users --format pprof"
    )]
    Tags(TagsArgs),
    /// Per site, how long freed blocks lived (a lifetimes profile) or how old in-use memory is (a heapprof heap profile).
    #[command(
        after_help = "Example:\n  heapprof lifetimes lifetimes.pb.gz              # temporary allocations first\n  heapprof lifetimes heap.pb.gz --sort bytes       # in-use memory by age\n\nA lifetimes profile: curl -s http://127.0.0.1:6060/debug/pprof/lifetimes, or heapprof::write_lifetimes_profile."
    )]
    Lifetimes(LifetimesArgs),
    /// Summary of a profile: sample types, period, time, counts, totals, comments.
    #[command(after_help = "Example:\n  heapprof info heap.pb.gz")]
    Info(InfoArgs),
    /// Profile a built-in workload in-process: writes heap.pb.gz and flamegraph.svg, prints the top table.
    #[command(after_help = "Example:\n  heapprof demo --out /tmp/heapprof-demo")]
    Demo(DemoArgs),
    /// Resolve an address-only profile (written with HEAPPROF=symbolize=offline) from the binaries on disk.
    #[command(
        after_help = "Example:\n  heapprof symbolize heap.pb.gz --binary target/release/myservice -o heap.symbolized.pb.gz\n  heapprof symbolize heap.pb.gz --binary myservice.stripped --debug-dir /usr/lib/debug/myservice"
    )]
    Symbolize(SymbolizeArgs),
    /// Memory over time: a series of heap profiles, and which sites grow (the leak ranking).
    #[command(after_help = TIMELINE_HELP)]
    Timeline(TimelineArgs),
    /// One offline HTML page over a series of profiles: memory over time, the leak ranking, tables and flamegraphs.
    #[command(
        after_help = "Example:\n  heapprof report dumps/ -o report.html\n  heapprof report heap-*.pb.gz -o report.html --sample-index inuse_space"
    )]
    Report(ReportArgs),
}

/// How `heapprof timeline` judges growth, for its `--help`.
const TIMELINE_HELP: &str = "\
The series: one line per profile, by the time each was taken (time, in-use, and RSS and live
heap from the `heapprof: memory` comment of heapprof's profiles), with the change since the
previous. heapprof's peak profile (`.peak.pb.gz`) is a copy of an earlier moment: it is listed
apart and kept out of the series and the ranking.

The leak ranking: each site's in-use over time, its growth per hour (the least-squares slope over
every profile), how well that line fits (R², 0 to 1), and a verdict:
  growing    steady growth that does not level off
  bounded    rose, then levelled off (or slowed to under half its pace), as a cache does
  shrinking  fell
  flat       no change that stands clear of the sampling error
Growing sites come first, by slope x fit; then bounded, flat (largest first) and shrinking.

How the verdict allows for sampling error: a heap profile is sampled (one sample per
`period` bytes on average, 512 KiB by default in Go and heapprof), so a site's figure of B
bytes in small objects is off by about sqrt(B x period), less for objects larger than the
period. The series is cut into thirds; a site has risen only if its last third's mean
in-use exceeds its first third's by more than 4 times the noise of the two means (the
sampling error, larger where the profiles do not scatter as independent samples would,
since a sampled block stays sampled while it lives; and the program's own scatter). It is
growing when its rise from the middle third to the last is still at least half the whole
pace and more than 2 noises. So a flat site's wobble is not called growing, and a small
leak on a large site can stay flat until it stands clear of the noise.

Examples:
  heapprof timeline /var/tmp/dumps/
  heapprof timeline heap-*.pb.gz --json | jq '.sites[0]'
  heapprof timeline dumps/ --by stack -n 5";

/// What one site of the leak ranking is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SiteKind {
    /// The function at the leaf of each stack: where the memory was allocated.
    Function,
    /// The leaf function's source file.
    File,
    /// The whole stack.
    Stack,
}

/// `heapprof timeline`.
#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// Profiles, or directories of them (every file in a directory, in name order; hidden files
    /// and subdirectories left out). A file in a directory that is not a profile of the series
    /// is skipped with a warning; a file named here that cannot be read is an error.
    #[arg(required = true, value_name = "DUMP")]
    pub dumps: Vec<PathBuf>,
    #[command(flatten)]
    pub selection: Selection,
    /// What a site is.
    #[arg(long, value_enum, default_value_t = SiteKind::Function, value_name = "KIND")]
    pub by: SiteKind,
    /// Show at most N sites (default: 20 in text, all in JSON; 0: all).
    #[arg(short = 'n', long = "nodecount", value_name = "N")]
    pub node_count: Option<usize>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Choosing the sample type and filtering samples; shared by the reports.
#[derive(Debug, Args)]
pub struct Selection {
    /// Sample type to report, by name (e.g. alloc_space, inuse_objects) or index; default: the profile's default.
    #[arg(long, short = 'i', value_name = "NAME|N")]
    pub sample_index: Option<String>,
    /// Only samples with a frame matching this regex (its function's name or
    /// source file, or its object file, as in pprof).
    #[arg(long, value_name = "REGEX")]
    pub focus: Option<String>,
    /// Drop samples with a frame matching this regex (name, source file or
    /// object file).
    #[arg(long, value_name = "REGEX")]
    pub ignore: Option<String>,
    /// Remove frames matching this regex (name, source file or object file)
    /// from stacks; their samples stay.
    #[arg(long, value_name = "REGEX")]
    pub hide: Option<String>,
    /// Only samples whose labels match, as pprof's -tagfocus: KEY=REGEX[,REGEX...] (a string
    /// value of KEY), KEY=RANGE (a numeric one: 1kb, 1kb:, :64mb, 2kb:4mb), or without KEY= a
    /// range over any numeric label or regexes that must all match some `key:value`.
    #[arg(long, value_name = "[KEY=]VALUE")]
    pub tag_focus: Option<String>,
    /// Drop samples whose labels match (the forms of --tag-focus); samples without the key stay.
    #[arg(long, value_name = "[KEY=]VALUE")]
    pub tag_ignore: Option<String>,
    /// Add a frame named after each sample's values of these label keys at the root of every
    /// stack, the first key the root (<unknown> without a value), as pprof's -tagroot.
    #[arg(long, value_name = "KEY[,KEY...]")]
    pub tag_root: Option<String>,
    /// The same frames at the leaf end of every stack, the last key the leaf (pprof's -tagleaf).
    #[arg(long, value_name = "KEY[,KEY...]")]
    pub tag_leaf: Option<String>,
}

impl Selection {
    /// The flags as plain values, for [`crate::load`].
    pub fn flags(&self) -> crate::load::Flags<'_> {
        crate::load::Flags {
            sample_index: self.sample_index.as_deref(),
            focus: self.focus.as_deref(),
            ignore: self.ignore.as_deref(),
            hide: self.hide.as_deref(),
            tag_focus: self.tag_focus.as_deref(),
            tag_ignore: self.tag_ignore.as_deref(),
            tag_root: self.tag_root.as_deref(),
            tag_leaf: self.tag_leaf.as_deref(),
        }
    }
}

/// `heapprof top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The profile (- reads it from stdin).
    pub profile: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Show at most N rows (default: all above the node fraction).
    #[arg(short = 'n', long = "nodecount", value_name = "N")]
    pub node_count: Option<usize>,
    /// Hide functions whose cum is under this fraction of the total, like pprof.
    #[arg(long, default_value_t = 0.005, value_name = "FRACTION", value_parser = fraction)]
    pub node_fraction: f64,
    /// Sort by cumulative value instead of flat.
    #[arg(long)]
    pub cum: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `heapprof flamegraph`.
#[derive(Debug, Args)]
pub struct FlamegraphArgs {
    /// The profile (- reads it from stdin).
    pub profile: PathBuf,
    /// Where to write the SVG.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Draw an icicle graph (roots at the top).
    #[arg(long)]
    pub icicle: bool,
    /// Title of the graph (default: the profile's file name and sample type).
    #[arg(long)]
    pub title: Option<String>,
    /// Leave out frames narrower than this many pixels (of 1200). Lower keeps
    /// more detail for zooming into the SVG, at the cost of its size: 0.1 can
    /// make a large profile's SVG tens of MB.
    #[arg(long, default_value_t = heapprof_report::flamegraph::DEFAULT_MIN_WIDTH, value_name = "PIXELS")]
    pub min_width: f64,
}

/// `heapprof folded`.
#[derive(Debug, Args)]
pub struct FoldedArgs {
    /// The profile (- reads it from stdin).
    pub profile: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
}

/// `heapprof diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier profile (- reads it from stdin).
    pub base: PathBuf,
    /// The later profile (- reads it from stdin).
    pub new: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Show at most N rows.
    #[arg(short = 'n', long = "nodecount", value_name = "N")]
    pub node_count: Option<usize>,
    /// Also write a differential flamegraph (growth red, shrink blue).
    #[arg(long, value_name = "FILE")]
    pub flamegraph: Option<PathBuf>,
}

/// `heapprof tags`.
#[derive(Debug, Args)]
pub struct TagsArgs {
    /// The profile (- reads it from stdin).
    pub profile: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// table: per key, a row per value in top's units and columns; json; pprof: exactly
    /// `go tool pprof -tags`'s text.
    #[arg(long, value_enum, default_value_t = TagsFormat::Table)]
    pub format: TagsFormat,
    /// Print JSON instead of a table (--format json).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// The forms of `heapprof tags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TagsFormat {
    /// heapprof's table.
    Table,
    /// JSON.
    Json,
    /// `go tool pprof -tags`'s text.
    Pprof,
}

/// `heapprof lifetimes`.
#[derive(Debug, Args)]
pub struct LifetimesArgs {
    /// The profile (- reads it from stdin): a lifetimes profile, or a heapprof heap profile.
    pub profile: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Order of the sites. temporary: most bytes in the shortest class (a lifetimes profile's
    /// default); old: most bytes in the oldest classes, leak suspects (a heap profile's default);
    /// bytes; objects; mean: longest mean lifetime.
    #[arg(long, value_name = "ORDER", value_parser = ["temporary", "old", "bytes", "objects", "mean"])]
    pub sort: Option<String>,
    /// What the class columns are shares of: each site's bytes or objects.
    #[arg(long, value_name = "OF", default_value = "bytes", value_parser = ["bytes", "objects"])]
    pub share: String,
    /// Count each stack for every function on it (top's cum), not its leaf alone.
    #[arg(long)]
    pub cum: bool,
    /// Show at most N sites.
    #[arg(short = 'n', long = "nodecount", value_name = "N")]
    pub node_count: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `heapprof info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The profile (- reads it from stdin).
    pub profile: PathBuf,
}

/// `heapprof demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for heap.pb.gz and flamegraph.svg.
    #[arg(long, default_value = "heapprof-demo", value_name = "DIR")]
    pub out: PathBuf,
    /// Sampling rate in bytes (mean bytes between samples).
    #[arg(long, default_value_t = heapprof::DEFAULT_RATE as usize, value_name = "BYTES")]
    pub rate: usize,
}

/// `heapprof symbolize`.
#[derive(Debug, Args)]
pub struct SymbolizeArgs {
    /// The profile to symbolize (- reads it from stdin; then --output is needed).
    pub profile: PathBuf,
    /// The program's binary (and any shared library); each is matched to the profile's mappings by build id.
    #[arg(long, value_name = "PATH")]
    pub binary: Vec<PathBuf>,
    /// A directory of separate debug files (e.g. from objcopy --only-keep-debug), matched by build id.
    #[arg(long, value_name = "DIR")]
    pub debug_dir: Vec<PathBuf>,
    /// Where to write the symbolized profile (default: NAME.symbolized.pb.gz beside the input).
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Keep the start-up frames (_start, std::rt::lang_start, thread start-up) rootward of main
    /// and of threads' closures, as a profile written with HEAPPROF=full_stacks=1 keeps them anyway.
    #[arg(long)]
    pub full_stacks: bool,
}

/// `heapprof report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The profiles: files, or directories whose every file is one (a run's dumps).
    #[arg(required = true, value_name = "DUMP")]
    pub dumps: Vec<PathBuf>,
    /// Where to write the HTML page.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Rows of the top tables and of the leak ranking.
    #[arg(
        short = 'n',
        long = "nodecount",
        default_value_t = 30,
        value_name = "N"
    )]
    pub node_count: usize,
    /// Title of the page (default: from the files).
    #[arg(long)]
    pub title: Option<String>,
}

/// A fraction of the total: a number from 0 to 1.
fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{text} is not a fraction from 0 to 1")),
    }
}
