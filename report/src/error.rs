//! The report crate's error type. Messages are the ones `heapprof` prints:
//! a cause is a `source`, so that `{:#}` (anyhow) prints `what: cause`.
//! Errors about a profile's content do not name its file: the caller knows
//! the name and adds it.

use std::io;
use std::path::PathBuf;

use heapprof_pprof::Error as ProfileError;

/// Everything that can stop a view or symbolization.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The profile has no sample types to choose from.
    #[error("the profile has no sample types")]
    NoSampleTypes,
    /// The selection names a sample type the profile does not have.
    #[error(transparent)]
    SampleType(ProfileError),
    /// The base profile of a diff failed to give what was asked.
    #[error("the base profile")]
    Base(#[source] Box<Error>),
    /// The new profile of a diff failed to give what was asked.
    #[error("the new profile")]
    New(#[source] Box<Error>),
    /// A diff of two profiles whose sample types cannot be compared.
    #[error("cannot compare {sample_type} in {base_unit} with {sample_type} in {new_unit}")]
    IncompatibleUnits {
        /// The sample type shown.
        sample_type: String,
        /// Its unit in BASE.
        base_unit: String,
        /// Its unit in NEW.
        new_unit: String,
    },
    /// The lifetimes view was given a profile with neither lifetimes nor
    /// ages.
    #[error(
        "the lifetimes view needs a lifetimes profile (sample types freed_objects, freed_space, lifetime: from /debug/pprof/lifetimes or heapprof::write_lifetimes_profile) or a heapprof heap profile with age labels (heapprof::write_heap_profile); this one has sample types [{sample_types}] and no age labels"
    )]
    NotLifetimes {
        /// The profile's sample types, space-separated.
        sample_types: String,
    },
    /// Sorting by mean lifetime was asked of a heap profile's ages.
    #[error("a heap profile's ages have no lifetimes to sort by: sort a lifetimes profile by mean lifetime")]
    NoLifetimes,
    /// A lifetimes profile whose `lifetime` sample type is not in a unit of
    /// time.
    #[error("the lifetime sample type is in {unit:?}, not a unit of time")]
    LifetimeUnit {
        /// Its unit.
        unit: String,
    },
    /// inferno could not render a flamegraph.
    #[error("rendering the flamegraph")]
    Render(#[source] io::Error),
    /// inferno could not compare the stacks of a diff.
    #[error("comparing the stacks")]
    Compare(#[source] io::Error),
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Writing JSON failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A debug directory to search for symbols could not be listed.
    #[error("cannot read debug directory {}", .dir.display())]
    DebugDir {
        /// The directory.
        dir: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A binary to symbolize with could not be read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A binary to symbolize with is not an object file.
    #[error("{}: not an object file", .path.display())]
    NotAnObject {
        /// The file.
        path: PathBuf,
        /// What the object parser said.
        source: object::Error,
    },
    /// A binary to symbolize with is not one the profile was taken of.
    #[error(
        "{}: build id {} does not match the profile's main binary (build id {main}); was it rebuilt since the profile was written?",
        .binary.display(),
        or_none(.build_id)
    )]
    BuildIdMismatch {
        /// The binary given.
        binary: PathBuf,
        /// Its build id, or "".
        build_id: String,
        /// The build id of the profile's main binary, or "".
        main: String,
    },
    /// A profile of a timeline without the series' sample type.
    #[error("{file}: no sample type {wanted} to join the series with (it has {found})")]
    NotInSeries {
        /// The profile, as the caller named it.
        file: String,
        /// The series' sample type (`type/unit`), or the name asked for.
        wanted: String,
        /// The profile's sample types.
        found: String,
    },
    /// A profile of a timeline without a time.
    #[error("{file}: the profile has no time (time_nanos is 0), so it has no place in a series")]
    NoTime {
        /// The profile, as the caller named it.
        file: String,
    },
    /// A timeline of no profiles (peak profiles alone are no series).
    #[error("no profiles to make a timeline of")]
    EmptyTimeline,
}

fn or_none(build_id: &str) -> &str {
    if build_id.is_empty() {
        "(none)"
    } else {
        build_id
    }
}
