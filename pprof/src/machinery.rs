//! The one rule for hiding the allocation machinery from the leaf end of a
//! heap profile's stacks, and the one rule for naming a symbol: both used by
//! heapprof's in-process symbolizer and by `heapprof symbolize`, so a
//! profile symbolized either way has the same frames.
//!
//! Machinery is recognised by module prefix (heapprof's allocation path
//! lives in three module trees, so a new file there is covered without
//! touching this rule), by crate (the standard library), by symbol (the
//! allocator shim, libgcc's unwinder) and, because debug info limited to
//! line tables gives inlined functions only short names, by source file.

use std::path::Path;

use crate::Frame;

/// Crates whose frames at the leaf of a stack belong to the allocation
/// machinery rather than to the code that asked for memory: the unwinder
/// crate, and Rust's standard library (`Vec::push`, `Box::new`,
/// `String::from`, `format!`, `HashMap::insert`...), as Go hides its
/// runtime's `mallocgc`, `makeslice` and `growslice`. Frames of these crates
/// further up the stack, under user code, are kept.
const MACHINERY_CRATES: &[&str] = &["backtrace", "alloc", "core", "std", "hashbrown"];

/// heapprof's allocation path: the `GlobalAlloc` impl (`alloc`), the core's
/// cold entry points and per-thread state (`core`), the stack walkers
/// (`unwind`). Matched by path rather than by crate: a binary named
/// `heapprof` (like heapprof's own CLI) has functions `heapprof::...` of its
/// own that must stay visible.
const RUNTIME_MODULES: &[&str] = &[
    "heapprof::alloc::",
    "heapprof::core::",
    "heapprof::unwind::",
];

/// The same modules' source files, below the runtime crate's root.
const RUNTIME_FILES: &[&str] = &["/src/alloc.rs", "/src/core/", "/src/unwind/"];

/// Symbols of the allocator shim and the unwinder.
const MACHINERY_SYMBOLS: &[&str] = &["__rust_", "__rg_", "__rdl_", "_Unwind_", "__rustc::"];

/// Path fragments of the standard library's sources in debug info: the
/// toolchain's `/rustc/<commit>/library/...`, a local `rust-src`, and std's
/// own vendored dependencies such as hashbrown (`/rust/deps/...`).
const STD_SOURCES: &[&str] = &["/rustc/", "/rustlib/src/rust/library/", "/rust/deps/"];

/// Whether a frame is allocation machinery, judged by its name and by its
/// source file.
///
/// ```
/// use heapprof_pprof::{is_machinery, Frame};
/// let frame = |name: &str| Frame { name: name.to_owned(), ..Frame::default() };
/// assert!(is_machinery(&frame("alloc::raw_vec::RawVec<T,A>::grow_one")));
/// assert!(!is_machinery(&frame("myapp::cache::insert")));
/// ```
pub fn is_machinery(frame: &Frame) -> bool {
    let name = &frame.name;
    let unqualified = name.trim_start_matches('<');
    MACHINERY_SYMBOLS
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || RUNTIME_MODULES
            .iter()
            .any(|module| unqualified.starts_with(module))
        || MACHINERY_CRATES.contains(&crate_of(name))
        || is_runtime_file(&frame.file)
        || STD_SOURCES
            .iter()
            .any(|fragment| frame.file.contains(fragment))
}

/// Whether `file` is one of [`RUNTIME_FILES`] in a heapprof source tree:
/// a directory named `heapprof...` (a checkout, or `heapprof-0.1.0` in
/// cargo's registry), or this workspace's root, whatever its name (the
/// runtime crate is the parent of this one).
fn is_runtime_file(file: &str) -> bool {
    let Some(root) = RUNTIME_FILES
        .iter()
        .find_map(|tail| file.rfind(tail).map(|at| &file[..at]))
    else {
        return false;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent();
    root.rsplit('/')
        .next()
        .is_some_and(|dir| dir.starts_with("heapprof"))
        || workspace.is_some_and(|w| Path::new(root) == w)
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

    fn named(name: &str) -> Frame {
        Frame {
            name: name.to_owned(),
            system_name: String::new(),
            file: String::new(),
            line: 0,
        }
    }

    #[test]
    fn machinery_is_recognised_by_file_when_names_are_short() {
        let at = |file: &str| Frame {
            file: file.to_owned(),
            ..named("with_capacity_in")
        };
        assert!(is_machinery(&at(
            "/rustc/59807616e1fa/library/alloc/src/raw_vec/mod.rs"
        )));
        let own_sources = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        assert!(is_machinery(&at(&format!(
            "{}/src/alloc.rs",
            own_sources.display()
        ))));
        assert!(is_machinery(&at(
            "/rust/deps/hashbrown-0.15.2/src/raw/mod.rs"
        )));
        assert!(!is_machinery(&at("/home/me/app/src/cache.rs")));
    }

    #[test]
    fn the_runtime_is_recognised_by_module_tree_in_any_heapprof_checkout() {
        let at = |file: &str| Frame {
            file: file.to_owned(),
            ..named("countdown")
        };
        let own = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for file in [
            format!("{}/src/core/thread.rs", own.display()),
            format!("{}/src/unwind/cfi.rs", own.display()),
            "/home/me/.cargo/registry/src/index/heapprof-0.1.0/src/core/sampler.rs".to_owned(),
            "/build/heapprof/src/alloc.rs".to_owned(),
        ] {
            assert!(is_machinery(&at(&file)), "{file}");
        }
        for file in [
            "/home/me/app/src/core/thread.rs",
            "/home/me/app/src/alloc.rs",
            "/build/heapprof/src/dump.rs",
        ] {
            assert!(!is_machinery(&at(file)), "{file}");
        }
        assert!(is_machinery(&named("heapprof::core::sample_point")));
        assert!(is_machinery(&named("heapprof::unwind::cfi::walk")));
    }

    #[test]
    fn machinery_is_recognised() {
        for name in [
            "heapprof::core::hooks::sampled_alloc",
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
