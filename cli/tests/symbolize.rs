//! Offline symbolization: a program writes an address-only profile and an
//! in-process symbolized one from the same samples; `heapprof symbolize`
//! with the binary must turn the first into the second, as `go tool pprof`
//! shows them. Also from a stripped binary with a separate debug file, and
//! a clear error for the wrong binary.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use heapprof::pprof::Profile;
use heapprof::{Config, Symbolize};

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

const BIN: &str = env!("CARGO_BIN_EXE_heapprof");

/// A site whose blocks stay in use.
#[inline(never)]
fn symbolize_kept_site(into: &mut Vec<Vec<u8>>) {
    for i in 0..1000 {
        into.push(vec![i as u8; 100]);
    }
}

/// A site whose strings are built through inlined iterator code.
#[inline(never)]
fn symbolize_churn_site() -> usize {
    (0..500).map(|i| format!("line {i:>6}").len()).sum()
}

/// Writes `offline.pb.gz` and `inprocess.pb.gz` into `HEAPPROF_TEST_OUT`
/// from the same samples (every allocation: rate 1).
#[test]
#[ignore = "run in a child process by the tests below"]
fn writing_child() {
    heapprof::set_sample_rate(1);
    let dir = PathBuf::from(std::env::var("HEAPPROF_TEST_OUT").unwrap());
    let (offline, inprocess) = (dir.join("offline.pb.gz"), dir.join("inprocess.pb.gz"));
    let mut kept = Vec::with_capacity(1000);
    symbolize_kept_site(&mut kept);
    assert!(symbolize_churn_site() > 0);
    // Nothing allocates between the two writes: they show the same samples.
    Config::new().symbolize(Symbolize::Offline).start().unwrap();
    heapprof::write_heap_profile(&offline).unwrap();
    Config::new()
        .symbolize(Symbolize::InProcess)
        .start()
        .unwrap();
    heapprof::write_heap_profile(&inprocess).unwrap();
    drop(kept);
}

fn run_child(exe: &Path, out: &Path) {
    let status = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "writing_child",
            "--test-threads=1",
            "--quiet",
        ])
        .env("HEAPPROF_TEST_OUT", out)
        .status()
        .unwrap();
    assert!(status.success(), "{} child failed", exe.display());
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn heapprof(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn go_top(profile: &Path, sample_index: &str) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof", "-top", "-unit=B", "-nodecount=10000"])
        .arg(format!("-sample_index={sample_index}"))
        .arg(profile)
        .output()
        .expect("go tool pprof (install golang-go)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::table(&String::from_utf8(out.stdout).unwrap()).to_owned()
}

fn decode(path: &Path) -> Profile {
    Profile::decode(&std::fs::read(path).unwrap()).unwrap()
}

/// Runs `heapprof symbolize DIR/offline.pb.gz ARGS -o DIR/symbolized.pb.gz`.
fn symbolize(dir: &Path, args: &[&str]) -> PathBuf {
    let offline = dir.join("offline.pb.gz");
    let symbolized = dir.join("symbolized.pb.gz");
    let mut all = vec!["symbolize", offline.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", symbolized.to_str().unwrap()]);
    let out = heapprof(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    symbolized
}

/// Every (function, file, line) the profile's locations name.
fn lines(profile: &Profile) -> BTreeSet<(String, String, i64)> {
    profile
        .locations
        .iter()
        .flat_map(|l| &l.lines)
        .map(|line| {
            let f = &profile.functions[line.function];
            (f.name.clone(), f.filename.clone(), line.line)
        })
        .collect()
}

#[test]
fn offline_symbolization_gives_the_in_process_profile() {
    let dir = scratch("symbolize-same");
    let exe = std::env::current_exe().unwrap();
    run_child(&exe, &dir);
    let offline = decode(&dir.join("offline.pb.gz"));
    assert!(offline.functions.iter().all(|f| f.name == "[truncated]"));
    assert!(offline.mappings.iter().all(|m| !m.has_functions));
    assert!(!offline.mappings[0].build_id.is_empty());

    let symbolized = symbolize(&dir, &["--binary", exe.to_str().unwrap()]);

    let inprocess = dir.join("inprocess.pb.gz");
    assert_eq!(lines(&decode(&symbolized)), lines(&decode(&inprocess)));
    for index in ["inuse_space", "alloc_objects"] {
        let want = go_top(&inprocess, index);
        assert!(want.contains("symbolize_kept_site"), "{want}");
        if index == "alloc_objects" {
            assert!(want.contains("symbolize_churn_site"), "{want}");
        }
        assert_eq!(go_top(&symbolized, index), want, "{index}");
    }
}

#[test]
fn a_stripped_binary_is_symbolized_from_its_debug_file() {
    let dir = scratch("symbolize-stripped");
    let exe = std::env::current_exe().unwrap();
    let debug_dir = dir.join("debug");
    std::fs::create_dir_all(&debug_dir).unwrap();
    let debug_file = debug_dir.join("tests.debug");
    let stripped = dir.join("stripped");
    for args in [
        vec![
            "--only-keep-debug",
            exe.to_str().unwrap(),
            debug_file.to_str().unwrap(),
        ],
        vec![
            "--strip-debug",
            exe.to_str().unwrap(),
            stripped.to_str().unwrap(),
        ],
    ] {
        let status = Command::new("objcopy")
            .args(&args)
            .status()
            .expect("objcopy (binutils)");
        assert!(status.success(), "objcopy {args:?}");
    }
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    run_child(&stripped, &out_dir);

    // In process, without debug info: names from the symbol table.
    let inprocess = decode(&out_dir.join("inprocess.pb.gz"));
    let site = |p: &Profile| {
        p.functions
            .iter()
            .find(|f| f.name.ends_with("::symbolize_kept_site"))
            .cloned()
    };
    let from_symtab = site(&inprocess).expect("symbol-table name in process");
    assert_eq!(from_symtab.filename, "", "no debug info, no file");

    // Offline, with the separate debug file: files, lines, inlined frames.
    let symbolized = symbolize(
        &out_dir,
        &[
            "--binary",
            stripped.to_str().unwrap(),
            "--debug-dir",
            debug_dir.to_str().unwrap(),
        ],
    );
    let symbolized_profile = decode(&symbolized);
    let named = site(&symbolized_profile).expect("site symbolized");
    assert!(named.filename.ends_with("tests/symbolize.rs"), "{named:?}");

    // The same functions and lines as the unstripped binary in process.
    let reference = scratch("symbolize-reference");
    run_child(&exe, &reference);
    let want = lines(&decode(&reference.join("inprocess.pb.gz")));
    let got = lines(&symbolized_profile);
    for entry in want
        .iter()
        .filter(|(name, _, _)| name.contains("symbolize_"))
    {
        assert!(got.contains(entry), "{entry:?} missing from {got:?}");
    }
    let top = go_top(&symbolized, "inuse_space");
    let reference_top = go_top(&reference.join("inprocess.pb.gz"), "inuse_space");
    // The flat bytes of the site (the totals, and so the percentages,
    // differ a little between two runs of the test harness).
    let row = |top: &str| {
        top.lines()
            .find(|l| l.ends_with("::symbolize_kept_site"))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_owned)
    };
    assert_eq!(row(&top), row(&reference_top));
    assert!(row(&top).is_some(), "{top}");
}

#[test]
fn the_wrong_binary_is_a_clear_error() {
    let dir = scratch("symbolize-mismatch");
    run_child(&std::env::current_exe().unwrap(), &dir);
    let out = heapprof(&[
        "symbolize",
        dir.join("offline.pb.gz").to_str().unwrap(),
        "--binary",
        BIN,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("does not match the profile's main binary"),
        "{stderr}"
    );
    assert!(!dir.join("offline.symbolized.pb.gz").exists());
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let dir = scratch("symbolize-bad");
    run_child(&std::env::current_exe().unwrap(), &dir);
    let offline = dir.join("offline.pb.gz");
    let offline = offline.to_str().unwrap();
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a binary").unwrap();
    let text = text.to_str().unwrap();
    for (args, message) in [
        (
            vec!["symbolize", "/no/such.pb.gz"],
            "/no/such.pb.gz: No such file",
        ),
        (
            vec!["symbolize", offline, "--binary", "/no/such"],
            "cannot read /no/such",
        ),
        (
            vec!["symbolize", offline, "--binary", text],
            "not an object file",
        ),
        (
            vec!["symbolize", offline, "--debug-dir", "/no/such"],
            "cannot read debug directory",
        ),
        (
            vec!["symbolize", offline, "-o", "/no/such/x.pb.gz"],
            "cannot write /no/such/x.pb.gz",
        ),
    ] {
        let out = heapprof(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn reports_symbolize_address_only_profiles_from_binaries_with_their_build_ids() {
    let dir = scratch("symbolize-auto");
    let exe = std::env::current_exe().unwrap();
    run_child(&exe, &dir);
    let offline = dir.join("offline.pb.gz");
    let offline = offline.to_str().unwrap();
    let binary = exe.to_str().unwrap();
    let symbolized = symbolize(&dir, &["--binary", binary]);
    for command in ["top", "folded"] {
        let auto = heapprof(&[command, offline]);
        let stderr = String::from_utf8_lossy(&auto.stderr);
        assert!(auto.status.success(), "{stderr}");
        assert!(
            stderr.lines().count() == 1
                && stderr.contains("symbolized")
                && stderr
                    .contains("from the binaries on this machine with the profile's build ids"),
            "{stderr}"
        );
        // The same report as from the profile symbolized by hand.
        let by_hand = heapprof(&[command, symbolized.to_str().unwrap()]);
        assert_eq!(
            String::from_utf8_lossy(&auto.stdout),
            String::from_utf8_lossy(&by_hand.stdout),
            "{command}"
        );
        assert!(String::from_utf8_lossy(&auto.stdout).contains("symbolize_kept_site"));
    }
    // Another build at the same paths: addresses stay, and one line says
    // how to symbolize them.
    let mut elsewhere = decode(&dir.join("offline.pb.gz"));
    for mapping in &mut elsewhere.mappings {
        mapping.build_id = "00ff00ff".to_owned();
    }
    let elsewhere_path = dir.join("elsewhere.pb.gz");
    std::fs::write(&elsewhere_path, elsewhere.encode()).unwrap();
    let out = heapprof(&["top", elsewhere_path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.lines().count() == 1
            && stderr.contains("addresses only")
            && stderr.contains("heapprof symbolize")
            && stderr.contains("--binary PATH"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("symbolize_kept_site"));
}
