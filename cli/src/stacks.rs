//! A profile seen as weighted stacks of function frames for one sample type,
//! after pprof's filters: `--focus` keeps samples with a matching frame,
//! `--ignore` drops them, `--hide` removes matching frames but keeps the
//! sample. Every report (top, folded, flamegraph, diff) starts here.

use heapprof::pprof::Profile;
use regex::Regex;

/// One function level of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame<'p> {
    /// Function name.
    pub name: &'p str,
    /// Source file, which tells apart functions with the same name.
    pub file: &'p str,
    /// True when this level is inlined into its caller (not the outermost
    /// line of its location).
    pub inlined: bool,
}

/// A stack, leaf first, with its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Stack<'p> {
    /// Frames, leaf first.
    pub frames: Vec<Frame<'p>>,
    /// The sample's value for the chosen sample type.
    pub value: i64,
}

/// pprof's sample filters, as regexps over function names.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Keep only samples with a frame matching this.
    pub focus: Option<Regex>,
    /// Drop samples with a frame matching this.
    pub ignore: Option<Regex>,
    /// Remove frames matching this from every stack.
    pub hide: Option<Regex>,
}

/// The stacks of `profile` for sample type `index`, filtered; samples whose
/// value is zero are left out, as pprof leaves them out of its graphs.
pub fn stacks<'p>(profile: &'p Profile, index: usize, filters: &Filters) -> Vec<Stack<'p>> {
    let matches = |re: &Option<Regex>, frames: &[Frame]| {
        re.as_ref()
            .is_some_and(|re| frames.iter().any(|f| re.is_match(f.name)))
    };
    profile
        .samples
        .iter()
        .filter(|s| s.values[index] != 0)
        .filter_map(|sample| {
            let mut frames: Vec<Frame> = sample
                .locations
                .iter()
                .flat_map(|&l| {
                    let lines = &profile.locations[l].lines;
                    lines.iter().enumerate().map(move |(i, line)| {
                        let function = &profile.functions[line.function];
                        Frame {
                            name: &function.name,
                            file: &function.filename,
                            inlined: i + 1 < lines.len(),
                        }
                    })
                })
                .collect();
            if filters.focus.is_some() && !matches(&filters.focus, &frames) {
                return None;
            }
            if matches(&filters.ignore, &frames) {
                return None;
            }
            if let Some(hide) = &filters.hide {
                frames.retain(|f| !hide.is_match(f.name));
            }
            Some(Stack {
                frames,
                value: sample.values[index],
            })
        })
        .collect()
}
