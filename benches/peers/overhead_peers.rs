//! The peers of the overhead bench: dhat-rs (`dhat::Alloc`) and jemalloc,
//! alone and with its own sampling profiler at 512 KiB
//! (`prof:true,lg_prof_sample:19`). Each is compared with its own baseline
//! in this same binary (the system allocator for dhat-rs, jemalloc alone for
//! jemalloc's profiler), through the same dispatch. Run by
//! `benches/overhead.rs`; on its own it only says so.

#[path = "../overhead_common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

static DHAT: dhat::Alloc = dhat::Alloc;
static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
static MODE: AtomicU8 = AtomicU8::new(SYSTEM);

const SYSTEM: u8 = 0;
const DHAT_MODE: u8 = 1;
const JEMALLOC_MODE: u8 = 2;

/// Picks the allocator before the Rust runtime's first allocation, so that
/// every block of the process comes from (and returns to) the same one.
#[used]
#[link_section = ".init_array"]
static SELECT_ALLOCATOR: extern "C" fn() = select_allocator;

extern "C" fn select_allocator() {
    // SAFETY: getenv with a NUL-terminated name; the value is read at once.
    let spec = unsafe {
        let value = libc::getenv(c"HEAPPROF_BENCH_CHILD".as_ptr());
        if value.is_null() {
            return;
        }
        std::ffi::CStr::from_ptr(value).to_bytes()
    };
    let mode = spec.split(|&b| b == b':').next().unwrap_or_default();
    let chosen = match mode {
        b"dhat" => DHAT_MODE,
        b"jemalloc" | b"jemalloc_prof" => JEMALLOC_MODE,
        _ => SYSTEM,
    };
    MODE.store(chosen, Ordering::Relaxed);
}

/// Calls `$method` on the allocator of this process.
macro_rules! on_chosen {
    ($method:ident($($arg:expr),*)) => {
        match MODE.load(Ordering::Relaxed) {
            SYSTEM => System.$method($($arg),*),
            DHAT_MODE => DHAT.$method($($arg),*),
            _ => JEMALLOC.$method($($arg),*),
        }
    };
}

/// Forwards to the allocator chosen before main.
struct Switch;

// SAFETY: forwards every call to the one allocator chosen before the first
// allocation of the process.
unsafe impl GlobalAlloc for Switch {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { on_chosen!(alloc(layout)) }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { on_chosen!(dealloc(ptr, layout)) }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { on_chosen!(alloc_zeroed(layout)) }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { on_chosen!(realloc(ptr, layout, new_size)) }
    }
}

#[global_allocator]
static ALLOC: Switch = Switch;

/// A dhat session whose output file is removed when it ends.
struct DhatSession {
    profiler: Option<dhat::Profiler>,
    file: std::path::PathBuf,
}

impl Drop for DhatSession {
    fn drop(&mut self) {
        drop(self.profiler.take()); // writes the file
        let _ = std::fs::remove_file(&self.file);
    }
}

fn main() {
    let child = common::run_as_child(|mode| -> Box<dyn std::any::Any> {
        if mode != "dhat" {
            return Box::new(());
        }
        let file =
            std::env::temp_dir().join(format!("heapprof-bench-dhat-{}.json", std::process::id()));
        Box::new(DhatSession {
            profiler: Some(dhat::Profiler::builder().file_name(&file).build()),
            file,
        })
    });
    if !child {
        println!(
            "overhead_peers: a helper of the overhead bench; run cargo bench --workspace --bench 'overhead*'"
        );
    }
}
