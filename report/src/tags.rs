//! The table by label value: for each label key, how much of the chosen
//! sample type the samples with each of its values hold, counted as
//! `go tool pprof -tags` counts them (after the selection's filters; a
//! sample with two values of a key counts for both; numeric values in
//! their key's unit, `1kB`). Three forms: heapprof's table, with the top
//! table's header, units and columns; JSON; and pprof's own `-tags` text,
//! byte for byte.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::Write;

use heapprof_pprof::Profile;
use serde::Serialize;

use crate::header::{self, Header};
use crate::labels::{self, numbers, strings};
use crate::stacks::Selection;
use crate::units::{percentage, scale_to, Formatter};
use crate::Error;

/// What [`write()`] prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// A table per key in the top table's units and columns.
    #[default]
    Table,
    /// The figures as pretty-printed JSON, with raw values.
    Json,
    /// `go tool pprof -tags`'s text, exactly.
    Pprof,
}

/// Options of the table by label value.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The sample type and filters.
    pub selection: Selection,
    /// Which form.
    pub format: Format,
}

/// One label key's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValues {
    /// The key.
    pub key: String,
    /// The sum over its values (a sample with two values counts twice).
    pub total: i64,
    /// Each value and its figure, largest |figure| first, then by value.
    pub values: Vec<(String, i64)>,
}

/// The figures of every label key of `profile` under `selection`, keys in
/// order of name; also the index of the sample type used.
pub fn tally(profile: &Profile, selection: &Selection) -> Result<(usize, Vec<KeyValues>), Error> {
    let index = selection.index_in(profile)?;
    let kept = labels::kept(profile, selection);
    let units = labels::num_label_units(profile);
    let mut keys: BTreeMap<&str, HashMap<String, i64>> = BTreeMap::new();
    for (sample, _) in profile
        .samples
        .iter()
        .zip(&kept.samples)
        .filter(|(_, &kept)| kept)
    {
        let value = sample.values[index];
        for (key, text) in strings(sample) {
            *keys
                .entry(key)
                .or_default()
                .entry(text.to_owned())
                .or_default() += value;
        }
        for (key, number, _) in numbers(sample) {
            let unit = units.get(key).copied().unwrap_or(key);
            let text = Formatter::auto(unit).format(number);
            *keys.entry(key).or_default().entry(text).or_default() += value;
        }
    }
    let keys = keys
        .into_iter()
        .map(|(key, values)| {
            let mut values: Vec<(String, i64)> = values.into_iter().collect();
            values.sort_by(|a, b| b.1.abs().cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
            KeyValues {
                key: key.to_owned(),
                total: values.iter().map(|(_, v)| v).sum(),
                values,
            }
        })
        .collect();
    Ok((index, keys))
}

/// Writes the table by label value of `profile`.
pub fn write(options: &Options, profile: &Profile, out: &mut impl Write) -> Result<(), Error> {
    let (index, keys) = tally(profile, &options.selection)?;
    let sample_type = &profile.sample_types[index];
    let unit = &sample_type.unit;
    let total: i64 = profile.samples.iter().map(|s| s.values[index].abs()).sum();
    match options.format {
        Format::Pprof => write_pprof(&keys, unit, out),
        Format::Json => write_json(&sample_type.r#type, unit, total, &keys, out),
        Format::Table => {
            let smallest = keys
                .iter()
                .flat_map(|k| &k.values)
                .map(|(_, v)| v.abs())
                .filter(|&v| v > 0)
                .min()
                .unwrap_or(0);
            let format = Formatter::for_range(unit, smallest, total);
            let header = Header {
                profiles: &[profile],
                sample_type: &sample_type.r#type,
                unit,
                total,
                format: &format,
                filters: &options.selection.filters,
            };
            header::write(&header, out)?;
            write_table(&keys, &format, total, out)
        }
    }
}

/// heapprof's table: per key, its total and a row per value.
fn write_table(
    keys: &[KeyValues],
    format: &Formatter,
    total: i64,
    out: &mut impl Write,
) -> Result<(), Error> {
    if keys.is_empty() {
        writeln!(out, "No sample shown has labels.")?;
        return Ok(());
    }
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let count = key.values.len();
        writeln!(
            out,
            "{}: {}, {} of {} total, in {count} value{}",
            key.key,
            format.format(key.total),
            percentage(key.total, total).trim(),
            format.format(total),
            if count == 1 { "" } else { "s" }
        )?;
        writeln!(
            out,
            "{:>10} {:>5}% {:>5}% {:>5}%",
            "flat", "flat", "sum", "key"
        )?;
        let mut running = 0;
        for (value, flat) in &key.values {
            running += flat;
            writeln!(
                out,
                "{:>10} {} {} {}  {value}",
                format.format(*flat),
                percentage(*flat, total),
                percentage(running, total),
                percentage(*flat, key.total),
            )?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonTags<'a> {
    sample_type: &'a str,
    unit: &'a str,
    total: i64,
    keys: Vec<JsonKey<'a>>,
}

#[derive(Serialize)]
struct JsonKey<'a> {
    key: &'a str,
    total: i64,
    percent: f64,
    values: Vec<JsonValue<'a>>,
}

#[derive(Serialize)]
struct JsonValue<'a> {
    value: &'a str,
    flat: i64,
    flat_percent: f64,
    key_percent: f64,
}

fn write_json(
    sample_type: &str,
    unit: &str,
    total: i64,
    keys: &[KeyValues],
    out: &mut impl Write,
) -> Result<(), Error> {
    let percent = |v: i64, of: i64| {
        if of == 0 {
            0.0
        } else {
            v as f64 * 100.0 / of as f64
        }
    };
    let json = JsonTags {
        sample_type,
        unit,
        total,
        keys: keys
            .iter()
            .map(|k| JsonKey {
                key: &k.key,
                total: k.total,
                percent: percent(k.total, total),
                values: k
                    .values
                    .iter()
                    .map(|(value, flat)| JsonValue {
                        value,
                        flat: *flat,
                        flat_percent: percent(*flat, total),
                        key_percent: percent(*flat, k.total),
                    })
                    .collect(),
            })
            .collect(),
    };
    crate::json::write_pretty(&json, out)
}

/// pprof's `-tags` text: per key a `key: Total X` line and a line per
/// value, `X (pct): value`, percentages of the key's total (none when it
/// is not positive), values in `%.1f` of their best unit, right-aligned
/// in columns as Go's tabwriter aligns them, a blank line after each key.
fn write_pprof(keys: &[KeyValues], unit: &str, out: &mut impl Write) -> Result<(), Error> {
    let amount = |value: i64| {
        let (scaled, unit) = scale_to(value, unit, "minimum");
        format!("{scaled:.1}{unit}")
    };
    let width = |text: &str| text.chars().count();
    for key in keys {
        let name = format!("{}:", key.key);
        let rows: Vec<(String, &str)> = key
            .values
            .iter()
            .map(|(value, flat)| {
                let figure = if key.total > 0 {
                    format!("{} ({}):", amount(*flat), percentage(*flat, key.total))
                } else {
                    format!("{}:", amount(*flat))
                };
                (figure, value.as_str())
            })
            .collect();
        // Each column as wide as its widest cell plus one of padding (in
        // characters, as Rust pads and Go's tabwriter counts).
        let first = width(&name).max(1) + 1;
        let second = rows.iter().map(|(f, _)| width(f)).max().unwrap_or(0) + 1;
        writeln!(out, "{name:>first$} Total {}", amount(key.total),)?;
        for (figure, value) in &rows {
            writeln!(out, "{:>first$}{figure:>second$} {value}", " ",)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::TagFilter;
    use crate::testing::{number, profile, text};

    /// Three samples of a service: /users 3 MiB (tenant a, 1 KiB objects),
    /// /orders 1 MiB (tenant b), and 512 KiB without labels.
    fn service() -> Profile {
        let mut profile = profile(
            &["inuse_space"],
            &[
                ("main;serve;users", &[3 << 20]),
                ("main;serve;orders", &[1 << 20]),
                ("main;init", &[512 << 10]),
            ],
        );
        profile.samples[0].labels = vec![
            text("endpoint", "/users"),
            text("tenant", "a"),
            number("bytes", 1024, ""),
        ];
        profile.samples[1].labels = vec![
            text("endpoint", "/orders"),
            text("tenant", "b"),
            number("bytes", 2048, ""),
        ];
        profile
    }

    fn shown(options: &Options, profile: &Profile) -> String {
        let mut out = Vec::new();
        write(options, profile, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn pprof_text_is_gos_tabwriter_layout() {
        let options = Options {
            format: Format::Pprof,
            ..Options::default()
        };
        assert_eq!(
            shown(&options, &service()),
            " bytes: Total 4.0MB
        3.0MB (75.00%): 1kB
        1.0MB (25.00%): 2kB

 endpoint: Total 4.0MB
           3.0MB (75.00%): /users
           1.0MB (25.00%): /orders

 tenant: Total 4.0MB
         3.0MB (75.00%): a
         1.0MB (25.00%): b

"
        );
    }

    #[test]
    fn the_table_has_tops_units_and_shares_of_the_whole_and_the_key() {
        let mut selection = Selection::default();
        selection.filters.tag_ignore = Some(TagFilter::parse("tenant=b").unwrap());
        let options = Options {
            selection,
            ..Options::default()
        };
        assert_eq!(
            shown(&options, &service()),
            "Type: inuse_space
Active filters:
   tagignore=tenant=b
bytes: 3MB, 66.67% of 4.50MB total, in 1 value
      flat  flat%   sum%   key%
       3MB 66.67% 66.67%   100%  1kB

endpoint: 3MB, 66.67% of 4.50MB total, in 1 value
      flat  flat%   sum%   key%
       3MB 66.67% 66.67%   100%  /users

tenant: 3MB, 66.67% of 4.50MB total, in 1 value
      flat  flat%   sum%   key%
       3MB 66.67% 66.67%   100%  a
"
        );
    }
}
