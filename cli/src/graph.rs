//! Function-level flat/cum figures, computed as `go tool pprof` computes
//! them for `-top`: flat goes to the leaf frame, cum to every distinct
//! function of a stack once, nodes whose |cum| is under the node fraction of
//! the total are dropped and the figures recomputed without them (so a
//! dropped leaf's flat moves to its caller), then the top N are kept the same
//! way.

use std::collections::{HashMap, HashSet};

use crate::stacks::{Frame, Stack};

/// A function's identity in the graph: its name and file.
pub type NodeKey<'p> = (&'p str, &'p str);

/// One row of a top table.
#[derive(Clone, Debug, PartialEq)]
pub struct Node<'p> {
    /// The function's name.
    pub name: &'p str,
    /// Its file.
    pub file: &'p str,
    /// Value of the samples where this function is the leaf.
    pub flat: i64,
    /// Value of the samples whose stack contains this function.
    pub cum: i64,
    /// Some callers reach it inlined ...
    pub inlined_in: bool,
    /// ... and some through a real call.
    pub called_in: bool,
}

impl Node<'_> {
    /// pprof's marker after the name: " (inline)" or " (partial-inline)".
    pub fn inline_label(&self) -> &'static str {
        match (self.inlined_in, self.called_in) {
            (true, false) => " (inline)",
            (true, true) => " (partial-inline)",
            _ => "",
        }
    }
}

/// Options of a top table.
#[derive(Clone, Debug)]
pub struct TopOptions {
    /// Drop nodes whose |cum| is below this fraction of the total (pprof: 0.005).
    pub node_fraction: f64,
    /// Keep at most this many rows (0: all).
    pub node_count: usize,
    /// Sort by cum instead of flat.
    pub cum_sort: bool,
}

impl Default for TopOptions {
    fn default() -> Self {
        TopOptions {
            node_fraction: 0.005,
            node_count: 0,
            cum_sort: false,
        }
    }
}

/// A computed top table.
#[derive(Clone, Debug)]
pub struct Top<'p> {
    /// Rows, sorted.
    pub nodes: Vec<Node<'p>>,
    /// Sum of |value| over all stacks: the 100% of the percentages.
    pub total: i64,
    /// Nodes dropped for being under the cutoff.
    pub dropped: usize,
    /// The cutoff, in sample units.
    pub cutoff: i64,
    /// Nodes left before the top N were taken.
    pub before_count: usize,
}

/// Builds the top table of `stacks`.
pub fn top<'p>(stacks: &[Stack<'p>], options: &TopOptions) -> Top<'p> {
    let total = stacks.iter().map(|s| s.value.abs()).sum();
    let mut nodes = build(stacks, None);
    let signed_total: i64 = nodes.iter().map(|n| n.flat).sum();
    let cutoff = ((signed_total as f64) * options.node_fraction) as i64;
    let cutoff = cutoff.abs();
    let mut dropped = 0;
    if cutoff > 0 {
        let kept: HashSet<NodeKey> = nodes
            .iter()
            .filter(|n| n.cum.abs() >= cutoff)
            .map(|n| (n.name, n.file))
            .collect();
        if kept.len() != nodes.len() {
            dropped = nodes.len() - kept.len();
            nodes = build(stacks, Some(&kept));
        }
    }
    let before_count = nodes.len();
    sort(&mut nodes, options.cum_sort);
    if options.node_count > 0 && nodes.len() > options.node_count {
        let kept: HashSet<NodeKey> = nodes[..options.node_count]
            .iter()
            .map(|n| (n.name, n.file))
            .collect();
        nodes = build(stacks, Some(&kept));
        sort(&mut nodes, options.cum_sort);
    }
    Top {
        nodes,
        total,
        dropped,
        cutoff,
        before_count,
    }
}

fn build<'p>(stacks: &[Stack<'p>], kept: Option<&HashSet<NodeKey<'p>>>) -> Vec<Node<'p>> {
    let mut index: HashMap<NodeKey<'p>, usize> = HashMap::new();
    let mut nodes: Vec<Node<'p>> = Vec::new();
    let mut seen: HashSet<usize> = HashSet::new();
    for stack in stacks {
        seen.clear();
        let frames = stack
            .frames
            .iter()
            .filter(|f| kept.is_none_or(|k| k.contains(&(f.name, f.file))));
        let frames: Vec<&Frame<'p>> = frames.collect();
        // Walk from the root so that every frame but the first has a caller.
        for (depth, frame) in frames.iter().rev().enumerate() {
            let i = *index.entry((frame.name, frame.file)).or_insert_with(|| {
                nodes.push(Node {
                    name: frame.name,
                    file: frame.file,
                    flat: 0,
                    cum: 0,
                    inlined_in: false,
                    called_in: false,
                });
                nodes.len() - 1
            });
            let node = &mut nodes[i];
            if seen.insert(i) {
                node.cum += stack.value;
            }
            if depth > 0 {
                if frame.inlined {
                    node.inlined_in = true;
                } else {
                    node.called_in = true;
                }
            }
        }
        if let Some(leaf) = frames.first() {
            nodes[index[&(leaf.name, leaf.file)]].flat += stack.value;
        }
    }
    nodes
}

fn sort(nodes: &mut [Node], cum_sort: bool) {
    nodes.sort_by(|a, b| {
        let (primary_a, primary_b, secondary_a, secondary_b) = if cum_sort {
            (a.cum.abs(), b.cum.abs(), a.flat.abs(), b.flat.abs())
        } else {
            (a.flat.abs(), b.flat.abs(), a.cum.abs(), b.cum.abs())
        };
        primary_b
            .cmp(&primary_a)
            .then_with(|| a.name.cmp(b.name))
            .then_with(|| secondary_b.cmp(&secondary_a))
            .then_with(|| a.file.cmp(b.file))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &'static str) -> Frame<'static> {
        Frame {
            name,
            file: "",
            inlined: false,
        }
    }

    fn stack(names: &[&'static str], value: i64) -> Stack<'static> {
        Stack {
            frames: names.iter().map(|n| frame(n)).collect(),
            value,
        }
    }

    #[test]
    fn recursion_counts_cum_once_per_sample() {
        let stacks = [
            stack(&["leaf", "rec", "rec", "rec", "main"], 10),
            stack(&["rec", "main"], 5),
        ];
        let top = top(&stacks, &TopOptions::default());
        let rec = top.nodes.iter().find(|n| n.name == "rec").unwrap();
        assert_eq!((rec.flat, rec.cum), (5, 15));
        assert_eq!(top.total, 15);
        assert_eq!(top.nodes[0].name, "leaf");
    }

    #[test]
    fn a_dropped_leaf_gives_its_flat_to_its_caller() {
        let stacks = [
            stack(&["tiny", "caller", "main"], 3),
            stack(&["caller", "main"], 50),
            stack(&["big", "main"], 947),
        ];
        let top = top(&stacks, &TopOptions::default());
        // The cutoff is 0.5% of 1000 = 5: "tiny" (cum 3) goes.
        assert_eq!((top.dropped, top.cutoff), (1, 5));
        assert!(top.nodes.iter().all(|n| n.name != "tiny"));
        let caller = top.nodes.iter().find(|n| n.name == "caller").unwrap();
        assert_eq!((caller.flat, caller.cum), (53, 53));
    }
}
