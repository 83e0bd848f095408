//! A snapshot of the sample table -> a pprof profile in Go's heap shape.
//!
//! The table is copied under its lock (the only moment allocating threads can
//! wait on a writer); symbolization, trimming and scaling happen on the copy,
//! with the reentrancy guard held so none of this work is profiled.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use rustc_hash::FxHashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::guard::Guard;
use crate::pprof::{
    Function, Label, LabelValue, Line, Location, Mapping, Profile, Sample, ValueType,
};
use crate::symbolize::{self, Resolved, SourceFrame};
use crate::{mappings, sampler, table, unwind, Error};

/// Which view of the data a profile shows by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// In-use space (Go's `heap` profile).
    Heap,
    /// Allocated space (Go's `allocs` profile).
    Allocs,
}

/// Which counts a profile shows.
pub(crate) enum Counts {
    /// The table's counts now.
    Current,
    /// Counts copied earlier (the peak): the stacks they name are still in
    /// the table.
    Recorded(Vec<table::Bucket>, SystemTime),
    /// The table's counts now minus counts copied earlier: what happened
    /// since (in-use figures may be negative).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    Since(Vec<table::Bucket>),
}

/// Builds the current heap profile.
pub(crate) fn build(flavour: Flavour) -> Result<Profile, Error> {
    build_with(flavour, Counts::Current, Vec::new())
}

/// Builds a heap profile of `counts`, with `comments`.
pub(crate) fn build_with(
    flavour: Flavour,
    counts: Counts,
    mut comments: Vec<String>,
) -> Result<Profile, Error> {
    let _guard = Guard::enter();
    let mut snapshot = table::lock().snapshot().map_err(|_| Error::OutOfMemory)?;
    let mut time = SystemTime::now();
    match counts {
        Counts::Current => {}
        Counts::Recorded(buckets, at) => {
            snapshot.buckets = buckets;
            time = at;
        }
        Counts::Since(base) => {
            for (now, then) in snapshot.buckets.iter_mut().zip(&base) {
                now.allocs = now.allocs.saturating_sub(then.allocs);
                now.frees = now.frees.saturating_sub(then.frees);
            }
        }
    }
    let addresses: HashSet<usize> = snapshot
        .frames
        .iter()
        .copied()
        .filter(|&a| a != unwind::TRUNCATED)
        .collect();
    let resolved = symbolize::resolve(addresses);

    let mut builder = Builder::new(resolved);
    for bucket in &snapshot.buckets {
        if bucket.allocs == 0 && bucket.frees == 0 {
            continue;
        }
        let locations = builder.stack_locations(snapshot.stack(bucket.stack));
        let scale = sampler::weight(bucket.size, bucket.rate);
        let allocated = bucket.allocs as f64;
        let in_use = bucket.allocs as f64 - bucket.frees as f64;
        let size = bucket.size as f64;
        let values = [
            (allocated * scale) as i64,
            (allocated * size * scale) as i64,
            (in_use * scale) as i64,
            (in_use * size * scale) as i64,
        ];
        builder.add_sample(locations, bucket.size, values);
    }

    if snapshot.dropped_samples > 0 {
        comments.push(format!(
            "heapprof: {} samples dropped because the sample table was full",
            snapshot.dropped_samples
        ));
    }
    Ok(Profile {
        sample_types: [
            "alloc_objects/count",
            "alloc_space/bytes",
            "inuse_objects/count",
            "inuse_space/bytes",
        ]
        .iter()
        .map(|t| {
            let (ty, unit) = t.split_once('/').expect("type/unit");
            ValueType::new(ty, unit)
        })
        .collect(),
        samples: builder.samples,
        mappings: builder.mappings,
        locations: builder.locations,
        functions: builder.functions,
        time_nanos: time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64),
        period_type: Some(ValueType::new("space", "bytes")),
        period: sampler::rate() as i64,
        comments,
        default_sample_type: match flavour {
            Flavour::Heap => String::new(),
            Flavour::Allocs => "alloc_space".to_owned(),
        },
        ..Profile::default()
    })
}

struct Builder {
    resolved: HashMap<usize, Resolved>,
    segments: Vec<mappings::LoadedSegment>,
    mappings: Vec<Mapping>,
    functions: Vec<Function>,
    function_index: FxHashMap<SourceFrame, usize>,
    locations: Vec<Location>,
    /// (return address, inlined levels hidden from it) -> location.
    location_index: FxHashMap<(usize, usize), usize>,
    samples: Vec<Sample>,
    sample_index: FxHashMap<(Vec<usize>, u64), usize>,
}

impl Builder {
    fn new(resolved: HashMap<usize, Resolved>) -> Self {
        // Every executable segment, main program first, as Go lists the
        // process's mappings: pprof takes the first for the main binary.
        let segments = mappings::loaded_segments();
        let mappings = segments
            .iter()
            .map(|s| Mapping {
                memory_start: s.start,
                memory_limit: s.limit,
                file_offset: s.file_offset,
                filename: s.path.clone(),
                build_id: s.build_id.clone(),
                has_functions: true,
                has_filenames: true,
                has_line_numbers: true,
                has_inline_frames: true,
            })
            .collect();
        Builder {
            resolved,
            segments,
            mappings,
            functions: Vec::new(),
            function_index: FxHashMap::default(),
            locations: Vec::new(),
            location_index: FxHashMap::default(),
            samples: Vec::new(),
            sample_index: FxHashMap::default(),
        }
    }

    fn levels(&self, address: usize) -> &[SourceFrame] {
        self.resolved.get(&address).map_or(&[], |r| &r[..])
    }

    /// The locations of a stack (leaf first) with the allocation machinery
    /// hidden from its leaf end; all frames if nothing else would remain.
    fn stack_locations(&mut self, stack: &[usize]) -> Vec<usize> {
        let mut first_kept = None;
        'frames: for (i, &address) in stack.iter().enumerate() {
            if address == unwind::TRUNCATED {
                break;
            }
            for (level, frame) in self.levels(address).iter().enumerate() {
                if !symbolize::is_machinery(frame) {
                    first_kept = Some((i, level));
                    break 'frames;
                }
            }
        }
        let (start, hidden_levels) = first_kept.unwrap_or((0, 0));
        stack[start..]
            .iter()
            .enumerate()
            .map(|(i, &address)| self.location(address, if i == 0 { hidden_levels } else { 0 }))
            .collect()
    }

    fn location(&mut self, address: usize, hidden_levels: usize) -> usize {
        if let Some(&index) = self.location_index.get(&(address, hidden_levels)) {
            return index;
        }
        let location = if address == unwind::TRUNCATED {
            let truncated = SourceFrame {
                name: "[truncated]".to_owned(),
                system_name: String::new(),
                file: String::new(),
                line: 0,
            };
            Location {
                lines: vec![Line {
                    function: self.function(&truncated),
                    line: 0,
                }],
                ..Location::default()
            }
        } else {
            let levels: Vec<SourceFrame> =
                self.levels(address)[hidden_levels.min(self.levels(address).len())..].to_vec();
            let lines = levels
                .iter()
                .map(|frame| Line {
                    function: self.function(frame),
                    line: frame.line as i64,
                })
                .collect();
            // The call instruction, not the return address after it.
            let call_site = address as u64 - 1;
            Location {
                mapping: self.mapping(call_site),
                address: call_site,
                lines,
                is_folded: false,
            }
        };
        let index = self.locations.len();
        self.locations.push(location);
        self.location_index.insert((address, hidden_levels), index);
        index
    }

    fn function(&mut self, frame: &SourceFrame) -> usize {
        let key = SourceFrame {
            line: 0,
            ..frame.clone()
        };
        if let Some(&index) = self.function_index.get(&key) {
            return index;
        }
        let index = self.functions.len();
        self.functions.push(Function {
            name: frame.name.clone(),
            system_name: frame.system_name.clone(),
            filename: frame.file.clone(),
            start_line: 0,
        });
        self.function_index.insert(key, index);
        index
    }

    /// The mapping (one per executable segment, in `segments` order) that
    /// contains `address`.
    fn mapping(&self, address: u64) -> Option<usize> {
        self.segments
            .iter()
            .position(|s| s.start <= address && address < s.limit)
    }

    fn add_sample(&mut self, locations: Vec<usize>, size: u64, values: [i64; 4]) {
        match self.sample_index.entry((locations, size)) {
            Entry::Occupied(entry) => {
                for (total, value) in self.samples[*entry.get()].values.iter_mut().zip(values) {
                    *total += value;
                }
            }
            Entry::Vacant(entry) => {
                let locations = entry.key().0.clone();
                entry.insert(self.samples.len());
                self.samples.push(Sample {
                    locations,
                    values: values.to_vec(),
                    labels: vec![Label {
                        key: "bytes".to_owned(),
                        value: LabelValue::Num {
                            value: size as i64,
                            unit: String::new(),
                        },
                    }],
                });
            }
        }
    }
}
