//! Addresses -> functions, files, lines and inlined frames, in process.
//!
//! Resolution uses the `backtrace` crate, only when a profile is written, only
//! for addresses that profile contains, and caches what it resolved (at most
//! `MAX_CACHED` addresses). The backtrace crate's own caches of parsed debug
//! info are cleared, and glibc asked to return the freed pages, after each
//! profile that needed new addresses: the parse is a transient cost (85 MiB
//! resident at its peak for the 31 MiB CLI binary), not a standing one. It runs
//! with the reentrancy guard held (so its allocations are not profiled) and
//! outside every lock the allocator takes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) use crate::pprof::Frame as SourceFrame;

/// Where a profile's addresses become names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// When the profile is written, in this process (the default).
    #[default]
    InProcess,
    /// Later, by `heapprof symbolize` with the binary: profiles carry
    /// addresses, mappings, build ids and file offsets only, and writing
    /// them costs no debug-info parsing at all.
    Offline,
}

static MODE: AtomicU8 = AtomicU8::new(0);

/// Sets where profiles are symbolized (see [`Mode`]).
pub(crate) fn set_mode(mode: Mode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

/// Where profiles are symbolized.
pub(crate) fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        0 => Mode::InProcess,
        _ => Mode::Offline,
    }
}

static FULL_STACKS: AtomicBool = AtomicBool::new(false);

/// Keeps (or, by default, cuts) the start-up frames rootward of the
/// program's entry (see [`crate::pprof::SymbolizeOptions::full_stacks`]).
pub(crate) fn set_full_stacks(on: bool) {
    FULL_STACKS.store(on, Ordering::Relaxed);
}

/// Whether profiles keep the start-up frames rootward of the program's
/// entry.
pub(crate) fn full_stacks() -> bool {
    FULL_STACKS.load(Ordering::Relaxed)
}

/// `raw`, an address-only profile, finished as `mode` says: named in this
/// process, its stacks shaped as configured; or left as addresses for
/// `heapprof symbolize`, with a comment that its stacks are to be kept
/// whole when they were asked to be (that cut is made when names are
/// known, so it is the symbolizer's to make).
pub(crate) fn finish(mut raw: crate::pprof::Profile, mode: Mode) -> crate::pprof::Profile {
    let full_stacks = full_stacks();
    match mode {
        Mode::InProcess => {
            let mut resolver = resolver();
            let options = crate::pprof::SymbolizeOptions { full_stacks };
            raw.symbolize_with_options(options, |location, _| {
                resolver.resolve(location.address as usize + 1)
            })
        }
        Mode::Offline => {
            if full_stacks {
                raw.comments
                    .push(crate::pprof::FULL_STACKS_COMMENT.to_owned());
            }
            raw
        }
    }
}

/// Innermost (inlined) level first; the last level owns the address.
pub(crate) type Resolved = Arc<[SourceFrame]>;

/// Resolved addresses, kept across profile writes.
pub(crate) type Cache = Option<HashMap<usize, Resolved>>;

static CACHE: Mutex<Cache> = Mutex::new(None);

/// Locks the cache; whoever holds it is the only one resolving symbols.
pub(crate) fn lock_cache() -> MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resolves return addresses, from the cache when it can, holding the
/// cache's lock while it lives.
pub(crate) struct Resolver {
    cache: MutexGuard<'static, Cache>,
    parsed: bool,
}

/// A resolver for one profile.
pub(crate) fn resolver() -> Resolver {
    Resolver {
        cache: lock_cache(),
        parsed: false,
    }
}

impl Resolver {
    /// The frames of the return address `address`.
    pub(crate) fn resolve(&mut self, address: usize) -> Resolved {
        let cache = self.cache.get_or_insert_with(HashMap::new);
        let parsed = &mut self.parsed;
        Arc::clone(cache.entry(address).or_insert_with(|| {
            *parsed = true;
            resolve_one(address)
        }))
    }
}

/// Most resolved addresses kept between profiles: about 20 MiB at worst,
/// far more than the few thousand distinct return addresses of a typical
/// profile. Past it the cache starts over.
const MAX_CACHED: usize = 1 << 16;

impl Drop for Resolver {
    fn drop(&mut self) {
        if self.cache.as_ref().is_some_and(|c| c.len() > MAX_CACHED) {
            *self.cache = None;
        }
        if self.parsed {
            // The backtrace crate keeps the debug info it parsed (tens of
            // MiB for a large binary); what profiles need is in our cache.
            backtrace::clear_symbol_cache();
            // And glibc keeps the pages that held it unless asked to give
            // them back (a no-op for memory of other allocators).
            crate::sys::trim_malloc_heap();
        }
    }
}

fn resolve_one(address: usize) -> Resolved {
    let mut frames = Vec::new();
    // `resolve` looks up address - 1: a return address points after the call.
    backtrace::resolve(address as *mut std::ffi::c_void, |symbol| {
        let raw = symbol.name().and_then(|n| n.as_str());
        let (name, system_name) = crate::pprof::symbol_names(raw, address as u64 - 1);
        frames.push(SourceFrame {
            name,
            system_name,
            file: symbol
                .filename()
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
            line: symbol.lineno().unwrap_or(0),
        });
    });
    frames.into()
}
