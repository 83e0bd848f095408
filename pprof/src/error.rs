//! The profile crate's error type: what can go wrong reading a profile, or
//! writing one to a file.

use std::path::PathBuf;

/// Everything that can go wrong reading a profile or writing a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read, created or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The input is empty.
    #[error("parsing profile: empty input")]
    Empty,
    /// The gzip stream is damaged or truncated.
    #[error("decompressing profile: {0}")]
    Decompress(std::io::Error),
    /// The bytes are not a pprof profile.
    #[error("parsing profile: not a pprof profile ({0})")]
    NotAProfile(String),
    /// A profile in one of pprof's legacy formats, which heapprof does not
    /// read (`go tool pprof -proto` converts them).
    #[error("parsing profile: this is a {0} in a legacy pprof format, which heapprof does not read; convert it with `go tool pprof -proto FILE > FILE.pb.gz`")]
    Legacy(&'static str),
    /// A pprof profile that breaks a rule of the format.
    #[error("parsing profile: {0}")]
    Malformed(String),
    /// A sample type name that the profile does not have.
    #[error("sample index \"{name}\" must be one of: [{}]", known.join(" "))]
    UnknownSampleType {
        /// The name asked for.
        name: String,
        /// The profile's sample types.
        known: Vec<String>,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
