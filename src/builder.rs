//! Profiles from code: [`profile`] and its builder, the one way every
//! profile this crate hands out is made (the `heap_profile` family, dumps
//! and the endpoint are built on it).
//!
//! Building and encoding run with the reentrancy guard held, so the
//! profiler's own work is never sampled into the profile it makes.

use std::path::Path;

use crate::core::guard::Guard;
use crate::core::peak;
use crate::pprof;
use crate::profile::{self, Counts, Flavour};
use crate::{symbolize, Error, Symbolize};

/// Which profile to build. Every kind has Go's four heap sample types
/// (`alloc_objects`, `alloc_space`, `inuse_objects`, `inuse_space`); they
/// differ in what they count and what consumers show by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// The counts now, showing in-use space (Go's `heap` profile).
    Heap,
    /// The counts now, showing allocated space (Go's `allocs` profile).
    Allocs,
    /// The in-use counts at the high-water mark of live bytes (see
    /// [`crate::peak_profile`]): errors unless peak tracking is on and a
    /// peak was recorded.
    Peak,
}

/// Starts building a profile of this process (see [`Kind`]).
///
/// ```
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// let kept = vec![0u8; 1 << 20];
/// let profile = heapprof::profile(heapprof::Kind::Heap)
///     .comment("after loading the cache")
///     .build()
///     .unwrap();
/// assert_eq!(profile.data().sample_types[3].r#type, "inuse_space");
/// assert!(profile.data().comments.iter().any(|c| c == "after loading the cache"));
/// let bytes = profile.encode(); // gzipped pprof, for go tool pprof
/// assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
/// # drop(kept);
/// ```
pub fn profile(kind: Kind) -> ProfileBuilder {
    ProfileBuilder {
        kind,
        symbolize: None,
        comments: Vec::new(),
    }
}

/// What [`profile`] returns: say how, then [`build`](ProfileBuilder::build).
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct ProfileBuilder {
    kind: Kind,
    symbolize: Option<Symbolize>,
    comments: Vec<String>,
}

impl ProfileBuilder {
    /// Where this profile's addresses become names; by default as
    /// configured ([`crate::Config::symbolize`], `symbolize=` in
    /// `HEAPPROF`).
    pub fn symbolize(mut self, mode: Symbolize) -> Self {
        self.symbolize = Some(mode);
        self
    }

    /// Adds a comment to the profile (`go tool pprof -comments` shows it).
    pub fn comment(mut self, text: impl Into<String>) -> Self {
        self.comments.push(text.into());
        self
    }

    /// Builds the profile: copies the sample table (the only moment an
    /// allocating thread can wait on it) and symbolizes the copy.
    pub fn build(self) -> Result<HeapProfile, Error> {
        let mode = self.symbolize.unwrap_or_else(symbolize::mode);
        let (flavour, counts, mut comments) = match self.kind {
            Kind::Heap => (Flavour::Heap, Counts::Current, Vec::new()),
            Kind::Allocs => (Flavour::Allocs, Counts::Current, Vec::new()),
            Kind::Peak => {
                if !peak::tracking() {
                    return Err(Error::NoPeak(
                        "peak tracking is off (turn it on with Config::peak or HEAPPROF=peak=1)",
                    ));
                }
                let recorded = peak::recorded().ok_or(Error::NoPeak(
                    "live bytes have not reached 64 KiB since peak tracking began",
                ))?;
                let comment = format!(
                    "heapprof: in-use profile at the peak of live heap: {} bytes",
                    recorded.live_bytes
                );
                (
                    Flavour::Heap,
                    Counts::Recorded(recorded.buckets, recorded.time),
                    vec![comment],
                )
            }
        };
        comments.extend(self.comments);
        let data = profile::build_with(flavour, counts, comments, mode)?;
        Ok(HeapProfile { data })
    }
}

/// A built heap profile: [`encode`](Self::encode) it, [`write`](Self::write)
/// it to a file, or read its [`data`](Self::data).
#[derive(Clone, Debug)]
pub struct HeapProfile {
    data: pprof::Profile,
}

impl HeapProfile {
    /// The profile as gzipped pprof bytes.
    pub fn encode(&self) -> Vec<u8> {
        let _guard = Guard::enter();
        self.data.encode()
    }

    /// Writes the profile to `path`, whole or not at all: under a temporary
    /// name in the same directory, then renamed, so readers never see half
    /// a profile.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        write_file(path.as_ref(), &self.encode())
    }

    /// The profile as a [`pprof::Profile`] value.
    pub fn data(&self) -> &pprof::Profile {
        &self.data
    }

    /// The profile as a [`pprof::Profile`] value, owned.
    pub fn into_data(self) -> pprof::Profile {
        self.data
    }
}

/// Writes `bytes` to `path` whole or not at all (see
/// [`pprof::write_atomically`]), with the reentrancy guard held: the
/// write's own allocations are not sampled.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let _guard = Guard::enter();
    pprof::write_atomically(path, |out| {
        out.write_all(bytes).map_err(|e| Error::Io {
            path: path.to_owned(),
            source: e,
        })
    })
}
