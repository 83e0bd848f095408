//! `heapprof diff BASE NEW`: where memory grew. The top table of NEW minus
//! BASE (what `go tool pprof -top -base BASE NEW` shows), and optionally a
//! differential flamegraph in which growth is red and shrinkage blue.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};

use heapprof::pprof::{Location, Profile};

use crate::args::{DiffArgs, Selection};
use crate::fasthash::IdMap;
use crate::graph::{self, TopOptions};
use crate::stacks::{Frame, Names, Stack};
use crate::{flamegraph, folded, load, top};

/// Runs `heapprof diff`.
pub fn run(args: &DiffArgs, out: &mut dyn Write) -> Result<()> {
    let base = load::profile(&args.base)?;
    let new = load::profile(&args.new)?;
    let new_index = load::sample_index(&args.new, new, &args.selection)?;
    let sample_type = &new.sample_types[new_index];
    // The same sample type in both, found by name; one name table for both.
    let by_name = Selection {
        sample_index: Some(sample_type.r#type.clone()),
        ..args.selection.clone()
    };
    let mut names = Names::default();
    let base_stacks = load::stacks(&args.base, base, &by_name, &mut names)?.stacks;
    let new_stacks = load::stacks(&args.new, new, &by_name, &mut names)?.stacks;
    let changed = difference(&base_stacks, &new_stacks);
    // Percentages are of the whole difference, before --focus and friends.
    let base_index = load::sample_index(&args.base, base, &by_name)?;
    let total = merged_total(base, base_index, new, new_index);

    let options = TopOptions {
        node_count: args.node_count.unwrap_or(0),
        ..TopOptions::default()
    };
    let table = graph::top(&changed, &names, total, &options);
    writeln!(out, "Type: {} (new - base)", sample_type.r#type)?;
    top::write_table(&sample_type.unit, &table, out)?;

    if let Some(path) = &args.flamegraph {
        let mut lines = Vec::new();
        inferno::differential::from_readers(
            inferno::differential::Options::default(),
            folded::lines(&base_stacks, &names).join("\n").as_bytes(),
            folded::lines(&new_stacks, &names).join("\n").as_bytes(),
            &mut lines,
        )
        .context("comparing the stacks")?;
        let lines: Vec<String> = String::from_utf8(lines)?
            .lines()
            .map(str::to_owned)
            .collect();
        let title = format!(
            "{}: growth from base (red) and shrinkage (blue)",
            sample_type.r#type
        );
        flamegraph::write_differential(&lines, sample_type, &title, path)?;
    }
    Ok(())
}

/// The total that percentages of a diff are of, as pprof computes it: the
/// two profiles merged as `-base` merges them (BASE negated; samples are the
/// same if their locations and labels are, a location being its address in
/// its mapping and its lines), then the sum of |value| over the merged
/// samples. Unfiltered: filters do not change it. Samples that differ only
/// by a label (Go's object size) or by an address in the same function stay
/// apart, so this is not the sum over the merged stacks.
fn merged_total(base: &Profile, base_index: usize, new: &Profile, new_index: usize) -> i64 {
    let mut locations: IdMap<LocationKey, u32> = IdMap::default();
    let mut merged: IdMap<(Vec<u32>, Vec<String>), i64> = IdMap::default();
    for (profile, index, sign) in [(base, base_index, -1), (new, new_index, 1)] {
        let ids: Vec<u32> = profile
            .locations
            .iter()
            .map(|location| {
                let key = LocationKey::of(profile, location);
                let next = locations.len() as u32;
                *locations.entry(key).or_insert(next)
            })
            .collect();
        for sample in &profile.samples {
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|l| format!("{}={:?}", l.key, l.value))
                .collect();
            labels.sort_unstable();
            let key = (sample.locations.iter().map(|&l| ids[l]).collect(), labels);
            *merged.entry(key).or_default() += sign * sample.values[index];
        }
    }
    merged.values().map(|v| v.abs()).sum()
}

/// What makes two locations of two profiles the same one for pprof's merge.
#[derive(Hash, PartialEq, Eq)]
struct LocationKey {
    /// (size, file offset, build id or else file name) of the mapping.
    mapping: Option<(u64, u64, String)>,
    /// The address, relative to the mapping's start when there is one.
    address: u64,
    /// (function name, system name, file, start line, line) per line.
    lines: Vec<(String, String, String, i64, i64)>,
    folded: bool,
}

impl LocationKey {
    fn of(profile: &Profile, location: &Location) -> LocationKey {
        let mapping = location.mapping.and_then(|m| profile.mappings.get(m));
        LocationKey {
            mapping: mapping.map(|m| {
                let id = if m.build_id.is_empty() {
                    &m.filename
                } else {
                    &m.build_id
                };
                (
                    m.memory_limit.wrapping_sub(m.memory_start),
                    m.file_offset,
                    id.clone(),
                )
            }),
            address: location
                .address
                .wrapping_sub(mapping.map_or(0, |m| m.memory_start)),
            lines: location
                .lines
                .iter()
                .map(|line| {
                    let f = &profile.functions[line.function];
                    let names = (f.name.clone(), f.system_name.clone(), f.filename.clone());
                    (names.0, names.1, names.2, f.start_line, line.line)
                })
                .collect(),
            folded: location.is_folded,
        }
    }
}

/// NEW minus BASE: identical stacks (same frames) added up, so that
/// unchanged ones cancel, and zeros left out.
fn difference(base: &[Stack], new: &[Stack]) -> Vec<Stack> {
    let mut index: HashMap<&[Frame], usize> = HashMap::new();
    let mut merged: Vec<Stack> = Vec::new();
    let negated = base.iter().map(|s| (s, -s.value));
    for (stack, value) in negated.chain(new.iter().map(|s| (s, s.value))) {
        match index.get(&stack.frames[..]) {
            Some(&i) => merged[i].value += value,
            None => {
                index.insert(&stack.frames, merged.len());
                merged.push(Stack {
                    frames: stack.frames.clone(),
                    value,
                });
            }
        }
    }
    merged.retain(|s| s.value != 0);
    merged
}
