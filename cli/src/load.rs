//! What the subcommands share: reading a profile (from a file, or from
//! stdin for `-`), the report's selection from the sample-type and filter
//! flags, and errors that name their file.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use heapprof_pprof::Profile;
use heapprof_report::{symbolize, Error, Filters, Selection, TagFilter};
use regex::Regex;

/// The profile argument that stands for standard input.
pub const STDIN: &str = "-";

/// Whether the profile argument `path` stands for standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == STDIN
}

/// How messages and reports name the profile at `path`: `<stdin>` for `-`.
pub fn name(path: &Path) -> String {
    if is_stdin(path) {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Reads and decodes the profile at `path` (`-`: standard input); errors
/// name the file.
///
/// The profile lives until the process exits, on purpose: a command reads a
/// profile once and exits soon after, and freeing the hundreds of thousands
/// of small allocations of a large profile just before exit cost more than
/// a tenth of a second in the large-profile benchmark.
pub fn profile(path: &Path) -> Result<&'static Profile> {
    let bytes = if is_stdin(path) {
        read_stdin()
    } else {
        std::fs::read(path).map_err(anyhow::Error::from)
    }
    .with_context(|| name(path))?;
    let profile = Profile::decode(&bytes).with_context(|| name(path))?;
    Ok(Box::leak(Box::new(profile)))
}

/// [`profile`], for a report: a profile of addresses only (written with
/// `symbolize=offline`) is symbolized from the binaries at its mappings'
/// paths that have the same build ids, as `go tool pprof` symbolizes from
/// local binaries, saying so in one line ([`note`]); without such
/// binaries, one line says how to symbolize it.
pub fn profile_for_report(path: &Path) -> Result<&'static Profile> {
    let profile = profile(path)?;
    let addresses_only =
        !profile.locations.is_empty() && profile.locations.iter().all(|l| l.lines.is_empty());
    if !addresses_only {
        return Ok(profile);
    }
    let options = symbolize::Options {
        same_build_id_only: true,
        ..symbolize::Options::default()
    };
    match symbolize::symbolize(&options, profile) {
        Ok(symbolized) if symbolized.resolved > 0 => {
            note(format!(
                "heapprof: {}: symbolized {} of {} locations from the binaries on this machine with the profile's build ids",
                name(path),
                symbolized.resolved,
                symbolized.resolved + symbolized.unresolved
            ));
            Ok(Box::leak(Box::new(symbolized.profile)))
        }
        _ => {
            note(format!(
                "heapprof: {}: addresses only, and no binary with its build ids here; name it with `heapprof symbolize {} --binary PATH`",
                name(path),
                name(path)
            ));
            Ok(profile)
        }
    }
}

/// Lines for stderr once the command has answered: printed before an
/// error, they would make it more than one line.
static NOTES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Keeps `line` for [`notes`].
pub fn note(line: String) {
    NOTES.lock().unwrap_or_else(|p| p.into_inner()).push(line);
}

/// The lines kept by [`note`], for a command that succeeded.
pub fn notes() -> Vec<String> {
    std::mem::take(&mut *NOTES.lock().unwrap_or_else(|p| p.into_inner()))
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut stdin = std::io::stdin().lock();
    // Waiting for a profile to be typed in would look like a hang.
    if stdin.is_terminal() {
        anyhow::bail!("is a terminal: pipe a profile in, or name a file instead of -");
    }
    let mut bytes = Vec::new();
    stdin.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The sample-type and filter flags that every report takes, as given.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags<'a> {
    /// A sample type name or index; `None` for the profile's default.
    pub sample_index: Option<&'a str>,
    /// The --focus regexp.
    pub focus: Option<&'a str>,
    /// The --ignore regexp.
    pub ignore: Option<&'a str>,
    /// The --hide regexp.
    pub hide: Option<&'a str>,
    /// The --tag-focus expression.
    pub tag_focus: Option<&'a str>,
    /// The --tag-ignore expression.
    pub tag_ignore: Option<&'a str>,
    /// The --tag-root keys, comma-separated.
    pub tag_root: Option<&'a str>,
    /// The --tag-leaf keys, comma-separated.
    pub tag_leaf: Option<&'a str>,
}

/// The report's selection for `flags`, checked against `profile` read
/// from `path`.
pub fn selection(path: &Path, profile: &Profile, flags: Flags) -> Result<Selection> {
    let index_only = Selection {
        sample_index: flags.sample_index.map(str::to_owned),
        ..Selection::default()
    };
    // A bad sample type is reported before a bad regexp, as it always was.
    in_file(path, index_only.index_in(profile))?;
    let selection = unchecked_selection(flags)?;
    note_unmatched(&selection, &[profile], flags);
    Ok(selection)
}

/// The selection for `flags`, its sample type not yet checked against a
/// profile.
pub fn unchecked_selection(flags: Flags) -> Result<Selection> {
    // pprof's lists of keys: split at commas, empty names dropped.
    let keys = |list: Option<&str>| -> Vec<String> {
        list.unwrap_or_default()
            .split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect()
    };
    Ok(Selection {
        sample_index: flags.sample_index.map(str::to_owned),
        filters: filters(flags)?,
        tag_root: keys(flags.tag_root),
        tag_leaf: keys(flags.tag_leaf),
    })
}

/// Notes each filter of `selection` (from `flags`) that matches nothing in
/// `profiles`, as pprof warns: an empty table is then not a mystery.
pub fn note_unmatched(selection: &Selection, profiles: &[&Profile], flags: Flags) {
    for flag in selection.unmatched(profiles) {
        let given = match flag {
            "focus" => flags.focus,
            "ignore" => flags.ignore,
            "hide" => flags.hide,
            "tag-focus" => flags.tag_focus,
            "tag-ignore" => flags.tag_ignore,
            "tag-root" => flags.tag_root,
            _ => flags.tag_leaf,
        };
        note(format!(
            "heapprof: --{flag} {:?} matched no samples",
            given.unwrap_or_default()
        ));
    }
}

/// The compiled regexps and tag filters of `flags`; errors name the flag.
pub fn filters(flags: Flags) -> Result<Filters> {
    let compile = |flag: &str, re: Option<&str>| {
        re.map(|re| {
            Regex::new(re).map_err(|e| {
                // regex draws a caret under the pattern over several
                // lines; its last line says what is wrong.
                let message = e.to_string();
                let cause = message.lines().last().unwrap_or_default();
                anyhow::anyhow!(
                    "--{flag} {re:?} is not a valid regex: {}",
                    cause.trim_start_matches("error: ")
                )
            })
        })
        .transpose()
    };
    // An empty expression is no filter, as in pprof.
    let tag = |flag: &str, text: Option<&str>| -> Result<Option<TagFilter>> {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let filter =
            TagFilter::parse(text).map_err(|e| anyhow::anyhow!("--{flag} {text:?}: {e}"))?;
        if filter.is_range() {
            note(format!(
                "heapprof: --{flag} {text:?} is a range of numeric label values, not a regex"
            ));
        }
        Ok(Some(filter))
    };
    Ok(Filters {
        focus: compile("focus", flags.focus)?,
        ignore: compile("ignore", flags.ignore)?,
        hide: compile("hide", flags.hide)?,
        tag_focus: tag("tag-focus", flags.tag_focus)?,
        tag_ignore: tag("tag-ignore", flags.tag_ignore)?,
    })
}

/// A view's `result`, with an error about the profile's content prefixed
/// with the file it came from.
pub fn in_file<T>(path: &Path, result: Result<T, Error>) -> Result<T> {
    result.map_err(|e| named(path, e))
}

/// [`in_file`] for a diff's two profiles.
pub fn in_files<T>(base: &Path, new: &Path, result: Result<T, Error>) -> Result<T> {
    result.map_err(|e| match e {
        Error::Base(e) => named(base, *e),
        Error::New(e) => named(new, *e),
        e => e.into(),
    })
}

fn named(path: &Path, e: Error) -> anyhow::Error {
    match e {
        Error::NoSampleTypes
        | Error::SampleType(_)
        | Error::NotLifetimes { .. }
        | Error::NoLifetimes
        | Error::LifetimeUnit { .. } => anyhow::Error::new(e).context(name(path)),
        e => e.into(),
    }
}

/// One file of a series of profiles.
pub struct Listed {
    /// The file.
    pub path: PathBuf,
    /// Found by listing a directory, rather than named on the command line
    /// (a command may skip it, with a warning, if it is not a profile).
    pub listed: bool,
    /// Its size in bytes.
    pub size: u64,
}

/// The files of a series of profiles (`timeline`, `report`): each file as named, each directory's regular
/// files in name order, leaving out hidden ones (such as the temporary
/// files of an atomic write).
pub fn series(dumps: &[PathBuf], command: &str) -> Result<Vec<Listed>> {
    let mut inputs = Vec::new();
    for dump in dumps {
        if is_stdin(dump) {
            anyhow::bail!("{command} reads files and directories, not standard input (-)");
        }
        let metadata =
            std::fs::metadata(dump).with_context(|| format!("cannot read {}", dump.display()))?;
        if !metadata.is_dir() {
            inputs.push(Listed {
                path: dump.clone(),
                listed: false,
                size: metadata.len(),
            });
            continue;
        }
        let mut listed = Vec::new();
        let entries = std::fs::read_dir(dump)
            .with_context(|| format!("cannot list directory {}", dump.display()))?;
        for entry in entries {
            let entry =
                entry.with_context(|| format!("cannot list directory {}", dump.display()))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            // A symlink to a profile is a profile.
            let metadata = std::fs::metadata(entry.path());
            if let (false, Ok(metadata)) = (hidden, metadata) {
                if metadata.is_file() {
                    listed.push(Listed {
                        path: entry.path(),
                        listed: true,
                        size: metadata.len(),
                    });
                }
            }
        }
        if listed.is_empty() {
            anyhow::bail!("{}: no files in the directory", dump.display());
        }
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        inputs.extend(listed);
    }
    Ok(inputs)
}
