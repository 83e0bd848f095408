//! A profile seen as weighted stacks of function frames for one sample type,
//! after pprof's filters: `--focus` keeps samples with a matching frame,
//! `--ignore` drops them, `--hide` removes matching frames but keeps the
//! sample. Every report (top, folded, flamegraph, diff) starts here.
//!
//! Functions are interned once into [`Names`] as dense ids (one per name and
//! file, shared by the profiles of a diff), filters are matched once per
//! function and frames are expanded once per location, so that the work per
//! sample is copying small integers: profiles with hundreds of thousands of
//! samples stay fast.

use std::collections::HashMap;

use crate::fasthash::IdMap;
use heapprof::pprof::Profile;
use regex::Regex;

/// Interned functions: id -> (name, file), and back.
#[derive(Debug, Default)]
pub struct Names<'p> {
    entries: Vec<(&'p str, &'p str)>,
    index: HashMap<(&'p str, &'p str), u32>,
}

impl<'p> Names<'p> {
    /// The id of a function, interning it on first sight.
    pub fn intern(&mut self, name: &'p str, file: &'p str) -> u32 {
        *self.index.entry((name, file)).or_insert_with(|| {
            self.entries.push((name, file));
            (self.entries.len() - 1) as u32
        })
    }

    /// The function's name.
    pub fn name(&self, id: u32) -> &'p str {
        self.entries[id as usize].0
    }

    /// The function's source file.
    pub fn file(&self, id: u32) -> &'p str {
        self.entries[id as usize].1
    }

    /// How many distinct functions there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// One function level of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The function, in [`Names`].
    pub function: u32,
    /// True when this level is inlined into its caller (not the outermost
    /// line of its location).
    pub inlined: bool,
}

/// A stack, leaf first, with its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Stack {
    /// Frames, leaf first.
    pub frames: Vec<Frame>,
    /// The sample's value for the chosen sample type.
    pub value: i64,
}

/// pprof's sample filters, as regexps over function names.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Keep only samples with a frame matching this.
    pub focus: Option<Regex>,
    /// Drop samples with a frame matching this.
    pub ignore: Option<Regex>,
    /// Remove frames matching this from every stack.
    pub hide: Option<Regex>,
}

/// What the filters say of one function.
#[derive(Clone, Copy, Default)]
struct Matches {
    focus: bool,
    ignore: bool,
    hide: bool,
}

/// The stacks of `profile` for sample type `index`, filtered; samples whose
/// value is zero are left out, as pprof leaves them out of its graphs.
pub fn stacks<'p>(
    profile: &'p Profile,
    index: usize,
    filters: &Filters,
    names: &mut Names<'p>,
) -> Vec<Stack> {
    let matches = |re: &Option<Regex>, name: &str| re.as_ref().is_some_and(|re| re.is_match(name));
    let functions: Vec<(u32, Matches)> = profile
        .functions
        .iter()
        .map(|f| {
            let found = Matches {
                focus: matches(&filters.focus, &f.name),
                ignore: matches(&filters.ignore, &f.name),
                hide: matches(&filters.hide, &f.name),
            };
            (names.intern(&f.name, &f.filename), found)
        })
        .collect();
    // Each location's frames, innermost first, and what the filters say.
    let locations: Vec<(Vec<Frame>, Matches)> = profile
        .locations
        .iter()
        .map(|location| {
            let lines = &location.lines;
            let mut found = Matches::default();
            let frames = lines
                .iter()
                .enumerate()
                .filter_map(|(i, line)| {
                    let (function, m) = functions[line.function];
                    found.focus |= m.focus;
                    found.ignore |= m.ignore;
                    (!m.hide).then_some(Frame {
                        function,
                        inlined: i + 1 < lines.len(),
                    })
                })
                .collect();
            (frames, found)
        })
        .collect();
    // Samples of one stack (Go writes one per stack and object size) are
    // added up first, so that reports walk each distinct stack once.
    let mut merged: IdMap<&[usize], usize> = IdMap::default();
    let mut stacks: Vec<Stack> = Vec::new();
    for sample in &profile.samples {
        let value = sample.values[index];
        if value == 0 {
            continue;
        }
        if let Some(&i) = merged.get(&sample.locations[..]) {
            stacks[i].value += value;
            continue;
        }
        let any =
            |pick: fn(&Matches) -> bool| sample.locations.iter().any(|&l| pick(&locations[l].1));
        if (filters.focus.is_some() && !any(|m| m.focus))
            || (filters.ignore.is_some() && any(|m| m.ignore))
        {
            continue;
        }
        merged.insert(&sample.locations, stacks.len());
        stacks.push(Stack {
            frames: sample
                .locations
                .iter()
                .flat_map(|&l| locations[l].0.iter().copied())
                .collect(),
            value,
        });
    }
    stacks.retain(|s| s.value != 0);
    stacks
}
