//! The debug endpoint (feature `http`), read by a plain HTTP client and by
//! the real `go tool pprof`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use heapprof::pprof::Profile;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// Blocks kept alive for the whole run, so the heap profile shows them.
static HELD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn held_by_http_test(blocks: usize) {
    let mut held = HELD.lock().unwrap();
    for i in 0..blocks {
        held.push(vec![i as u8; 64 << 10]);
    }
}

#[inline(never)]
fn allocated_during_window(blocks: usize) -> Vec<Vec<u8>> {
    let mut made = Vec::with_capacity(blocks);
    for i in 0..blocks {
        made.push(vec![i as u8; 64 << 10]);
    }
    made
}

/// The server, started once; tests take turns (one of them fills every
/// connection slot).
fn server() -> (SocketAddr, MutexGuard<'static, ()>) {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    static SERIAL: Mutex<()> = Mutex::new(());
    let turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let addr = *ADDR.get_or_init(|| {
        heapprof::set_sample_rate(64 << 10);
        held_by_http_test(128);
        heapprof::serve("127.0.0.1:0").expect("serve")
    });
    (addr, turn)
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
}

fn request(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(raw).expect("send");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read reply");
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = String::from_utf8(reply[..split].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head,
        body: reply[split + 4..].to_vec(),
    }
}

fn get(addr: SocketAddr, target: &str) -> Reply {
    request(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
}

#[test]
fn every_path_answers() {
    let (addr, _turn) = server();

    let index = get(addr, "/debug/pprof/");
    assert_eq!(index.status, 200);
    for link in [
        "heap",
        "allocs",
        "peak",
        "lifetimes",
        "/debug/mem",
        "/metrics",
    ] {
        assert!(index.text().contains(&format!("href=\"{link}")), "{link}");
    }

    let heap = get(addr, "/debug/pprof/heap");
    assert_eq!(heap.status, 200);
    assert!(heap.head.contains("Content-Type: application/octet-stream"));
    let profile = Profile::decode(&heap.body).expect("a pprof profile");
    let [_, _, _, inuse] = common::site_totals(&profile, "held_by_http_test", None);
    assert!(inuse > 4 << 20, "the 8 MiB held shows in use: {inuse}");
    assert!(
        !profile
            .functions
            .iter()
            .any(|f| f.name.contains("heapprof::http")),
        "the endpoint's own allocations are profiled"
    );

    let allocs = Profile::decode(&get(addr, "/debug/pprof/allocs").body).unwrap();
    assert_eq!(allocs.default_sample_type, "alloc_space");

    // A block freed under the window: the lifetimes profile has it.
    drop(std::hint::black_box(vec![1u8; 16 << 20]));
    let lifetimes = get(addr, "/debug/pprof/lifetimes");
    assert_eq!(lifetimes.status, 200);
    assert!(lifetimes.head.contains("filename=\"lifetimes\""));
    let lifetimes = Profile::decode(&lifetimes.body).unwrap();
    let types: Vec<_> = lifetimes.sample_types.iter().map(|t| &t.r#type).collect();
    assert_eq!(types, ["freed_objects", "freed_space", "lifetime"]);
    assert_eq!(lifetimes.default_sample_type, "freed_space");
    assert!(lifetimes.samples.iter().any(|s| s.values[1] >= 16 << 20));
    for refused in [
        "/debug/pprof/lifetimes?seconds=5",
        "/debug/pprof/lifetimes?debug=1",
    ] {
        assert_eq!(get(addr, refused).status, 400, "{refused}");
    }

    let text = get(addr, "/debug/pprof/heap?debug=1");
    assert_eq!(text.status, 200);
    assert!(text.text().starts_with("heap profile: "), "{}", text.text());
    assert!(text.text().contains("held_by_http_test"));
    assert!(text.text().contains("# heapprof.Stats"));

    let mem = get(addr, "/debug/mem").text();
    let live: u64 = mem
        .lines()
        .find_map(|l| l.strip_prefix("live_bytes"))
        .expect("live_bytes line")
        .trim()
        .parse()
        .unwrap();
    assert!(live >= 8 << 20, "{mem}");

    let metrics = get(addr, "/metrics");
    assert!(metrics.head.contains("text/plain; version=0.0.4"));
    let metrics = metrics.text();
    assert!(metrics.contains("# TYPE heapprof_heap_live_bytes gauge"));
    assert!(metrics.contains("# TYPE heapprof_heap_allocs_objects_total counter"));
    assert!(metrics.contains("# HELP heapprof_profile_rate_bytes "));
    assert!(metrics.contains("\nheapprof_profile_rate_bytes 65536\n"));
}

#[test]
fn errors_get_their_status() {
    let (addr, _turn) = server();
    let cases: [(&[u8], u16, &str); 8] = [
        (b"GET /nope HTTP/1.1\r\n\r\n", 404, "404 page not found"),
        (
            b"GET /debug/pprof/heap?seconds=soon HTTP/1.1\r\n\r\n",
            400,
            "bad seconds \"soon\"",
        ),
        (
            b"GET /debug/pprof/heap?seconds=0 HTTP/1.1\r\n\r\n",
            400,
            "bad seconds \"0\"",
        ),
        (
            b"GET /debug/pprof/allocs?seconds=99999 HTTP/1.1\r\n\r\n",
            400,
            "bad seconds",
        ),
        (
            b"GET /debug/pprof/heap?debug=7 HTTP/1.1\r\n\r\n",
            400,
            "bad debug \"7\"",
        ),
        (
            b"POST /debug/pprof/heap HTTP/1.1\r\n\r\n",
            405,
            "only GET and HEAD",
        ),
        (b"\x00\xff garbage\r\n\r\n", 400, "bad request"),
        (b"HEAD /debug/mem HTTP/1.1\r\n\r\n", 200, ""),
    ];
    for (raw, status, body) in cases {
        let reply = request(addr, raw);
        assert_eq!(reply.status, status, "{}", String::from_utf8_lossy(raw));
        assert!(reply.text().starts_with(body), "{}", reply.text());
    }
}

#[test]
fn the_peak_endpoint_needs_peak_tracking() {
    let (addr, _turn) = server();
    let off = get(addr, "/debug/pprof/peak");
    assert_eq!(off.status, 404);
    assert!(
        off.text().contains("peak tracking is off"),
        "{}",
        off.text()
    );
    let dir = common::scratch_dir("http-peak");
    heapprof::Config::new()
        .peak(true)
        .dump(format!("{}/peak-%p.pb.gz", dir.display()))
        .start()
        .unwrap();
    // A new record needs live bytes 1/16 above the last: 16 MiB is more
    // than that of this process's heap (the symbolizer's caches included).
    let burst = allocated_during_window(256);
    drop(burst);
    let on = get(addr, "/debug/pprof/peak");
    assert_eq!(on.status, 200, "{}", String::from_utf8_lossy(&on.body));
    let peak = Profile::decode(&on.body).unwrap();
    let [_, _, _, inuse] = common::site_totals(&peak, "allocated_during_window", None);
    assert!(
        inuse > 8 << 20,
        "the freed 16 MiB burst was live at the peak: {inuse} ({:?}, {:?})",
        peak.comments,
        heapprof::stats()
    );
}

/// `?seconds=N` shows what happened during the window only.
#[test]
fn seconds_gives_the_difference_over_the_window() {
    let (addr, _turn) = server();
    let window = std::thread::spawn(move || get(addr, "/debug/pprof/allocs?seconds=1"));
    std::thread::sleep(Duration::from_millis(300));
    let during = allocated_during_window(64);
    let reply = window.join().unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let delta = Profile::decode(&reply.body).unwrap();
    assert_eq!(delta.duration_nanos, 1_000_000_000);
    let [_, during_space, ..] = common::site_totals(&delta, "allocated_during_window", None);
    let [_, before_space, ..] = common::site_totals(&delta, "held_by_http_test", None);
    assert!(during_space > 2 << 20, "{during_space}");
    assert_eq!(before_space, 0, "allocated before the window");
    drop(during);
}

#[test]
fn go_tool_pprof_reads_the_endpoint() {
    let (addr, _turn) = server();
    let url = format!("http://{addr}/debug/pprof/heap");
    let top = common::go_pprof_ok(&["-top", "-unit=B", &url]);
    let (flat, _) = common::top_row(&top, "held_by_http_test").expect(&top);
    assert!(flat > 4 << 20, "{top}");
    // The legacy text form parses too, with the same in-use total. pprof
    // reads it as in-use and allocated figures only when their totals
    // differ (as for Go's own): a freed 16 MiB block, which the sampler
    // misses with probability e^-256 at these tests' 64 KiB rate, makes
    // sure they do, whatever the other tests have freed.
    drop(std::hint::black_box(vec![1u8; 16 << 20]));
    let raw = common::go_pprof_ok(&["-raw", &format!("{url}?debug=1")]);
    assert!(raw.contains("inuse_space/bytes"), "{raw}");
    let text = get(addr, "/debug/pprof/heap?debug=1").text();
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[0..2], ["heap", "profile:"]);
    let legacy_top = common::go_pprof_ok(&["-top", "-unit=B", &format!("{url}?debug=1")]);
    assert!(
        legacy_top.contains(" total"),
        "go tool pprof -top on the legacy form: {legacy_top}"
    );
}

/// A client that connects and says nothing holds one connection slot until
/// its timeout; with every slot taken, others are refused at once, and
/// the program itself never waits.
#[test]
fn idle_clients_cannot_stall_anything() {
    let (addr, _turn) = server();
    let idle: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let refused = get(addr, "/debug/mem");
    assert_eq!(refused.status, 503, "{}", refused.text());
    // Meanwhile the program allocates and profiles as usual.
    let v = allocated_during_window(16);
    assert!(heapprof::heap_profile().is_ok());
    drop(v);
    drop(idle);
    let start = Instant::now();
    loop {
        let reply = get(addr, "/debug/mem");
        if reply.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "slots not freed after the idle clients left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Serves until the file named by `HEAPPROF_TEST_STOP` appears.
#[test]
#[ignore = "run with HEAPPROF=http=... by the test below"]
fn serving_child() {
    let stop = std::env::var("HEAPPROF_TEST_STOP").unwrap();
    held_by_http_test(128); // 8 MiB: sampled at the default rate for sure
    std::fs::write(format!("{stop}.ready"), b"").unwrap();
    let start = Instant::now();
    while !std::path::Path::new(&stop).exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn heapprof_http_starts_the_endpoint_without_code() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = common::scratch_dir("http-env");
    let stop = dir.join("stop");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "serving_child", "--test-threads=1"])
        .env("HEAPPROF", format!("http=:{port}"))
        .env("HEAPPROF_TEST_STOP", &stop)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ready = dir.join("stop.ready");
    let start = Instant::now();
    while !ready.exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "child not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let heap = get(addr, "/debug/pprof/heap");
    std::fs::write(&stop, b"").unwrap();
    assert_eq!(heap.status, 200);
    let profile = Profile::decode(&heap.body).unwrap();
    assert!(common::site_totals(&profile, "held_by_http_test", None)[0] > 0);
    assert!(child.wait().unwrap().success());
}

/// While another thread of the program allocates without pause, the
/// endpoint's threads write every kind of profile, three times over: they
/// allocate tens of MiB doing it (the first parses this binary's debug
/// info), none of it the program's, so neither the peak nor the live bytes
/// may move from those of the program's steady heap.
#[test]
#[ignore = "run in a child process by the_endpoints_writes_leave_the_peak_alone"]
fn endpoint_writes_child() {
    let dir = common::scratch_dir("http-own-work");
    heapprof::Config::new()
        .peak(true)
        .dump(format!("{}/peak-%p.pb.gz", dir.display()))
        .start()
        .unwrap();
    let held = common::steady_heap();
    let addr = heapprof::serve("127.0.0.1:0").expect("serve");
    let before = heapprof::stats();
    common::while_churning(|| {
        for _ in 0..3 {
            for path in [
                "/debug/pprof/heap",
                "/debug/pprof/allocs?debug=1",
                "/debug/pprof/peak",
                "/debug/mem",
                "/metrics",
            ] {
                assert_eq!(get(addr, path).status, 200, "{path}");
            }
        }
    });
    let after = heapprof::stats();
    let peak = get(addr, "/debug/pprof/peak?debug=1").text();
    let recorded = common::peak_comment(peak.lines()).expect("a peak comment");
    common::assert_only_the_program_counts(before, after, recorded);
    drop(held);
}

#[test]
fn the_endpoints_writes_leave_the_peak_alone() {
    let out = common::run_child_test_ok("endpoint_writes_child", &[]);
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
}

/// heapprof's work leaves the program's counts exactly as they were: the
/// endpoint's threads come and go without a byte left behind, and a
/// profile handed to the program counts as one allocation of its size,
/// freed when the program drops it.
#[test]
#[ignore = "run in a child process by heapprofs_work_leaves_the_counts_exact"]
fn exact_counts_child() {
    let rate: usize = std::env::var("HEAPPROF_TEST_RATE")
        .unwrap()
        .parse()
        .unwrap();
    heapprof::set_sample_rate(rate);
    let held = common::steady_heap();
    let addr = heapprof::serve("127.0.0.1:0").expect("serve");
    let get_all = || {
        for path in [
            "/debug/pprof/heap",
            "/debug/pprof/allocs?debug=1",
            "/debug/mem",
            "/metrics",
        ] {
            assert_eq!(get(addr, path).status, 200, "{path}");
        }
    };
    // Once first: the program's side of a connection sets up once.
    get_all();
    drop(heapprof::heap_profile().unwrap());
    let counts = |s: heapprof::Stats| [s.live_bytes, s.live_objects, s.allocations];
    let before = heapprof::stats();
    for _ in 0..5 {
        get_all();
    }
    let served = heapprof::stats();
    let bytes = heapprof::heap_profile().unwrap();
    let holding = heapprof::stats();
    let size = bytes.len() as u64;
    let data = heapprof::profile(heapprof::Kind::Heap)
        .comment("x".repeat(1000))
        .build()
        .unwrap();
    drop(bytes);
    drop(data);
    let after = heapprof::stats();
    println!(
        "rate {rate}: [live bytes, live blocks, allocations] {:?} before, {:?} after 20 requests, {:?} holding a {size}-byte profile, {:?} after",
        counts(before),
        counts(served),
        counts(holding),
        counts(after)
    );
    let live = |s: heapprof::Stats| (s.live_bytes, s.live_objects);
    assert_eq!(live(served), live(before), "serving moved the live counts");
    assert_eq!(
        counts(holding),
        [
            served.live_bytes + size,
            served.live_objects + 1,
            served.allocations + 1
        ],
        "the profile handed over is one allocation of its size"
    );
    assert_eq!(
        live(after),
        live(before),
        "handing profiles over moved them"
    );
    drop(held);
}

#[test]
fn heapprofs_work_leaves_the_counts_exact() {
    for rate in ["524288", "1"] {
        let out = common::run_child_test_ok("exact_counts_child", &[("HEAPPROF_TEST_RATE", rate)]);
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
    }
}
