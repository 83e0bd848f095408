//! profile.proto bytes -> [`Profile`], checking every rule consumers rely
//! on, so that analysis code can index without checking again.

use std::collections::HashMap;
use std::io::Read;

use flate2::read::MultiGzDecoder;
use prost::Message;

use crate::{
    proto, Error, Function, Label, LabelValue, Line, Location, Mapping, Profile, Sample, ValueType,
};

/// Largest decompressed profile accepted (1 GiB): a bound on the memory a
/// hostile file (a gzip bomb) can make the reader use. The decoded model
/// takes up to about ten times its raw size; real profiles are far smaller
/// (300,000 samples are 23 MB raw).
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Largest sum of |value| accepted per sample type: any report's sums, and
/// the difference of two profiles, then fit in an `i64`.
pub const MAX_VALUE_SUM: u64 = 1 << 62;

impl Profile {
    /// Reads a pprof profile, gzipped or raw.
    ///
    /// ```
    /// use heapprof_pprof::{Profile, ValueType};
    /// let mut p = Profile::default();
    /// p.sample_types.push(ValueType::new("alloc_space", "bytes"));
    /// let back = Profile::decode(&p.encode()).unwrap();
    /// assert_eq!(back.sample_types, p.sample_types);
    /// assert!(Profile::decode(b"").is_err());
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Profile, Error> {
        decode_within(bytes, MAX_DECOMPRESSED)
    }
}

/// [`Profile::decode`] with `limit` on the decompressed size.
fn decode_within(bytes: &[u8], limit: u64) -> Result<Profile, Error> {
    if bytes.is_empty() {
        return Err(Error::Empty);
    }
    let decompressed;
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        // Profiles compress about fourfold: one allocation instead of ~20
        // doublings for a large one.
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit as usize));
        MultiGzDecoder::new(bytes)
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(Error::Decompress)?;
        if out.len() as u64 > limit {
            return Err(Error::Malformed(format!(
                "decompressed size exceeds {limit} bytes"
            )));
        }
        if out.is_empty() {
            return Err(Error::Empty);
        }
        decompressed = out;
        &decompressed[..]
    } else {
        bytes
    };
    let message = proto::Profile::decode(raw).map_err(|e| match legacy_format(raw) {
        Some(format) => Error::Legacy(format),
        None => Error::NotAProfile(e.to_string()),
    })?;
    from_proto(message)
}

/// The legacy (pre-protobuf) pprof format `raw` is in, if it is one: the
/// binary CPU profiles of gperftools and old Go (64-bit words 0, 3, 0) and
/// of Java (32-bit words 0, 3, 1), and the text profiles of heaps,
/// contention, threads and goroutines.
fn legacy_format(raw: &[u8]) -> Option<&'static str> {
    let word = |i: usize, size: usize| {
        let bytes = raw.get(i * size..(i + 1) * size)?;
        Some(
            bytes
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b)),
        )
    };
    let words = |size: usize| [word(0, size), word(1, size), word(2, size)];
    if words(8) == [Some(0), Some(3), Some(0)] {
        return Some("CPU profile (gperftools or Go before 1.9)");
    }
    if words(4) == [Some(0), Some(3), Some(1)] {
        return Some("Java CPU profile");
    }
    let text = String::from_utf8_lossy(&raw[..raw.len().min(64)]);
    let text = text.trim_start();
    [
        ("heap profile:", "heap profile"),
        ("--- heapz", "heap profile"),
        ("--- contention", "contention profile"),
        ("--- mutex", "contention profile"),
        ("--- threadz", "thread profile"),
        ("threadcreate profile:", "thread profile"),
        ("goroutine profile:", "goroutine profile"),
    ]
    .into_iter()
    .find(|(start, _)| text.starts_with(start))
    .map(|(_, format)| format)
}

fn malformed(message: String) -> Error {
    Error::Malformed(message)
}

struct Strings(Vec<String>);

impl Strings {
    fn get(&self, index: i64, what: &str) -> Result<String, Error> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.0.get(i))
            .cloned()
            .ok_or_else(|| {
                malformed(format!(
                    "{what} names string {index}, but the string table has {} entries",
                    self.0.len()
                ))
            })
    }

    fn value_type(&self, vt: &proto::ValueType, what: &str) -> Result<ValueType, Error> {
        Ok(ValueType {
            r#type: self.get(vt.r#type, what)?,
            unit: self.get(vt.unit, what)?,
        })
    }
}

/// Id -> index of mappings, locations or functions. Writers number ids
/// 1..=n, so a table indexed by id serves almost every profile; sparse ids
/// fall back to a map.
enum IdIndex {
    Dense(Vec<usize>),
    Sparse(HashMap<u64, usize>),
}

const NO_INDEX: usize = usize::MAX;

/// Indexes ids, rejecting zero and duplicate ids.
fn index_ids(ids: &[u64], what: &str) -> Result<IdIndex, Error> {
    let duplicate = |id| malformed(format!("{what} id {id} is used twice"));
    if ids.contains(&0) {
        return Err(malformed(format!("{what} has id 0")));
    }
    let max = ids.iter().copied().max().unwrap_or(0);
    if max <= 2 * ids.len() as u64 + 1024 {
        let mut table = vec![NO_INDEX; max as usize + 1];
        for (i, &id) in ids.iter().enumerate() {
            if std::mem::replace(&mut table[id as usize], i) != NO_INDEX {
                return Err(duplicate(id));
            }
        }
        return Ok(IdIndex::Dense(table));
    }
    let mut map = HashMap::with_capacity(ids.len());
    for (i, &id) in ids.iter().enumerate() {
        if map.insert(id, i).is_some() {
            return Err(duplicate(id));
        }
    }
    Ok(IdIndex::Sparse(map))
}

fn lookup(index: &IdIndex, id: u64, what: &str) -> Result<usize, Error> {
    let found = match index {
        IdIndex::Dense(table) => table.get(id as usize).copied().filter(|&i| i != NO_INDEX),
        IdIndex::Sparse(map) => map.get(&id).copied(),
    };
    found.ok_or_else(|| malformed(format!("{what} {id} does not exist")))
}

fn from_proto(mut p: proto::Profile) -> Result<Profile, Error> {
    if p.string_table.first().is_some_and(|s| !s.is_empty()) {
        return Err(malformed("string_table[0] must be empty".into()));
    }
    // Invalid UTF-8 is shown with U+FFFD in place of the bad bytes.
    let strings = Strings(if p.string_table.is_empty() {
        vec![String::new()]
    } else {
        p.string_table
            .into_iter()
            .map(|s| {
                String::from_utf8(s)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
            })
            .collect()
    });

    let sample_types = p
        .sample_type
        .iter()
        .map(|vt| strings.value_type(vt, "sample type"))
        .collect::<Result<Vec<_>, _>>()?;

    let ids = |ids: Vec<u64>, what| index_ids(&ids, what);
    let mapping_index = ids(p.mapping.iter().map(|m| m.id).collect(), "mapping")?;
    let function_index = ids(p.function.iter().map(|f| f.id).collect(), "function")?;
    let location_index = ids(p.location.iter().map(|l| l.id).collect(), "location")?;

    let mappings = p
        .mapping
        .iter()
        .map(|m| {
            Ok(Mapping {
                memory_start: m.memory_start,
                memory_limit: m.memory_limit,
                file_offset: m.file_offset,
                filename: strings.get(m.filename, "mapping filename")?,
                build_id: strings.get(m.build_id, "mapping build id")?,
                has_functions: m.has_functions,
                has_filenames: m.has_filenames,
                has_line_numbers: m.has_line_numbers,
                has_inline_frames: m.has_inline_frames,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;

    let functions = p
        .function
        .iter()
        .map(|f| {
            Ok(Function {
                name: strings.get(f.name, "function name")?,
                system_name: strings.get(f.system_name, "function system name")?,
                filename: strings.get(f.filename, "function filename")?,
                start_line: f.start_line,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;

    let locations = p
        .location
        .iter()
        .map(|l| {
            let mapping = match l.mapping_id {
                0 => None,
                id => Some(lookup(&mapping_index, id, "location refers to mapping")?),
            };
            let lines = l
                .line
                .iter()
                .map(|line| {
                    Ok(Line {
                        function: lookup(
                            &function_index,
                            line.function_id,
                            "line refers to function",
                        )?,
                        line: line.line,
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            Ok(Location {
                mapping,
                address: l.address,
                lines,
                is_folded: l.is_folded,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;

    // Consumed rather than copied: a large profile is mostly its samples.
    let samples = std::mem::take(&mut p.sample)
        .into_iter()
        .map(|s| {
            if s.value.len() != sample_types.len() {
                return Err(malformed(format!(
                    "a sample has {} values but the profile has {} sample types",
                    s.value.len(),
                    sample_types.len()
                )));
            }
            let locations = s
                .location_id
                .into_iter()
                .map(|id| lookup(&location_index, id, "sample refers to location"))
                .collect::<Result<Vec<_>, _>>()?;
            let labels = s
                .label
                .iter()
                .map(|label| {
                    let key = strings.get(label.key, "label key")?;
                    let value = if label.str != 0 {
                        LabelValue::Str(strings.get(label.str, "label value")?)
                    } else {
                        LabelValue::Num {
                            value: label.num,
                            unit: strings.get(label.num_unit, "label unit")?,
                        }
                    };
                    Ok(Label { key, value })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            Ok(Sample {
                locations,
                values: s.value,
                labels,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;

    // Reports add values up; bound the sums so that no report overflows,
    // even one that subtracts a profile from another.
    for (index, sample_type) in sample_types.iter().enumerate() {
        let sum = samples.iter().try_fold(0u64, |sum, s| {
            sum.checked_add(s.values[index].unsigned_abs())
        });
        if sum.is_none_or(|sum| sum > MAX_VALUE_SUM) {
            return Err(malformed(format!(
                "the {} values add up to more than 2^62",
                sample_type.r#type
            )));
        }
    }

    let period_type = p
        .period_type
        .as_ref()
        .map(|vt| strings.value_type(vt, "period type"))
        .transpose()?;
    let comments = p
        .comment
        .iter()
        .map(|&c| strings.get(c, "comment"))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(Profile {
        sample_types,
        samples,
        mappings,
        locations,
        functions,
        drop_frames: strings.get(p.drop_frames, "drop_frames")?,
        keep_frames: strings.get(p.keep_frames, "keep_frames")?,
        time_nanos: p.time_nanos,
        duration_nanos: p.duration_nanos,
        period_type,
        period: p.period,
        comments,
        default_sample_type: strings.get(p.default_sample_type, "default_sample_type")?,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 1 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 4096, "a megabyte of zeros gzips small");
        let err = decode_within(&bomb, 64 << 10).unwrap_err();
        assert!(err.to_string().contains("exceeds 65536 bytes"), "{err}");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let profile = crate::Profile {
            sample_types: vec![crate::ValueType::new("samples", "count")],
            ..crate::Profile::default()
        };
        let mut raw = proto::Profile::decode(&profile.encode_raw()[..]).unwrap();
        raw.string_table.push(b"bad \xff byte".to_vec());
        raw.comment.push(raw.string_table.len() as i64 - 1);
        let decoded = crate::Profile::decode(&raw.encode_to_vec()).unwrap();
        assert_eq!(decoded.comments, ["bad \u{fffd} byte"]);
    }
}
