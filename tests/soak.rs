//! Soak: 20 million allocations on twice as many threads as cores, with
//! random sizes and lifetimes, blocks freed by other threads, and profiles
//! written all along. Every profile is consistent; nothing deadlocks; memory
//! stays bounded; and when every block is freed, nothing is in use.

mod common;

use std::alloc::{alloc, dealloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use common::{assert_consistent, site_totals};
use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

const TOTAL_ALLOCATIONS: usize = 20_000_000;
const LIVE_PER_THREAD: usize = 1024;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Mostly small blocks, a few large ones.
fn size(rng: &mut Rng) -> usize {
    match rng.next() % 1000 {
        0 => 256 << 10 | (rng.next() % 4096) as usize,
        1..=20 => 8192 + (rng.next() % 65536) as usize,
        _ => 16 + (rng.next() % 2048) as usize,
    }
}

#[inline(never)]
fn soak_alloc(size: usize) -> (usize, usize) {
    // SAFETY: non-zero size.
    let ptr = unsafe { alloc(Layout::from_size_align(size, 8).unwrap()) };
    assert!(!ptr.is_null());
    (ptr as usize, size)
}

fn soak_free((ptr, size): (usize, usize)) {
    // SAFETY: `ptr` came from `soak_alloc` with this size and is freed once.
    unsafe { dealloc(ptr as *mut u8, Layout::from_size_align(size, 8).unwrap()) }
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn soak_many_threads_random_lifetimes_concurrent_profiles() {
    heapprof::set_sample_rate(256 << 10);
    let threads = 2 * thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = TOTAL_ALLOCATIONS / threads;
    let rss_before = resident_bytes();
    let done = Arc::new(AtomicBool::new(false));

    let writer = {
        let done = done.clone();
        thread::spawn(move || {
            let mut written = 0;
            let mut largest_table = 0;
            while !done.load(Ordering::Acquire) {
                let profile = Profile::decode(&heapprof::heap_profile().unwrap()).unwrap();
                assert_consistent(&profile);
                largest_table = largest_table.max(profile.samples.len());
                written += 1;
                thread::sleep(std::time::Duration::from_millis(20));
            }
            (written, largest_table)
        })
    };

    let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| mpsc::channel::<(usize, usize)>())
        .unzip();
    let workers: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(i, inbox)| {
            let neighbour = senders[(i + 1) % threads].clone();
            thread::spawn(move || {
                let mut rng =
                    Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
                let mut live: Vec<Option<(usize, usize)>> = vec![None; LIVE_PER_THREAD];
                for n in 0..per_thread {
                    let block = soak_alloc(size(&mut rng));
                    let slot = (rng.next() % LIVE_PER_THREAD as u64) as usize;
                    if let Some(old) = live[slot].replace(block) {
                        if n % 64 == 0 {
                            neighbour.send(old).unwrap();
                        } else {
                            soak_free(old);
                        }
                    }
                    while let Ok(theirs) = inbox.try_recv() {
                        soak_free(theirs);
                    }
                }
                drop(neighbour);
                live.into_iter().flatten().for_each(soak_free);
                inbox
            })
        })
        .collect();
    drop(senders);
    // Every sender is gone once the workers return: drain what is left.
    let inboxes: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    for inbox in inboxes {
        inbox.into_iter().for_each(soak_free);
    }
    done.store(true, Ordering::Release);
    let (written, largest_table) = writer.join().unwrap();

    let profile = heapprof::heap_profile_data().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    assert_consistent(&profile);
    let [objects, bytes, inuse_objects, inuse_bytes] = site_totals(&profile, "soak_alloc", None);
    assert!(objects > 0 && bytes > 0, "the soak was sampled");
    assert_eq!(
        (inuse_objects, inuse_bytes),
        (0, 0),
        "everything was freed, so nothing is in use"
    );
    assert!(
        written >= 3,
        "profiles were written during the soak ({written})"
    );
    assert!(largest_table <= 131_072);
    let growth = resident_bytes().saturating_sub(rss_before);
    assert!(
        growth < 256 << 20,
        "resident memory grew by {} MiB",
        growth >> 20
    );
    println!(
        "{threads} threads, {TOTAL_ALLOCATIONS} allocations, {written} profiles, RSS +{} MiB",
        growth >> 20
    );
}
