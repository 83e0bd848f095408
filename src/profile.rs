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
                now.alloc_bytes = now.alloc_bytes.saturating_sub(then.alloc_bytes);
                now.frees = now.frees.saturating_sub(then.frees);
                now.free_bytes = now.free_bytes.saturating_sub(then.free_bytes);
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
        let (alloc_objects, alloc_space) =
            scale_heap_sample(bucket.allocs as i64, bucket.alloc_bytes as i64, bucket.rate);
        let (inuse_objects, inuse_space) = scale_heap_sample(
            bucket.allocs as i64 - bucket.frees as i64,
            bucket.alloc_bytes as i64 - bucket.free_bytes as i64,
            bucket.rate,
        );
        samples.push(Sample {
            locations,
            values: vec![alloc_objects, alloc_space, inuse_objects, inuse_space],
            labels: vec![Label {
                key: "bytes".to_owned(),
                value: LabelValue::Num {
                    value: average_size(bucket),
                    unit: String::new(),
                },
            }],
        });
    }
    if let Some(method) = unwind::method() {
        comments.push(format!("heapprof: {method}"));
    }
    // Every profile says where the process's memory was as it was written
    // (for the peak profile too: the classes at the peak are not known), so
    // that any series of profiles, dumped or fetched, can be charted.
    comments.push(crate::memory::profile_comment());
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

/// Go's `scaleHeapSample`: the unsampled estimate of `count` sampled
/// objects totalling `bytes`, weighting them all by their average size.
/// At rate 1 (or below) they are every allocation: unscaled.
pub(crate) fn scale_heap_sample(count: i64, bytes: i64, rate: u64) -> (i64, i64) {
    if rate <= 1 {
        return (count, bytes);
    }
    if count == 0 || bytes == 0 {
        return (0, 0);
    }
    // In-use figures of a difference of profiles may be negative.
    let scale = sampler::weight((bytes as f64 / count as f64).abs(), rate);
    ((count as f64 * scale) as i64, (bytes as f64 * scale) as i64)
}

/// The `bytes` label of a bucket: its average object size, as Go writes
/// it (of the frees, when a difference has no allocations).
fn average_size(bucket: &table::Bucket) -> i64 {
    let (count, bytes) = match bucket.allocs {
        0 => (bucket.frees, bucket.free_bytes),
        allocs => (allocs, bucket.alloc_bytes),
    };
    bytes.checked_div(count).unwrap_or(0) as i64
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
