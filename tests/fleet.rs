//! The debug endpoint as fleet profilers scrape it: requests shaped as
//! Grafana Alloy's `pyroscope.scrape` and Parca's send them (raw HTTP/1.1
//! with their headers), answered as Go's `net/http/pprof` answers them.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// Size of every block the known site allocates: one size keeps the
/// site's scaled estimates a fixed multiple of its sample counts, so they
/// can only grow between scrapes.
const BLOCK: usize = 32 << 10;

/// The known allocation site whose stack must look the same in every
/// scrape.
#[inline(never)]
fn fleet_alloc_site(blocks: usize) -> usize {
    let mut total = 0;
    for i in 0..blocks {
        let block = std::hint::black_box(vec![i as u8; BLOCK]);
        total += block.len();
    }
    total
}

/// The server, started once; tests take turns so one test's scrape never
/// races another's expectations about the sample rate.
fn server() -> (SocketAddr, MutexGuard<'static, ()>) {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    static SERIAL: Mutex<()> = Mutex::new(());
    let turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let addr = *ADDR.get_or_init(|| {
        // Far below BLOCK, so nearly every block is sampled and the site
        // shows up after a few hundred of them whatever the random draws.
        heapprof::set_sample_rate(4 << 10);
        heapprof::serve("127.0.0.1:0").expect("serve")
    });
    (addr, turn)
}

struct Reply {
    status: u16,
    /// Header names lower-cased (HTTP names are case-insensitive), values
    /// as sent.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
}

fn request(addr: SocketAddr, raw: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    // Only so a broken server fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(raw.as_bytes()).expect("send");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read reply");
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = String::from_utf8(reply[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .map(|l| {
            let (name, value) = l.split_once(':').expect("a header line");
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    Reply {
        status: status.parse().unwrap(),
        headers,
        body: reply[split + 4..].to_vec(),
    }
}

/// A GET as Grafana Alloy's scraper sends it (Go's HTTP client: it adds
/// `Accept-Encoding: gzip` itself).
fn alloy(addr: SocketAddr, target: &str) -> Reply {
    request(
        addr,
        &format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Alloy/v1.4.2 (linux; binary)\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n"
        ),
    )
}

/// A GET as Parca's scraper sends it.
fn parca(addr: SocketAddr, target: &str) -> Reply {
    request(
        addr,
        &format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: parca/v0.22.0\r\nAccept-Encoding: gzip\r\n\r\n"
        ),
    )
}

/// What Go's `net/http/pprof` sends with a proto profile, and nothing
/// that would make a Go client undo a gzip that is the body itself.
fn assert_go_proto_headers(reply: &Reply, filename: &str) {
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        reply.header("content-disposition"),
        Some(format!("attachment; filename=\"{filename}\"").as_str())
    );
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("content-encoding"), None);
    assert_eq!(reply.header("x-go-pprof"), None);
    assert_eq!(
        reply.header("content-length"),
        Some(reply.body.len().to_string().as_str())
    );
    assert_eq!(reply.body[..2], [0x1f, 0x8b], "gzipped pprof");
}

#[test]
fn alloy_and_parca_get_what_go_sends() {
    let (addr, _turn) = server();
    fleet_alloc_site(64);
    // Go leaves a heap profile's default empty, which pprof reads as the
    // last type, inuse_space.
    for (reply, filename, default) in [
        (alloy(addr, "/debug/pprof/allocs"), "allocs", "alloc_space"),
        (parca(addr, "/debug/pprof/allocs"), "allocs", "alloc_space"),
        (alloy(addr, "/debug/pprof/heap?gc=1"), "heap", ""),
        (parca(addr, "/debug/pprof/heap"), "heap", ""),
        // An empty `seconds` is no window, as in Go.
        (alloy(addr, "/debug/pprof/heap?seconds="), "heap", ""),
    ] {
        assert_go_proto_headers(&reply, filename);
        let profile = Profile::decode(&reply.body).expect("a pprof profile");
        let types: Vec<_> = profile.sample_types.iter().map(|t| &t.r#type).collect();
        assert_eq!(
            types,
            [
                "alloc_objects",
                "alloc_space",
                "inuse_objects",
                "inuse_space"
            ]
        );
        assert_eq!(profile.default_sample_type, default);
    }
}

/// One stack's identity as a backend keys it: each frame's address,
/// mapping and function names.
type StackKey = Vec<(u64, String, Vec<String>)>;

/// The samples whose stack holds `site`, by stack identity, with their
/// allocated objects and bytes.
fn site_stacks(profile: &Profile, site: &str) -> BTreeMap<StackKey, (i64, i64)> {
    let mut stacks = BTreeMap::new();
    for sample in &profile.samples {
        let key: StackKey = sample
            .locations
            .iter()
            .map(|&l| {
                let location = &profile.locations[l];
                let mapping = location
                    .mapping
                    .map(|m| profile.mappings[m].build_id.clone())
                    .unwrap_or_default();
                let names = location
                    .lines
                    .iter()
                    .map(|line| profile.functions[line.function].name.clone())
                    .collect();
                (location.address, mapping, names)
            })
            .collect();
        if key
            .iter()
            .any(|(_, _, names)| names.iter().any(|n| n.ends_with(site)))
        {
            let entry = stacks.entry(key).or_insert((0, 0));
            entry.0 += sample.values[0];
            entry.1 += sample.values[1];
        }
    }
    stacks
}

/// A backend's delta between two cumulative scrapes is right only if the
/// same stack comes back with the same frames and figures that never
/// shrink.
#[test]
fn two_scrapes_keep_each_stacks_identity() {
    let (addr, _turn) = server();
    // The program keeps allocating from the same site while it is scraped.
    static STOP: AtomicBool = AtomicBool::new(false);
    let busy = std::thread::spawn(|| {
        while !STOP.load(Ordering::Relaxed) {
            fleet_alloc_site(16);
        }
    });
    // One call site for both rounds: a second call written out would be a
    // second stack (its return address differs), not the same one grown.
    let scrapes: Vec<_> = (0..2)
        .map(|_| {
            fleet_alloc_site(512);
            let reply = alloy(addr, "/debug/pprof/allocs");
            site_stacks(&Profile::decode(&reply.body).unwrap(), "fleet_alloc_site")
        })
        .collect();
    STOP.store(true, Ordering::Relaxed);
    busy.join().unwrap();

    let (first, second) = (&scrapes[0], &scrapes[1]);
    assert!(!first.is_empty(), "the known site is in the first scrape");
    for (stack, (objects, bytes)) in first {
        let Some((later_objects, later_bytes)) = second.get(stack) else {
            panic!("stack of the first scrape missing from the second: {stack:#?}");
        };
        assert!(later_objects >= objects, "{later_objects} < {objects}");
        assert!(later_bytes >= bytes, "{later_bytes} < {bytes}");
    }
    // The 512 blocks before the second scrape came from the stack that
    // made the first scrape's 512, so that stack at least grew.
    let grew = first
        .iter()
        .any(|(stack, (_, bytes))| second[stack].1 > *bytes);
    assert!(grew, "no stack of the site grew between scrapes");
}

#[test]
fn go_only_profiles_get_a_one_line_404() {
    let (addr, _turn) = server();
    for (target, reason) in [
        // Alloy's process_cpu default: answered at once, not after the window.
        ("/debug/pprof/profile?seconds=14", "memory profiles only"),
        ("/debug/pprof/goroutine", "memory profiles only"),
        ("/debug/pprof/mutex", "memory profiles only"),
        ("/debug/pprof/block", "memory profiles only"),
        ("/debug/pprof/threadcreate", "memory profiles only"),
        ("/debug/pprof/trace?seconds=1", "memory profiles only"),
        ("/debug/pprof/cmdline", "memory profiles only"),
        ("/debug/pprof/delta_heap", "scrape /debug/pprof/allocs"),
        ("/debug/pprof/delta_mutex", "scrape /debug/pprof/allocs"),
        ("/debug/pprof/delta_block", "scrape /debug/pprof/allocs"),
        ("/debug/pprof/fgprof?seconds=14", "Unknown profile"),
    ] {
        let reply = alloy(addr, target);
        assert_eq!(reply.status, 404, "{target}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(reply.header("x-go-pprof"), Some("1"), "{target}");
        assert_eq!(reply.header("content-disposition"), None);
        let text = reply.text();
        assert!(text.contains(reason), "{target}: {text}");
        assert_eq!(text.lines().count(), 1, "{target}: {text}");
        assert!(text.ends_with('\n'));
    }
}

#[test]
fn seconds_is_a_delta_as_in_go() {
    let (addr, _turn) = server();
    let delta = alloy(addr, "/debug/pprof/allocs?seconds=1");
    assert_go_proto_headers(&delta, "allocs-delta");
    assert_eq!(
        Profile::decode(&delta.body).unwrap().duration_nanos,
        1_000_000_000
    );
    for (target, text) in [
        (
            "/debug/pprof/heap?seconds=5&debug=1",
            "seconds and debug params are incompatible\n",
        ),
        (
            "/debug/pprof/peak?seconds=5",
            "\"seconds\" parameter is not supported for this profile type\n",
        ),
    ] {
        let reply = alloy(addr, target);
        assert_eq!(reply.status, 400, "{target}");
        assert_eq!(reply.header("x-go-pprof"), Some("1"));
        assert_eq!(reply.text(), text);
    }
}

#[test]
fn head_and_other_methods() {
    let (addr, _turn) = server();
    let head = request(
        addr,
        &format!(
            "HEAD /debug/pprof/allocs HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Alloy/v1.4.2\r\n\r\n"
        ),
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body");
    assert_eq!(
        head.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        head.header("content-disposition"),
        Some("attachment; filename=\"allocs\"")
    );
    let length: usize = head.header("content-length").unwrap().parse().unwrap();
    assert!(length > 0, "HEAD tells the length GET would send");

    for (method, target, allow) in [
        ("POST", "/debug/pprof/allocs", "GET, HEAD"),
        ("PUT", "/debug/pprof/heap", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
        ("OPTIONS", "/debug/pprof/symbol", "GET, HEAD, POST"),
    ] {
        let reply = request(
            addr,
            &format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
        );
        assert_eq!(reply.status, 405, "{method} {target}");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {target}");
        assert_eq!(reply.header("content-disposition"), None);
    }
}
