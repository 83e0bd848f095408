//! The frame-pointer unwinder on a real binary built with frame pointers:
//! `tests/data/fp-program`, compiled by this test with
//! `-C force-frame-pointers=yes` (offline, from this workspace's lock file).
//! heapprof must choose frame pointers there and get the program's call
//! chain, in order, under the allocation site.

mod common;

use std::path::Path;
use std::process::Command;

use heapprof::pprof::Profile;

#[test]
fn frame_pointer_stacks_follow_the_call_chain() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fp-program");
    std::fs::create_dir_all(work.join("src")).unwrap();
    let manifest = std::fs::read_to_string(root.join("tests/data/fp-program/Cargo.toml"))
        .unwrap()
        .replace("HEAPPROF_PATH", root.to_str().unwrap());
    std::fs::write(work.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(
        root.join("tests/data/fp-program/src/main.rs"),
        work.join("src/main.rs"),
    )
    .unwrap();
    std::fs::copy(root.join("Cargo.lock"), work.join("Cargo.lock")).unwrap();

    let build = Command::new(env!("CARGO"))
        .args(["build", "--release", "--offline", "--quiet"])
        .current_dir(&work)
        .env("RUSTFLAGS", "-C force-frame-pointers=yes")
        .env("CARGO_TARGET_DIR", work.join("target"))
        .output()
        .expect("run cargo");
    assert!(
        build.status.success(),
        "building the frame-pointer program failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );

    let out = work.join("heap.pb.gz");
    let status = Command::new(work.join("target/release/fp-program"))
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let profile = Profile::decode(&std::fs::read(&out).unwrap()).unwrap();
    common::assert_walked_by(&profile, "by frame pointers");

    // Every sample of the site: 64 blocks of 4 KiB at rate 1, exactly, with
    // the call chain under it.
    let [objects, space, ..] = common::site_totals(&profile, "leaf_site", None);
    assert_eq!((objects, space), (64, 64 * 4096));
    let name = |l: usize| {
        let line = profile.locations[l].lines.last().expect("symbolized");
        profile.functions[line.function].name.clone()
    };
    for sample in &profile.samples {
        let names: Vec<String> = sample.locations.iter().map(|&l| name(l)).collect();
        if !names[0].ends_with("::leaf_site") {
            continue;
        }
        let chain: Vec<&str> = names[..5]
            .iter()
            .map(|n| n.rsplit("::").next().unwrap())
            .collect();
        assert_eq!(
            chain,
            ["leaf_site", "level_c", "level_b", "level_a", "main"]
        );
    }
    common::go_pprof_ok(&["-top", out.to_str().unwrap()]);
}
