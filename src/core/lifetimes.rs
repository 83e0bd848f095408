//! How long sampled blocks live: the classes that ages and lifetimes are
//! put in, and the per-bucket sums of the lifetimes of freed blocks.
//!
//! A sampled block's slot in [`super::blocks`] keeps the monotonic time of
//! its allocation, read on the sampled path only. When it is freed, its
//! lifetime goes into its bucket's [`Lifetimes`], in one of
//! [`LIFETIME_CLASSES`]; a profile puts each live sampled block, by its
//! age, in one of [`AGE_CLASSES`]. Class names are label values chosen so
//! that none contains another: `-tagfocus=age=>1h` matches `>1h` alone.

/// Upper bounds of the lifetime classes but the last, in nanoseconds.
const LIFETIME_BOUNDS: [u64; 4] = [1_000_000, 1_000_000_000, 60_000_000_000, 3_600_000_000_000];
/// The `lifetime` label values of freed blocks, shortest first: `<1ms` is
/// what heaptrack calls temporary.
pub(crate) const LIFETIME_CLASSES: [&str; 5] = ["<1ms", "1ms-1s", "1s-1m", "1m-1h", ">1h"];

/// Upper bounds of the age classes but the last, in nanoseconds.
const AGE_BOUNDS: [u64; 3] = [1_000_000_000, 60_000_000_000, 3_600_000_000_000];
/// The `age` label values of in-use blocks, youngest first.
pub(crate) const AGE_CLASSES: [&str; 4] = ["<1s", "1s-1m", "1m-1h", ">1h"];
/// The `age` label value of the part of a bucket's allocations that was
/// freed since, so that every sampled allocation has an age.
pub(crate) const FREED: &str = "freed";

/// The lifetime class of a block freed after `nanos`.
pub(crate) fn lifetime_class(nanos: u64) -> usize {
    LIFETIME_BOUNDS.iter().take_while(|&&b| nanos >= b).count()
}

/// The age class of a block allocated `nanos` ago.
pub(crate) fn age_class(nanos: u64) -> usize {
    AGE_BOUNDS.iter().take_while(|&&b| nanos >= b).count()
}

/// The freed sampled blocks of one bucket, per lifetime class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lifetimes {
    /// Blocks freed.
    pub objects: [u64; LIFETIME_CLASSES.len()],
    /// Sum of their sizes.
    pub bytes: [u64; LIFETIME_CLASSES.len()],
    /// Sum of their lifetimes, in nanoseconds, saturating (at 584 years).
    pub nanos: [u64; LIFETIME_CLASSES.len()],
}

impl Lifetimes {
    /// Counts a block of `size` bytes freed `nanos` after its allocation.
    pub(crate) fn add(&mut self, size: u64, nanos: u64) {
        let class = lifetime_class(nanos);
        self.objects[class] += 1;
        self.bytes[class] = self.bytes[class].wrapping_add(size);
        self.nanos[class] = self.nanos[class].saturating_add(nanos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_split_at_their_bounds() {
        assert_eq!(lifetime_class(0), 0);
        assert_eq!(lifetime_class(999_999), 0);
        assert_eq!(lifetime_class(1_000_000), 1);
        assert_eq!(lifetime_class(59_999_999_999), 2);
        assert_eq!(lifetime_class(u64::MAX), 4);
        assert_eq!(age_class(999_999_999), 0);
        assert_eq!(age_class(1_000_000_000), 1);
        assert_eq!(age_class(3_600_000_000_000), 3);
    }

    #[test]
    fn no_class_name_contains_another() {
        let names: Vec<&str> = LIFETIME_CLASSES
            .iter()
            .chain(&AGE_CLASSES)
            .chain([&FREED])
            .copied()
            .collect();
        for a in &names {
            for b in &names {
                assert!(a == b || !a.contains(b), "{a} contains {b}");
            }
        }
    }
}
