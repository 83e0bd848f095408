//! One snapshot reduced to what the page redraws when it is selected: the
//! first rows of its top table, formatted as `heapprof top -n N` formats
//! them, and its flamegraph's tree with the frames under a fraction of the
//! total pruned away. Function names are interned once for the whole
//! report, so that 500 snapshots of one program carry each name once.
//!
//! It never keeps the profile: everything here is computed while the
//! profile is read, then the profile can go.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use heapprof_pprof::Profile;
use serde::Serialize;

use crate::graph;
use crate::stacks::{self, Names, Selection, Stack};
use crate::top;
use crate::units::percentage;
use crate::Error;

/// The function names (and memory class names) of a report, each once.
#[derive(Debug, Default)]
pub(super) struct Interned {
    /// Names by id.
    pub(super) names: Vec<String>,
    /// Ids by name.
    index: HashMap<String, u32>,
}

impl Interned {
    /// The id of `name`, interning it on first sight.
    pub(super) fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), id);
        id
    }
}

/// One row of a top table: (name id, flat, flat%, sum%, cum, cum%), the
/// figures as `heapprof top` prints them.
pub(super) type Row = (u32, String, String, String, String, String);

/// What the page shows of one snapshot when it is selected.
#[derive(Debug, Serialize)]
pub(super) struct Reduced {
    /// The file it was read from: the key to the timeline's snapshot.
    pub(super) file: String,
    /// The table's notes, as `heapprof top` prints them above the columns
    /// ("Showing nodes accounting for ...", "Dropped ...", "Showing top ...").
    pub(super) notes: Vec<String>,
    /// The first rows of the top table.
    pub(super) rows: Vec<Row>,
    /// The flamegraph's tree in preorder, three numbers a frame: the index
    /// of its parent frame in this list (-1 for a root), its name id and its
    /// value. Children come in name order, as inferno draws them.
    pub(super) tree: Vec<i64>,
    /// The sum of the positive stacks: the tree's 100%.
    pub(super) total: i64,
    /// The memory classes (name id, bytes formatted), filled in from the
    /// timeline.
    pub(super) classes: Vec<(u32, String)>,
}

/// How a snapshot is reduced.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reduction {
    /// Rows of the top table kept.
    pub(super) rows: usize,
    /// Frames under this fraction of the snapshot's total are pruned.
    pub(super) min_fraction: f64,
    /// At most this many frames are kept, the widest.
    pub(super) max_frames: usize,
}

/// Reduces `profile`, read from `file`, for the page.
pub(super) fn reduce(
    file: &str,
    profile: &Profile,
    selection: &Selection,
    reduction: Reduction,
    interned: &mut Interned,
) -> Result<Reduced, Error> {
    let mut names = Names::default();
    let selected = stacks::select(profile, selection, &mut names)?;
    let unit = &profile.sample_types[selected.index].unit;
    let graph_options = graph::Options {
        node_count: reduction.rows,
        ..graph::Options::default()
    };
    let table = graph::top(&selected.stacks, &names, selected.total, &graph_options);
    // The notes are the lines `heapprof top` prints above its columns, by
    // the same code, so that the page and the CLI agree to the byte.
    let mut text = Vec::new();
    top::write_table(unit, &table, &mut text)?;
    let notes = String::from_utf8_lossy(&text)
        .lines()
        .take_while(|line| !line.trim_start().starts_with("flat"))
        .map(str::to_owned)
        .collect();
    let format = top::formatter(unit, &table);
    let mut running = 0;
    let rows = table
        .nodes
        .iter()
        .map(|node| {
            running += node.flat;
            let name = format!("{}{}", node.name, node.inline_label());
            (
                interned.id(&name),
                format.format(node.flat),
                percentage(node.flat, table.total).trim().to_owned(),
                percentage(running, table.total).trim().to_owned(),
                format.format(node.cum),
                percentage(node.cum, table.total).trim().to_owned(),
            )
        })
        .collect();
    let (tree, total) = pruned_tree(&selected.stacks, &names, reduction, interned);
    Ok(Reduced {
        file: file.to_owned(),
        notes,
        rows,
        tree,
        total,
        classes: Vec::new(),
    })
}

/// A frame of the tree being built.
struct Node {
    function: u32,
    value: i64,
    children: Vec<usize>,
}

/// The flamegraph tree of `stacks` (positive values only, as the
/// flamegraph draws them), frames under the reduction's fraction of the
/// total left out and only its widest frames kept, flattened as
/// [`Reduced::tree`] says; and the total.
fn pruned_tree(
    stacks: &[Stack],
    names: &Names,
    reduction: Reduction,
    interned: &mut Interned,
) -> (Vec<i64>, i64) {
    // Node 0 is the root ("all"), not written out.
    let mut nodes = vec![Node {
        function: u32::MAX,
        value: 0,
        children: Vec::new(),
    }];
    let mut child_of: HashMap<(usize, u32), usize> = HashMap::new();
    for stack in stacks.iter().filter(|s| s.value > 0) {
        let mut at = 0;
        nodes[0].value += stack.value;
        for frame in stack.frames.iter().rev() {
            let next = nodes.len();
            let child = *child_of.entry((at, frame.function)).or_insert(next);
            if child == next {
                nodes.push(Node {
                    function: frame.function,
                    value: 0,
                    children: Vec::new(),
                });
                nodes[at].children.push(child);
            }
            nodes[child].value += stack.value;
            at = child;
        }
    }
    let total = nodes[0].value;
    let cutoff = ((total as f64 * reduction.min_fraction).ceil() as i64).max(1);
    // The widest frames first, each after its parent (never narrower than
    // it), so that what is kept is a tree.
    let mut kept = vec![false; nodes.len()];
    let mut frontier: BinaryHeap<(i64, Reverse<usize>)> = nodes[0]
        .children
        .iter()
        .map(|&c| (nodes[c].value, Reverse(c)))
        .collect();
    let mut count = 0;
    while let Some((value, Reverse(node))) = frontier.pop() {
        if value < cutoff || count == reduction.max_frames {
            break;
        }
        kept[node] = true;
        count += 1;
        frontier.extend(
            nodes[node]
                .children
                .iter()
                .map(|&c| (nodes[c].value, Reverse(c))),
        );
    }
    let mut flat = Vec::new();
    // (node, its parent's index in `flat`), depth first in name order.
    let mut pending: Vec<(usize, i64)> = Vec::new();
    let push_children = |pending: &mut Vec<(usize, i64)>, node: &Node, parent: i64| {
        let mut children: Vec<usize> = node.children.iter().copied().filter(|&c| kept[c]).collect();
        children.sort_by(|&a, &b| {
            names
                .name(nodes[a].function)
                .cmp(names.name(nodes[b].function))
        });
        // Reversed onto the stack, so that they come out in name order.
        pending.extend(children.into_iter().rev().map(|c| (c, parent)));
    };
    push_children(&mut pending, &nodes[0], -1);
    while let Some((node, parent)) = pending.pop() {
        let here = (flat.len() / 3) as i64;
        let function = nodes[node].function;
        flat.extend([
            parent,
            i64::from(interned.id(names.name(function))),
            nodes[node].value,
        ]);
        push_children(&mut pending, &nodes[node], here);
    }
    (flat, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::profile;

    fn example(rows: usize, min_fraction: f64, max_frames: usize) -> (Reduced, Interned) {
        let profile = profile(
            &["inuse_space"],
            &[
                ("main;insert<&'q", &[3 << 20]),
                ("main;parse", &[1 << 20]),
                ("main;parse;tiny", &[1000]),
            ],
        );
        let mut interned = Interned::default();
        let reduction = Reduction {
            rows,
            min_fraction,
            max_frames,
        };
        let reduced = reduce(
            "a.pb.gz",
            &profile,
            &Selection::default(),
            reduction,
            &mut interned,
        )
        .unwrap();
        (reduced, interned)
    }

    #[test]
    fn rows_are_the_top_tables_first_rows() {
        let (reduced, interned) = example(2, 0.005, 256);
        let name = |row: &Row| interned.names[row.0 as usize].as_str();
        assert_eq!(reduced.rows.len(), 2);
        assert_eq!(name(&reduced.rows[0]), "insert<&'q");
        let row = &reduced.rows[0];
        assert_eq!(
            [&row.1, &row.2, &row.3, &row.4, &row.5],
            ["3MB", "74.98%", "74.98%", "3MB", "74.98%"]
        );
        assert_eq!(reduced.rows[1].3, "100%");
        assert_eq!(
            reduced.notes,
            [
                "Showing nodes accounting for 4MB, 100% of 4MB total",
                "Dropped 1 node (cum <= 0.02MB)",
                "Showing top 2 nodes out of 3"
            ]
        );
    }

    #[test]
    fn the_tree_is_preorder_in_name_order_and_pruned() {
        let (reduced, interned) = example(30, 0.005, 256);
        let (widest, _) = example(30, 0.0, 2);
        // Two frames at most: "tiny" and the narrower of the leaves go.
        assert_eq!(widest.tree.len() / 3, 2);
        let frames: Vec<(i64, &str, i64)> = reduced
            .tree
            .chunks(3)
            .map(|f| (f[0], interned.names[f[1] as usize].as_str(), f[2]))
            .collect();
        assert_eq!(
            frames,
            [
                (-1, "main", (4 << 20) + 1000),
                (0, "insert<&'q", 3 << 20),
                (0, "parse", (1 << 20) + 1000),
            ]
        );
        assert_eq!(reduced.total, (4 << 20) + 1000);
    }
}
