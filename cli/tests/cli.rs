//! The `heapprof` binary end to end: its tables against the real
//! `go tool pprof` on real Go and heapprof profiles, folded totals, diffs,
//! golden outputs, and one-line errors for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

mod common;
#[path = "../../tests/common/mutate.rs"]
mod mutate;

use common::{folded_total, table};

use heapprof::pprof::{
    Function, Label, LabelValue, Line, Location, Mapping, Profile, Sample, ValueType,
};

fn heapprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heapprof"))
        .args(args)
        .output()
        .expect("run heapprof")
}

fn heapprof_ok(args: &[&str]) -> String {
    let out = heapprof(args);
    assert!(
        out.status.success(),
        "heapprof {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `go tool pprof`; fails loudly without Go (CI installs golang-go).
fn go(args: &[&str]) -> Output {
    Command::new("go")
        .args(args)
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run go ({e}): install Go (Debian: apt-get install golang-go)")
        })
}

fn go_pprof_ok(args: &[&str]) -> String {
    let mut all = vec!["tool", "pprof"];
    all.extend_from_slice(args);
    let out = go(&all);
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Real Go profiles: heap and allocs (MemProfileRate = 1, so exact) and CPU,
/// from `tests/data/goprog`, at scale 1 and 3.
struct GoProfiles {
    heap: PathBuf,
    allocs: PathBuf,
    cpu: PathBuf,
    heap3: PathBuf,
}

fn go_profiles() -> &'static GoProfiles {
    static PROFILES: OnceLock<GoProfiles> = OnceLock::new();
    PROFILES.get_or_init(|| {
        let dir = scratch("goprog");
        let binary = dir.join("goprog");
        let out = go(&["build", "-o", s(&binary), s(&data("goprog/main.go"))]);
        assert!(
            out.status.success(),
            "go build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = |suffix: &str, scale: &str| {
            let paths = ["heap", "allocs", "cpu"].map(|k| dir.join(format!("{k}{suffix}.pb.gz")));
            let status = Command::new(&binary)
                .args(paths.iter().map(|p| s(p)))
                .arg(scale)
                .status()
                .unwrap();
            assert!(status.success());
            paths
        };
        let [heap, allocs, cpu] = run("", "1");
        let [heap3, _, _] = run("3", "3");
        GoProfiles {
            heap,
            allocs,
            cpu,
            heap3,
        }
    })
}

fn assert_same_top(profile: &Path, ours: &[&str], theirs: &[&str]) {
    let mut our_args = vec!["top", s(profile)];
    our_args.extend_from_slice(ours);
    let mut their_args = vec!["-top"];
    their_args.extend_from_slice(theirs);
    their_args.push(s(profile));
    assert_eq!(
        table(&heapprof_ok(&our_args)),
        table(&go_pprof_ok(&their_args)),
        "heapprof {our_args:?} vs go tool pprof {their_args:?}"
    );
}

#[test]
fn top_matches_go_tool_pprof_on_go_heap_allocs_and_cpu_profiles() {
    let p = go_profiles();
    for profile in [&p.heap, &p.allocs] {
        assert_same_top(profile, &[], &[]);
        for index in [
            "alloc_objects",
            "alloc_space",
            "inuse_objects",
            "inuse_space",
        ] {
            assert_same_top(
                profile,
                &["-i", index],
                &[&format!("-sample_index={index}")],
            );
        }
    }
    for index in ["samples", "cpu"] {
        assert_same_top(&p.cpu, &["-i", index], &[&format!("-sample_index={index}")]);
    }
    let variants: [(&[&str], &[&str]); 6] = [
        (&["-n", "3"], &["-nodecount=3"]),
        (&["--cum"], &["-cum"]),
        (&["--focus", "allocSmall"], &["-focus=allocSmall"]),
        (&["--ignore", "churn"], &["-ignore=churn"]),
        (&["--hide", "recurse"], &["-hide=recurse"]),
        (&["--node-fraction", "0"], &["-nodefraction=0"]),
    ];
    for (ours, theirs) in variants {
        let mut ours = ours.to_vec();
        ours.extend(["-i", "alloc_space"]);
        let mut theirs = theirs.to_vec();
        theirs.push("-sample_index=alloc_space");
        assert_same_top(&p.heap, &ours, &theirs);
    }
}

#[test]
fn demo_runs_the_product_and_its_profile_matches_go_tool_pprof() {
    let dir = scratch("demo");
    let out = heapprof_ok(&["demo", "--out", s(&dir)]);
    assert!(out.contains("heapprof::demo::load_documents"), "{out}");
    assert!(
        out.contains("heapprof::demo::ResponseCache::remember"),
        "{out}"
    );
    let heap = dir.join("heap.pb.gz");
    let svg = std::fs::read_to_string(dir.join("flamegraph.svg")).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("load_documents"),
        "not a flamegraph"
    );
    for index in [
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
    ] {
        assert_same_top(&heap, &["-i", index], &[&format!("-sample_index={index}")]);
    }
}

#[test]
fn diff_matches_go_tool_pprof_base() {
    let p = go_profiles();
    for index in [
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
    ] {
        let ours = heapprof_ok(&["diff", "-i", index, s(&p.heap), s(&p.heap3)]);
        let theirs = go_pprof_ok(&[
            "-top",
            &format!("-sample_index={index}"),
            "-base",
            s(&p.heap),
            s(&p.heap3),
        ]);
        assert_eq!(table(&ours), table(&theirs), "{index}");
    }
    // With a filter, percentages stay relative to the whole difference.
    let ours = heapprof_ok(&[
        "diff",
        "-i",
        "alloc_space",
        "--focus",
        "allocSmall",
        s(&p.heap),
        s(&p.heap3),
    ]);
    let theirs = go_pprof_ok(&[
        "-top",
        "-sample_index=alloc_space",
        "-focus=allocSmall",
        "-base",
        s(&p.heap),
        s(&p.heap3),
    ]);
    assert_eq!(table(&ours), table(&theirs), "diff --focus");
    // Scale 3 churns 10000 more objects, one allocation each: the growth is
    // there. (Within a few: a Go heap profile is as of the last completed
    // GC cycle, and one run showed 10001.)
    let ours = heapprof_ok(&["diff", "-i", "alloc_objects", s(&p.heap), s(&p.heap3)]);
    let churn: i64 = ours
        .lines()
        .find(|l| l.ends_with("main.churn"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|flat| flat.parse().ok())
        .expect("churn row");
    assert!((9990..=10010).contains(&churn), "{ours}");
    let dir = scratch("diff");
    let svg = dir.join("growth.svg");
    heapprof_ok(&["diff", s(&p.heap), s(&p.heap3), "--flamegraph", s(&svg)]);
    assert!(std::fs::read_to_string(&svg)
        .unwrap()
        .contains("main.allocSmall"));
}

#[test]
fn folded_totals_equal_profile_totals() {
    let p = go_profiles();
    let dir = scratch("folded");
    let demo = dir.join("heap.pb.gz");
    heapprof_ok(&["demo", "--out", s(&dir)]);
    for path in [&p.heap, &p.allocs, &p.cpu, &demo] {
        let profile = Profile::decode(&std::fs::read(path).unwrap()).unwrap();
        for (index, sample_type) in profile.sample_types.iter().enumerate() {
            let folded = heapprof_ok(&["folded", s(path), "-i", &sample_type.r#type]);
            let sum = folded_total(&folded);
            assert_eq!(
                sum,
                profile.total(index),
                "{} {}",
                path.display(),
                sample_type.r#type
            );
            assert!(folded
                .lines()
                .all(|l| !l.starts_with(';') && l.matches(' ').count() >= 1));
        }
    }
}

/// A small profile with recursion, inlined frames, a `;` in a name, a
/// zero-value sample and two mappings: the input of the golden tests.
fn synthetic() -> Profile {
    let function = |name: &str, file: &str| Function {
        name: name.to_owned(),
        system_name: String::new(),
        filename: file.to_owned(),
        start_line: 0,
    };
    let functions = vec![
        function("main", "src/main.rs"),
        function("app::serve", "src/serve.rs"),
        function("app::parse", "src/parse.rs"),
        function("app::walk", "src/walk.rs"),
        function("<[u8; 32] as app::Digest>::digest", "src/digest.rs"),
        function("app::cache::insert", "src/cache.rs"),
    ];
    let location = |mapping: usize, address: u64, lines: &[(usize, i64)]| Location {
        mapping: Some(mapping),
        address,
        lines: lines
            .iter()
            .map(|&(function, line)| Line { function, line })
            .collect(),
        is_folded: false,
    };
    let locations = vec![
        location(0, 0x1000, &[(0, 10)]),
        location(0, 0x2000, &[(1, 20)]),
        location(0, 0x3000, &[(2, 30), (1, 31)]), // parse inlined into serve
        location(0, 0x4000, &[(3, 40)]),
        location(1, 0x7000_0000, &[(4, 50)]),
        location(0, 0x5000, &[(5, 60)]),
    ];
    let sample = |locations: &[usize], values: [i64; 4], size: i64| Sample {
        locations: locations.to_vec(),
        values: values.to_vec(),
        labels: vec![Label {
            key: "bytes".to_owned(),
            value: LabelValue::Num {
                value: size,
                unit: String::new(),
            },
        }],
    };
    let mapping = |start: u64, file: &str| Mapping {
        memory_start: start,
        memory_limit: start + 0x10_0000,
        filename: file.to_owned(),
        build_id: "abcdef".to_owned(),
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        has_inline_frames: true,
        ..Mapping::default()
    };
    Profile {
        sample_types: ValueType::go_heap(),
        samples: vec![
            sample(&[2, 1, 0], [400, 409_600, 100, 102_400], 1024),
            sample(&[3, 3, 3, 1, 0], [50, 3_276_800, 50, 3_276_800], 65536),
            sample(&[4, 3, 1, 0], [9, 288, 0, 0], 32),
            sample(&[5, 1, 0], [1200, 4_915_200, 1200, 4_915_200], 4096),
            sample(&[5, 0], [3, 12_288, 0, 0], 4096),
            sample(&[0], [0, 0, 0, 0], 8),
        ],
        mappings: vec![
            mapping(0, "/usr/bin/app"),
            mapping(0x7000_0000, "/usr/lib/libdigest.so"),
        ],
        locations,
        functions,
        time_nanos: 1_795_384_800_000_000_000,
        period_type: Some(ValueType::new("space", "bytes")),
        period: 524_288,
        comments: vec!["synthetic profile for golden tests".to_owned()],
        ..Profile::default()
    }
}

#[test]
fn golden_outputs() {
    let input = data("synthetic.pb.gz");
    let update = std::env::var_os("HEAPPROF_UPDATE_GOLDEN").is_some();
    if update {
        std::fs::write(&input, synthetic().encode()).unwrap();
    }
    // The checked-in input is exactly the profile described above.
    assert_eq!(
        Profile::decode(&std::fs::read(&input).unwrap()).unwrap(),
        synthetic()
    );
    let cases: [(&str, &[&str]); 5] = [
        ("synthetic.top.txt", &["top"]),
        (
            "synthetic.alloc_space.top.txt",
            &["top", "-i", "alloc_space", "--node-fraction", "0"],
        ),
        ("synthetic.folded.txt", &["folded"]),
        (
            "synthetic.alloc_objects.folded.txt",
            &["folded", "-i", "alloc_objects"],
        ),
        ("synthetic.info.txt", &["info"]),
    ];
    for (golden, args) in cases {
        let mut args = args.to_vec();
        args.insert(1, "tests/data/synthetic.pb.gz");
        let out = Command::new(env!("CARGO_BIN_EXE_heapprof"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let actual = String::from_utf8(out.stdout).unwrap();
        if update {
            std::fs::write(data(golden), &actual).unwrap();
        }
        assert_eq!(
            actual,
            std::fs::read_to_string(data(golden)).unwrap(),
            "{golden}"
        );
    }
    // And the golden table is what go tool pprof shows for the same file.
    for index in ["inuse_space", "alloc_space"] {
        assert_same_top(&input, &["-i", index], &[&format!("-sample_index={index}")]);
    }
}

#[test]
fn json_rows_carry_the_table_numbers() {
    let out = heapprof_ok(&[
        "top",
        s(&data("synthetic.pb.gz")),
        "--json",
        "-i",
        "alloc_objects",
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["sample_type"], "alloc_objects");
    assert_eq!(json["total"], 1662);
    let rows = json["rows"].as_array().unwrap();
    let cache = rows
        .iter()
        .find(|r| r["name"] == "app::cache::insert")
        .unwrap();
    assert_eq!(
        (cache["flat"].as_i64(), cache["cum"].as_i64()),
        (Some(1203), Some(1203))
    );
}

#[test]
fn uncompressed_profiles_read_the_same() {
    let dir = scratch("raw");
    let raw = dir.join("raw.pb");
    let profile = Profile::decode(&std::fs::read(data("synthetic.pb.gz")).unwrap()).unwrap();
    std::fs::write(&raw, profile.encode_raw()).unwrap();
    assert_eq!(
        table(&heapprof_ok(&["top", s(&raw)])),
        table(&heapprof_ok(&["top", s(&data("synthetic.pb.gz"))]))
    );
}

#[test]
fn flamegraphs_are_svg_with_the_functions_in_them() {
    let dir = scratch("flamegraph");
    let cases: [&[&str]; 2] = [
        &[],
        &["-i", "alloc_objects", "--icicle", "--title", "my title"],
    ];
    for extra in cases {
        let svg = dir.join("out.svg");
        let input = data("synthetic.pb.gz");
        let mut args = vec!["flamegraph", s(&input), "-o", s(&svg)];
        args.extend_from_slice(extra);
        heapprof_ok(&args);
        let svg = std::fs::read_to_string(&svg).unwrap();
        assert!(svg.contains("<svg") && svg.contains("app::cache::insert"));
        if extra.is_empty() {
            assert!(
                svg.contains("<title>app::cache::insert (4.69MB, 59.26%)</title>"),
                "amounts in bytes, scaled"
            );
        } else {
            assert!(svg.contains("my title") && svg.contains(" objects"));
            // The ';' of an array type does not split the frame.
            assert!(svg.contains("[u8: 32] as app::Digest"), "array type frame");
        }
    }
}

#[test]
fn every_command_has_help_with_an_example() {
    for command in [
        "top",
        "flamegraph",
        "folded",
        "diff",
        "tags",
        "lifetimes",
        "info",
        "demo",
        "symbolize",
        "timeline",
        "report",
    ] {
        let help = heapprof_ok(&[command, "--help"]);
        let example = help.contains("Example:") || help.contains("Examples:");
        assert!(
            example && help.contains(&format!("heapprof {command}")),
            "{command}:\n{help}"
        );
    }
}

#[test]
fn version_is_the_programs_at_every_level() {
    let version = format!("heapprof {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(heapprof_ok(&["--version"]), version);
    for command in [
        "top",
        "flamegraph",
        "folded",
        "diff",
        "info",
        "demo",
        "symbolize",
    ] {
        assert_eq!(heapprof_ok(&[command, "--version"]), version, "{command}");
    }
}

/// Asserts a failure with exactly one line on stderr containing `expected`.
fn assert_one_line_error(args: &[&str], expected: &[&str]) {
    let out = heapprof(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line:\n{stderr}"
    );
    assert!(stderr.starts_with("heapprof: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for e in expected {
        assert!(stderr.contains(e), "{args:?}: {stderr:?} lacks {e:?}");
    }
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
}

#[test]
fn bad_input_gets_a_one_line_error_naming_the_file_and_cause() {
    let dir = scratch("bad");
    let good = std::fs::read(data("synthetic.pb.gz")).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let truncated = write("truncated.pb.gz", &good[..good.len() / 2]);
    let mut corrupt = good.clone();
    let n = corrupt.len();
    corrupt[n - 6] ^= 0xff; // inside the CRC32
    let bad_checksum = write("checksum.pb.gz", &corrupt);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let random = write("random.bin", &random);
    let empty = write("empty.pb.gz", b"");
    let missing = dir.join("missing.pb.gz");

    assert_one_line_error(
        &["top", s(&truncated)],
        &["truncated.pb.gz", "decompressing profile"],
    );
    assert_one_line_error(&["top", s(&bad_checksum)], &["checksum.pb.gz", "checksum"]);
    assert_one_line_error(&["top", s(&random)], &["random.bin", "parsing profile"]);
    assert_one_line_error(&["folded", s(&empty)], &["empty.pb.gz", "empty"]);
    assert_one_line_error(&["info", s(&missing)], &["missing.pb.gz", "No such file"]);
    let synthetic = data("synthetic.pb.gz");
    assert_one_line_error(
        &["top", s(&synthetic), "-i", "bogus"],
        &["synthetic.pb.gz", "sample index \"bogus\" must be one of: [alloc_objects alloc_space inuse_objects inuse_space]"],
    );
    for fraction in ["-0.1", "1.5", "NaN", "half"] {
        assert_one_line_error(
            &["top", s(&synthetic), &format!("--node-fraction={fraction}")],
            &["--node-fraction", "not a fraction from 0 to 1"],
        );
    }
    assert_one_line_error(
        &["top", s(&synthetic), "-i", "9"],
        &["sample index \"9\" must be one of: [0=alloc_objects 1=alloc_space 2=inuse_objects 3=inuse_space]"],
    );
    assert_one_line_error(
        &["top", s(&synthetic), "--focus", "("],
        &["--focus", "regex"],
    );
    assert_one_line_error(&["top", "--bogus"], &["--bogus"]);
    assert_one_line_error(&["top"], &["<PROFILE>"]);
    assert_one_line_error(&["diff", s(&synthetic), s(&random)], &["random.bin"]);
}

#[test]
fn failed_output_leaves_nothing_behind() {
    let dir = scratch("unwritable");
    let synthetic = data("synthetic.pb.gz");
    let nowhere = dir.join("no-such-dir").join("out.svg");
    assert_one_line_error(
        &["flamegraph", s(&synthetic), "-o", s(&nowhere)],
        &["cannot write", "out.svg"],
    );
    // A profile that cannot be drawn: an error, and no file, not even a
    // temporary one.
    let out = dir.join("bad.svg");
    assert_one_line_error(
        &["flamegraph", s(&synthetic), "-o", s(&out), "-i", "bogus"],
        &["sample index \"bogus\""],
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "files left in {}",
        dir.display()
    );
    // Nothing to draw is an answer, as top's zero total is: the SVG says so.
    let empty = dir.join("empty.svg");
    heapprof_ok(&[
        "flamegraph",
        s(&synthetic),
        "-o",
        s(&empty),
        "--focus",
        "no-such-function",
    ]);
    let svg = std::fs::read_to_string(&empty).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("No sample has a positive inuse_space value."),
        "{svg}"
    );
    std::fs::remove_file(&empty).unwrap();
    let demo_target = dir.join("a-file");
    std::fs::write(&demo_target, b"").unwrap();
    assert_one_line_error(&["demo", "--out", s(&demo_target)], &["a-file"]);
}

#[test]
fn info_summarises_a_profile() {
    let out = heapprof_ok(&["info", s(&data("synthetic.pb.gz"))]);
    assert!(
        out.contains("3: inuse_space/bytes  total 7.91MB (8294400)  (default)"),
        "{out}"
    );
    assert!(out.contains("Period: 524288 space/bytes"), "{out}");
    assert!(
        out.contains("Counts: 6 samples, 6 locations, 6 functions, 2 mappings"),
        "{out}"
    );
    assert!(
        out.contains("Comment: synthetic profile for golden tests"),
        "{out}"
    );
}

/// Reports over profiles that decode but are strange (mutated real ones):
/// a result or a one-line error, never a panic.
#[test]
fn reports_survive_strange_profiles() {
    let dir = scratch("strange");
    let raw = mutate::gunzip(&std::fs::read(data("synthetic.pb.gz")).unwrap());
    let mut rng = mutate::Rng(0x0005_EED0_FC11);
    let mut decodable = Vec::new();
    while decodable.len() < 60 {
        let candidate = mutate::mutate(&mut rng, &raw);
        if Profile::decode(&candidate).is_ok() {
            decodable.push(candidate);
        }
    }
    let svg = dir.join("out.svg");
    for (i, bytes) in decodable.iter().enumerate() {
        let path = dir.join(format!("strange-{i}.pb"));
        std::fs::write(&path, bytes).unwrap();
        let previous = dir.join(format!("strange-{}.pb", i.saturating_sub(1)));
        for args in [
            vec!["top", s(&path)],
            vec!["folded", s(&path)],
            vec!["info", s(&path)],
            vec!["flamegraph", s(&path), "-o", s(&svg)],
            vec!["diff", s(&previous), s(&path)],
        ] {
            let out = heapprof(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{args:?}: {:?}\n{stderr}",
                out.status
            );
            assert!(
                !stderr.contains("panicked") && stderr.lines().count() <= 1,
                "{args:?}: {stderr}"
            );
        }
    }
}

/// A stack that cycles through the same functions (deep recursion) counts
/// each function's cum once per sample, as go tool pprof does.
#[test]
fn cyclic_stacks_count_cum_once() {
    let mut profile = synthetic();
    // walk -> serve -> walk -> serve ... 200 times, then main.
    let mut locations = Vec::new();
    for _ in 0..200 {
        locations.extend([3, 1]);
    }
    locations.push(0);
    profile.samples = vec![Sample {
        locations,
        values: vec![1, 1000, 1, 1000],
        labels: vec![],
    }];
    let dir = scratch("cycle");
    let path = dir.join("cycle.pb.gz");
    std::fs::write(&path, profile.encode()).unwrap();
    let ours = heapprof_ok(&["top", s(&path), "-i", "inuse_space"]);
    assert!(
        ours.lines()
            .any(|l| l.contains("1000B   100%") && l.ends_with("app::serve")),
        "{ours}"
    );
    assert_same_top(
        &path,
        &["-i", "inuse_space"],
        &["-sample_index=inuse_space"],
    );
}

/// A diff's percentages are of pprof's total: the two profiles merged as
/// `-base` merges them, where samples of one stack with different labels
/// (Go's object sizes), or at different addresses of one function, stay
/// apart. Here the 1024-byte blocks of a stack shrink by as much as its
/// 4096-byte blocks grow, and cache::insert moves between two of its
/// addresses: summed per stack, the total would be far smaller.
#[test]
fn diff_warns_when_the_builds_differ() {
    let synthetic = data("synthetic.pb.gz");
    let mut other = Profile::decode(&std::fs::read(&synthetic).unwrap()).unwrap();
    other.mappings[0].build_id = "0123".to_owned();
    let dir = scratch("diff-builds");
    let rebuilt = dir.join("rebuilt.pb.gz");
    std::fs::write(&rebuilt, other.encode()).unwrap();
    let warned = heapprof(&["diff", s(&synthetic), s(&rebuilt)]);
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(warned.status.success(), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "heapprof: warning: BASE and NEW are of different builds (main binary build ids abcdef and 0123): the difference mixes changes to the code with changes in memory"
    );
    let same = heapprof(&["diff", s(&synthetic), s(&synthetic)]);
    assert!(same.status.success() && same.stderr.is_empty());
}

#[test]
fn diff_totals_are_pprofs_merged_totals() {
    let base = synthetic();
    let mut new = synthetic();
    let mut location = new.locations[5].clone();
    location.address += 0x10;
    new.locations.push(location); // 6: cache::insert, another address
    let grown = |sample: &Sample, by: i64| Sample {
        values: sample.values.iter().map(|v| v + by).collect(),
        ..sample.clone()
    };
    let mut bigger = grown(&new.samples[0], 7);
    bigger.labels[0].value = LabelValue::Num {
        value: 4096,
        unit: String::new(),
    };
    new.samples[0] = grown(&new.samples[0], -7);
    new.samples.push(bigger);
    new.samples[3].locations[0] = 6;
    let dir = scratch("diff-total");
    let (base_path, new_path) = (dir.join("base.pb.gz"), dir.join("new.pb.gz"));
    std::fs::write(&base_path, base.encode()).unwrap();
    std::fs::write(&new_path, new.encode()).unwrap();
    for index in ["alloc_objects", "inuse_space"] {
        let ours = heapprof_ok(&["diff", "-i", index, s(&base_path), s(&new_path)]);
        let theirs = go_pprof_ok(&[
            "-top",
            &format!("-sample_index={index}"),
            "-base",
            s(&base_path),
            s(&new_path),
        ]);
        assert_eq!(table(&ours), table(&theirs), "{index}");
    }
}

/// `--min-width` leaves out frames narrower than it: the digest frame, 9 of
/// 1662 objects (about 6.5 of 1200 pixels), is drawn by default, not at 10.
#[test]
fn min_width_leaves_out_narrow_frames() {
    let dir = scratch("min-width");
    let svg = dir.join("narrow.svg");
    let draw = |extra: &[&str]| {
        let input = data("synthetic.pb.gz");
        let mut args = vec![
            "flamegraph",
            s(&input),
            "-o",
            s(&svg),
            "-i",
            "alloc_objects",
        ];
        args.extend_from_slice(extra);
        heapprof_ok(&args);
        std::fs::read_to_string(&svg).unwrap()
    };
    assert!(draw(&[]).contains("app::Digest"));
    let narrow = draw(&["--min-width", "10"]);
    assert!(!narrow.contains("app::Digest") && narrow.contains("app::cache::insert"));
}
