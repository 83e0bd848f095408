//! A summary of what a profile holds: sample types with their totals,
//! period, time, counts, main binary and comments.

use std::io::Write;

use heapprof_pprof::Profile;

use crate::units::Formatter;
use crate::Error;

/// Options of a summary.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// What to call the profile on the first line (`File: NAME`); `None`
    /// leaves the line out.
    pub name: Option<String>,
}

/// Writes the summary of `profile`.
pub fn write(options: &Options, profile: &Profile, out: &mut impl Write) -> Result<(), Error> {
    if let Some(name) = &options.name {
        writeln!(out, "File: {name}")?;
    }
    let default = profile.default_sample_index();
    writeln!(out, "Sample types:")?;
    for (i, t) in profile.sample_types.iter().enumerate() {
        let total = profile.total(i);
        let shown = Formatter::for_range(&t.unit, total, total).format(total);
        let marker = if i == default { "  (default)" } else { "" };
        writeln!(
            out,
            "  {i}: {}/{}  total {shown} ({total}){marker}",
            t.r#type, t.unit
        )?;
    }
    match &profile.period_type {
        Some(p) => writeln!(out, "Period: {} {}/{}", profile.period, p.r#type, p.unit)?,
        None => writeln!(out, "Period: {}", profile.period)?,
    }
    if profile.time_nanos != 0 {
        writeln!(
            out,
            "Time: {} (Unix ns {})",
            format_time(profile.time_nanos),
            profile.time_nanos
        )?;
    }
    if profile.duration_nanos != 0 {
        writeln!(out, "Duration: {:.3}s", profile.duration_nanos as f64 / 1e9)?;
    }
    writeln!(
        out,
        "Counts: {} samples, {} locations, {} functions, {} mappings",
        profile.samples.len(),
        profile.locations.len(),
        profile.functions.len(),
        profile.mappings.len()
    )?;
    if let Some(main) = profile.mappings.first() {
        writeln!(
            out,
            "Main binary: {} (build id {})",
            main.filename,
            if main.build_id.is_empty() {
                "none"
            } else {
                &main.build_id
            }
        )?;
    }
    for comment in &profile.comments {
        writeln!(out, "Comment: {comment}")?;
    }
    Ok(())
}

/// Unix nanoseconds as `YYYY-MM-DD HH:MM:SS UTC` (civil-from-days, no deps).
fn format_time(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use heapprof_pprof::{Mapping, ValueType};

    use crate::testing::profile;

    #[test]
    fn summarises_types_totals_time_and_counts() {
        let mut profile = profile(
            &["alloc_space", "inuse_space"],
            &[("main;a", &[1024, 512]), ("main;b", &[512, 0])],
        );
        profile.period_type = Some(ValueType::new("space", "bytes"));
        profile.period = 524_288;
        profile.time_nanos = 1_795_384_800 * 1_000_000_000;
        profile.duration_nanos = 1_500_000_000;
        profile.mappings.push(Mapping {
            filename: "/bin/app".into(),
            ..Mapping::default()
        });
        profile.comments.push("a note".into());
        let options = super::Options {
            name: Some("heap.pb.gz".into()),
        };
        let mut out = Vec::new();
        super::write(&options, &profile, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "File: heap.pb.gz
Sample types:
  0: alloc_space/bytes  total 1.50kB (1536)
  1: inuse_space/bytes  total 512B (512)  (default)
Period: 524288 space/bytes
Time: 2026-11-22 22:00:00 UTC (Unix ns 1795384800000000000)
Duration: 1.500s
Counts: 2 samples, 3 locations, 3 functions, 1 mappings
Main binary: /bin/app (build id none)
Comment: a note
"
        );
    }

    #[test]
    fn formats_civil_time() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            super::format_time(1_795_384_800 * 1_000_000_000),
            "2026-11-22 22:00:00 UTC"
        );
    }
}
