//! Function-level flat/cum figures, computed as `go tool pprof` computes
//! them for `-top`: flat goes to the leaf frame, cum to every distinct
//! function of a stack once, nodes whose |cum| is under the node fraction of
//! the total are dropped and the figures recomputed without them (a sample
//! whose leaf was dropped then counts in no row's flat), then the top N are
//! kept the same way. [`top`] computes the table; [`crate::top`] and
//! [`crate::diff`] print it.

use crate::fasthash::IdMap;
use crate::stacks::{Names, Stack};

/// One row of a top table.
#[derive(Clone, Debug, PartialEq)]
pub struct Node<'p> {
    /// The function's id in [`Names`].
    pub id: u32,
    /// The function's name.
    pub name: &'p str,
    /// Its file.
    pub file: &'p str,
    /// The object file of a row named after its mapping ("" for functions).
    pub object: &'p str,
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

/// How a top table is cut and sorted.
#[derive(Clone, Debug)]
pub struct Options {
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

impl Default for Options {
    fn default() -> Self {
        Options {
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

/// Builds the top table of `stacks` (functions interned in `names`), with
/// percentages of `total` (pprof: the sum of |value| over the whole
/// profile, filtered or not; see [`total`]).
pub fn top<'n>(stacks: &[Stack], names: &'n Names, total: i64, options: &Options) -> Top<'n> {
    let functions = names.len();
    let mut graph = Graph::build(stacks, functions, None, false);
    let signed_total: i64 = graph.flat.iter().sum();
    let cutoff = (((signed_total as f64) * options.node_fraction) as i64).abs();
    let edge_cutoff = (((signed_total as f64) * options.edge_fraction) as i64).abs();
    let mut dropped = 0;
    let mut kept: Option<Vec<bool>> = None;
    if cutoff > 0 {
        let above: Vec<bool> = (0..functions)
            .map(|i| graph.present[i] && graph.cum[i].abs() >= cutoff)
            .collect();
        let kept_count = above.iter().filter(|&&k| k).count();
        if kept_count != graph.count() {
            dropped = graph.count() - kept_count;
            graph = Graph::build(stacks, functions, Some(&above), false);
            kept = Some(above);
        }
    }
    let before_count = graph.count();
    if options.node_count > 0 && before_count > options.node_count {
        let mut nodes = graph.nodes(names, 0);
        sort(&mut nodes, options.cum_sort);
        let mut top_n = vec![false; functions];
        for node in &nodes[..options.node_count] {
            top_n[node.id as usize] = true;
        }
        kept = Some(top_n);
    }
    // Edges only matter for the rows shown: counted in a last pass.
    let mut nodes =
        Graph::build(stacks, functions, kept.as_deref(), true).nodes(names, edge_cutoff);
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

/// A call edge's weight and whether it was inlined in every sample that has it.
struct Edge {
    weight: i64,
    inlined: bool,
    /// The last stack that counted this edge: each counts once per stack.
    last_stack: usize,
}

/// Call edges, keyed by (caller << 32 | callee).
type Edges = IdMap<u64, Edge>;

/// Per-function figures, indexed by function id.
struct Graph {
    present: Vec<bool>,
    flat: Vec<i64>,
    cum: Vec<i64>,
    /// (caller << 32 | callee) -> edge.
    edges: Edges,
}

impl Graph {
    /// Walks every stack once. With `kept`, other functions are skipped as
    /// if absent; a stack whose leaf was skipped adds no flat (pprof's rule).
    fn build(stacks: &[Stack], functions: usize, kept: Option<&[bool]>, with_edges: bool) -> Graph {
        let mut graph = Graph {
            present: vec![false; functions],
            flat: vec![0; functions],
            cum: vec![0; functions],
            edges: Edges::default(),
        };
        let mut last_stack = vec![usize::MAX; functions];
        for (n, stack) in stacks.iter().enumerate() {
            let mut parent: Option<u32> = None;
            let mut residual = false;
            for frame in stack.frames.iter().rev() {
                let id = frame.function;
                if kept.is_some_and(|k| !k[id as usize]) {
                    residual = true;
                    continue;
                }
                let i = id as usize;
                graph.present[i] = true;
                if last_stack[i] != n {
                    last_stack[i] = n;
                    graph.cum[i] += stack.value;
                }
                if let Some(p) = parent.filter(|&p| with_edges && p != id) {
                    let edge = graph
                        .edges
                        .entry(((p as u64) << 32) | id as u64)
                        .or_insert(Edge {
                            weight: 0,
                            inlined: true,
                            last_stack: usize::MAX,
                        });
                    if edge.last_stack != n {
                        edge.last_stack = n;
                        edge.weight += stack.value;
                        edge.inlined &= frame.inlined;
                    }
                }
                parent = Some(id);
                residual = false;
            }
            if let (Some(leaf), false) = (parent, residual) {
                graph.flat[leaf as usize] += stack.value;
            }
        }
        // A function whose samples add up to nothing (growth and shrinkage
        // that cancel in a diff) is no node at all for pprof: neither a row
        // nor one of the dropped.
        for i in 0..functions {
            if graph.flat[i] == 0 && graph.cum[i] == 0 {
                graph.present[i] = false;
            }
        }
        graph
    }

    fn count(&self) -> usize {
        self.present.iter().filter(|&&p| p).count()
    }

    /// The rows, with pprof's "(inline)" labels from the in-edges that
    /// outweigh the edge cutoff.
    fn nodes<'n>(&self, names: &'n Names, edge_cutoff: i64) -> Vec<Node<'n>> {
        let mut inlined_in = vec![false; self.present.len()];
        let mut called_in = vec![false; self.present.len()];
        for (&key, edge) in &self.edges {
            if edge.weight.abs() < edge_cutoff {
                continue;
            }
            let callee = (key & 0xffff_ffff) as usize;
            if edge.inlined {
                inlined_in[callee] = true;
            } else {
                called_in[callee] = true;
            }
        }
        (0..self.present.len())
            .filter(|&i| self.present[i])
            .map(|i| Node {
                id: i as u32,
                name: names.name(i as u32),
                file: names.file(i as u32),
                object: names.object(i as u32),
                flat: self.flat[i],
                cum: self.cum[i],
                inlined_in: inlined_in[i],
                called_in: called_in[i],
            })
            .collect()
    }
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
            // pprof's last word (`compareNodes`) is the whole node info as
            // text; at its default granularity only rows named after their
            // mapping can tie on all the above, and they differ by the
            // mapping's full path.
            .then_with(|| a.object.cmp(b.object))
            .then_with(|| a.file.cmp(b.file))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stacks::Frame;

    fn stacks(names: &mut Names<'static>, list: &[(&[&'static str], i64)]) -> Vec<Stack> {
        list.iter()
            .map(|(frames, value)| Stack {
                frames: frames
                    .iter()
                    .map(|n| Frame {
                        function: names.intern(n, ""),
                        inlined: false,
                    })
                    .collect(),
                value: *value,
            })
            .collect()
    }

    #[test]
    fn recursion_counts_cum_once_per_sample() {
        let mut names = Names::default();
        let stacks = stacks(
            &mut names,
            &[
                (&["leaf", "rec", "rec", "rec", "main"], 10),
                (&["rec", "main"], 5),
            ],
        );
        let top = top(&stacks, &names, total(&stacks), &Options::default());
        let rec = top.nodes.iter().find(|n| n.name == "rec").unwrap();
        assert_eq!((rec.flat, rec.cum), (5, 15));
        assert_eq!(top.total, 15);
        assert_eq!(top.nodes[0].name, "leaf");
    }

    #[test]
    fn a_dropped_leaf_takes_its_flat_with_it() {
        let mut names = Names::default();
        let stacks = stacks(
            &mut names,
            &[
                (&["tiny", "caller", "main"], 3),
                (&["caller", "main"], 50),
                (&["big", "main"], 947),
            ],
        );
        let top = top(&stacks, &names, total(&stacks), &Options::default());
        // The cutoff is 0.5% of 1000 = 5: "tiny" (cum 3) goes, and its 3
        // stay in its callers' cum but in nobody's flat (pprof's rule).
        assert_eq!((top.dropped, top.cutoff_label), (1, 5));
        assert!(top.nodes.iter().all(|n| n.name != "tiny"));
        let caller = top.nodes.iter().find(|n| n.name == "caller").unwrap();
        assert_eq!((caller.flat, caller.cum), (50, 53));
        assert_eq!(top.nodes.iter().map(|n| n.flat).sum::<i64>(), 997);
    }

    #[test]
    fn functions_whose_values_cancel_are_no_nodes() {
        // A diff: f and main grew in one stack and shrank as much in another.
        let mut names = Names::default();
        let cancelled = stacks(
            &mut names,
            &[(&["g", "f", "main"], 5), (&["h", "f", "main"], -5)],
        );
        let all = Options {
            node_fraction: 0.0,
            ..Options::default()
        };
        let top_all = top(&cancelled, &names, total(&cancelled), &all);
        let shown: Vec<_> = top_all
            .nodes
            .iter()
            .map(|n| (n.name, n.flat, n.cum))
            .collect();
        assert_eq!(shown, [("g", 5, 5), ("h", -5, -5)]);
        assert_eq!((top_all.dropped, top_all.before_count), (0, 2));
        // Under a cutoff they are not among the dropped either.
        let mut names = Names::default();
        let list: [(&[&str], i64); 3] = [
            (&["g", "f", "main"], 5),
            (&["h", "f", "main"], -5),
            (&["big", "other"], 4000),
        ];
        let stacks = stacks(&mut names, &list);
        let cut = top(&stacks, &names, total(&stacks), &Options::default());
        let shown: Vec<_> = cut.nodes.iter().map(|n| n.name).collect();
        assert_eq!(shown, ["big", "other"]);
        assert_eq!((cut.dropped, cut.cutoff_label), (2, 20));
    }
}
