//! `heapprof diff BASE NEW`: where memory grew. The top table of NEW minus
//! BASE (what `go tool pprof -top -base BASE NEW` shows), and optionally a
//! differential flamegraph in which growth is red and shrinkage blue.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};

use crate::args::{DiffArgs, Selection};
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
    // Percentages are of the whole difference, before --focus and friends:
    // the same as `changed` unless a filter was given.
    let filtered = [&by_name.focus, &by_name.ignore, &by_name.hide]
        .iter()
        .any(|f| f.is_some());
    let total = if filtered {
        let unfiltered = Selection {
            sample_index: by_name.sample_index.clone(),
            ..Selection::default()
        };
        graph::total(&difference(
            &load::stacks(&args.base, base, &unfiltered, &mut names)?.stacks,
            &load::stacks(&args.new, new, &unfiltered, &mut names)?.stacks,
        ))
    } else {
        graph::total(&changed)
    };

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
