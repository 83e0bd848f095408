//! heapprof: a sampling heap profiler for Rust that writes Go-compatible
//! pprof heap profiles.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
//!
//! fn main() -> Result<(), heapprof::Error> {
//!     // ... the program runs ...
//!     heapprof::write_heap_profile("heap.pb.gz") // then: go tool pprof -top heap.pb.gz
//! }
//! ```
//!
//! # What it records
//!
//! Allocations are sampled as a Poisson process over allocated bytes: on
//! average one sample every [`sample_rate`] bytes (512 KiB by default, as in
//! Go and jemalloc), with a per-thread countdown drawn from an exponential
//! distribution. An allocation of `s` bytes is therefore sampled with
//! probability `p = 1 - exp(-s / rate)`; the stack of each sampled allocation
//! is captured, and when the block is freed that is recorded too. Samples are
//! aggregated per (stack, size class) bucket and written weighted by `1/p`,
//! so every figure in a profile is an unbiased estimate of the true total. A
//! site that allocated `B` bytes has a relative error of about
//! `1/sqrt(B / rate)`; at rate 1 every allocation is recorded and the figures
//! are exact.
//!
//! Profiles are gzipped pprof protobuf with Go's heap profile shape
//! (`alloc_objects`, `alloc_space`, `inuse_objects`, `inuse_space`; a `bytes`
//! label per sample; period `space/bytes` = the rate), already symbolized
//! (demangled names, files, lines, inlined frames) with the process's mappings
//! and build ids. `go tool pprof` reads them as it reads Go's.
//!
//! [`profile`] builds any of them from code (`profile(Kind::Heap).build()?`,
//! then `.encode()`, `.write(path)` or `.data()`); [`heap_profile`],
//! [`write_heap_profile`] and their siblings are shorthands for it.
//!
//! # Around the profiles
//!
//! * [`stats()`] and [`measure`]: exact allocation counters (Go's
//!   `ReadMemStats`), for the process and for a closure on one thread.
//! * [`with_labels`] and [`labeled`]: labels on samples (for whom: an
//!   endpoint, a tenant, a task; with feature `tracing`, a span), and the
//!   age of in-use memory and the lifetimes of freed blocks (since when:
//!   [`lifetimes_profile`]).
//! * [`metrics`]: the same figures as a named catalog and in Prometheus
//!   text (Go's `runtime/metrics`).
//! * [`Config`] and the `HEAPPROF` environment variable (Go's `GODEBUG`):
//!   sample rate, periodic and at-exit dumps, the peak profile
//!   ([`peak_profile`]) and the debug endpoint, with no code change.
//! * `serve` (feature `http`): `/debug/pprof/heap` and friends, as Go's
//!   `net/http/pprof` serves them.
//!
//! # Design
//!
//! * The hot path ([`Profiler`]'s `GlobalAlloc` methods) adds to two
//!   thread-local counters, subtracts the size from a thread-local countdown
//!   in place and branches on its sign; a free loads one byte of the
//!   thread's 64 KiB counting filter of sampled addresses, branches and adds
//!   to two thread-local counters. No lock, no shared write, no allocation.
//! * A sampled allocation (cold) captures raw return addresses: by walking
//!   frame pointers when the program has them, else with DWARF unwind rules
//!   read once per code address from `.eh_frame` and cached (both checked
//!   against the thread's stack bounds, and against libgcc's unwinder at the
//!   first sample, which also takes any walk they cannot finish). It counts
//!   the sample in a mutex-protected table of interned stacks and buckets,
//!   and remembers the block in a lock-free map.
//! * A thread-local reentrancy guard lets the profiler's own allocations pass
//!   straight to the inner allocator, unsampled; and its own work (samples,
//!   profile writes, its threads) stays out of the program's counters and
//!   peak, on whatever thread it runs.
//! * Writing a profile copies the table under its lock and does all other
//!   work (symbolization, encoding) outside it.
//! * The frames of heapprof, the allocator shim and the standard library
//!   (`Vec::push`, `Box::new`, `format!`...) are hidden from the leaf end of
//!   each stack, so the first frame is the code that asked for memory.
//!
//! Bounds: at most [`MAX_DEPTH`] frames per stack (deeper stacks end in a
//! `[truncated]` frame); at most 131072 buckets and 2 Mi interned frame
//! addresses (~40 MiB with the lifetime sums) in the table, 4096 label sets
//! in 4 MiB; 131072 tracked live sampled blocks (3 MiB, lazily touched),
//! growing on demand to 33 million. Samples beyond a bound are counted as dropped and
//! the profile says so in a comment.

//! # The house
//!
//! This crate is the runtime: [`Profiler`] (`alloc.rs`, the `GlobalAlloc`
//! impl alone), the allocation path under `core` (its cold entry points are
//! the contract a C `malloc` shim calls too, so `heapprof run` can share
//! them), the unwinders, and the dashboard. Profiles are read and written by
//! the `heapprof-pprof` crate, re-exported as [`pprof`]; every view of them
//! (top, flamegraph, diff...) is in `heapprof-report`, which the `heapprof`
//! command maps its flags onto.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod alloc;
mod builder;
mod config;
pub mod core;
mod dump;
mod error;
mod fork;
#[cfg(feature = "http")]
mod http;
mod labels;
mod limit;
mod mappings;
mod memory;
pub mod metrics;
mod profile;
mod signal;
mod stats;
mod symbolize;
mod sys;
mod trace;
#[cfg(feature = "tracing")]
pub mod tracing;
mod unwind;

use std::path::Path;

use crate::core::sampler;

pub use crate::core::sampler::DEFAULT_RATE;
pub use alloc::Profiler;
pub use builder::{profile, HeapProfile, Kind, ProfileBuilder};
pub use config::Config;
pub use error::Error;
/// The profile format (model, reader, writer): the `heapprof-pprof` crate.
pub use heapprof_pprof as pprof;
#[cfg(feature = "http")]
pub use http::serve;
pub use labels::{labeled, with_labels, Labeled};
pub use memory::{memory_classes, MemoryClasses};
pub use stats::{measure, stats, AllocStats, Stats};
pub use symbolize::Mode as Symbolize;
pub use unwind::MAX_DEPTH;

/// Sets the mean number of bytes between samples: 0 turns sampling off, 1
/// records every allocation (exact figures, at a much higher cost).
///
/// Takes effect at once on the calling thread and on other threads at their
/// next sample point, like Go's `runtime.MemProfileRate`: call it first thing
/// in `main` for figures that cover the whole run.
///
/// ```
/// heapprof::set_sample_rate(64 * 1024);
/// assert_eq!(heapprof::sample_rate(), 64 * 1024);
/// heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
/// ```
pub fn set_sample_rate(bytes: usize) {
    sampler::set_rate(bytes as u64);
}

/// The mean number of bytes between samples (see [`set_sample_rate`]).
pub fn sample_rate() -> usize {
    sampler::rate() as usize
}

/// Makes sampling decisions reproducible: the calling thread, and threads
/// that reach their next sample point afterwards, draw from generators seeded
/// from `seed` (and the order in which they do so). For tests; 0 goes back to
/// seeding from the clock.
pub fn set_sample_seed(seed: u64) {
    sampler::set_seed(seed);
}

/// The current heap profile as gzipped pprof bytes, showing in-use space by
/// default (Go's `heap` profile): `profile(Kind::Heap).build()?.encode()`.
///
/// ```
/// let bytes = heapprof::heap_profile().unwrap();
/// let profile = heapprof::pprof::Profile::decode(&bytes).unwrap();
/// assert_eq!(profile.sample_types[3].r#type, "inuse_space");
/// assert_eq!(profile.period_type.unwrap().r#type, "space");
/// ```
pub fn heap_profile() -> Result<Vec<u8>, Error> {
    profile(Kind::Heap).encoded()
}

/// The same data as [`heap_profile`], showing allocated space by default
/// (Go's `allocs` profile).
pub fn allocs_profile() -> Result<Vec<u8>, Error> {
    profile(Kind::Allocs).encoded()
}

/// The current heap profile as a [`pprof::Profile`] value, for programs that
/// inspect it instead of writing it out.
pub fn heap_profile_data() -> Result<pprof::Profile, Error> {
    Ok(profile(Kind::Heap).build()?.into_data())
}

/// Writes [`heap_profile`] to `path`. The file is written under a temporary
/// name and renamed, so readers never see half a profile.
///
/// ```no_run
/// heapprof::write_heap_profile("heap.pb.gz")?;
/// # Ok::<(), heapprof::Error>(())
/// ```
pub fn write_heap_profile(path: impl AsRef<Path>) -> Result<(), Error> {
    profile(Kind::Heap).write_to(path.as_ref())
}

/// Writes [`allocs_profile`] to `path`, like [`write_heap_profile`].
pub fn write_allocs_profile(path: impl AsRef<Path>) -> Result<(), Error> {
    profile(Kind::Allocs).write_to(path.as_ref())
}

/// The in-use heap profile at the high-water mark of live bytes, as gzipped
/// pprof bytes: the profile that explains an out-of-memory kill.
///
/// Recorded only while peak tracking is on ([`Config::peak`], or `peak=1`
/// in `HEAPPROF`): each time live bytes pass the last recorded peak by a
/// sixteenth (and at least 64 KiB), the sampled in-use counts are copied.
/// Errors if tracking is off or nothing was recorded yet.
///
/// ```
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// # let dump = std::env::temp_dir().join("heapprof-doc-%p.pb.gz");
/// heapprof::Config::new()
///     .peak(true) // also written at exit, here to the temporary directory
///     .dump(dump.to_str().unwrap())
///     .start()
///     .unwrap();
/// let big = vec![1u8; 8 << 20];
/// drop(big);
/// let peak = heapprof::pprof::Profile::decode(&heapprof::peak_profile().unwrap()).unwrap();
/// let inuse: i64 = peak.samples.iter().map(|s| s.values[3]).sum();
/// assert!(inuse >= 8 << 20); // the 8 MiB buffer, freed since, was live at the peak
/// ```
pub fn peak_profile() -> Result<Vec<u8>, Error> {
    profile(Kind::Peak).encoded()
}

/// The lifetimes of freed sampled blocks, as gzipped pprof bytes (see
/// [`Kind::Lifetimes`]): `profile(Kind::Lifetimes).build()?.encode()`.
///
/// ```
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// heapprof::set_sample_rate(1);
/// drop(vec![0u8; 1000]); // lives for well under a millisecond
/// let profile = heapprof::pprof::Profile::decode(&heapprof::lifetimes_profile().unwrap()).unwrap();
/// assert_eq!(profile.sample_types[2].r#type, "lifetime");
/// # heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
/// ```
pub fn lifetimes_profile() -> Result<Vec<u8>, Error> {
    profile(Kind::Lifetimes).encoded()
}

/// Writes [`lifetimes_profile`] to `path`, like [`write_heap_profile`].
pub fn write_lifetimes_profile(path: impl AsRef<Path>) -> Result<(), Error> {
    profile(Kind::Lifetimes).write_to(path.as_ref())
}

/// Writes [`peak_profile`] to `path`, like [`write_heap_profile`].
pub fn write_peak_profile(path: impl AsRef<Path>) -> Result<(), Error> {
    profile(Kind::Peak).write_to(path.as_ref())
}
