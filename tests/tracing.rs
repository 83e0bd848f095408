//! `heapprof::tracing::LabelLayer`, exactly at rate 1: allocations inside a
//! span carry its name and the fields asked for, nested spans and
//! `with_labels` scopes merge (the inner wins), and an instrumented future
//! keeps its span's labels on every thread that polls it.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use common::str_label;
use heapprof::pprof::Profile;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// In-use bytes of the blocks of `size` bytes whose labels include every
/// pair (a value of `None`: the key is absent).
fn in_use(profile: &Profile, size: i64, labels: &[(&str, Option<&str>)]) -> i64 {
    profile
        .samples
        .iter()
        .filter(|s| common::object_size(s) == Some(size))
        .filter(|s| labels.iter().all(|&(k, v)| str_label(s, k) == v))
        .map(|s| s.values[3])
        .sum()
}

#[inline(never)]
fn blocks(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![0u8; size]).collect()
}

/// Yields once, then allocates.
struct YieldThenAllocate(bool);

impl Future for YieldThenAllocate {
    type Output = Vec<Vec<u8>>;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        if self.0 {
            return Poll::Ready(blocks(6, 1512));
        }
        self.0 = true;
        Poll::Pending
    }
}

#[test]
fn spans_label_the_allocations_inside_them() {
    let layer = heapprof::tracing::LabelLayer::new().fields(&["tenant", "attempt"]);
    let subscriber = tracing_subscriber::registry().with(layer);
    // One global subscriber: the future is polled on other threads.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    heapprof::set_sample_rate(1);

    let outer = tracing::info_span!("request", tenant = "acme", ignored = 5);
    let (a, b, c) = outer.in_scope(|| {
        let a = blocks(3, 1112);
        let b = tracing::info_span!("retry", attempt = 2, tenant = "other")
            .in_scope(|| heapprof::with_labels(&[("endpoint", "/users")], || blocks(4, 1212)));
        (a, b, blocks(5, 1312))
    });
    let outside = blocks(2, 1412);

    let mut task = Box::pin(
        YieldThenAllocate(false).instrument(tracing::info_span!("task", tenant = "initech")),
    );
    type Task = Pin<Box<tracing::instrument::Instrumented<YieldThenAllocate>>>;
    let poll = |mut task: Task| {
        std::thread::spawn(move || {
            let out = task.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            (task, out)
        })
        .join()
        .unwrap()
    };
    let (next, first) = poll(task);
    assert!(first.is_pending());
    task = next;
    let (_, Poll::Ready(d)) = poll(task) else {
        panic!("pending twice")
    };

    let profile = heapprof::heap_profile_data().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    let request = [
        ("span", Some("request")),
        ("tenant", Some("acme")),
        ("ignored", None),
    ];
    assert_eq!(in_use(&profile, 1112, &request), 3 * 1112);
    assert_eq!(
        in_use(&profile, 1312, &request),
        5 * 1312,
        "after the inner span"
    );
    let retry = [
        ("span", Some("retry")),
        ("tenant", Some("other")),
        ("attempt", Some("2")),
        ("endpoint", Some("/users")),
    ];
    assert_eq!(in_use(&profile, 1212, &retry), 4 * 1212);
    assert_eq!(in_use(&profile, 1412, &[("span", None)]), 2 * 1412);
    let task_labels = [("span", Some("task")), ("tenant", Some("initech"))];
    assert_eq!(in_use(&profile, 1512, &task_labels), 6 * 1512);
    drop((a, b, c, outside, d));
}
