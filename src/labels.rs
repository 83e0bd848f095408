//! Labels on heap samples, from code: [`with_labels`] for a closure on this
//! thread, [`labeled`] for a future wherever it is polled.
//!
//! Each sampled allocation is recorded under the labels current on its
//! thread when it was made (merged from every scope entered, outermost
//! first, an inner key replacing an outer one, and the `thread` label), and
//! keeps them for life: its in-use bytes stay with those labels whichever
//! thread or task frees it. Profiles carry them as pprof string labels, so
//! `go tool pprof -tags`, `-tagfocus=endpoint=/users`, `-tagignore` and
//! `-tagroot=endpoint` work on them.
//!
//! Entering a scope costs a few nanoseconds (a thread-local push and pop of
//! a pointer to the caller's pairs): it never locks and never allocates.
//! The pairs are read, merged, cut and interned only when an allocation in
//! the scope is sampled, under the lock the sample takes anyway, and the
//! result is cached for the scope's next samples. Bounds (past them samples
//! are still recorded): 32 nested scopes per thread (deeper ones' labels
//! are not seen), 16 labels per set, keys and values cut at 256 bytes,
//! 4096 label sets and 4 MiB of their strings (past them samples go to one
//! `labels=[other labels]` set, and the profile says how many in a comment).

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::core::labels::{self, Pairs};

/// A pushed frame of labels, popped when dropped (on unwinding too). Not
/// `Send`: a frame belongs to the thread whose stack it is on.
struct Scope<'a> {
    _borrow: PhantomData<&'a ()>,
    _not_send: PhantomData<*const ()>,
}

impl<'a> Scope<'a> {
    fn borrowed(pairs: &'a [(&'a str, &'a str)]) -> Self {
        // The lifetime is erased: the frame is popped (by `drop`) before
        // the borrow ends, and only read while it is on the stack.
        let erased = std::ptr::slice_from_raw_parts(
            pairs.as_ptr().cast::<(&'static str, &'static str)>(),
            pairs.len(),
        );
        labels::push(Pairs::Borrowed(erased), 0);
        Scope {
            _borrow: PhantomData,
            _not_send: PhantomData,
        }
    }

    fn owned(pairs: &'a [(Box<str>, Box<str>)]) -> Self {
        labels::push(Pairs::Owned(pairs), 0);
        Scope {
            _borrow: PhantomData,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        labels::pop();
    }
}

/// Runs `f` with `labels` on the allocations it samples on this thread.
///
/// Scopes nest: inside, the labels of every enclosing scope apply too, and
/// an inner key replaces an outer one. Entering costs a few nanoseconds and
/// never locks or allocates; `labels` are copied only when an allocation in
/// the scope is sampled. Each sampled block keeps the labels of its
/// allocation for its whole life, whoever frees it.
///
/// ```
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// heapprof::set_sample_rate(1); // record every allocation, for the example
/// let kept = heapprof::with_labels(&[("endpoint", "/users")], || {
///     heapprof::with_labels(&[("tenant", "acme")], || vec![0u8; 4096])
/// });
/// let profile = heapprof::heap_profile_data().unwrap();
/// let labelled = profile.samples.iter().any(|s| {
///     let has = |key: &str, value: &str| {
///         s.labels.iter().any(|l| {
///             l.key == key && l.value == heapprof::pprof::LabelValue::Str(value.to_owned())
///         })
///     };
///     has("endpoint", "/users") && has("tenant", "acme") && s.values[3] >= 4096
/// });
/// assert!(labelled);
/// # heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
/// # drop(kept);
/// ```
pub fn with_labels<R>(labels: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    let _scope = Scope::borrowed(labels);
    f()
}

/// Wraps `future` so that `labels` apply to the allocations it samples,
/// on whichever thread it is polled: they are set around every poll, as
/// [`with_labels`] sets them around a closure (inside any scope the poll
/// runs in; the future's keys win). The labels are copied once, here.
///
/// ```
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// use std::future::Future;
/// use std::task::{Context, Poll, Waker};
///
/// heapprof::set_sample_rate(1);
/// let mut task = Box::pin(heapprof::labeled(&[("tenant", "acme")], async {
///     vec![1u8; 8192]
/// }));
/// // Any executor will do; this one polls once, here.
/// let Poll::Ready(kept) = task.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
///     unreachable!()
/// };
/// let profile = heapprof::heap_profile_data().unwrap();
/// assert!(profile.samples.iter().any(|s| s.values[3] >= 8192
///     && s.labels.iter().any(|l| l.key == "tenant")));
/// # heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
/// # drop(kept);
/// ```
pub fn labeled<F: IntoFuture>(labels: &[(&str, &str)], future: F) -> Labeled<F::IntoFuture> {
    Labeled {
        labels: labels
            .iter()
            .map(|&(key, value)| (Box::from(key), Box::from(value)))
            .collect(),
        future: future.into_future(),
    }
}

/// The future [`labeled`] returns: the wrapped future's output, its
/// allocations labelled.
#[must_use = "futures do nothing unless polled"]
pub struct Labeled<F> {
    labels: Box<[(Box<str>, Box<str>)]>,
    future: F,
}

impl<F> Labeled<F> {
    /// The labels set around each poll.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels.iter().map(|(k, v)| (&k[..], &v[..]))
    }

    /// The wrapped future.
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Labeled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is pinned structurally: it is never moved out of
        // a pinned `Labeled` (`into_inner` takes it unpinned), and `Labeled`
        // has no `Drop` impl; `labels` is not pinned and only read.
        let this = unsafe { self.get_unchecked_mut() };
        let _scope = Scope::owned(&this.labels);
        // SAFETY: as above.
        unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx)
    }
}

impl<F: std::fmt::Debug> std::fmt::Debug for Labeled<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Labeled")
            .field("labels", &self.labels)
            .field("future", &self.future)
            .finish()
    }
}
