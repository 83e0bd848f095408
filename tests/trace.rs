//! The trace line (`HEAPPROF=trace=...`): this test binary, run again with
//! `HEAPPROF` set, holds a known heap, pauses, then grows it in one named
//! function, writing markers to stderr between phases; the lines the trace
//! thread wrote in between are checked against what the child measured.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

const PREFIX: &str = "heapprof trace: ";

/// 16 MiB in 1 MiB blocks, held through the pause.
#[inline(never)]
fn held_steady(into: &mut Vec<Vec<u8>>) {
    for _ in 0..16 {
        into.push(vec![1u8; 1 << 20]);
    }
}

/// One more MiB: the site the trace must name while the heap grows. At
/// the default rate a 1 MiB block is sampled with probability 86%.
#[inline(never)]
fn grows_here(into: &mut Vec<Vec<u8>>) {
    into.push(vec![2u8; 1 << 20]);
}

/// The phases, each announced on stderr (unbuffered, so the markers and the
/// trace lines are in the pipe in the order they were written): start;
/// 16 MiB held, then `steady live=N` with `stats().live_bytes` and 2.5 s
/// without allocating; `growing`, 32 MiB in 1 MiB blocks over 1.6 s; then
/// `done after_ms=N`, the time since start.
#[test]
#[ignore = "run with HEAPPROF set by trace_lines_follow_the_heap"]
fn tracing_child() {
    let began = Instant::now();
    eprintln!("trace-child: start");
    let mut steady = Vec::with_capacity(16);
    held_steady(&mut steady);
    // Room for every block up front: growing never reallocates the list.
    let mut growing = Vec::with_capacity(32);
    let live = heapprof::stats().live_bytes;
    // Neither the marker nor sleeping allocates: the heap is still `live`
    // until the next marker.
    eprintln!("trace-child: steady live={live}");
    std::thread::sleep(Duration::from_millis(2500));
    eprintln!("trace-child: growing");
    for _ in 0..32 {
        grows_here(&mut growing);
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("trace-child: done after_ms={}", began.elapsed().as_millis());
    black_box((steady, growing));
}

/// The value of `key` in a trace line (`top`'s runs to the end of the line).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let body = line.strip_prefix(PREFIX).expect("a trace line");
    if key == "top" {
        return body.split_once(" top=").expect("top=").1;
    }
    body.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// The stderr lines after the marker that starts with `from` and before the
/// one that starts with `to`.
fn between<'a>(lines: &[&'a str], from: &str, to: &str) -> Vec<&'a str> {
    let start = lines.iter().position(|l| l.starts_with(from)).unwrap() + 1;
    let end = lines.iter().position(|l| l.starts_with(to)).unwrap();
    lines[start..end].to_vec()
}

#[test]
fn trace_lines_follow_the_heap() {
    let began = Instant::now();
    let out = common::run_child_test_ok("tracing_child", &[("HEAPPROF", "trace=200ms")]);
    let child_ran = began.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("heapprof: warning"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let traces: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with(PREFIX))
        .collect();

    // About one line per 200 ms of the child's run: never more than its
    // whole life allows (the thread waits an interval before each line),
    // and not far fewer unless the machine stalls for seconds.
    let after_ms: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("trace-child: done after_ms="))
        .expect("the child finished")
        .parse()
        .unwrap();
    let most = child_ran.as_millis() as usize / 200 + 1;
    let fewest = (after_ms as usize / 200 / 4).max(3);
    assert!(
        (fewest..=most).contains(&traces.len()),
        "{} lines in {after_ms} ms (expected {fewest} to {most}):\n{stderr}",
        traces.len()
    );
    // Times since start only go forward.
    let times: Vec<f64> = traces
        .iter()
        .map(|l| field(l, "t").parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");

    // The pause. The first line written in it may have read the counters
    // before the marker, but the thread reads for its next line only after
    // writing the one before: from the second line on, every line was read
    // and written between the markers, while the heap held still.
    let live: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("trace-child: steady live="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(live >= 16 << 20, "{live}");
    let paused = between(&lines, "trace-child: steady", "trace-child: growing");
    assert!(paused.len() >= 2, "too few lines in 2.5 s:\n{stderr}");
    for line in &paused[1..] {
        assert_eq!(field(line, "live"), live.to_string(), "{line}");
        assert!(field(line, "rss").parse::<u64>().unwrap() > live, "{line}");
    }
    if paused.len() >= 3 {
        assert_eq!(field(paused[2], "dlive"), "+0", "{}", paused[2]);
    }

    // The growth: whichever site a line read during it names is the one
    // growing, and some line names it.
    let grew = between(&lines, "trace-child: growing", "trace-child: done");
    let named: Vec<&str> = grew
        .iter()
        .skip(1)
        .filter(|l| field(l, "top") != "-")
        .copied()
        .collect();
    assert!(!named.is_empty(), "no site named while growing:\n{stderr}");
    for line in named {
        assert!(field(line, "top").ends_with("::grows_here"), "{line}");
        assert!(field(line, "grew").parse::<i64>().unwrap() > 0, "{line}");
        assert!(
            field(line, "alloc_rate").parse::<u64>().unwrap() > 0,
            "{line}"
        );
    }
}

/// Sleeps half a second: long enough for two trace lines at 200 ms.
#[test]
#[ignore = "run with a bad HEAPPROF by bad_trace_values_warn_and_trace_nothing"]
fn quiet_child() {
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn bad_trace_values_warn_and_trace_nothing() {
    for (spec, value) in [("trace=abc", "abc"), ("trace=0", "0")] {
        let out = common::run_child_test_ok("quiet_child", &[("HEAPPROF", spec)]);
        assert_eq!(
            common::heapprof_lines(&out),
            [format!(
                "heapprof: warning: HEAPPROF: trace: bad value \"{value}\" (expected a duration above zero such as 10s, 1m or 500ms); no trace lines"
            )],
            "{spec}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains(PREFIX), "{stderr}");
    }
    // A good value in the same run: lines, which the bad ones above lacked.
    let out = common::run_child_test_ok("quiet_child", &[("HEAPPROF", "trace=200ms")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(PREFIX));
}

/// Allocates 8 bytes, kept, at the end of one of `2^bits` distinct stacks,
/// `path`'s bits choosing at each level whether the recursion passes
/// through [`one_bit`].
#[inline(never)]
fn bucket_at(path: u32, bits: u32) -> Box<[u8]> {
    let block = if bits == 0 {
        vec![0u8; 8].into_boxed_slice()
    } else if path & 1 == 0 {
        bucket_at(black_box(path >> 1), bits - 1)
    } else {
        one_bit(black_box(path >> 1), bits - 1)
    };
    black_box(block)
}

#[inline(never)]
fn one_bit(path: u32, bits: u32) -> Box<[u8]> {
    black_box(bucket_at(path, bits))
}

/// 10,000 buckets at rate 1, then 2 s still, then 2 s growing one site:
/// prints the bucket count for the measurement below.
#[test]
#[ignore = "run by measure_line_cost"]
fn many_buckets_child() {
    let kept: Vec<Box<[u8]>> = (0..10_000).map(|path| bucket_at(path, 14)).collect();
    let mut buckets = [heapprof::metrics::Sample::new("/profile/buckets:buckets")];
    heapprof::metrics::read(&mut buckets);
    eprintln!("cost-child: buckets={:?}", buckets[0].value);
    eprintln!("cost-child: still");
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("cost-child: growing");
    let mut growing = Vec::with_capacity(40);
    for _ in 0..40 {
        grows_here(&mut growing);
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("cost-child: done");
    black_box((kept, growing));
}

/// What one line costs with 10,000 buckets, from the lines' own `cost_us`:
/// `cargo test --release --test trace -- --ignored measure_line_cost --nocapture`.
#[test]
#[ignore = "a measurement: prints figures for the README"]
fn measure_line_cost() {
    let out =
        common::run_child_test_ok("many_buckets_child", &[("HEAPPROF", "trace=200ms,rate=1")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    println!("{}", lines.iter().find(|l| l.contains("buckets=")).unwrap());
    let costs = |lines: &[&str]| {
        let mut us: Vec<u64> = lines
            .iter()
            .skip(1)
            .map(|l| field(l, "cost_us").parse().unwrap())
            .collect();
        us.sort_unstable();
        us
    };
    let still = costs(&between(&lines, "cost-child: still", "cost-child: growing"));
    let grew = between(&lines, "cost-child: growing", "cost-child: done");
    let tops: Vec<&str> = grew.iter().map(|l| field(l, "top")).collect();
    let growing = costs(&grew);
    println!("no site grew: cost_us {still:?}");
    println!("one site grew (named from the cache after its first line): cost_us {growing:?}");
    println!("tops while growing: {tops:?}");
    println!("first line naming a site (the debug-info parse):");
    for line in lines.iter().filter(|l| l.starts_with(PREFIX)).take(3) {
        println!("  {line}");
    }
}
