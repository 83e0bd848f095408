//! Where `symbolize_with` begins a stack at its root end: just leafward of
//! std's `__rust_begin_short_backtrace`, whether the marker owns its
//! location's address or is inlined into it, and nowhere for a stack that
//! never passes through it.

use heapprof_pprof::{Frame, Location, Profile, Sample, SymbolizeOptions, ValueType};

const MARKER: &str = "std::sys::backtrace::__rust_begin_short_backtrace";

/// A profile of `stacks`, each a list of locations (leaf first), each a
/// list of levels (innermost first; the same levels, the same location),
/// symbolized with `options`; its stacks as (location -> level names) read
/// back.
fn symbolized(stacks: &[&[&[&str]]], options: SymbolizeOptions) -> Vec<Vec<Vec<String>>> {
    let mut levels: Vec<Vec<&str>> = Vec::new();
    let mut samples = Vec::new();
    for stack in stacks {
        let locations = stack
            .iter()
            .map(|location| {
                let known = levels.iter().position(|l| l == location);
                known.unwrap_or_else(|| {
                    levels.push(location.to_vec());
                    levels.len() - 1
                })
            })
            .collect();
        samples.push(Sample {
            locations,
            values: vec![1],
            labels: vec![],
        });
    }
    let raw = Profile {
        sample_types: vec![ValueType::new("alloc_space", "bytes")],
        locations: (0..levels.len() as u64)
            .map(|address| Location {
                address,
                ..Location::default()
            })
            .collect(),
        samples,
        ..Profile::default()
    };
    let named = raw.symbolize_with_options(options, |location, _| {
        levels[location.address as usize]
            .iter()
            .map(|name| Frame {
                name: (*name).to_owned(),
                ..Frame::default()
            })
            .collect::<Vec<_>>()
            .into()
    });
    named
        .samples
        .iter()
        .map(|sample| {
            sample
                .locations
                .iter()
                .map(|&l| {
                    named.locations[l]
                        .lines
                        .iter()
                        .map(|line| named.functions[line.function].name.clone())
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn cut(stacks: &[&[&[&str]]]) -> Vec<Vec<Vec<String>>> {
    symbolized(stacks, SymbolizeOptions::default())
}

#[test]
fn the_main_thread_begins_at_mains_caller() {
    let stack: &[&[&str]] = &[
        &["alloc::raw_vec::RawVec<T,A>::grow_one"],
        &["myapp::load"],
        &["myapp::main"],
        &["core::ops::function::FnOnce::call_once"],
        &[MARKER],
        &["std::rt::lang_start::{{closure}}"],
        &["std::rt::lang_start_internal"],
        &["main"],
        &["__libc_start_main"],
        &["_start"],
    ];
    assert_eq!(
        cut(&[stack]),
        [[
            ["myapp::load"],
            ["myapp::main"],
            ["core::ops::function::FnOnce::call_once"]
        ]]
    );
    let full = symbolized(&[stack], SymbolizeOptions { full_stacks: true });
    assert_eq!(full[0].len(), 9, "{full:?}");
    assert_eq!(full[0][8], ["_start"]);
}

#[test]
fn an_inlined_marker_cuts_inside_its_location() {
    // The thread's closure and the marker inlined into the address of
    // spawn's closure: the location keeps the closure's level only.
    let stack: &[&[&str]] = &[
        &["myapp::worker"],
        &[
            "myapp::spawn::{{closure}}",
            MARKER,
            "std::thread::Builder::spawn_unchecked_::{{closure}}",
        ],
        &["std::sys::thread::unix::Thread::new::thread_start"],
        &["start_thread"],
        &["clone3"],
    ];
    assert_eq!(
        cut(&[stack]),
        [[vec!["myapp::worker"], vec!["myapp::spawn::{{closure}}"]]]
    );
    // The marker innermost: its location goes, the one leafward stays whole.
    let stack: &[&[&str]] = &[
        &["myapp::worker", "myapp::spawn::{{closure}}"],
        &[
            MARKER,
            "std::thread::Builder::spawn_unchecked_::{{closure}}",
        ],
        &["start_thread"],
    ];
    assert_eq!(
        cut(&[stack]),
        [[["myapp::worker", "myapp::spawn::{{closure}}"]]]
    );
}

#[test]
fn stacks_that_never_pass_through_the_marker_are_whole() {
    let stack: &[&[&str]] = &[
        &["myapp::on_signal"],
        &["__restore_rt"],
        &["c_library_thread"],
        &["start_thread"],
    ];
    assert_eq!(cut(&[stack]).concat().len(), 4);
}

#[test]
fn the_cut_never_leaves_a_stack_empty() {
    // Everything leafward of the marker is allocation machinery: the
    // machinery is hidden as ever, and the marker is no cut.
    let stack: &[&[&str]] = &[&["alloc::alloc::alloc"], &[MARKER], &["main"], &["_start"]];
    assert_eq!(cut(&[stack]), [[["main"], ["_start"]]]);
}

#[test]
fn stacks_alike_below_the_marker_merge() {
    let a: &[&[&str]] = &[&["myapp::load"], &["myapp::main"], &[MARKER], &["main"]];
    let b: &[&[&str]] = &[
        &["myapp::load"],
        &["myapp::main"],
        &[MARKER],
        &["other_start"],
    ];
    assert_eq!(cut(&[a, b]), [[["myapp::load"], ["myapp::main"]]]);
    let full = symbolized(&[a, b], SymbolizeOptions { full_stacks: true });
    assert_eq!(full.len(), 2);
}
