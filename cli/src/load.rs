//! Reading profiles and turning a `Selection` into stacks.

use std::path::Path;

use anyhow::{Context, Result};
use heapprof::pprof::Profile;
use regex::Regex;

use crate::args::Selection;
use crate::stacks::{self, Filters, Stack};

/// Reads and decodes the profile at `path`; errors name the file.
pub fn profile(path: &Path) -> Result<Profile> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    Profile::decode(&bytes).with_context(|| format!("{}", path.display()))
}

/// The sample type index chosen by `selection` (or the profile's default).
pub fn sample_index(profile: &Profile, selection: &Selection) -> Result<usize> {
    if profile.sample_types.is_empty() {
        anyhow::bail!("the profile has no sample types");
    }
    match &selection.sample_index {
        Some(name) => Ok(profile.sample_index(name)?),
        None => Ok(profile.default_sample_index()),
    }
}

/// The compiled filters of `selection`.
pub fn filters(selection: &Selection) -> Result<Filters> {
    let compile = |flag: &str, re: &Option<String>| {
        re.as_deref()
            .map(|re| {
                Regex::new(re).with_context(|| format!("--{flag} {re:?} is not a valid regex"))
            })
            .transpose()
    };
    Ok(Filters {
        focus: compile("focus", &selection.focus)?,
        ignore: compile("ignore", &selection.ignore)?,
        hide: compile("hide", &selection.hide)?,
    })
}

/// The filtered stacks of `profile` for `selection`, with the index used.
pub fn stacks<'p>(profile: &'p Profile, selection: &Selection) -> Result<(usize, Vec<Stack<'p>>)> {
    let index = sample_index(profile, selection)?;
    let filters = filters(selection)?;
    Ok((index, stacks::stacks(profile, index, &filters)))
}
