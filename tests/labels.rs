//! Labels on heap samples, exactly at rate 1: nested scopes, several
//! threads, a future polled on two threads, blocks freed under other labels
//! than they were allocated under; and `go tool pprof -tags`, `-tagfocus`,
//! `-tagignore` and `-tagroot` showing the same figures as the decoded
//! profile.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use common::{go_pprof_ok, scratch_dir, str_label, top_row};
use heapprof::pprof::{Profile, Sample};

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// The tests set the rate; one at a time.
static RATE: Mutex<()> = Mutex::new(());

fn leaf_is(profile: &Profile, sample: &Sample, site: &str) -> bool {
    sample
        .locations
        .first()
        .and_then(|&l| profile.locations[l].lines.first())
        .is_some_and(|line| {
            // In a debug build `vec!`'s closure is a frame of its own.
            let name = profile.functions[line.function]
                .name
                .trim_end_matches("::{{closure}}");
            name.ends_with(&format!("::{site}"))
        })
}

/// The four heap values summed over the samples of `site` whose labels
/// include every pair of `labels` (a value of `None`: the key is absent).
fn totals(profile: &Profile, site: &str, labels: &[(&str, Option<&str>)]) -> [i64; 4] {
    let mut totals = [0; 4];
    for sample in &profile.samples {
        if !leaf_is(profile, sample, site) || labels.iter().any(|&(k, v)| str_label(sample, k) != v)
        {
            continue;
        }
        for (total, value) in totals.iter_mut().zip(&sample.values) {
            *total += value;
        }
    }
    totals
}

/// `n` blocks of `size` bytes, kept.
#[inline(never)]
fn outer_site(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![1u8; size]).collect::<Vec<_>>()
}

#[inline(never)]
fn inner_site(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![2u8; size]).collect::<Vec<_>>()
}

#[inline(never)]
fn worker_site(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![3u8; size]).collect::<Vec<_>>()
}

#[inline(never)]
fn task_site(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![4u8; size]).collect::<Vec<_>>()
}

#[inline(never)]
fn users_site(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![6u8; size]).collect::<Vec<_>>()
}

#[inline(never)]
fn admin_site(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![7u8; size]).collect::<Vec<_>>()
}

#[inline(never)]
fn handed_site(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![5u8; size]).collect::<Vec<_>>()
}

#[test]
fn nested_scopes_merge_and_inner_keys_win() {
    let _rate = RATE.lock().unwrap_or_else(|p| p.into_inner());
    heapprof::set_sample_rate(1);
    let (outer, inner, after) = heapprof::with_labels(&[("endpoint", "/users")], || {
        let outer = outer_site(10, 1000);
        let inner = heapprof::with_labels(&[("endpoint", "/admin"), ("tenant", "acme")], || {
            inner_site(20, 3000)
        });
        // Back in the outer scope.
        (outer, inner, outer_site(5, 1000))
    });
    let none = inner_site(7, 3000);
    let profile = heapprof::heap_profile_data().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);

    let users = [("endpoint", Some("/users")), ("tenant", None)];
    // The vectors' blocks and the Vec of them (one more, of another size).
    let [objects, bytes, inuse_objects, inuse_bytes] = totals(&profile, "outer_site", &users);
    assert_eq!(objects, inuse_objects);
    assert_eq!(bytes, inuse_bytes);
    let blocks_of = |site: &str, labels: &[(&str, Option<&str>)], size: i64| -> i64 {
        profile
            .samples
            .iter()
            .filter(|s| leaf_is(&profile, s, site))
            .filter(|s| labels.iter().all(|&(k, v)| str_label(s, k) == v))
            .filter(|s| common::object_size(s) == Some(size))
            .map(|s| s.values[3])
            .sum()
    };
    assert_eq!(blocks_of("outer_site", &users, 1000), 15 * 1000);
    let admin = [("endpoint", Some("/admin")), ("tenant", Some("acme"))];
    assert_eq!(blocks_of("inner_site", &admin, 3000), 20 * 3000);
    assert_eq!(
        blocks_of("inner_site", &[("endpoint", None), ("tenant", None)], 3000),
        7 * 3000
    );
    assert_eq!(blocks_of("inner_site", &users, 3000), 0);
    // Every sample of this thread carries its name (libtest names the
    // thread after the test, cut to 15 bytes by the kernel; one test
    // thread may be the main one).
    for sample in profile
        .samples
        .iter()
        .filter(|s| leaf_is(&profile, s, "inner_site"))
    {
        let thread = str_label(sample, "thread");
        assert!(
            matches!(thread, Some("nested_scopes_m" | "main")),
            "{sample:?}"
        );
    }
    drop((outer, inner, after, none));
}

#[test]
fn threads_keep_their_own_labels() {
    let _rate = RATE.lock().unwrap_or_else(|p| p.into_inner());
    heapprof::set_sample_rate(1);
    let kept: Vec<Vec<Vec<u8>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (1..=4)
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("labels-w{i}"))
                    .spawn_scoped(scope, move || {
                        let id = i.to_string();
                        heapprof::with_labels(&[("worker", &id)], || worker_site(i * 10, 512))
                    })
                    .unwrap()
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let profile = heapprof::heap_profile_data().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    for i in 1..=4usize {
        let id = i.to_string();
        let name = format!("labels-w{i}");
        let labels = [("worker", Some(&id[..])), ("thread", Some(&name[..]))];
        let blocks: i64 = profile
            .samples
            .iter()
            .filter(|s| leaf_is(&profile, s, "worker_site"))
            .filter(|s| labels.iter().all(|&(k, v)| str_label(s, k) == v))
            .filter(|s| common::object_size(s) == Some(512))
            .map(|s| s.values[3])
            .sum();
        assert_eq!(blocks, (i * 10 * 512) as i64, "worker {i}");
    }
    drop(kept);
}

/// A future that allocates, yields once, and allocates again.
struct TwoSteps {
    first: Option<Vec<Vec<u8>>>,
}

impl Future for TwoSteps {
    type Output = (Vec<Vec<u8>>, Vec<Vec<u8>>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.first.take() {
            None => {
                self.first = Some(task_site(3, 2048));
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(first) => Poll::Ready((first, task_site(5, 2048))),
        }
    }
}

/// The smallest executor that moves a task between threads: polls it once
/// on a thread named `first`, then to completion on one named `second`.
fn poll_on_two_threads<F: Future + Send + 'static>(mut task: Pin<Box<F>>) -> F::Output
where
    F::Output: Send,
{
    let poll = move |mut task: Pin<Box<F>>| {
        let mut cx = Context::from_waker(Waker::noop());
        match task.as_mut().poll(&mut cx) {
            Poll::Ready(out) => Err(out),
            Poll::Pending => Ok(task),
        }
    };
    let spawn = |name: &str, task: Pin<Box<F>>| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || poll(task))
            .unwrap()
            .join()
            .unwrap()
    };
    task = spawn("poll-first", task)
        .ok()
        .expect("pending after one poll");
    match spawn("poll-second", task) {
        Err(out) => out,
        Ok(_) => panic!("still pending"),
    }
}

#[test]
fn a_labeled_future_keeps_its_labels_on_every_thread_that_polls_it() {
    let _rate = RATE.lock().unwrap_or_else(|p| p.into_inner());
    heapprof::set_sample_rate(1);
    let task = Box::pin(heapprof::labeled(
        &[("tenant", "acme"), ("endpoint", "/users")],
        TwoSteps { first: None },
    ));
    // Entered inside an outer scope of the caller: the future's labels
    // are its own, wherever it runs.
    let (first, second) =
        heapprof::with_labels(&[("endpoint", "/outer")], || poll_on_two_threads(task));
    let profile = heapprof::heap_profile_data().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    let on = |thread: &str| {
        let labels = [
            ("tenant", Some("acme")),
            ("endpoint", Some("/users")),
            ("thread", Some(thread)),
        ];
        profile
            .samples
            .iter()
            .filter(|s| leaf_is(&profile, s, "task_site"))
            .filter(|s| labels.iter().all(|&(k, v)| str_label(s, k) == v))
            .filter(|s| common::object_size(s) == Some(2048))
            .map(|s| s.values[3])
            .sum::<i64>()
    };
    assert_eq!(on("poll-first"), 3 * 2048);
    assert_eq!(on("poll-second"), 5 * 2048);
    assert_eq!(
        totals(&profile, "task_site", &[("tenant", None)]),
        [0; 4],
        "every allocation of the task is labelled"
    );
    drop((first, second));
}

#[test]
fn freed_under_other_labels_the_in_use_stays_with_the_allocating_labels() {
    let _rate = RATE.lock().unwrap_or_else(|p| p.into_inner());
    heapprof::set_sample_rate(1);
    let mut blocks = heapprof::with_labels(&[("endpoint", "/alloc")], || handed_site(40, 700));
    let kept = blocks.split_off(10);
    // Thirty stay; ten are freed on another thread, in another scope.
    std::thread::spawn(move || heapprof::with_labels(&[("endpoint", "/free")], || drop(blocks)))
        .join()
        .unwrap();
    let profile = heapprof::heap_profile_data().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    let of = |endpoint| {
        profile
            .samples
            .iter()
            .filter(|s| leaf_is(&profile, s, "handed_site"))
            .filter(|s| str_label(s, "endpoint") == endpoint)
            .filter(|s| common::object_size(s) == Some(700))
            .fold([0; 4], |mut t, s| {
                for (t, v) in t.iter_mut().zip(&s.values) {
                    *t += v;
                }
                t
            })
    };
    assert_eq!(of(Some("/alloc")), [40, 40 * 700, 30, 30 * 700]);
    assert_eq!(of(Some("/free")), [0; 4]);
    drop(kept);
}

#[test]
fn go_tool_pprof_tags_and_tagfocus_show_the_same_figures() {
    let _rate = RATE.lock().unwrap_or_else(|p| p.into_inner());
    heapprof::set_sample_rate(1);
    let users = heapprof::with_labels(&[("endpoint", "/users")], || users_site(64, 4096));
    let admin = heapprof::with_labels(&[("endpoint", "/admin")], || admin_site(16, 8192));
    let dir = scratch_dir("labels");
    let path = dir.join("labels.pb.gz");
    heapprof::write_heap_profile(&path).unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    let profile = Profile::decode(&std::fs::read(&path).unwrap()).unwrap();
    let path = path.to_str().unwrap();

    let decoded = |site, endpoint| totals(&profile, site, &[("endpoint", Some(endpoint))])[3];
    let users_bytes = decoded("users_site", "/users");
    let admin_bytes = decoded("admin_site", "/admin");
    assert!(users_bytes >= 64 * 4096 && admin_bytes >= 16 * 8192);

    // The blocks' leaf is `vec!`'s closure in a debug build: the site's
    // cumulative figure is theirs and the Vec's.
    let top = go_pprof_ok(&[
        "-tagfocus=endpoint=/users",
        "-top",
        "-nodefraction=0",
        "-unit=B",
        "-sample_index=inuse_space",
        path,
    ]);
    assert_eq!(
        top_row(&top, "users_site").map(|r| r.1),
        Some(users_bytes),
        "{top}"
    );
    assert!(top_row(&top, "admin_site").is_none(), "{top}");
    let top = go_pprof_ok(&[
        "-tagignore=endpoint=/users",
        "-top",
        "-nodefraction=0",
        "-unit=B",
        "-sample_index=inuse_space",
        path,
    ]);
    assert!(top_row(&top, "users_site").is_none(), "{top}");
    assert_eq!(
        top_row(&top, "admin_site").map(|r| r.1),
        Some(admin_bytes),
        "{top}"
    );

    // -tagroot makes the endpoint a frame at the root of each stack.
    let top = go_pprof_ok(&[
        "-tagroot=endpoint",
        "-top",
        "-cum",
        "-nodefraction=0",
        "-unit=B",
        "-sample_index=inuse_space",
        path,
    ]);
    assert_eq!(
        top_row(&top, "/users").map(|r| r.1),
        Some(users_bytes),
        "{top}"
    );
    assert_eq!(
        top_row(&top, "/admin").map(|r| r.1),
        Some(admin_bytes),
        "{top}"
    );

    // -tags lists every key with each value's share; focused on the two
    // sites, the endpoint values are theirs, in the same bytes.
    let tags = go_pprof_ok(&[
        "-tags",
        "-focus=users_site|admin_site",
        "-unit=B",
        "-sample_index=inuse_space",
        path,
    ]);
    let line = |value: &str| {
        tags.lines()
            .find(|l| l.trim_end().ends_with(value) && l.contains('%'))
            .unwrap_or_else(|| panic!("no {value} in -tags:\n{tags}"))
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches('B')
            .parse::<f64>()
            .unwrap() as i64
    };
    assert!(tags.contains("endpoint: Total"), "{tags}");
    assert_eq!(line("/users"), users_bytes, "{tags}");
    assert_eq!(line("/admin"), admin_bytes, "{tags}");
    assert!(tags.contains("thread: Total"), "{tags}");
    drop((users, admin));
}

#[test]
fn thread_labels_can_be_turned_off() {
    let _rate = RATE.lock().unwrap_or_else(|p| p.into_inner());
    let off: heapprof::Config = "thread_labels=0".parse().unwrap();
    assert_eq!(off, heapprof::Config::new().thread_labels(false));
    assert_eq!(off.to_string(), "thread_labels=0");
    off.start().unwrap();
    heapprof::set_sample_rate(1);
    let unlabelled = heapprof::with_labels(&[("endpoint", "/off")], || users_site(3, 5000));
    heapprof::Config::new().thread_labels(true).start().unwrap();
    let labelled = heapprof::with_labels(&[("endpoint", "/on")], || users_site(4, 5000));
    let profile = heapprof::heap_profile_data().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    let with = |endpoint, thread: bool| {
        profile
            .samples
            .iter()
            .filter(|s| leaf_is(&profile, s, "users_site"))
            .filter(|s| str_label(s, "endpoint") == Some(endpoint))
            .filter(|s| str_label(s, "thread").is_some() == thread)
            .filter(|s| common::object_size(s) == Some(5000))
            .map(|s| s.values[3])
            .sum::<i64>()
    };
    assert_eq!((with("/off", false), with("/off", true)), (3 * 5000, 0));
    assert_eq!((with("/on", true), with("/on", false)), (4 * 5000, 0));
    drop((unlabelled, labelled));
}
