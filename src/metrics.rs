//! Named metrics, the `runtime/metrics` of heapprof: a self-describing
//! catalog ([`all`]), reads of just the metrics asked for ([`read`]), and
//! the Prometheus text exposition of all of them ([`write_prometheus`]).
//!
//! The `/memory/classes/...` metrics are [`crate::memory_classes`], read
//! once per [`read`] that asks for any of them: that read walks the
//! process's page tables (about 25 µs per MiB resident and 10 µs per
//! mapping), where the other metrics cost microseconds.
//!
//! ```
//! #[global_allocator]
//! static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
//!
//! use heapprof::metrics::{self, Sample, Value};
//!
//! let mut samples = [Sample::new("/heap/live:bytes"), Sample::new("/no/such:thing")];
//! metrics::read(&mut samples);
//! assert!(matches!(samples[0].value, Value::U64(n) if n > 0));
//! assert_eq!(samples[1].value, Value::Unsupported);
//!
//! let mut text = Vec::new();
//! metrics::write_prometheus(&mut text).unwrap();
//! let text = String::from_utf8(text).unwrap();
//! assert!(text.contains("# TYPE heapprof_heap_allocs_bytes_total counter"));
//! ```

use std::io::{self, Write};

use crate::core::{sampler, table};
use crate::{memory, stats, MemoryClasses, Stats};

/// Whether a metric only grows or goes up and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A cumulative total since the program started.
    Counter,
    /// A value at the moment of reading.
    Gauge,
}

/// A metric in the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Description {
    /// `/subsystem/name:unit`, as in Go's `runtime/metrics`.
    pub name: &'static str,
    /// The unit: the part of the name after `:`.
    pub unit: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// What it measures, in one sentence.
    pub description: &'static str,
}

/// A metric's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// An integer value.
    U64(u64),
    /// The name is not in the catalog.
    Unsupported,
}

/// A metric to read: set `name`, call [`read`], find `value` filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample<'a> {
    /// The metric's name, from [`all`].
    pub name: &'a str,
    /// Its value after [`read`].
    pub value: Value,
}

impl<'a> Sample<'a> {
    /// A sample of the metric `name`, not yet read.
    pub fn new(name: &'a str) -> Self {
        Sample {
            name,
            value: Value::Unsupported,
        }
    }
}

/// Where a metric's value comes from.
struct Metric {
    description: Description,
    source: Source,
}

#[derive(Clone, Copy)]
enum Source {
    Stats(fn(&Stats) -> u64),
    Table(fn((u64, u64, u64)) -> u64),
    /// 0 for every class where `/proc/self/smaps` cannot be read.
    Classes(fn(&MemoryClasses) -> u64),
    Rate,
}

macro_rules! metric {
    ($name:literal, $unit:literal, $kind:ident, $source:expr, $description:literal) => {
        Metric {
            description: Description {
                name: concat!($name, ":", $unit),
                unit: $unit,
                kind: Kind::$kind,
                description: $description,
            },
            source: $source,
        }
    };
}

static CATALOG: [Metric; 22] = [
    metric!(
        "/heap/live",
        "bytes",
        Gauge,
        Source::Stats(|s| s.live_bytes),
        "Bytes the program allocated through the global allocator and has not freed."
    ),
    metric!(
        "/heap/live",
        "objects",
        Gauge,
        Source::Stats(|s| s.live_objects),
        "Blocks the program allocated through the global allocator and has not freed."
    ),
    metric!(
        "/heap/peak",
        "bytes",
        Gauge,
        Source::Stats(|s| s.peak_live_bytes),
        "The highest live heap bytes seen since the program started."
    ),
    metric!(
        "/heap/allocs",
        "bytes",
        Counter,
        Source::Stats(|s| s.allocated_bytes),
        "Bytes allocated since the program started."
    ),
    metric!(
        "/heap/allocs",
        "objects",
        Counter,
        Source::Stats(|s| s.allocations),
        "Allocations since the program started."
    ),
    metric!(
        "/heap/frees",
        "bytes",
        Counter,
        Source::Stats(|s| s.freed_bytes),
        "Bytes freed since the program started."
    ),
    metric!(
        "/heap/frees",
        "objects",
        Counter,
        Source::Stats(|s| s.frees),
        "Frees since the program started."
    ),
    metric!(
        "/process/resident",
        "bytes",
        Gauge,
        Source::Stats(|s| s.resident_bytes),
        "Resident set size of the process, from the operating system."
    ),
    metric!(
        "/process/virtual",
        "bytes",
        Gauge,
        Source::Stats(|s| s.virtual_bytes),
        "Virtual memory size of the process, from the operating system."
    ),
    metric!(
        "/profile/rate",
        "bytes",
        Gauge,
        Source::Rate,
        "Mean bytes allocated between two heap profile samples (0: off, 1: every allocation)."
    ),
    metric!(
        "/profile/samples",
        "samples",
        Counter,
        Source::Table(|(samples, _, _)| samples),
        "Sampled allocations recorded in the heap profile."
    ),
    metric!(
        "/profile/buckets",
        "buckets",
        Gauge,
        Source::Table(|(_, buckets, _)| buckets),
        "Distinct (stack, size class) buckets in the heap profile table."
    ),
    metric!(
        "/profile/dropped",
        "samples",
        Counter,
        Source::Table(|(_, _, dropped)| dropped),
        "Samples dropped because the heap profile table was full."
    ),
    metric!(
        "/profile/heap",
        "bytes",
        Gauge,
        Source::Stats(|s| s.profiler_bytes),
        "Bytes heapprof itself holds (its tables, caches, the mapped levels of its live-block map and profile writes under way), not in /heap/live:bytes."
    ),
    metric!(
        "/memory/classes/heap/live",
        "bytes",
        Gauge,
        Source::Classes(|c| c.live_bytes),
        "Resident memory of the program's live heap: /heap/live:bytes, as far as resident anonymous memory holds it."
    ),
    metric!(
        "/memory/classes/heap/overhead",
        "bytes",
        Gauge,
        Source::Classes(|c| c.heap_overhead_bytes),
        "Resident memory the allocator has in use beyond the live heap and heapprof's: headers, rounding, malloc outside Rust's allocator (0 if the allocator is unknown)."
    ),
    metric!(
        "/memory/classes/heap/free",
        "bytes",
        Gauge,
        Source::Classes(|c| c.heap_free_bytes),
        "Resident memory the allocator keeps free and has not returned to the system (0 if the allocator is unknown)."
    ),
    metric!(
        "/memory/classes/profiler",
        "bytes",
        Gauge,
        Source::Classes(|c| c.profiler_bytes),
        "Resident memory of heapprof's own heap: /profile/heap:bytes, as far as resident anonymous memory holds it."
    ),
    metric!(
        "/memory/classes/stacks",
        "bytes",
        Gauge,
        Source::Classes(|c| c.stack_bytes),
        "Resident memory of thread stacks: the main thread's and every guarded anonymous mapping of a thread's shape."
    ),
    metric!(
        "/memory/classes/file",
        "bytes",
        Gauge,
        Source::Classes(|c| c.file_bytes),
        "Resident memory backed by files or shared memory: the executable, libraries, mapped files."
    ),
    metric!(
        "/memory/classes/other",
        "bytes",
        Gauge,
        Source::Classes(|c| c.other_bytes),
        "Resident anonymous memory in no other class: the program's own mmaps, static data, an unknown allocator's free memory."
    ),
    metric!(
        "/memory/classes/total",
        "bytes",
        Gauge,
        Source::Classes(|c| c.total_bytes),
        "Resident set size, from /proc/self/smaps: the sum of every /memory/classes metric."
    ),
];

/// Every metric heapprof has, in a fixed order.
pub fn all() -> impl ExactSizeIterator<Item = Description> {
    CATALOG.iter().map(|m| m.description)
}

/// Fills in the value of each sample; names not in the catalog get
/// [`Value::Unsupported`]. Reads only the sources the names need.
pub fn read(samples: &mut [Sample<'_>]) {
    let mut stats_now = None;
    let mut table_now = None;
    let mut classes_now = None;
    for sample in samples {
        sample.value =
            match CATALOG.iter().find(|m| m.description.name == sample.name) {
                None => Value::Unsupported,
                Some(metric) => Value::U64(match metric.source {
                    Source::Stats(get) => get(stats_now.get_or_insert_with(stats::stats)),
                    Source::Table(get) => get(*table_now.get_or_insert_with(table_summary)),
                    Source::Classes(get) => get(classes_now
                        .get_or_insert_with(|| memory::memory_classes().unwrap_or_default())),
                    Source::Rate => sampler::rate(),
                }),
            };
    }
}

fn table_summary() -> (u64, u64, u64) {
    let _guard = crate::core::guard::Guard::enter();
    table::lock().summary()
}

/// The Prometheus name of a metric: `/heap/allocs:bytes` (a counter) is
/// `heapprof_heap_allocs_bytes_total`.
pub fn prometheus_name(description: &Description) -> String {
    let mut name = String::from("heapprof");
    for c in description.name.chars() {
        name.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    if description.kind == Kind::Counter {
        name.push_str("_total");
    }
    name
}

/// Writes every metric in the Prometheus text exposition format (version
/// 0.0.4), with `# HELP` and `# TYPE` lines.
pub fn write_prometheus(w: &mut impl Write) -> io::Result<()> {
    let mut samples: Vec<Sample<'_>> = CATALOG
        .iter()
        .map(|m| Sample::new(m.description.name))
        .collect();
    read(&mut samples);
    for (metric, sample) in CATALOG.iter().zip(&samples) {
        let d = &metric.description;
        let name = prometheus_name(d);
        let kind = match d.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        writeln!(w, "# HELP {name} {}", d.description)?;
        writeln!(w, "# TYPE {name} {kind}")?;
        if let Value::U64(v) = sample.value {
            writeln!(w, "{name} {v}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut names: Vec<_> = all().map(|d| d.name).collect();
        for d in all() {
            assert!(d.name.starts_with('/'), "{}", d.name);
            assert!(d.name.ends_with(&format!(":{}", d.unit)), "{}", d.name);
            let prom = prometheus_name(&d);
            assert!(
                prom.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{prom}"
            );
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all().len());
    }

    /// One read of the class metrics is one reading of the classes: they
    /// add up to the total, and the total is the RSS.
    #[test]
    fn memory_classes_add_up_in_one_read() {
        let names: Vec<&str> = all()
            .map(|d| d.name)
            .filter(|n| n.starts_with("/memory/classes/"))
            .collect();
        assert_eq!(names.len(), 8);
        let mut samples: Vec<Sample<'_>> = names.iter().map(|n| Sample::new(n)).collect();
        read(&mut samples);
        let value = |name: &str| match samples.iter().find(|s| s.name == name).unwrap().value {
            Value::U64(v) => v,
            Value::Unsupported => panic!("{name} unsupported"),
        };
        let total = value("/memory/classes/total:bytes");
        let parts: u64 = names
            .iter()
            .filter(|n| !n.ends_with("/total:bytes"))
            .map(|n| value(n))
            .sum();
        assert_eq!(parts, total);
        assert!(total > 1 << 20, "an RSS of {total} bytes");
        let live = all()
            .find(|d| d.name == "/memory/classes/heap/live:bytes")
            .unwrap();
        assert_eq!(
            prometheus_name(&live),
            "heapprof_memory_classes_heap_live_bytes"
        );
    }
}
