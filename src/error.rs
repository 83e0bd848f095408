//! The library's error type.

use std::path::PathBuf;

/// Everything that can go wrong writing a profile, configuring the
/// profiler or serving profiles. Reading a profile has its own error,
/// [`crate::pprof::Error`].
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
    /// No peak profile to give.
    #[error("no peak profile: {0}")]
    NoPeak(&'static str),
    /// A `HEAPPROF` setting or [`crate::Config`] value that makes no sense.
    #[error("{0}")]
    Config(String),
    /// The debug endpoint could not listen.
    #[error("debug endpoint on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A profile that could not be read.
    #[error(transparent)]
    Profile(heapprof_pprof::Error),
    /// Memory for a profile snapshot could not be had.
    #[error("out of memory copying the profile table")]
    OutOfMemory,
}

impl From<heapprof_pprof::Error> for Error {
    fn from(e: heapprof_pprof::Error) -> Self {
        match e {
            heapprof_pprof::Error::Io { path, source } => Error::Io { path, source },
            other => Error::Profile(other),
        }
    }
}
