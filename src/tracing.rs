//! Labels from `tracing` spans (feature `tracing`): [`LabelLayer`], a
//! `tracing-subscriber` layer under which the allocations sampled inside a
//! span carry its name (`span`) and the fields asked for.

use std::sync::Arc;

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::core::labels::{self, Pairs};

/// A layer that labels the allocations made inside each span with the
/// span's name, as `span`, and the span's fields named in
/// [`fields`](LabelLayer::fields), under their own names.
///
/// Entering a span pushes a frame onto the thread's label stack, as
/// [`crate::with_labels`] does, and exiting pops it, so spans nest with
/// `with_labels` and [`crate::labeled`] scopes (an inner key wins: the
/// innermost span's name is the `span` label). The labels are copied
/// once per span, when it is created (and when a named field is recorded
/// later); entering and exiting copy nothing and never allocate. An
/// instrumented future gets its span's labels on every poll, as tracing
/// enters the span around each.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
///
/// #[global_allocator]
/// static ALLOC: heapprof::Profiler = heapprof::Profiler::system();
///
/// let subscriber = tracing_subscriber::registry()
///     .with(heapprof::tracing::LabelLayer::new().fields(&["tenant"]));
/// tracing::subscriber::with_default(subscriber, || {
///     heapprof::set_sample_rate(1);
///     let kept = tracing::info_span!("request", tenant = "acme").in_scope(|| vec![0u8; 4096]);
///     let profile = heapprof::heap_profile_data().unwrap();
///     heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
///     assert!(profile.samples.iter().any(|s| s.values[3] >= 4096
///         && s.labels.iter().any(|l| l.key == "span")
///         && s.labels.iter().any(|l| l.key == "tenant")));
///     drop(kept);
/// });
/// ```
#[derive(Clone, Debug, Default)]
pub struct LabelLayer {
    fields: Vec<String>,
}

impl LabelLayer {
    /// A layer that labels with span names only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also labels with these fields of each span, where it has them
    /// (strings as they are, other values in their `Debug` form).
    pub fn fields(mut self, names: &[&str]) -> Self {
        self.fields.extend(names.iter().map(|&n| n.to_owned()));
        self
    }
}

/// A span's labels, in its extensions: shared with the frames of the
/// threads it is entered on, so that a frame never outlives them, even if
/// the span closes with a frame left behind (an `Entered` guard forgotten).
struct SpanLabels(Arc<[(Box<str>, Box<str>)]>);

struct FieldVisitor<'a> {
    wanted: &'a [String],
    pairs: &'a mut Vec<(Box<str>, Box<str>)>,
}

impl FieldVisitor<'_> {
    fn put(&mut self, field: &Field, value: Box<str>) {
        if !self.wanted.iter().any(|w| w == field.name()) {
            return;
        }
        match self.pairs.iter_mut().find(|(k, _)| &**k == field.name()) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((field.name().into(), value)),
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.wanted.iter().any(|w| w == field.name()) {
            self.put(field, format!("{value:?}").into());
        }
    }
}

impl<S> Layer<S> for LabelLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut pairs = vec![("span".into(), attrs.metadata().name().into())];
        attrs.record(&mut FieldVisitor {
            wanted: &self.fields,
            pairs: &mut pairs,
        });
        span.extensions_mut().insert(SpanLabels(pairs.into()));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if self.fields.is_empty() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(labels) = extensions.get_mut::<SpanLabels>() else {
            return;
        };
        let mut pairs = labels.0.to_vec();
        values.record(&mut FieldVisitor {
            wanted: &self.fields,
            pairs: &mut pairs,
        });
        // Frames already pushed keep the labels they were pushed with.
        labels.0 = pairs.into();
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let extensions = span.extensions();
        let Some(labels) = extensions.get::<SpanLabels>() else {
            return;
        };
        let pairs = Arc::into_raw(Arc::clone(&labels.0));
        if !labels::push(Pairs::Owned(pairs), id.into_u64()) {
            // Too deep to be kept: the frame never reads its pairs.
            // SAFETY: `pairs` came from `Arc::into_raw` just above.
            drop(unsafe { Arc::from_raw(pairs) });
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        if let Some(Pairs::Owned(pairs)) = labels::remove(id.into_u64()) {
            // SAFETY: a frame of this span's id was pushed by `on_enter` on
            // this thread, with a pointer from `Arc::into_raw`; removing it
            // from the stack hands that reference back, once.
            drop(unsafe { Arc::from_raw(pairs) });
        }
    }
}
