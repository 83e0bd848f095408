//! `heapprof folded`: folded stacks, `root;caller;...;leaf value`, one line
//! per distinct stack, sorted. A `;` inside a function name (array types such
//! as `[u8; 32]`) is written as `:` so that it cannot split a frame.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;

use crate::args::FoldedArgs;
use crate::load;
use crate::stacks::{Names, Stack};

/// Runs `heapprof folded`.
pub fn run(args: &FoldedArgs, out: &mut dyn Write) -> Result<()> {
    let profile = load::profile(&args.profile)?;
    let mut names = Names::default();
    let selected = load::stacks(&args.profile, profile, &args.selection, &mut names)?;
    for line in lines(&selected.stacks, &names) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `stacks` folded: identical stacks merged (by function ids first, so that
/// names are joined once per distinct stack), zero totals left out, sorted.
pub fn fold_all(stacks: &[Stack], names: &Names) -> Vec<(String, i64)> {
    let mut merged: HashMap<Vec<u32>, i64> = HashMap::new();
    for stack in stacks {
        let ids = stack.frames.iter().rev().map(|f| f.function).collect();
        *merged.entry(ids).or_default() += stack.value;
    }
    let mut folded: Vec<(String, i64)> = merged
        .into_iter()
        .filter(|&(_, value)| value != 0)
        .map(|(ids, value)| (fold(&ids, names), value))
        .collect();
    folded.sort_unstable();
    folded
}

/// The folded lines of `stacks` (see [`fold_all`]).
pub fn lines(stacks: &[Stack], names: &Names) -> Vec<String> {
    fold_all(stacks, names)
        .into_iter()
        .map(|(stack, value)| format!("{stack} {value}"))
        .collect()
}

/// Root-first function ids as `root;...;leaf`.
fn fold(ids: &[u32], names: &Names) -> String {
    if ids.is_empty() {
        return "[no frames]".to_owned();
    }
    let mut folded = String::new();
    for (i, &id) in ids.iter().enumerate() {
        if i > 0 {
            folded.push(';');
        }
        let name = names.name(id);
        if name.contains(';') {
            folded.push_str(&name.replace(';', ":"));
        } else {
            folded.push_str(name);
        }
    }
    folded
}
