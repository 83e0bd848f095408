//! Where memory grew between two profiles of one program: NEW minus BASE.
//! The top table of the difference (what `go tool pprof -top -base BASE
//! NEW` shows), its differential folded stacks (`stack base new`), or a
//! differential flamegraph in which growth is red and shrinkage blue.

use std::collections::HashMap;
use std::io::Write;

use heapprof_pprof::{Location, Profile, ValueType};
use inferno::flamegraph::color::{BasicPalette, Palette};

use crate::fasthash::IdMap;
use crate::graph;
use crate::header::{self, Header};
use crate::stacks::{self, Frame, Names, Selection, Stack};
use crate::{difference_graph, flamegraph, folded, top, units, Error};

/// What [`write()`] prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// The top table of NEW minus BASE, as `go tool pprof -top -base`.
    #[default]
    Top,
    /// inferno's differential folded stacks, `stack base new` per line,
    /// sorted.
    Folded,
    /// A differential flamegraph (SVG): NEW's stacks, growth red, shrinkage
    /// blue.
    Flamegraph,
}

/// Options of a diff.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The sample type (chosen in NEW, found by name in BASE) and filters
    /// (applied to both).
    pub selection: Selection,
    /// Which rows of the table, in which order.
    pub graph: graph::Options,
    /// Table, folded stacks or flamegraph.
    pub format: Format,
}

/// Writes the difference NEW minus BASE. Errors about either profile's
/// sample types come as [`Error::Base`] or [`Error::New`].
pub fn write(
    options: &Options,
    base: &Profile,
    new: &Profile,
    out: &mut impl Write,
) -> Result<(), Error> {
    let (base_index, new_index) = sample_indices(&options.selection, base, new)?;
    let scaled = in_common_units(base, base_index, new, new_index)?;
    let (base, new) = match &scaled {
        Some((base, new)) => (base, new),
        None => (base, new),
    };
    let sample_type = &new.sample_types[new_index];
    let by_name = options.selection.with_sample_type(&sample_type.r#type);
    // One name table for both, so that a function has one id in both.
    let mut names = Names::default();
    let base_stacks = stacks::select(base, &by_name, &mut names)
        .map_err(in_base)?
        .stacks;
    let new_stacks = stacks::select(new, &by_name, &mut names)
        .map_err(in_new)?
        .stacks;
    if options.format == Format::Top {
        let changed = difference(&base_stacks, &new_stacks);
        // Percentages are of the whole difference, before filters.
        let total = merged_total(base, base_index, new, new_index);
        let table = graph::top(&changed, &names, total, &options.graph);
        let header = Header {
            profiles: &[new, base],
            sample_type: &sample_type.r#type,
            unit: &sample_type.unit,
            total: table.total,
            format: &top::formatter(&sample_type.unit, &table),
            filters: &options.selection.filters,
        };
        header::write(&header, out)?;
        return top::write_table(&sample_type.unit, &table, out);
    }
    let mut compared = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        folded::lines(&base_stacks, &names).join("\n").as_bytes(),
        folded::lines(&new_stacks, &names).join("\n").as_bytes(),
        &mut compared,
    )
    .map_err(Error::Compare)?;
    let compared = String::from_utf8(compared)
        .map_err(|e| Error::Compare(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    // inferno writes them in hash order.
    let mut lines: Vec<String> = compared.lines().map(str::to_owned).collect();
    lines.sort_unstable();
    if options.format == Format::Folded {
        for line in &lines {
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    let changes = folded::fold_all(&difference(&base_stacks, &new_stacks), &names);
    let title = format!(
        "{}: change from base to new (red grew, blue shrank; width: amount changed)",
        sample_type.r#type
    );
    if changes.is_empty() {
        let note = format!("No stack's {} changed.", sample_type.r#type);
        return flamegraph::write_empty(&title, &note, out);
    }
    let mut inferno =
        flamegraph::inferno_options(sample_type, title, &flamegraph::Options::default());
    inferno.colors = Palette::Basic(BasicPalette::Hot);
    let unit = inferno.count_name.clone();
    difference_graph::write(&mut inferno, &changes, &unit, out)
}

/// The sample type indices (in BASE, in NEW) that a diff with `selection`
/// shows: the selection's in NEW, the one of the same name in BASE.
pub fn sample_indices(
    selection: &Selection,
    base: &Profile,
    new: &Profile,
) -> Result<(usize, usize), Error> {
    let new_index = selection.index_in(new).map_err(in_new)?;
    let name = &new.sample_types[new_index].r#type;
    let base_index = selection
        .with_sample_type(name)
        .index_in(base)
        .map_err(in_base)?;
    Ok((base_index, new_index))
}

/// BASE and NEW with their values in common units, as pprof scales the
/// profiles it merges (its `ScaleProfiles`): each sample type in the finer
/// of its two units, values rounded, samples whose scaled values all round
/// to zero dropped. `None` when the units are the same already. Profiles
/// with different lists of sample types are compared at the shown type
/// only. Units of different kinds (bytes and seconds) are an error.
fn in_common_units(
    base: &Profile,
    base_index: usize,
    new: &Profile,
    new_index: usize,
) -> Result<Option<(Profile, Profile)>, Error> {
    let pairs: Vec<(usize, usize)> = if base.sample_types.len() == new.sample_types.len() {
        (0..new.sample_types.len()).map(|i| (i, i)).collect()
    } else {
        vec![(base_index, new_index)]
    };
    let mut ratios = (
        vec![1.0; base.sample_types.len()],
        vec![1.0; new.sample_types.len()],
    );
    let mut units = (base.sample_types.clone(), new.sample_types.clone());
    for (b, n) in pairs {
        let (base_unit, new_unit) = (&base.sample_types[b].unit, &new.sample_types[n].unit);
        if base_unit == new_unit {
            continue;
        }
        if !units::compatible(base_unit, new_unit) {
            if n != new_index {
                continue; // not shown: pprof would refuse, heapprof need not
            }
            return Err(Error::IncompatibleUnits {
                sample_type: new.sample_types[n].r#type.clone(),
                base_unit: base_unit.clone(),
                new_unit: new_unit.clone(),
            });
        }
        // The finer unit: NEW's unless BASE's is smaller.
        let finest = if units::ratio(base_unit, new_unit) < 1.0 {
            base_unit
        } else {
            new_unit
        };
        ratios.0[b] = units::ratio(base_unit, finest);
        ratios.1[n] = units::ratio(new_unit, finest);
        units.0[b].unit = finest.clone();
        units.1[n].unit = finest.clone();
    }
    if ratios.0.iter().chain(&ratios.1).all(|&r| r == 1.0) {
        return Ok(None);
    }
    let scale = |profile: &Profile, ratios: &[f64], types: Vec<ValueType>| {
        let mut scaled = profile.clone();
        scaled.sample_types = types;
        scaled.samples.retain_mut(|sample| {
            let mut keep = false;
            for (value, &ratio) in sample.values.iter_mut().zip(ratios) {
                if ratio != 1.0 {
                    *value = (*value as f64 * ratio).round() as i64;
                    keep |= *value != 0;
                }
            }
            keep || ratios.iter().all(|&r| r == 1.0)
        });
        scaled
    };
    Ok(Some((
        scale(base, &ratios.0, units.0),
        scale(new, &ratios.1, units.1),
    )))
}

fn in_base(e: Error) -> Error {
    Error::Base(Box::new(e))
}

fn in_new(e: Error) -> Error {
    Error::New(Box::new(e))
}

/// The total that percentages of a diff are of, as pprof computes it: the
/// two profiles merged as `-base` merges them (BASE negated; samples are the
/// same if their locations and labels are, a location being its address in
/// its mapping and its lines), then the sum of |value| over the merged
/// samples. Unfiltered: filters do not change it. Samples that differ only
/// by a label (Go's object size) or by an address in the same function stay
/// apart, so this is not the sum over the merged stacks.
fn merged_total(base: &Profile, base_index: usize, new: &Profile, new_index: usize) -> i64 {
    let mut locations: IdMap<LocationKey, u32> = IdMap::default();
    let mut merged: IdMap<(Vec<u32>, Vec<String>), i64> = IdMap::default();
    for (profile, index, sign) in [(base, base_index, -1), (new, new_index, 1)] {
        let ids: Vec<u32> = profile
            .locations
            .iter()
            .map(|location| {
                let key = LocationKey::of(profile, location);
                let next = locations.len() as u32;
                *locations.entry(key).or_insert(next)
            })
            .collect();
        for sample in &profile.samples {
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|l| format!("{}={:?}", l.key, l.value))
                .collect();
            labels.sort_unstable();
            let key = (sample.locations.iter().map(|&l| ids[l]).collect(), labels);
            *merged.entry(key).or_default() += sign * sample.values[index];
        }
    }
    merged.values().map(|v| v.abs()).sum()
}

/// What makes two locations of two profiles the same one for pprof's merge.
#[derive(Hash, PartialEq, Eq)]
struct LocationKey {
    /// (size, file offset, build id or else file name) of the mapping.
    mapping: Option<(u64, u64, String)>,
    /// The address, relative to the mapping's start when there is one.
    address: u64,
    /// (function name, system name, file, start line, line) per line.
    lines: Vec<(String, String, String, i64, i64)>,
    folded: bool,
}

impl LocationKey {
    fn of(profile: &Profile, location: &Location) -> LocationKey {
        let mapping = location.mapping.and_then(|m| profile.mappings.get(m));
        LocationKey {
            mapping: mapping.map(|m| {
                let id = if m.build_id.is_empty() {
                    &m.filename
                } else {
                    &m.build_id
                };
                (
                    m.memory_limit.wrapping_sub(m.memory_start),
                    m.file_offset,
                    id.clone(),
                )
            }),
            address: location
                .address
                .wrapping_sub(mapping.map_or(0, |m| m.memory_start)),
            lines: location
                .lines
                .iter()
                .map(|line| {
                    let f = &profile.functions[line.function];
                    let names = (f.name.clone(), f.system_name.clone(), f.filename.clone());
                    (names.0, names.1, names.2, f.start_line, line.line)
                })
                .collect(),
            folded: location.is_folded,
        }
    }
}

/// NEW minus BASE: identical stacks (same frames) added up, so that
/// unchanged ones cancel, and zeros left out.
fn difference(base: &[Stack], new: &[Stack]) -> Vec<Stack> {
    let mut index: HashMap<&[Frame], usize> = HashMap::new();
    let mut merged: Vec<Stack> = Vec::new();
    let negated = base.iter().map(|s| (s, -s.value));
    for (stack, value) in negated.chain(new.iter().map(|s| (s, s.value))) {
        match index.get(&stack.frames[..]) {
            Some(&i) => merged[i].value += value,
            None => {
                index.insert(&stack.frames, merged.len());
                merged.push(Stack {
                    frames: stack.frames.clone(),
                    value,
                });
            }
        }
    }
    merged.retain(|s| s.value != 0);
    merged
}

#[cfg(test)]
mod tests {
    use heapprof_pprof::{Label, LabelValue};

    use super::*;
    use crate::testing::profile;

    /// A program whose cache and loader hold these many bytes, and whose
    /// renderer allocated 50 and holds none.
    fn service(cache: i64, load: i64) -> Profile {
        profile(
            &["alloc_space", "inuse_space"],
            &[
                ("main;cache::insert", &[cache, cache]),
                ("main;render", &[50, 0]),
                ("main;load", &[load, load]),
            ],
        )
    }

    fn before() -> Profile {
        service(100, 30)
    }

    fn after() -> Profile {
        service(300, 10)
    }

    fn diff(options: &Options, base: &Profile, new: &Profile) -> Result<String, Error> {
        let mut out = Vec::new();
        write(options, base, new, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_table_is_new_minus_base_with_pprofs_total() {
        // Growth 200 and shrinkage 20: 220 in all, of which the rows'
        // flat add up to 180 (go tool pprof -top -base prints the same).
        assert_eq!(
            diff(&Options::default(), &before(), &after()).unwrap(),
            "Type: inuse_space
Showing nodes accounting for 180B, 81.82% of 220B total
      flat  flat%   sum%        cum   cum%
      200B 90.91% 90.91%       200B 90.91%  cache::insert
      -20B  9.09% 81.82%       -20B  9.09%  load
         0     0% 81.82%       180B 81.82%  main
"
        );
    }

    #[test]
    fn samples_apart_in_either_profile_stay_apart_in_the_total() {
        let label = |size| Label {
            key: "bytes".into(),
            value: LabelValue::Num {
                value: size,
                unit: String::new(),
            },
        };
        let mut base = profile(&["inuse_space"], &[("main;a", &[100])]);
        base.samples[0].labels = vec![label(1024)];
        let mut new = profile(&["inuse_space"], &[("main;a", &[50]), ("main;a", &[50])]);
        new.samples[0].labels = vec![label(1024)];
        new.samples[1].labels = vec![label(4096)];
        // The stack did not change, but its 1024-byte blocks shrank by 50
        // and its 4096-byte blocks grew by 50: pprof's total is 100.
        assert_eq!(
            diff(&Options::default(), &base, &new).unwrap(),
            "Type: inuse_space
Showing nodes accounting for 0, 0% of 100B total
      flat  flat%   sum%        cum   cum%
"
        );
    }

    #[test]
    fn folded_form_pairs_each_stacks_values() {
        let options = Options {
            format: Format::Folded,
            selection: Selection {
                sample_index: Some("alloc_space".into()),
                ..Selection::default()
            },
            ..Options::default()
        };
        assert_eq!(
            diff(&options, &before(), &after()).unwrap(),
            "main;cache::insert 100 300\nmain;load 30 10\nmain;render 50 50\n"
        );
    }

    /// The tooltip of the frame named `name` in `svg`.
    fn tooltip<'s>(svg: &'s str, name: &str) -> &'s str {
        let start = svg
            .find(&format!("<title>{name} ("))
            .unwrap_or_else(|| panic!("no {name} frame in {svg}"));
        let end = start + svg[start..].find("</title>").unwrap();
        &svg[start + "<title>".len()..end]
    }

    #[test]
    fn the_flamegraph_shows_growth_and_shrinkage_with_their_signed_change() {
        let mut options = Options {
            format: Format::Flamegraph,
            ..Options::default()
        };
        let svg = diff(&options, &before(), &after()).unwrap();
        assert!(svg.contains(
            "inuse_space: change from base to new (red grew, blue shrank; width: amount changed)"
        ));
        // Grew by 200, shrank by 20: both drawn, as wide as their change.
        assert_eq!(
            tooltip(&svg, "cache::insert"),
            "cache::insert (+200 bytes; 200 bytes changed beneath)"
        );
        assert_eq!(
            tooltip(&svg, "load"),
            "load (-20 bytes; 20 bytes changed beneath)"
        );
        // Their caller, by its own net change, over all that changed.
        assert_eq!(
            tooltip(&svg, "main"),
            "main (+180 bytes; 220 bytes changed beneath)"
        );
        assert_eq!(
            tooltip(&svg, "all"),
            "all (+180 bytes; 220 bytes changed beneath)"
        );
        // A stack that shrank only is drawn too, blue: its fill has more
        // blue than red.
        let shrunk = diff(&options, &after(), &before()).unwrap();
        assert_eq!(
            tooltip(&shrunk, "main"),
            "main (-180 bytes; 220 bytes changed beneath)"
        );
        let insert = shrunk.find("<title>cache::insert (").unwrap();
        let fill = &shrunk[insert..];
        let fill = &fill[fill.find("fill=\"rgb(").unwrap() + "fill=\"rgb(".len()..];
        let rgb: Vec<u8> = fill[..fill.find(')').unwrap()]
            .split(',')
            .map(|c| c.trim().parse().unwrap())
            .collect();
        assert!(rgb[2] > rgb[0], "{rgb:?}");
        // Nothing changed: an SVG that says so.
        options.selection.filters.focus = Some(regex::Regex::new("nothing").unwrap());
        let empty = diff(&options, &before(), &after()).unwrap();
        assert!(
            empty.contains("No stack&apos;s inuse_space changed.")
                || empty.contains("No stack's inuse_space changed.")
        );
    }

    #[test]
    fn the_sample_type_is_chosen_in_new_and_found_by_name_in_base() {
        let base = profile(&["inuse_space"], &[("main", &[1])]);
        let new = profile(&["alloc_space", "inuse_space"], &[("main", &[5, 3])]);
        assert_eq!(
            sample_indices(&Selection::default(), &base, &new).unwrap(),
            (0, 1)
        );
        let alloc = Selection {
            sample_index: Some("alloc_space".into()),
            ..Selection::default()
        };
        match sample_indices(&alloc, &base, &new) {
            Err(Error::Base(e)) => assert_eq!(
                e.to_string(),
                "sample index \"alloc_space\" must be one of: [inuse_space]"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            write(&Options::default(), &new, &Profile::default(), &mut Vec::new()),
            Err(Error::New(e)) if matches!(*e, Error::NoSampleTypes)
        ));
    }
}
