//! `at_signal=1`: a child stopped by SIGTERM still leaves its exit dump, and
//! the signal then does what it would have done without heapprof: the
//! default kills the child by SIGTERM, a handler the program installed
//! before heapprof started still runs. Without the key, nothing is
//! installed.

mod common;

use std::ffi::CString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// 4 MiB in 64 KiB blocks, kept until the signal comes.
#[inline(never)]
fn kept_until_signal() -> Vec<Vec<u8>> {
    let mut kept = Vec::with_capacity(64);
    for i in 0..64u8 {
        kept.push(vec![i; 64 << 10]);
    }
    kept
}

/// Whether SIGTERM and SIGINT have their default disposition.
fn default_dispositions() -> bool {
    [libc::SIGTERM, libc::SIGINT].iter().all(|&signal| {
        // SAFETY: a null new action only reads the disposition into `old`.
        let old = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut old), 0);
            old
        };
        old.sa_sigaction == libc::SIG_DFL
    })
}

/// Keeps its heap, says it is ready (a file named by
/// `HEAPPROF_TEST_READY`) and waits 60 s for the signal.
fn keep_heap_and_wait() {
    let kept = kept_until_signal();
    std::fs::write(std::env::var("HEAPPROF_TEST_READY").unwrap(), b"ready").unwrap();
    std::thread::sleep(Duration::from_secs(60));
    drop(kept);
}

/// Configured by `HEAPPROF`: waits to be killed.
#[test]
#[ignore = "run with HEAPPROF set by the at_signal tests"]
fn env_child() {
    let installed = !default_dispositions();
    assert_eq!(
        installed,
        std::env::var("HEAPPROF_TEST_INSTALLED").unwrap() == "1",
        "heapprof's handler installed: {installed}"
    );
    if installed {
        keep_heap_and_wait();
    }
}

/// The marker path and the dump the program's handler looks for, as C
/// strings made before the handler can run (it may not allocate).
static HANDLER_PATHS: OnceLock<(CString, CString)> = OnceLock::new();

/// The program's own SIGTERM handler (async-signal-safe calls only): writes
/// the marker file, saying whether heapprof's dump was already on disk,
/// and exits with status 3.
extern "C" fn program_handler(_signal: libc::c_int) {
    let Some((marker, dump)) = HANDLER_PATHS.get() else {
        return;
    };
    // SAFETY: open, access, write, close and _exit are async-signal-safe;
    // the paths are NUL-terminated strings that live for the program.
    unsafe {
        let fd = libc::open(
            marker.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o644,
        );
        let said: &[u8] = if libc::access(dump.as_ptr(), libc::F_OK) == 0 {
            b"dump-present"
        } else {
            b"dump-missing"
        };
        libc::write(fd, said.as_ptr().cast(), said.len());
        libc::close(fd);
        libc::_exit(3);
    }
}

/// Installs its own SIGTERM handler, then starts heapprof from code with
/// `at_signal`, then waits to be killed.
#[test]
#[ignore = "run by a_handler_installed_before_heapprof_still_runs"]
fn own_handler_child() {
    let dir = PathBuf::from(std::env::var("HEAPPROF_TEST_DIR").unwrap());
    let c = |p: PathBuf| CString::new(p.into_os_string().into_encoded_bytes()).unwrap();
    HANDLER_PATHS
        .set((c(dir.join("marker")), c(dir.join("heap.pb.gz"))))
        .unwrap();
    // SAFETY: the action is fully initialized before sigaction reads it;
    // the handler is an `extern "C" fn(c_int)` living for the program.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = program_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut()),
            0
        );
    }
    heapprof::Config::new()
        .rate(64 << 10)
        .at_signal(true)
        .at_exit(true)
        .dump(dir.join("heap.pb.gz").to_str().unwrap())
        .start()
        .unwrap();
    keep_heap_and_wait();
}

/// Runs child test `name` with `env`, waits (60 s at most) for its ready
/// file, sends it SIGTERM and returns how it ended and its stderr.
fn terminate_when_ready(name: &str, dir: &Path, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let ready = dir.join("ready");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", name, "--nocapture"])
        .env_remove("HEAPPROF")
        .env("HEAPPROF_TEST_READY", &ready)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() && Instant::now() < deadline {
        assert!(child.try_wait().unwrap().is_none(), "child ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ready.exists(), "the child never got ready");
    // SAFETY: kill has no preconditions; the pid is our unreaped child's.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The dump decodes and holds the heap the child kept.
fn assert_dump_holds_the_kept_heap(dump: &Path) {
    let bytes =
        std::fs::read(dump).unwrap_or_else(|e| panic!("no exit dump {}: {e}", dump.display()));
    let profile = Profile::decode(&bytes).unwrap();
    let in_use = common::site_totals(&profile, "kept_until_signal", None)[3];
    // 4 MiB kept, sampled every 64 KiB on average: the estimate is far
    // above 1 MiB unless the heap is missing.
    assert!(in_use > 1 << 20, "{in_use} in-use bytes at the kept site");
}

#[test]
fn sigterm_writes_the_exit_dump_then_kills_by_sigterm() {
    let dir = common::scratch_dir("at-signal-default");
    let dump = dir.join("heap.pb.gz");
    let spec = format!("rate=64k,at_signal=1,at_exit=1,dump={}", dump.display());
    let (status, stderr) = terminate_when_ready(
        "env_child",
        &dir,
        &[("HEAPPROF", &spec), ("HEAPPROF_TEST_INSTALLED", "1")],
    );
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}:\n{stderr}");
    assert_dump_holds_the_kept_heap(&dump);
}

#[test]
fn a_handler_installed_before_heapprof_still_runs() {
    let dir = common::scratch_dir("at-signal-handler");
    let (status, stderr) = terminate_when_ready(
        "own_handler_child",
        &dir,
        &[("HEAPPROF_TEST_DIR", dir.to_str().unwrap())],
    );
    assert_eq!(status.code(), Some(3), "{status}:\n{stderr}");
    let marker = std::fs::read_to_string(dir.join("marker")).unwrap();
    assert_eq!(marker, "dump-present", "the handler ran before the dump");
    assert_dump_holds_the_kept_heap(&dir.join("heap.pb.gz"));
}

#[test]
fn without_the_key_nothing_is_installed() {
    let dir = common::scratch_dir("at-signal-off");
    let spec = format!("at_exit=1,peak=1,dump={}/heap.pb.gz", dir.display());
    common::run_child_test_ok(
        "env_child",
        &[("HEAPPROF", &spec), ("HEAPPROF_TEST_INSTALLED", "0")],
    );
    // And the key without anything to write installs nothing either.
    let spec = format!("at_signal=1,dump={}/heap.pb.gz", dir.display());
    common::run_child_test_ok(
        "env_child",
        &[("HEAPPROF", &spec), ("HEAPPROF_TEST_INSTALLED", "0")],
    );
}
