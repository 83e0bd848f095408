//! `heapprof report`, proved where it is used: in a real browser (headless
//! chromium through chromedriver, see `report/browser.rs`). The tests read
//! the rendered page, not the file: the chart's SVG is there, the leak's
//! row heads the ranking, a click on a snapshot redraws the top table, and
//! a screenshot is kept. Bad input is one line naming the file.
//!
//! The first test runs this test binary again as a program that leaks and
//! caches under heapprof with interval dumps, and reports on those dumps:
//! end to end, from the runtime to the page.

#[path = "report/browser.rs"]
mod browser;
mod common;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use browser::Browser;
use heapprof_pprof::{Function, Line, Location, Profile, Sample, ValueType};
use serde_json::Value;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// 2023-11-14, in Unix nanoseconds: when the hand-made profiles are taken.
const EPOCH: i64 = 1_700_000_000_000_000_000;

fn heapprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heapprof"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `heapprof report ARGS -o PAGE`, asserting that it succeeded quietly.
fn report(args: &[&str], page: &Path) {
    let mut all = vec!["report"];
    all.extend(args);
    all.extend(["-o", page.to_str().unwrap()]);
    let out = heapprof(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "heapprof {all:?}: {stderr}");
    assert!(stderr.is_empty(), "heapprof {all:?}: {stderr}");
}

/// Leaks 256 KiB a call: what the ranking must put first.
#[inline(never)]
fn leak_connection_buffers(leaked: &mut Vec<Vec<u8>>) {
    leaked.push(vec![1u8; 256 << 10]);
}

/// Caches a 128 KiB entry, evicting the oldest once the cache is `full`.
#[inline(never)]
fn cache_insert(cache: &mut VecDeque<Vec<u8>>, full: bool) {
    cache.push_back(vec![2u8; 128 << 10]);
    if full {
        cache.pop_front();
    }
}

/// The files in `dir`.
fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Leaks and caches, 50 ms a round, until `HEAPPROF_TEST_DUMPS` interval
/// dumps are on disk in `HEAPPROF_TEST_DIR` (15 s at most). The cache
/// grows until the fourth dump, then holds its size: bounded, whatever the
/// pace of the dumps on a busy machine.
#[test]
#[ignore = "run with HEAPPROF set by a_dump_series_with_a_leak_in_a_real_browser"]
fn leaking_child() {
    let dir = PathBuf::from(std::env::var("HEAPPROF_TEST_DIR").unwrap());
    let wanted: usize = std::env::var("HEAPPROF_TEST_DUMPS")
        .unwrap()
        .parse()
        .unwrap();
    let (mut leaked, mut cache) = (Vec::new(), VecDeque::new());
    let mut rounds = 0;
    loop {
        let dumps = files_in(&dir);
        if dumps >= wanted || rounds == 300 {
            break;
        }
        leak_connection_buffers(&mut leaked);
        cache_insert(&mut cache, dumps >= 4);
        std::thread::sleep(Duration::from_millis(50));
        rounds += 1;
    }
    std::hint::black_box((&leaked, &cache));
}

/// The first row of the ranking, the selected snapshot's index and table.
fn page_state(browser: &Browser) -> Value {
    browser.eval(
        "const cells = r => Array.from(r.cells, c => c.textContent);
         return {
           chart: document.querySelector('#chart') instanceof SVGSVGElement,
           hits: document.querySelectorAll('#chart .hit').length,
           areas: document.querySelectorAll('#chart polygon.area').length,
           leak: Array.from(document.querySelectorAll('#leaks tbody tr'), cells),
           selected: document.getElementById('selected').dataset.index,
           table: Array.from(document.querySelectorAll('#selected-top tbody tr'), cells),
           notes: document.getElementById('selected-notes').textContent,
           frames: document.querySelectorAll('#selected-flame .frame').length,
           classes: Array.from(document.querySelectorAll('#selected-classes td.name'),
             c => c.textContent),
           files: JSON.parse(document.getElementById('heapprof-data').textContent)
             .snapshots.map(s => s.file),
         };",
    )
}

#[test]
fn a_dump_series_with_a_leak_in_a_real_browser() {
    let dir = common::scratch("report", "series");
    let dumps = dir.join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    let spec = format!(
        "rate=16k,interval=200ms,dump={}/heap-%p-%t.pb.gz",
        dumps.display()
    );
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "leaking_child", "--nocapture"])
        .env("HEAPPROF", &spec)
        .env("HEAPPROF_TEST_DIR", &dumps)
        .env("HEAPPROF_TEST_DUMPS", "12")
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let dumped = files_in(&dumps);
    assert!(dumped >= 12, "{dumped} dumps");

    let page = dir.join("report.html");
    report(&[dumps.to_str().unwrap()], &page);
    let browser = Browser::start(&dir);
    browser.open(&page);
    let before = page_state(&browser);
    assert_eq!(before["chart"], true, "{before}");
    assert_eq!(before["hits"], dumped, "{before}");
    assert!(before["areas"].as_u64().unwrap() >= 2, "{before}");
    let leak = &before["leak"][0];
    assert!(
        leak[1]
            .as_str()
            .unwrap()
            .ends_with("leak_connection_buffers"),
        "{before}"
    );
    assert_eq!(leak[2], "growing", "{before}");
    let cache_rank = before["leak"]
        .as_array()
        .unwrap()
        .iter()
        .position(|row| row[1].as_str().unwrap().ends_with("cache_insert"));
    assert!(cache_rank.is_some_and(|r| r > 0), "{before}");
    let cache = &before["leak"][cache_rank.unwrap()];
    assert_eq!(cache[2], "bounded", "{before}");
    // The last snapshot is selected first; a click selects the first.
    assert_eq!(before["selected"], (dumped - 1).to_string());
    browser.click("#chart .hit[data-index='0']");
    let after = page_state(&browser);
    assert_eq!(after["selected"], "0", "{after}");
    assert_ne!(before["table"], after["table"], "{after}");
    assert!(after["frames"].as_u64().unwrap() > 1, "{after}");
    // heapprof's dumps carry the memory classes: the table shows them.
    let classes = after["classes"].as_array().unwrap();
    assert!(
        classes.contains(&"rss".into()) && classes.contains(&"heap_free".into()),
        "{after}"
    );
    // The table is `heapprof top -n 30`'s, to the byte.
    let first = after["files"][0].as_str().unwrap();
    let top = String::from_utf8(heapprof(&["top", "-n", "30", first]).stdout).unwrap();
    let notes = after["notes"].as_str().unwrap();
    assert!(top.contains(notes), "{notes:?} not in\n{top}");
    let row = &after["table"][0];
    let cells: Vec<&str> = row
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let line = format!(
        "{:>10} {:>6} {:>6} {:>10} {:>6}  {}",
        cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
    );
    assert!(top.contains(&line), "{line:?} not in\n{top}");

    browser.eval("window.scrollTo(0, 0); return 0;");
    let screenshot = dir.join("report.png");
    browser.screenshot(&screenshot);
    assert!(std::fs::read(&screenshot).unwrap().starts_with(b"\x89PNG"));
    println!("screenshot: {}", screenshot.display());
}

/// A profile of `stacks` (root first, `;`-separated, with in-use bytes)
/// taken `second`s after [`EPOCH`].
fn profile(second: i64, sample_types: &[(&str, &str)], stacks: &[(&str, i64)]) -> Profile {
    let mut profile = Profile {
        sample_types: sample_types
            .iter()
            .map(|(t, u)| ValueType::new(t, u))
            .collect(),
        time_nanos: EPOCH + second * 1_000_000_000,
        ..Profile::default()
    };
    let mut known: HashMap<&str, usize> = HashMap::new();
    for (stack, value) in stacks {
        let mut locations = Vec::new();
        for name in stack.split(';').rev() {
            let function = match known.get(name) {
                Some(&f) => f,
                None => {
                    known.insert(name, profile.functions.len());
                    profile.functions.push(Function {
                        name: name.to_owned(),
                        ..Function::default()
                    });
                    profile.locations.push(Location {
                        lines: vec![Line {
                            function: profile.functions.len() - 1,
                            line: 1,
                        }],
                        ..Location::default()
                    });
                    profile.functions.len() - 1
                }
            };
            locations.push(function);
        }
        profile.samples.push(Sample {
            locations,
            values: vec![*value; sample_types.len()],
            labels: vec![],
        });
    }
    profile
}

const INUSE: &[(&str, &str)] = &[("inuse_space", "bytes")];

/// A name that HTML and JSON must escape.
const AWKWARD: &str = r#"<Vec<u8> as Clone>::clone & "co" </script>"#;

#[test]
fn one_profile_is_a_report_without_a_chart() {
    let dir = common::scratch("report", "one");
    let heap = dir.join("heap.pb.gz");
    let stacks = [
        (format!("main;{AWKWARD}"), 3 << 20),
        ("main;parse".to_owned(), 1 << 20),
    ];
    let stacks: Vec<(&str, i64)> = stacks.iter().map(|(s, v)| (s.as_str(), *v)).collect();
    std::fs::write(&heap, profile(0, INUSE, &stacks).encode()).unwrap();
    let page = dir.join("one.html");
    report(&[heap.to_str().unwrap()], &page);
    let browser = Browser::start(&dir);
    browser.open(&page);
    let state = page_state(&browser);
    assert_eq!(state["chart"], false, "{state}");
    assert_eq!(state["leak"], Value::Array(vec![]), "{state}");
    assert_eq!(state["selected"], "0", "{state}");
    assert_eq!(state["table"][0][5], AWKWARD, "{state}");
    let title = browser.eval(
        "return [document.title, document.querySelector('#last pre').textContent,
                 document.querySelectorAll('object.flamegraph').length];",
    );
    assert_eq!(title[0], "heapprof: heap.pb.gz", "{title}");
    assert!(title[1].as_str().unwrap().contains(AWKWARD), "{title}");
    assert_eq!(title[2], 1, "{title}");
    browser.screenshot(&dir.join("one.png"));
}

/// The one line of a failed `heapprof report`.
fn report_error(args: &[&str]) -> String {
    let mut all = vec!["report"];
    all.extend(args);
    let out = heapprof(&all);
    common::one_line_error(&all, out)
}

#[test]
fn bad_input_is_one_line_naming_the_file() {
    let dir = common::scratch("report", "bad");
    let page = dir.join("report.html");
    let page = page.to_str().unwrap();
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let error = report_error(&[empty.to_str().unwrap(), "-o", page]);
    assert!(
        error.contains(&format!("{}: no files in the directory", empty.display())),
        "{error}"
    );

    let dumps = dir.join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    for second in 0..3 {
        let heap = profile(second, INUSE, &[("main;leak", (second + 1) << 20)]);
        std::fs::write(dumps.join(format!("heap-{second}.pb.gz")), heap.encode()).unwrap();
    }
    // Hidden files (a dump being written) are not among the dumps.
    std::fs::write(dumps.join(".heap-3.pb.gz.tmp"), "half a dump").unwrap();
    report(&[dumps.to_str().unwrap()], &dir.join("hidden.html"));
    let notes = dumps.join("heap-1.txt");
    std::fs::write(&notes, "not a profile\n").unwrap();
    let error = report_error(&[dumps.to_str().unwrap(), "-o", page]);
    assert!(
        error.starts_with(&format!("heapprof: {}: ", notes.display())),
        "{error}"
    );
    std::fs::remove_file(&notes).unwrap();

    let cpu = dumps.join("heap-9.pb.gz");
    let cpu_profile = profile(
        9,
        &[("samples", "count"), ("cpu", "nanoseconds")],
        &[("main;spin", 10)],
    );
    std::fs::write(&cpu, cpu_profile.encode()).unwrap();
    let error = report_error(&[dumps.to_str().unwrap(), "-o", page]);
    assert!(error.contains(cpu.to_str().unwrap()), "{error}");
    assert_eq!(error.matches(cpu.to_str().unwrap()).count(), 1, "{error}");
    std::fs::remove_file(&cpu).unwrap();

    let missing = dir.join("no-such.pb.gz");
    let error = report_error(&[missing.to_str().unwrap(), "-o", page]);
    assert!(error.contains(missing.to_str().unwrap()), "{error}");

    let error = report_error(&[dumps.to_str().unwrap(), "-o", "/no/such/dir/report.html"]);
    assert!(
        error.contains("cannot write /no/such/dir/report.html"),
        "{error}"
    );
    assert!(!Path::new(page).exists());
}

/// A program whose flamegraph is as wide as a page could be asked to
/// carry: 8 subsystems of 8 modules of 4 functions, each module's work
/// under a chain of 10 frames, so that more frames than the page keeps
/// are above its 0.5% cut; values change from dump to dump.
fn wide_profile(dump: i64) -> Profile {
    let mut stacks = Vec::new();
    for subsystem in 0..8 {
        for module in 0..8 {
            let chain: Vec<String> = (0..10)
                .map(|depth| format!("app::sub_{subsystem}::mod_{module}::step_{depth}"))
                .collect();
            for function in 0..4 {
                let stack = format!(
                    "main;app::sub_{subsystem}::run;{};app::sub_{subsystem}::mod_{module}::work_{function}<T>",
                    chain.join(";")
                );
                let value = (1 + (subsystem * 32 + module * 4 + function + dump) % 97) << 12;
                stacks.push((stack, value));
            }
        }
    }
    let stacks: Vec<(&str, i64)> = stacks.iter().map(|(s, v)| (s.as_str(), *v)).collect();
    profile(dump, INUSE, &stacks)
}

#[test]
fn five_hundred_dumps_make_a_page_under_5_mb() {
    let dir = common::scratch("report", "500");
    let dumps = dir.join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    for dump in 0..500 {
        let path = dumps.join(format!("heap-{dump:03}.pb.gz"));
        std::fs::write(path, wide_profile(dump).encode()).unwrap();
    }
    let page = dir.join("report.html");
    report(&[dumps.to_str().unwrap()], &page);
    let size = std::fs::metadata(&page).unwrap().len();
    println!("500 dumps: {} bytes", size);
    assert!(size < 5 << 20, "{size} bytes");
}

#[test]
fn help_has_an_example() {
    let out = heapprof(&["report", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("Example:") && help.contains("heapprof report dumps/ -o report.html"),
        "{help}"
    );
}
