//! Exact mode (rate 1) holds every live block, however many: a million and
//! more live at once are all recorded and none dropped, the profile's in-use
//! and allocated figures equal the workload's to the byte (sizes spread over
//! many size classes too), the map's extra levels count as heapprof's own
//! memory, and `go tool pprof` reads the same figures.

mod common;

use common::{dropped_samples, go_pprof_ok, scratch_dir, site_totals, top_row};
use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// Eight times the first level of the live-block map.
const LIVE: usize = 1_000_000;
/// Blocks of spread sizes held beside them.
const SPREAD: usize = 100_000;

/// Each box is one 8-byte heap block: the blocks are the point.
#[allow(clippy::vec_box)]
#[inline(never)]
fn hold_a_million(into: &mut Vec<Box<u64>>) {
    for i in 0..LIVE {
        into.push(Box::new(i as u64));
    }
}

/// Blocks of 1 to 5,000 bytes, every size 20 times; returns their bytes.
#[inline(never)]
fn hold_spread_sizes(into: &mut Vec<Vec<u8>>) -> u64 {
    let mut bytes = 0;
    for i in 0..SPREAD {
        let size = 1 + (i * 7919) % 5000;
        into.push(Vec::with_capacity(size));
        bytes += size as u64;
    }
    bytes
}

#[test]
#[allow(clippy::vec_box)]
fn a_million_live_blocks_are_all_recorded_exactly() {
    heapprof::set_sample_rate(1);
    let mut boxes = Vec::with_capacity(LIVE);
    let mut spread = Vec::with_capacity(SPREAD);
    hold_a_million(&mut boxes);
    let spread_bytes = hold_spread_sizes(&mut spread);
    let dir = scratch_dir("exact_mode");
    let path = dir.join("million.pb.gz");
    heapprof::write_heap_profile(&path).unwrap();
    let held = heapprof::stats();
    let profile = Profile::decode(&std::fs::read(&path).unwrap()).unwrap();

    assert_eq!(dropped_samples(&profile), 0, "{:?}", profile.comments);
    let live = LIVE as i64;
    assert_eq!(
        site_totals(&profile, "hold_a_million", Some(8)),
        [live, live * 8, live, live * 8]
    );
    let (n, b) = (SPREAD as i64, spread_bytes as i64);
    assert_eq!(
        site_totals(&profile, "hold_spread_sizes", None),
        [n, b, n, b]
    );
    // Every block past the first level's 131,072 slots has a 16-byte slot
    // in a mapped level, which is heapprof's memory, not the program's.
    let least_mapped = ((LIVE + SPREAD - (1 << 17)) * 16) as u64;
    assert!(
        held.profiler_bytes >= least_mapped,
        "profiler_bytes {} < {least_mapped}",
        held.profiler_bytes
    );

    let top = go_pprof_ok(&["-top", "-unit=B", "-nodecount=1000", path.to_str().unwrap()]);
    assert_eq!(
        top_row(&top, "hold_a_million").map(|(flat, _)| flat),
        Some(live * 8),
        "{top}"
    );

    // Every block is found again when freed, in whichever level it went.
    drop(boxes);
    drop(spread);
    let profile = heapprof::heap_profile_data().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    assert_eq!(
        site_totals(&profile, "hold_a_million", Some(8)),
        [live, live * 8, 0, 0]
    );
    assert_eq!(
        site_totals(&profile, "hold_spread_sizes", None),
        [n, b, 0, 0]
    );
}
