//! Reading profiles and turning a `Selection` into stacks.

use std::path::Path;

use anyhow::{Context, Result};
use heapprof::pprof::Profile;
use regex::Regex;

use crate::args::Selection;
use crate::stacks::{self, Filters, Names, Stack};

/// Reads and decodes the profile at `path`; errors name the file.
///
/// The profile lives until the process exits, on purpose: a command reads a
/// profile once and exits soon after, and freeing the hundreds of thousands
/// of small allocations of a large profile just before exit cost more than
/// a tenth of a second in the large-profile benchmark.
pub fn profile(path: &Path) -> Result<&'static Profile> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let profile = Profile::decode(&bytes).with_context(|| format!("{}", path.display()))?;
    Ok(Box::leak(Box::new(profile)))
}

/// The sample type index chosen by `selection` (or the profile's default);
/// errors name `path`.
pub fn sample_index(path: &Path, profile: &Profile, selection: &Selection) -> Result<usize> {
    if profile.sample_types.is_empty() {
        anyhow::bail!("{}: the profile has no sample types", path.display());
    }
    match &selection.sample_index {
        Some(name) => Ok(profile
            .sample_index(name)
            .with_context(|| format!("{}", path.display()))?),
        None => Ok(profile.default_sample_index()),
    }
}

/// The compiled filters of `selection`.
pub fn filters(selection: &Selection) -> Result<Filters> {
    let compile = |flag: &str, re: &Option<String>| {
        re.as_deref()
            .map(|re| {
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
    Ok(Filters {
        focus: compile("focus", &selection.focus)?,
        ignore: compile("ignore", &selection.ignore)?,
        hide: compile("hide", &selection.hide)?,
    })
}

/// A profile's stacks for one sample type, after the selection's filters.
pub struct Selected {
    /// The sample type index used.
    pub index: usize,
    /// The filtered stacks.
    pub stacks: Vec<Stack>,
    /// Sum of |value| over all samples before filtering: as in pprof,
    /// percentages stay relative to the whole profile under --focus.
    pub total: i64,
}

/// The filtered stacks of `profile` (read from `path`) for `selection`, with
/// functions interned in `names`.
pub fn stacks<'p>(
    path: &Path,
    profile: &'p Profile,
    selection: &Selection,
    names: &mut Names<'p>,
) -> Result<Selected> {
    let index = sample_index(path, profile, selection)?;
    let filters = filters(selection)?;
    Ok(Selected {
        index,
        stacks: stacks::stacks(profile, index, &filters, names),
        total: profile.samples.iter().map(|s| s.values[index].abs()).sum(),
    })
}
