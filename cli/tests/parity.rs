//! `heapprof top` against `go tool pprof -top` on profiles from other
//! producers (Go, Java, Node, Python, Ruby, .NET, pprof-rs, eBPF agents,
//! gperftools: the corpus in `../shared/pprof-corpus`, whose README says
//! where each comes from): the outputs must be equal, header included.
//! pprof runs as a user runs it, in its default mode (which simplifies
//! names that look like demangled C++), with a binary path that holds
//! nothing, so that no binary found on this machine changes its answer.
//! Fails without Go: it never skips.

mod common;

use common::{both_in_zone, corpus_files, corpus_profiles, data};

use std::path::PathBuf;
use std::process::Command;

use heapprof::pprof::{Function, Line, Location, Profile, Sample, ValueType};
use regex::Regex;

fn stdout(what: &str, command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}); for go: apt-get install golang-go"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `go tool pprof -top` with `args`, as it shows `file` with no binaries.
fn pprof_top(file: &str, args: &[&str]) -> String {
    let mut command = Command::new("go");
    command
        .args(["tool", "pprof", "-top"])
        .args(args)
        .arg(file)
        .env("PPROF_BINARY_PATH", "/nonexistent")
        .env("PPROF_TMPDIR", std::env::temp_dir());
    stdout(&format!("go tool pprof {args:?} {file}"), &mut command)
}

fn heapprof_top(file: &str, args: &[&str]) -> String {
    heapprof(&["top", file], args)
}

/// `heapprof` with `command` and then `args`.
fn heapprof(command: &[&str], args: &[&str]) -> String {
    let mut heapprof = Command::new(env!("CARGO_BIN_EXE_heapprof"));
    heapprof.args(command).args(args);
    stdout(&format!("heapprof {command:?} {args:?}"), &mut heapprof)
}

/// Both tables of `file` (pprof's flags, then heapprof's), asserted equal;
/// returns the table.
fn same_table(file: &str, pprof_args: &[&str], heapprof_args: &[&str]) -> String {
    let theirs = pprof_top(file, pprof_args);
    let ours = heapprof_top(file, heapprof_args);
    same(&ours, &theirs, pprof_args, heapprof_args, file)
}

/// `heapprof diff BASE NEW` and `go tool pprof -base BASE NEW`, asserted
/// equal; returns the table.
fn same_diff(base: &str, new: &str) -> String {
    let theirs = pprof_top(new, &["-base", base]);
    let ours = heapprof(&["diff", base, new], &[]);
    same(&ours, &theirs, &["-base", base], &[], new)
}

fn same(
    ours: &str,
    theirs: &str,
    pprof_args: &[&str],
    heapprof_args: &[&str],
    file: &str,
) -> String {
    assert_eq!(
        ours, theirs,
        "heapprof {heapprof_args:?} vs go tool pprof {pprof_args:?} on {file}"
    );
    common::table(theirs).to_owned()
}

#[test]
fn frames_without_function_names_are_rows_named_after_their_mapping() {
    // (file, a row that only an unsymbolized frame can give)
    let cases = [
        // gperftools without symbols: every frame is an object file's.
        (
            "google-pprof-converted/profile/testdata/cppbench.cpu.pb.gz",
            "[cppbench_server_main]",
        ),
        // No mapping at all.
        (
            "google-pprof-converted/profile/testdata/go.crc32.cpu.pb.gz",
            "<unknown>",
        ),
        // A stripped Go binary.
        (
            "parca/pkg/symbolizer/testdata/normal-cpu.stripped.pprof",
            "[pprof-example-app-go]",
        ),
        // Node: JavaScript frames named, native ones in their objects.
        ("parca/pkg/normalizer/node-profile.pb.gz", "[libc-2.31.so]"),
    ];
    for (name, row) in cases {
        let table = same_table(&data(name), &[], &[]);
        assert!(
            table.lines().any(|l| l.ends_with(&format!("  {row}"))),
            "{name}: no {row} row in\n{table}"
        );
    }
}

#[test]
fn time_units_scale_as_in_pprof() {
    // Java's contention delays are in microseconds: 1900us, not 1900.
    let table = same_table(
        &data("google-pprof-converted/profile/testdata/java.contention.pb.gz"),
        &[],
        &[],
    );
    assert!(
        table.starts_with("Showing nodes accounting for 1900us,"),
        "{table}"
    );
    // Every unit pprof scales, and some it does not, in profiles of two
    // functions whose values are far apart (one unit for the table) or
    // close (another).
    let units = [
        "microseconds",
        "us",
        "μs",
        "milliseconds",
        "ms",
        "seconds",
        "hours",
        "nanoseconds",
        "kilobytes",
        "megabytes",
        "samples",
        "objects",
        "count",
        "gcu",
        "milligcu",
    ];
    for unit in units {
        for values in [[1900, 5], [1900, 1_200_000], [3_600, 7_200_000]] {
            let path = one_profile(unit, &values);
            same_table(&path, &[], &[]);
        }
    }
}

/// A profile in `unit` with a function `f{i}` of each value, written to
/// the test's scratch directory.
fn one_profile(unit: &str, values: &[i64]) -> String {
    let stacks: Vec<(Vec<String>, i64)> = values
        .iter()
        .enumerate()
        .map(|(i, &value)| (vec![format!("f{i}")], value))
        .collect();
    let name = format!("{}-{}.pb.gz", unit.replace('μ', "micro-"), values[1]);
    write_profile(&name, unit, &stacks)
}

/// A profile in `unit` of these stacks (root first), in the scratch
/// directory under a name made of its stacks.
fn profile_of(unit: &str, stacks: &[(&[&str], i64)]) -> String {
    let stacks: Vec<(Vec<String>, i64)> = stacks
        .iter()
        .map(|(frames, value)| (frames.iter().map(|f| f.to_string()).collect(), *value))
        .collect();
    let name: Vec<String> = stacks
        .iter()
        .map(|(f, v)| format!("{}={v}", f.join(".")))
        .collect();
    write_profile(&format!("{}.pb.gz", name.join("+")), unit, &stacks)
}

/// Writes a profile of `stacks` (root first) to `name` in the scratch
/// directory, a function and a location per distinct name.
fn write_profile(name: &str, unit: &str, stacks: &[(Vec<String>, i64)]) -> String {
    let mut profile = Profile {
        sample_types: vec![ValueType::new("delay", unit)],
        ..Profile::default()
    };
    for (frames, value) in stacks {
        let locations = frames.iter().rev().map(|frame| {
            match profile.functions.iter().position(|f| &f.name == frame) {
                Some(i) => i,
                None => {
                    let function = profile.functions.len();
                    profile.functions.push(Function {
                        name: frame.clone(),
                        ..Function::default()
                    });
                    profile.locations.push(Location {
                        lines: vec![Line { function, line: 0 }],
                        ..Location::default()
                    });
                    function
                }
            }
        });
        profile.samples.push(Sample {
            locations: locations.collect(),
            values: vec![*value],
            labels: vec![],
        });
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("parity");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, profile.encode()).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn functions_whose_samples_cancel_or_are_ignored_are_no_rows() {
    // Every node shown (node fraction 0), then pprof's default cutoff:
    // functions only in ignored samples are neither rows nor dropped.
    let fib = data("parca/pkg/query/testdata/fib.pb.gz");
    for ignore in ["runtime", "main\\.fib|math/big\\.nat"] {
        for (pprof_fraction, fraction) in
            [("-nodefraction=0", "0"), ("-nodefraction=0.005", "0.005")]
        {
            let pprof = [pprof_fraction, "-ignore", ignore];
            same_table(
                &fib,
                &pprof,
                &["--node-fraction", fraction, "--ignore", ignore],
            );
        }
    }
    // A heap profile and the same process's 27 s later.
    let table = same_diff(
        &data("parca/pkg/query/testdata/many/1644509272337470000.pb.gz"),
        &data("parca/pkg/query/testdata/many/1644509299337903000.pb.gz"),
    );
    assert!(table.contains("   -0.50MB "), "shrinkage in {table}");
    // main and serve grew in one stack and shrank as much in another:
    // pprof shows neither.
    let base = profile_of(
        "bytes",
        &[(&["main", "serve", "parse"], 4096), (&["main", "load"], 10)],
    );
    let new = profile_of(
        "bytes",
        &[
            (&["main", "serve", "render"], 4096),
            (&["main", "load"], 10),
        ],
    );
    let table = same_diff(&base, &new);
    assert!(
        !table.contains("serve") && table.contains("render"),
        "{table}"
    );
}

/// Every protobuf profile of the corpus, at its default sample type and at
/// each one, sorted by flat and by cum: the same output as pprof's, header
/// included, or, where pprof refuses the file, a refusal in one line.
#[test]
fn every_corpus_table_is_pprofs() {
    let profiles = corpus_profiles();
    assert!(profiles.len() >= 100, "{} profiles", profiles.len());
    let (mut compared, mut differ) = (0, Vec::new());
    for path in &profiles {
        let file = data(path);
        let types = std::fs::read(&file)
            .ok()
            .and_then(|bytes| Profile::decode(&bytes).ok())
            .map_or(0, |p| p.sample_types.len());
        // The default sample type, then each, by flat and by cum.
        let mut variants = vec![(None, false)];
        for index in 0..types {
            variants.extend([
                (Some(index.to_string()), false),
                (Some(index.to_string()), true),
            ]);
        }
        for (index, cum) in variants {
            let mut pprof_args = vec!["-top".to_owned()];
            let mut ours_args = vec!["top".to_owned(), file.clone()];
            if let Some(index) = &index {
                pprof_args.push(format!("-sample_index={index}"));
                ours_args.extend(["-i".to_owned(), index.clone()]);
            }
            if cum {
                pprof_args.push("-cum".to_owned());
                ours_args.push("--cum".to_owned());
            }
            pprof_args.push(file.clone());
            let (theirs, ours) = both_in_zone(&pprof_args, &ours_args);
            let same = match (theirs.status.success(), ours.status.success()) {
                // Invalid UTF-8 compares as heapprof shows it, replaced.
                (true, true) => {
                    String::from_utf8_lossy(&theirs.stdout) == String::from_utf8_lossy(&ours.stdout)
                }
                // Both refuse it: heapprof with one line.
                (false, false) => ours.stderr.iter().filter(|&&b| b == b'\n').count() == 1,
                _ => false,
            };
            compared += 1;
            if !same {
                differ.push(ours_args.join(" "));
            }
        }
    }
    assert!(compared >= 400, "{compared} tables");
    assert!(
        differ.is_empty(),
        "{} of {compared} tables differ from `go tool pprof -top`'s:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

/// Every corpus profile pprof reads, under `--focus`, `--ignore` and
/// `--hide` of a word of its top row's name (the first run of three or
/// more letters and digits, so that it also matches other functions,
/// files or mappings that share it): the same output as pprof's.
#[test]
fn every_corpus_profile_filters_as_pprof_filters() {
    let mut compared = 0;
    let word = Regex::new("[A-Za-z][A-Za-z0-9_]{2,}").unwrap();
    for path in corpus_profiles() {
        let file = data(&path);
        let out = Command::new(env!("CARGO_BIN_EXE_heapprof"))
            .args(["top", &file])
            .output()
            .unwrap();
        if !out.status.success() {
            continue; // refused, as pprof refuses it: checked above
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(row) = text.lines().skip_while(|l| !l.contains("flat%")).nth(1) else {
            continue; // an empty table: nothing to filter on
        };
        let name = row.split_whitespace().skip(5).collect::<Vec<_>>().join(" ");
        let Some(word) = word.find(&name) else {
            continue;
        };
        for filter in ["focus", "ignore", "hide"] {
            let pprof_args = [
                "-top".to_owned(),
                format!("-{filter}={}", word.as_str()),
                file.clone(),
            ];
            let ours_args = [
                "top".to_owned(),
                file.clone(),
                format!("--{filter}"),
                word.as_str().to_owned(),
            ];
            let (theirs, ours) = both_in_zone(&pprof_args, &ours_args);
            assert_eq!(
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout),
                "heapprof top --{filter} {} on {path}",
                word.as_str()
            );
            compared += 1;
        }
    }
    assert!(compared >= 300, "{compared} filtered tables");
}

#[test]
fn filters_match_source_files_and_object_files_as_in_pprof() {
    let cases = [
        // Object files: a mapping's name matches every frame in it.
        ("parca/pkg/normalizer/node-profile.pb.gz", "libc"),
        ("parca/pkg/normalizer/node-profile.pb.gz", "node"),
        (
            "google-pprof-converted/profile/testdata/cppbench.cpu.pb.gz",
            "cppbench",
        ),
        // Source files: `handle` lives in three of them.
        (
            "pyroscope/pkg/og/convert/pprof/testdata/heap-js.pprof",
            "express/lib/router",
        ),
        (
            "pyroscope/pkg/og/convert/pprof/testdata/heap-js.pprof",
            "morgan",
        ),
        ("parca/pkg/query/testdata/fib.pb.gz", "src/runtime"),
        ("parca/pkg/query/testdata/fib.pb.gz", "proc\\.go"),
    ];
    for (path, regex) in cases {
        let file = data(path);
        for filter in ["focus", "ignore", "hide"] {
            same_table(
                &file,
                &[&format!("-{filter}"), regex],
                &[&format!("--{filter}"), regex],
            );
        }
    }
}

/// The filter flags a run's stderr says matched nothing: pprof's
/// `Focus expression matched no samples`, heapprof's
/// `heapprof: --focus "re" matched no samples`.
fn unmatched_flags(command: &mut Command) -> Vec<String> {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|line| line.ends_with("matched no samples"))
        .map(|line| {
            let word = line.trim_start_matches("heapprof: --");
            word.split(' ').next().unwrap().to_lowercase()
        })
        .collect()
}

#[test]
fn filters_that_match_nothing_are_named_as_pprof_names_them() {
    let cases: [(&str, [&str; 3]); 5] = [
        ("parca/pkg/query/testdata/fib.pb.gz", ["nowhere", "", ""]),
        (
            "parca/pkg/query/testdata/fib.pb.gz",
            ["fib", "nothing", "none"],
        ),
        // Only locations that ignore leaves count for focus.
        ("parca/pkg/query/testdata/fib.pb.gz", ["fib", "fib", ""]),
        (
            "parca/pkg/normalizer/node-profile.pb.gz",
            ["libc", "zz", "node"],
        ),
        (
            "pyroscope/pkg/og/convert/pprof/testdata/heap-js.pprof",
            ["morgan", "express/lib/router", "x^"],
        ),
    ];
    for (path, regexes) in cases {
        let file = data(path);
        let mut pprof = Command::new("go");
        pprof
            .args(["tool", "pprof", "-top"])
            .env("PPROF_BINARY_PATH", "/nonexistent")
            .env("PPROF_TMPDIR", std::env::temp_dir());
        let mut heapprof = Command::new(env!("CARGO_BIN_EXE_heapprof"));
        heapprof.args(["top", &file]);
        for (flag, regex) in ["focus", "ignore", "hide"].iter().zip(regexes) {
            if !regex.is_empty() {
                pprof.args([&format!("-{flag}"), regex]);
                heapprof.args([&format!("--{flag}"), regex]);
            }
        }
        pprof.arg(&file);
        let theirs = unmatched_flags(&mut pprof);
        assert_eq!(unmatched_flags(&mut heapprof), theirs, "{path} {regexes:?}");
    }
    // A diff's filters may match in either profile.
    let base = profile_of("bytes", &[(&["main", "f"], 10)]);
    let new = profile_of("bytes", &[(&["main", "g"], 10)]);
    let mut pprof = Command::new("go");
    pprof.args([
        "tool", "pprof", "-top", "-focus", "f", "-ignore", "h", "-base", &base, &new,
    ]);
    let mut heapprof = Command::new(env!("CARGO_BIN_EXE_heapprof"));
    heapprof.args(["diff", &base, &new, "--focus", "f", "--ignore", "h"]);
    let theirs = unmatched_flags(&mut pprof);
    assert_eq!(theirs, ["ignore"]);
    assert_eq!(unmatched_flags(&mut heapprof), theirs);
}

#[test]
fn diffs_are_pprofs_with_units_made_common() {
    let jfr = "pyroscope/pkg/og/convert/jfr/testdata";
    let pairs = [
        // Delays in nanoseconds against delays in microseconds: pprof
        // compares them in nanoseconds.
        (
            "google-pprof-converted/internal/driver/testdata/cppbench.small.contention.pb.gz".to_owned(),
            "google-pprof-converted/profile/testdata/java.contention.pb.gz".to_owned(),
        ),
        (
            format!("{jfr}/cortex-dev-01__kafka-0__cpu_lock_alloc__0.jfr.gz.memory_alloc_in_new_tlab_bytes_bytes_space_bytes.17241709254077376921.pb.gz"),
            format!("{jfr}/cortex-dev-01__kafka-0__cpu_lock_alloc__1.jfr.gz.memory_alloc_in_new_tlab_bytes_bytes_space_bytes.17241709254077376921.pb.gz"),
        ),
        (
            format!("{jfr}/dump1.jfr.gz.process_cpu_cpu_nanoseconds_cpu_nanoseconds.2539015855607244867.pb.gz"),
            format!("{jfr}/dump2.jfr.gz.process_cpu_cpu_nanoseconds_cpu_nanoseconds.2539015855607244867.pb.gz"),
        ),
        (
            "pyroscope/pkg/pprof/testdata/gotruncatefix/heap_go_truncated_1.pb.gz".to_owned(),
            "pyroscope/pkg/pprof/testdata/gotruncatefix/heap_go_truncated_1.pb.gz.fixed".to_owned(),
        ),
        // One program's profiles whose mappings have different paths: rows
        // of one base name tie on everything but the path, which orders them.
        (
            "google-pprof-converted/internal/driver/testdata/cppbench.cpu.pb.gz".to_owned(),
            "google-pprof-converted/profile/testdata/cppbench.cpu.pb.gz".to_owned(),
        ),
    ];
    for (base, new) in &pairs {
        same_diff(&data(base), &data(new));
    }
    // Bytes against seconds cannot be compared: one line, no table.
    let bytes = profile_of("bytes", &[(&["main", "f"], 10)]);
    let seconds = profile_of("seconds", &[(&["main", "g"], 10)]);
    let out = Command::new(env!("CARGO_BIN_EXE_heapprof"))
        .args(["diff", &bytes, &seconds])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{stderr}");
    assert!(
        stderr.contains("cannot compare delay in bytes with delay in seconds"),
        "{stderr}"
    );
}

#[test]
fn legacy_formats_are_named_with_the_way_to_convert_them() {
    let legacy = corpus_files(|origin| origin.ends_with("-legacy"));
    assert!(legacy.len() >= 10, "{legacy:?}");
    for path in &legacy {
        let out = Command::new(env!("CARGO_BIN_EXE_heapprof"))
            .args(["top", &data(path)])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && out.stdout.is_empty(), "{path}");
        assert_eq!(stderr.lines().count(), 1, "{path}: {stderr}");
        assert!(
            stderr.contains("in a legacy pprof format, which heapprof does not read")
                && stderr.contains("go tool pprof -proto"),
            "{path}: {stderr}"
        );
    }
    // The advice works: pprof converts one, and heapprof reads the result.
    let file = data("google-pprof-legacy/profile/testdata/cppbench.heap");
    let converted = Command::new("go")
        .args(["tool", "pprof", "-proto", &file])
        .env("PPROF_BINARY_PATH", "/nonexistent")
        .output()
        .expect("go tool pprof (apt-get install golang-go)");
    assert!(converted.status.success());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("parity");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cppbench.heap.pb.gz");
    std::fs::write(&path, converted.stdout).unwrap();
    heapprof(&["top", path.to_str().unwrap()], &[]);
}
