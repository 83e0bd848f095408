//! The bounds of labels: a value of a megabyte is cut to 256 bytes (at a
//! character boundary), and past 4096 label sets samples go to one
//! `labels=[other labels]` set, which the profile counts in a comment. A
//! binary of its own: the label-set table is the process's.

mod common;

use common::{go_pprof_ok, scratch_dir, str_label};
use heapprof::pprof::{LabelValue, Profile, Sample};

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

fn at_site<'a>(profile: &'a Profile, site: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
    profile.samples.iter().filter(move |s| {
        s.locations.iter().take(2).any(|&l| {
            profile.locations[l].lines.first().is_some_and(|line| {
                let name = &profile.functions[line.function].name;
                name.trim_end_matches("::{{closure}}")
                    .ends_with(&format!("::{site}"))
            })
        })
    })
}

#[inline(never)]
fn big_value_site() -> Box<[u8; 512]> {
    Box::new([1; 512])
}

#[inline(never)]
fn many_sets_site() -> Box<[u8; 640]> {
    Box::new([2; 640])
}

const SETS: usize = 5000;

#[test]
fn long_values_are_cut_and_too_many_sets_share_one() {
    heapprof::set_sample_rate(1);
    // A megabyte of two-byte characters with one byte in front: 256 bytes
    // would split a character, so the cut keeps 255.
    let huge = format!("x{}", "é".repeat(1 << 19));
    let big = heapprof::with_labels(&[("big", &huge), (&huge, "long key")], big_value_site);

    let kept: Vec<_> = (0..SETS)
        .map(|i| {
            let value = i.to_string();
            heapprof::with_labels(&[("n", &value)], many_sets_site)
        })
        .collect();
    let dir = scratch_dir("label-bounds");
    let path = dir.join("bounds.pb.gz");
    heapprof::write_heap_profile(&path).unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    let profile = Profile::decode(&std::fs::read(&path).unwrap()).unwrap();

    let sample = at_site(&profile, "big_value_site")
        .find(|s| s.values[3] == 512)
        .expect("the big value's sample");
    let value = str_label(sample, "big").expect("the big label");
    assert_eq!(value.len(), 255);
    assert!(value.starts_with("xéé") && value.ends_with('é'));
    let cut_key = sample
        .labels
        .iter()
        .find(|l| l.value == LabelValue::Str("long key".to_owned()))
        .expect("the long key");
    assert_eq!(cut_key.key.len(), 255);

    let samples: Vec<&Sample> = at_site(&profile, "many_sets_site")
        .filter(|s| s.values[2] > 0)
        .collect();
    let in_use: i64 = samples.iter().map(|s| s.values[2]).sum();
    assert_eq!(in_use, SETS as i64, "every block is still counted");
    let labelled: i64 = samples
        .iter()
        .filter(|s| str_label(s, "n").is_some())
        .map(|s| s.values[2])
        .sum();
    let other: i64 = samples
        .iter()
        .filter(|s| str_label(s, "labels") == Some("[other labels]"))
        .map(|s| s.values[2])
        .sum();
    assert_eq!(labelled + other, SETS as i64);
    assert!(labelled < 4096 && labelled > 4000, "{labelled} sets kept");
    // The other-labels set has no other label, not even the thread's.
    assert!(samples
        .iter()
        .filter(|s| str_label(s, "labels").is_some())
        .all(|s| str_label(s, "n").is_none() && str_label(s, "thread").is_none()));
    let said: i64 = profile
        .comments
        .iter()
        .find_map(|c| {
            c.strip_suffix(" samples carry [other labels]: their label sets found no room (at most 4096 sets, 4194304 bytes)")?
                .strip_prefix("heapprof: ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no comment: {:?}", profile.comments));
    assert!(said >= other, "{said} < {other}");

    // go tool pprof sees the one set.
    let tags = go_pprof_ok(&[
        "-tags",
        "-tagfocus=labels=other",
        "-sample_index=inuse_objects",
        path.to_str().unwrap(),
    ]);
    assert!(tags.contains("[other labels]"), "{tags}");
    drop((big, kept));
}
