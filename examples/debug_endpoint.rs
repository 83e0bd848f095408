//! A long-running program with heapprof's debug endpoint: a cache that leaks
//! slowly, the way a service grows until it is killed.
//!
//! ```sh
//! cargo run --release --features http --example debug_endpoint        # serves 127.0.0.1:6060 for 5 minutes
//! go tool pprof -top http://127.0.0.1:6060/debug/pprof/heap
//! go tool pprof -top http://127.0.0.1:6060/debug/pprof/allocs?seconds=10
//! curl -s http://127.0.0.1:6060/debug/mem
//! curl -s http://127.0.0.1:6060/metrics
//! ```
//!
//! Arguments: `[ADDR] [SECONDS]` (default `127.0.0.1:6060 300`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// Keeps every response it ever rendered: the leak.
#[inline(never)]
fn remember(cache: &mut HashMap<u64, String>, key: u64) {
    cache.insert(key, format!("response {key}: {}", "x".repeat(1000)));
}

/// Short-lived work: allocated, then freed.
#[inline(never)]
fn handle_request(key: u64) -> usize {
    let body: Vec<String> = (0..50).map(|i| format!("{key}-{i}")).collect();
    body.concat().len()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:6060".to_owned());
    let seconds: u64 = match args.next() {
        Some(s) => s.parse()?,
        None => 300,
    };
    heapprof::Config::new().peak(true).start()?;
    let bound = heapprof::serve(&addr)?;
    println!("serving http://{bound}/debug/pprof/ for {seconds} s");
    println!("  go tool pprof -top http://{bound}/debug/pprof/heap");

    let mut cache = HashMap::new();
    let start = Instant::now();
    let mut key = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..100 {
            key += 1;
            handle_request(key);
            if key % 10 == 0 {
                remember(&mut cache, key);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("{:?}", heapprof::stats());
    println!("the peak profile is written at exit: heapprof-<pid>-<time>.peak.pb.gz");
    Ok(())
}
