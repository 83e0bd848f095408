//! The live sampled blocks: which addresses were sampled, into which
//! bucket, how large and when, so that freeing one updates the in-use
//! figures and the bucket's lifetimes, and a profile can tell the age of
//! what is in use ([`for_each_live`]).
//!
//! `dealloc` runs for every block and almost none were sampled, so the check
//! must cost next to nothing and never lock. Two structures:
//!
//! * `FILTER`, a counting filter of 64 Ki one-byte counters indexed by a hash
//!   of the address, in .bss. A free whose counter is zero was certainly not
//!   sampled: one relaxed load from a 64 KiB table. That is the whole fast
//!   path.
//! * The map, a lock-free open-addressing map from address to bucket index,
//!   size and allocation time, consulted only when the filter says "maybe". It is a short list of
//!   levels of doubling size: the first (2^17 slots) is a static in .bss, the
//!   others are mapped from the kernel when the ones before are full, so that
//!   exact mode (rate 1) can hold every live block of a program with
//!   millions of them. Within a level, linear probing over at most
//!   `MAX_PROBE` slots; removal leaves a tombstone that a later insert
//!   reuses.
//!
//! Every address is inserted after the inner allocator handed it out and
//! removed before it is handed back, so one address is never in the map twice
//! and its insert happens-before its removal (through whatever the program used
//! to pass the pointer between threads).
//!
//! An insert tries each level's probe window in order and takes the first
//! empty or tombstoned slot. A slot never becomes empty again, so a remove
//! that meets an empty slot may stop there, in whatever level: the insert
//! of its address saw that slot empty too, and would have taken it rather
//! than look further. A level is published (Release) before any insert puts
//! an address into it, so a remove, which happens after that insert, sees
//! it (Acquire).
//!
//! Levels are mapped with `mmap`, never through an allocator, and never
//! freed: growing takes no lock (racing threads each map a level, one
//! publishes it, the others unmap theirs), so nothing here can wait on a
//! thread that `fork` left behind, and a child inherits the levels as they
//! are. Their bytes count in heapprof's own memory ([`mapped_bytes`]).
//!
//! Bound: `LEVELS` levels of 2^17 to 2^24 slots of 24 bytes: 33,423,360
//! slots, 765 MiB in all (3 MiB in .bss, the rest mapped as needed; pages
//! cost memory only once touched). The map costs 24 to 48 bytes per live
//! sampled block (a level is mapped when the ones before are about full,
//! doubling the slots). A slot is 8 bytes more than an address and a
//! bucket id need: the block's size (for the in-use bytes per age) and its
//! allocation time (for its age, and its lifetime when freed). At the default rate a process holds about
//! live-heap / 512 KiB sampled blocks and never leaves the first level; in
//! exact mode every live block needs a slot, and past about 33 million live
//! blocks (or if the kernel refuses a mapping) blocks that find no slot are
//! not recorded and are counted as dropped.
//!
//! Nothing here locks, allocates or panics, and a full map makes a dropped
//! sample, not a wait.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::sys;

/// Slots of the first level, as a power of two.
const FIRST_LEVEL_BITS: u32 = 17;
/// Levels of the map: 2^17, 2^18, ... 2^24 slots.
const LEVELS: usize = 8;
const MAX_PROBE: usize = 64;
const FILTER_LEN: usize = 1 << 16;

const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;
/// A slot claimed by an insert that has not yet published its address.
const CLAIMED: usize = 2;
/// A counter that overflowed stays saturated: it then only costs false hits.
const SATURATED: u8 = u8::MAX;

/// All zero bits is an empty slot, so a fresh mapping is an empty level.
struct Slot {
    addr: AtomicUsize,
    bucket: AtomicU32,
    /// The block's size, `u32::MAX` for 4 GiB and more.
    size: AtomicU32,
    /// Monotonic nanoseconds at its allocation.
    born: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 24);

static FIRST_LEVEL: [Slot; 1 << FIRST_LEVEL_BITS] = [const {
    Slot {
        addr: AtomicUsize::new(EMPTY),
        bucket: AtomicU32::new(0),
        size: AtomicU32::new(0),
        born: AtomicU64::new(0),
    }
}; 1 << FIRST_LEVEL_BITS];

/// The mapped levels, 1 to `LEVELS - 1` (entry 0 is unused): null until
/// published, then never changed.
static MAPPED_LEVELS: [AtomicPtr<Slot>; LEVELS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; LEVELS];

/// Bytes of the published mapped levels.
static MAPPED_BYTES: AtomicUsize = AtomicUsize::new(0);

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

/// Bytes the map has mapped beyond its first level: heapprof's own memory.
pub(crate) fn mapped_bytes() -> u64 {
    MAPPED_BYTES.load(Ordering::Relaxed) as u64
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

/// Slots in level `level`.
const fn level_len(level: usize) -> usize {
    1 << (FIRST_LEVEL_BITS as usize + level)
}

/// Where `addr` starts probing in a level of `len` slots: the hash's top
/// bits, more of them in larger levels.
#[inline(always)]
fn home_slot(addr: usize, len: usize) -> usize {
    (mix(addr).rotate_left(24) as usize) & (len - 1)
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

/// Level `level` if it is published.
fn level(level: usize) -> Option<&'static [Slot]> {
    if level == 0 {
        return Some(&FIRST_LEVEL);
    }
    let slots = MAPPED_LEVELS[level].load(Ordering::Acquire);
    // SAFETY: a published pointer is the start of a mapping of
    // `level_len(level)` zero-initialized slots (all-zero atomics are valid)
    // that is never unmapped, and is only ever accessed atomically.
    (!slots.is_null()).then(|| unsafe { std::slice::from_raw_parts(slots, level_len(level)) })
}

/// Level `level`, mapping and publishing it if no thread has yet; `None` if
/// the kernel refuses the memory.
fn level_or_grow(index: usize) -> Option<&'static [Slot]> {
    if let Some(slots) = level(index) {
        return Some(slots);
    }
    let bytes = level_len(index) * std::mem::size_of::<Slot>();
    let mapped = sys::map_zeroed(bytes)?.cast::<Slot>();
    match MAPPED_LEVELS[index].compare_exchange(
        std::ptr::null_mut(),
        mapped,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            MAPPED_BYTES.fetch_add(bytes, Ordering::Relaxed);
        }
        // SAFETY: another thread published its level first; ours was
        // never published, so nothing else points into it.
        Err(_) => unsafe { sys::unmap(mapped.cast(), bytes) },
    }
    level(index)
}

/// A sampled block, as the map keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub bucket: u32,
    /// Its size, `u32::MAX` for 4 GiB and more.
    pub size: u32,
    /// Monotonic nanoseconds at its allocation.
    pub born: u64,
}

/// Records that `addr` is the sampled `block`. False when no slot was
/// free within the probe window of any level, and no further level could be
/// had (the caller counts the sample as dropped).
pub(crate) fn insert(addr: *mut u8, block: Block) -> bool {
    let addr = addr as usize;
    for index in 0..LEVELS {
        // Levels are published in order: a remove stops at the first
        // missing one, so an insert must not skip one it could not have.
        let Some(slots) = level_or_grow(index) else {
            return false;
        };
        if insert_in(slots, addr, block) {
            return true;
        }
    }
    false
}

fn insert_in(slots: &[Slot], addr: usize, block: Block) -> bool {
    let home = home_slot(addr, slots.len());
    for probe in 0..MAX_PROBE {
        let slot = &slots[(home + probe) & (slots.len() - 1)];
        let current = slot.addr.load(Ordering::Relaxed);
        if current != EMPTY && current != TOMBSTONE {
            continue;
        }
        if slot
            .addr
            .compare_exchange(current, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            slot.bucket.store(block.bucket, Ordering::Relaxed);
            slot.size.store(block.size, Ordering::Relaxed);
            slot.born.store(block.born, Ordering::Relaxed);
            increment(filter_counter(addr));
            slot.addr.store(addr, Ordering::Release);
            return true;
        }
    }
    false
}

/// What a level's probe window says of an address.
enum Probe {
    Found(Block),
    /// An empty slot: the address is in no level (see the module docs).
    Absent,
    /// Not in this window: look in the next level.
    NotHere,
}

/// Forgets the sampled block at `addr`, returning it; `None` when `addr`
/// was not sampled (a false hit of the filter).
pub(crate) fn remove(addr: *mut u8) -> Option<Block> {
    let addr = addr as usize;
    for index in 0..LEVELS {
        match remove_from(level(index)?, addr) {
            Probe::Found(bucket) => return Some(bucket),
            Probe::Absent => return None,
            Probe::NotHere => {}
        }
    }
    None
}

fn remove_from(slots: &[Slot], addr: usize) -> Probe {
    let home = home_slot(addr, slots.len());
    for probe in 0..MAX_PROBE {
        let slot = &slots[(home + probe) & (slots.len() - 1)];
        match slot.addr.load(Ordering::Acquire) {
            EMPTY => return Probe::Absent,
            current if current == addr => {
                let block = read(slot);
                slot.addr.store(TOMBSTONE, Ordering::Release);
                decrement(filter_counter(addr));
                return Probe::Found(block);
            }
            _ => {}
        }
    }
    Probe::NotHere
}

fn read(slot: &Slot) -> Block {
    Block {
        bucket: slot.bucket.load(Ordering::Relaxed),
        size: slot.size.load(Ordering::Relaxed),
        born: slot.born.load(Ordering::Relaxed),
    }
}

/// Calls `f` on every live sampled block, for a profile's ages. Lock-free
/// and racing with the program: a block allocated or freed meanwhile may be
/// seen or not, and a slot reused meanwhile is skipped (its address is read
/// again after its fields, as a sequence lock reads). Costs a read of every
/// slot of every published level: 3 MiB at the default rate.
pub(crate) fn for_each_live(mut f: impl FnMut(Block)) {
    for index in 0..LEVELS {
        let Some(slots) = level(index) else {
            return;
        };
        for slot in slots {
            let addr = slot.addr.load(Ordering::Acquire);
            if addr == EMPTY || addr == TOMBSTONE || addr == CLAIMED {
                continue;
            }
            let block = read(slot);
            if slot.addr.load(Ordering::Acquire) == addr {
                f(block);
            }
        }
    }
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

    fn block_of(i: usize) -> Block {
        Block {
            bucket: i as u32,
            size: i as u32 * 8,
            born: i as u64 * 1000,
        }
    }

    #[test]
    fn insert_then_remove_round_trips_and_clears_the_filter() {
        let addr = 0x7f00_dead_bee0usize as *mut u8;
        assert!(!may_be_sampled(addr));
        let block = Block {
            bucket: 42,
            size: 100,
            born: 7,
        };
        assert!(insert(addr, block));
        assert!(may_be_sampled(addr));
        assert_eq!(remove(addr), Some(block));
        assert_eq!(remove(addr), None);
        assert!(!may_be_sampled(addr));
    }

    #[test]
    fn colliding_addresses_are_kept_apart() {
        // Addresses 8 bytes apart land near each other; all must survive.
        let base = 0x5500_0000_1000usize;
        let addrs: Vec<*mut u8> = (0..200).map(|i| (base + i * 8) as *mut u8).collect();
        for (i, &a) in addrs.iter().enumerate() {
            assert!(insert(a, block_of(i)));
        }
        for (i, &a) in addrs.iter().enumerate().rev() {
            assert_eq!(remove(a), Some(block_of(i)));
        }
    }

    /// `n` addresses that all start probing at the same slot of the first
    /// level, far from any real heap.
    fn sharing_a_first_level_home(n: usize) -> Vec<*mut u8> {
        let base = 0x6600_0000_0000usize;
        let home = home_slot(base, level_len(0));
        (0..)
            .map(|i| base + i * 16)
            .filter(|&a| home_slot(a, level_len(0)) == home)
            .take(n)
            .map(|a| a as *mut u8)
            .collect()
    }

    #[test]
    fn a_full_probe_window_spills_into_a_mapped_level() {
        let addrs = sharing_a_first_level_home(MAX_PROBE + 40);
        for (i, &a) in addrs.iter().enumerate() {
            assert!(insert(a, block_of(i)), "block {i} found no slot");
        }
        assert!(level(1).is_some(), "no second level was mapped");
        assert!(mapped_bytes() >= (level_len(1) * std::mem::size_of::<Slot>()) as u64);
        // Tombstones in the first level's window, then new blocks reusing
        // them: those beyond the window must still be found behind them.
        for (i, &a) in addrs.iter().enumerate().take(10) {
            assert_eq!(remove(a), Some(block_of(i)));
        }
        let more = sharing_a_first_level_home(MAX_PROBE + 50);
        for (i, &a) in more.iter().enumerate().skip(MAX_PROBE + 40) {
            assert!(insert(a, block_of(i)));
        }
        for (i, &a) in addrs
            .iter()
            .enumerate()
            .skip(10)
            .chain(more.iter().enumerate().skip(MAX_PROBE + 40))
        {
            assert_eq!(remove(a), Some(block_of(i)), "block {i} lost");
            assert_eq!(remove(a), None);
        }
    }
}
