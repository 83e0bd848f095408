//! The comments heapprof writes into its profiles and its reports read
//! back: one spelling of each, shared by the writer (the runtime) and the
//! readers (the timeline, the HTML report).

use crate::Profile;

/// How the memory-classes comment begins; `key=value` pairs in bytes
/// follow, separated by spaces (`rss_bytes=... live_bytes=...`, as the
/// README documents), and a non-numeric `allocator=...`.
pub const MEMORY_COMMENT: &str = "heapprof: memory ";

const PEAK_PREFIX: &str = "heapprof: in-use profile at the peak of live heap: ";
const PEAK_SUFFIX: &str = " bytes";

/// The comment of a peak profile: the in-use profile at the high-water mark
/// of `live_bytes` live bytes.
///
/// ```
/// let mut profile = heapprof_pprof::Profile::default();
/// profile.comments.push(heapprof_pprof::peak_comment(4096));
/// assert_eq!(heapprof_pprof::peak_bytes(&profile), Some(4096));
/// ```
pub fn peak_comment(live_bytes: u64) -> String {
    format!("{PEAK_PREFIX}{live_bytes}{PEAK_SUFFIX}")
}

/// The peak's live bytes, if `profile` is heapprof's peak profile (by the
/// comment [`peak_comment`] writes).
pub fn peak_bytes(profile: &Profile) -> Option<u64> {
    profile.comments.iter().find_map(|c| {
        c.trim()
            .strip_prefix(PEAK_PREFIX)?
            .strip_suffix(PEAK_SUFFIX)?
            .parse()
            .ok()
    })
}

/// The numeric pairs of the [`MEMORY_COMMENT`], in order; empty without
/// one.
pub fn memory_classes(profile: &Profile) -> Vec<(String, u64)> {
    let Some(pairs) = profile
        .comments
        .iter()
        .find_map(|c| c.trim().strip_prefix(MEMORY_COMMENT))
    else {
        return Vec::new();
    };
    pairs
        .split_whitespace()
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}
