//! [`Profile`] -> profile.proto bytes. Ids are indices + 1.

use std::collections::HashMap;
use std::io::Write;

use flate2::{write::GzEncoder, Compression};
use prost::Message;

use crate::{proto, LabelValue, Profile, ValueType};

#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut strings = Strings::default();
        strings.get("");
        strings
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }

    fn value_type(&mut self, vt: &ValueType) -> proto::ValueType {
        proto::ValueType {
            r#type: self.get(&vt.r#type),
            unit: self.get(&vt.unit),
        }
    }
}

impl Profile {
    /// Encodes the profile as raw (uncompressed) profile.proto bytes.
    pub fn encode_raw(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Encodes the profile as gzipped profile.proto bytes, the form
    /// `go tool pprof` and `net/http/pprof` use.
    pub fn encode(&self) -> Vec<u8> {
        let raw = self.encode_raw();
        let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 4 + 64), Compression::fast());
        // Writing into a Vec cannot fail.
        gz.write_all(&raw).expect("in-memory write");
        gz.finish().expect("in-memory write")
    }

    fn to_proto(&self) -> proto::Profile {
        let mut s = Strings::new();
        let id = |index: usize| index as u64 + 1;
        let sample_type = self
            .sample_types
            .iter()
            .map(|vt| s.value_type(vt))
            .collect();
        let sample = self
            .samples
            .iter()
            .map(|sample| proto::Sample {
                location_id: sample.locations.iter().map(|&l| id(l)).collect(),
                value: sample.values.clone(),
                label: sample
                    .labels
                    .iter()
                    .map(|label| {
                        let key = s.get(&label.key);
                        match &label.value {
                            LabelValue::Str(v) => proto::Label {
                                key,
                                str: s.get(v),
                                ..Default::default()
                            },
                            LabelValue::Num { value, unit } => proto::Label {
                                key,
                                num: *value,
                                num_unit: if unit.is_empty() { 0 } else { s.get(unit) },
                                ..Default::default()
                            },
                        }
                    })
                    .collect(),
            })
            .collect();
        let mapping = self
            .mappings
            .iter()
            .enumerate()
            .map(|(i, m)| proto::Mapping {
                id: id(i),
                memory_start: m.memory_start,
                memory_limit: m.memory_limit,
                file_offset: m.file_offset,
                filename: s.get(&m.filename),
                build_id: s.get(&m.build_id),
                has_functions: m.has_functions,
                has_filenames: m.has_filenames,
                has_line_numbers: m.has_line_numbers,
                has_inline_frames: m.has_inline_frames,
            })
            .collect();
        let location = self
            .locations
            .iter()
            .enumerate()
            .map(|(i, l)| proto::Location {
                id: id(i),
                mapping_id: l.mapping.map_or(0, id),
                address: l.address,
                line: l
                    .lines
                    .iter()
                    .map(|line| proto::Line {
                        function_id: id(line.function),
                        line: line.line,
                        column: 0,
                    })
                    .collect(),
                is_folded: l.is_folded,
            })
            .collect();
        let function = self
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| proto::Function {
                id: id(i),
                name: s.get(&f.name),
                system_name: s.get(&f.system_name),
                filename: s.get(&f.filename),
                start_line: f.start_line,
            })
            .collect();
        let period_type = self.period_type.as_ref().map(|vt| s.value_type(vt));
        let comment = self.comments.iter().map(|c| s.get(c)).collect();
        let drop_frames = s.get(&self.drop_frames);
        let keep_frames = s.get(&self.keep_frames);
        let default_sample_type = s.get(&self.default_sample_type);
        proto::Profile {
            sample_type,
            sample,
            mapping,
            location,
            function,
            string_table: s.table.into_iter().map(String::into_bytes).collect(),
            drop_frames,
            keep_frames,
            time_nanos: self.time_nanos,
            duration_nanos: self.duration_nanos,
            period_type,
            period: self.period,
            comment,
            default_sample_type,
            doc_url: 0,
        }
    }
}
