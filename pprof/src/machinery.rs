//! The one rule for hiding the allocation machinery from the leaf end of a
//! heap profile's stacks, the one rule for where a stack begins at its root
//! end, and the one rule for naming a symbol: all used by heapprof's
//! in-process symbolizer and by `heapprof symbolize`, so a profile
//! symbolized either way has the same frames.
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

/// The function std runs a program's `main` and every spawned thread's
/// closure through, where Rust's own short backtraces end: what lies
/// rootward of it (`_start`, `__libc_start_main`, `std::rt::lang_start`,
/// `catch_unwind`, the thread's start-up) is the same in every program.
const ENTRY_MARKER: &str = "__rust_begin_short_backtrace";

/// Whether a frame is std's `__rust_begin_short_backtrace`, by the last
/// segment of its path, so that every spelling of it matches: demangled
/// from legacy or v0 symbols, with or without generic arguments, and the
/// short name that line-table debug info gives an inlined copy.
pub(crate) fn is_entry_marker(frame: &Frame) -> bool {
    let name = frame.name.as_str();
    // A trait method (`<T as Trait>::f`) is never the marker; anything from
    // the first '<' on is generic arguments.
    if name.starts_with('<') {
        return false;
    }
    let path = name.split('<').next().unwrap_or(name);
    path.trim_end_matches(':').rsplit("::").next() == Some(ENTRY_MARKER)
}

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

/// The crate of a demangled Rust function name (for a trait method
/// `<Type as Trait>::f`, that of `Type`, or of `Trait` when `Type` is a
/// primitive); `None` for a name that is no Rust path: a C function, an
/// object file (`[libc.so.6]`), an address.
///
/// ```
/// use heapprof_pprof::crate_name;
/// assert_eq!(crate_name("myapp::cache::insert"), Some("myapp"));
/// assert_eq!(crate_name("<alloc::string::String as core::clone::Clone>::clone"), Some("alloc"));
/// assert_eq!(crate_name("<str as alloc::borrow::ToOwned>::to_owned"), Some("alloc"));
/// assert_eq!(crate_name("__libc_start_main"), None);
/// assert_eq!(crate_name("[libc.so.6]"), None);
/// ```
pub fn crate_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let krate = crate_of(name);
    let identifier = krate
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && krate.chars().all(|c| c.is_alphanumeric() || c == '_');
    (identifier && name.contains("::")).then_some(krate)
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

/// (name, system name) of a symbol, as every heapprof symbolizer names it:
/// a mangled Rust symbol (legacy `_ZN` or v0 `_R`) demangled without its
/// hash, with the mangled form as the system name; any other name (a
/// source-level name from debug info, a C symbol) as it is; no name at all,
/// the address in hex. Closures are named in one style whatever named them
/// (`{{closure}}`, for the reason at `CLOSURE`).
///
/// ```
/// use heapprof_pprof::symbol_names;
/// let (name, system) = symbol_names(Some("_ZN5myapp4main17h0123456789abcdefE"), 0x10);
/// assert_eq!((name.as_str(), system.as_str()), ("myapp::main", "_ZN5myapp4main17h0123456789abcdefE"));
/// assert_eq!(symbol_names(Some("malloc"), 0x10).0, "malloc");
/// assert_eq!(symbol_names(None, 0x10).0, "0x10");
/// // v0 mangling and debug info number closures; legacy mangling cannot.
/// assert_eq!(symbol_names(Some("myapp::run::{closure#1}"), 0x10).0, "myapp::run::{{closure}}");
/// ```
pub fn symbol_names(raw: Option<&str>, address: u64) -> (String, String) {
    match raw {
        Some(raw) if raw.starts_with("_ZN") || raw.starts_with("_R") => {
            match rustc_demangle::try_demangle(raw) {
                Ok(name) => (one_closure_style(format!("{name:#}")), raw.to_owned()),
                Err(_) => (raw.to_owned(), String::new()),
            }
        }
        Some(raw) if !raw.is_empty() => (one_closure_style(raw.to_owned()), String::new()),
        _ => (format!("{address:#x}"), String::new()),
    }
}

/// How every closure is named in a profile heapprof symbolizes: legacy
/// mangling's `{{closure}}`, which v0 mangling's and debug info's
/// `{closure#N}` can always be turned into, truthfully; the other way round
/// would need a closure's index, which a legacy symbol does not have. It is
/// also what Rust programs' own backtraces print under the default
/// (legacy) mangling. std, built with v0 mangling, and a program's own
/// legacy-mangled code otherwise mix the two in one stack. Shims follow
/// suit: v0's `f::{shim:vtable#0}` is legacy's `f{{vtable.shim}}`.
const CLOSURE: &str = "{{closure}}";

/// `name` with each `{closure#N}` written as [`CLOSURE`], and each
/// `::{shim:KIND#N}` as `{{KIND.shim}}`.
fn one_closure_style(name: String) -> String {
    if !name.contains("{closure#") && !name.contains("{shim:") {
        return name;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name.as_str();
    while let Some(at) = rest.find('{') {
        let (before, from) = rest.split_at(at);
        match numbered(from) {
            Some(("closure", len)) => {
                out.push_str(before);
                out.push_str(CLOSURE);
                rest = &from[len..];
            }
            Some((kind, len)) => {
                out.push_str(before.strip_suffix("::").unwrap_or(before));
                out.push_str("{{");
                out.push_str(kind);
                out.push_str(".shim}}");
                rest = &from[len..];
            }
            None => {
                out.push_str(before);
                out.push('{');
                rest = &from[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// For text starting `{closure#N}` or `{shim:KIND#N}`: ("closure" or
/// KIND, its length).
fn numbered(text: &str) -> Option<(&str, usize)> {
    let inner = &text[1..text.find('}')?];
    let (what, index) = inner.split_once('#')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let kind = match what.strip_prefix("shim:") {
        Some(kind)
            if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            kind
        }
        Some(_) => return None,
        None if what == "closure" => what,
        None => return None,
    };
    Some((kind, inner.len() + 2))
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

    #[test]
    fn the_entry_marker_is_recognised_in_every_spelling() {
        for name in [
            "std::sys::backtrace::__rust_begin_short_backtrace",
            "std::sys::backtrace::__rust_begin_short_backtrace::<fn(), ()>",
            "std::sys::backtrace::__rust_begin_short_backtrace<std::thread::Builder::spawn_unchecked_::{{closure}}::{{closure}}, ()>",
            "std::sys_common::backtrace::__rust_begin_short_backtrace",
            "__rust_begin_short_backtrace<F,T>",
            "__rust_begin_short_backtrace",
        ] {
            assert!(is_entry_marker(&named(name)), "{name}");
        }
        for name in [
            "std::sys::backtrace::__rust_end_short_backtrace",
            "std::rt::lang_start::{{closure}}",
            "std::panicking::catch_unwind::<i32, std::sys::backtrace::__rust_begin_short_backtrace>",
            "<F as std::sys::backtrace::__rust_begin_short_backtrace>::call",
            "myapp::__rust_begin_short_backtrace_helper",
            "main",
        ] {
            assert!(!is_entry_marker(&named(name)), "{name}");
        }
    }

    #[test]
    fn closures_are_named_in_one_style() {
        let name = |raw: &str| symbol_names(Some(raw), 0).0;
        // v0 (std's own mangling): `_RNCNvCs..._5myapp3run0B3_` style symbols
        // demangle to `{closure#0}`; debug info names closures so too.
        assert_eq!(
            name("std::rt::lang_start_internal::{closure#0}"),
            "std::rt::lang_start_internal::{{closure}}"
        );
        assert_eq!(
            name("std::panic::catch_unwind::<std::rt::lang_start_internal::{closure#12}, isize>"),
            "std::panic::catch_unwind::<std::rt::lang_start_internal::{{closure}}, isize>"
        );
        assert_eq!(name("{closure#0}"), "{{closure}}");
        assert_eq!(
            name("_ZN5myapp3run28_$u7b$$u7b$closure$u7d$$u7d$17h0123456789abcdefE"),
            "myapp::run::{{closure}}"
        );
        assert_eq!(
            name("<F as core::ops::function::FnOnce<()>>::call_once::{shim:vtable#0}"),
            "<F as core::ops::function::FnOnce<()>>::call_once{{vtable.shim}}"
        );
        for unchanged in [
            "{closure#}",
            "a::{closure#x}",
            "a::{closure#1",
            "{closure#",
            "{{closure}}",
            "a::{shim:#0}",
            "a::{constant#0}",
            "{",
        ] {
            assert_eq!(name(unchanged), unchanged);
        }
    }

    #[test]
    fn v0_closures_demangle_into_the_one_style() {
        // `myapp::run::{closure#0}` in v0 mangling.
        let (name, system) = symbol_names(Some("_RNCNvCs1234_5myapp3run0B3_"), 0);
        assert_eq!(name, "myapp::run::{{closure}}", "{system}");
    }

    #[test]
    fn crates_of_names() {
        assert_eq!(crate_name("heapprof::demo::run"), Some("heapprof"));
        assert_eq!(
            crate_name("core::ops::function::FnOnce::call_once"),
            Some("core")
        );
        assert_eq!(
            crate_name("<&myapp::Key as core::hash::Hash>::hash"),
            Some("myapp")
        );
        for none in [
            "main",
            "_start",
            "[libc.so.6]",
            "0x1234",
            "<unknown>",
            "{{closure}}",
            "",
        ] {
            assert_eq!(crate_name(none), None, "{none}");
        }
    }
}
