//! The trace line, heapprof's `GODEBUG=gctrace=1`: one line on stderr every
//! interval, from a background thread of heapprof's own, saying where the
//! heap stands and which site grew most since the line before.
//!
//! ```text
//! heapprof trace: t=12.003 live=75521662 dlive=+1048576 alloc_rate=8388608 rss=162426880 free=42564896 cost_us=840 grew=+1153434 top=myservice::cache::insert
//! ```
//!
//! The exact figures come from the counters of [`crate::stats`], RSS and
//! allocator free memory from [`crate::memory_classes`]; the top site is an
//! estimate from the sampled table. Finding it costs one copy of the
//! buckets under the table lock (as every profile write takes it; the
//! allocation fast path never does) and a pass over them summing in-use
//! bytes per stack, compared with the same sums of the line before: only the
//! winner's stack is symbolized, through the symbolizer's cache, so a line
//! costs time linear in the buckets and no debug-info parse unless a new
//! site wins (measured: 1 to 2.3 ms a line with 10,000 buckets, the README
//! says how). The thread is heapprof's own work: nothing it allocates counts
//! as the program's, and it holds the reentrancy guard throughout, so
//! nothing it does is sampled.

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::core::counters;
use crate::core::guard::Guard;
use crate::core::table::{self, Bucket};
use crate::pprof::{Location, Profile, Sample, ValueType};
use crate::{profile, symbolize, unwind, Error};

/// What every trace line begins with, for `grep`.
pub(crate) const PREFIX: &str = "heapprof trace:";

/// Whether the trace thread runs; there is one however often it is started.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// The interval the thread waits between lines, in nanoseconds: a later
/// start changes it for the running thread.
static INTERVAL_NANOS: AtomicU64 = AtomicU64::new(0);

/// Starts writing a trace line every `interval` (or, if the thread runs
/// already, changes its interval).
pub(crate) fn start(interval: Duration) -> Result<(), Error> {
    if interval.is_zero() {
        return Err(Error::Config(
            "trace: the interval must be above zero; no trace".to_owned(),
        ));
    }
    let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    INTERVAL_NANOS.store(nanos, Ordering::Relaxed);
    if RUNNING.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    counters::spawn_own_thread("heapprof-trace", || run).map_err(|e| {
        RUNNING.store(false, Ordering::Release);
        Error::Config(format!("trace: cannot start its thread: {e}"))
    })
}

fn interval() -> Duration {
    Duration::from_nanos(INTERVAL_NANOS.load(Ordering::Relaxed))
}

/// The trace thread: a line every interval, on a fixed schedule from its
/// start (a slow line delays the next, never all that follow).
fn run() {
    let _guard = Guard::enter();
    let mut tracer = Tracer::new();
    let mut next = Instant::now();
    loop {
        next += interval();
        let now = Instant::now();
        match next.checked_duration_since(now) {
            Some(wait) => std::thread::sleep(wait),
            // Late by more than a line: start the schedule again from now.
            None => next = now,
        }
        let line = tracer.line();
        // A closed or full stderr is no reason to stop the program, nor to
        // panic on this thread: the line is lost.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// The exact counters at one moment.
#[derive(Clone, Copy)]
struct Reading {
    at: Instant,
    live: u64,
    allocated: u64,
}

impl Reading {
    fn now() -> Reading {
        let totals = counters::totals();
        Reading {
            at: Instant::now(),
            live: totals.live_bytes(),
            allocated: totals.alloc_bytes,
        }
    }
}

/// What the line before left: its reading and the sampled in-use bytes
/// per stack (indexed by the table's stack index) it saw.
struct Tracer {
    start: Instant,
    last: Reading,
    inuse: Vec<i64>,
    /// The buffer the next line's sums go to (swapped with `inuse`, so a
    /// line allocates only when the table grew).
    spare: Vec<i64>,
}

impl Tracer {
    fn new() -> Tracer {
        let last = Reading::now();
        let mut inuse = Vec::new();
        if let Ok(buckets) = table::lock().copy_buckets() {
            inuse_by_stack(&buckets, &mut inuse);
        }
        Tracer {
            start: last.at,
            last,
            inuse,
            spare: Vec::new(),
        }
    }

    /// Reads everything and makes the next line.
    fn line(&mut self) -> TraceLine {
        let began = Instant::now();
        let now = Reading::now();
        let top = self.top_site();
        let (rss, free) = match crate::memory_classes() {
            Ok(classes) => (
                Some(classes.total_bytes),
                classes.allocator_known.then_some(classes.heap_free_bytes),
            ),
            Err(_) => (Some(crate::stats().resident_bytes).filter(|&r| r > 0), None),
        };
        let seconds = now.at.saturating_duration_since(self.last.at).as_secs_f64();
        let allocated = now.allocated.wrapping_sub(self.last.allocated);
        let line = TraceLine {
            since_start: now.at.saturating_duration_since(self.start),
            live: now.live,
            live_change: now.live as i64 - self.last.live as i64,
            alloc_rate: if seconds > 0.0 {
                (allocated as f64 / seconds) as u64
            } else {
                0
            },
            rss,
            allocator_free: free,
            cost: began.elapsed(),
            top,
        };
        self.last = now;
        line
    }

    /// The stack whose sampled in-use bytes grew most since the line
    /// before, named by its leaf function.
    fn top_site(&mut self) -> Top {
        let Ok(buckets) = table::lock().copy_buckets() else {
            return Top::Unknown;
        };
        inuse_by_stack(&buckets, &mut self.spare);
        drop(buckets);
        std::mem::swap(&mut self.inuse, &mut self.spare);
        match top_growth(&self.inuse, &self.spare) {
            None => Top::Nothing,
            Some((stack, grew)) => match leaf_name(stack) {
                Some(name) => Top::Site { grew, name },
                None => Top::Unknown,
            },
        }
    }
}

/// Sums the estimated (unsampled) in-use bytes of `buckets` per stack into
/// `out`, indexed by stack.
fn inuse_by_stack(buckets: &[Bucket], out: &mut Vec<i64>) {
    out.clear();
    for bucket in buckets {
        let stack = bucket.stack as usize;
        if out.len() <= stack {
            if out.try_reserve(stack + 1 - out.len()).is_err() {
                return;
            }
            out.resize(stack + 1, 0);
        }
        let (_, bytes) = profile::scale_heap_sample(
            bucket.allocs as i64 - bucket.frees as i64,
            bucket.alloc_bytes.wrapping_sub(bucket.free_bytes) as i64,
            bucket.rate,
        );
        out[stack] += bytes;
    }
}

/// The stack whose sum grew most from `before` to `now`, and by how much;
/// `None` if none grew. Ties go to the lower stack index (the older stack).
fn top_growth(now: &[i64], before: &[i64]) -> Option<(u32, i64)> {
    let mut best: Option<(u32, i64)> = None;
    for (stack, &bytes) in now.iter().enumerate() {
        let grew = bytes - before.get(stack).copied().unwrap_or(0);
        if grew > 0 && best.is_none_or(|(_, most)| grew > most) {
            best = Some((stack as u32, grew));
        }
    }
    best
}

/// The name of the function at the leaf of stack `stack`, after the
/// allocation machinery is hidden as in every profile; its address if it
/// has no name. Always symbolized in process, whatever the profiles' mode:
/// a trace line is read now, by a person.
fn leaf_name(stack: u32) -> Option<String> {
    let frames: Vec<usize> = {
        let table = table::lock();
        let frames = table.stack(stack)?;
        let mut copy = Vec::new();
        copy.try_reserve_exact(frames.len()).ok()?;
        copy.extend_from_slice(frames);
        copy
    };
    let locations: Vec<Location> = frames
        .iter()
        .filter(|&&address| address != unwind::TRUNCATED)
        .map(|&address| Location {
            // The call instruction, not the return address after it, as
            // profiles have it (the resolver adds the one back).
            address: address as u64 - 1,
            ..Location::default()
        })
        .collect();
    let raw = Profile {
        sample_types: vec![ValueType::new("inuse_space", "bytes")],
        samples: vec![Sample {
            locations: (0..locations.len()).collect(),
            values: vec![1],
            labels: Vec::new(),
        }],
        locations,
        ..Profile::default()
    };
    let named = symbolize::finish(raw, symbolize::Mode::InProcess);
    let location = &named.locations[*named.samples.first()?.locations.first()?];
    match location.lines.first() {
        Some(line) if !named.functions[line.function].name.is_empty() => {
            Some(named.functions[line.function].name.clone())
        }
        _ => Some(format!("{:#x}", location.address)),
    }
}

/// The site a line names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Top {
    /// No stack's sampled in-use bytes grew.
    Nothing,
    /// The table could not be copied (memory is short).
    Unknown,
    /// The stack that grew most: its leaf function, and its estimated
    /// growth in bytes.
    Site { grew: i64, name: String },
}

/// One trace line's figures; `Display` writes the documented format.
#[derive(Clone, Debug, PartialEq)]
struct TraceLine {
    since_start: Duration,
    live: u64,
    live_change: i64,
    alloc_rate: u64,
    rss: Option<u64>,
    allocator_free: Option<u64>,
    cost: Duration,
    top: Top,
}

/// A figure, or `?` when it is not known.
struct OrUnknown(Option<u64>);

impl fmt::Display for OrUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value}"),
            None => f.write_str("?"),
        }
    }
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX} t={}.{:03} live={} dlive={:+} alloc_rate={} rss={} free={} cost_us={} ",
            self.since_start.as_secs(),
            self.since_start.subsec_millis(),
            self.live,
            self.live_change,
            self.alloc_rate,
            OrUnknown(self.rss),
            OrUnknown(self.allocator_free),
            self.cost.as_micros(),
        )?;
        // The name is last: a Rust name may hold spaces (`<T as Trait>`),
        // so its value runs to the end of the line.
        match &self.top {
            Top::Nothing => f.write_str("grew=0 top=-"),
            Top::Unknown => f.write_str("grew=? top=?"),
            Top::Site { grew, name } => write!(f, "grew={grew:+} top={name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(top: Top) -> TraceLine {
        TraceLine {
            since_start: Duration::from_millis(12_003),
            live: 75_521_662,
            live_change: 1_048_576,
            alloc_rate: 8_388_608,
            rss: Some(162_426_880),
            allocator_free: Some(42_564_896),
            cost: Duration::from_micros(840),
            top,
        }
    }

    #[test]
    fn a_line_is_its_prefix_then_fixed_keys_in_order() {
        let site = Top::Site {
            grew: 1_153_434,
            name: "myservice::cache::insert".to_owned(),
        };
        assert_eq!(
            line(site).to_string(),
            "heapprof trace: t=12.003 live=75521662 dlive=+1048576 alloc_rate=8388608 \
             rss=162426880 free=42564896 cost_us=840 grew=+1153434 top=myservice::cache::insert"
        );
    }

    #[test]
    fn unknown_figures_are_question_marks_and_shrinking_is_signed() {
        let mut shrunk = line(Top::Nothing);
        shrunk.live_change = -4096;
        shrunk.rss = None;
        shrunk.allocator_free = None;
        shrunk.since_start = Duration::from_millis(200);
        assert_eq!(
            shrunk.to_string(),
            "heapprof trace: t=0.200 live=75521662 dlive=-4096 alloc_rate=8388608 \
             rss=? free=? cost_us=840 grew=0 top=-"
        );
        let mut same = line(Top::Unknown);
        same.live_change = 0;
        assert!(
            same.to_string().contains(" dlive=+0 "),
            "{}",
            same.to_string()
        );
        assert!(same.to_string().ends_with(" grew=? top=?"));
    }

    #[test]
    fn names_with_spaces_run_to_the_end_of_the_line() {
        let name = "<app::Cache as core::clone::Clone>::clone";
        let text = line(Top::Site {
            grew: 64,
            name: name.to_owned(),
        })
        .to_string();
        assert_eq!(text.split_once(" top=").unwrap().1, name);
    }

    fn bucket(stack: u32, allocs: u64, alloc_bytes: u64, frees: u64, free_bytes: u64) -> Bucket {
        Bucket {
            stack,
            size_class: table::size_class(alloc_bytes / allocs.max(1)),
            labels: 0,
            rate: 1,
            allocs,
            alloc_bytes,
            frees,
            free_bytes,
        }
    }

    #[test]
    fn in_use_is_summed_per_stack_and_the_most_grown_wins() {
        let mut before = Vec::new();
        inuse_by_stack(
            &[bucket(0, 4, 400, 0, 0), bucket(2, 1, 1000, 0, 0)],
            &mut before,
        );
        assert_eq!(before, [400, 0, 1000]);
        let mut now = Vec::new();
        inuse_by_stack(
            &[
                bucket(0, 10, 1000, 0, 0),   // +600
                bucket(2, 2, 2000, 2, 2000), // -1000: freed everything
                bucket(3, 1, 50, 0, 0),      // new: +50
                bucket(0, 1, 100, 0, 0),     // a second size class of stack 0: +100
            ],
            &mut now,
        );
        assert_eq!(now, [1100, 0, 0, 50]);
        assert_eq!(top_growth(&now, &before), Some((0, 700)));
        assert_eq!(top_growth(&before, &now), Some((2, 1000)));
        assert_eq!(top_growth(&now, &now), None, "nothing grew");
        assert_eq!(top_growth(&[5, 5], &[]), Some((0, 5)), "ties: the older");
    }

    #[test]
    fn sampled_buckets_are_unsampled_as_profiles_are() {
        let mut sampled = Bucket {
            rate: 512 * 1024,
            ..bucket(0, 1, 1024, 0, 0)
        };
        let mut out = Vec::new();
        inuse_by_stack(&[sampled], &mut out);
        let weight = 1.0 / (1.0 - (-1024.0f64 / 524_288.0).exp());
        assert_eq!(out, [(1024.0 * weight) as i64]);
        sampled.frees = 1;
        sampled.free_bytes = 1024;
        inuse_by_stack(&[sampled], &mut out);
        assert_eq!(out, [0]);
    }

    #[test]
    fn a_zero_interval_is_refused() {
        let err = start(Duration::ZERO).unwrap_err();
        assert_eq!(
            err.to_string(),
            "trace: the interval must be above zero; no trace"
        );
        assert!(!RUNNING.load(Ordering::Relaxed));
    }
}
