//! heapprof's label views against `go tool pprof`'s (Go 1.19): `heapprof
//! tags --format pprof` is `-tags` byte for byte on every corpus profile at
//! every sample type, and `--tag-focus`, `--tag-ignore`, `--tag-root` and
//! `--tag-leaf` give the tables of `-tagfocus`, `-tagignore`, `-tagroot`
//! and `-tagleaf`, header included, for expressions made from each
//! labelled profile's own keys and values. Fails without Go: it never
//! skips.

mod common;

use std::process::Command;

use common::{both_in_zone, corpus_profiles, data, heapprof_stdout as heapprof, scratch};
use heapprof::pprof::{Function, Label, LabelValue, Line, Location, Profile, Sample, ValueType};

/// pprof's and heapprof's stdout for these arguments (see
/// [`both_in_zone`]), asserted equal and successful; returns it.
fn same(pprof_args: &[String], ours_args: &[String]) -> String {
    let (theirs, ours) = both_in_zone(pprof_args, ours_args);
    let (theirs_out, ours_out) = (
        String::from_utf8_lossy(&theirs.stdout),
        String::from_utf8_lossy(&ours.stdout),
    );
    assert!(
        theirs.status.success() && ours.status.success(),
        "go tool pprof {pprof_args:?}: {}\nheapprof {ours_args:?}: {}",
        String::from_utf8_lossy(&theirs.stderr),
        String::from_utf8_lossy(&ours.stderr)
    );
    assert_eq!(
        ours_out, theirs_out,
        "heapprof {ours_args:?} vs go tool pprof {pprof_args:?}"
    );
    ours_out.into_owned()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// A label key of a profile and its values, largest first, as `heapprof
/// tags --json` lists them.
struct Key {
    key: String,
    values: Vec<String>,
}

/// The corpus profiles that pprof reads and that carry labels, with their
/// keys.
fn labelled() -> Vec<(String, Vec<Key>)> {
    let mut found = Vec::new();
    for path in corpus_profiles() {
        let file = data(&path);
        let out = Command::new(env!("CARGO_BIN_EXE_heapprof"))
            .args(["tags", "--json", &file])
            .output()
            .unwrap();
        if !out.status.success() {
            continue; // refused, as pprof refuses it (parity.rs)
        }
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let keys: Vec<Key> = json["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| Key {
                key: k["key"].as_str().unwrap().to_owned(),
                values: k["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["value"].as_str().unwrap().to_owned())
                    .collect(),
            })
            .collect();
        if !keys.is_empty() {
            found.push((file, keys));
        }
    }
    assert!(found.len() >= 25, "{} labelled profiles", found.len());
    found
}

/// Every corpus profile pprof reads, at its default sample type and at
/// each: `-tags` and `heapprof tags --format pprof` print the same bytes.
#[test]
fn every_corpus_tags_report_is_pprofs() {
    let (mut compared, mut with_labels, mut unordered, mut differ) = (0, 0, 0, Vec::new());
    for path in corpus_profiles() {
        let file = data(&path);
        let Some(types) = std::fs::read(&file)
            .ok()
            .and_then(|bytes| Profile::decode(&bytes).ok())
            .map(|p| p.sample_types.len())
        else {
            continue; // not a profile: refused by both (parity.rs)
        };
        let mut indices = vec![None];
        indices.extend((0..types).map(Some));
        for index in indices {
            let mut pprof_args = strings(&["-tags"]);
            let mut ours_args = strings(&["tags", &file, "--format", "pprof"]);
            if let Some(index) = index {
                pprof_args.push(format!("-sample_index={index}"));
                ours_args.extend(strings(&["-i", &index.to_string()]));
            }
            pprof_args.push(file.clone());
            let (theirs, ours) = both_in_zone(&pprof_args, &ours_args);
            if !theirs.status.success() {
                continue;
            }
            compared += 1;
            with_labels += usize::from(!theirs.stdout.is_empty());
            let (theirs, ours) = (
                String::from_utf8_lossy(&theirs.stdout),
                String::from_utf8_lossy(&ours.stdout),
            );
            if ours == theirs {
                continue;
            }
            if same_but_for_pprofs_order(&ours, &theirs) {
                unordered += 1;
            } else {
                differ.push(ours_args.join(" "));
            }
        }
    }
    assert!(compared >= 300, "{compared} reports");
    // One: alloc_space_delta's inuse_objects, where growth and shrinkage
    // of one size meet.
    assert!(unordered <= 2, "{unordered} reports in another order");
    assert!(with_labels >= 60, "{with_labels} reports with labels");
    assert!(
        differ.is_empty(),
        "{} of {compared} differ from `go tool pprof -tags`:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

/// Whether two `-tags` reports have the same lines in each key's block,
/// in another order only where pprof's is undefined: its sort takes two
/// values of one magnitude and opposite signs (a diff's growth and
/// shrinkage) as equal and as ordered at once, so that its order of the
/// block changes from run to run. heapprof's is by magnitude, then value.
fn same_but_for_pprofs_order(ours: &str, theirs: &str) -> bool {
    let blocks = |report: &str| -> Vec<Vec<String>> {
        report
            .split("\n\n")
            .map(|block| {
                let mut lines: Vec<String> = block.lines().map(str::to_owned).collect();
                lines.sort();
                lines
            })
            .collect()
    };
    let undefined = |block: &[String]| {
        let figures: Vec<&str> = block
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        figures.iter().any(|f| {
            f.strip_prefix('-')
                .is_some_and(|magnitude| figures.contains(&magnitude))
        })
    };
    let (ours, theirs) = (blocks(ours), blocks(theirs));
    ours == theirs && ours.iter().any(|b| undefined(b))
}

/// Whether heapprof prints `value` as a number (a numeric label's value).
fn is_number(value: &str) -> bool {
    value.starts_with(|c: char| c.is_ascii_digit() || c == '-')
}

/// Tag filter expressions made from a profile's first keys: for a key of
/// strings, its top value, its two top values as alternatives, and a
/// prefix of the top one without the key (matched against `key:value`);
/// for a key of numbers, its top value exactly, as a lower and an upper
/// bound, a range, and a bound for any numeric key.
fn expressions(keys: &[Key]) -> Vec<String> {
    let mut found = Vec::new();
    for Key { key, values } in keys.iter().take(3) {
        let first = &values[0];
        let last = values.last().unwrap();
        if is_number(first) {
            found.extend([
                format!("{key}={first}"),
                format!("{key}={first}:"),
                format!("{key}=:{first}"),
                format!("{key}={last}:{first}"),
                format!("{first}:"),
            ]);
        } else {
            let prefix: String = first.chars().take(3).collect();
            found.extend([
                format!("{key}={}", regex::escape(first)),
                format!("{key}={}", {
                    let top: Vec<String> =
                        values.iter().take(2).map(|v| regex::escape(v)).collect();
                    top.join(",")
                }),
                format!("{key}:{}", regex::escape(&prefix)),
            ]);
        }
    }
    found
}

/// `-top` and `-tags` under `-tagfocus` and `-tagignore`, for the
/// expressions of each labelled corpus profile: heapprof's outputs are
/// pprof's, header and the legend of active filters included.
#[test]
fn tag_filters_give_pprofs_tables() {
    let (mut tables, mut reports, mut profiles) = (0, 0, 0);
    for (file, keys) in labelled() {
        profiles += 1;
        for expression in expressions(&keys) {
            for (pprof_flag, flag) in [("-tagfocus", "--tag-focus"), ("-tagignore", "--tag-ignore")]
            {
                let filter = format!("{pprof_flag}={expression}");
                same(
                    &strings(&["-top", &filter, &file]),
                    &strings(&["top", &file, flag, &expression]),
                );
                tables += 1;
                same(
                    &strings(&["-tags", &filter, &file]),
                    &strings(&["tags", &file, "--format", "pprof", flag, &expression]),
                );
                reports += 1;
            }
        }
    }
    assert!(profiles >= 25, "{profiles} profiles");
    assert!(
        tables >= 300 && reports >= 300,
        "{tables} tables, {reports} -tags reports"
    );
}

/// `-tagroot` and `-tagleaf` with each of a profile's first keys and with
/// two at once, by flat and by cum, and with a tag filter beside them:
/// heapprof's `top` is pprof's, the pseudo frames' rows included.
#[test]
fn tag_root_and_leaf_frames_are_pprofs() {
    let mut tables = 0;
    for (file, keys) in labelled() {
        let mut lists: Vec<String> = keys.iter().take(3).map(|k| k.key.clone()).collect();
        if keys.len() >= 2 {
            lists.push(format!("{},{}", keys[0].key, keys[1].key));
        }
        for list in &lists {
            for (pprof_flag, flag) in [("-tagroot", "--tag-root"), ("-tagleaf", "--tag-leaf")] {
                for cum in [false, true] {
                    let mut pprof = strings(&["-top", &format!("{pprof_flag}={list}")]);
                    let mut ours = strings(&["top", &file, flag, list]);
                    if cum {
                        pprof.push("-cum".into());
                        ours.push("--cum".into());
                    }
                    pprof.push(file.clone());
                    same(&pprof, &ours);
                    tables += 1;
                }
            }
        }
        // Frames and filters together: the focus sees the pseudo frames.
        let key = &keys[0];
        let value = regex::escape(&key.values[0]);
        same(
            &strings(&[
                "-top",
                &format!("-tagroot={}", key.key),
                &format!("-focus={value}"),
                &file,
            ]),
            &strings(&["top", &file, "--tag-root", &key.key, "--focus", &value]),
        );
        tables += 1;
    }
    assert!(tables >= 200, "{tables} tables");
}

/// The filter flags a run's stderr says matched nothing, in pprof's words
/// (`TagFocus expression matched no samples`) or heapprof's (`heapprof:
/// --tag-focus "x" matched no samples`), as heapprof's flag names.
fn unmatched(pprof_args: &[&str], ours_args: &[&str]) -> (Vec<String>, Vec<String>) {
    let (theirs, ours) = both_in_zone(&strings(pprof_args), &strings(ours_args));
    assert!(
        theirs.status.success() && ours.status.success(),
        "{ours_args:?}"
    );
    let flags = |stderr: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(stderr)
            .lines()
            .filter(|l| l.ends_with("matched no samples"))
            .map(|l| {
                let word = l.trim_start_matches("heapprof: --");
                let word = word.split([' ']).next().unwrap();
                // TagFocus -> tag-focus
                let mut flag = String::new();
                for (i, c) in word.chars().enumerate() {
                    if c.is_ascii_uppercase() && i > 0 {
                        flag.push('-');
                    }
                    flag.push(c.to_ascii_lowercase());
                }
                flag
            })
            .collect()
    };
    (flags(&theirs.stderr), flags(&ours.stderr))
}

#[test]
fn filters_that_match_nothing_are_named_as_pprof_names_them() {
    let file = data("pyroscope/pkg/og/convert/pprof/testdata/cpu-exemplars.pb.gz");
    let f = file.as_str();
    let cases: [(&[&str], &[&str], &[&str]); 5] = [
        (
            &["-top", "-tagfocus=nokey=x", "-tagignore=function=slow"],
            &["--tag-focus", "nokey=x", "--tag-ignore", "function=slow"],
            &["tag-focus"],
        ),
        (
            &[
                "-top",
                "-tagroot=nokey",
                "-tagleaf=function",
                "-tagignore=1kb:",
            ],
            &[
                "--tag-root",
                "nokey",
                "--tag-leaf",
                "function",
                "--tag-ignore",
                "1kb:",
            ],
            &["tag-root", "tag-ignore"],
        ),
        // Tag filters judge the samples the name filters leave.
        (
            &["-top", "-ignore=.", "-tagfocus=function=slow"],
            &["--ignore", ".", "--tag-focus", "function=slow"],
            &["tag-focus"],
        ),
        // The name filters see the pseudo frames (named after the values,
        // in a "file" named after the key).
        (
            &[
                "-top",
                "-tagroot=function",
                "-focus=^slow$",
                "-hide=^function$",
            ],
            &[
                "--tag-root",
                "function",
                "--focus",
                "^slow$",
                "--hide",
                "^function$",
            ],
            &[],
        ),
        (
            &["-top", "-focus=^slow$"],
            &["--focus", "^slow$"],
            &["focus"],
        ),
    ];
    for (pprof, ours, expected) in cases {
        let mut pprof = pprof.to_vec();
        pprof.push(f);
        let mut heapprof = vec!["top", f];
        heapprof.extend(ours);
        let (theirs, ours) = unmatched(&pprof, &heapprof);
        assert_eq!(theirs, expected, "pprof {pprof:?}");
        assert_eq!(ours, theirs, "heapprof {heapprof:?}");
    }
}

fn label(key: &str, value: &str) -> Label {
    Label {
        key: key.into(),
        value: LabelValue::Str(value.into()),
    }
}

/// A service's heap: /users holds 3 MiB in 1 KiB objects for tenant a,
/// /orders 1 MiB in 64 KiB ones for tenant b, start-up 512 KiB unlabelled.
fn service() -> String {
    let names = ["main", "serve", "users", "orders", "init"];
    let mut profile = Profile {
        sample_types: vec![
            ValueType::new("alloc_space", "bytes"),
            ValueType::new("inuse_space", "bytes"),
        ],
        functions: names
            .iter()
            .map(|n| Function {
                name: n.to_string(),
                ..Function::default()
            })
            .collect(),
        locations: (0..names.len())
            .map(|function| Location {
                lines: vec![Line { function, line: 0 }],
                ..Location::default()
            })
            .collect(),
        ..Profile::default()
    };
    let bytes = |value| Label {
        key: "bytes".into(),
        value: LabelValue::Num {
            value,
            unit: String::new(),
        },
    };
    profile.samples = vec![
        Sample {
            locations: vec![2, 1, 0],
            values: vec![6 << 20, 3 << 20],
            labels: vec![
                label("endpoint", "/users"),
                label("tenant", "a"),
                bytes(1024),
            ],
        },
        Sample {
            locations: vec![3, 1, 0],
            values: vec![2 << 20, 1 << 20],
            labels: vec![
                label("endpoint", "/orders"),
                label("tenant", "b"),
                bytes(65536),
            ],
        },
        Sample {
            locations: vec![4, 0],
            values: vec![512 << 10, 512 << 10],
            labels: vec![],
        },
    ];
    let path = scratch("tag_parity", "service").join("service.pb.gz");
    std::fs::write(&path, profile.encode()).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_labelled_profile_gives_its_exact_figures() {
    let file = service();
    let f = file.as_str();
    assert_eq!(
        heapprof(&["tags", f]),
        "Type: inuse_space
bytes: 4MB, 88.89% of 4.50MB total, in 2 values
      flat  flat%   sum%   key%
       3MB 66.67% 66.67% 75.00%  1kB
       1MB 22.22% 88.89% 25.00%  64kB

endpoint: 4MB, 88.89% of 4.50MB total, in 2 values
      flat  flat%   sum%   key%
       3MB 66.67% 66.67% 75.00%  /users
       1MB 22.22% 88.89% 25.00%  /orders

tenant: 4MB, 88.89% of 4.50MB total, in 2 values
      flat  flat%   sum%   key%
       3MB 66.67% 66.67% 75.00%  a
       1MB 22.22% 88.89% 25.00%  b
"
    );
    let json: serde_json::Value =
        serde_json::from_str(&heapprof(&["tags", f, "--json", "-i", "alloc_space"])).unwrap();
    assert_eq!(json["total"], (8 << 20) + (512 << 10));
    assert_eq!(json["keys"][1]["key"], "endpoint");
    assert_eq!(json["keys"][1]["total"], 8 << 20);
    assert_eq!(json["keys"][1]["values"][0]["value"], "/users");
    assert_eq!(json["keys"][1]["values"][0]["flat"], 6 << 20);
    assert_eq!(json["keys"][1]["values"][1]["key_percent"], 25.0);
    assert_eq!(
        heapprof(&["top", f, "--tag-focus", "endpoint=/users"]),
        "Type: inuse_space
Active filters:
   tagfocus=endpoint=/users
Showing nodes accounting for 3MB, 66.67% of 4.50MB total
      flat  flat%   sum%        cum   cum%
       3MB 66.67% 66.67%        3MB 66.67%  users
         0     0% 66.67%        3MB 66.67%  main
         0     0% 66.67%        3MB 66.67%  serve
"
    );
    // Objects of 64 KiB or more: /orders alone; the others lack the key
    // or are smaller.
    assert_eq!(
        heapprof(&[
            "folded",
            f,
            "--tag-ignore",
            "bytes=:64kb",
            "--tag-root",
            "tenant,endpoint"
        ]),
        "<unknown>;<unknown>;main;init 524288\n"
    );
    assert_eq!(
        heapprof(&[
            "folded",
            f,
            "--tag-focus",
            "bytes=64kb:",
            "--tag-root",
            "tenant,endpoint"
        ]),
        "b;/orders;main;serve;orders 1048576\n"
    );
    assert_eq!(
        heapprof(&["folded", f, "--tag-leaf", "endpoint", "-i", "alloc_space"]),
        "main;init;<unknown> 524288\nmain;serve;orders;/orders 2097152\nmain;serve;users;/users 6291456\n"
    );
    let svg_dir = scratch("tag_parity", "svg");
    let svg = svg_dir.join("heap.svg");
    heapprof(&[
        "flamegraph",
        f,
        "-o",
        svg.to_str().unwrap(),
        "--tag-root",
        "endpoint",
    ]);
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.contains("<title>/users (3MB, 66.67%)</title>"), "{svg}");
    // The same figures as go tool pprof's.
    for index in ["0", "1"] {
        same(
            &strings(&["-tags", &format!("-sample_index={index}"), f]),
            &strings(&["tags", f, "--format", "pprof", "-i", index]),
        );
        same(
            &strings(&[
                "-top",
                "-tagroot=tenant,endpoint",
                "-tagfocus=bytes=64kb:",
                &format!("-sample_index={index}"),
                f,
            ]),
            &strings(&[
                "top",
                f,
                "--tag-root",
                "tenant,endpoint",
                "--tag-focus",
                "bytes=64kb:",
                "-i",
                index,
            ]),
        );
    }
}

#[test]
fn bad_tag_expressions_are_one_line_errors() {
    let file = service();
    for (flag, expression, message) in [
        ("--tag-focus", "endpoint=(", "heapprof: --tag-focus \"endpoint=(\": \"(\" is not a valid regex: "),
        ("--tag-ignore", "bytes=99999999999999999999:", "heapprof: --tag-ignore \"bytes=99999999999999999999:\": 99999999999999999999 is out of range for a label value"),
    ] {
        let args = ["top", file.as_str(), flag, expression];
        let out = Command::new(env!("CARGO_BIN_EXE_heapprof"))
            .args(args)
            .output()
            .unwrap();
        let stderr = common::one_line_error(&args, out);
        assert!(stderr.starts_with(message), "{stderr}");
    }
}

/// `heapprof diff` takes the label flags as `go tool pprof -base` does:
/// each profile's samples filtered by their own labels.
#[test]
fn diffs_take_label_flags_as_pprof_base_does() {
    let base = data("parca/pkg/query/testdata/many/1644509272337470000.pb.gz");
    let new = data("parca/pkg/query/testdata/many/1644509299337903000.pb.gz");
    for (pprof, ours) in [
        ("-tagfocus=bytes=1kb:", ["--tag-focus", "bytes=1kb:"]),
        ("-tagignore=bytes=:512b", ["--tag-ignore", "bytes=:512b"]),
        ("-tagroot=bytes", ["--tag-root", "bytes"]),
    ] {
        let mut heapprof = strings(&["diff", &base, &new]);
        heapprof.extend(strings(&ours));
        same(&strings(&["-top", pprof, "-base", &base, &new]), &heapprof);
    }
}

/// `-tags` counts the samples pprof's name filters leave: focus, ignore,
/// hide (a sample whose every frame is hidden goes), with and without the
/// pseudo frames of `-tagroot`, which the filters see too.
#[test]
fn tags_follow_the_name_filters_as_pprofs_do() {
    let cpu = data("pyroscope/pkg/og/convert/pprof/testdata/cpu-exemplars.pb.gz");
    let heap = data("parca/pkg/query/testdata/alloc_space_delta.pb.gz");
    let cases: [(&str, &[&str]); 8] = [
        (&cpu, &["focus", "work"]),
        (&cpu, &["ignore", "duffzero"]),
        (&cpu, &["hide", "."]),
        (&cpu, &["tag-root", "function", "focus", "^slow$"]),
        (&cpu, &["tag-root", "function", "hide", "."]),
        (&heap, &["focus", "parquet"]),
        (&heap, &["hide", "runtime"]),
        (&heap, &["ignore", "compress", "tag-focus", "bytes=1mb:"]),
    ];
    for (file, flags) in cases {
        let mut pprof = strings(&["-tags"]);
        let mut ours = strings(&["tags", file, "--format", "pprof"]);
        for pair in flags.chunks(2) {
            pprof.push(format!("-{}={}", pair[0].replace('-', ""), pair[1]));
            ours.extend([format!("--{}", pair[0]), pair[1].to_owned()]);
        }
        pprof.push(file.to_owned());
        same(&pprof, &ours);
    }
}
