//! A snapshot of the sample table -> a pprof profile in Go's heap shape, or
//! the lifetimes of freed blocks in a shape of their own.
//!
//! Every sample carries Go's numeric `bytes` label and, as pprof string
//! labels, its bucket's label set (see [`crate::with_labels`]). A profile
//! of the counts now also splits each bucket by age: one sample per age
//! class of its live blocks (`age` = `<1s`, `1s-1m`, `1m-1h`, `>1h`, from a
//! walk of the live-block map) and one for what was freed since
//! (`age=freed`, in-use values zero), so that the samples still add up to
//! the bucket and `-tagfocus=age=...` picks old or young memory.
//!
//! The lifetimes profile has one sample per (bucket, lifetime class) of its
//! freed blocks: `freed_objects/count`, `freed_space/bytes` and
//! `lifetime/microseconds` (their lifetimes summed, so that a site's mean
//! lifetime is `lifetime / freed_objects`; microseconds, not nanoseconds,
//! so that the sums of a long-running service stay far below the 2^62 that
//! readers, heapprof's included, accept for a profile's total), a `lifetime` label (`<1ms`,
//! `1ms-1s`, `1s-1m`, `1m-1h`, `>1h`) and the bucket's labels.
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
use crate::core::labels::LabelSet;
use crate::core::lifetimes::{self, Lifetimes, AGE_CLASSES, LIFETIME_CLASSES};
use crate::core::{blocks, sampler, table};
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
    /// The lifetimes of freed sampled blocks.
    Lifetimes,
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
    let lifetimes = flavour == Flavour::Lifetimes;
    let mut snapshot = table::lock()
        .snapshot(lifetimes)
        .map_err(|_| Error::OutOfMemory)?;
    let mut time = SystemTime::now();
    // Ages are those of the blocks live now: only a profile of the counts
    // now can have them.
    let with_ages = matches!(counts, Counts::Current) && !lifetimes;
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
    let ages = if with_ages {
        live_ages(&snapshot.buckets)?
    } else {
        Vec::new()
    };
    let mut samples = Vec::new();
    for (index, bucket) in snapshot.buckets.iter().enumerate() {
        if bucket.allocs == 0 && bucket.frees == 0 {
            continue;
        }
        let locations: Vec<usize> = snapshot
            .stack(bucket.stack)
            .iter()
            .map(|&address| builder.location(address))
            .collect();
        let labels = bucket_labels(bucket, &snapshot.label_sets);
        let mut push = |values: Vec<i64>, extra: Option<(&str, &str)>| {
            let mut labels = labels.clone();
            if let Some((key, value)) = extra {
                labels.push(Label {
                    key: key.to_owned(),
                    value: LabelValue::Str(value.to_owned()),
                });
            }
            samples.push(Sample {
                locations: locations.clone(),
                values,
                labels,
            });
        };
        if lifetimes {
            let freed = snapshot.lifetimes.get(index).copied().unwrap_or_default();
            for (class, values) in lifetime_samples(&freed, bucket.rate) {
                push(values, Some(("lifetime", LIFETIME_CLASSES[class])));
            }
            continue;
        }
        let inuse = (
            bucket.allocs as i64 - bucket.frees as i64,
            bucket.alloc_bytes as i64 - bucket.free_bytes as i64,
        );
        let Some(by_age) = ages.get(index) else {
            let (alloc_objects, alloc_space) =
                scale_heap_sample(bucket.allocs as i64, bucket.alloc_bytes as i64, bucket.rate);
            let (inuse_objects, inuse_space) = scale_heap_sample(inuse.0, inuse.1, bucket.rate);
            push(
                vec![alloc_objects, alloc_space, inuse_objects, inuse_space],
                None,
            );
            continue;
        };
        let freed = (
            bucket.allocs as i64 - inuse.0,
            bucket.alloc_bytes as i64 - inuse.1,
        );
        if freed.0 > 0 {
            let (objects, space) = scale_heap_sample(freed.0, freed.1, bucket.rate);
            push(vec![objects, space, 0, 0], Some(("age", lifetimes::FREED)));
        }
        for (class, &(count, bytes)) in reconcile(by_age, inuse).iter().enumerate() {
            if count > 0 {
                let (objects, space) = scale_heap_sample(count, bytes, bucket.rate);
                push(
                    vec![objects, space, objects, space],
                    Some(("age", AGE_CLASSES[class])),
                );
            }
        }
    }
    if let Some(method) = unwind::method() {
        comments.push(format!("heapprof: {method}"));
    }
    // Every profile says where the process's memory was as it was written
    // (for the peak profile too: the classes at the peak are not known), so
    // that any series of profiles, dumped or fetched, can be charted.
    comments.push(crate::memory::profile_comment());
    if snapshot.other_label_samples > 0 {
        comments.push(format!(
            "heapprof: {} samples carry [other labels]: their label sets found no room (at most {} sets, {} bytes)",
            snapshot.other_label_samples,
            crate::core::labels::MAX_LABEL_SETS,
            crate::core::labels::MAX_LABEL_BYTES
        ));
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
        sample_types: match flavour {
            Flavour::Lifetimes => vec![
                ValueType::new("freed_objects", "count"),
                ValueType::new("freed_space", "bytes"),
                ValueType::new("lifetime", "microseconds"),
            ],
            _ => ValueType::go_heap(),
        },
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
            Flavour::Lifetimes => "freed_space".to_owned(),
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

/// A bucket's labels: Go's `bytes`, then its label set as string labels.
fn bucket_labels(bucket: &table::Bucket, sets: &[LabelSet]) -> Vec<Label> {
    let mut labels = vec![Label {
        key: "bytes".to_owned(),
        value: LabelValue::Num {
            value: average_size(bucket),
            unit: String::new(),
        },
    }];
    if let Some(set) = sets.get(bucket.labels as usize) {
        labels.extend(set.iter().map(|(key, value)| Label {
            key: key.clone(),
            value: LabelValue::Str(value.clone()),
        }));
    }
    labels
}

/// The live sampled blocks of each bucket, per age class: (count, bytes).
fn live_ages(buckets: &[table::Bucket]) -> Result<Vec<[(i64, i64); 4]>, Error> {
    let mut ages = Vec::new();
    ages.try_reserve_exact(buckets.len())
        .map_err(|_| Error::OutOfMemory)?;
    ages.resize(buckets.len(), [(0, 0); AGE_CLASSES.len()]);
    let now = crate::sys::monotonic_nanos();
    blocks::for_each_live(|block| {
        let Some(bucket) = buckets.get(block.bucket as usize) else {
            return;
        };
        let size = match block.size {
            u32::MAX => average_size(bucket),
            size => i64::from(size),
        };
        let class =
            &mut ages[block.bucket as usize][lifetimes::age_class(now.saturating_sub(block.born))];
        class.0 += 1;
        class.1 += size;
    });
    Ok(ages)
}

/// The ages of a bucket's live blocks, made to add up to its in-use
/// figures: the walk of the live blocks races with the program, the table's
/// copy does not. Older classes keep what they saw, up to what is in use;
/// the youngest takes the rest (blocks allocated since the walk passed).
/// Exact whenever nothing was allocated or freed meanwhile.
fn reconcile(by_age: &[(i64, i64); 4], inuse: (i64, i64)) -> [(i64, i64); 4] {
    let mut out = [(0, 0); 4];
    let (mut count, mut bytes) = (inuse.0.max(0), inuse.1.max(0));
    for class in (1..by_age.len()).rev() {
        let taken = (by_age[class].0.min(count), by_age[class].1.min(bytes));
        out[class] = taken;
        count -= taken.0;
        bytes -= taken.1;
    }
    out[0] = (count, bytes);
    out
}

/// The lifetime samples of a bucket's freed blocks: (class, values), scaled
/// like the heap profile's (the lifetime sum with the objects).
fn lifetime_samples(freed: &Lifetimes, rate: u64) -> Vec<(usize, Vec<i64>)> {
    (0..LIFETIME_CLASSES.len())
        .filter(|&class| freed.objects[class] > 0)
        .map(|class| {
            let (count, bytes) = (freed.objects[class] as i64, freed.bytes[class] as i64);
            let (objects, space) = scale_heap_sample(count, bytes, rate);
            let micros = freed.nanos[class] as f64 / 1000.0 * objects as f64 / count as f64;
            (class, vec![objects, space, micros as i64])
        })
        .collect()
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
