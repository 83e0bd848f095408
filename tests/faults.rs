//! The allocator under faults and odd requests, in exact mode (rate 1):
//! out-of-memory passed through exactly, huge alignments, reallocations that
//! shrink, grow and move sampled and unsampled blocks, zero-sized types,
//! threads that exit holding sampled blocks, allocation in thread-local
//! destructors, and allocation in signal handlers.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::site_totals;

/// System, except that it fails (returns null) while this thread says so,
/// and that in a signal handler it serves memory from a lock-free arena and
/// frees nothing:
/// glibc's malloc is not async-signal-safe, and the signal test is about
/// heapprof's locks, not glibc's.
struct Faulty;

thread_local! {
    static FAIL: Cell<bool> = const { Cell::new(false) };
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
}

fn failing() -> bool {
    FAIL.with(Cell::get)
}

const ARENA_SIZE: usize = 64 << 20;
struct Arena(std::cell::UnsafeCell<[u8; ARENA_SIZE]>);
// SAFETY: disjoint pieces are handed out through an atomic offset.
unsafe impl Sync for Arena {}
static ARENA: Arena = Arena(std::cell::UnsafeCell::new([0; ARENA_SIZE]));
static ARENA_USED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn arena_alloc(layout: Layout) -> *mut u8 {
    let base = ARENA.0.get() as usize;
    let size = layout.size() + layout.align();
    let start = ARENA_USED.fetch_add(size, Ordering::Relaxed);
    if start + size > ARENA_SIZE {
        return std::ptr::null_mut();
    }
    let aligned = (base + start + layout.align() - 1) & !(layout.align() - 1);
    aligned as *mut u8
}

fn in_arena(ptr: *mut u8) -> bool {
    let base = ARENA.0.get() as usize;
    (base..base + ARENA_SIZE).contains(&(ptr as usize))
}

// SAFETY: forwards to System, returns null (which GlobalAlloc allows), or
// hands out never-reused pieces of the arena, which dealloc leaves alone.
unsafe impl GlobalAlloc for Faulty {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if failing() {
            return std::ptr::null_mut();
        }
        if IN_HANDLER.with(Cell::get) {
            return arena_alloc(layout);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if failing() {
            return std::ptr::null_mut();
        }
        if IN_HANDLER.with(Cell::get) || in_arena(ptr) {
            let new = arena_alloc(Layout::from_size_align(new_size, layout.align()).unwrap());
            if !new.is_null() {
                // SAFETY: both blocks hold at least min(old, new) bytes.
                unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            }
            return new;
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // In a handler, a block of System's is leaked: freeing it could wait
        // for glibc's arena lock, held by the code the signal interrupted
        // (heapprof frees, for one, the old table when it grows).
        if !in_arena(ptr) && !IN_HANDLER.with(Cell::get) {
            // SAFETY: the caller's contract, passed on.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

#[global_allocator]
static ALLOC: heapprof::Profiler<Faulty> = heapprof::Profiler::new(Faulty);

/// All tests here share the sampling rate: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn exact<T>(f: impl FnOnce() -> T) -> T {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    heapprof::set_sample_rate(1);
    let result = f();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    result
}

fn totals(site: &str, size: usize) -> [i64; 4] {
    site_totals(
        &heapprof::heap_profile_data().unwrap(),
        site,
        Some(size as i64),
    )
}

#[inline(never)]
fn oom_block() -> *mut u8 {
    // SAFETY: a non-zero-size layout.
    unsafe { std::alloc::alloc(Layout::from_size_align(1000, 8).unwrap()) }
}

#[inline(never)]
fn oom_zeroed_block() -> *mut u8 {
    // SAFETY: a non-zero-size layout.
    unsafe { std::alloc::alloc_zeroed(Layout::from_size_align(1001, 8).unwrap()) }
}

#[inline(never)]
fn survivor() -> *mut u8 {
    // SAFETY: a non-zero-size layout.
    unsafe { std::alloc::alloc(Layout::from_size_align(3000, 8).unwrap()) }
}

#[test]
fn out_of_memory_is_passed_through_and_records_nothing() {
    exact(|| {
        let layout = Layout::from_size_align(3000, 8).unwrap();
        let block = survivor();
        assert!(!block.is_null());
        // SAFETY: `block` holds 3000 bytes.
        unsafe { block.write_bytes(7, 3000) };
        FAIL.with(|f| f.set(true));
        let (a, b) = (oom_block(), oom_zeroed_block());
        // SAFETY: `block` is live with `layout`; a failed realloc leaves it so.
        let grown = unsafe { std::alloc::realloc(block, layout, 9000) };
        FAIL.with(|f| f.set(false));
        assert!(
            a.is_null() && b.is_null() && grown.is_null(),
            "null passed through"
        );
        // SAFETY: still ours, still 3000 bytes, unchanged.
        assert!(unsafe { std::slice::from_raw_parts(block, 3000) }
            .iter()
            .all(|&x| x == 7));
        assert_eq!(
            totals("oom_block", 1000),
            [0; 4],
            "failed allocations are not recorded"
        );
        assert_eq!(totals("oom_zeroed_block", 1001), [0; 4]);
        assert_eq!(
            totals("survivor", 3000),
            [1, 3000, 1, 3000],
            "a failed realloc leaves the block in use"
        );
        // SAFETY: freed once, with its layout.
        unsafe { std::alloc::dealloc(block, layout) };
        assert_eq!(
            totals("survivor", 3000),
            [1, 3000, 0, 0],
            "and its free is still seen"
        );
    });
}

#[inline(never)]
fn aligned_block(align: usize) -> *mut u8 {
    // SAFETY: a non-zero-size layout.
    unsafe { std::alloc::alloc(Layout::from_size_align(100, align).unwrap()) }
}

#[test]
fn huge_alignments_are_honoured_and_tracked() {
    exact(|| {
        for align in [1 << 16, 1 << 21] {
            let ptr = aligned_block(align);
            assert!(!ptr.is_null() && ptr as usize % align == 0);
            let layout = Layout::from_size_align(100, align).unwrap();
            // SAFETY: live block with `layout`; growing keeps its alignment.
            let grown = unsafe { std::alloc::realloc(ptr, layout, 5000) };
            assert!(!grown.is_null() && grown as usize % align == 0);
            // SAFETY: freed once, with its current layout.
            unsafe { std::alloc::dealloc(grown, Layout::from_size_align(5000, align).unwrap()) };
        }
        assert_eq!(totals("aligned_block", 100), [2, 200, 0, 0]);
    });
}

#[inline(never)]
fn resized(ptr: *mut u8, from: usize, to: usize) -> *mut u8 {
    // SAFETY: `ptr` is live with size `from` and alignment 8.
    let new = unsafe { std::alloc::realloc(ptr, Layout::from_size_align(from, 8).unwrap(), to) };
    assert!(!new.is_null());
    new
}

#[inline(never)]
fn unsampled_block() -> *mut u8 {
    // SAFETY: a non-zero-size layout.
    unsafe { std::alloc::alloc(Layout::from_size_align(4096, 8).unwrap()) }
}

#[test]
fn reallocation_shrinks_grows_and_moves_sampled_and_unsampled_blocks() {
    exact(|| {
        // Sampled: 4096 -> 1024 (shrink) -> 1 MiB (grow, moves) -> freed.
        let block = survivor_sized(4096);
        let block = resized(block, 4096, 1024);
        let block = resized(block, 1024, 1 << 20);
        assert_eq!(
            totals("resized", 1024),
            [1, 1024, 0, 0],
            "the shrunk block was freed by the next realloc"
        );
        assert_eq!(totals("resized", 1 << 20), [1, 1 << 20, 1, 1 << 20]);
        // SAFETY: freed once with its size.
        unsafe { std::alloc::dealloc(block, Layout::from_size_align(1 << 20, 8).unwrap()) };
        assert_eq!(totals("resized", 1 << 20), [1, 1 << 20, 0, 0]);

        // Unsampled (sampling off): reallocating it records only the new block.
        heapprof::set_sample_rate(0);
        let plain = unsampled_block();
        heapprof::set_sample_rate(1);
        let plain = resized(plain, 4096, 8192);
        assert_eq!(totals("unsampled_block", 4096), [0; 4]);
        assert_eq!(totals("resized", 8192), [1, 8192, 1, 8192]);
        // SAFETY: freed once with its size.
        unsafe { std::alloc::dealloc(plain, Layout::from_size_align(8192, 8).unwrap()) };
        assert_eq!(totals("resized", 8192), [1, 8192, 0, 0]);
    });
}

#[inline(never)]
fn survivor_sized(size: usize) -> *mut u8 {
    // SAFETY: a non-zero-size layout.
    unsafe { std::alloc::alloc(Layout::from_size_align(size, 8).unwrap()) }
}

#[inline(never)]
fn zero_sized_values() -> (Vec<()>, Box<()>) {
    (vec![(); 1_000_000], Box::new(()))
}

#[test]
fn zero_sized_types_never_reach_the_allocator() {
    exact(|| {
        let before = heapprof::heap_profile_data().unwrap().samples.len();
        let values = black_box(zero_sized_values());
        let profile = heapprof::heap_profile_data().unwrap();
        assert!(profile
            .samples
            .iter()
            .all(|s| profile.locations[s.locations[0]]
                .lines
                .iter()
                .all(|l| !profile.functions[l.function]
                    .name
                    .contains("zero_sized_values"))));
        assert!(profile.samples.len() >= before);
        drop(values);
    });
}

#[inline(never)]
fn thread_block(into: &mut Vec<Vec<u8>>) {
    for _ in 0..10 {
        into.push(vec![1u8; 777]);
    }
}

static ESCAPED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

struct AllocatesOnDrop;

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        tls_drop_alloc();
    }
}

#[inline(never)]
fn tls_drop_alloc() {
    let block = vec![2u8; 555];
    ESCAPED.lock().unwrap().push(block);
}

thread_local! {
    static ON_EXIT: AllocatesOnDrop = const { AllocatesOnDrop };
}

#[test]
fn threads_exit_holding_blocks_and_allocate_in_tls_destructors() {
    exact(|| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    ON_EXIT.with(|_| {});
                    let mut blocks = Vec::with_capacity(10);
                    thread_block(&mut blocks);
                    blocks
                })
            })
            .collect();
        let blocks: Vec<Vec<u8>> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(
            totals("thread_block", 777),
            [40, 40 * 777, 40, 40 * 777],
            "blocks outlive their threads"
        );
        // Thread-local destructors ran during thread exit and allocated.
        assert_eq!(ESCAPED.lock().unwrap().len(), 4);
        assert_eq!(
            totals("tls_drop_alloc", 555)[0],
            4,
            "allocations in TLS destructors are profiled"
        );
        drop(blocks);
        ESCAPED.lock().unwrap().clear();
        assert_eq!(totals("thread_block", 777)[2..], [0, 0]);
        assert_eq!(totals("tls_drop_alloc", 555)[2..], [0, 0]);
    });
}

static SIGNALS_HANDLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn allocating_handler(_: libc::c_int) {
    // Unsupported in general (malloc itself is not async-signal-safe), but
    // it must not deadlock on heapprof's own locks, whatever the interrupted
    // code was doing inside heapprof.
    IN_HANDLER.with(|h| h.set(true));
    black_box(vec![3u8; 48]);
    IN_HANDLER.with(|h| h.set(false));
    SIGNALS_HANDLED.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn allocating_signal_handlers_do_not_deadlock_on_the_profiler() {
    exact(|| {
        // SAFETY: installs a handler for SIGUSR1 in this test process.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = allocating_handler as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
        }
        // SAFETY: pthread_self is always valid.
        let target = unsafe { libc::pthread_self() };
        let done = Arc::new(AtomicBool::new(false));
        let sender = {
            let done = done.clone();
            let target = target as usize;
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    // SAFETY: the target thread outlives this loop (it sets `done`).
                    unsafe { libc::pthread_kill(target as libc::pthread_t, libc::SIGUSR1) };
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        // A deadlock would hang the test run: turn it into a failure.
        let watchdog = {
            let done = done.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    if start.elapsed() > Duration::from_secs(30) {
                        // Not eprintln!: the test harness captures it into a
                        // Vec, and an allocation could wait on the deadlock.
                        let message = b"allocating_signal_handlers: deadlocked (30 s); aborting\n";
                        // SAFETY: writes a static buffer to stderr.
                        unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
                        std::process::abort();
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let start = Instant::now();
        let mut kept = Vec::new();
        while start.elapsed() < Duration::from_millis(500) {
            kept.push(vec![4u8; 64]);
            if kept.len() > 100 {
                kept.clear();
            }
        }
        done.store(true, Ordering::Relaxed);
        sender.join().unwrap();
        watchdog.join().unwrap();
        assert!(
            SIGNALS_HANDLED.load(Ordering::Relaxed) > 10,
            "signals were delivered"
        );
    });
}
