//! The pprof profile format, as a plain Rust model with one reader and one
//! writer: what heapprof's runtime writes, and what its CLI and reports read.
//!
//! ```
//! use heapprof_pprof::{Profile, Sample, ValueType};
//!
//! let mut profile = Profile::default();
//! profile.sample_types.push(ValueType::new("inuse_space", "bytes"));
//! profile.samples.push(Sample { values: vec![4096], ..Sample::default() });
//! let bytes = profile.encode(); // gzipped profile.proto, as go tool pprof reads it
//! assert_eq!(Profile::decode(&bytes).unwrap().total(0), 4096);
//! ```
//!
//! # Design
//!
//! * [`Profile`] is the profile.proto data with strings resolved and
//!   references turned into indices, so analysis code never sees a string
//!   table or an id.
//! * [`Profile::decode`] reads any pprof profile (gzipped or not, from Go,
//!   pprof-rs, Java, heapprof...) and checks every rule consumers rely on,
//!   rejecting a malformed or hostile one with an [`Error`] (never a panic),
//!   within fixed bounds ([`MAX_DECOMPRESSED`], [`MAX_VALUE_SUM`]).
//! * [`Profile::encode`] writes one that `go tool pprof` reads.
//! * [`Profile::symbolize_with`] turns addresses into functions with a
//!   resolver the caller brings, and hides the allocation machinery
//!   ([`is_machinery`]) and the start-up frames rootward of the program's
//!   entry ([`SymbolizeOptions`]): one mechanism for symbolizing in the
//!   profiled process and later from the binary on disk.
//! * [`write_atomically`] writes a file whole or not at all.
//!
//! The generated protobuf types stay in [`proto`]; hand-written code
//! converts them to and from the model in one place for reading and one for
//! writing. The crate has no platform code and no allocator code: it builds
//! and tests anywhere Rust does.

#![warn(missing_docs)]
#![deny(unsafe_code)]

mod comments;
mod decode;
mod encode;
mod error;
mod file;
mod machinery;
pub mod proto;
mod symbolize;

pub use comments::{memory_classes, peak_bytes, peak_comment, MEMORY_COMMENT};
pub use decode::{MAX_DECOMPRESSED, MAX_VALUE_SUM};
pub use error::Error;
pub use file::write_atomically;
pub use machinery::{crate_name, is_machinery, symbol_names};
pub use symbolize::{build_id_hex, Frame, SymbolizeOptions, FULL_STACKS_COMMENT};

/// What a sample value measures, e.g. `alloc_space` in `bytes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValueType {
    /// The measure, e.g. `inuse_space`.
    pub r#type: String,
    /// Its unit, e.g. `bytes`, `count`, `nanoseconds`.
    pub unit: String,
}

impl ValueType {
    /// A value type from its two names.
    pub fn new(r#type: &str, unit: &str) -> Self {
        ValueType {
            r#type: r#type.to_owned(),
            unit: unit.to_owned(),
        }
    }

    /// The four sample types of a Go heap profile, in Go's order:
    /// `alloc_objects/count`, `alloc_space/bytes`, `inuse_objects/count`,
    /// `inuse_space/bytes`.
    ///
    /// ```
    /// let types = heapprof_pprof::ValueType::go_heap();
    /// assert_eq!(types[3], heapprof_pprof::ValueType::new("inuse_space", "bytes"));
    /// ```
    pub fn go_heap() -> Vec<ValueType> {
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ]
        .iter()
        .map(|&(r#type, unit)| ValueType::new(r#type, unit))
        .collect()
    }
}

/// One stack with one value per sample type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Indices into [`Profile::locations`], leaf first.
    pub locations: Vec<usize>,
    /// One value per entry of [`Profile::sample_types`].
    pub values: Vec<i64>,
    /// Labels such as Go's `bytes` (object size) label.
    pub labels: Vec<Label>,
}

/// A key with a string or numeric value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Label {
    /// The label's name.
    pub key: String,
    /// Its value.
    pub value: LabelValue,
}

/// The value of a [`Label`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LabelValue {
    /// A string value.
    Str(String),
    /// A number, with an optional unit (empty when none).
    Num {
        /// The number.
        value: i64,
        /// Its unit, or "".
        unit: String,
    },
}

/// A loaded object of the profiled process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    /// First address of the mapped range.
    pub memory_start: u64,
    /// One past its last address.
    pub memory_limit: u64,
    /// Offset in the file of `memory_start`.
    pub file_offset: u64,
    /// Path of the object file.
    pub filename: String,
    /// Hex build id of the object, or "".
    pub build_id: String,
    /// The profile carries function names for this mapping.
    pub has_functions: bool,
    /// ... and file names.
    pub has_filenames: bool,
    /// ... and line numbers.
    pub has_line_numbers: bool,
    /// ... and inlined frames.
    pub has_inline_frames: bool,
}

/// An address and the source lines it stands for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// Index into [`Profile::mappings`], if any.
    pub mapping: Option<usize>,
    /// Instruction address, or 0.
    pub address: u64,
    /// Innermost (inlined) function first; the last owns the address.
    pub lines: Vec<Line>,
    /// Several addresses were folded into this one.
    pub is_folded: bool,
}

/// A function and a line in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Line {
    /// Index into [`Profile::functions`].
    pub function: usize,
    /// Source line, or 0.
    pub line: i64,
}

/// A function.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Function {
    /// Human-readable (demangled) name.
    pub name: String,
    /// Name as the linker knows it (mangled), or "".
    pub system_name: String,
    /// Source file, or "".
    pub filename: String,
    /// First line of the function, or 0.
    pub start_line: i64,
}

/// A whole pprof profile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// What each sample value measures.
    pub sample_types: Vec<ValueType>,
    /// The samples.
    pub samples: Vec<Sample>,
    /// Loaded objects.
    pub mappings: Vec<Mapping>,
    /// Addresses referenced by samples.
    pub locations: Vec<Location>,
    /// Functions referenced by locations.
    pub functions: Vec<Function>,
    /// Regexp of frames consumers should drop, or "".
    pub drop_frames: String,
    /// Regexp of frames consumers should keep, or "".
    pub keep_frames: String,
    /// When the profile was taken (Unix nanoseconds), or 0.
    pub time_nanos: i64,
    /// Over how long it was taken, or 0.
    pub duration_nanos: i64,
    /// What the sampling period counts, e.g. `space/bytes`.
    pub period_type: Option<ValueType>,
    /// The sampling period (for heap profiles: the sampling rate in bytes).
    pub period: i64,
    /// Free-form notes.
    pub comments: Vec<String>,
    /// The `type` of the sample type to show by default, or "" for the last.
    pub default_sample_type: String,
}

impl Profile {
    /// Index of the sample type consumers show by default: the one named by
    /// `default_sample_type`, else the last (pprof's rule).
    pub fn default_sample_index(&self) -> usize {
        self.sample_types
            .iter()
            .position(|t| {
                !self.default_sample_type.is_empty() && t.r#type == self.default_sample_type
            })
            .unwrap_or(self.sample_types.len().saturating_sub(1))
    }

    /// Index of the sample type named `name` (e.g. `alloc_space`), or given
    /// as a number. A number out of range lists the valid ones with their
    /// names (`0=alloc_objects ...`), a bad name the names.
    pub fn sample_index(&self, name: &str) -> Result<usize, Error> {
        let number = name.parse::<usize>().ok();
        if let Some(index) = number.filter(|&i| i < self.sample_types.len()) {
            return Ok(index);
        }
        let types = self.sample_types.iter();
        self.sample_types
            .iter()
            .position(|t| t.r#type == name)
            .ok_or_else(|| Error::UnknownSampleType {
                name: name.to_owned(),
                known: match number {
                    Some(_) => types
                        .enumerate()
                        .map(|(i, t)| format!("{i}={}", t.r#type))
                        .collect(),
                    None => types.map(|t| t.r#type.clone()).collect(),
                },
            })
    }

    /// The sum of every sample's value at `index`.
    pub fn total(&self, index: usize) -> i64 {
        self.samples.iter().map(|s| s.values[index]).sum()
    }
}
