//! Memory classes against a process whose memory is known: a child builds
//! a heap of small blocks, frees a third of them, runs threads that touch
//! a known part of their stacks and reads a mapped file; each class must
//! move by what it did, and the classes must add up to the RSS.

mod common;

use std::io::Write;
use std::sync::mpsc;

use heapprof::MemoryClasses;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

const MIB: u64 = 1 << 20;
/// Small blocks kept: 1 Mi of 64 bytes, 64 MiB.
const KEPT: usize = 1 << 20;
const BLOCK: usize = 64;
/// glibc's chunk for a 64-byte request: the request plus an 8-byte size
/// field, rounded up to 16.
const CHUNK: u64 = 80;
const THREADS: usize = 4;
const STACK: usize = 8 << 20;
const TOUCHED: usize = 1 << 20;
const FILE: usize = 16 << 20;

/// Writes every page of a 1 MiB buffer on this thread's stack.
#[inline(never)]
fn touch_stack() {
    let mut buf = [0u8; TOUCHED];
    for page in buf.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&mut buf);
}

/// Keeps `KEPT` blocks and frees every third block allocated between them
/// (so that no freed block borders another and glibc keeps them all as
/// free chunks): returns the kept ones.
#[allow(clippy::vec_box)]
#[inline(never)]
fn heap_with_holes() -> Vec<Box<[u8; BLOCK]>> {
    let mut kept = Vec::with_capacity(KEPT);
    let mut freed = Vec::with_capacity(KEPT / 2);
    for i in 0..KEPT + KEPT / 2 {
        let block = Box::new([i as u8; BLOCK]);
        if i % 3 == 2 {
            freed.push(block);
        } else {
            kept.push(block);
        }
    }
    drop(freed);
    kept
}

/// Maps `path` (FILE bytes) and reads every page of it; returns the mapping.
fn map_and_read(path: &std::path::Path) -> (*mut libc::c_void, u64) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: a fresh shared read-only mapping of a file FILE bytes long,
    // which the test does not truncate while it is mapped.
    let start = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            FILE,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(start, libc::MAP_FAILED);
    // SAFETY: the mapping is FILE bytes long, readable, and lives until
    // the child exits.
    let bytes = unsafe { std::slice::from_raw_parts(start as *const u8, FILE) };
    let sum = bytes.iter().step_by(4096).map(|&b| u64::from(b)).sum();
    (start, sum)
}

fn resident_from_statm() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split(' ').nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn sum(c: &MemoryClasses) -> u64 {
    c.live_bytes
        + c.profiler_bytes
        + c.heap_overhead_bytes
        + c.heap_free_bytes
        + c.stack_bytes
        + c.file_bytes
        + c.other_bytes
}

/// `after - before` of each class, in bytes (may be negative).
fn delta(before: u64, after: u64) -> i64 {
    after as i64 - before as i64
}

fn assert_within(what: &str, got: i64, low: u64, high: u64) {
    assert!(
        (low as i64..=high as i64).contains(&got),
        "{what}: moved by {got} bytes ({:.2} MiB), expected {:.2} to {:.2} MiB",
        got as f64 / MIB as f64,
        low as f64 / MIB as f64,
        high as f64 / MIB as f64
    );
}

/// The known workload, with the classes read before and after it.
///
/// Tolerances (each class's change):
/// - live: the blocks (64 MiB) and the vector holding them (8 MiB), plus
///   at most 256 KiB the test's own plumbing (threads, the path) keeps;
/// - heap overhead: 16 bytes per kept block (80-byte chunks for 64 bytes),
///   16 MiB, within 1 MiB (the vector's own mapping rounds to a page);
/// - heap free: the 512 Ki freed chunks, 40 MiB, within 1 MiB (up to 7
///   of them sit in glibc's per-thread cache, counted in use);
/// - stacks: 4 x 1 MiB touched, plus up to 192 KiB a thread for what
///   starting it touches at the top of its stack (its TLS, its first
///   frames);
/// - file: the 16 MiB mapping, plus up to 1 MiB of code pages first run;
/// - other: within 2 MiB either way (heapprof's static table of sampled
///   blocks is touched as samples come, glibc's arena headers).
///
/// The classes add up to `total` exactly, by construction; `total` must be
/// the RSS the kernel reports in `/proc/self/statm` right after, within
/// 2 MiB (statm's counters are cached per CPU, see proc(5), and the two
/// reads are a moment apart).
#[test]
#[ignore = "run in a child by each_class_moves_by_what_the_program_did"]
fn classes_child() {
    let dir = std::env::var("MEMORY_CLASSES_DIR").unwrap();
    let path = std::path::Path::new(&dir).join("mapped.bin");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![7u8; 64 << 10];
    for _ in 0..FILE / chunk.len() {
        file.write_all(&chunk).unwrap();
    }
    file.sync_all().unwrap();
    drop((file, chunk));

    let before = heapprof::memory_classes().unwrap();

    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let mut releases = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..THREADS {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let ready = ready_tx.clone();
        releases.push(release_tx);
        threads.push(
            std::thread::Builder::new()
                .stack_size(STACK)
                .spawn(move || {
                    touch_stack();
                    ready.send(()).unwrap();
                    let _ = release_rx.recv();
                })
                .unwrap(),
        );
    }
    for _ in 0..THREADS {
        ready_rx.recv().unwrap();
    }
    let (_mapping, read) = map_and_read(&path);
    assert_eq!(read, 7 * (FILE as u64 / 4096));
    let kept = heap_with_holes();

    let after = heapprof::memory_classes().unwrap();
    let statm = resident_from_statm();
    let stats = heapprof::stats();
    println!("before {before:?}\nafter  {after:?}\n{}", after.explain());

    assert!(after.allocator_known, "glibc's malloc is under heapprof");
    assert_eq!(sum(&after), after.total_bytes);
    assert_eq!(sum(&before), before.total_bytes);
    assert_eq!(
        after.live_bytes, stats.live_bytes,
        "the live heap is resident"
    );
    let blocks = (KEPT * BLOCK) as u64;
    let holder = (KEPT * std::mem::size_of::<usize>()) as u64;
    assert_within(
        "live",
        delta(before.live_bytes, after.live_bytes),
        blocks + holder,
        blocks + holder + (256 << 10),
    );
    let overhead = KEPT as u64 * (CHUNK - BLOCK as u64);
    assert_within(
        "heap overhead",
        delta(before.heap_overhead_bytes, after.heap_overhead_bytes),
        overhead - MIB,
        overhead + MIB,
    );
    let free = (KEPT / 2) as u64 * CHUNK;
    assert_within(
        "heap free",
        delta(before.heap_free_bytes, after.heap_free_bytes),
        free - MIB,
        free + MIB,
    );
    let stacks = (THREADS * TOUCHED) as u64;
    assert_within(
        "stacks",
        delta(before.stack_bytes, after.stack_bytes),
        stacks,
        stacks + THREADS as u64 * (192 << 10),
    );
    assert_within(
        "file",
        delta(before.file_bytes, after.file_bytes),
        FILE as u64,
        FILE as u64 + MIB,
    );
    let other = delta(before.other_bytes, after.other_bytes);
    assert!(other.abs() <= 2 << 20, "other moved by {other} bytes");
    let gap = statm.abs_diff(after.total_bytes);
    assert!(
        gap <= 2 * MIB,
        "classes total {} against statm's RSS {statm}",
        after.total_bytes
    );

    for release in releases {
        release.send(()).unwrap();
    }
    for thread in threads {
        thread.join().unwrap();
    }
    // Still live at exit, for the profile dumped then.
    std::mem::forget(kept);
}

/// The number under `key` among a memory comment's pairs.
fn number(pairs: &[(String, String)], key: &str) -> u64 {
    let (_, value) = pairs.iter().find(|(k, _)| k == key).expect(key);
    value.parse().unwrap()
}

/// `key=value` pairs of the profile comment that starts `heapprof: memory`.
fn memory_comment(text: &str) -> Option<Vec<(String, String)>> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("heapprof: memory "))?;
    Some(
        line.split(' ')
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("key=value");
                (k.to_owned(), v.to_owned())
            })
            .collect(),
    )
}

#[test]
fn each_class_moves_by_what_the_program_did() {
    let dir = common::scratch_dir("memory-classes");
    let spec = format!("at_exit=1,dump={}/heap.pb.gz", dir.display());
    let out = common::run_child_test_ok(
        "classes_child",
        &[
            ("MEMORY_CLASSES_DIR", dir.to_str().unwrap()),
            ("HEAPPROF", &spec),
        ],
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));

    // The exit profile carries the classes of its moment, and go tool
    // pprof shows them.
    let profile = dir.join("heap.pb.gz");
    let comments = common::go_pprof_ok(&["-comments", profile.to_str().unwrap()]);
    let pairs =
        memory_comment(&comments).unwrap_or_else(|| panic!("no memory comment: {comments}"));
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| &k[..]).collect();
    assert_eq!(
        keys,
        [
            "rss_bytes",
            "live_bytes",
            "profiler_bytes",
            "heap_overhead_bytes",
            "heap_free_bytes",
            "stack_bytes",
            "file_bytes",
            "other_bytes",
            "not_resident_bytes",
            "allocator"
        ]
    );
    let value = |key: &str| number(&pairs, key);
    assert!(value("live_bytes") >= (KEPT * BLOCK) as u64, "{comments}");
    let classes: u64 = keys[1..8].iter().map(|k| value(k)).sum();
    assert_eq!(classes, value("rss_bytes"), "{comments}");
    assert_eq!(pairs[9].1, "glibc");
}

/// `/debug/mem` lists the classes and ends with the reading of the gap;
/// `/metrics` has every class.
#[cfg(feature = "http")]
#[test]
fn the_endpoint_shows_the_classes() {
    use std::io::Read;
    let addr = heapprof::serve("127.0.0.1:0").unwrap();
    let get = |target: &str| {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(stream, "GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply.split_once("\r\n\r\n").unwrap().1.to_owned()
    };
    let held = vec![3u8; 16 << 20];
    let mem = get("/debug/mem");
    let value = |name: &str| -> u64 {
        mem.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name}: {mem}"))
    };
    let parts: u64 = [
        "heap/live",
        "heap/overhead",
        "heap/free",
        "profiler",
        "stacks",
        "file",
        "other",
    ]
    .iter()
    .map(|n| value(n))
    .sum();
    assert_eq!(parts, value("total"), "{mem}");
    assert!(value("heap/live") >= 16 << 20, "{mem}");
    let last = mem.lines().last().unwrap();
    assert!(
        last.starts_with("RSS ") && last.contains("the live heap"),
        "{mem}"
    );
    let metrics = get("/metrics");
    for class in [
        "heap_live",
        "heap_overhead",
        "heap_free",
        "profiler",
        "stacks",
        "file",
        "other",
        "total",
    ] {
        let name = format!("\nheapprof_memory_classes_{class}_bytes ");
        assert!(metrics.contains(&name), "{name} missing: {metrics}");
    }
    drop(held);
}

/// Profiles built in process carry the comment too, not only dumps: every
/// profile heapprof writes is a point of a series that can be charted.
#[test]
fn profiles_built_in_process_carry_the_classes() {
    let kept = vec![7u8; 4 << 20];
    let bytes = heapprof::heap_profile().unwrap();
    let profile = heapprof::pprof::Profile::decode(&bytes).unwrap();
    let comments = profile.comments.join("\n");
    let pairs = memory_comment(&comments).expect(&comments);
    let value = |key: &str| number(&pairs, key);
    assert!(value("live_bytes") >= kept.len() as u64, "{comments}");
    assert!(value("rss_bytes") >= value("live_bytes"), "{comments}");
    assert_eq!(
        comments.matches("heapprof: memory ").count(),
        1,
        "one memory comment: {comments}"
    );
    drop(kept);
}
