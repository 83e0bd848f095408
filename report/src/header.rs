//! The lines above a table, as `go tool pprof` writes them (its
//! `ProfileLabels` and active-filter legend): the main binary, the
//! profile's comments, the sample type, when the profile was taken and over
//! how long, and the filters in force.
//!
//! pprof merges the profiles it reads (one, or the new one and the base of
//! a diff) before it writes these, so they follow its merge: the first
//! mapping of the first profile that has one, the comments of all without
//! repeats, the earliest time, the durations added up.

use std::io::Write;

use heapprof_pprof::Profile;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::stacks::{base_name, Filters};
use crate::units::{percentage, Formatter};
use crate::Error;

/// What the header describes beyond the profiles themselves.
pub(crate) struct Header<'a> {
    /// The profiles shown, in pprof's merge order (a diff's new one first).
    pub profiles: &'a [&'a Profile],
    /// The sample type shown.
    pub sample_type: &'a str,
    /// Its unit.
    pub unit: &'a str,
    /// The table's total, and how its values are printed.
    pub total: i64,
    pub format: &'a Formatter,
    /// The filters in force.
    pub filters: &'a Filters,
}

/// Writes `header`'s lines.
pub(crate) fn write(header: &Header, out: &mut dyn Write) -> Result<(), Error> {
    let profiles = header.profiles;
    if let Some(main) = profiles.iter().find_map(|p| p.mappings.first()) {
        if !main.filename.is_empty() {
            writeln!(out, "File: {}", base_name(&main.filename))?;
        }
        if !main.build_id.is_empty() {
            writeln!(out, "Build ID: {}", main.build_id)?;
        }
    }
    let mut comments: Vec<&str> = Vec::new();
    for comment in profiles.iter().flat_map(|p| &p.comments) {
        if !comments.contains(&comment.as_str()) {
            comments.push(comment);
        }
    }
    for comment in comments.iter().filter(|c| !c.starts_with('#')) {
        writeln!(out, "{comment}")?;
    }
    if !header.sample_type.is_empty() {
        writeln!(out, "Type: {}", header.sample_type)?;
    }
    // pprof's rule, quirk included: a zero time after a non-zero one wins.
    let time = profiles.iter().fold(0, |time, p| {
        if time == 0 || p.time_nanos < time {
            p.time_nanos
        } else {
            time
        }
    });
    if time != 0 {
        writeln!(out, "Time: {}", local_time(time))?;
    }
    let duration: i64 = profiles.iter().map(|p| p.duration_nanos).sum();
    if duration != 0 {
        let ratio = match Formatter::nanoseconds(header.total, header.unit) {
            Some(nanos) if nanos != 0 => format!("({})", percentage(nanos, duration)),
            _ => String::new(),
        };
        writeln!(
            out,
            "Duration: {}, Total samples = {} {ratio}",
            Formatter::auto("nanoseconds").format(duration),
            header.format.format(header.total),
        )?;
    }
    let filters = header.filters;
    let active: Vec<String> = [
        ("focus", &filters.focus),
        ("ignore", &filters.ignore),
        ("hide", &filters.hide),
    ]
    .into_iter()
    .filter_map(|(name, re)| re.as_ref().map(|re| format!("{name}={}", re.as_str())))
    .chain(
        [
            ("tagfocus", &filters.tag_focus),
            ("tagignore", &filters.tag_ignore),
        ]
        .into_iter()
        .filter_map(|(name, f)| f.as_ref().map(|f| format!("{name}={}", f.as_str()))),
    )
    .collect();
    if !active.is_empty() {
        writeln!(out, "Active filters:")?;
        for filter in active {
            writeln!(out, "   {}", shortened(&filter))?;
        }
    }
    Ok(())
}

/// Unix nanoseconds in this machine's time zone (the `TZ` variable, or
/// /etc/localtime), as Go's layout "Jan 2, 2006 at 3:04pm (MST)" prints
/// them.
fn local_time(nanos: i64) -> String {
    time_in(nanos, TimeZone::system())
}

/// Unix nanoseconds in `zone`, in Go's layout (see [`local_time`]).
fn time_in(nanos: i64, zone: TimeZone) -> String {
    let Ok(time) = Timestamp::from_nanosecond(i128::from(nanos)) else {
        return nanos.to_string();
    };
    time.to_zoned_datetime(zone)
        .strftime("%b %-d, %Y at %-I:%M%P (%Z)")
        .to_string()
}

/// pprof's legend cuts a filter after 80 bytes, adding "…".
fn shortened(filter: &str) -> String {
    if filter.len() <= 80 {
        return filter.to_owned();
    }
    let mut end = 80;
    while !filter.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &filter[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_gos_layout_in_the_zone_asked_for() {
        let nanos: i64 = 1_626_441_000_123_456_789; // 2021-07-16 13:10:00 UTC
        let zoned = |tz: &str| time_in(nanos, TimeZone::get(tz).unwrap());
        assert_eq!(zoned("UTC"), "Jul 16, 2021 at 1:10pm (UTC)");
        assert_eq!(zoned("America/New_York"), "Jul 16, 2021 at 9:10am (EDT)");
    }

    #[test]
    fn long_filters_are_cut_at_80_bytes_on_a_character() {
        assert_eq!(shortened("focus=main"), "focus=main");
        let long = format!("focus={}", "é".repeat(50));
        let cut = shortened(&long);
        assert!(
            cut.ends_with('…') && cut.len() <= 80 + '…'.len_utf8(),
            "{cut}"
        );
    }
}
