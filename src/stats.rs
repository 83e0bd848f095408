//! Exact counters, the `MemStats` of heapprof: [`stats`] for the process,
//! [`measure`] for a closure on the current thread.

use crate::core::{blocks, counters, peak};

/// The process's allocation counters, exact (not sampled), read by
/// [`stats`]. Every allocation of the program through the global allocator
/// counts; sizes are the sizes asked for (the `Layout`), not what the inner
/// allocator rounded them up to. A `realloc` counts as a free of the old
/// block and an allocation of the new one.
///
/// Not counted, on whatever thread it runs: heapprof's own work (its sample
/// table, building, symbolizing and encoding profiles, its dump and
/// endpoint threads), which [`profiler_bytes`](Self::profiler_bytes)
/// counts instead. A profile heapprof hands the program (the bytes of
/// [`crate::heap_profile`], a [`crate::HeapProfile`]) is the program's
/// from then on. Counted though it did not happen: an `alloc` or `realloc`
/// that the inner allocator refused (returned null) on the fast path, which
/// counts before the call to stay a tail call; Rust aborts on such failures
/// unless the program uses `try_reserve`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes allocated and not yet freed.
    pub live_bytes: u64,
    /// Blocks allocated and not yet freed.
    pub live_objects: u64,
    /// Bytes allocated since the program started.
    pub allocated_bytes: u64,
    /// Allocations since the program started (Go's `Mallocs`).
    pub allocations: u64,
    /// Bytes freed since the program started.
    pub freed_bytes: u64,
    /// Frees since the program started (Go's `Frees`).
    pub frees: u64,
    /// The highest `live_bytes` seen; exact to within 256 KiB per thread
    /// that was allocating at the peak.
    pub peak_live_bytes: u64,
    /// Bytes heapprof itself holds, not in `live_bytes`: its sample table
    /// and caches, what profile writes under way hold, and the levels its
    /// map of live sampled blocks mapped from the kernel past the first (in
    /// exact mode, 16 to 32 bytes per live block).
    pub profiler_bytes: u64,
    /// The process's resident set size from the OS (0 if unknown).
    pub resident_bytes: u64,
    /// The process's virtual memory size from the OS (0 if unknown).
    pub virtual_bytes: u64,
}

/// Reads the exact counters: cheap enough to call often (it sums one set of
/// per-thread counters per live thread and reads `/proc/self/statm`), and it
/// never stops allocating threads.
///
/// With other threads allocating, each counter is exact at some moment
/// during the call, not all at the same moment.
///
/// ```
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// let before = heapprof::stats();
/// let v = vec![0u8; 1 << 20];
/// let after = heapprof::stats();
/// assert!(after.allocated_bytes - before.allocated_bytes >= 1 << 20);
/// assert!(after.live_bytes >= 1 << 20);
/// drop(v);
/// ```
pub fn stats() -> Stats {
    let totals = counters::totals();
    let (resident_bytes, virtual_bytes) = process_memory().unwrap_or((0, 0));
    Stats {
        live_bytes: totals.live_bytes(),
        live_objects: totals.allocs.saturating_sub(totals.frees),
        allocated_bytes: totals.alloc_bytes,
        allocations: totals.allocs,
        freed_bytes: totals.free_bytes,
        frees: totals.frees,
        peak_live_bytes: peak::peak_bytes().max(totals.live_bytes()),
        profiler_bytes: counters::own_totals().live_bytes() + blocks::mapped_bytes(),
        resident_bytes,
        virtual_bytes,
    }
}

/// What one thread allocated and freed while a closure ran (see [`measure`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllocStats {
    /// Allocations made (a `realloc` is one allocation and one free).
    pub allocations: u64,
    /// Frees made.
    pub frees: u64,
    /// Bytes allocated.
    pub bytes_allocated: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

/// Runs `f` and returns what the current thread allocated and freed while it
/// ran: exact, unaffected by other threads, and with no global lock, so
/// tests can assert allocation budgets ("this path allocates at most once")
/// while running in parallel.
///
/// Work that `f` hands to other threads is not counted; nested calls each
/// count their own closure.
///
/// ```
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// let mut s = String::with_capacity(64);
/// let counted = heapprof::measure(|| s.push_str("fits in the capacity"));
/// assert_eq!(counted.allocations, 0);
///
/// let counted = heapprof::measure(|| drop(vec![1u8; 100]));
/// assert_eq!((counted.allocations, counted.frees), (1, 1));
/// assert_eq!(counted.bytes_allocated, 100);
/// ```
pub fn measure(f: impl FnOnce()) -> AllocStats {
    let before = counters::this_thread();
    f();
    let after = counters::this_thread();
    AllocStats {
        allocations: after.allocs.wrapping_sub(before.allocs),
        frees: after.frees.wrapping_sub(before.frees),
        bytes_allocated: after.alloc_bytes.wrapping_sub(before.alloc_bytes),
        bytes_freed: after.free_bytes.wrapping_sub(before.free_bytes),
    }
}

/// (resident, virtual) bytes from `/proc/self/statm`, read into a stack
/// buffer (no allocation).
pub(crate) fn process_memory() -> Option<(u64, u64)> {
    use std::io::Read;
    let mut buf = [0u8; 128];
    let mut file = std::fs::File::open("/proc/self/statm").ok()?;
    let n = file.read(&mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    let mut fields = text.split_ascii_whitespace();
    let size: u64 = fields.next()?.parse().ok()?;
    let resident: u64 = fields.next()?.parse().ok()?;
    let page = crate::sys::page_size()?;
    Some((resident * page, size * page))
}
