//! The debug endpoint, the `net/http/pprof` of heapprof (feature `http`):
//! a small HTTP/1.1 server on its own threads, heapprof's own work for
//! their whole life (see [`counters::own_thread`]), so nothing they
//! allocate is profiled or counted as the program's.
//!
//! Each connection gets a thread, read and write timeouts and a cap on the
//! request's size, and at most [`MAX_CONNECTIONS`] are served at once (more
//! get `503`): a slow or hostile client ties up at most its own thread for
//! a few seconds, never the program.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::builder::{self, Kind};
use crate::core::counters;
use crate::core::guard::Guard;
use crate::core::table;
use crate::pprof::Profile;
use crate::profile::{self, Counts, Flavour};
use crate::{metrics, Error};

/// Connections served at once; more are refused with `503`.
const MAX_CONNECTIONS: usize = 16;
/// Longest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request, or to take a chunk of
/// the answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `?seconds=` window.
const MAX_SECONDS: u64 = 3600;

static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Starts the debug endpoint on `addr` (`"127.0.0.1:6060"`; `":6060"` means
/// loopback; port 0 picks a free port) and returns the address it listens
/// on. It serves, until the process exits:
///
/// | path | answer |
/// |---|---|
/// | `/debug/pprof/` | an index of the paths below |
/// | `/debug/pprof/heap` | the heap profile (gzipped pprof); `?debug=1` Go's legacy text form; `?seconds=N` the difference over the next N seconds |
/// | `/debug/pprof/allocs` | the same, showing allocated space by default |
/// | `/debug/pprof/peak` | the in-use profile at the peak of live bytes (peak tracking must be on) |
/// | `/debug/pprof/lifetimes` | how long freed sampled blocks lived, per site and label set (see [`crate::Kind::Lifetimes`]) |
/// | `/debug/mem` | the exact counters ([`crate::stats`]) and the memory classes ([`crate::memory_classes`]) as plain text, ending with a line on the gap between RSS and the live heap |
/// | `/metrics` | every metric in Prometheus text format |
///
/// Answers are shaped as Go's `net/http/pprof` shapes them, since Grafana
/// Alloy and Parca scrape heapprof as they scrape a Go service: profiles
/// come as `application/octet-stream` with `Content-Disposition:
/// attachment; filename="heap"` (`"heap-delta"` for `?seconds=N`) and no
/// `Content-Encoding` (the body is gzipped pprof itself); `gc=1` is accepted
/// and ignored (there is no collector to run); Go's other profiles
/// (`profile`, `goroutine`, `mutex`, `block`, `threadcreate`, `trace`,
/// `cmdline`) and godeltaprof's `delta_*` paths get `404` with a one-line
/// reason; errors carry Go's `X-Go-Pprof: 1`; methods other than GET and
/// HEAD get `405` with `Allow`.
///
/// It binds where it is told: anything but a loopback address exposes heap
/// profiles (stack traces, sizes, build ids) to the network.
///
/// ```no_run
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// fn main() -> Result<(), heapprof::Error> {
///     let addr = heapprof::serve("127.0.0.1:6060")?;
///     println!("go tool pprof http://{addr}/debug/pprof/heap");
///     // ... the program runs ...
///     Ok(())
/// }
/// ```
pub fn serve(addr: &str) -> Result<SocketAddr, Error> {
    let _guard = Guard::enter();
    let full = if addr.starts_with(':') {
        format!("127.0.0.1{addr}")
    } else {
        addr.to_owned()
    };
    let listen_error = |source| Error::Listen {
        addr: addr.to_owned(),
        source,
    };
    let listener = TcpListener::bind(&full).map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    counters::spawn_own_thread("heapprof-http", || {
        move || {
            for stream in listener.incoming().flatten() {
                accept(stream);
            }
        }
    })
    .map_err(listen_error)?;
    Ok(local)
}

fn accept(stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    if ACTIVE.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
        refuse(stream);
        return;
    }
    let spawned = counters::spawn_own_thread("heapprof-http-conn", || {
        move || {
            handle(stream);
            ACTIVE.fetch_sub(1, Ordering::AcqRel);
        }
    });
    if spawned.is_err() {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers `503` without a thread: a short wait for the request (closing
/// with it unread would reset the connection before the answer is read),
/// then the answer.
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(250)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(250)));
    let _ = stream.read(&mut [0u8; 1024]);
    respond(stream, false, Response::text(503, "too many connections\n"));
}

struct Response {
    status: u16,
    content_type: &'static str,
    attachment: Option<String>,
    /// The `Allow` header of a `405`.
    allow: Option<&'static str>,
    body: Vec<u8>,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            attachment: None,
            allow: None,
            body: body.into().into_bytes(),
        }
    }
}

fn handle(mut stream: TcpStream) {
    let Some(head) = read_head(&mut stream) else {
        respond(stream, false, Response::text(400, "bad request\n"));
        return;
    };
    let mut parts = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response = match (method, target) {
        ("GET" | "HEAD", _) => route(target),
        ("POST", "/debug/pprof/symbol") => match read_body(&mut stream, &head) {
            Some(body) => Response::text(200, symbols(&body)),
            None => Response::text(400, "bad request body\n"),
        },
        (_, target) => Response {
            // RFC 9110 wants the methods a 405 resource supports listed.
            allow: Some(if target.starts_with("/debug/pprof/symbol") {
                "GET, HEAD, POST"
            } else {
                "GET, HEAD"
            }),
            ..Response::text(405, "only GET and HEAD (and POST to /debug/pprof/symbol)\n")
        },
    };
    respond(stream, method == "HEAD", response);
}

/// Reads up to the blank line that ends the request head.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).ok()
}

/// The request body after `head`, as long as its Content-Length (at most
/// 1 MiB; whatever of it came with the head is in `head` already).
fn read_body(stream: &mut TcpStream, head: &str) -> Option<String> {
    let (fields, already) = head.split_once("\r\n\r\n")?;
    let length: usize = fields
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(already.len());
    if length > 1 << 20 || already.len() > length {
        return None;
    }
    let mut body = already.as_bytes().to_vec();
    body.resize(length, 0);
    stream.read_exact(&mut body[already.len()..]).ok()?;
    String::from_utf8(body).ok()
}

/// Go's remote symbolization protocol (`/debug/pprof/symbol`), which
/// `go tool pprof` uses for profiles without symbols (the `?debug=1` form):
/// the request is addresses joined by `+`, the answer one `address name`
/// line per address it knows.
fn symbols(request: &str) -> String {
    let addresses: Vec<usize> = request
        .split(|c: char| c == '+' || c.is_whitespace())
        .filter_map(|a| usize::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .collect();
    let mut resolver = crate::symbolize::resolver();
    let mut out = String::from("num_symbols: 1\n");
    for address in addresses {
        if let Some(frame) = resolver.resolve(address).last() {
            let _ = writeln!(out, "{address:#x} {}", frame.name);
        }
    }
    out
}

fn respond(mut stream: TcpStream, head_only: bool, response: Response) {
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    if let Some(name) = &response.attachment {
        let _ = write!(
            head,
            "Content-Disposition: attachment; filename=\"{name}\"\r\n"
        );
    }
    if let Some(methods) = response.allow {
        let _ = write!(head, "Allow: {methods}\r\n");
    }
    if response.status >= 400 {
        // Go marks its error bodies so `go tool pprof` prints them as the
        // server's message rather than failing to parse them as a profile.
        head.push_str("X-Go-Pprof: 1\r\n");
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if !head_only {
        let _ = stream.write_all(&response.body);
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

fn route(target: &str) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // An empty value counts as absent, as Go's `FormValue` has it
    // (`?seconds=` is a plain profile there). `gc` is never looked at: Go
    // collects garbage before a heap profile, heapprof's counts are exact
    // at every moment, so `gc=1` changes nothing.
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
    };
    match path {
        "/debug/pprof" | "/debug/pprof/" => Response {
            content_type: "text/html; charset=utf-8",
            ..Response::text(200, INDEX)
        },
        "/debug/pprof/heap" => profile_response(Flavour::Heap, "heap", param),
        "/debug/pprof/allocs" => profile_response(Flavour::Allocs, "allocs", param),
        "/debug/pprof/peak" if param("seconds").is_some() => Response::text(
            400,
            "\"seconds\" parameter is not supported for this profile type\n",
        ),
        "/debug/pprof/peak" => match builder::profile(Kind::Peak).data() {
            Ok(profile) => encoded(profile, "peak".to_owned(), param("debug")),
            Err(e) => Response::text(404, format!("{e}\n")),
        },
        "/debug/pprof/lifetimes" if param("seconds").is_some() => Response::text(
            400,
            "\"seconds\" parameter is not supported for this profile type\n",
        ),
        "/debug/pprof/lifetimes" => match param("debug") {
            None | Some("0") => match builder::profile(Kind::Lifetimes).data() {
                Ok(profile) => encoded(profile, "lifetimes".to_owned(), None),
                Err(e) => Response::text(500, format!("{e}\n")),
            },
            // The legacy text form is the heap profile's alone.
            Some(_) => Response::text(400, "the lifetimes profile has no debug form\n"),
        },
        "/debug/pprof/symbol" => Response::text(200, "num_symbols: 1\n"),
        "/debug/mem" => Response::text(200, mem_page()),
        "/metrics" => {
            let mut body = Vec::new();
            let _ = metrics::write_prometheus(&mut body);
            Response {
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body,
                ..Response::text(200, "")
            }
        }
        _ => match path.strip_prefix("/debug/pprof/") {
            Some(name) => Response::text(404, not_served(name)),
            None => Response::text(404, format!("404 page not found: {path}\n")),
        },
    }
}

/// The one-line `404` body for a profile name heapprof does not serve:
/// Go's runtime profiles and godeltaprof's paths say why and what to
/// scrape instead, so a scraper's log tells its operator what to change;
/// anything else is Go's `Unknown profile`.
fn not_served(name: &str) -> String {
    match name {
        "profile" | "goroutine" | "mutex" | "block" | "threadcreate" | "trace" | "cmdline" => {
            format!("heapprof serves memory profiles only; {name} is a Go runtime profile\n")
        }
        "delta_heap" | "delta_mutex" | "delta_block" => format!(
            "heapprof does not serve godeltaprof's {name}: scrape /debug/pprof/allocs, cumulative, and let the scraper take deltas\n"
        ),
        _ => "Unknown profile\n".to_owned(),
    }
}

const INDEX: &str = "<html><head><title>/debug/pprof/</title></head><body>
<h1>heapprof</h1>
<ul>
<li><a href=\"heap?debug=1\">heap</a>: in-use memory by allocation site (<a href=\"heap\">pprof</a>; <code>?seconds=N</code> for the difference over N seconds)</li>
<li><a href=\"allocs?debug=1\">allocs</a>: everything allocated since start, by allocation site (<a href=\"allocs\">pprof</a>)</li>
<li><a href=\"peak?debug=1\">peak</a>: in-use memory at the peak of live bytes (<a href=\"peak\">pprof</a>)</li>
<li><a href=\"lifetimes\">lifetimes</a>: how long freed allocations lived, by allocation site (pprof)</li>
<li><a href=\"/debug/mem\">/debug/mem</a>: exact allocation counters</li>
<li><a href=\"/metrics\">/metrics</a>: the same, for Prometheus</li>
</ul>
<p>go tool pprof http://HOST/debug/pprof/heap</p>
</body></html>
";

fn profile_response<'q>(
    flavour: Flavour,
    name: &'static str,
    param: impl Fn(&str) -> Option<&'q str>,
) -> Response {
    let mut attachment = name.to_owned();
    let built = match param("seconds") {
        None => profile::build(flavour),
        // Go refuses the pair: a delta exists only as a proto profile.
        Some(_) if !matches!(param("debug"), None | Some("0")) => {
            return Response::text(400, "seconds and debug params are incompatible\n")
        }
        Some(text) => {
            let seconds = match text.parse::<u64>() {
                Ok(s) if (1..=MAX_SECONDS).contains(&s) => s,
                _ => {
                    return Response::text(
                        400,
                        format!("bad seconds \"{text}\": a whole number from 1 to {MAX_SECONDS}\n"),
                    )
                }
            };
            attachment.push_str("-delta");
            delta(flavour, seconds)
        }
    };
    match built {
        Ok(profile) => encoded(profile, attachment, param("debug")),
        Err(e) => Response::text(500, format!("{e}\n")),
    }
}

/// What was allocated and freed over the next `seconds`.
fn delta(flavour: Flavour, seconds: u64) -> Result<Profile, Error> {
    let base = table::lock()
        .copy_buckets()
        .map_err(|_| Error::OutOfMemory)?;
    std::thread::sleep(Duration::from_secs(seconds));
    let mut profile = profile::build_with(
        flavour,
        Counts::Since(base),
        vec![format!("heapprof: difference over {seconds}s")],
        crate::symbolize::mode(),
    )?;
    profile.duration_nanos = (seconds * 1_000_000_000) as i64;
    Ok(profile)
}

fn encoded(profile: Profile, name: String, debug: Option<&str>) -> Response {
    match debug {
        None | Some("0") => Response {
            content_type: "application/octet-stream",
            attachment: Some(name),
            body: profile.encode(),
            ..Response::text(200, "")
        },
        Some("1") => Response::text(200, legacy_text(&profile)),
        Some(other) => Response::text(400, format!("bad debug \"{other}\": 0 or 1\n")),
    }
}

/// Go's legacy text heap profile (`?debug=1`): one line per sample, in-use
/// then allocated counts, then its return addresses; each frame's function
/// and line as a comment; the exact counters at the end. The figures are
/// the profile's estimates (already scaled), so the header says
/// `heap/2`, a sampling rate of 1, and `go tool pprof` shows them as they
/// are.
fn legacy_text(profile: &Profile) -> String {
    let value = |s: &crate::pprof::Sample, i: usize| s.values.get(i).copied().unwrap_or(0);
    let total = |i| profile.samples.iter().map(|s| value(s, i)).sum::<i64>();
    let mut out = format!(
        "heap profile: {}: {} [{}: {}] @ heap/2\n# heapprof: estimates of the true totals, scaled from samples taken every {} bytes on average\n",
        total(2),
        total(3),
        total(0),
        total(1),
        profile.period
    );
    for comment in &profile.comments {
        let _ = writeln!(out, "# {comment}");
    }
    for sample in &profile.samples {
        let _ = write!(
            out,
            "{}: {} [{}: {}] @",
            value(sample, 2),
            value(sample, 3),
            value(sample, 0),
            value(sample, 1)
        );
        for &l in &sample.locations {
            let _ = write!(out, " {:#x}", profile.locations[l].address + 1);
        }
        out.push('\n');
        for &l in &sample.locations {
            let location = &profile.locations[l];
            for line in &location.lines {
                let function = &profile.functions[line.function];
                let _ = writeln!(
                    out,
                    "#\t{:#x}\t{}\t{}:{}",
                    location.address + 1,
                    function.name,
                    function.filename,
                    line.line
                );
            }
        }
        out.push('\n');
    }
    out.push_str("\n# heapprof.Stats\n");
    for line in mem_page().lines().skip(1) {
        let _ = writeln!(out, "# {line}");
    }
    out
}

/// The exact counters, one per line, then the memory classes and a line
/// on what the gap between RSS and the live heap is made of.
fn mem_page() -> String {
    let s = crate::stats::stats();
    let mut out = String::from("heapprof stats (exact, from the allocator's counters)\n");
    for (name, v) in [
        ("live_bytes", s.live_bytes),
        ("live_objects", s.live_objects),
        ("peak_live_bytes", s.peak_live_bytes),
        ("profiler_bytes", s.profiler_bytes),
        ("allocated_bytes", s.allocated_bytes),
        ("allocations", s.allocations),
        ("freed_bytes", s.freed_bytes),
        ("frees", s.frees),
        ("resident_bytes", s.resident_bytes),
        ("virtual_bytes", s.virtual_bytes),
        ("sample_rate", crate::core::sampler::rate()),
    ] {
        let _ = writeln!(out, "{name:<16} {v}");
    }
    out.push_str("\nmemory classes (resident bytes, from /proc/self/smaps and the allocator; they add up to total)\n");
    match crate::memory_classes() {
        Ok(c) => {
            for (name, v) in [
                ("heap/live", c.live_bytes),
                ("heap/overhead", c.heap_overhead_bytes),
                ("heap/free", c.heap_free_bytes),
                ("profiler", c.profiler_bytes),
                ("stacks", c.stack_bytes),
                ("file", c.file_bytes),
                ("other", c.other_bytes),
                ("total", c.total_bytes),
                ("not_resident", c.not_resident_bytes),
            ] {
                let _ = writeln!(out, "{name:<16} {v}");
            }
            let allocator = if c.allocator_known {
                "glibc"
            } else {
                "unknown"
            };
            let _ = writeln!(out, "{:<16} {allocator}\n\n{}", "allocator", c.explain());
        }
        Err(e) => {
            let _ = writeln!(out, "unavailable: {e}");
        }
    }
    out
}
