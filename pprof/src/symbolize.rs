//! Addresses -> functions, files and lines, for a whole profile: one
//! mechanism for heapprof's in-process symbolizer and for
//! `heapprof symbolize`, which resolves the same addresses from the binary
//! on disk later.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::machinery::{is_entry_marker, is_machinery};
use crate::{Function, Label, Line, Location, Mapping, Profile, Sample};

/// One function level of an address; an address in inlined code has
/// several, innermost first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Demangled name without the hash suffix.
    pub name: String,
    /// The symbol as the linker knows it, or "".
    pub system_name: String,
    /// Source file, or "".
    pub file: String,
    /// Line, or 0.
    pub line: u32,
}

/// How [`Profile::symbolize_with_options`] shapes stacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SymbolizeOptions {
    /// Keep the frames rootward of the program's entry: the C runtime's
    /// `_start` and `__libc_start_main`, `std::rt::lang_start` and its
    /// `catch_unwind` closures, a spawned thread's start-up. By default a
    /// stack that passes through std's `__rust_begin_short_backtrace`
    /// begins just leafward of it (at `main`'s caller or the thread's
    /// closure), where Rust's own short backtraces begin.
    pub full_stacks: bool,
}

/// The comment by which an address-only profile says its stacks are to be
/// kept whole when it is symbolized (heapprof writes it with
/// `full_stacks=1` and `symbolize=offline`; `heapprof symbolize` reads it).
pub const FULL_STACKS_COMMENT: &str = "heapprof: full stacks";

impl Profile {
    /// This profile with every location that has no lines given the frames
    /// `resolve` finds for it (innermost first; none leaves it an address),
    /// the allocation machinery (heapprof's, the allocator shim's and the
    /// standard library's frames) hidden from the leaf end of each stack,
    /// the frames rootward of the program's entry cut from its root end
    /// (see [`SymbolizeOptions::full_stacks`]), and samples that became
    /// identical merged. Locations that already have lines keep them, so
    /// symbolizing twice changes nothing.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use heapprof_pprof::{Frame, Location, Profile, Sample, ValueType};
    ///
    /// let raw = Profile {
    ///     sample_types: vec![ValueType::new("alloc_space", "bytes")],
    ///     locations: vec![Location { address: 0x1000, ..Location::default() }],
    ///     samples: vec![Sample { locations: vec![0], values: vec![64], labels: vec![] }],
    ///     ..Profile::default()
    /// };
    /// let named = raw.symbolize_with(|location, _mapping| {
    ///     let name = format!("app::site_{:x}", location.address);
    ///     Arc::from(vec![Frame { name, ..Frame::default() }])
    /// });
    /// assert_eq!(named.functions[0].name, "app::site_1000");
    /// ```
    pub fn symbolize_with(
        &self,
        resolve: impl FnMut(&Location, Option<&Mapping>) -> Arc<[Frame]>,
    ) -> Profile {
        self.symbolize_with_options(SymbolizeOptions::default(), resolve)
    }

    /// [`symbolize_with`](Self::symbolize_with), shaping stacks as
    /// `options` say.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use heapprof_pprof::{Frame, Location, Profile, Sample, SymbolizeOptions, ValueType};
    ///
    /// let names = ["app::load", "app::main", "std::sys::backtrace::__rust_begin_short_backtrace", "main"];
    /// let raw = Profile {
    ///     sample_types: vec![ValueType::new("alloc_space", "bytes")],
    ///     locations: (0..4).map(|address| Location { address, ..Location::default() }).collect(),
    ///     samples: vec![Sample { locations: vec![0, 1, 2, 3], values: vec![64], labels: vec![] }],
    ///     ..Profile::default()
    /// };
    /// let stack = |options| {
    ///     let named = raw.symbolize_with_options(options, |location, _| {
    ///         let name = names[location.address as usize].to_owned();
    ///         Arc::from(vec![Frame { name, ..Frame::default() }])
    ///     });
    ///     let sample = &named.samples[0];
    ///     sample.locations.iter().map(|&l| named.functions[named.locations[l].lines[0].function].name.clone()).collect::<Vec<_>>()
    /// };
    /// assert_eq!(stack(SymbolizeOptions::default()), ["app::load", "app::main"]);
    /// assert_eq!(stack(SymbolizeOptions { full_stacks: true }).len(), 4);
    /// ```
    pub fn symbolize_with_options(
        &self,
        options: SymbolizeOptions,
        mut resolve: impl FnMut(&Location, Option<&Mapping>) -> Arc<[Frame]>,
    ) -> Profile {
        let frames: Vec<Arc<[Frame]>> = self
            .locations
            .iter()
            .map(|location| {
                if location.lines.is_empty() {
                    resolve(location, location.mapping.map(|m| &self.mappings[m]))
                } else {
                    self.frames_of(location)
                }
            })
            .collect();
        let mut mappings = self.mappings.clone();
        for (location, frames) in self.locations.iter().zip(&frames) {
            if let (Some(m), false) = (location.mapping, frames.is_empty()) {
                let mapping = &mut mappings[m];
                mapping.has_functions = true;
                mapping.has_filenames = true;
                mapping.has_line_numbers = true;
                mapping.has_inline_frames = true;
            }
        }
        // For each location, its first level that is not allocation
        // machinery, if any: judged once per location, not per sample.
        let first_kept: Vec<Option<usize>> = frames
            .iter()
            .map(|levels| levels.iter().position(|f| !is_machinery(f)))
            .collect();
        // For each location, its innermost level that is the program's
        // entry marker, if any.
        let entry: Vec<Option<usize>> = frames
            .iter()
            .map(|levels| match options.full_stacks {
                true => None,
                false => levels.iter().position(is_entry_marker),
            })
            .collect();
        let mut builder = Builder {
            source: self,
            frames: &frames,
            first_kept: &first_kept,
            entry: &entry,
            functions: Vec::new(),
            function_index: FxHashMap::default(),
            locations: Vec::new(),
            whole: vec![None; self.locations.len()],
            location_index: FxHashMap::default(),
            samples: Vec::new(),
            sample_index: FxHashMap::default(),
        };
        for sample in &self.samples {
            builder.add(sample);
        }
        Profile {
            samples: builder.samples,
            locations: builder.locations,
            functions: builder.functions,
            mappings,
            ..self.clone_without_stacks()
        }
    }

    /// The frames a symbolized location already has.
    fn frames_of(&self, location: &Location) -> Arc<[Frame]> {
        location
            .lines
            .iter()
            .map(|line| {
                let function = &self.functions[line.function];
                Frame {
                    name: function.name.clone(),
                    system_name: function.system_name.clone(),
                    file: function.filename.clone(),
                    line: u32::try_from(line.line).unwrap_or(0),
                }
            })
            .collect()
    }

    fn clone_without_stacks(&self) -> Profile {
        Profile {
            sample_types: self.sample_types.clone(),
            drop_frames: self.drop_frames.clone(),
            keep_frames: self.keep_frames.clone(),
            time_nanos: self.time_nanos,
            duration_nanos: self.duration_nanos,
            period_type: self.period_type.clone(),
            period: self.period,
            comments: self.comments.clone(),
            default_sample_type: self.default_sample_type.clone(),
            ..Profile::default()
        }
    }
}

struct Builder<'a> {
    source: &'a Profile,
    frames: &'a [Arc<[Frame]>],
    first_kept: &'a [Option<usize>],
    entry: &'a [Option<usize>],
    functions: Vec<Function>,
    function_index: FxHashMap<Frame, usize>,
    locations: Vec<Location>,
    /// Source location -> location, with all its levels.
    whole: Vec<Option<usize>>,
    /// (source location, its first and past-the-last levels kept) ->
    /// location.
    location_index: FxHashMap<(usize, usize, usize), usize>,
    samples: Vec<Sample>,
    sample_index: FxHashMap<(Vec<usize>, Vec<Label>), usize>,
}

impl Builder<'_> {
    fn add(&mut self, sample: &Sample) {
        // The first frame, from the leaf, that is not allocation machinery;
        // the whole stack if there is none.
        let first_kept = sample
            .locations
            .iter()
            .enumerate()
            .find_map(|(i, &l)| Some((i, self.first_kept[l]?)));
        let (start, hidden) = first_kept.unwrap_or((0, 0));
        // The entry marker nearest the leaf, as Rust's short backtraces cut
        // at it, provided frames remain between the leaf's machinery and it
        // (a stack without one, from a thread C code started, is whole).
        let entry = sample
            .locations
            .iter()
            .enumerate()
            .find_map(|(i, &l)| Some((i, self.entry[l]?)))
            .filter(|&marker| marker > (start, hidden));
        // Past the last (location, level) kept.
        let (end, end_level) = entry.unwrap_or((sample.locations.len(), 0));
        let last = if end_level == 0 { end } else { end + 1 };
        let locations: Vec<usize> = sample.locations[start..last]
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                let first = if i == 0 { hidden } else { 0 };
                let past = if start + i == end {
                    end_level
                } else {
                    self.frames[l].len()
                };
                self.location(l, first, past)
            })
            .collect();
        match self.sample_index.entry((locations, sample.labels.clone())) {
            Entry::Occupied(entry) => {
                let merged = &mut self.samples[*entry.get()].values;
                for (total, value) in merged.iter_mut().zip(&sample.values) {
                    *total += value;
                }
            }
            Entry::Vacant(entry) => {
                let (locations, labels) = entry.key().clone();
                entry.insert(self.samples.len());
                self.samples.push(Sample {
                    locations,
                    values: sample.values.clone(),
                    labels,
                });
            }
        }
    }

    /// The location of `source` with its levels `first..past`.
    fn location(&mut self, source: usize, first: usize, past: usize) -> usize {
        let frames = Arc::clone(&self.frames[source]);
        let past = past.min(frames.len());
        let first = first.min(past);
        let whole = first == 0 && past == frames.len();
        let known = match whole {
            true => self.whole[source],
            false => self.location_index.get(&(source, first, past)).copied(),
        };
        if let Some(index) = known {
            return index;
        }
        let lines = frames[first..past]
            .iter()
            .map(|frame| Line {
                function: self.function(frame),
                line: i64::from(frame.line),
            })
            .collect();
        let original = &self.source.locations[source];
        let index = self.locations.len();
        self.locations.push(Location {
            mapping: original.mapping,
            address: original.address,
            lines,
            is_folded: original.is_folded,
        });
        match whole {
            true => self.whole[source] = Some(index),
            false => {
                self.location_index.insert((source, first, past), index);
            }
        }
        index
    }

    fn function(&mut self, frame: &Frame) -> usize {
        let key = Frame {
            line: 0,
            ..frame.clone()
        };
        let next = self.functions.len();
        *self.function_index.entry(key).or_insert_with(|| {
            self.functions.push(Function {
                name: frame.name.clone(),
                system_name: frame.system_name.clone(),
                filename: frame.file.clone(),
                start_line: 0,
            });
            next
        })
    }
}

/// A build id as pprof spells it: lowercase hex, two digits a byte.
///
/// ```
/// assert_eq!(heapprof_pprof::build_id_hex(&[0x0a, 0xff]), "0aff");
/// ```
pub fn build_id_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
