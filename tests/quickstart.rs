//! `examples/quickstart.rs` says what is true: each figure its profile
//! estimates lies within the expected error it prints beside it. And what
//! the README says of disassembly holds: the real `go tool pprof -disasm`
//! finds the example's function in a build that is not position-independent,
//! and finds nothing in the default (PIE) build, whose addresses its object
//! reader does not relocate.
//!
//! The example is built here as a user builds it (`cargo`, release), in a
//! target directory of its own: the one running these tests is locked.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use common::{go_pprof, go_pprof_ok, scratch_dir};

/// Builds of the example share one target directory, one at a time.
static BUILD: Mutex<()> = Mutex::new(());
/// Each build once per run: a copy is never overwritten while a test runs it.
static PIE: OnceLock<PathBuf> = OnceLock::new();
static FIXED_ADDRESSES: OnceLock<PathBuf> = OnceLock::new();

/// The quickstart example built in release, as a position-independent
/// executable (Rust's default on Linux) or not (`-C relocation-model=static`),
/// copied to a path of its own.
fn quickstart(pie: bool) -> &'static Path {
    let cell = if pie { &PIE } else { &FIXED_ADDRESSES };
    cell.get_or_init(|| build(pie))
}

fn build(pie: bool) -> PathBuf {
    let _build = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("quickstart-target");
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .args(["rustc", "--quiet", "--release", "--example", "quickstart"])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    if !pie {
        // For this crate only: the dependencies' PIC code links into a
        // fixed-address executable as well.
        cargo.args(["--", "-C", "relocation-model=static"]);
    }
    let out = cargo.output().expect("run cargo");
    assert!(
        out.status.success(),
        "cargo rustc --example quickstart failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = target.join("release/examples/quickstart");
    let copy = target.join(if pie {
        "quickstart-pie"
    } else {
        "quickstart-static"
    });
    std::fs::copy(&built, &copy).expect("copy the example");
    copy
}

/// Runs the example in `dir`, where it writes `heap.pb.gz`; returns what it
/// printed.
fn run(binary: &Path, dir: &Path) -> String {
    let out = Command::new(binary)
        .current_dir(dir)
        .env_remove("HEAPPROF")
        .output()
        .expect("run the example");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    assert!(
        out.status.success(),
        "the example failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("heap.pb.gz").exists(), "no heap.pb.gz:\n{stdout}");
    stdout
}

/// A site's line: `SITE: EXACT MiB VIEW; the profile estimates ESTIMATE MiB
/// (expected error ±ERROR%)`, as (exact MiB, estimated MiB, error %).
fn site_line(output: &str, site: &str) -> (f64, f64, f64) {
    let line = output
        .lines()
        .find(|l| l.starts_with(&format!("{site}: ")))
        .unwrap_or_else(|| panic!("no line for {site}:\n{output}"));
    let number = |after: &str, before: &str| -> f64 {
        let rest = &line[line.find(after).unwrap_or_else(|| panic!("{line}")) + after.len()..];
        rest[..rest.find(before).unwrap_or_else(|| panic!("{line}"))]
            .parse()
            .unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    (
        number(": ", " MiB"),
        number("estimates ", " MiB"),
        number("±", "%"),
    )
}

#[test]
fn the_quickstart_figures_lie_within_the_error_it_prints() {
    let dir = scratch_dir("quickstart-figures");
    let output = run(quickstart(true), &dir);
    println!("{output}");
    // (site, what its doc comment says in MiB)
    for (site, claimed) in [("load_records", 8.0), ("render_lines", 66.5)] {
        let (exact, estimated, error) = site_line(&output, site);
        assert!(
            (exact - claimed).abs() <= 0.025 * claimed,
            "{site} is said to be {claimed} MiB, counted {exact} MiB"
        );
        assert!(
            error < 3.0,
            "{site}: an expected error of {error}% is not a figure right within a few percent"
        );
        // Five standard deviations: a false alarm about once in 1.7 million
        // runs, while an estimate off by its stated error's worth fails.
        let off = 100.0 * (estimated / exact - 1.0);
        assert!(
            off.abs() <= 5.0 * error,
            "{site}: estimated {estimated} MiB, exactly {exact} MiB: {off:+.1}%, \
             beyond 5 times the stated ±{error}%"
        );
    }
}

#[test]
fn go_pprof_disassembles_the_quickstart_built_at_fixed_addresses() {
    let dir = scratch_dir("quickstart-disasm-static");
    let binary = quickstart(false);
    run(binary, &dir);
    let profile = dir.join("heap.pb.gz");
    let disasm = go_pprof_ok(&[
        "-disasm=load_records",
        binary.to_str().unwrap(),
        profile.to_str().unwrap(),
    ]);
    let routine = disasm
        .lines()
        .find(|l| l.starts_with("ROUTINE") && l.contains("load_records"))
        .unwrap_or_else(|| panic!("no load_records routine:\n{disasm}"));
    // The routine's samples land on its instructions: the ones that call
    // into the allocator carry the 8 MiB it keeps.
    assert!(
        disasm.lines().any(|l| l.contains("alloc_at_sample_point")
            && l.split_whitespace().next().is_some_and(|flat| flat != ".")),
        "{routine}: no samples on its calls into the allocator:\n{disasm}"
    );
}

#[test]
fn go_pprof_finds_nothing_to_disassemble_in_a_position_independent_build() {
    let dir = scratch_dir("quickstart-disasm-pie");
    let binary = quickstart(true);
    run(binary, &dir);
    let profile = dir.join("heap.pb.gz");
    let out = go_pprof(&[
        "-disasm=load_records",
        binary.to_str().unwrap(),
        profile.to_str().unwrap(),
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // go tool pprof's object reader takes every address as a link-time one
    // (Go's own -buildmode=pie profiles fail the same way). If this starts
    // to find the routine, the README's note on disassembly is out of date.
    assert!(
        said.contains("no matches found for regexp: load_records"),
        "go tool pprof now disassembles PIE builds: update the README\n{said}"
    );
}
