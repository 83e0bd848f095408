//! `heapprof diff BASE NEW`: where memory grew. The top table of NEW minus
//! BASE (what `go tool pprof -top -base BASE NEW` shows), and optionally a
//! differential flamegraph in which growth is red and shrinkage blue.

use std::io::Write;

use anyhow::{Context, Result};

use crate::args::{DiffArgs, Selection};
use crate::graph::{self, TopOptions};
use crate::stacks::{Frame, Stack};
use crate::{flamegraph, folded, load, top};

/// Runs `heapprof diff`.
pub fn run(args: &DiffArgs, out: &mut dyn Write) -> Result<()> {
    let base = load::profile(&args.base)?;
    let new = load::profile(&args.new)?;
    let new_index = load::sample_index(&args.new, &new, &args.selection)?;
    let sample_type = &new.sample_types[new_index];
    // The same sample type in both, found by name.
    let by_name = Selection {
        sample_index: Some(sample_type.r#type.clone()),
        ..args.selection.clone()
    };
    let base_stacks = load::stacks(&args.base, &base, &by_name)?.stacks;
    let new_stacks = load::stacks(&args.new, &new, &by_name)?.stacks;

    let base_lines = folded::lines(&base_stacks);
    let new_lines = folded::lines(&new_stacks);
    let mut difference: Vec<Stack> = base_stacks
        .iter()
        .map(|s| Stack {
            value: -s.value,
            ..s.clone()
        })
        .collect();
    difference.extend(new_stacks.iter().cloned());
    let difference = merge(difference);
    // Percentages are of the whole difference, before --focus and friends.
    let unfiltered = Selection {
        sample_index: by_name.sample_index.clone(),
        ..Selection::default()
    };
    let mut whole: Vec<Stack> = load::stacks(&args.base, &base, &unfiltered)?
        .stacks
        .into_iter()
        .map(|s| Stack {
            value: -s.value,
            ..s
        })
        .collect();
    whole.extend(load::stacks(&args.new, &new, &unfiltered)?.stacks);
    let total = graph::total(&merge(whole));

    let options = TopOptions {
        node_count: args.node_count.unwrap_or(0),
        ..TopOptions::default()
    };
    let table = graph::top(&difference, total, &options);
    writeln!(out, "Type: {} (new - base)", sample_type.r#type)?;
    top::write_table(&sample_type.unit, &table, out)?;

    if let Some(path) = &args.flamegraph {
        let mut lines = Vec::new();
        inferno::differential::from_readers(
            inferno::differential::Options::default(),
            base_lines.join("\n").as_bytes(),
            new_lines.join("\n").as_bytes(),
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

/// Adds up identical stacks (same frames), so that unchanged stacks cancel.
fn merge(stacks: Vec<Stack>) -> Vec<Stack> {
    let mut index: std::collections::HashMap<Vec<Frame>, usize> = std::collections::HashMap::new();
    let mut merged: Vec<Stack> = Vec::new();
    for stack in stacks {
        match index.get(&stack.frames) {
            Some(&i) => merged[i].value += stack.value,
            None => {
                index.insert(stack.frames.clone(), merged.len());
                merged.push(stack);
            }
        }
    }
    merged.retain(|s| s.value != 0);
    merged
}
