//! `HEAPPROF` in a program whose global allocator is not heapprof's: one
//! warning, nothing else (this test binary does not install the profiler).

mod common;

#[test]
#[ignore = "run with HEAPPROF set by the test below"]
fn idle_child() {}

#[test]
fn heapprof_set_without_the_profiler_is_one_warning() {
    let dir = common::scratch_dir("env-not-installed");
    let spec = format!("at_exit=1,dump={}/x.pb.gz", dir.display());
    let out = common::run_child_test_ok("idle_child", &[("HEAPPROF", &spec)]);
    let warnings = common::heapprof_lines(&out);
    assert_eq!(
        warnings,
        ["heapprof: warning: HEAPPROF is set, but heapprof::Profiler is not this program's global allocator; ignoring HEAPPROF"]
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no dump");
}
