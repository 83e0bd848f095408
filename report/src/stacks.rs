//! A profile seen as weighted stacks of function frames for one sample type,
//! after pprof's filters: focus keeps samples with a matching frame,
//! ignore drops them, hide removes matching frames but keeps the
//! sample, tag focus and tag ignore keep or drop samples by their labels,
//! and tag root and tag leaf add a frame per label key (see [`labels`]).
//! Every report (top, folded, flamegraph, diff, tags) starts here.
//!
//! [`labels`]: crate::labels
//!
//! Functions are interned once into [`Names`] as dense ids (one per name,
//! shared by the profiles of a diff), filters are matched once per
//! function and frames are expanded once per location, so that the work per
//! sample is copying small integers: profiles with hundreds of thousands of
//! samples stay fast.
//!
//! A [`Selection`] (the sample type and the filters) is what every view's
//! options start with; [`select`] turns it into stacks.

use std::borrow::Cow;
use std::collections::HashMap;

use heapprof_pprof::Profile;

use crate::shorten::display_name;
use regex::Regex;

use crate::fasthash::IdMap;
use crate::labels::{self, LabelFrames, TagFilter};
use crate::Error;

/// Interned functions: id -> (name, file), and back. Functions are told
/// apart by name alone, as pprof's default granularity does: a `handle` in
/// two source files is one row. A frame without a function name is named
/// after its mapping, as pprof names it.
#[derive(Debug, Default)]
pub struct Names<'p> {
    /// (name, source file, object file of a frame named after its mapping).
    entries: Vec<(Cow<'p, str>, &'p str, &'p str)>,
    /// (name, "") for functions; (name, object file) for the frames named
    /// after their mapping.
    index: HashMap<(Cow<'p, str>, &'p str), u32>,
}

impl<'p> Names<'p> {
    /// The id of a function, interning it on first sight.
    pub fn intern(&mut self, name: &'p str, file: &'p str) -> u32 {
        self.insert(Cow::Borrowed(name), file, "")
    }

    /// The id of the frames that have no function name, in the object file
    /// `objfile` ("" when the location has no mapping): pprof shows them as
    /// `[base name of objfile]`, or `<unknown>` without one. Two objects of
    /// the same base name stay apart, as in pprof.
    pub fn intern_object(&mut self, objfile: &'p str) -> u32 {
        let name = if objfile.is_empty() {
            "<unknown>".to_owned()
        } else {
            format!("[{}]", base_name(objfile))
        };
        self.insert(Cow::Owned(name), "", objfile)
    }

    pub(crate) fn insert(&mut self, name: Cow<'p, str>, file: &'p str, key: &'p str) -> u32 {
        if let Some(&id) = self.index.get(&(name.clone(), key)) {
            // One name in two files: no one file is the function's.
            let known = &mut self.entries[id as usize].1;
            if *known != file {
                *known = "";
            }
            return id;
        }
        let id = self.entries.len() as u32;
        self.entries.push((name.clone(), file, key));
        self.index.insert((name, key), id);
        id
    }

    /// The function's name.
    pub fn name(&self, id: u32) -> &str {
        &self.entries[id as usize].0
    }

    /// The function's source file ("" for a frame named after its mapping,
    /// and for a name found in more than one file).
    pub fn file(&self, id: u32) -> &'p str {
        self.entries[id as usize].1
    }

    /// The full path of the object file a frame without a function name is
    /// named after ("" for functions): two such rows of one base name differ
    /// by it alone, and pprof orders them by it.
    pub fn object(&self, id: u32) -> &'p str {
        self.entries[id as usize].2
    }

    /// How many distinct functions there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True before the first function is interned.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Go's `filepath.Base`: the last element of `path`, trailing slashes
/// ignored ("/" for a path of slashes).
pub(crate) fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// One function level of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The function, in [`Names`].
    pub function: u32,
    /// True when this level is inlined into its caller (not the outermost
    /// line of its location).
    pub inlined: bool,
}

/// A stack, leaf first, with its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Stack {
    /// Frames, leaf first.
    pub frames: Vec<Frame>,
    /// The sample's value for the chosen sample type.
    pub value: i64,
}

/// pprof's sample filters: regexps over frames and expressions over
/// labels. As in pprof, a frame matches when its function's name or
/// source file does, or its location's object file (so `--ignore libc`
/// drops every sample through libc).
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Keep only samples with a frame matching this.
    pub focus: Option<Regex>,
    /// Drop samples with a frame matching this.
    pub ignore: Option<Regex>,
    /// Remove frames matching this from every stack (all of a location's
    /// frames when its object file matches).
    pub hide: Option<Regex>,
    /// Keep only samples whose labels match this (pprof's `-tagfocus`).
    pub tag_focus: Option<TagFilter>,
    /// Drop samples whose labels match this (pprof's `-tagignore`).
    pub tag_ignore: Option<TagFilter>,
}

impl Filters {
    /// The flags (`"focus"`, `"ignore"`, `"hide"`, in that order) of the
    /// filters that are set but match no location of any of `profiles`,
    /// judged as pprof judges them before it warns that an expression
    /// "matched no samples": a location matches when its object file or a
    /// line's function name or source file does, and `focus` counts only
    /// locations that `ignore` did not match.
    pub fn unmatched(&self, profiles: &[&Profile]) -> Vec<&'static str> {
        let selection = Selection {
            filters: Filters {
                focus: self.focus.clone(),
                ignore: self.ignore.clone(),
                hide: self.hide.clone(),
                ..Filters::default()
            },
            ..Selection::default()
        };
        selection.unmatched(profiles)
    }
}

/// Which sample type a view shows and which samples and frames it keeps:
/// pprof's `-sample_index`, `-focus`, `-ignore`, `-hide`, `-tagfocus`,
/// `-tagignore`, `-tagroot` and `-tagleaf`.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// The sample type, by name (`alloc_space`) or index (`"1"`); `None`
    /// for the profile's default.
    pub sample_index: Option<String>,
    /// The filters.
    pub filters: Filters,
    /// Label keys whose values become frames at the root of every stack,
    /// the first one the root (pprof's `-tagroot`): a frame named after
    /// the sample's values of the key, `<unknown>` for a sample without.
    pub tag_root: Vec<String>,
    /// Label keys whose values become frames at the leaf, the last one
    /// the leaf (pprof's `-tagleaf`).
    pub tag_leaf: Vec<String>,
}

impl Selection {
    /// The index of the chosen sample type in `profile`.
    pub fn index_in(&self, profile: &Profile) -> Result<usize, Error> {
        if profile.sample_types.is_empty() {
            return Err(Error::NoSampleTypes);
        }
        match &self.sample_index {
            Some(name) => profile.sample_index(name).map_err(Error::SampleType),
            None => Ok(profile.default_sample_index()),
        }
    }

    /// The same filters, with the sample type named `name`.
    pub(crate) fn with_sample_type(&self, name: &str) -> Selection {
        Selection {
            sample_index: Some(name.to_owned()),
            ..self.clone()
        }
    }
}

/// A profile's stacks for one sample type, after a selection's filters.
#[derive(Clone, Debug)]
pub struct Selected {
    /// The sample type index used.
    pub index: usize,
    /// The filtered stacks.
    pub stacks: Vec<Stack>,
    /// Sum of |value| over all samples before filtering: as in pprof,
    /// percentages stay relative to the whole profile under `focus`.
    pub total: i64,
}

/// The stacks of `profile` that `selection` keeps, with functions interned
/// in `names`.
pub fn select<'p>(
    profile: &'p Profile,
    selection: &Selection,
    names: &mut Names<'p>,
) -> Result<Selected, Error> {
    let index = selection.index_in(profile)?;
    Ok(Selected {
        index,
        stacks: stacks_of(profile, index, selection, names),
        total: profile.samples.iter().map(|s| s.values[index].abs()).sum(),
    })
}

/// What the filters say of one function.
#[derive(Clone, Copy, Default)]
struct Matches {
    focus: bool,
    ignore: bool,
    hide: bool,
}

/// The stacks of `profile` for sample type `index`, filtered; samples whose
/// value is zero are left out, as pprof leaves them out of its graphs.
pub fn stacks<'p>(
    profile: &'p Profile,
    index: usize,
    filters: &Filters,
    names: &mut Names<'p>,
) -> Vec<Stack> {
    let selection = Selection {
        filters: filters.clone(),
        ..Selection::default()
    };
    stacks_of(profile, index, &selection, names)
}

/// [`stacks`] under a whole selection: its filters, and the pseudo frames
/// of its tag root and tag leaf keys, which the filters see as pprof's
/// see them (a frame named after the values, in a "file" named after the
/// key).
fn stacks_of<'p>(
    profile: &'p Profile,
    index: usize,
    selection: &Selection,
    names: &mut Names<'p>,
) -> Vec<Stack> {
    let (mut stacks, _) = stacks_by_sample(profile, index, selection, names);
    stacks.retain(|s| s.value != 0);
    stacks
}

/// [`stacks_of`], with the stack each sample went into (`None` for a
/// sample of value zero or one the filters dropped), for views that keep a
/// figure of their own per sample; stacks whose samples sum to zero are
/// kept.
pub(crate) fn stacks_by_sample<'p>(
    profile: &'p Profile,
    index: usize,
    selection: &Selection,
    names: &mut Names<'p>,
) -> (Vec<Stack>, Vec<Option<u32>>) {
    let filters = &selection.filters;
    let matches = |re: &Option<Regex>, texts: &[&str]| {
        re.as_ref()
            .is_some_and(|re| texts.iter().any(|t| re.is_match(t)))
    };
    let matches_all = |texts: &[&str]| Matches {
        focus: matches(&filters.focus, texts),
        ignore: matches(&filters.ignore, texts),
        hide: matches(&filters.hide, texts),
    };
    // Each function's id, `None` for one without a name to show, and what
    // the filters say of its name and file. The name is the one pprof
    // shows (see `shorten`), which its filters match too.
    let functions: Vec<(Option<u32>, Matches)> = profile
        .functions
        .iter()
        .map(|f| {
            let shown = display_name(f);
            let found = matches_all(&[&shown, &f.filename]);
            let id = (!shown.is_empty()).then(|| names.insert(shown.clone(), &f.filename, ""));
            (id, found)
        })
        .collect();
    let objects: Vec<Matches> = profile
        .mappings
        .iter()
        .map(|m| matches_all(&[&m.filename]))
        .collect();
    // Each location's frames, innermost first, and what the filters say. A
    // location without lines (an unsymbolized address) is one frame named
    // after its mapping, and so is a line whose function has no name:
    // pprof shows both, so they must not vanish from the stack.
    let locations: Vec<(Vec<Frame>, Matches)> = profile
        .locations
        .iter()
        .map(|location| {
            let mapping = location.mapping.filter(|&m| m < profile.mappings.len());
            let objfile = mapping.map_or("", |m| profile.mappings[m].filename.as_str());
            let mut found = mapping.map_or(Matches::default(), |m| objects[m]);
            let lines = &location.lines;
            if lines.is_empty() {
                let function = names.intern_object(objfile);
                let frame = Frame {
                    function,
                    inlined: false,
                };
                let frames = if found.hide { vec![] } else { vec![frame] };
                return (frames, found);
            }
            let hide_all = found.hide;
            let mut frames: Vec<Frame> = lines
                .iter()
                .filter_map(|line| {
                    let (function, m) = functions[line.function];
                    let function = function.unwrap_or_else(|| names.intern_object(objfile));
                    found.focus |= m.focus;
                    found.ignore |= m.ignore;
                    (!m.hide && !hide_all).then_some(Frame {
                        function,
                        inlined: true,
                    })
                })
                .collect();
            // The outermost line left is the location's call; the others
            // are inlined into it.
            if let Some(last) = frames.last_mut() {
                last.inlined = false;
            }
            (frames, found)
        })
        .collect();
    // The pseudo frames of label keys: a nameless one is pprof's
    // `<unknown>`, as for a function without a name.
    let label_frames = LabelFrames::new(profile, selection);
    let pseudo: Vec<(Vec<Frame>, Matches)> = label_frames.as_ref().map_or(Vec::new(), |f| {
        f.names
            .iter()
            .map(|(name, key)| {
                let found = matches_all(&[name, key]);
                let function = if name.is_empty() {
                    names.intern_object("")
                } else {
                    names.insert(Cow::Owned(name.clone()), "", "")
                };
                let frame = Frame {
                    function,
                    inlined: false,
                };
                (if found.hide { vec![] } else { vec![frame] }, found)
            })
            .collect()
    });
    let (tag_focus, tag_ignore) = (&filters.tag_focus, &filters.tag_ignore);
    let units = if tag_focus.is_some() || tag_ignore.is_some() {
        labels::num_label_units(profile)
    } else {
        HashMap::new()
    };
    let tags_keep = |sample: &heapprof_pprof::Sample| {
        tag_focus.as_ref().is_none_or(|f| f.matches(sample, &units))
            && !tag_ignore
                .as_ref()
                .is_some_and(|f| f.matches(sample, &units))
    };
    // Samples of one stack (Go writes one per stack and object size) are
    // added up first, so that reports walk each distinct stack once; with
    // pseudo frames, a stack is its locations and its pseudo frames.
    let mut merged: IdMap<(&[usize], &[usize]), usize> = IdMap::default();
    let mut stacks: Vec<Stack> = Vec::new();
    let mut of_sample = vec![None; profile.samples.len()];
    for (n, sample) in profile.samples.iter().enumerate() {
        let value = sample.values[index];
        if value == 0 || !tags_keep(sample) {
            continue;
        }
        let labelled = label_frames.as_ref().map_or(&[][..], |f| f.of(n));
        if let Some(&i) = merged.get(&(&sample.locations[..], labelled)) {
            stacks[i].value += value;
            of_sample[n] = Some(i as u32);
            continue;
        }
        let any = |pick: fn(&Matches) -> bool| {
            sample.locations.iter().any(|&l| pick(&locations[l].1))
                || labelled.iter().any(|&p| pick(&pseudo[p].1))
        };
        if (filters.focus.is_some() && !any(|m| m.focus))
            || (filters.ignore.is_some() && any(|m| m.ignore))
        {
            continue;
        }
        of_sample[n] = Some(stacks.len() as u32);
        merged.insert((&sample.locations, labelled), stacks.len());
        let (leaves, roots) = label_frames
            .as_ref()
            .map_or((&[][..], &[][..]), |f| (f.leaves(n), f.roots(n)));
        let pseudo_frames = |ids: &[usize]| {
            ids.iter()
                .flat_map(|&p| pseudo[p].0.iter().copied())
                .collect::<Vec<Frame>>()
        };
        let mut frames = pseudo_frames(leaves);
        frames.extend(
            sample
                .locations
                .iter()
                .flat_map(|&l| locations[l].0.iter().copied()),
        );
        frames.extend(pseudo_frames(roots));
        stacks.push(Stack { frames, value });
    }
    (stacks, of_sample)
}

#[cfg(test)]
mod tests {
    use heapprof_pprof::Location;

    use super::*;
    use crate::testing::profile;

    /// Each stack root first, an inlined frame marked `*`, and its value.
    fn shown(profile: &Profile, selection: &Selection) -> (Vec<String>, i64) {
        let mut names = Names::default();
        let selected = select(profile, selection, &mut names).unwrap();
        let stacks = selected
            .stacks
            .iter()
            .map(|stack| {
                let frames: Vec<String> = stack
                    .frames
                    .iter()
                    .rev()
                    .map(|f| {
                        let mark = if f.inlined { "*" } else { "" };
                        format!("{}{mark}", names.name(f.function))
                    })
                    .collect();
                format!("{} {}", frames.join(";"), stack.value)
            })
            .collect();
        (stacks, selected.total)
    }

    /// [`shown`] for the alloc_space stacks of [`service`] under these
    /// regexps ("" for none).
    fn alloc_space(focus: &str, ignore: &str, hide: &str) -> (Vec<String>, i64) {
        let re = |s: &str| (!s.is_empty()).then(|| Regex::new(s).unwrap());
        let selection = Selection {
            sample_index: Some("alloc_space".into()),
            filters: Filters {
                focus: re(focus),
                ignore: re(ignore),
                hide: re(hide),
                ..Filters::default()
            },
            ..Selection::default()
        };
        shown(&service(), &selection)
    }

    fn service() -> Profile {
        profile(
            &["alloc_space", "inuse_space"],
            &[
                ("main;serve;cache::insert", &[100, 60]),
                ("main;serve>render;Vec::push", &[50, 0]),
                ("main;load;Vec::push", &[30, 30]),
                ("main;serve;cache::insert", &[20, 20]),
            ],
        )
    }

    #[test]
    fn unfiltered_stacks_merge_samples_and_mark_inlined_frames() {
        let alloc = Selection {
            sample_index: Some("alloc_space".into()),
            ..Selection::default()
        };
        let cases: [(Selection, &[&str], i64); 2] = [
            // inuse_space, the last type: the zero sample is left out and
            // the two samples of one stack are one.
            (
                Selection::default(),
                &["main;serve;cache::insert 80", "main;load;Vec::push 30"],
                110,
            ),
            (
                alloc,
                &[
                    "main;serve;cache::insert 120",
                    "main;serve;render*;Vec::push 50",
                    "main;load;Vec::push 30",
                ],
                200,
            ),
        ];
        for (selection, stacks, total) in cases {
            let (shown_stacks, shown_total) = shown(&service(), &selection);
            assert_eq!(shown_stacks, stacks);
            assert_eq!(shown_total, total);
        }
    }

    #[test]
    fn focus_keeps_samples_with_a_matching_frame_and_the_whole_total() {
        // An inlined function matches as a called one does; percentages
        // stay of the whole profile.
        assert_eq!(
            alloc_space("^render$", "", ""),
            (vec!["main;serve;render*;Vec::push 50".to_owned()], 200)
        );
    }

    #[test]
    fn ignore_drops_samples_with_a_matching_frame() {
        let (stacks, _) = alloc_space("", "render|load", "");
        assert_eq!(stacks, ["main;serve;cache::insert 120"]);
        // Focus and ignore together: both apply.
        let (stacks, _) = alloc_space("Vec", "load", "");
        assert_eq!(stacks, ["main;serve;render*;Vec::push 50"]);
    }

    #[test]
    fn hide_removes_frames_and_keeps_their_samples() {
        let (stacks, total) = alloc_space("", "", "^(serve|render)$");
        assert_eq!(
            stacks,
            [
                "main;cache::insert 120",
                "main;Vec::push 50",
                "main;load;Vec::push 30"
            ]
        );
        assert_eq!(total, 200);
    }

    #[test]
    fn one_name_in_two_files_is_one_function_without_a_file() {
        let mut names = Names::default();
        let layer = names.intern("handle", "router/layer.js");
        let app = names.intern("handle", "application.js");
        let next = names.intern("next", "route.js");
        assert_eq!(layer, app);
        assert_ne!(layer, next);
        assert_eq!((names.file(layer), names.file(next)), ("", "route.js"));
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn frames_without_a_function_are_named_after_their_mapping() {
        // pprof's names: the mapping's base name in brackets, <unknown>
        // without a mapping; a function without a name is named alike.
        let mut profile = profile(
            &["samples"],
            &[
                ("[/lib/ld.so];main;[/usr/lib/libc.so.6]", &[4]),
                ("[/lib/ld.so];main;nameless", &[2]),
                ("[/lib/ld.so];[];[/opt/other/libc.so.6]", &[1]),
                ("[/lib/ld.so/];[]", &[3]),
            ],
        );
        let nameless = profile.functions.iter_mut().find(|f| f.name == "nameless");
        nameless.unwrap().name = String::new();
        // The nameless function's location is in libc; the same function
        // at a location without a mapping is <unknown>.
        let libc = Some(0);
        assert_eq!(profile.mappings[0].filename, "/usr/lib/libc.so.6");
        let at = profile
            .locations
            .iter_mut()
            .find(|l| l.lines.iter().any(|l| l.function == 1));
        at.unwrap().mapping = libc;
        profile.locations.push(Location {
            mapping: None,
            lines: vec![heapprof_pprof::Line {
                function: 1,
                line: 0,
            }],
            ..Location::default()
        });
        profile.samples.push(heapprof_pprof::Sample {
            locations: vec![profile.locations.len() - 1],
            values: vec![5],
            labels: vec![],
        });
        let (stacks, total) = shown(&profile, &Selection::default());
        assert_eq!(
            stacks,
            [
                "[ld.so];main;[libc.so.6] 4",
                "[ld.so];main;[libc.so.6] 2",
                "[ld.so];<unknown>;[libc.so.6] 1",
                "[ld.so];<unknown> 3",
                "<unknown> 5",
            ]
        );
        assert_eq!(total, 15);
        // Each object file is its own function, even under one base name.
        let mut names = Names::default();
        let selected = select(&profile, &Selection::default(), &mut names).unwrap();
        let leaves: Vec<u32> = selected
            .stacks
            .iter()
            .map(|s| s.frames[0].function)
            .collect();
        assert_ne!(leaves[0], leaves[2]);
        assert_eq!(names.file(leaves[0]), "");
    }

    #[test]
    fn the_sample_type_is_chosen_by_name_index_or_default() {
        let profile = service();
        let by = |name: Option<&str>| {
            Selection {
                sample_index: name.map(str::to_owned),
                ..Selection::default()
            }
            .index_in(&profile)
        };
        assert_eq!(by(None).unwrap(), 1);
        assert_eq!(by(Some("alloc_space")).unwrap(), 0);
        assert_eq!(by(Some("1")).unwrap(), 1);
        assert_eq!(
            by(Some("bogus")).unwrap_err().to_string(),
            "sample index \"bogus\" must be one of: [alloc_space inuse_space]"
        );
        let mut default_named = service();
        default_named.default_sample_type = "alloc_space".into();
        assert_eq!(Selection::default().index_in(&default_named).unwrap(), 0);
        assert_eq!(
            Selection::default()
                .index_in(&Profile::default())
                .unwrap_err()
                .to_string(),
            "the profile has no sample types"
        );
    }
    #[test]
    fn filters_that_match_no_location_are_named() {
        let re = |s: &str| Some(Regex::new(s).unwrap());
        let filters = |focus, ignore, hide| Filters {
            focus: re(focus),
            ignore: re(ignore),
            hide: re(hide),
            ..Filters::default()
        };
        let service = service();
        let unmatched = |f: &Filters| f.unmatched(&[&service]);
        assert_eq!(unmatched(&Filters::default()), Vec::<&str>::new());
        assert_eq!(
            unmatched(&filters("cache", "load", "render")),
            Vec::<&str>::new()
        );
        assert_eq!(
            unmatched(&filters("nowhere", "nothing", "none")),
            ["focus", "ignore", "hide"]
        );
        // A focus matches only where ignore does not, as in pprof.
        assert_eq!(unmatched(&filters("load", "load", "main")), ["focus"]);
        // Any of several profiles (a diff's two) may hold the match.
        let other = profile(&["alloc_space"], &[("main;elsewhere", &[1])]);
        assert_eq!(
            filters("elsewhere", "x^", "main").unmatched(&[&service, &other]),
            ["ignore"]
        );
    }
}
