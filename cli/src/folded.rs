//! `heapprof folded`: folded stacks, `root;caller;...;leaf value`, one line
//! per distinct stack, sorted. A `;` inside a function name (array types such
//! as `[u8; 32]`) is written as `:` so that it cannot split a frame.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;

use crate::args::FoldedArgs;
use crate::load;
use crate::stacks::Stack;

/// Runs `heapprof folded`.
pub fn run(args: &FoldedArgs, out: &mut dyn Write) -> Result<()> {
    let profile = load::profile(&args.profile)?;
    let selected = load::stacks(&args.profile, &profile, &args.selection)?;
    for line in lines(&selected.stacks) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `stacks` folded: identical stacks merged, zero totals left out, sorted.
pub fn fold_all(stacks: &[Stack]) -> Vec<(String, i64)> {
    let mut merged: BTreeMap<String, i64> = BTreeMap::new();
    for stack in stacks {
        *merged.entry(fold(stack)).or_default() += stack.value;
    }
    merged
        .into_iter()
        .filter(|&(_, value)| value != 0)
        .collect()
}

/// The folded lines of `stacks` (see [`fold_all`]).
pub fn lines(stacks: &[Stack]) -> Vec<String> {
    fold_all(stacks)
        .into_iter()
        .map(|(stack, value)| format!("{stack} {value}"))
        .collect()
}

fn fold(stack: &Stack) -> String {
    if stack.frames.is_empty() {
        return "[no frames]".to_owned();
    }
    let names: Vec<String> = stack
        .frames
        .iter()
        .rev()
        .map(|f| f.name.replace(';', ":"))
        .collect();
    names.join(";")
}
