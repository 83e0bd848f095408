//! The real `go tool pprof` reads heapprof's profiles exactly as it reads a
//! Go heap profile: sample types, period, per-function values (exact at rate
//! 1), the `bytes` label, and the `allocs` flavour's default.

mod common;

use std::hint::black_box;

use common::{go_pprof, go_pprof_ok, scratch_dir, top_row};

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// The tests that set the (process-wide) sampling rate run one at a time.
static RATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

const KEPT: usize = 100;
const KEPT_SIZE: usize = 4096;
const CHURNED: usize = 1000;
const CHURNED_SIZE: usize = 256;
const ZEROED: usize = 50;
/// `vec![0u64; 256]` asks for zeroed memory: `alloc_zeroed`.
const ZEROED_SIZE: usize = 256 * 8;

#[inline(never)]
fn keep_pages(into: &mut Vec<Box<[u8]>>) {
    for i in 0..KEPT {
        into.push(vec![i as u8; KEPT_SIZE].into_boxed_slice());
    }
}

#[inline(never)]
fn churn_buffers() {
    for i in 0..CHURNED {
        black_box(vec![i as u8; CHURNED_SIZE]);
    }
}

#[inline(never)]
fn zeroed_tables(into: &mut Vec<Vec<u64>>) {
    for _ in 0..ZEROED {
        into.push(vec![0u64; ZEROED_SIZE / 8]);
    }
}

/// The build id of the running test binary, as binutils reads it.
fn own_build_id() -> String {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("readelf")
        .arg("-n")
        .arg(&exe)
        .output()
        .expect("readelf (binutils)");
    let notes = String::from_utf8(out.stdout).unwrap();
    let line = notes
        .lines()
        .find(|l| l.contains("Build ID:"))
        .expect("a GNU build id note");
    line.split("Build ID:").nth(1).unwrap().trim().to_owned()
}

#[test]
fn go_tool_pprof_reads_exact_figures_at_rate_1() {
    let _rate = RATE.lock().unwrap_or_else(|p| p.into_inner());
    heapprof::set_sample_rate(1);
    let mut kept = Vec::with_capacity(KEPT);
    keep_pages(&mut kept);
    churn_buffers();
    let mut zeroed = Vec::with_capacity(ZEROED);
    zeroed_tables(&mut zeroed);
    let dir = scratch_dir("pprof-client");
    let heap = dir.join("heap.pb.gz");
    let allocs = dir.join("allocs.pb.gz");
    heapprof::write_heap_profile(&heap).unwrap();
    heapprof::write_allocs_profile(&allocs).unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    let heap = heap.to_str().unwrap();
    let allocs = allocs.to_str().unwrap();

    let raw = go_pprof_ok(&["-raw", heap]);
    assert!(
        raw.contains("alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes"),
        "{raw}"
    );
    assert!(raw.contains("PeriodType: space bytes"), "{raw}");
    assert!(raw.contains("Period: 1\n"), "{raw}");
    assert!(raw.contains(&format!("bytes:[{KEPT_SIZE}]")), "{raw}");
    // The first mapping is this binary, with its build id, and flagged as
    // symbolized (functions, filenames, line numbers, inlined frames).
    let mappings = raw.split("Mappings\n").nth(1).expect("mappings");
    let main = mappings.lines().next().unwrap();
    let exe = std::env::current_exe().unwrap();
    assert!(main.contains(exe.to_str().unwrap()), "{main}");
    assert!(main.contains(&own_build_id()), "{main}");
    assert!(main.ends_with("[FN][FL][LN][IN]"), "{main}");

    let expect = [
        ("alloc_objects", "keep_pages", KEPT),
        ("alloc_space", "keep_pages", KEPT * KEPT_SIZE),
        ("inuse_objects", "keep_pages", KEPT),
        ("inuse_space", "keep_pages", KEPT * KEPT_SIZE),
        ("alloc_objects", "churn_buffers", CHURNED),
        ("alloc_space", "churn_buffers", CHURNED * CHURNED_SIZE),
        ("inuse_objects", "zeroed_tables", ZEROED),
        ("inuse_space", "zeroed_tables", ZEROED * ZEROED_SIZE),
    ];
    for (index, site, value) in expect {
        let top = go_pprof_ok(&[
            "-top",
            "-nodefraction=0",
            "-unit=B",
            &format!("-sample_index={index}"),
            heap,
        ]);
        let (flat, cum) = top_row(&top, site)
            .unwrap_or_else(|| panic!("{site} missing from -top {index}:\n{top}"));
        assert_eq!(
            (flat, cum),
            (value as i64, value as i64),
            "{site} {index}:\n{top}"
        );
    }
    // Freed blocks are not in use: the site is absent from the in-use view.
    let top = go_pprof_ok(&[
        "-top",
        "-nodefraction=0",
        "-unit=B",
        "-sample_index=inuse_space",
        heap,
    ]);
    assert!(top_row(&top, "churn_buffers").is_none(), "{top}");

    // The heap profile shows inuse_space by default, the allocs one alloc_space.
    assert!(go_pprof_ok(&["-top", heap]).contains("Type: inuse_space"));
    assert!(go_pprof_ok(&["-top", allocs]).contains("Type: alloc_space"));

    // -traces names the test's own function as the leaf of the kept blocks,
    // with the allocator's and std's frames hidden above it.
    let traces = go_pprof_ok(&["-traces", "-sample_index=inuse_objects", heap]);
    let blocks: Vec<&str> = traces
        .split("-----------+")
        .filter(|b| b.contains(&format!("bytes:  {}kB", KEPT_SIZE / 1024)))
        .collect();
    let mut objects = 0;
    for block in &blocks {
        // The optimiser may split the loop into several call sites: one
        // trace each, all led by the same function.
        let mut lines = block.lines().skip_while(|l| !l.contains("bytes:")).skip(1);
        let leaf = lines.next().expect("value line");
        let (value, function) = leaf
            .trim()
            .split_once(char::is_whitespace)
            .expect("value and function");
        assert_eq!(function.trim(), "pprof_client::keep_pages", "{block}");
        assert!(
            block.contains("pprof_client::go_tool_pprof_reads_exact_figures_at_rate_1"),
            "{block}"
        );
        objects += value.parse::<usize>().expect("count");
    }
    assert_eq!(objects, KEPT, "{traces}");
    drop((kept, zeroed));
}

#[test]
fn go_tool_pprof_rejects_what_it_should() {
    let dir = scratch_dir("pprof-client-bad");
    let truncated = dir.join("truncated.pb.gz");
    let bytes = heapprof::heap_profile().unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let out = go_pprof(&["-top", truncated.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected EOF"));
}

#[test]
fn allocations_made_while_writing_are_not_profiled() {
    let _rate = RATE.lock().unwrap_or_else(|p| p.into_inner());
    heapprof::set_sample_rate(1);
    let kept = vec![1u8; 1000];
    // The first write symbolizes and allocates plenty; at rate 1 every one
    // of those allocations would be sampled if the guard let it through.
    let _ = heapprof::heap_profile().unwrap();
    let profile = heapprof::heap_profile_data().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    let writer_frames: Vec<&str> = profile
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .filter(|name| {
            [
                "heapprof::profile::",
                "heapprof::symbolize::",
                "heapprof::pprof::",
                "heapprof::encode",
            ]
            .iter()
            .any(|p| name.contains(p))
        })
        .collect();
    assert!(
        writer_frames.is_empty(),
        "the writer's own allocations were profiled: {writer_frames:?}"
    );
    assert!(
        !profile.samples.is_empty(),
        "the test's own allocations are"
    );
    drop(kept);
}
