//! Profiles from code: the builder gives what the shorthands give, and its
//! options do what they say.

mod common;

use heapprof::{Kind, Symbolize};

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

#[inline(never)]
fn kept_by_builder_test() -> Vec<Vec<u8>> {
    let mut kept = Vec::with_capacity(64);
    for _ in 0..64 {
        kept.push(vec![1u8; 64 << 10]);
    }
    kept
}

#[test]
fn the_builder_makes_each_kind_and_honours_its_options() {
    heapprof::set_sample_rate(1);
    let kept = kept_by_builder_test();

    let heap = heapprof::profile(Kind::Heap).build().unwrap();
    assert_eq!(heap.data().default_sample_type, "");
    let inuse = common::site_totals(heap.data(), "kept_by_builder_test", Some(64 << 10))[3];
    assert_eq!(inuse, 64 * (64 << 10));
    let allocs = heapprof::profile(Kind::Allocs).build().unwrap();
    assert_eq!(allocs.data().default_sample_type, "alloc_space");

    // Offline: addresses and mappings only, whatever the configuration says.
    let raw = heapprof::profile(Kind::Heap)
        .symbolize(Symbolize::Offline)
        .comment("from the builder test")
        .build()
        .unwrap();
    assert!(raw.data().functions.is_empty());
    assert!(raw.data().locations.iter().all(|l| l.lines.is_empty()));
    assert!(!raw.data().mappings.is_empty());
    assert!(raw
        .data()
        .comments
        .contains(&"from the builder test".to_owned()));

    // Encoded and written, it reads back as the same profile.
    let dir = common::scratch_dir("builder");
    let path = dir.join("heap.pb.gz");
    heap.write(&path).unwrap();
    let back = heapprof::pprof::Profile::decode(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(&back, heap.data());
    assert_eq!(
        heapprof::pprof::Profile::decode(&heap.encode()).unwrap(),
        back
    );
    let err = heap.write(dir.join("no/such/dir/heap.pb.gz")).unwrap_err();
    assert!(matches!(err, heapprof::Error::Io { .. }), "{err}");

    // Peak tracking was never turned on in this process.
    let err = heapprof::profile(Kind::Peak).build().unwrap_err();
    assert!(err.to_string().contains("peak tracking is off"), "{err}");
    drop(kept);
}
