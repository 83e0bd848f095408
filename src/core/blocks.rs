//! The live sampled blocks: which addresses were sampled, and into which
//! bucket, so that freeing one updates the in-use figures.
//!
//! `dealloc` runs for every block and almost none were sampled, so the check
//! must cost next to nothing and never lock. Two static tables, both in .bss
//! (their untouched pages cost no memory):
//!
//! * `FILTER`, a counting filter of 64 Ki one-byte counters indexed by a hash
//!   of the address. A free whose counter is zero was certainly not sampled:
//!   one relaxed load from a 64 KiB table. That is the whole fast path.
//! * `SLOTS`, a lock-free open-addressing map from address to bucket index,
//!   consulted only when the filter says "maybe". Linear probing over at most
//!   `MAX_PROBE` slots; removal leaves a tombstone that a later insert reuses.
//!
//! Every address is inserted after the inner allocator handed it out and
//! removed before it is handed back, so one address is never in the map twice
//! and its insert happens-before its removal (through whatever the program used
//! to pass the pointer between threads).
//!
//! Bound: `CAPACITY` slots (2 MiB). At the default rate a process holds about
//! live-heap / 512 KiB sampled blocks, far below it; in exact mode (rate 1)
//! every live block needs a slot, and blocks that find none are not recorded
//! and are counted as dropped.
//!
//! Nothing here locks, allocates or panics: both tables are fixed-size
//! statics, and a full probe window makes a dropped sample, not a wait.

use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

const CAPACITY: usize = 1 << 17;
const MAX_PROBE: usize = 64;
const FILTER_LEN: usize = 1 << 16;

const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;
/// A slot claimed by an insert that has not yet published its address.
const CLAIMED: usize = 2;
/// A counter that overflowed stays saturated: it then only costs false hits.
const SATURATED: u8 = u8::MAX;

struct Slot {
    addr: AtomicUsize,
    bucket: AtomicU32,
}

static SLOTS: [Slot; CAPACITY] = [const {
    Slot {
        addr: AtomicUsize::new(EMPTY),
        bucket: AtomicU32::new(0),
    }
}; CAPACITY];

/// A counting filter of sampled addresses.
pub(crate) type Filter = [AtomicU8; FILTER_LEN];

static FILTER: Filter = [const { AtomicU8::new(0) }; FILTER_LEN];

/// The filter a thread frees through before its counters are registered:
/// every counter is one, so each free takes the slow path, which registers
/// the thread and hands it [`FILTER`]. That makes "not yet registered" cost
/// the fast path nothing: the filter's address is loaded either way.
pub(crate) static UNREGISTERED: Filter = [const { AtomicU8::new(1) }; FILTER_LEN];

/// The real filter.
pub(crate) fn filter() -> &'static Filter {
    &FILTER
}

#[inline(always)]
fn mix(addr: usize) -> u64 {
    // Fibonacci hashing: callers take high bits, which depend on every bit
    // of the address (a free's hot path keeps the address in its register).
    (addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The filter counter of an address: its bits above the 16-byte alignment,
/// unhashed, so that frees of nearby blocks (most frees) touch the same
/// few cache lines of the filter instead of all 64 KiB of it.
#[inline(always)]
fn filter_index(addr: usize) -> usize {
    (addr >> 4) & (FILTER_LEN - 1)
}

#[inline(always)]
fn filter_counter(addr: usize) -> &'static AtomicU8 {
    &FILTER[filter_index(addr)]
}

#[inline(always)]
fn home_slot(addr: usize) -> usize {
    (mix(addr).rotate_left(24) as usize) & (CAPACITY - 1)
}

/// Whether `addr` may be a sampled block: false means certainly not.
#[inline(always)]
pub(crate) fn may_be_sampled(addr: *mut u8) -> bool {
    may_be_sampled_in(&FILTER, addr)
}

/// [`may_be_sampled`] against `filter` (the thread's: see [`UNREGISTERED`]).
#[inline(always)]
pub(crate) fn may_be_sampled_in(filter: &Filter, addr: *mut u8) -> bool {
    filter[filter_index(addr as usize)].load(Ordering::Relaxed) != 0
}

/// Records that `addr` is a sampled block of `bucket`. False when no slot was
/// free within the probe window (the caller counts the sample as dropped).
pub(crate) fn insert(addr: *mut u8, bucket: u32) -> bool {
    let addr = addr as usize;
    let home = home_slot(addr);
    for probe in 0..MAX_PROBE {
        let slot = &SLOTS[(home + probe) & (CAPACITY - 1)];
        let current = slot.addr.load(Ordering::Relaxed);
        if current != EMPTY && current != TOMBSTONE {
            continue;
        }
        if slot
            .addr
            .compare_exchange(current, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            slot.bucket.store(bucket, Ordering::Relaxed);
            increment(filter_counter(addr));
            slot.addr.store(addr, Ordering::Release);
            return true;
        }
    }
    false
}

/// Forgets the sampled block at `addr`, returning its bucket; `None` when
/// `addr` was not sampled (a false hit of the filter).
pub(crate) fn remove(addr: *mut u8) -> Option<u32> {
    let addr = addr as usize;
    let home = home_slot(addr);
    for probe in 0..MAX_PROBE {
        let slot = &SLOTS[(home + probe) & (CAPACITY - 1)];
        match slot.addr.load(Ordering::Acquire) {
            EMPTY => return None,
            current if current == addr => {
                let bucket = slot.bucket.load(Ordering::Relaxed);
                slot.addr.store(TOMBSTONE, Ordering::Release);
                decrement(filter_counter(addr));
                return Some(bucket);
            }
            _ => {}
        }
    }
    None
}

fn increment(counter: &AtomicU8) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
        (count != SATURATED).then_some(count + 1)
    });
}

fn decrement(counter: &AtomicU8) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
        (count != SATURATED && count != 0).then(|| count - 1)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_then_remove_round_trips_and_clears_the_filter() {
        let addr = 0x7f00_dead_bee0usize as *mut u8;
        assert!(!may_be_sampled(addr));
        assert!(insert(addr, 42));
        assert!(may_be_sampled(addr));
        assert_eq!(remove(addr), Some(42));
        assert_eq!(remove(addr), None);
        assert!(!may_be_sampled(addr));
    }

    #[test]
    fn colliding_addresses_are_kept_apart() {
        // Addresses 8 bytes apart land near each other; all must survive.
        let base = 0x5500_0000_1000usize;
        let addrs: Vec<*mut u8> = (0..200).map(|i| (base + i * 8) as *mut u8).collect();
        for (i, &a) in addrs.iter().enumerate() {
            assert!(insert(a, i as u32));
        }
        for (i, &a) in addrs.iter().enumerate().rev() {
            assert_eq!(remove(a), Some(i as u32));
        }
    }
}
