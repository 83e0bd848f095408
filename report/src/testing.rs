//! Hand-built profiles for the unit tests, written as folded stacks.

use std::collections::HashMap;

use heapprof_pprof::{
    Function, Label, LabelValue, Line, Location, Mapping, Profile, Sample, ValueType,
};

/// A profile with `sample_types` (in bytes, or a count for `*_objects`)
/// and one sample per `(stack, values)`. A stack is root first,
/// `main;caller;leaf`; `outer>inner` is one location at which `inner` is
/// inlined into `outer`; `[/lib/libc.so]` is an unsymbolized location (no
/// lines) in a mapping of that file, `[]` one without a mapping; "" is a
/// sample without frames. Functions, locations and mappings are shared by
/// name.
pub(crate) fn profile(sample_types: &[&str], samples: &[(&str, &[i64])]) -> Profile {
    let mut profile = Profile {
        sample_types: sample_types
            .iter()
            .map(|t| {
                ValueType::new(
                    t,
                    if t.ends_with("objects") {
                        "count"
                    } else {
                        "bytes"
                    },
                )
            })
            .collect(),
        ..Profile::default()
    };
    let mut functions: HashMap<&str, usize> = HashMap::new();
    let mut locations: HashMap<&str, usize> = HashMap::new();
    for &(stack, values) in samples {
        let mut sample = Sample {
            values: values.to_vec(),
            ..Sample::default()
        };
        for token in stack.split(';').filter(|t| !t.is_empty()).rev() {
            let next = profile.locations.len();
            let location = *locations.entry(token).or_insert(next);
            if location == next {
                if let Some(objfile) = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                    let mapping = (!objfile.is_empty()).then(|| mapping(&mut profile, objfile));
                    profile.locations.push(Location {
                        mapping,
                        address: 0x1000 + 16 * next as u64,
                        ..Location::default()
                    });
                    sample.locations.push(location);
                    continue;
                }
                let lines = token
                    .split('>')
                    .rev()
                    .map(|name| {
                        let next = profile.functions.len();
                        let function = *functions.entry(name).or_insert(next);
                        if function == next {
                            profile.functions.push(Function {
                                name: name.to_owned(),
                                filename: format!("{name}.rs"),
                                ..Function::default()
                            });
                        }
                        Line { function, line: 1 }
                    })
                    .collect();
                profile.locations.push(Location {
                    address: 0x1000 + 16 * next as u64,
                    lines,
                    ..Location::default()
                });
            }
            sample.locations.push(location);
        }
        profile.samples.push(sample);
    }
    profile
}

/// The index of the mapping of `filename`, added on first use.
fn mapping(profile: &mut Profile, filename: &str) -> usize {
    if let Some(i) = profile.mappings.iter().position(|m| m.filename == filename) {
        return i;
    }
    profile.mappings.push(Mapping {
        filename: filename.to_owned(),
        ..Mapping::default()
    });
    profile.mappings.len() - 1
}

/// A string label.
pub(crate) fn text(key: &str, value: &str) -> Label {
    Label {
        key: key.into(),
        value: LabelValue::Str(value.into()),
    }
}

/// A numeric label, `unit` "" for none.
pub(crate) fn number(key: &str, value: i64, unit: &str) -> Label {
    Label {
        key: key.into(),
        value: LabelValue::Num {
            value,
            unit: unit.into(),
        },
    }
}
