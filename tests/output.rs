//! Writing profiles safely: errors are returned, never panics; a failed
//! write leaves no temporary file and does not touch an existing profile;
//! a successful one replaces it whole (write to a temporary file, rename).

mod common;

use std::path::Path;

use common::{run_child_test_ok, scratch_dir};

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn unwritable_paths_are_errors_that_name_the_path() {
    let dir = scratch_dir("output-unwritable");
    let missing = dir.join("no-such-dir").join("heap.pb.gz");
    let err = heapprof::write_heap_profile(&missing).unwrap_err();
    assert!(matches!(err, heapprof::Error::Io { .. }));
    assert!(err.to_string().contains("no-such-dir/heap.pb.gz"), "{err}");

    // A directory where the file should go: the rename fails, the temporary
    // file is removed.
    let occupied = dir.join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("inside"), b"x").unwrap();
    assert!(heapprof::write_heap_profile(&occupied).is_err());
    assert_eq!(entries(&dir), ["occupied"]);
    assert_eq!(entries(&occupied), ["inside"]);
}

/// The child of the test below: a disk that takes `HEAPPROF_TEST_LIMIT`
/// bytes per file (writes beyond fail with EFBIG), a write that must fail.
#[test]
#[ignore = "run with HEAPPROF_TEST_PATH set by the full-disk test"]
fn full_disk_child() {
    let path = std::env::var("HEAPPROF_TEST_PATH").unwrap();
    let limit: u64 = std::env::var("HEAPPROF_TEST_LIMIT")
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: plain libc calls on this process's own limits and signals.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    match heapprof::write_heap_profile(&path) {
        Err(heapprof::Error::Io { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EFBIG), "{source}")
        }
        other => panic!("expected EFBIG, got {other:?}"),
    }
}

#[test]
fn a_full_disk_is_an_error_and_leaves_the_old_profile_whole() {
    let dir = scratch_dir("output-full");
    let path = dir.join("heap.pb.gz");
    heapprof::write_heap_profile(&path).unwrap();
    let old = std::fs::read(&path).unwrap();
    // Any heap profile is longer: its sample types alone take more.
    let limit = "64";
    assert!(old.len() > 128, "{} bytes", old.len());
    run_child_test_ok(
        "full_disk_child",
        &[
            ("HEAPPROF_TEST_PATH", path.to_str().unwrap()),
            ("HEAPPROF_TEST_LIMIT", limit),
        ],
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        old,
        "the old profile is untouched"
    );
    assert_eq!(entries(&dir), ["heap.pb.gz"], "no temporary file is left");

    // A write that succeeds replaces it whole.
    heapprof::write_allocs_profile(&path).unwrap();
    let new = heapprof::pprof::Profile::decode(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(new.default_sample_type, "alloc_space");
}
