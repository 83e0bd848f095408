//! Folded stacks, `root;caller;...;leaf value`, one line per distinct
//! stack, sorted: the input of flamegraph.pl, inferno and speedscope. A `;`
//! inside a function name (array types such as `[u8; 32]`) is written as
//! `:` so that it cannot split a frame.

use std::collections::HashMap;
use std::io::Write;

use heapprof_pprof::Profile;

use crate::stacks::{self, Names, Selection, Stack};
use crate::Error;

/// Options of folded stacks.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The sample type and filters.
    pub selection: Selection,
}

/// Writes the folded stacks of `profile`, a line each.
pub fn write(options: &Options, profile: &Profile, out: &mut impl Write) -> Result<(), Error> {
    let mut names = Names::default();
    let selected = stacks::select(profile, &options.selection, &mut names)?;
    for line in lines(&selected.stacks, &names) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `stacks` folded: identical stacks merged (by function ids first, so that
/// names are joined once per distinct stack), zero totals left out, sorted.
pub(crate) fn fold_all(stacks: &[Stack], names: &Names) -> Vec<(String, i64)> {
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
pub(crate) fn lines(stacks: &[Stack], names: &Names) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::profile;

    fn folded(profile: &Profile, options: &Options) -> String {
        let mut out = Vec::new();
        write(options, profile, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn stacks_of_the_same_functions_are_one_line_sorted() {
        let profile = profile(
            &["inuse_space"],
            &[
                ("main;serve;cache::insert", &[100]),
                ("main;load", &[30]),
                // Other locations of the same functions: the same line.
                ("main;serve>cache::insert", &[20]),
                ("main;drop", &[0]),
                ("", &[7]),
                ("main;grow", &[5]),
                ("main;grow", &[-5]),
            ],
        );
        assert_eq!(
            folded(&profile, &Options::default()),
            "[no frames] 7\nmain;load 30\nmain;serve;cache::insert 120\n"
        );
    }

    #[test]
    fn a_semicolon_in_a_name_cannot_split_a_frame() {
        let mut profile = profile(&["alloc_objects"], &[("main;digest", &[3])]);
        let digest = profile.functions.iter_mut().find(|f| f.name == "digest");
        digest.unwrap().name = "<[u8; 32] as Digest>::hash".into();
        assert_eq!(
            folded(&profile, &Options::default()),
            "main;<[u8: 32] as Digest>::hash 3\n"
        );
    }

    #[test]
    fn unsymbolized_frames_keep_their_place_named_as_pprof_names_them() {
        let profile = profile(
            &["samples"],
            &[
                ("[/lib/x86_64/libpthread.so.0];main;[/usr/bin/server]", &[7]),
                ("[/lib/x86_64/libpthread.so.0];[]", &[2]),
            ],
        );
        assert_eq!(
            folded(&profile, &Options::default()),
            "[libpthread.so.0];<unknown> 2\n[libpthread.so.0];main;[server] 7\n"
        );
    }

    #[test]
    fn folded_stacks_follow_the_selection() {
        let profile = profile(
            &["alloc_space", "inuse_space"],
            &[("main;a;leaf", &[10, 1]), ("main;b;leaf", &[20, 2])],
        );
        let options = Options {
            selection: Selection {
                sample_index: Some("alloc_space".into()),
                filters: crate::Filters {
                    hide: Some(regex::Regex::new("^(a|b)$").unwrap()),
                    ..crate::Filters::default()
                },
                ..Selection::default()
            },
        };
        assert_eq!(folded(&profile, &options), "main;leaf 30\n");
    }
}
