//! Addresses -> functions, files and lines, for a whole profile: one
//! mechanism for heapprof's in-process symbolizer and for
//! `heapprof symbolize`, which resolves the same addresses from the binary
//! on disk later.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::machinery::is_machinery;
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

impl Profile {
    /// This profile with every location that has no lines given the frames
    /// `resolve` finds for it (innermost first; none leaves it an address),
    /// the allocation machinery (heapprof's, the allocator shim's and the
    /// standard library's frames) hidden from the leaf end of each stack,
    /// and samples that became identical merged. Locations that already
    /// have lines keep them, so symbolizing twice changes nothing.
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
        let mut builder = Builder {
            source: self,
            frames: &frames,
            first_kept: &first_kept,
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
    functions: Vec<Function>,
    function_index: FxHashMap<Frame, usize>,
    locations: Vec<Location>,
    /// Source location -> location, with all its levels.
    whole: Vec<Option<usize>>,
    /// (source location, inlined levels hidden from it) -> location.
    location_index: FxHashMap<(usize, usize), usize>,
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
        let locations: Vec<usize> = sample.locations[start..]
            .iter()
            .enumerate()
            .map(|(i, &l)| self.location(l, if i == 0 { hidden } else { 0 }))
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

    fn location(&mut self, source: usize, hidden: usize) -> usize {
        let known = match hidden {
            0 => self.whole[source],
            _ => self.location_index.get(&(source, hidden)).copied(),
        };
        if let Some(index) = known {
            return index;
        }
        let frames = Arc::clone(&self.frames[source]);
        let lines = frames[hidden.min(frames.len())..]
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
        match hidden {
            0 => self.whole[source] = Some(index),
            _ => {
                self.location_index.insert((source, hidden), index);
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

/// (name, system name) of a symbol, as every heapprof symbolizer names it:
/// a mangled Rust symbol (legacy `_ZN` or v0 `_R`) demangled without its
/// hash, with the mangled form as the system name; any other name (a
/// source-level name from debug info, a C symbol) as it is; no name at all,
/// the address in hex.
///
/// ```
/// use heapprof_pprof::symbol_names;
/// let (name, system) = symbol_names(Some("_ZN5myapp4main17h0123456789abcdefE"), 0x10);
/// assert_eq!((name.as_str(), system.as_str()), ("myapp::main", "_ZN5myapp4main17h0123456789abcdefE"));
/// assert_eq!(symbol_names(Some("malloc"), 0x10).0, "malloc");
/// assert_eq!(symbol_names(None, 0x10).0, "0x10");
/// ```
pub fn symbol_names(raw: Option<&str>, address: u64) -> (String, String) {
    match raw {
        Some(raw) if raw.starts_with("_ZN") || raw.starts_with("_R") => {
            match rustc_demangle::try_demangle(raw) {
                Ok(name) => (format!("{name:#}"), raw.to_owned()),
                Err(_) => (raw.to_owned(), String::new()),
            }
        }
        Some(raw) if !raw.is_empty() => (raw.to_owned(), String::new()),
        _ => (format!("{address:#x}"), String::new()),
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
