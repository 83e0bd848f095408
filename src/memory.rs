//! Memory classes, the `/memory/classes` of heapprof: where the process's
//! resident memory is, in classes that add up to its RSS, so that a gap
//! between RSS and the live heap has a name.
//!
//! It owns one read of `/proc/self/smaps` (into a stack buffer: it
//! allocates nothing) and one call of glibc's `mallinfo2`; the live and
//! profiler figures are the exact counters of [`crate::stats`]. It runs on
//! the caller's thread as heapprof's own work, never from the allocator.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::Path;

use crate::core::counters::{self, own_work};
use crate::sys::{self, MallocTotals};
use crate::Error;

const SMAPS: &str = "/proc/self/smaps";

/// The largest `PROT_NONE` mapping taken for a thread stack's guard:
/// glibc's default guard is one page, and programs that ask for more ask
/// for tens of KiB. Larger inaccessible mappings are reservations (glibc's
/// arena heaps keep the unused part of their 64 MiB so).
const MAX_GUARD: u64 = 1 << 20;

/// glibc's arena heaps (`HEAP_MAX_SIZE` on 64-bit) start at multiples of
/// this; a thread stack's usable part, which follows its guard page, does
/// not (but by a chance of one in 16384 pages).
const ARENA_HEAP_ALIGN: u64 = 64 << 20;

/// The process's resident memory by class, read by [`memory_classes`].
/// Every class is resident bytes, and the classes add up to
/// [`total_bytes`](Self::total_bytes), the RSS:
///
/// `total = live + profiler + heap_overhead + heap_free + stacks + file + other`
///
/// The heap classes are what the allocator holds, which is not all
/// resident: a block from `vec![0; n]` (calloc) is not until it is
/// written, nor is free memory glibc never touched or gave back with
/// `malloc_trim`. So they are clamped, in that order (live first, free
/// last), to the anonymous memory that stacks leave; what the clamp took
/// is [`not_resident_bytes`](Self::not_resident_bytes), outside the sum.
/// Where the clamp does not bite, free memory that is not resident is
/// counted as heap free and missing from other: the error moves bytes
/// between those two classes and never breaks the sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryClasses {
    /// The resident set size: the sum of every mapping's `Rss` in
    /// `/proc/self/smaps` (`/memory/classes/total:bytes`).
    pub total_bytes: u64,
    /// The program's live heap: [`crate::Stats::live_bytes`], exact
    /// (`/memory/classes/heap/live:bytes`).
    pub live_bytes: u64,
    /// heapprof's own heap: [`crate::Stats::profiler_bytes`]
    /// (`/memory/classes/profiler:bytes`). Its fixed tables of sampled
    /// blocks (static, up to 2 MiB, touched as used) are in other.
    pub profiler_bytes: u64,
    /// What the allocator has in use beyond the live and profiler bytes
    /// (`/memory/classes/heap/overhead:bytes`): chunk headers and size
    /// rounding, blocks parked in glibc's per-thread caches, and `malloc`
    /// calls that do not go through Rust's global allocator (C libraries,
    /// glibc itself). 0 when the allocator is unknown.
    pub heap_overhead_bytes: u64,
    /// The allocator's free memory, kept for reuse but not given back to
    /// the system: fragmentation, and the top of the heap not yet trimmed
    /// (`/memory/classes/heap/free:bytes`). 0 when the allocator is
    /// unknown.
    pub heap_free_bytes: u64,
    /// Thread stacks (`/memory/classes/stacks:bytes`): the main thread's
    /// `[stack]` mapping and every mapping of the shape glibc gives a
    /// thread's stack (and Rust a signal stack): an anonymous read-write
    /// mapping right after an inaccessible guard of at most 1 MiB. Stacks
    /// glibc caches for reuse after their thread exited are counted too;
    /// stacks a program maps itself without a guard are in other.
    pub stack_bytes: u64,
    /// Pages of files and shared memory: the executable, libraries, mapped
    /// files, `tmpfs` and `memfd` mappings (RSS that smaps does not count
    /// as anonymous; `/memory/classes/file:bytes`). A file mapping's
    /// copy-on-write pages (relocated data) are anonymous: in other.
    pub file_bytes: u64,
    /// The rest of the anonymous memory (`/memory/classes/other:bytes`):
    /// the program's and libraries' own `mmap`s, static data, heapprof's
    /// static tables, and, when the allocator is unknown, its free memory
    /// and overhead.
    pub other_bytes: u64,
    /// Whether the heap free and overhead classes come from the allocator:
    /// true when glibc's `mallinfo2` (glibc 2.33 and later) accounts for at
    /// least the live and profiler bytes, so that glibc's malloc is the
    /// allocator under heapprof. With jemalloc or mimalloc under it, or an
    /// older glibc, or musl, it is false: those classes are 0 and their
    /// bytes are in other. (A tiny heap over another allocator can pass for
    /// glibc's; glibc's own memory, a few hundred KiB, is then overhead.)
    pub allocator_known: bool,
    /// What the allocator holds that resident memory could not (see the
    /// type's documentation): not part of the sum.
    pub not_resident_bytes: u64,
}

/// Reads the process's resident memory by class (see [`MemoryClasses`]):
/// the exact counters, glibc's `mallinfo2` and one read of
/// `/proc/self/smaps`.
///
/// Not cheap like [`crate::stats`]: the kernel walks the page tables of
/// every mapping to answer, and writes a paragraph per mapping. Measured
/// (release build on a busy 2-core x86-64 VM, Linux 6.18, glibc 2.36; 20
/// reads each): 0.6 ms for a 3 MiB process of 36 mappings, 2.4 ms at
/// 104 MiB, 29 ms at 1.1 GiB, 41 ms for 160 MiB in 4067 mappings (1000
/// threads): about 25 µs per MiB resident plus 10 µs per mapping.
/// `mallinfo2` walks glibc's free lists, a small part of that. Allocates
/// nothing. Errors only if `/proc/self/smaps` cannot be read.
///
/// ```
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// let kept = vec![1u8; 8 << 20];
/// let classes = heapprof::memory_classes().unwrap();
/// assert!(classes.live_bytes >= 8 << 20);
/// let sum = classes.live_bytes + classes.profiler_bytes + classes.heap_overhead_bytes
///     + classes.heap_free_bytes + classes.stack_bytes + classes.file_bytes
///     + classes.other_bytes;
/// assert_eq!(sum, classes.total_bytes);
/// println!("{}", classes.explain()); // RSS 14 MiB is 1.7x the live heap 8.0 MiB: ...
/// # drop(kept);
/// ```
pub fn memory_classes() -> Result<MemoryClasses, Error> {
    own_work(|| {
        // The counters and the allocator's figures as close together as
        // can be: they are compared with each other.
        let live = counters::totals().live_bytes();
        let profiler = counters::own_totals().live_bytes();
        let allocator = sys::malloc_totals();
        let resident = read_resident(Path::new(SMAPS)).map_err(|source| Error::Io {
            path: SMAPS.into(),
            source,
        })?;
        Ok(classify(live, profiler, resident, allocator))
    })
}

/// What smaps says: bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Resident {
    rss: u64,
    anonymous: u64,
    stacks: u64,
}

/// Splits the resident memory into classes (see [`MemoryClasses`]).
fn classify(
    live: u64,
    profiler: u64,
    resident: Resident,
    allocator: Option<MallocTotals>,
) -> MemoryClasses {
    let total = resident.rss;
    let anonymous = resident.anonymous.min(total);
    let stacks = resident.stacks.min(anonymous);
    let accounted = live.saturating_add(profiler);
    let allocator = allocator.filter(|a| a.in_use.saturating_add(a.mmapped) >= accounted);
    let (overhead, free) = allocator.map_or((0, 0), |a| {
        let in_use = a.in_use.saturating_add(a.mmapped);
        (in_use - accounted, a.free)
    });
    let mut room = anonymous - stacks;
    let mut take = |claim: u64| {
        let got = claim.min(room);
        room -= got;
        got
    };
    let classes = MemoryClasses {
        total_bytes: total,
        live_bytes: take(live),
        profiler_bytes: take(profiler),
        heap_overhead_bytes: take(overhead),
        heap_free_bytes: take(free),
        stack_bytes: stacks,
        file_bytes: total - anonymous,
        other_bytes: 0,
        allocator_known: allocator.is_some(),
        not_resident_bytes: 0,
    };
    let claimed = [live, profiler, overhead, free]
        .iter()
        .fold(0u64, |sum, &c| sum.saturating_add(c));
    let held = classes.live_bytes
        + classes.profiler_bytes
        + classes.heap_overhead_bytes
        + classes.heap_free_bytes;
    MemoryClasses {
        other_bytes: room,
        not_resident_bytes: claimed - held,
        ..classes
    }
}

/// Sums `/proc/self/smaps` (or a file like it): every mapping's `Rss` and
/// `Anonymous`, and the `Anonymous` of those that are thread stacks.
fn read_resident(path: &Path) -> io::Result<Resident> {
    let file = std::fs::File::open(path)?;
    let mut totals = Resident::default();
    let mut mapping = MappingShape::default();
    let mut previous = MappingShape::default();
    let mut buf = [0u8; 8192];
    for_each_line(file, &mut buf, |line| {
        let Some(&first) = line.first() else { return };
        if !first.is_ascii_uppercase() {
            // A mapping's header: field names start with a capital,
            // addresses with a lowercase hex digit.
            previous = mapping;
            mapping = MappingShape::parse(line);
            mapping.stack = mapping.is_stack(&previous);
            return;
        }
        let bytes = |name: &[u8]| {
            let value = line.strip_prefix(name)?;
            let kib: u64 = std::str::from_utf8(value)
                .ok()?
                .split_ascii_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some(kib * 1024)
        };
        if let Some(rss) = bytes(b"Rss:") {
            totals.rss += rss;
        } else if let Some(anonymous) = bytes(b"Anonymous:") {
            totals.anonymous += anonymous;
            if mapping.stack {
                totals.stacks += anonymous;
            }
        }
    })?;
    Ok(totals)
}

/// What a mapping's header line says about its shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct MappingShape {
    start: u64,
    end: u64,
    /// `rw-p`.
    private_writable: bool,
    /// `---p` or `---s`.
    inaccessible: bool,
    /// No file behind it (inode 0, and no name or an `[anon:...]` one).
    anonymous: bool,
    /// Named `[stack]`: the main thread's.
    main_stack: bool,
    /// Taken for a stack (see [`MappingShape::is_stack`]).
    stack: bool,
}

impl MappingShape {
    /// `start-end perms offset dev inode [name]`.
    fn parse(line: &[u8]) -> MappingShape {
        let text = text_prefix(line);
        let mut fields = text.split_ascii_whitespace();
        let (start, end) = fields
            .next()
            .and_then(|range| range.split_once('-'))
            .and_then(|(s, e)| {
                Some((
                    u64::from_str_radix(s, 16).ok()?,
                    u64::from_str_radix(e, 16).ok()?,
                ))
            })
            .unwrap_or((0, 0));
        let perms = fields.next().unwrap_or("");
        let inode = fields.nth(2).unwrap_or("");
        let name = fields.next().unwrap_or("");
        MappingShape {
            start,
            end,
            private_writable: perms == "rw-p",
            inaccessible: perms.starts_with("---"),
            anonymous: inode == "0" && (name.is_empty() || name.starts_with("[anon:")),
            main_stack: name == "[stack]",
            stack: false,
        }
    }

    /// The main thread's stack, or the shape of another thread's: an
    /// anonymous read-write mapping right after a small inaccessible one
    /// (its guard page), not where glibc puts arena heaps.
    fn is_stack(&self, previous: &MappingShape) -> bool {
        self.main_stack
            || (self.anonymous
                && self.private_writable
                && previous.anonymous
                && previous.inaccessible
                && previous.end == self.start
                && previous.end - previous.start <= MAX_GUARD
                && self.start % ARENA_HEAP_ALIGN != 0)
    }
}

/// `bytes` as text, cut before the first byte that is not UTF-8 (header
/// lines are ASCII but for a file's name): no allocation, unlike
/// `String::from_utf8_lossy`.
fn text_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// Calls `visit` with each line of `input` (without its newline), read
/// through `buf`. A line longer than `buf` is visited as its first
/// `buf.len()` bytes: what matters in smaps (a header's range, permissions
/// and inode; a field's name and value) is at the start.
fn for_each_line(
    mut input: impl Read,
    buf: &mut [u8],
    mut visit: impl FnMut(&[u8]),
) -> io::Result<()> {
    let mut filled = 0;
    let mut skipping = false;
    loop {
        let n = match input.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if filled > 0 && !skipping {
                visit(&buf[..filled]);
            }
            return Ok(());
        }
        filled += n;
        let mut start = 0;
        while let Some(offset) = buf[start..filled].iter().position(|&b| b == b'\n') {
            if !skipping {
                visit(&buf[start..start + offset]);
            }
            skipping = false;
            start += offset + 1;
        }
        if start == 0 && filled == buf.len() {
            if !skipping {
                visit(&buf[..filled]);
            }
            skipping = true;
            filled = 0;
        } else {
            buf.copy_within(start..filled, 0);
            filled -= start;
        }
    }
}

impl MemoryClasses {
    /// One line on the gap between RSS and the live heap: how many times
    /// the heap RSS is, and which classes make up the rest, e.g. `RSS 120
    /// MiB is 3.1x the live heap 39 MiB: the other 81 MiB is mostly
    /// allocator free memory (66 MiB: fragmentation, or memory not yet
    /// returned to the OS), not a leak`. `/debug/mem` ends with it.
    pub fn explain(&self) -> String {
        let total = self.total_bytes;
        let live = self.live_bytes;
        let mut line = if live == 0 {
            format!("RSS {} holds no live heap", size(total))
        } else {
            format!(
                "RSS {} is {:.1}x the live heap {}",
                size(total),
                total as f64 / live as f64,
                size(live)
            )
        };
        let gap = total - live.min(total);
        if gap <= total / 8 {
            line.push_str(": the live heap is nearly all of it");
            return line;
        }
        let other = if self.allocator_known {
            "anonymous memory outside the heap ({}: the program's or its libraries' own mmaps, static data)"
        } else {
            "anonymous memory outside the counted heap ({}: the free memory and overhead of an allocator heapprof cannot read, mmaps, static data)"
        };
        let classes: [(u64, &str); 6] = [
            (
                self.heap_free_bytes,
                "allocator free memory ({}: fragmentation, or memory not yet returned to the OS), not a leak",
            ),
            (
                self.heap_overhead_bytes,
                "allocator overhead ({}: block headers and size rounding, many small blocks, or malloc outside Rust's allocator), not live data",
            ),
            (
                self.profiler_bytes,
                "heapprof's own memory ({}: its sample table and caches)",
            ),
            (self.stack_bytes, "thread stacks ({})"),
            (
                self.file_bytes,
                "file-backed memory ({}: the executable, libraries, mapped files, shared memory)",
            ),
            (self.other_bytes, other),
        ];
        let _ = write!(line, ": the other {} is ", size(gap));
        let described = |(bytes, text): (u64, &str)| text.replacen("{}", &size(bytes), 1);
        let largest = classes
            .iter()
            .copied()
            .max_by_key(|&(bytes, _)| bytes)
            .unwrap_or((0, ""));
        let (free, overhead) = (self.heap_free_bytes, self.heap_overhead_bytes);
        let (stacks, file) = (self.stack_bytes, self.file_bytes);
        if largest.0 >= gap / 2 {
            line.push_str("mostly ");
            line.push_str(&described(largest));
        } else if stacks + file >= gap / 2 {
            let _ = write!(
                line,
                "mostly non-heap: thread stacks {} and file mappings {}",
                size(stacks),
                size(file)
            );
        } else if free + overhead >= gap / 2 {
            let _ = write!(
                line,
                "mostly the allocator's: free memory {} and overhead {}, not live data",
                size(free),
                size(overhead)
            );
        } else {
            let _ = write!(
                line,
                "spread: heap free {}, heap overhead {}, profiler {}, stacks {}, file {}, other {}",
                size(free),
                size(overhead),
                size(self.profiler_bytes),
                size(stacks),
                size(file),
                size(self.other_bytes)
            );
        }
        line
    }

    /// The classes as one profile comment, `heapprof: memory` then
    /// `key=value` pairs in bytes (the README documents the keys), so that
    /// a series of dumps can be charted from `go tool pprof -comments`.
    pub(crate) fn comment(&self) -> String {
        format!(
            "{}rss_bytes={} live_bytes={} profiler_bytes={} heap_overhead_bytes={} heap_free_bytes={} stack_bytes={} file_bytes={} other_bytes={} not_resident_bytes={} allocator={}",
            heapprof_pprof::MEMORY_COMMENT,
            self.total_bytes,
            self.live_bytes,
            self.profiler_bytes,
            self.heap_overhead_bytes,
            self.heap_free_bytes,
            self.stack_bytes,
            self.file_bytes,
            self.other_bytes,
            self.not_resident_bytes,
            if self.allocator_known { "glibc" } else { "unknown" }
        )
    }
}

/// The comment a profile carries of the memory classes when it is written,
/// or a comment saying why there is none.
pub(crate) fn profile_comment() -> String {
    match memory_classes() {
        Ok(classes) => classes.comment(),
        Err(e) => format!("{}unknown: {e}", heapprof_pprof::MEMORY_COMMENT),
    }
}

/// Bytes for a person: `812 B`, `96 KiB`, `3.2 MiB`, `39 MiB`, `1.5 GiB`.
fn size(bytes: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    let b = bytes as f64;
    match bytes {
        0..KIB => format!("{bytes} B"),
        KIB..MIB => format!("{:.0} KiB", b / KIB as f64),
        MIB..10_485_760 => format!("{:.1} MiB", b / MIB as f64),
        10_485_760..GIB => format!("{:.0} MiB", b / MIB as f64),
        _ => format!("{:.1} GiB", b / GIB as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Hands out at most three bytes per read, so lines straddle reads.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(out.len()).min(3);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn lines_of(text: &str, buf_len: usize) -> Vec<String> {
        let mut lines = Vec::new();
        let mut buf = vec![0u8; buf_len];
        for_each_line(Trickle(text.as_bytes()), &mut buf, |l| {
            lines.push(String::from_utf8(l.to_vec()).unwrap())
        })
        .unwrap();
        lines
    }

    #[test]
    fn lines_are_whole_across_reads_and_long_ones_are_cut() {
        assert_eq!(lines_of("ab\ncdefg\n\nh", 8), ["ab", "cdefg", "", "h"]);
        assert_eq!(
            lines_of("0123456789abc\nnext\n", 8),
            ["01234567", "next"],
            "the overlong line's start, then the line after it"
        );
    }

    /// A synthetic smaps: every shape the reader must tell apart.
    const SMAPS_TEXT: &str = "\
55d989814000-55d98982c000 r-xp 00000000 fe:00 10428685                   /usr/bin/program
Rss:                  96 kB
Anonymous:             0 kB
55d989879000-55d98987b000 rw-p 00062000 fe:00 10428685                   /usr/bin/program
Rss:                   8 kB
Anonymous:             8 kB
AnonHugePages:         0 kB
55d9c7ba5000-55d9cc7f5000 rw-p 00000000 00:00 0                          [heap]
Rss:               40000 kB
Anonymous:         40000 kB
7fc84bfff000-7fc84c000000 ---p 00000000 00:00 0 
Rss:                   0 kB
Anonymous:             0 kB
7fc84c000000-7fc84c021000 rw-p 00000000 00:00 0 
Rss:                 132 kB
Anonymous:           132 kB
7fc84c021000-7fc850000000 ---p 00000000 00:00 0 
Rss:                   0 kB
Anonymous:             0 kB
7fc850000000-7fc850021000 rw-p 00000000 00:00 0 
Rss:                 100 kB
Anonymous:           100 kB
7fc85a7fd000-7fc85a7fe000 ---p 00000000 00:00 0 
Rss:                   0 kB
Anonymous:             0 kB
7fc85a7fe000-7fc85affe000 rw-p 00000000 00:00 0 
Rss:                1040 kB
Anonymous:          1040 kB
VmFlags: rd wr mr mw me ac sd 
7fc85afff000-7fc85b000000 ---p 00000000 00:00 0                          [anon: glibc: guard]
Rss:                   0 kB
Anonymous:             0 kB
7fc85b000000-7fc85b800000 rw-p 00000000 00:00 0                          [anon: glibc: pthread stack: 12]
Rss:                  20 kB
Anonymous:            20 kB
7fc860000000-7fc860001000 ---p 00000000 00:00 0 
Rss:                   0 kB
Anonymous:             0 kB
7fc860002000-7fc860003000 rw-p 00000000 00:00 0 
Rss:                   4 kB
Anonymous:             4 kB
7fc860d83000-7fc860da9000 r--p 00000000 00:05 1234                       /memfd:cache (deleted)
Rss:                 152 kB
Anonymous:             0 kB
7ffc886ad000-7ffc886ce000 rw-p 00000000 00:00 0                          [stack]
Rss:                  44 kB
Anonymous:            44 kB
";

    #[test]
    fn smaps_sums_and_stack_shapes() {
        let dir = std::env::temp_dir().join(format!("heapprof-smaps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("smaps");
        std::fs::write(&path, SMAPS_TEXT).unwrap();
        let resident = read_resident(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let kib = 1024;
        let anonymous = 8 + 40000 + 132 + 100 + 1040 + 20 + 4 + 44;
        assert_eq!(
            resident,
            Resident {
                rss: (96 + 152 + anonymous) * kib,
                anonymous: anonymous * kib,
                // The guarded thread stack, the named one and [stack]; not
                // the arena heap after a small guard (64 MiB-aligned), not
                // the one after a 64 MiB reservation, not the mapping that
                // does not start where the small inaccessible one ends.
                stacks: (1040 + 20 + 44) * kib,
            }
        );
    }

    #[test]
    fn a_missing_smaps_is_an_error() {
        assert!(read_resident(Path::new("/no/such/smaps")).is_err());
    }

    fn resident(rss: u64, anonymous: u64, stacks: u64) -> Resident {
        Resident {
            rss: rss * MIB,
            anonymous: anonymous * MIB,
            stacks: stacks * MIB,
        }
    }

    fn glibc(in_use: u64, mmapped: u64, free: u64) -> Option<MallocTotals> {
        Some(MallocTotals {
            in_use: in_use * MIB,
            mmapped: mmapped * MIB,
            free: free * MIB,
        })
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

    #[test]
    fn classes_add_up_to_rss() {
        let c = classify(40 * MIB, 2 * MIB, resident(120, 110, 4), glibc(40, 10, 30));
        assert_eq!(sum(&c), c.total_bytes);
        assert_eq!(
            [
                c.live_bytes,
                c.profiler_bytes,
                c.heap_overhead_bytes,
                c.heap_free_bytes,
                c.stack_bytes,
                c.file_bytes,
                c.other_bytes,
                c.not_resident_bytes,
            ],
            [40, 2, 8, 30, 4, 10, 26, 0].map(|m| m * MIB)
        );
        assert!(c.allocator_known);
    }

    #[test]
    fn what_is_not_resident_is_taken_from_free_memory_first() {
        // 60 MiB anonymous, 4 of it stacks: 56 for a heap of 40 + 2 + 8
        // and 30 free; 24 of the free memory cannot be resident.
        let c = classify(40 * MIB, 2 * MIB, resident(70, 60, 4), glibc(40, 10, 30));
        assert_eq!(sum(&c), c.total_bytes);
        assert_eq!((c.heap_free_bytes, c.other_bytes), (6 * MIB, 0));
        assert_eq!(c.not_resident_bytes, 24 * MIB);
        // A live heap of untouched calloc blocks, larger than RSS.
        let c = classify(500 * MIB, 0, resident(20, 12, 1), glibc(0, 500, 0));
        assert_eq!((c.live_bytes, c.other_bytes), (11 * MIB, 0));
        assert_eq!(sum(&c), c.total_bytes);
    }

    #[test]
    fn another_allocator_leaves_its_memory_in_other() {
        // jemalloc under heapprof: glibc holds less than the live heap.
        let c = classify(40 * MIB, MIB, resident(100, 90, 2), glibc(1, 0, 3));
        assert!(!c.allocator_known);
        assert_eq!((c.heap_free_bytes, c.heap_overhead_bytes), (0, 0));
        assert_eq!(c.other_bytes, 47 * MIB);
        let c = classify(40 * MIB, MIB, resident(100, 90, 2), None);
        assert_eq!(c.other_bytes, 47 * MIB);
        assert_eq!(sum(&c), c.total_bytes);
    }

    fn classes(
        live: u64,
        free: u64,
        overhead: u64,
        stacks: u64,
        file: u64,
        other: u64,
    ) -> MemoryClasses {
        MemoryClasses {
            total_bytes: (live + free + overhead + stacks + file + other) * MIB,
            live_bytes: live * MIB,
            heap_free_bytes: free * MIB,
            heap_overhead_bytes: overhead * MIB,
            stack_bytes: stacks * MIB,
            file_bytes: file * MIB,
            other_bytes: other * MIB,
            allocator_known: true,
            ..MemoryClasses::default()
        }
    }

    #[test]
    fn the_gap_is_named_by_its_largest_class() {
        assert_eq!(
            classes(39, 66, 5, 4, 4, 2).explain(),
            "RSS 120 MiB is 3.1x the live heap 39 MiB: the other 81 MiB is mostly allocator free memory (66 MiB: fragmentation, or memory not yet returned to the OS), not a leak"
        );
        assert_eq!(
            classes(20, 1, 30, 1, 1, 1).explain(),
            "RSS 54 MiB is 2.7x the live heap 20 MiB: the other 34 MiB is mostly allocator overhead (30 MiB: block headers and size rounding, many small blocks, or malloc outside Rust's allocator), not live data"
        );
        assert_eq!(
            classes(10, 1, 1, 30, 2, 1).explain(),
            "RSS 45 MiB is 4.5x the live heap 10 MiB: the other 35 MiB is mostly thread stacks (30 MiB)"
        );
        let mut unknown = classes(10, 0, 0, 1, 2, 40);
        unknown.allocator_known = false;
        assert!(unknown.explain().ends_with(
            "the other 43 MiB is mostly anonymous memory outside the counted heap (40 MiB: the free memory and overhead of an allocator heapprof cannot read, mmaps, static data)"
        ), "{}", unknown.explain());
    }

    #[test]
    fn a_gap_without_a_majority_class_is_grouped() {
        assert_eq!(
            classes(10, 2, 1, 8, 8, 5).explain(),
            "RSS 34 MiB is 3.4x the live heap 10 MiB: the other 24 MiB is mostly non-heap: thread stacks 8.0 MiB and file mappings 8.0 MiB"
        );
        assert_eq!(
            classes(10, 8, 7, 2, 2, 6).explain(),
            "RSS 35 MiB is 3.5x the live heap 10 MiB: the other 25 MiB is mostly the allocator's: free memory 8.0 MiB and overhead 7.0 MiB, not live data"
        );
        assert_eq!(
            classes(10, 5, 4, 5, 4, 6).explain(),
            "RSS 34 MiB is 3.4x the live heap 10 MiB: the other 24 MiB is spread: heap free 5.0 MiB, heap overhead 4.0 MiB, profiler 0 B, stacks 5.0 MiB, file 4.0 MiB, other 6.0 MiB"
        );
    }

    #[test]
    fn a_heap_that_is_most_of_rss_is_said_so() {
        assert_eq!(
            classes(900, 20, 20, 1, 10, 9).explain(),
            "RSS 960 MiB is 1.1x the live heap 900 MiB: the live heap is nearly all of it"
        );
        assert_eq!(
            classes(0, 0, 0, 1, 3, 0).explain(),
            "RSS 4.0 MiB holds no live heap: the other 4.0 MiB is mostly file-backed memory (3.0 MiB: the executable, libraries, mapped files, shared memory)"
        );
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        let shown: Vec<String> = [812, 96 << 10, 3_355_443, 39 * MIB, 3 << 29]
            .into_iter()
            .map(size)
            .collect();
        assert_eq!(shown, ["812 B", "96 KiB", "3.2 MiB", "39 MiB", "1.5 GiB"]);
    }

    #[test]
    fn the_comment_is_key_value_pairs() {
        let c = classes(1, 2, 3, 4, 5, 6);
        let comment = c.comment();
        let pairs: Vec<(&str, &str)> = comment
            .strip_prefix("heapprof: memory ")
            .unwrap()
            .split(' ')
            .map(|kv| kv.split_once('=').unwrap())
            .collect();
        assert_eq!(pairs[0], ("rss_bytes", "22020096"));
        assert_eq!(pairs[1], ("live_bytes", "1048576"));
        assert_eq!(pairs.last(), Some(&("allocator", "glibc")));
        assert_eq!(pairs.len(), 10);
    }
}
