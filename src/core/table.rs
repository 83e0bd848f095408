//! The sample table: interned stacks and label sets, and per-(stack, size
//! class, rate, label set) buckets of sampled allocation and free counts,
//! their exact byte sums and the lifetimes of their freed blocks.
//!
//! Only cold paths touch it (a sampled allocation, the free of a sampled
//! block, a profile write), always with the reentrancy guard held, so its own
//! allocations go straight to the inner allocator. It never panics: growth
//! uses `try_reserve`, and a full table turns samples into a dropped count.
//!
//! Buckets are per size class, as Go's are, not per requested size: a
//! program that runs for days allocating from one stack with sizes spread
//! over thousands of values makes at most 496 buckets there (one per class),
//! not one per distinct size it happened to sample. Each power of two is
//! cut into 8 classes an eighth of it wide, so sizes below 16 are a class
//! each, 24 and 25 share one, 1000 to 1023 another. Each bucket keeps
//! the exact sums of the sizes it recorded, allocated and freed, so that
//! at rate 1 every figure stays exact, and a profile scales a bucket by its
//! average object size, as Go does.
//!
//! That scaling is the one inexactness classes add at other rates: the
//! unbiased weight of a sample of `s` bytes is `1 / (1 - exp(-s/R))`, and
//! a bucket applies the weight of its average size to all its samples. For
//! bytes the error vanishes to first order (`s` times the weight is about
//! `R` for every `s` much below `R`); for object counts it is at most the
//! ratio of the arithmetic to the harmonic mean of sizes within one class,
//! `(1 + 1.125)^2 / (4 * 1.125)`: 0.35% at worst, far below the sampling
//! error. (Four classes per power of two would allow 1.25%.)
//!
//! Bounds: `MAX_BUCKETS` buckets (56 bytes each, and 120 bytes of
//! lifetime sums beside each) and `MAX_FRAMES` interned frame addresses (8
//! bytes each): at most about 40 MiB however many distinct stacks a program
//! has, plus the label sets' bounds (see [`super::labels`]: 4 MiB of strings
//! in 4096 sets). Keeping the rate in the key lets a bucket's counts be
//! scaled exactly even when the rate changed while the program ran; keeping
//! the label set in it gives a block its labels for life: its bucket id,
//! which the live-block map keeps, names them when it is freed.

use std::collections::HashMap;
use std::hash::Hasher;

use rustc_hash::{FxBuildHasher, FxHasher};
use std::sync::{Mutex, MutexGuard};

use super::labels::{self, LabelSet, LabelSets};
use super::lifetimes::Lifetimes;

/// Most buckets the table holds; further new (stack, size class) pairs are
/// dropped.
pub(crate) const MAX_BUCKETS: usize = 1 << 17;
/// Most frame addresses the interned stacks hold in all.
pub(crate) const MAX_FRAMES: usize = 1 << 21;
/// Size classes per power of two of object sizes, as a power of two.
const CLASS_BITS: u32 = 3;
/// Size classes in all, so the most buckets one stack can have at one rate.
#[cfg(test)]
const SIZE_CLASSES: u32 = size_class(u64::MAX) + 1;

/// The size class of an object of `size` bytes: eight classes per power of
/// two, each an eighth of the power wide (at least one byte).
pub(crate) const fn size_class(size: u64) -> u32 {
    if size < 1 << CLASS_BITS {
        return size as u32;
    }
    let power = 63 - size.leading_zeros();
    let within = (size >> (power - CLASS_BITS)) as u32 & ((1 << CLASS_BITS) - 1);
    (1 << CLASS_BITS) + ((power - CLASS_BITS) << CLASS_BITS) + within
}

/// A bucket's identity and counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// Index of the stack in the table.
    pub stack: u32,
    /// Size class of every object in this bucket (see [`size_class`]).
    pub size_class: u32,
    /// Id of the label set of its allocations (see [`super::labels`]).
    pub labels: u32,
    /// Sampling rate the allocations were sampled at.
    pub rate: u64,
    /// Sampled allocations.
    pub allocs: u64,
    /// Sum of the sizes of the sampled allocations.
    pub alloc_bytes: u64,
    /// Sampled allocations since freed.
    pub frees: u64,
    /// Sum of the sizes of the sampled allocations since freed.
    pub free_bytes: u64,
}

#[derive(Clone, Copy)]
struct StackSpan {
    start: u32,
    len: u32,
}

/// A copy of the table, taken quickly under the lock and worked on outside it.
pub(crate) struct Snapshot {
    pub frames: Vec<usize>,
    stacks: Vec<StackSpan>,
    pub buckets: Vec<Bucket>,
    /// The lifetimes of each bucket's freed blocks, if asked for.
    pub lifetimes: Vec<Lifetimes>,
    /// Every label set, indexed by id.
    pub label_sets: Vec<LabelSet>,
    /// Samples recorded under [`labels::OTHER_LABELS`].
    pub other_label_samples: u64,
    pub dropped_samples: u64,
}

impl Snapshot {
    /// The frame addresses of stack `stack`, leaf first.
    pub(crate) fn stack(&self, stack: u32) -> &[usize] {
        let span = self.stacks[stack as usize];
        &self.frames[span.start as usize..(span.start + span.len) as usize]
    }
}

/// Keys are addresses and small integers with nothing to defend against
/// collision attacks; FxHash is fast and never allocates.
type Fast = FxBuildHasher;

pub(crate) struct Table {
    frames: Vec<usize>,
    stacks: Vec<StackSpan>,
    /// Stack hash -> indices of stacks with that hash.
    stack_index: HashMap<u64, Vec<u32>, Fast>,
    buckets: Vec<Bucket>,
    /// Beside `buckets`, one for one.
    lifetimes: Vec<Lifetimes>,
    bucket_index: HashMap<(u32, u32, u64, u32), u32, Fast>,
    /// The interned label sets, under the table's lock: interning is done
    /// on the sampled path, which holds it already.
    pub(crate) label_sets: LabelSets,
    dropped_samples: u64,
}

static TABLE: Mutex<Table> = Mutex::new(Table::new());

/// Locks the table. A panic cannot happen while it is held, but if one ever
/// did, the data is still consistent counts: carry on rather than poison.
pub(crate) fn lock() -> MutexGuard<'static, Table> {
    TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Table {
    const fn new() -> Self {
        Table {
            frames: Vec::new(),
            stacks: Vec::new(),
            stack_index: HashMap::with_hasher(FxBuildHasher),
            buckets: Vec::new(),
            lifetimes: Vec::new(),
            bucket_index: HashMap::with_hasher(FxBuildHasher),
            label_sets: LabelSets::new(),
            dropped_samples: 0,
        }
    }

    /// Counts one sampled allocation of `size` bytes with label set
    /// `labels`; returns its bucket, or `None` (and counts a dropped sample)
    /// when the table is full.
    pub(crate) fn record_alloc(
        &mut self,
        stack: &[usize],
        size: u64,
        rate: u64,
        labels: u32,
    ) -> Option<u32> {
        let bucket = self
            .intern_stack(stack)
            .and_then(|stack| self.bucket(stack, size_class(size), rate, labels));
        match bucket {
            Some(index) => {
                let b = &mut self.buckets[index as usize];
                b.allocs += 1;
                b.alloc_bytes = b.alloc_bytes.wrapping_add(size);
                if labels == labels::OTHER_LABELS {
                    self.label_sets.other_samples += 1;
                }
            }
            None => self.dropped_samples += 1,
        }
        bucket
    }

    /// Takes back a recorded allocation of `size` bytes whose block could
    /// not be tracked.
    pub(crate) fn unrecord_alloc(&mut self, bucket: u32, size: u64) {
        let b = &mut self.buckets[bucket as usize];
        b.allocs -= 1;
        b.alloc_bytes = b.alloc_bytes.wrapping_sub(size);
        self.dropped_samples += 1;
    }

    /// Counts a sample that could not be kept.
    pub(crate) fn count_dropped(&mut self) {
        self.dropped_samples += 1;
    }

    /// Counts the free of a sampled block of `size` bytes of `bucket`, and
    /// its lifetime if known.
    pub(crate) fn record_free(&mut self, bucket: u32, size: u64, lifetime_nanos: Option<u64>) {
        if let Some(b) = self.buckets.get_mut(bucket as usize) {
            b.frees += 1;
            b.free_bytes = b.free_bytes.wrapping_add(size);
        }
        if let (Some(lifetimes), Some(nanos)) =
            (self.lifetimes.get_mut(bucket as usize), lifetime_nanos)
        {
            lifetimes.add(size, nanos);
        }
    }

    /// Copies everything out, the lifetimes only if asked (they are 120
    /// bytes a bucket); errors only if memory for the copy is short.
    pub(crate) fn snapshot(
        &self,
        with_lifetimes: bool,
    ) -> Result<Snapshot, std::collections::TryReserveError> {
        let mut frames = Vec::new();
        frames.try_reserve_exact(self.frames.len())?;
        frames.extend_from_slice(&self.frames);
        let mut stacks = Vec::new();
        stacks.try_reserve_exact(self.stacks.len())?;
        stacks.extend_from_slice(&self.stacks);
        let buckets = self.copy_buckets()?;
        let mut lifetimes = Vec::new();
        if with_lifetimes {
            lifetimes.try_reserve_exact(self.lifetimes.len())?;
            lifetimes.extend_from_slice(&self.lifetimes);
        }
        Ok(Snapshot {
            frames,
            stacks,
            buckets,
            lifetimes,
            label_sets: self.label_sets.copy()?,
            other_label_samples: self.label_sets.other_samples,
            dropped_samples: self.dropped_samples,
        })
    }

    /// (sampled allocations recorded, buckets, samples dropped).
    pub(crate) fn summary(&self) -> (u64, u64, u64) {
        let samples = self.buckets.iter().map(|b| b.allocs).sum();
        (samples, self.buckets.len() as u64, self.dropped_samples)
    }

    /// The frame addresses of stack `stack`, leaf first. Stacks are never
    /// removed, so an index from any earlier copy of the buckets names the
    /// same stack.
    pub(crate) fn stack(&self, stack: u32) -> Option<&[usize]> {
        let span = self.stacks.get(stack as usize)?;
        self.frames
            .get(span.start as usize..(span.start + span.len) as usize)
    }

    /// Copies the buckets' counts out (the stacks they name stay in the
    /// table for good, so any later snapshot can resolve them).
    pub(crate) fn copy_buckets(&self) -> Result<Vec<Bucket>, std::collections::TryReserveError> {
        let mut buckets = Vec::new();
        buckets.try_reserve_exact(self.buckets.len())?;
        buckets.extend_from_slice(&self.buckets);
        Ok(buckets)
    }

    fn intern_stack(&mut self, stack: &[usize]) -> Option<u32> {
        let mut hasher = FxHasher::default();
        for &frame in stack {
            hasher.write_usize(frame);
        }
        let hash = hasher.finish();
        if let Some(candidates) = self.stack_index.get(&hash) {
            for &candidate in candidates {
                let span = self.stacks[candidate as usize];
                let frames = &self.frames[span.start as usize..(span.start + span.len) as usize];
                if frames == stack {
                    return Some(candidate);
                }
            }
        }
        if self.frames.len() + stack.len() > MAX_FRAMES || self.stacks.len() >= MAX_BUCKETS {
            return None;
        }
        self.frames.try_reserve(stack.len()).ok()?;
        self.stacks.try_reserve(1).ok()?;
        self.stack_index.try_reserve(1).ok()?;
        let index = self.stacks.len() as u32;
        let candidates = self.stack_index.entry(hash).or_default();
        candidates.try_reserve(1).ok()?;
        candidates.push(index);
        self.stacks.push(StackSpan {
            start: self.frames.len() as u32,
            len: stack.len() as u32,
        });
        self.frames.extend_from_slice(stack);
        Some(index)
    }

    fn bucket(&mut self, stack: u32, size_class: u32, rate: u64, labels: u32) -> Option<u32> {
        let key = (stack, size_class, rate, labels);
        if let Some(&index) = self.bucket_index.get(&key) {
            return Some(index);
        }
        if self.buckets.len() >= MAX_BUCKETS {
            return None;
        }
        self.buckets.try_reserve(1).ok()?;
        self.lifetimes.try_reserve(1).ok()?;
        self.bucket_index.try_reserve(1).ok()?;
        let index = self.buckets.len() as u32;
        self.lifetimes.push(Lifetimes::default());
        self.buckets.push(Bucket {
            stack,
            size_class,
            labels,
            rate,
            allocs: 0,
            alloc_bytes: 0,
            frees: 0,
            free_bytes: 0,
        });
        self.bucket_index.insert(key, index);
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Table {
        Table::new()
    }

    #[test]
    fn same_stack_and_size_share_a_bucket() {
        let mut t = empty();
        let a = t.record_alloc(&[1, 2, 3], 64, 512, 0).unwrap();
        let b = t.record_alloc(&[1, 2, 3], 64, 512, 0).unwrap();
        let c = t.record_alloc(&[1, 2, 3], 128, 512, 0).unwrap();
        let d = t.record_alloc(&[1, 2, 4], 64, 512, 0).unwrap();
        let e = t.record_alloc(&[1, 2, 3], 71, 512, 0).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, e, "64 and 71 are one class");
        assert_ne!(a, c);
        assert_ne!(a, d);
        t.record_free(e, 71, Some(5));
        let snap = t.snapshot(true).unwrap();
        assert_eq!(snap.lifetimes[a as usize].objects[0], 1);
        let bucket = snap.buckets[a as usize];
        assert_eq!((bucket.allocs, bucket.alloc_bytes), (3, 64 + 64 + 71));
        assert_eq!((bucket.frees, bucket.free_bytes), (1, 71));
        assert_eq!(snap.stack(snap.buckets[d as usize].stack), &[1, 2, 4]);
        assert_eq!(snap.frames.len(), 6, "stacks are interned once");
    }

    #[test]
    fn size_classes_are_exact_below_sixteen_then_an_eighth_of_a_power_wide() {
        for size in 0..16 {
            assert_eq!(size_class(size), size as u32, "{size}");
        }
        assert_eq!(size_class(16), size_class(17));
        assert_ne!(size_class(17), size_class(18));
        assert_eq!(size_class(1000), size_class(1023));
        assert_ne!(size_class(1023), size_class(1024));
        // Classes are contiguous and ordered: each power adds eight.
        let mut previous = size_class(15);
        for power in 4..64 {
            for eighth in 0..8u64 {
                let low = (1u64 << power) + eighth * (1 << (power - 3));
                assert_eq!(size_class(low), previous + 1, "{low}");
                assert_eq!(size_class(low + ((1 << (power - 3)) - 1)), previous + 1);
                previous += 1;
            }
        }
        assert_eq!(SIZE_CLASSES, previous + 1);
        assert_eq!(SIZE_CLASSES, 496);
    }

    #[test]
    fn one_stack_with_spread_sizes_makes_a_bounded_number_of_buckets() {
        let mut t = empty();
        let mut total = 0u64;
        for size in 1..200_000u64 {
            t.record_alloc(&[7, 8], size, 1, 0).unwrap();
            total += size;
        }
        let snap = t.snapshot(false).unwrap();
        assert!(
            snap.buckets.len() <= 8 * 18,
            "{} buckets",
            snap.buckets.len()
        );
        let sum: u64 = snap.buckets.iter().map(|b| b.alloc_bytes).sum();
        assert_eq!(sum, total, "byte sums stay exact");
    }
}
