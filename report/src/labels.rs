//! Sample labels as `go tool pprof` reads them: the tag filters
//! (`-tagfocus`, `-tagignore`), the unit of each numeric label key, the
//! pseudo frames of `-tagroot` and `-tagleaf`, and which samples pprof's
//! filters keep. The rules are those of Go 1.19's vendored pprof
//! (`compileTagFilter`, `FilterSamplesByTag`, `addLabelNodes`), quirks
//! included; this module never prints anything.
//!
//! pprof reads a label whose string is "" as a number, and drops a
//! numeric one of value 0 without a unit: `strings` and `numbers`
//! give a sample's labels as pprof sees them.

use std::collections::HashMap;

use heapprof_pprof::{LabelValue, Profile, Sample};
use regex::Regex;

use crate::shorten::display_name;
use crate::stacks::{Filters, Selection};
use crate::units::{scale_to, Formatter};

/// A sample's string labels, (key, value), in their order.
pub(crate) fn strings(sample: &Sample) -> impl Iterator<Item = (&str, &str)> {
    sample.labels.iter().filter_map(|l| match &l.value {
        LabelValue::Str(value) if !value.is_empty() => Some((l.key.as_str(), value.as_str())),
        _ => None,
    })
}

/// A sample's numeric labels, (key, value, unit or ""), in their order.
pub(crate) fn numbers(sample: &Sample) -> impl Iterator<Item = (&str, i64, &str)> {
    sample.labels.iter().filter_map(|l| match &l.value {
        LabelValue::Num { value, unit } if *value != 0 || !unit.is_empty() => {
            Some((l.key.as_str(), *value, unit.as_str()))
        }
        _ => None,
    })
}

/// The unit of each numeric label key (pprof's `NumLabelUnits`): the first
/// unit a sample gives it; without one, bytes for `alignment` and
/// `request`, the key itself for any other key (Go's heap profiles' `bytes`
/// label has no unit, so it is in bytes).
pub(crate) fn num_label_units(profile: &Profile) -> HashMap<&str, &str> {
    let mut units: HashMap<&str, &str> = HashMap::new();
    for sample in &profile.samples {
        for (key, _, unit) in numbers(sample) {
            let known = units.entry(key).or_insert("");
            if known.is_empty() {
                *known = unit;
            }
        }
    }
    for (key, unit) in units.iter_mut() {
        if unit.is_empty() {
            *unit = match *key {
                "alignment" | "request" => "bytes",
                key => key,
            };
        }
    }
    units
}

/// A `-tagfocus` or `-tagignore` expression: `[KEY=]VALUE`, where VALUE is
/// a range of numbers with an optional unit (`1024`, `1kb:`, `:64mb`,
/// `2kb:4kb`) or else comma-separated regexes.
#[derive(Clone, Debug)]
pub struct TagFilter {
    text: String,
    key: Option<String>,
    test: Test,
}

#[derive(Clone, Debug)]
enum Test {
    /// Regexes over string label values.
    Values(Vec<Regex>),
    /// A range of numeric label values, in `unit`.
    Range {
        unit: String,
        low: Option<f64>,
        high: Option<f64>,
    },
}

/// Why a tag filter expression cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TagFilterError {
    /// One of its regexes does not compile.
    #[error("{regex:?} is not a valid regex: {cause}")]
    Regex {
        /// The regex.
        regex: String,
        /// The compiler's last line.
        cause: String,
    },
    /// A number of its range does not fit in 64 bits.
    #[error("{number} is out of range for a label value")]
    Number {
        /// The number.
        number: String,
    },
}

impl TagFilter {
    /// Parses `text` as pprof does. Where pprof takes `[KEY=]VALUE` for a
    /// range only when the whole of VALUE is one, so does this: `v1.2` is
    /// a regex.
    pub fn parse(text: &str) -> Result<TagFilter, TagFilterError> {
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (Some(key), value),
            None => (None, text),
        };
        // pprof treats `=VALUE` as VALUE for any key.
        let key = key.filter(|k| !k.is_empty()).map(str::to_owned);
        let test = match range(value)? {
            Some(range) => range,
            None => Test::Values(
                value
                    .split(',')
                    .map(|re| {
                        Regex::new(re).map_err(|e| TagFilterError::Regex {
                            regex: re.to_owned(),
                            cause: e
                                .to_string()
                                .lines()
                                .last()
                                .unwrap_or_default()
                                .trim_start_matches("error: ")
                                .to_owned(),
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(TagFilter {
            text: text.to_owned(),
            key,
            test,
        })
    }

    /// The expression as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it is a range over numeric labels (pprof says so on stderr:
    /// "Interpreted '...' as range, not regexp").
    pub fn is_range(&self) -> bool {
        matches!(self.test, Test::Range { .. })
    }

    /// Whether `sample` matches, numeric keys being in `units`. A sample
    /// without the key never matches (so `-tagignore` keeps it). Without a
    /// key, a range matches a value of any numeric key, and regexes must
    /// each match some string label written `key:value`.
    pub(crate) fn matches(&self, sample: &Sample, units: &HashMap<&str, &str>) -> bool {
        match &self.test {
            Test::Range { unit, low, high } => numbers(sample)
                .filter(|(key, _, _)| self.key.as_deref().is_none_or(|k| k == *key))
                .any(|(key, value, _)| {
                    let (scaled, scaled_unit) =
                        scale_to(value, units.get(key).copied().unwrap_or(key), unit);
                    scaled_unit == *unit
                        && low.is_none_or(|low| scaled >= low)
                        && high.is_none_or(|high| scaled <= high)
                }),
            Test::Values(regexes) => match &self.key {
                Some(want) => strings(sample)
                    .filter(|(key, _)| key == want)
                    .any(|(_, value)| regexes.iter().any(|re| re.is_match(value))),
                None => regexes.iter().all(|re| {
                    strings(sample).any(|(key, value)| re.is_match(&format!("{key}:{value}")))
                }),
            },
        }
    }
}

/// pprof's `parseTagFilterRange`: `N`, `N:`, `:N` or `N:M`, each number
/// with an optional unit (M's in N's unit family); `None` for anything
/// else, which is then regexes.
fn range(value: &str) -> Result<Option<Test>, TagFilterError> {
    let number = Regex::new("([+-]?[[:digit:]]+)([[:alpha:]]+)?").expect("valid");
    let found: Vec<regex::Captures> = number.captures_iter(value).take(2).collect();
    let parse = |c: &regex::Captures| -> Result<(i64, String), TagFilterError> {
        let digits = &c[1];
        let n = digits.parse::<i64>().map_err(|_| TagFilterError::Number {
            number: digits.to_owned(),
        })?;
        Ok((n, c.get(2).map_or("", |u| u.as_str()).to_owned()))
    };
    let whole = |c: &regex::Captures| c[0].to_owned();
    let (low, high, unit) = match found.as_slice() {
        [] => return Ok(None),
        [one] => {
            let m = whole(one);
            let shape = if value == m {
                (true, true)
            } else if value == format!("{m}:") {
                (true, false)
            } else if value == format!(":{m}") {
                (false, true)
            } else {
                return Ok(None);
            };
            let (n, unit) = parse(one)?;
            let (scaled, unit) = scale_to(n, &unit, &unit);
            (shape.0.then_some(scaled), shape.1.then_some(scaled), unit)
        }
        [first, second] => {
            if value != format!("{}:{}", whole(first), whole(second)) {
                return Ok(None);
            }
            let (n, first_unit) = parse(first)?;
            let (low, unit) = scale_to(n, &first_unit, &first_unit);
            let (m, second_unit) = parse(second)?;
            let (high, high_unit) = scale_to(m, &second_unit, &unit);
            if high_unit != unit {
                return Ok(None);
            }
            (Some(low), Some(high), unit)
        }
        _ => unreachable!("at most two ranges are taken"),
    };
    Ok(Some(Test::Range { unit, low, high }))
}

/// The pseudo frames of pprof's `-tagroot` and `-tagleaf`: for each
/// sample and each key, a frame named after the sample's values of that
/// key (strings, then numbers in their own unit, joined by ","), or
/// nameless (`<unknown>`) when it has none. The first root key is the
/// root, the last leaf key the leaf.
#[derive(Debug)]
pub(crate) struct LabelFrames {
    /// Each distinct pseudo frame: (name, key).
    pub names: Vec<(String, String)>,
    /// Per sample, the leaf keys' frames then the root keys', each part
    /// leaf first.
    ids: Vec<usize>,
    leaf_keys: usize,
    root_keys: usize,
    /// Whether some sample has a root key, or a leaf key.
    pub root_matched: bool,
    pub leaf_matched: bool,
}

impl LabelFrames {
    /// The frames `selection` asks for in `profile`, `None` without keys.
    pub fn new(profile: &Profile, selection: &Selection) -> Option<LabelFrames> {
        let (roots, leaves) = (&selection.tag_root, &selection.tag_leaf);
        if roots.is_empty() && leaves.is_empty() {
            return None;
        }
        let mut frames = LabelFrames {
            names: Vec::new(),
            ids: Vec::with_capacity(profile.samples.len() * (roots.len() + leaves.len())),
            leaf_keys: leaves.len(),
            root_keys: roots.len(),
            root_matched: false,
            leaf_matched: false,
        };
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        for sample in &profile.samples {
            for (keys, is_root) in [(leaves, false), (roots, true)] {
                for key in keys.iter().rev() {
                    let mut values: Vec<String> = strings(sample)
                        .filter(|(k, _)| k == key)
                        .map(|(_, v)| v.to_owned())
                        .collect();
                    values.extend(
                        numbers(sample)
                            .filter(|(k, _, _)| k == key)
                            .map(|(_, v, unit)| Formatter::auto(unit).format(v)),
                    );
                    if !values.is_empty() {
                        if is_root {
                            frames.root_matched = true;
                        } else {
                            frames.leaf_matched = true;
                        }
                    }
                    let name = (values.join(","), key.clone());
                    let next = frames.names.len();
                    let id = *index.entry(name.clone()).or_insert(next);
                    if id == next {
                        frames.names.push(name);
                    }
                    frames.ids.push(id);
                }
            }
        }
        Some(frames)
    }

    /// The pseudo frames of sample `sample`: its [`Self::leaves`], then
    /// its [`Self::roots`].
    pub fn of(&self, sample: usize) -> &[usize] {
        let each = self.leaf_keys + self.root_keys;
        &self.ids[sample * each..(sample + 1) * each]
    }

    /// The leaf keys' frames of sample `sample`, leaf first.
    pub fn leaves(&self, sample: usize) -> &[usize] {
        &self.of(sample)[..self.leaf_keys]
    }

    /// The root keys' frames of sample `sample`, leaf first (the last one
    /// is the root).
    pub fn roots(&self, sample: usize) -> &[usize] {
        &self.of(sample)[self.leaf_keys..]
    }
}

/// What pprof's name filters say of one location (a real one or a
/// pseudo frame).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Hits {
    pub focus: bool,
    pub ignore: bool,
    pub hide: bool,
    /// Every line hidden: the location leaves the stack.
    pub hidden: bool,
}

/// [`Hits`] of each location of `profile` and of each pseudo frame.
pub(crate) fn location_hits(
    profile: &Profile,
    frames: Option<&LabelFrames>,
    filters: &Filters,
) -> (Vec<Hits>, Vec<Hits>) {
    let functions: Vec<(std::borrow::Cow<str>, &str)> = profile
        .functions
        .iter()
        .map(|f| (display_name(f), f.filename.as_str()))
        .collect();
    let functions = &functions;
    let real = profile
        .locations
        .iter()
        .map(|location| {
            let object = location
                .mapping
                .and_then(|m| profile.mappings.get(m))
                .map(|m| m.filename.as_str());
            // (the object file matches, lines that match, lines)
            let judge = |re: &Regex| {
                let lines = location
                    .lines
                    .iter()
                    .filter(|line| {
                        functions
                            .get(line.function)
                            .is_some_and(|(name, file)| re.is_match(name) || re.is_match(file))
                    })
                    .count();
                (object.is_some_and(|o| re.is_match(o)), lines)
            };
            let hits = |re: &Option<Regex>| {
                re.as_ref().is_some_and(|re| {
                    let (object, lines) = judge(re);
                    object || lines > 0
                })
            };
            let hidden = filters.hide.as_ref().is_some_and(|re| {
                let (object, lines) = judge(re);
                object || (lines > 0 && lines == location.lines.len())
            });
            Hits {
                focus: hits(&filters.focus),
                ignore: hits(&filters.ignore),
                hide: hits(&filters.hide),
                hidden,
            }
        })
        .collect();
    let pseudo = frames.map_or(Vec::new(), |frames| {
        frames
            .names
            .iter()
            .map(|(name, key)| {
                let hits = |re: &Option<Regex>| {
                    re.as_ref()
                        .is_some_and(|re| re.is_match(name) || re.is_match(key))
                };
                let hide = hits(&filters.hide);
                Hits {
                    focus: hits(&filters.focus),
                    ignore: hits(&filters.ignore),
                    hide,
                    hidden: hide,
                }
            })
            .collect()
    });
    (real, pseudo)
}

/// Which samples of a profile pprof's filters keep, and which filters
/// matched anything (for pprof's "matched no samples" warnings).
#[derive(Debug, Default)]
pub(crate) struct Kept {
    /// Per sample.
    pub samples: Vec<bool>,
    pub focus: bool,
    pub ignore: bool,
    pub hide: bool,
    pub tag_focus: bool,
    pub tag_ignore: bool,
    pub tag_root: bool,
    pub tag_leaf: bool,
}

/// The samples of `profile` that survive `selection`'s filters, judged as
/// pprof judges them: pseudo frames first, then the name filters (a
/// sample needs a location that is focused and none that is ignored, so
/// one without frames goes; one whose every frame is hidden goes too),
/// then the tag filters over the samples left.
pub(crate) fn kept(profile: &Profile, selection: &Selection) -> Kept {
    let filters = &selection.filters;
    let frames = LabelFrames::new(profile, selection);
    let (real, pseudo) = location_hits(profile, frames.as_ref(), filters);
    let units = if filters.tag_focus.is_some() || filters.tag_ignore.is_some() {
        num_label_units(profile)
    } else {
        HashMap::new()
    };
    let mut kept = Kept {
        tag_root: frames.as_ref().is_some_and(|f| f.root_matched),
        tag_leaf: frames.as_ref().is_some_and(|f| f.leaf_matched),
        ..Kept::default()
    };
    for hits in real.iter().chain(&pseudo) {
        kept.ignore |= hits.ignore;
        kept.focus |= !hits.ignore && hits.focus;
        kept.hide |= hits.hide;
    }
    for (i, sample) in profile.samples.iter().enumerate() {
        let (leaves, roots) = frames
            .as_ref()
            .map_or((&[][..], &[][..]), |f| (f.leaves(i), f.roots(i)));
        let hits = leaves
            .iter()
            .map(|&p| &pseudo[p])
            .chain(sample.locations.iter().map(|&l| &real[l]))
            .chain(roots.iter().map(|&p| &pseudo[p]));
        let mut focused = false;
        let mut ignored = false;
        let mut shown = false;
        for h in hits {
            ignored |= h.ignore;
            focused |= !h.ignore && (filters.focus.is_none() || h.focus);
            shown |= !h.hidden;
        }
        let mut keep = focused && !ignored && shown;
        if keep {
            let tag_focused = filters
                .tag_focus
                .as_ref()
                .is_none_or(|f| f.matches(sample, &units));
            let tag_ignored = filters
                .tag_ignore
                .as_ref()
                .is_some_and(|f| f.matches(sample, &units));
            kept.tag_focus |= tag_focused;
            kept.tag_ignore |= tag_ignored;
            keep = tag_focused && !tag_ignored;
        }
        kept.samples.push(keep);
    }
    kept
}

impl Selection {
    /// The flags of this selection's filters that match nothing in any of
    /// `profiles`, in the order pprof warns of them: `tag-root`,
    /// `tag-leaf`, `focus`, `ignore`, `hide`, `tag-focus`, `tag-ignore`.
    /// As in pprof, the name filters see the pseudo frames of `tag_root`
    /// and `tag_leaf`, and the tag filters only the samples the name
    /// filters keep.
    pub fn unmatched(&self, profiles: &[&Profile]) -> Vec<&'static str> {
        let filters = &self.filters;
        let none = [&filters.focus, &filters.ignore, &filters.hide]
            .iter()
            .all(|re| re.is_none())
            && filters.tag_focus.is_none()
            && filters.tag_ignore.is_none()
            && self.tag_root.is_empty()
            && self.tag_leaf.is_empty();
        if none {
            return Vec::new();
        }
        let all: Vec<Kept> = profiles.iter().map(|p| kept(p, self)).collect();
        let any = |pick: fn(&Kept) -> bool| all.iter().any(pick);
        [
            ("tag-root", !self.tag_root.is_empty(), any(|k| k.tag_root)),
            ("tag-leaf", !self.tag_leaf.is_empty(), any(|k| k.tag_leaf)),
            ("focus", filters.focus.is_some(), any(|k| k.focus)),
            ("ignore", filters.ignore.is_some(), any(|k| k.ignore)),
            ("hide", filters.hide.is_some(), any(|k| k.hide)),
            (
                "tag-focus",
                filters.tag_focus.is_some(),
                any(|k| k.tag_focus),
            ),
            (
                "tag-ignore",
                filters.tag_ignore.is_some(),
                any(|k| k.tag_ignore),
            ),
        ]
        .into_iter()
        .filter(|&(_, set, matched)| set && !matched)
        .map(|(flag, _, _)| flag)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use heapprof_pprof::Label;

    use super::*;
    use crate::testing::{number, profile, text};

    fn sample(labels: Vec<Label>) -> Sample {
        Sample {
            labels,
            ..Sample::default()
        }
    }

    fn matches(filter: &str, labels: Vec<Label>) -> bool {
        let sample = sample(labels);
        let profile = Profile {
            samples: vec![sample.clone()],
            ..Profile::default()
        };
        let units = num_label_units(&profile);
        TagFilter::parse(filter).unwrap().matches(&sample, &units)
    }

    #[test]
    fn a_key_takes_alternative_regexes_and_a_sample_without_it_never_matches() {
        let users = || vec![text("endpoint", "/users/42"), text("tenant", "acme")];
        assert!(matches("endpoint=/users", users()));
        assert!(matches("endpoint=^/orders,^/users", users()));
        assert!(!matches("endpoint=^/orders", users()));
        assert!(!matches("region=.*", users()));
        // A number is a range, even for a key of strings: no match.
        assert!(!matches("tenant=42", users()));
        assert!(matches("=acme", users()));
    }

    #[test]
    fn without_a_key_every_regex_must_match_some_key_value() {
        let users = || vec![text("endpoint", "/users"), text("tenant", "acme")];
        assert!(matches("tenant:acme", users()));
        assert!(matches("endpoint:/users,tenant:ac", users()));
        assert!(!matches("endpoint:/users,tenant:other", users()));
        // The value alone matches too, being part of `key:value`.
        assert!(matches("acme", users()));
    }

    #[test]
    fn ranges_compare_numbers_in_their_keys_unit() {
        let size = |n| vec![number("bytes", n, "")];
        assert!(matches("bytes=1kb:", size(1024)));
        assert!(!matches("bytes=1kb:", size(1023)));
        assert!(matches(":1kb", size(512)));
        assert!(matches("512b:2kb", size(2048)));
        assert!(matches("1kb", size(1024)));
        // pprof's quirk: a number without a unit is in no unit, which a
        // key in bytes never is.
        assert!(!matches("bytes=1024", size(1024)));
        assert!(matches("count=3", vec![number("count", 3, "")]));
        // A unit of the label's own; another family does not match.
        assert!(matches(
            "1ms:",
            vec![number("wait", 2_000_000, "nanoseconds")]
        ));
        assert!(!matches(
            "1kb:",
            vec![number("wait", 2_000_000, "nanoseconds")]
        ));
        // A range over a string label's key finds no number.
        assert!(!matches("endpoint=1:", vec![text("endpoint", "7")]));
    }

    #[test]
    fn bad_expressions_are_errors_and_odd_ones_regexes() {
        let error = |f: &str| TagFilter::parse(f).unwrap_err().to_string();
        assert_eq!(
            error("bytes=99999999999999999999kb:"),
            "99999999999999999999 is out of range for a label value"
        );
        assert!(error("endpoint=(").starts_with("\"(\" is not a valid regex: "));
        for regex in ["v1.2", "1kb:2ms", "/users/42", "1:2:3"] {
            assert!(!TagFilter::parse(regex).unwrap().is_range(), "{regex}");
        }
        assert!(TagFilter::parse("x=-5:+5").unwrap().is_range());
    }

    #[test]
    fn pprof_sees_no_empty_string_and_no_unitless_zero() {
        let s = sample(vec![
            text("a", ""),
            number("b", 0, ""),
            number("c", 0, "bytes"),
            number("d", 5, ""),
        ]);
        assert_eq!(strings(&s).count(), 0);
        let keys: Vec<&str> = numbers(&s).map(|(k, _, _)| k).collect();
        assert_eq!(keys, ["c", "d"]);
    }

    #[test]
    fn label_frames_name_values_with_the_first_root_key_at_the_root() {
        let mut profile = profile(&["samples"], &[("main;f", &[1]), ("main;g", &[2])]);
        profile.samples[0].labels = vec![
            text("endpoint", "/a"),
            text("endpoint", "/b"),
            number("bytes", 2048, "bytes"),
        ];
        let selection = Selection {
            tag_root: vec!["endpoint".into(), "bytes".into()],
            tag_leaf: vec!["tenant".into()],
            ..Selection::default()
        };
        let frames = LabelFrames::new(&profile, &selection).unwrap();
        let names = |ids: &[usize]| -> Vec<String> {
            ids.iter().map(|&i| frames.names[i].0.clone()).collect()
        };
        assert_eq!(names(frames.roots(0)), ["2kB", "/a,/b"]);
        assert_eq!(names(frames.leaves(0)), [""]);
        assert_eq!(names(frames.roots(1)), ["", ""]);
        assert!(frames.root_matched && !frames.leaf_matched);
        assert_eq!(selection.unmatched(&[&profile]), ["tag-leaf"]);
    }
}
