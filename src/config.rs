//! One configuration, from code ([`Config`]) or from the `HEAPPROF`
//! environment variable (the `GODEBUG` of heapprof), read once when the
//! program starts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::core::peak;
use crate::{dump, trace, Error, Symbolize};

/// What heapprof does besides sampling: the sample rate, automatic dumps,
/// the peak profile and the debug endpoint.
///
/// From code, build one and [`start`](Config::start) it; without code,
/// set the same keys in the `HEAPPROF` environment variable, which is read
/// once when the program starts (a program only has to install
/// [`crate::Profiler`] as its global allocator):
///
/// ```sh
/// HEAPPROF=rate=524288,dump=heap-%p-%t.pb.gz,interval=30s,at_exit=1,peak=1,http=127.0.0.1:6060 ./server
/// ```
///
/// | key | value | meaning |
/// |---|---|---|
/// | `rate` | bytes, e.g. `524288` or `512k` | mean bytes between samples (0 off, 1 every allocation) |
/// | `dump` | a path pattern: `%p` pid, `%t` UTC time | where dumps go (default `heapprof-%p-%t.pb.gz`) |
/// | `interval` | a duration: `500ms`, `30s`, `5m`, `1h` | write a heap profile this often |
/// | `at_exit` | `1`/`0` | write a heap profile when the process exits normally |
/// | `peak` | `1`/`0` | record the in-use profile at the peak of live bytes; write it at exit (`.peak` before the extension) |
/// | `http` | `host:port` or `:port` | serve the debug endpoint (feature `http`) |
/// | `symbolize` | `inprocess`/`offline` | where addresses become names (see [`Symbolize`]) |
/// | `full_stacks` | `1`/`0` | keep the start-up frames (`_start`, `std::rt::lang_start`...) rootward of `main` and of threads' closures |
/// | `peak_interval` | a duration | rewrite the peak file this often while the peak rises (default 10s) |
/// | `limit` | bytes, e.g. `512m` | the memory limit `near_limit` watches (default: the cgroup's) |
/// | `near_limit` | a percentage, `1%` to `100%` | write the heap and peak profiles (`.near-limit-90` before the extension) when resident memory reaches this much of the limit, and at every 5% above; turns peak tracking on |
/// | `trace` | a duration: `500ms`, `10s` | a `heapprof trace:` line on stderr this often (see [`Config::trace`]) |
/// | `at_signal` | `1`/`0` | on SIGTERM or SIGINT, write what `at_exit` and `peak` write at exit, then let the signal do what it would have (see [`Config::at_signal`]) |
/// | `thread_labels` | `1`/`0` | label every sample with its thread's name (`thread`; on by default, see [`Config::thread_labels`]) |
///
/// A bad value in `HEAPPROF` gives one warning on stderr naming the key and
/// what is used instead; the other keys still apply. [`Config::from_str`]
/// is strict instead: the first bad key is an error.
///
/// ```no_run
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// fn main() -> Result<(), heapprof::Error> {
///     heapprof::Config::new()
///         .interval(std::time::Duration::from_secs(60))
///         .dump("/var/tmp/myservice-%p-%t.pb.gz")
///         .peak(true)
///         .at_exit(true)
///         .start()?;
///     // ... the program runs ...
///     Ok(())
/// }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    rate: Option<usize>,
    dump: Option<String>,
    interval: Option<Duration>,
    at_exit: bool,
    peak: bool,
    http: Option<String>,
    symbolize: Option<Symbolize>,
    full_stacks: bool,
    peak_interval: Option<Duration>,
    limit: Option<u64>,
    near_limit: Option<u32>,
    trace: Option<Duration>,
    at_signal: bool,
    thread_labels: Option<bool>,
}

impl Config {
    /// Nothing set: starting it changes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The mean bytes between samples (see [`crate::set_sample_rate`]).
    pub fn rate(mut self, bytes: usize) -> Self {
        self.rate = Some(bytes);
        self
    }

    /// The file name pattern for dumps: `%p` is the process id, `%t` the UTC
    /// time (`YYYYMMDD-HHMMSS`), `%%` a percent sign. A name already taken
    /// gets `-2`, `-3`... before its extension.
    pub fn dump(mut self, pattern: impl Into<String>) -> Self {
        self.dump = Some(pattern.into());
        self
    }

    /// Writes a heap profile every `interval`, from a background thread.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Writes a heap profile when the process exits normally (returning
    /// from `main` or calling `std::process::exit`).
    pub fn at_exit(mut self, on: bool) -> Self {
        self.at_exit = on;
        self
    }

    /// Records the in-use profile at the peak of live bytes (see
    /// [`crate::peak_profile`]) and writes it at exit.
    pub fn peak(mut self, on: bool) -> Self {
        self.peak = on;
        self
    }

    /// Serves the debug endpoint on `addr` (see `serve`, feature `http`).
    pub fn http(mut self, addr: impl Into<String>) -> Self {
        self.http = Some(addr.into());
        self
    }

    /// Where profiles are symbolized: in this process when written (the
    /// default), or offline by `heapprof symbolize` (see [`Symbolize`]).
    pub fn symbolize(mut self, mode: Symbolize) -> Self {
        self.symbolize = Some(mode);
        self
    }

    /// Keeps whole stacks: by default a stack begins just leafward of std's
    /// `__rust_begin_short_backtrace` (at `main`'s caller, or a spawned
    /// thread's closure), as Rust's own short backtraces do, without the
    /// start-up frames rootward of it (`_start`, `__libc_start_main`,
    /// `std::rt::lang_start`, `catch_unwind`, the thread's start-up), which
    /// are the same in every program. A profile written offline says so,
    /// and `heapprof symbolize` keeps them too.
    pub fn full_stacks(mut self, on: bool) -> Self {
        self.full_stacks = on;
        self
    }

    /// How often the peak file is rewritten while the peak rises (default
    /// 10 s), with [`peak`](Config::peak) on: the file is replaced whole
    /// when a new peak was recorded since the last write, so a SIGKILL (an
    /// out-of-memory kill) loses at most this interval of the peak's growth.
    pub fn peak_interval(mut self, interval: Duration) -> Self {
        self.peak_interval = Some(interval);
        self
    }

    /// The memory limit, in bytes, that [`near_limit`](Config::near_limit)
    /// watches; without it, the process's cgroup memory limit (v2
    /// `memory.max`, v1 `memory.limit_in_bytes`). Alone it does nothing.
    pub fn limit(mut self, bytes: u64) -> Self {
        self.limit = Some(bytes);
        self
    }

    /// Writes the heap profile and the peak profile when resident memory
    /// (`stats().resident_bytes`) first reaches `percent` of the limit, and
    /// again at each further 5% (`percent + 5`, ... past 100% too), at most
    /// once every 3 s, into files named from the dump pattern with
    /// `.near-limit-<percent>` (and `.near-limit-<percent>.peak`) before the
    /// extension. Turns peak tracking on. A heapprof thread reads resident
    /// memory every 100 ms (a few microseconds each time); start-up says on
    /// stderr in one line which limit it watches, or that none was found.
    pub fn near_limit(mut self, percent: u32) -> Self {
        self.near_limit = Some(percent);
        self
    }

    /// Writes one line on stderr every `interval`, heapprof's
    /// `GODEBUG=gctrace=1`: the live heap and its change, the allocation
    /// rate, RSS, the allocator's free memory and the site whose sampled
    /// in-use bytes grew most since the line before, from a background
    /// thread. The format is documented in the README ("The trace line"):
    ///
    /// ```text
    /// heapprof trace: t=12.003 live=75521662 dlive=+1048576 alloc_rate=8388608 rss=162426880 free=42564896 cost_us=840 grew=+1153434 top=myservice::cache::insert
    /// ```
    ///
    /// A zero interval makes [`start`](Self::start) fail; starting again
    /// changes the interval of the one trace thread.
    pub fn trace(mut self, interval: Duration) -> Self {
        self.trace = Some(interval);
        self
    }

    /// On the first SIGTERM or SIGINT, writes the exit dumps (what
    /// [`at_exit`](Config::at_exit) and [`peak`](Config::peak) write at
    /// exit; without either, nothing is installed), then lets the signal do
    /// what it would have done without heapprof: the handler that was
    /// installed when [`start`](Config::start) ran is put back and the
    /// signal sent again, so that handler runs (on some thread of the
    /// process), or with the default disposition the process ends by the
    /// signal. The dumps are written by a heapprof thread, never from the
    /// handler, which only writes a byte to a pipe. A handler the program
    /// installs after `start` replaces heapprof's (with `HEAPPROF`, `start`
    /// runs before `main`, so start from code after installing your own);
    /// an ignored signal is left alone. Interval dumps stop, as at exit.
    pub fn at_signal(mut self, on: bool) -> Self {
        self.at_signal = on;
        self
    }

    /// Whether every sample carries a `thread` label, its thread's name
    /// (on by default): the name the OS knows it by, as `top -H`, `perf`
    /// and `gdb` show it (Rust's own name, cut at 15 bytes on Linux;
    /// `main` for the main thread). A thread that has no name of its own,
    /// only the one it inherited from the main thread, gets no label. A
    /// scope's own `thread` key replaces it.
    pub fn thread_labels(mut self, on: bool) -> Self {
        self.thread_labels = Some(on);
        self
    }

    /// Applies the configuration: sets the rate, turns on peak tracking,
    /// starts the dump thread, the exit handler and the debug endpoint, as
    /// asked. Errors if the dump directory does not exist or the endpoint
    /// cannot listen (the first of the two); everything else asked for is
    /// applied and stays so, the endpoint included when only dumping failed.
    pub fn start(&self) -> Result<(), Error> {
        if let Some(rate) = self.rate {
            crate::core::sampler::set_rate(rate as u64);
        }
        if let Some(mode) = self.symbolize {
            crate::symbolize::set_mode(mode);
        }
        if self.peak || self.near_limit.is_some() {
            peak::set_tracking(true);
        }
        if self.full_stacks {
            crate::symbolize::set_full_stacks(true);
        }
        if let Some(on) = self.thread_labels {
            crate::core::labels::set_thread_labels(on);
        }
        // A dump that cannot start does not keep the endpoint from starting:
        // each says what it could not do, and the rest applies.
        let dumping = if self.interval.is_some() || self.at_exit || self.peak {
            let pattern = self.dump.as_deref().unwrap_or(dump::DEFAULT_PATTERN);
            dump::start(
                pattern,
                self.interval,
                self.at_exit,
                self.peak,
                self.peak_interval,
            )
        } else {
            Ok(())
        };
        let watching = match self.near_limit {
            Some(percent) => {
                let pattern = self.dump.as_deref().unwrap_or(dump::DEFAULT_PATTERN);
                crate::limit::start(self.limit, percent, pattern)
            }
            None => Ok(()),
        };
        let dumping = match dumping {
            Ok(()) if self.at_signal && (self.at_exit || self.peak) => crate::signal::start(),
            other => other,
        };
        let dumping = dumping.and(watching);
        let serving = match &self.http {
            Some(addr) => start_http(addr),
            None => Ok(()),
        };
        let tracing = self.trace.map_or(Ok(()), trace::start);
        dumping.and(serving).and(tracing)
    }

    /// Parses `HEAPPROF` syntax leniently: every problem becomes a message
    /// and the key keeps its default.
    fn parse_lenient(spec: &str) -> (Config, Vec<String>) {
        let mut config = Config::new();
        let mut problems = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((key, value)) => (key.trim(), value.trim()),
                None => (item, "1"),
            };
            if let Err(problem) = config.set(key, value) {
                problems.push(problem);
            }
        }
        (config, problems)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let bad = |expected: &str, instead: &str| {
            format!("{key}: bad value \"{value}\" (expected {expected}); {instead}")
        };
        match key {
            "rate" => {
                let rate = parse_bytes(value).ok_or_else(|| {
                    bad(
                        "a number of bytes such as 524288 or 512k",
                        &format!("keeping the rate at {}", crate::core::sampler::rate()),
                    )
                })?;
                self.rate = Some(rate);
            }
            "dump" => {
                if value.is_empty() {
                    return Err(bad(
                        "a file name pattern",
                        &format!("using {}", dump::DEFAULT_PATTERN),
                    ));
                }
                self.dump = Some(value.to_owned());
            }
            "interval" => {
                let interval = parse_duration(value).ok_or_else(|| {
                    bad(
                        "a duration above zero such as 30s, 5m or 500ms",
                        "no interval dumps",
                    )
                })?;
                self.interval = Some(interval);
            }
            "at_exit" => {
                self.at_exit =
                    parse_bool(value).ok_or_else(|| bad("1 or 0", "no profile at exit"))?;
            }
            "peak" => {
                self.peak = parse_bool(value).ok_or_else(|| bad("1 or 0", "no peak profile"))?;
            }
            "full_stacks" => {
                self.full_stacks = parse_bool(value).ok_or_else(|| {
                    bad("1 or 0", "stacks begin at the program's entry")
                })?;
            }
            "trace" => {
                let interval = parse_duration(value).ok_or_else(|| {
                    bad(
                        "a duration above zero such as 10s, 1m or 500ms",
                        "no trace lines",
                    )
                })?;
                self.trace = Some(interval);
            }
            "http" => {
                if !value.contains(':') {
                    return Err(bad(
                        "host:port or :port such as 127.0.0.1:6060",
                        "no debug endpoint",
                    ));
                }
                self.http = Some(value.to_owned());
            }
            "symbolize" => {
                self.symbolize = Some(match value {
                    "inprocess" | "in-process" => Symbolize::InProcess,
                    "offline" => Symbolize::Offline,
                    _ => {
                        return Err(bad(
                            "inprocess or offline",
                            "symbolizing in process",
                        ))
                    }
                });
            }
            "peak_interval" => {
                let interval = parse_duration(value).ok_or_else(|| {
                    bad(
                        "a duration above zero such as 10s or 1m",
                        "rewriting the peak file every 10s",
                    )
                })?;
                self.peak_interval = Some(interval);
            }
            "limit" => {
                let limit = parse_bytes(value).filter(|&b| b > 0).ok_or_else(|| {
                    bad(
                        "a number of bytes above zero such as 512m or 2g",
                        "using the cgroup's memory limit, if any",
                    )
                })?;
                self.limit = Some(limit as u64);
            }
            "near_limit" => {
                let percent = value
                    .strip_suffix('%')
                    .unwrap_or(value)
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (1..=100).contains(p))
                    .ok_or_else(|| {
                        bad("a percentage from 1% to 100% such as 90%", "no near-limit profiles")
                    })?;
                self.near_limit = Some(percent);
            }
            "at_signal" => {
                self.at_signal = parse_bool(value)
                    .ok_or_else(|| bad("1 or 0", "no profiles on SIGTERM or SIGINT"))?;
            }
            "thread_labels" => {
                self.thread_labels = Some(
                    parse_bool(value)
                        .ok_or_else(|| bad("1 or 0", "labelling samples with their thread"))?,
                );
            }
            _ => {
                return Err(format!(
                    "unknown key \"{key}\" ignored (known keys: rate, dump, interval, at_exit, peak, http, symbolize, full_stacks, peak_interval, limit, near_limit, trace, at_signal, thread_labels)"
                ))
            }
        }
        Ok(())
    }
}

impl FromStr for Config {
    type Err = Error;

    /// Parses `HEAPPROF` syntax (`key=value,key=value`) strictly.
    ///
    /// ```
    /// let config: heapprof::Config = "rate=64k,peak=1".parse().unwrap();
    /// assert_eq!(config, heapprof::Config::new().rate(65536).peak(true));
    /// let err = "interval=soon".parse::<heapprof::Config>().unwrap_err();
    /// assert!(err.to_string().starts_with("interval: bad value \"soon\""));
    /// ```
    fn from_str(spec: &str) -> Result<Self, Error> {
        let (config, problems) = Config::parse_lenient(spec);
        match problems.into_iter().next() {
            Some(problem) => Err(Error::Config(problem)),
            None => Ok(config),
        }
    }
}

impl fmt::Display for Config {
    /// The configuration in `HEAPPROF` syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items = Vec::new();
        if let Some(rate) = self.rate {
            items.push(format!("rate={rate}"));
        }
        if let Some(dump) = &self.dump {
            items.push(format!("dump={dump}"));
        }
        if let Some(interval) = self.interval {
            items.push(format!("interval={}ms", interval.as_millis()));
        }
        if self.at_exit {
            items.push("at_exit=1".to_owned());
        }
        if self.peak {
            items.push("peak=1".to_owned());
        }
        if let Some(http) = &self.http {
            items.push(format!("http={http}"));
        }
        if let Some(mode) = self.symbolize {
            items.push(
                match mode {
                    Symbolize::InProcess => "symbolize=inprocess",
                    Symbolize::Offline => "symbolize=offline",
                }
                .to_owned(),
            );
        }
        if self.full_stacks {
            items.push("full_stacks=1".to_owned());
        }
        if let Some(interval) = self.peak_interval {
            items.push(format!("peak_interval={}ms", interval.as_millis()));
        }
        if let Some(limit) = self.limit {
            items.push(format!("limit={limit}"));
        }
        if let Some(percent) = self.near_limit {
            items.push(format!("near_limit={percent}%"));
        }
        if let Some(trace) = self.trace {
            items.push(format!("trace={}ms", trace.as_millis()));
        }
        if self.at_signal {
            items.push("at_signal=1".to_owned());
        }
        if let Some(on) = self.thread_labels {
            items.push(format!("thread_labels={}", u8::from(on)));
        }
        f.write_str(&items.join(","))
    }
}

#[cfg(feature = "http")]
fn start_http(addr: &str) -> Result<(), Error> {
    crate::http::serve(addr).map(drop)
}

#[cfg(not(feature = "http"))]
fn start_http(_addr: &str) -> Result<(), Error> {
    Err(Error::Config(
        "http: this program was built without heapprof's `http` feature".to_owned(),
    ))
}

/// `524288`, `512k`, `1m`, `1g` (binary multiples).
fn parse_bytes(value: &str) -> Option<usize> {
    let lower = value.to_ascii_lowercase();
    let (digits, shift) = match lower.strip_suffix(['k', 'm', 'g']) {
        Some(digits) => (digits, 10 * (1 + "kmg".find(lower.chars().last()?)?)),
        None => (lower.as_str(), 0),
    };
    let n: usize = digits.parse().ok()?;
    n.checked_mul(1usize.checked_shl(shift as u32)?)
}

/// `500ms`, `30s`, `5m`, `1h`; a bare number is seconds. Zero is refused.
fn parse_duration(value: &str) -> Option<Duration> {
    let (digits, unit_ms) = if let Some(d) = value.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = value.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = value.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = value.strip_suffix('h') {
        (d, 3_600_000)
    } else {
        (value, 1000)
    };
    let n: u64 = digits.parse().ok()?;
    Some(Duration::from_millis(n.checked_mul(unit_ms)?)).filter(|d| !d.is_zero())
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Reads `HEAPPROF` before `main`, from the ELF initializer below: a
/// program configured only by the environment has no code that could call
/// [`Config::start`].
extern "C" fn start_from_env() {
    let Some(spec) = std::env::var_os("HEAPPROF") else {
        return;
    };
    let spec = spec.to_string_lossy();
    if !crate::core::counters::profiler_installed() {
        eprintln!(
            "heapprof: warning: HEAPPROF is set, but heapprof::Profiler is not this program's global allocator; ignoring HEAPPROF"
        );
        return;
    }
    let (config, problems) = Config::parse_lenient(&spec);
    for problem in problems {
        eprintln!("heapprof: warning: HEAPPROF: {problem}");
    }
    if let Err(e) = config.start() {
        eprintln!("heapprof: warning: HEAPPROF: {e}");
    }
}

crate::sys::run_before_main!(START_FROM_ENV, start_from_env);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses() {
        let config: Config =
            "rate=512k, dump=h-%p.pb.gz,interval=30s,at_exit=1,peak=true,http=:6060,symbolize=offline,full_stacks=1"
                .parse()
                .unwrap();
        assert_eq!(
            config,
            Config::new()
                .rate(512 * 1024)
                .dump("h-%p.pb.gz")
                .interval(Duration::from_secs(30))
                .at_exit(true)
                .peak(true)
                .http(":6060")
                .symbolize(Symbolize::Offline)
                .full_stacks(true)
        );
        assert_eq!(config.to_string().parse::<Config>().unwrap(), config);
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("7"), Some(7));
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_used_instead() {
        let (config, problems) =
            Config::parse_lenient("rate=lots,interval=0s,at_exit=maybe,colour=blue,peak=1");
        assert_eq!(config, Config::new().peak(true), "good keys still apply");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[0].starts_with("rate: bad value \"lots\""),
            "{}",
            problems[0]
        );
        assert!(
            problems[0].contains("keeping the rate at"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].ends_with("; no interval dumps"),
            "{}",
            problems[1]
        );
        assert!(
            problems[2].ends_with("; no profile at exit"),
            "{}",
            problems[2]
        );
        assert!(
            problems[3].starts_with("unknown key \"colour\""),
            "{}",
            problems[3]
        );
        assert!(parse_bytes("99999999999999999999k").is_none());
        assert!(parse_bytes("12q").is_none());
    }

    #[test]
    fn limit_keys_parse_and_print_back() {
        let config: Config = "limit=512m,near_limit=90%,peak_interval=2s"
            .parse()
            .unwrap();
        assert_eq!(
            config,
            Config::new()
                .limit(512 << 20)
                .near_limit(90)
                .peak_interval(Duration::from_secs(2))
        );
        assert_eq!(config.to_string().parse::<Config>().unwrap(), config);
        assert_eq!(
            "near_limit=75".parse::<Config>().unwrap(),
            Config::new().near_limit(75),
            "the percent sign is optional"
        );
    }

    #[test]
    fn bad_limit_values_are_one_line_each_saying_what_applies() {
        let (config, problems) = Config::parse_lenient(
            "near_limit=150%,near_limit=abc,limit=abc,limit=0,peak_interval=0s,near_limit=0%",
        );
        assert_eq!(config, Config::new(), "nothing applies");
        assert_eq!(
            problems,
            [
                "near_limit: bad value \"150%\" (expected a percentage from 1% to 100% such as 90%); no near-limit profiles",
                "near_limit: bad value \"abc\" (expected a percentage from 1% to 100% such as 90%); no near-limit profiles",
                "limit: bad value \"abc\" (expected a number of bytes above zero such as 512m or 2g); using the cgroup's memory limit, if any",
                "limit: bad value \"0\" (expected a number of bytes above zero such as 512m or 2g); using the cgroup's memory limit, if any",
                "peak_interval: bad value \"0s\" (expected a duration above zero such as 10s or 1m); rewriting the peak file every 10s",
                "near_limit: bad value \"0%\" (expected a percentage from 1% to 100% such as 90%); no near-limit profiles",
            ]
        );
    }

    #[test]
    fn trace_takes_a_duration_and_bad_values_say_no_trace() {
        let config: Config = "trace=10s".parse().unwrap();
        assert_eq!(config, Config::new().trace(Duration::from_secs(10)));
        assert_eq!(config.to_string(), "trace=10000ms");
        assert_eq!(config.to_string().parse::<Config>().unwrap(), config);
        let (config, problems) = Config::parse_lenient("trace=abc,trace=0,peak=1");
        assert_eq!(
            config,
            Config::new().peak(true),
            "no trace, the rest applies"
        );
        assert_eq!(
            problems,
            [
                "trace: bad value \"abc\" (expected a duration above zero such as 10s, 1m or 500ms); no trace lines",
                "trace: bad value \"0\" (expected a duration above zero such as 10s, 1m or 500ms); no trace lines",
            ]
        );
    }

    #[test]
    fn at_signal_parses_prints_back_and_bad_values_say_what_applies() {
        let config: Config = "at_signal=1,at_exit=1".parse().unwrap();
        assert_eq!(config, Config::new().at_signal(true).at_exit(true));
        assert_eq!(config.to_string(), "at_exit=1,at_signal=1");
        assert_eq!(config.to_string().parse::<Config>().unwrap(), config);
        let (config, problems) = Config::parse_lenient("at_signal=later,peak=1");
        assert_eq!(config, Config::new().peak(true));
        assert_eq!(
            problems,
            ["at_signal: bad value \"later\" (expected 1 or 0); no profiles on SIGTERM or SIGINT"]
        );
    }

    #[test]
    fn a_bad_full_stacks_value_is_one_line_saying_what_applies() {
        let err = "full_stacks=sometimes".parse::<Config>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "full_stacks: bad value \"sometimes\" (expected 1 or 0); stacks begin at the program's entry"
        );
        assert_eq!(
            "full_stacks".parse::<Config>().unwrap(),
            Config::new().full_stacks(true)
        );
        assert_eq!("full_stacks=0".parse::<Config>().unwrap(), Config::new());
    }
}
