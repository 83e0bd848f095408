//! The sample table: interned stacks and per-(stack, size class, rate)
//! buckets of sampled allocation and free counts and their exact byte sums.
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
//! Bounds: `MAX_BUCKETS` buckets (48 bytes each) and `MAX_FRAMES` interned
//! frame addresses (8 bytes each): at most about 22 MiB however many distinct
//! stacks a program has. Keeping the rate in the key lets a bucket's counts be
//! scaled exactly even when the rate changed while the program ran.

use std::collections::HashMap;
use std::hash::Hasher;

use rustc_hash::{FxBuildHasher, FxHasher};
use std::sync::{Mutex, MutexGuard};

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
    bucket_index: HashMap<(u32, u32, u64), u32, Fast>,
    dropped_samples: u64,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    frames: Vec::new(),
    stacks: Vec::new(),
    stack_index: HashMap::with_hasher(FxBuildHasher),
    buckets: Vec::new(),
    bucket_index: HashMap::with_hasher(FxBuildHasher),
    dropped_samples: 0,
});

/// Locks the table. A panic cannot happen while it is held, but if one ever
/// did, the data is still consistent counts: carry on rather than poison.
pub(crate) fn lock() -> MutexGuard<'static, Table> {
    TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Table {
    /// Counts one sampled allocation of `size` bytes; returns its bucket, or
    /// `None` (and counts a dropped sample) when the table is full.
    pub(crate) fn record_alloc(&mut self, stack: &[usize], size: u64, rate: u64) -> Option<u32> {
        let bucket = self
            .intern_stack(stack)
            .and_then(|stack| self.bucket(stack, size_class(size), rate));
        match bucket {
            Some(index) => {
                let b = &mut self.buckets[index as usize];
                b.allocs += 1;
                b.alloc_bytes = b.alloc_bytes.wrapping_add(size);
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

    /// Counts the free of a sampled block of `size` bytes of `bucket`.
    pub(crate) fn record_free(&mut self, bucket: u32, size: u64) {
        if let Some(b) = self.buckets.get_mut(bucket as usize) {
            b.frees += 1;
            b.free_bytes = b.free_bytes.wrapping_add(size);
        }
    }

    /// Copies everything out; errors only if memory for the copy is short.
    pub(crate) fn snapshot(&self) -> Result<Snapshot, std::collections::TryReserveError> {
        let mut frames = Vec::new();
        frames.try_reserve_exact(self.frames.len())?;
        frames.extend_from_slice(&self.frames);
        let mut stacks = Vec::new();
        stacks.try_reserve_exact(self.stacks.len())?;
        stacks.extend_from_slice(&self.stacks);
        let buckets = self.copy_buckets()?;
        Ok(Snapshot {
            frames,
            stacks,
            buckets,
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

    fn bucket(&mut self, stack: u32, size_class: u32, rate: u64) -> Option<u32> {
        if let Some(&index) = self.bucket_index.get(&(stack, size_class, rate)) {
            return Some(index);
        }
        if self.buckets.len() >= MAX_BUCKETS {
            return None;
        }
        self.buckets.try_reserve(1).ok()?;
        self.bucket_index.try_reserve(1).ok()?;
        let index = self.buckets.len() as u32;
        self.buckets.push(Bucket {
            stack,
            size_class,
            rate,
            allocs: 0,
            alloc_bytes: 0,
            frees: 0,
            free_bytes: 0,
        });
        self.bucket_index.insert((stack, size_class, rate), index);
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Table {
        Table {
            frames: Vec::new(),
            stacks: Vec::new(),
            stack_index: HashMap::default(),
            buckets: Vec::new(),
            bucket_index: HashMap::default(),
            dropped_samples: 0,
        }
    }

    #[test]
    fn same_stack_and_size_share_a_bucket() {
        let mut t = empty();
        let a = t.record_alloc(&[1, 2, 3], 64, 512).unwrap();
        let b = t.record_alloc(&[1, 2, 3], 64, 512).unwrap();
        let c = t.record_alloc(&[1, 2, 3], 128, 512).unwrap();
        let d = t.record_alloc(&[1, 2, 4], 64, 512).unwrap();
        let e = t.record_alloc(&[1, 2, 3], 71, 512).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, e, "64 and 71 are one class");
        assert_ne!(a, c);
        assert_ne!(a, d);
        t.record_free(e, 71);
        let snap = t.snapshot().unwrap();
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
            t.record_alloc(&[7, 8], size, 1).unwrap();
            total += size;
        }
        let snap = t.snapshot().unwrap();
        assert!(
            snap.buckets.len() <= 8 * 18,
            "{} buckets",
            snap.buckets.len()
        );
        let sum: u64 = snap.buckets.iter().map(|b| b.alloc_bytes).sum();
        assert_eq!(sum, total, "byte sums stay exact");
    }
}
