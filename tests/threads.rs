//! Many threads allocating, reallocating and freeing each other's blocks
//! while another thread writes profiles: no deadlock, no lost free, counts
//! consistent in every profile and exact at the end (rate 1).

mod common;

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use common::{assert_consistent, site_totals};
use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

const THREADS: usize = 8;
const BLOCKS_PER_THREAD: usize = 2000;
const SMALL: usize = 128;
const GROWN: usize = 4096;

#[inline(never)]
fn make_small() -> *mut u8 {
    // SAFETY: a non-zero-size layout.
    let ptr = unsafe { alloc(Layout::from_size_align(SMALL, 8).unwrap()) };
    assert!(!ptr.is_null());
    ptr
}

#[inline(never)]
fn grow(ptr: *mut u8) -> *mut u8 {
    // SAFETY: `ptr` came from `make_small` with this layout.
    let grown = unsafe { realloc(ptr, Layout::from_size_align(SMALL, 8).unwrap(), GROWN) };
    assert!(!grown.is_null());
    grown
}

fn free(ptr: *mut u8, size: usize) {
    // SAFETY: `ptr` was allocated with `size` and alignment 8 and is freed once.
    unsafe { dealloc(ptr, Layout::from_size_align(size, 8).unwrap()) }
}

#[test]
fn threads_allocate_and_free_across_each_other_while_profiles_are_written() {
    heapprof::set_sample_rate(1);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS)
        .map(|_| mpsc::channel::<(usize, usize)>())
        .unzip();
    let done = Arc::new(AtomicBool::new(false));

    let writer = {
        let done = done.clone();
        thread::spawn(move || {
            let mut written = 0;
            while !done.load(Ordering::Acquire) || written < 3 {
                let profile = Profile::decode(&heapprof::heap_profile().unwrap()).unwrap();
                assert_consistent(&profile);
                written += 1;
            }
            written
        })
    };

    let workers: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(i, inbox)| {
            let next = senders[(i + 1) % THREADS].clone();
            thread::spawn(move || {
                for j in 0..BLOCKS_PER_THREAD {
                    let mut ptr = make_small();
                    let mut size = SMALL;
                    if j % 4 == 0 {
                        ptr = grow(ptr);
                        size = GROWN;
                    }
                    if j % 2 == 0 {
                        next.send((ptr as usize, size)).unwrap(); // freed by the next thread
                    } else {
                        free(ptr, size);
                    }
                }
                drop(next);
                for (ptr, size) in inbox.iter().take(BLOCKS_PER_THREAD / 2) {
                    free(ptr as *mut u8, size);
                }
            })
        })
        .collect();
    drop(senders);
    for worker in workers {
        worker.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let profiles_written = writer.join().unwrap();

    let profile = heapprof::heap_profile_data().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    assert_consistent(&profile);
    let made = (THREADS * BLOCKS_PER_THREAD) as i64;
    let grown = made / 4;
    assert_eq!(
        site_totals(&profile, "make_small", Some(SMALL as i64)),
        [made, made * SMALL as i64, 0, 0],
        "every small block counted once and freed"
    );
    assert_eq!(
        site_totals(&profile, "grow", Some(GROWN as i64)),
        [grown, grown * GROWN as i64, 0, 0],
        "every realloc counted as a new block, and freed"
    );
    assert!(profiles_written >= 3);
}
