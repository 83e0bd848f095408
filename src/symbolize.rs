//! Addresses -> functions, files, lines and inlined frames, and the rule that
//! hides the allocator's own frames at the leaf of every stack.
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
use std::sync::atomic::{AtomicU8, Ordering};
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
            // SAFETY: malloc_trim has no preconditions.
            unsafe { libc::malloc_trim(0) };
        }
    }
}

fn resolve_one(address: usize) -> Resolved {
    let mut frames = Vec::new();
    // `resolve` looks up address - 1: a return address points after the call.
    backtrace::resolve(address as *mut std::ffi::c_void, |symbol| {
        let raw = symbol
            .name()
            .map(|n| n.as_str().unwrap_or_default().to_owned());
        let (name, system_name) = match (symbol.name(), raw) {
            // A linker symbol: demangle it, without the hash suffix.
            (Some(name), Some(raw)) if is_mangled(&raw) => (format!("{name:#}"), raw),
            // Debug info already holds the source-level name.
            (_, Some(raw)) if !raw.is_empty() => (raw, String::new()),
            _ => (format!("{:#x}", address - 1), String::new()),
        };
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

fn is_mangled(name: &str) -> bool {
    name.starts_with("_ZN") || name.starts_with("_R")
}

/// Crates whose frames at the leaf of a stack belong to the allocation
/// machinery rather than to the code that asked for memory: heapprof itself,
/// its unwinder, and Rust's standard library (`Vec::push`, `Box::new`,
/// `String::from`, `format!`, `HashMap::insert`...), as Go hides its runtime's
/// `mallocgc`, `makeslice` and `growslice`. Frames of these crates further up
/// the stack, under user code, are kept.
const MACHINERY_CRATES: &[&str] = &["backtrace", "alloc", "core", "std", "hashbrown"];

/// heapprof's own allocation-path modules. Matched by path rather than by
/// crate: a binary named `heapprof` (like this project's CLI) has functions
/// `heapprof::...` of its own that must stay visible.
const MACHINERY_PATHS: &[&str] = &[
    "heapprof::alloc::",
    "heapprof::core::",
    "heapprof::record::",
    "heapprof::sampler::",
    "heapprof::unwind::",
    "heapprof::blocks::",
    "heapprof::table::",
    "heapprof::guard::",
    "heapprof::counters::",
    "heapprof::local::",
    "heapprof::peak::",
];

/// heapprof's allocation-path source files, recognised in any checkout (the
/// program may have been built from another copy than the one symbolizing).
const MACHINERY_FILES: &[&str] = &[
    "/src/alloc.rs",
    "/src/core/blocks.rs",
    "/src/core/counters.rs",
    "/src/core/guard.rs",
    "/src/core/hooks.rs",
    "/src/core/mod.rs",
    "/src/core/peak.rs",
    "/src/core/sampler.rs",
    "/src/core/table.rs",
    "/src/core/thread.rs",
    "/src/record.rs",
    "/src/sampler.rs",
    "/src/unwind.rs",
    "/src/blocks.rs",
    "/src/table.rs",
    "/src/guard.rs",
    "/src/counters.rs",
    "/src/local.rs",
    "/src/peak.rs",
];

/// Symbols of the allocator shim and the unwinder.
const MACHINERY_SYMBOLS: &[&str] = &["__rust_", "__rg_", "__rdl_", "_Unwind_", "__rustc::"];

/// Where the sources of heapprof itself were when it was built.
const OWN_SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");

/// Path fragments of the standard library's sources in debug info: the
/// toolchain's `/rustc/<commit>/library/...`, a local `rust-src`, and std's
/// own vendored dependencies such as hashbrown (`/rust/deps/...`).
const STD_SOURCES: &[&str] = &["/rustc/", "/rustlib/src/rust/library/", "/rust/deps/"];

/// Whether a frame is allocation machinery (see [`MACHINERY_CRATES`]),
/// judged by its name and, because debug info limited to line tables gives
/// inlined functions only short names, by its source file too.
pub(crate) fn is_machinery(frame: &SourceFrame) -> bool {
    let name = &frame.name;
    let unqualified = name.trim_start_matches('<');
    MACHINERY_SYMBOLS
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || MACHINERY_PATHS
            .iter()
            .any(|path| unqualified.starts_with(path))
        || MACHINERY_CRATES.contains(&crate_of(name))
        || frame.file.starts_with(OWN_SOURCES)
        || (frame.file.contains("heapprof")
            && MACHINERY_FILES.iter().any(|f| frame.file.ends_with(f)))
        || STD_SOURCES
            .iter()
            .any(|fragment| frame.file.contains(fragment))
}

/// The crate a demangled Rust function name belongs to. For a trait method
/// `<Type as Trait>::f` that is the crate of `Type`, or of `Trait` when `Type`
/// is a primitive or a reference to one (`<str as alloc::borrow::ToOwned>`).
fn crate_of(name: &str) -> &str {
    let Some(qualified) = name.strip_prefix('<') else {
        return first_segment(name);
    };
    // Split `Type as Trait>::f` at the top-level " as " or '>'.
    let mut depth = 0usize;
    let bytes = qualified.as_bytes();
    let mut end = qualified.len();
    let mut trait_start = None;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' | b'[' | b'(' => depth += 1,
            b'>' | b']' | b')' if depth == 0 => {
                end = i;
                break;
            }
            b'>' | b']' | b')' => depth -= 1,
            b' ' if depth == 0 && qualified[i..].starts_with(" as ") => {
                end = i;
                trait_start = Some(i + 4);
                break;
            }
            _ => {}
        }
    }
    let self_type = qualified[..end].trim_start_matches(['&', '*', '[', '(', ' ']);
    let self_type = ["mut ", "const ", "dyn "]
        .iter()
        .fold(self_type, |t, prefix| t.strip_prefix(prefix).unwrap_or(t));
    if self_type.contains("::") {
        first_segment(self_type)
    } else if let Some(start) = trait_start {
        first_segment(&qualified[start..])
    } else {
        first_segment(self_type)
    }
}

fn first_segment(path: &str) -> &str {
    let end = path.find([':', '<']).unwrap_or(path.len());
    &path[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> SourceFrame {
        SourceFrame {
            name: name.to_owned(),
            system_name: String::new(),
            file: String::new(),
            line: 0,
        }
    }

    #[test]
    fn machinery_is_recognised_by_file_when_names_are_short() {
        let at = |file: &str| SourceFrame {
            file: file.to_owned(),
            ..named("with_capacity_in")
        };
        assert!(is_machinery(&at(
            "/rustc/59807616e1fa/library/alloc/src/raw_vec/mod.rs"
        )));
        assert!(is_machinery(&at(&format!("{OWN_SOURCES}alloc.rs"))));
        assert!(is_machinery(&at(
            "/rust/deps/hashbrown-0.15.2/src/raw/mod.rs"
        )));
        assert!(!is_machinery(&at("/home/me/app/src/cache.rs")));
    }

    #[test]
    fn machinery_is_recognised() {
        for name in [
            "heapprof::record::sampled_alloc",
            "<heapprof::alloc::Profiler<A> as core::alloc::global::GlobalAlloc>::alloc",
            "__rust_alloc",
            "__rg_alloc",
            "alloc::raw_vec::RawVec<T,A>::grow_one",
            "<str as alloc::borrow::ToOwned>::to_owned",
            "<alloc::string::String as core::clone::Clone>::clone",
            "<[T] as alloc::slice::hack::ConvertVec>::to_vec",
            "std::collections::hash::map::HashMap<K,V,S>::insert",
            "hashbrown::raw::RawTable<T,A>::reserve_rehash",
            "backtrace::backtrace::libunwind::trace",
        ] {
            assert!(is_machinery(&named(name)), "{name}");
        }
        for name in [
            "myapp::cache::insert",
            "<myapp::Record as core::clone::Clone>::clone",
            "<&myapp::Key as core::hash::Hash>::hash",
            "heapprof_cli::demo::build_index",
            "heapprof::demo::build_index",
            "heapprof::main",
            "main",
            "start_thread",
        ] {
            assert!(!is_machinery(&named(name)), "{name}");
        }
    }
}
