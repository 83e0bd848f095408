//! The timeline's fast way to a dump's sites (by leaf function, without
//! filters: no stacks built) agrees with the way through pprof's filtered
//! stacks, on every protobuf profile of the corpus of other producers'
//! profiles beside the checkout (Go, Java, Node, Python, Ruby, .NET,
//! pprof-rs, eBPF agents, gperftools): the same sites, values and
//! sampling errors.

use std::path::{Path, PathBuf};

use heapprof_pprof::Profile;
use heapprof_report::timeline::{Builder, Options, Site};
use heapprof_report::{Filters, Selection};
use regex::Regex;

fn corpus() -> PathBuf {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/pprof-corpus");
    assert!(
        corpus.join("README.md").is_file(),
        "the pprof corpus is missing at {}",
        corpus.display()
    );
    corpus
}

fn files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, into);
        } else {
            into.push(path);
        }
    }
}

/// Each site's (name, last value, error), sorted.
fn sites(options: &Options, profile: &Profile) -> Vec<(String, i64, f64)> {
    let mut profile = profile.clone();
    if profile.time_nanos == 0 {
        profile.time_nanos = 1;
    }
    let mut builder = Builder::new(options);
    builder.add("p", &profile).unwrap();
    let mut sites: Vec<(String, i64, f64)> = builder
        .finish()
        .unwrap()
        .sites
        .iter()
        .map(|s: &Site| (s.function.clone(), s.last_inuse_bytes, s.inuse_error[0]))
        .collect();
    sites.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    sites
}

/// The same sites and values, and errors equal but for the order of the
/// sums (which the builder keeps to seven digits).
fn assert_same(fast: &[(String, i64, f64)], slow: &[(String, i64, f64)], what: &str) {
    let names = |sites: &[(String, i64, f64)]| -> Vec<(String, i64)> {
        sites.iter().map(|s| (s.0.clone(), s.1)).collect()
    };
    assert_eq!(names(fast), names(slow), "{what}");
    for (f, s) in fast.iter().zip(slow) {
        assert!(
            (f.2 - s.2).abs() <= 1e-5 * f.2.max(s.2) + 1e-9,
            "{what}: {} error {} vs {}",
            f.0,
            f.2,
            s.2
        );
    }
}

#[test]
fn leaf_sites_are_those_of_the_filtered_stacks_on_every_corpus_profile() {
    let mut paths = Vec::new();
    files(&corpus(), &mut paths);
    // A filter that matches nothing takes the way through the stacks.
    let never = Options {
        selection: Selection {
            filters: Filters {
                ignore: Some(Regex::new(r"[^\s\S]").unwrap()),
                ..Filters::default()
            },
            ..Selection::default()
        },
        ..Options::default()
    };
    let mut compared = 0;
    for path in paths {
        let Ok(profile) = Profile::decode(&std::fs::read(&path).unwrap()) else {
            continue;
        };
        if profile.sample_types.is_empty() {
            continue;
        }
        for index in 0..profile.sample_types.len() {
            let at = |options: &Options| Options {
                selection: Selection {
                    sample_index: Some(index.to_string()),
                    ..options.selection.clone()
                },
                ..options.clone()
            };
            let fast = sites(&at(&Options::default()), &profile);
            let through_stacks = sites(&at(&never), &profile);
            assert_same(
                &fast,
                &through_stacks,
                &format!("{} at {index}", path.display()),
            );
        }
        compared += 1;
    }
    assert!(compared > 100, "only {compared} profiles");
}
