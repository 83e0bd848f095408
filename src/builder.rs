//! Profiles from code: [`profile`] and its builder, the one way every
//! profile this crate hands out is made (the `heap_profile` family, dumps
//! and the endpoint are built on it).
//!
//! Building and encoding are heapprof's own work
//! ([`crate::core::counters::OwnWork`]), on whatever thread they run: never
//! sampled into the profile they make, never counted in the program's live
//! bytes or peak. What the program gets (a [`HeapProfile`], encoded bytes)
//! is a copy made outside the work, so that it is the program's memory,
//! whose free is counted; the original is freed inside the work.

use std::path::Path;

use crate::core::counters::own_work;
use crate::core::guard::Guard;
use crate::core::peak;
use crate::pprof;
use crate::profile::{self, Counts, Flavour};
use crate::{symbolize, Error, Symbolize};

/// Which profile to build. The heap kinds have Go's four heap sample types
/// (`alloc_objects`, `alloc_space`, `inuse_objects`, `inuse_space`); they
/// differ in what they count and what consumers show by default.
/// [`Kind::Lifetimes`] is a profile of its own.
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
    /// How long freed sampled blocks lived, per allocation site and label
    /// set: sample types `freed_objects/count`, `freed_space/bytes` (the
    /// default) and `lifetime/microseconds` (the sum of their lifetimes, so
    /// a site's mean lifetime is `lifetime / freed_objects`), one sample
    /// per lifetime class, labelled `lifetime` = `<1ms`, `1ms-1s`, `1s-1m`,
    /// `1m-1h` or `>1h`. `go tool pprof -sample_index=freed_space
    /// -tagfocus=lifetime=<1ms` shows the sites of short-lived, temporary
    /// allocations.
    Lifetimes,
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
        let made = own_work(|| self.data())?;
        Ok(HeapProfile {
            data: hand_over(made, pprof::Profile::clone),
        })
    }

    /// `build()?.encode()`, without the program's copy of the profile.
    pub(crate) fn encoded(self) -> Result<Vec<u8>, Error> {
        let made = own_work(|| self.data().map(|data| data.encode()))?;
        Ok(hand_over(made, |bytes| bytes.to_vec()))
    }

    /// `build()?.write(path)`, without the program's copy of the profile.
    pub(crate) fn write_to(self, path: &Path) -> Result<(), Error> {
        let made = own_work(|| self.data().map(|data| data.encode()))?;
        hand_over(made, |bytes| write_file(path, bytes))
    }

    /// The profile, made by the caller's own work (the endpoint's threads
    /// use it as it is; the program gets a copy). Its errors (no peak, out
    /// of memory) hold no heap memory, so they may leave the work as they
    /// are. The comments are copied, not moved: the work frees what it
    /// allocated, and only that.
    pub(crate) fn data(&self) -> Result<pprof::Profile, Error> {
        let mode = self.symbolize.unwrap_or_else(symbolize::mode);
        let (flavour, counts, mut comments) = match self.kind {
            Kind::Heap => (Flavour::Heap, Counts::Current, Vec::new()),
            Kind::Allocs => (Flavour::Allocs, Counts::Current, Vec::new()),
            Kind::Lifetimes => (Flavour::Lifetimes, Counts::Current, Vec::new()),
            Kind::Peak => {
                if !peak::tracking() {
                    return Err(Error::NoPeak(
                        "peak tracking is off (turn it on with Config::peak or HEAPPROF=peak=1)",
                    ));
                }
                let recorded = peak::recorded().ok_or(Error::NoPeak(
                    "live bytes have not reached 64 KiB since peak tracking began",
                ))?;
                let comment = heapprof_pprof::peak_comment(recorded.live_bytes);
                (
                    Flavour::Heap,
                    Counts::Recorded(recorded.buckets, recorded.time),
                    vec![comment],
                )
            }
        };
        comments.extend(self.comments.iter().cloned());
        profile::build_with(flavour, counts, comments, mode)
    }
}

/// What the caller gets of `made`, something heapprof's own work made:
/// `use_it` runs outside the work, so whatever it allocates and keeps (a
/// copy) is the program's, while `made` is freed inside the work, where it
/// was counted.
fn hand_over<T, R>(made: T, use_it: impl FnOnce(&T) -> R) -> R {
    let result = use_it(&made);
    own_work(|| drop(made));
    result
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
        hand_over(own_work(|| self.data.encode()), |bytes| bytes.to_vec())
    }

    /// Writes the profile to `path`, whole or not at all: under a temporary
    /// name in the same directory, then renamed, so readers never see half
    /// a profile.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let made = own_work(|| self.data.encode());
        hand_over(made, |bytes| write_file(path.as_ref(), bytes))
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
/// write's own allocations are not sampled. They are counted on the
/// caller's side, though: its buffers are freed before it returns, and an
/// error it returns (naming the path) is the caller's to drop.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let _guard = Guard::enter();
    pprof::write_atomically(path, |out| {
        out.write_all(bytes).map_err(|e| Error::Io {
            path: path.to_owned(),
            source: e,
        })
    })
}
