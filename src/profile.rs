//! A snapshot of the sample table -> a pprof profile in Go's heap shape.
//!
//! The table is copied under its lock (the only moment allocating threads can
//! wait on a writer). The copy becomes an address-only profile (scaled
//! values, call-site locations in their mappings, build ids); unless
//! symbolization is offline, `Profile::symbolize_with` then names it in
//! process, as `heapprof symbolize` names it later. All of it runs with the
//! reentrancy guard held, so none of this work is profiled.

use rustc_hash::FxHashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::guard::Guard;
use crate::core::{sampler, table};
use crate::pprof::{
    Function, Label, LabelValue, Line, Location, Mapping, Profile, Sample, ValueType,
};
use crate::symbolize;
use crate::{mappings, unwind, Error};

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

/// Builds the current heap profile, symbolized as configured.
#[cfg(feature = "http")]
pub(crate) fn build(flavour: Flavour) -> Result<Profile, Error> {
    build_with(flavour, Counts::Current, Vec::new(), symbolize::mode())
}

/// Builds a heap profile of `counts`, with `comments`, symbolized in
/// process unless `mode` says offline.
pub(crate) fn build_with(
    flavour: Flavour,
    counts: Counts,
    comments: Vec<String>,
    mode: symbolize::Mode,
) -> Result<Profile, Error> {
    let _guard = Guard::enter();
    let raw = build_raw(flavour, counts, comments)?;
    Ok(symbolize::finish(raw, mode))
}

/// The profile with addresses only: one location per return address (at
/// the call instruction), in its mapping, and the mappings' build ids and
/// file offsets for `heapprof symbolize`.
fn build_raw(
    flavour: Flavour,
    counts: Counts,
    mut comments: Vec<String>,
) -> Result<Profile, Error> {
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
    let segments = mappings::loaded_segments();
    let mut builder = RawBuilder {
        segments: &segments,
        locations: Vec::new(),
        location_index: FxHashMap::default(),
        truncated: None,
    };
    let mut samples = Vec::new();
    for bucket in &snapshot.buckets {
        if bucket.allocs == 0 && bucket.frees == 0 {
            continue;
        }
        let locations = snapshot
            .stack(bucket.stack)
            .iter()
            .map(|&address| builder.location(address))
            .collect();
        let scale = sampler::weight(bucket.size, bucket.rate);
        let allocated = bucket.allocs as f64;
        let in_use = bucket.allocs as f64 - bucket.frees as f64;
        let size = bucket.size as f64;
        samples.push(Sample {
            locations,
            values: vec![
                (allocated * scale) as i64,
                (allocated * size * scale) as i64,
                (in_use * scale) as i64,
                (in_use * size * scale) as i64,
            ],
            labels: vec![Label {
                key: "bytes".to_owned(),
                value: LabelValue::Num {
                    value: bucket.size as i64,
                    unit: String::new(),
                },
            }],
        });
    }
    if let Some(method) = unwind::method() {
        comments.push(format!("heapprof: {method}"));
    }
    if snapshot.dropped_samples > 0 {
        comments.push(format!(
            "heapprof: {} samples dropped because the sample table was full",
            snapshot.dropped_samples
        ));
    }
    let functions = match builder.truncated {
        Some(_) => vec![Function {
            name: "[truncated]".to_owned(),
            ..Function::default()
        }],
        None => Vec::new(),
    };
    Ok(Profile {
        sample_types: ValueType::go_heap(),
        samples,
        // Every executable segment, main program first, as Go lists the
        // process's mappings: pprof takes the first for the main binary.
        mappings: segments
            .iter()
            .map(|s| Mapping {
                memory_start: s.start,
                memory_limit: s.limit,
                file_offset: s.file_offset,
                filename: s.path.clone(),
                build_id: s.build_id.clone(),
                ..Mapping::default()
            })
            .collect(),
        locations: builder.locations,
        functions,
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

struct RawBuilder<'a> {
    segments: &'a [mappings::LoadedSegment],
    locations: Vec<Location>,
    location_index: FxHashMap<usize, usize>,
    /// The location standing for the frames cut from deep stacks.
    truncated: Option<usize>,
}

impl RawBuilder<'_> {
    fn location(&mut self, address: usize) -> usize {
        if address == unwind::TRUNCATED {
            return *self.truncated.get_or_insert_with(|| {
                self.locations.push(Location {
                    lines: vec![Line {
                        function: 0,
                        line: 0,
                    }],
                    ..Location::default()
                });
                self.locations.len() - 1
            });
        }
        if let Some(&index) = self.location_index.get(&address) {
            return index;
        }
        // The call instruction, not the return address after it.
        let call_site = address as u64 - 1;
        let index = self.locations.len();
        self.locations.push(Location {
            mapping: self
                .segments
                .iter()
                .position(|s| s.start <= call_site && call_site < s.limit),
            address: call_site,
            ..Location::default()
        });
        self.location_index.insert(address, index);
        index
    }
}
