//! Profiles written without being asked each time: every interval, at exit,
//! the peak profile (rewritten while the peak rises, and at exit) and the
//! profiles written near the memory limit (for [`crate::limit`]). File names
//! come from a pattern (`%p` pid, `%t` UTC time, `%%` a percent sign); a
//! dump never overwrites another's file: a name already taken gets `-2`,
//! `-3`... before its extension. The peak file is the one exception: it is
//! one file per process, replaced whole (temporary file and rename) each
//! time, so that a SIGKILL, which runs no exit handler, leaves the last one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::builder::{self, Kind};
use crate::core::counters::{self, own_work, OwnWork};
use crate::core::peak;
use crate::Error;

/// The pattern used when a dump is asked for without one.
pub(crate) const DEFAULT_PATTERN: &str = "heapprof-%p-%t.pb.gz";

/// What the at-exit handler writes.
struct AtExit {
    pattern: String,
    heap: bool,
    peak: bool,
}

static AT_EXIT: Mutex<Option<AtExit>> = Mutex::new(None);
static REGISTER_AT_EXIT: Once = Once::new();
/// Serializes choosing a free name and writing to it.
static WRITING: Mutex<()> = Mutex::new(());

/// How often the peak file is rewritten when no interval is given: a SIGKILL
/// loses at most this much of the peak's growth.
pub(crate) const DEFAULT_PEAK_INTERVAL: Duration = Duration::from_secs(10);

/// The peak file once chosen, and the pattern it was chosen from.
static PEAK_FILE: Mutex<Option<(String, PathBuf)>> = Mutex::new(None);
static START_PEAK_THREAD: Once = Once::new();

/// Set when the process starts exiting: interval dumps stop, so that the
/// exit dump is the last one and no dump is cut off half-written.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Checks `pattern` and starts what is asked: a thread that writes a heap
/// profile every `interval`, and/or profiles written at normal exit; with
/// the peak profile, a thread that rewrites it every `peak_interval` (by
/// default [`DEFAULT_PEAK_INTERVAL`]) when a new peak was recorded.
pub(crate) fn start(
    pattern: &str,
    interval: Option<Duration>,
    heap_at_exit: bool,
    peak_at_exit: bool,
    peak_interval: Option<Duration>,
) -> Result<(), Error> {
    check_pattern(pattern)?;
    if peak_at_exit {
        start_peak_thread(pattern, peak_interval.unwrap_or(DEFAULT_PEAK_INTERVAL))?;
    }
    if let Some(interval) = interval {
        counters::spawn_own_thread("heapprof-dump", || {
            let pattern = pattern.to_owned();
            move || {
                while !EXITING.load(Ordering::Acquire) {
                    std::thread::sleep(interval);
                    report(write(&pattern, None, encoded(Kind::Heap), true));
                }
            }
        })
        .map_err(|e| Error::Config(format!("dump: cannot start its thread: {e}")))?;
    }
    // The plan is freed by the exit handler, or replaced here: inside
    // heapprof's work either way.
    own_work(|| {
        let mut plan = AT_EXIT.lock().unwrap_or_else(|p| p.into_inner());
        let (heap, peak) = plan.as_ref().map_or((false, false), |p| (p.heap, p.peak));
        *plan = Some(AtExit {
            pattern: pattern.to_owned(),
            heap: heap || heap_at_exit,
            peak: peak || peak_at_exit,
        });
    });
    // Registered for interval dumps too: exit waits for one being written.
    REGISTER_AT_EXIT.call_once(|| crate::sys::at_exit(at_exit));
    Ok(())
}

extern "C" fn at_exit() {
    write_exit_dumps();
}

/// Writes what the exit handler writes (the heap and/or peak profile, as
/// configured), once per process: whichever of exit and a signal (see
/// [`crate::signal`]) comes first writes them, the other nothing. Interval
/// dumps stop, as at exit.
pub(crate) fn write_exit_dumps() {
    let _work = OwnWork::enter();
    EXITING.store(true, Ordering::Release);
    // Wait for an interval dump being written; later ones see EXITING.
    drop(WRITING.lock().unwrap_or_else(|p| p.into_inner()));
    let plan = AT_EXIT.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(plan) = plan else { return };
    if plan.heap {
        report(write(&plan.pattern, None, encoded(Kind::Heap), false));
    }
    if plan.peak {
        report(write_peak(&plan.pattern, false));
    }
}

/// Starts the thread that rewrites the peak file (once per process: the
/// first pattern and interval stay).
fn start_peak_thread(pattern: &str, every: Duration) -> Result<(), Error> {
    let mut started = Ok(());
    START_PEAK_THREAD.call_once(|| {
        started = counters::spawn_own_thread("heapprof-peak", || {
            let pattern = pattern.to_owned();
            move || {
                // Live bytes at the peak last written: the recorded peak
                // only rises, so a change is a new peak profile.
                let mut written_at = 0;
                while !EXITING.load(Ordering::Acquire) {
                    std::thread::sleep(every);
                    let recorded_at = peak::recorded_at();
                    if recorded_at != written_at {
                        written_at = recorded_at;
                        report(write_peak(&pattern, true));
                    }
                }
            }
        })
        .map_err(|e| Error::Config(format!("dump: cannot start the peak thread: {e}")));
    });
    started
}

/// Writes the profiles of memory near its limit, at `percent` of it: the
/// heap profile, and the peak profile if it is recorded, tagged
/// `near-limit-<percent>` (dropped once the process has begun exiting).
pub(crate) fn write_near_limit(pattern: &str, percent: u32) {
    let tag = format!("near-limit-{percent}");
    report(write(pattern, Some(&tag), encoded(Kind::Heap), true));
    if peak::tracking() {
        let tag = format!("{tag}.peak");
        report(write(pattern, Some(&tag), encoded(Kind::Peak), true));
    }
}

/// Writes the peak profile to this process's peak file, chosen at the first
/// write as a free name with `.peak` before the extension and replaced
/// whole afterwards.
fn write_peak(pattern: &str, interval_dump: bool) -> Result<Option<PathBuf>, Error> {
    let choose = || {
        let mut file = PEAK_FILE.lock().unwrap_or_else(|p| p.into_inner());
        match &*file {
            Some((chosen_from, path)) if chosen_from == pattern => path.clone(),
            _ => {
                let path = free_name(&expand(pattern, SystemTime::now()), Some("peak"));
                *file = Some((pattern.to_owned(), path.clone()));
                path
            }
        }
    };
    write_to(choose, encoded(Kind::Peak), interval_dump)
}

fn report(result: Result<Option<PathBuf>, Error>) {
    if let Err(e) = result {
        eprintln!("heapprof: warning: dump failed: {e}");
    }
}

/// Writes the profile `make` gives to a new file named from `pattern`;
/// an interval dump is dropped once the process has begun exiting (the
/// exit dump is the last).
fn write(
    pattern: &str,
    tag: Option<&str>,
    make: impl FnOnce() -> Result<Vec<u8>, Error>,
    interval_dump: bool,
) -> Result<Option<PathBuf>, Error> {
    let choose = || free_name(&expand(pattern, SystemTime::now()), tag);
    write_to(choose, make, interval_dump)
}

/// Writes the profile `make` gives to the file `choose` names, choosing
/// while no other dump is being written.
fn write_to(
    choose: impl FnOnce() -> PathBuf,
    make: impl FnOnce() -> Result<Vec<u8>, Error>,
    interval_dump: bool,
) -> Result<Option<PathBuf>, Error> {
    if interval_dump && EXITING.load(Ordering::Acquire) {
        return Ok(None);
    }
    let bytes = make()?;
    let _writing = WRITING.lock().unwrap_or_else(|p| p.into_inner());
    if interval_dump && EXITING.load(Ordering::Acquire) {
        return Ok(None);
    }
    let path = choose();
    builder::write_file(&path, &bytes)?;
    Ok(Some(path))
}

/// Makes a profile of `kind`, encoded, when called.
fn encoded(kind: Kind) -> impl FnOnce() -> Result<Vec<u8>, Error> {
    move || builder::profile(kind).encoded()
}

/// A pattern is good if its directory exists.
pub(crate) fn check_pattern(pattern: &str) -> Result<(), Error> {
    let path = expand(pattern, SystemTime::now());
    if path.file_name().is_none() || pattern.ends_with('/') {
        return Err(Error::Config(format!(
            "dump: \"{pattern}\" does not name a file"
        )));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "dump: directory {} does not exist; no profiles are dumped",
            dir.display()
        )));
    }
    Ok(())
}

/// `pattern` with `%p`, `%t` and `%%` replaced.
pub(crate) fn expand(pattern: &str, now: SystemTime) -> PathBuf {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('p') => out.push_str(&std::process::id().to_string()),
            Some('t') => out.push_str(&utc_timestamp(now)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    PathBuf::from(out)
}

/// `path` with `.tag` before its extension, and `-N` too if that is taken.
fn free_name(path: &Path, tag: Option<&str>) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let split = name
        .strip_suffix(".pb.gz")
        .map(|stem| stem.len())
        .or_else(|| name.rfind('.').filter(|&i| i > 0))
        .unwrap_or(name.len());
    let (stem, extension) = name.split_at(split);
    let stem = match tag {
        Some(tag) => format!("{stem}.{tag}"),
        None => stem.to_owned(),
    };
    let mut candidate = path.with_file_name(format!("{stem}{extension}"));
    let mut n = 2;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{stem}-{n}{extension}"));
        n += 1;
    }
    candidate
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn utc_timestamp(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let at = |secs| utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "19700101-000000");
        assert_eq!(at(951_782_400), "20000229-000000"); // a leap day
        assert_eq!(at(1_795_389_722), "20261122-232202");
    }

    #[test]
    fn patterns_expand_and_names_never_repeat() {
        let dir = std::env::temp_dir().join(format!("heapprof-dump-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = expand(&format!("{}/h-%p-%%.pb.gz", dir.display()), UNIX_EPOCH);
        let pid = std::process::id();
        assert_eq!(path, dir.join(format!("h-{pid}-%.pb.gz")));
        let first = free_name(&path, None);
        assert_eq!(first, path);
        std::fs::write(&first, b"x").unwrap();
        assert_eq!(
            free_name(&path, None),
            dir.join(format!("h-{pid}-%-2.pb.gz"))
        );
        assert_eq!(
            free_name(&path, Some("peak")),
            dir.join(format!("h-{pid}-%.peak.pb.gz"))
        );
        assert_eq!(
            free_name(&dir.join("profile"), None),
            dir.join("profile"),
            "no extension"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An interval dump that begins after exit began (its thread woke up
    /// late) is dropped, so the exit dump stays the last; exit dumps are
    /// written. (Sets the process-wide flag: no other test here dumps.)
    #[test]
    fn once_exiting_only_exit_dumps_are_written() {
        let dir = std::env::temp_dir().join(format!("heapprof-exit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pattern = format!("{}/h.pb.gz", dir.display());
        let make = || Ok(b"profile".to_vec());
        assert_eq!(
            write(&pattern, None, make, true).unwrap(),
            Some(dir.join("h.pb.gz"))
        );
        EXITING.store(true, Ordering::Release);
        assert_eq!(write(&pattern, None, make, true).unwrap(), None);
        assert_eq!(
            write(&pattern, None, make, false).unwrap(),
            Some(dir.join("h-2.pb.gz"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_refused_up_front() {
        let err = check_pattern("/no/such/dir/heap-%p.pb.gz").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dump: directory /no/such/dir does not exist; no profiles are dumped"
        );
    }
}
