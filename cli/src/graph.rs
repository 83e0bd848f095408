//! Function-level flat/cum figures, computed as `go tool pprof` computes
//! them for `-top`: flat goes to the leaf frame, cum to every distinct
//! function of a stack once, nodes whose |cum| is under the node fraction of
//! the total are dropped and the figures recomputed without them (a sample
//! whose leaf was dropped then counts in no row's flat), then the top N are
//! kept the same way.

use std::collections::{HashMap, HashSet};

use crate::stacks::Stack;

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
    /// Some caller always reaches it inlined ...
    pub inlined_in: bool,
    /// ... and some caller (at least once) through a real call.
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
    /// Ignore call edges lighter than this fraction when labelling inlined
    /// functions (pprof: 0.001).
    pub edge_fraction: f64,
    /// Keep at most this many rows (0: all).
    pub node_count: usize,
    /// Sort by cum instead of flat.
    pub cum_sort: bool,
}

impl Default for TopOptions {
    fn default() -> Self {
        TopOptions {
            node_fraction: 0.005,
            edge_fraction: 0.001,
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
    /// The 100% of the percentages.
    pub total: i64,
    /// Nodes dropped for being under the cutoff.
    pub dropped: usize,
    /// The cutoff as pprof labels it: the node fraction of `total`. (The
    /// cutoff applied is that fraction of the signed sum of the values,
    /// which differs for diffs; pprof prints this one.)
    pub cutoff_label: i64,
    /// Nodes left before the top N were taken.
    pub before_count: usize,
}

/// Builds the top table of `stacks`, with percentages of `total` (pprof:
/// the sum of |value| over the whole profile, filtered or not; see
/// [`total`]).
pub fn top<'p>(stacks: &[Stack<'p>], total: i64, options: &TopOptions) -> Top<'p> {
    let (mut nodes, mut edges) = build(stacks, None);
    let signed_total: i64 = nodes.iter().map(|n| n.flat).sum();
    let cutoff = (((signed_total as f64) * options.node_fraction) as i64).abs();
    let edge_cutoff = (((signed_total as f64) * options.edge_fraction) as i64).abs();
    let mut dropped = 0;
    if cutoff > 0 {
        let kept: HashSet<NodeKey> = nodes
            .iter()
            .filter(|n| n.cum.abs() >= cutoff)
            .map(|n| (n.name, n.file))
            .collect();
        if kept.len() != nodes.len() {
            dropped = nodes.len() - kept.len();
            (nodes, edges) = build(stacks, Some(&kept));
        }
    }
    let before_count = nodes.len();
    if options.node_count > 0 && nodes.len() > options.node_count {
        sort(&mut nodes, options.cum_sort);
        let kept: HashSet<NodeKey> = nodes[..options.node_count]
            .iter()
            .map(|n| (n.name, n.file))
            .collect();
        (nodes, edges) = build(stacks, Some(&kept));
    }
    label_inlined(&mut nodes, &edges, edge_cutoff);
    sort(&mut nodes, options.cum_sort);
    Top {
        nodes,
        total,
        dropped,
        cutoff_label: ((total as f64) * options.node_fraction) as i64,
        before_count,
    }
}

/// The sum of |value| of `stacks`: the total of an unfiltered view.
pub fn total(stacks: &[Stack]) -> i64 {
    stacks.iter().map(|s| s.value.abs()).sum()
}

/// Call edges: (caller, callee) node indices -> (weight, inlined in every
/// sample that has the edge).
type Edges = HashMap<(usize, usize), (i64, bool)>;

/// pprof's "(inline)" labels: from the in-edges that outweigh the edge cutoff.
fn label_inlined(nodes: &mut [Node], edges: &Edges, edge_cutoff: i64) {
    for (&(_, callee), &(weight, inlined)) in edges {
        if weight.abs() < edge_cutoff {
            continue;
        }
        if inlined {
            nodes[callee].inlined_in = true;
        } else {
            nodes[callee].called_in = true;
        }
    }
}

fn build<'p>(stacks: &[Stack<'p>], kept: Option<&HashSet<NodeKey<'p>>>) -> (Vec<Node<'p>>, Edges) {
    let mut index: HashMap<NodeKey<'p>, usize> = HashMap::new();
    let mut nodes: Vec<Node<'p>> = Vec::new();
    let mut edges = Edges::new();
    let mut seen_nodes: HashSet<usize> = HashSet::new();
    let mut seen_edges: HashSet<(usize, usize)> = HashSet::new();
    for stack in stacks {
        seen_nodes.clear();
        seen_edges.clear();
        let mut parent: Option<usize> = None;
        // Whether the frame last walked (finally: the leaf) was dropped.
        let mut residual = false;
        for frame in stack.frames.iter().rev() {
            if kept.is_some_and(|k| !k.contains(&(frame.name, frame.file))) {
                residual = true;
                continue;
            }
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
            if seen_nodes.insert(i) {
                nodes[i].cum += stack.value;
            }
            if let Some(p) = parent.filter(|&p| p != i) {
                if seen_edges.insert((p, i)) {
                    let edge = edges.entry((p, i)).or_insert((0, true));
                    edge.0 += stack.value;
                    edge.1 &= frame.inlined;
                }
            }
            parent = Some(i);
            residual = false;
        }
        // As in pprof, a sample whose leaf was dropped adds no flat anywhere.
        if let (Some(leaf), false) = (parent, residual) {
            nodes[leaf].flat += stack.value;
        }
    }
    (nodes, edges)
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
    use crate::stacks::Frame;

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
        let top = top(&stacks, total(&stacks), &TopOptions::default());
        let rec = top.nodes.iter().find(|n| n.name == "rec").unwrap();
        assert_eq!((rec.flat, rec.cum), (5, 15));
        assert_eq!(top.total, 15);
        assert_eq!(top.nodes[0].name, "leaf");
    }

    #[test]
    fn a_dropped_leaf_takes_its_flat_with_it() {
        let stacks = [
            stack(&["tiny", "caller", "main"], 3),
            stack(&["caller", "main"], 50),
            stack(&["big", "main"], 947),
        ];
        let top = top(&stacks, total(&stacks), &TopOptions::default());
        // The cutoff is 0.5% of 1000 = 5: "tiny" (cum 3) goes, and its 3
        // stay in its callers' cum but in nobody's flat (pprof's rule).
        assert_eq!((top.dropped, top.cutoff_label), (1, 5));
        assert!(top.nodes.iter().all(|n| n.name != "tiny"));
        let caller = top.nodes.iter().find(|n| n.name == "caller").unwrap();
        assert_eq!((caller.flat, caller.cum), (50, 53));
        assert_eq!(top.nodes.iter().map(|n| n.flat).sum::<i64>(), 997);
    }
}
