//! `-` reads the profile from stdin, for every subcommand that reads one:
//! the same output as from the file, and errors that name it `<stdin>`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// heapprof `args` with `stdin` (a file, or nothing) as its standard input.
fn heapprof(args: &[&str], stdin: Option<&Path>) -> Output {
    let stdin = stdin.map_or_else(Stdio::null, |p| Stdio::from(File::open(p).unwrap()));
    Command::new(env!("CARGO_BIN_EXE_heapprof"))
        .args(args)
        .stdin(stdin)
        .output()
        .expect("run heapprof")
}

fn ok(args: &[&str], stdin: Option<&Path>) -> String {
    let out = heapprof(args, stdin);
    assert!(
        out.status.success(),
        "heapprof {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn one_line_error(args: &[&str], stdin: Option<&Path>) -> String {
    common::one_line_error(args, heapprof(args, stdin))
}

#[test]
fn a_dash_reads_the_profile_from_stdin() {
    let profile = data("synthetic.pb.gz");
    let p = profile.to_str().unwrap();
    let from = Some(profile.as_path());
    for args in [
        &["top", "-i", "alloc_space"][..],
        &["top", "--json"],
        &["folded"],
    ] {
        let file = ok(&[args, &[p]].concat(), None);
        assert_eq!(ok(&[args, &["-"]].concat(), from), file, "{args:?}");
    }
    let diff = ok(&["diff", p, p], None);
    assert_eq!(ok(&["diff", "-", p], from), diff);
    assert_eq!(ok(&["diff", p, "-"], from), diff);
    assert_eq!(
        ok(&["info", "-"], from),
        ok(&["info", p], None).replace(p, "<stdin>")
    );

    let dir = common::scratch("stdin", "flamegraph");
    let svg = dir.join("stdin.svg");
    ok(&["flamegraph", "-", "-o", svg.to_str().unwrap()], from);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.contains("app::serve") && svg.contains("&lt;stdin&gt;"));

    // symbolize reads stdin as any other file: the same outcome.
    let out = dir.join("symbolized.pb.gz");
    let o = out.to_str().unwrap();
    let by_file = heapprof(&["symbolize", p, "-o", o], None);
    let by_stdin = heapprof(&["symbolize", "-", "-o", o], from);
    assert_eq!(by_stdin.status.code(), by_file.status.code());
    assert_eq!(
        String::from_utf8_lossy(&by_stdin.stderr),
        String::from_utf8_lossy(&by_file.stderr).replace(p, "<stdin>")
    );
}

#[test]
fn errors_name_stdin() {
    let profile = data("synthetic.pb.gz");
    let from = Some(profile.as_path());
    let empty = one_line_error(&["top", "-"], None);
    assert_eq!(empty, "heapprof: <stdin>: parsing profile: empty input\n");
    let bad_index = one_line_error(&["folded", "-", "-i", "bogus"], from);
    assert!(
        bad_index.starts_with("heapprof: <stdin>: sample index \"bogus\""),
        "{bad_index}"
    );
    let twice = one_line_error(&["diff", "-", "-"], from);
    assert_eq!(
        twice,
        "heapprof: BASE and NEW cannot both be - (stdin holds one profile)\n"
    );
    let unnamed = one_line_error(&["symbolize", "-"], from);
    assert_eq!(
        unnamed,
        "heapprof: a profile read from - (stdin) needs --output (-o) for the symbolized one\n"
    );
}
