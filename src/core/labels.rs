//! Labels on heap samples: the per-thread stack of label scopes, and the
//! bounded table that interns label sets.
//!
//! Entering a scope ([`crate::with_labels`], a poll of [`crate::labeled`],
//! a `tracing` span) pushes a frame onto this thread's stack and leaving it
//! pops the frame. A frame holds a pointer to the scope's own `(key, value)`
//! pairs, which outlive it, and the id of the label set it last resolved to:
//! nothing is copied, hashed or locked, and nothing is ever allocated, since
//! the stack is a fixed array in a const thread-local of its own, apart from
//! the allocation path's state in [`super::thread`] (whose layout, and so the
//! fast path, labels leave untouched).
//!
//! Only a sampled allocation reads the stack, holding the reentrancy guard
//! and the sample table's lock, which owns the [`LabelSets`]: it merges the
//! frames (outer to inner, an inner key replacing an outer one), adds the
//! thread's name, cuts long keys and values, and interns the result, then
//! caches the set's id in the top frame, so that later samples in the same
//! scope only read that id. The set's id joins the bucket's key, so a block
//! keeps the labels of its allocation for life, whichever thread frees it.
//!
//! Bounds, all documented in the README:
//! * [`MAX_DEPTH`] frames per thread: scopes nested deeper are entered and
//!   left as usual, but their labels are not seen (the outer ones are).
//! * [`MAX_LABELS`] labels per set: keys past them are dropped.
//! * [`MAX_LEN`] bytes per key and per value, cut at a character boundary.
//! * [`MAX_LABEL_SETS`] sets and [`MAX_LABEL_BYTES`] bytes of interned
//!   strings: past either, samples go to one `labels=[other labels]` set
//!   and the profile says how many did.
//!
//! Nothing here panics; the scope functions never lock or allocate, and the
//! interning allocates only through `try_reserve`, under the guard.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use rustc_hash::{FxBuildHasher, FxHasher};

/// Frames of label scopes a thread keeps.
pub(crate) const MAX_DEPTH: usize = 32;
/// Labels in one set, the thread's included.
pub(crate) const MAX_LABELS: usize = 16;
/// Longest key or value kept, in bytes.
pub(crate) const MAX_LEN: usize = 256;
/// Label sets the table interns, the two fixed ones included.
pub(crate) const MAX_LABEL_SETS: usize = 4096;
/// Bytes of interned keys and values in all.
pub(crate) const MAX_LABEL_BYTES: usize = 4 << 20;

/// The set of a sample without labels.
pub(crate) const NO_LABELS: u32 = 0;
/// The set of the samples whose own set found no room.
pub(crate) const OTHER_LABELS: u32 = 1;
/// The label of [`OTHER_LABELS`].
pub(crate) const OTHER_KEY: &str = "labels";
/// Its value.
pub(crate) const OTHER_VALUE: &str = "[other labels]";
/// The key of the thread's name.
pub(crate) const THREAD_KEY: &str = "thread";

/// Whether samples carry the thread's name (`Config::thread_labels`).
static THREAD_LABELS: AtomicBool = AtomicBool::new(true);
/// Bumped when what a set is made of changes (the thread label turned on or
/// off): cached ids of an older epoch are stale.
static EPOCH: AtomicU32 = AtomicU32::new(1);

/// Turns the `thread` label on or off, for samples taken from now on.
pub(crate) fn set_thread_labels(on: bool) {
    if THREAD_LABELS.swap(on, Relaxed) != on {
        EPOCH.fetch_add(1, Relaxed);
    }
}

/// Whether samples carry the `thread` label.
pub(crate) fn thread_labels() -> bool {
    THREAD_LABELS.load(Relaxed)
}

/// A scope's pairs, which outlive its frame.
#[derive(Clone, Copy)]
pub(crate) enum Pairs {
    /// Borrowed by `with_labels` for the closure's run (the lifetime is
    /// erased: the frame is popped before the borrow ends).
    Borrowed(*const [(&'static str, &'static str)]),
    /// Owned by a future or a span, which outlives the frame.
    Owned(*const [(Box<str>, Box<str>)]),
}

impl Pairs {
    /// Calls `f` on each pair.
    ///
    /// # Safety
    ///
    /// The pairs must still be alive: the frame holding them is on the stack.
    unsafe fn for_each<'a>(self, mut f: impl FnMut(&'a str, &'a str)) {
        match self {
            // SAFETY: the caller's: the scope that pushed the frame is alive.
            Pairs::Borrowed(pairs) => unsafe { &*pairs }.iter().for_each(|(k, v)| f(k, v)),
            // SAFETY: as above.
            Pairs::Owned(pairs) => unsafe { &*pairs }.iter().for_each(|(k, v)| f(k, v)),
        }
    }
}

#[derive(Clone, Copy)]
struct Frame {
    pairs: Pairs,
    /// Who pushed it, for removal out of order (a `tracing` span's id), or 0.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    owner: u64,
    /// `epoch << 32 | set id` of the set the stack up to this frame resolved
    /// to; 0 before the first sample in the scope.
    cached: u64,
}

const EMPTY_FRAME: Frame = Frame {
    pairs: Pairs::Borrowed(&[]),
    owner: 0,
    cached: 0,
};

/// Bytes of a thread's OS name, and a marker for "not read yet".
const NAME_LEN: usize = 16;
const NAME_UNREAD: u8 = u8::MAX;

struct LabelStack {
    frames: [Cell<Frame>; MAX_DEPTH],
    /// Scopes entered and not left; may exceed [`MAX_DEPTH`].
    depth: Cell<usize>,
    /// The cached set of the thread's own labels, with no scope entered.
    base: Cell<u64>,
    /// The thread's name as the OS has it, `name_len` bytes.
    name: Cell<[u8; NAME_LEN]>,
    name_len: Cell<u8>,
}

thread_local! {
    static STACK: LabelStack = const {
        LabelStack {
            frames: [const { Cell::new(EMPTY_FRAME) }; MAX_DEPTH],
            depth: Cell::new(0),
            base: Cell::new(0),
            name: Cell::new([0; NAME_LEN]),
            name_len: Cell::new(NAME_UNREAD),
        }
    };
}

// Like the allocation path's, this state must never need a destructor: it is
// read by samples taken while the thread's other thread-locals are torn down.
const _: () = assert!(!std::mem::needs_drop::<LabelStack>());

/// Pushes a frame of `pairs`; false if it is past [`MAX_DEPTH`], and so
/// not kept (the pairs are never read). Never locks, allocates or panics.
#[inline]
pub(crate) fn push(pairs: Pairs, owner: u64) -> bool {
    STACK.with(|stack| {
        let depth = stack.depth.get();
        let kept = match stack.frames.get(depth) {
            Some(slot) => {
                slot.set(Frame {
                    pairs,
                    owner,
                    cached: 0,
                });
                true
            }
            None => false,
        };
        stack.depth.set(depth + 1);
        kept
    })
}

/// Pops the top frame.
#[inline]
pub(crate) fn pop() {
    STACK.with(|stack| stack.depth.set(stack.depth.get().saturating_sub(1)));
}

/// Removes the topmost frame pushed by `owner`, wherever it is, and returns
/// its pairs; `None` if there is none kept: then, if scopes past
/// [`MAX_DEPTH`] are open, one of them is taken to be it. Frames above it
/// move down and forget their sets.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn remove(owner: u64) -> Option<Pairs> {
    STACK.with(|stack| {
        let depth = stack.depth.get();
        let kept = depth.min(MAX_DEPTH);
        let Some(at) = (0..kept)
            .rev()
            .find(|&i| stack.frames[i].get().owner == owner)
        else {
            if depth > MAX_DEPTH {
                stack.depth.set(depth - 1);
            }
            return None;
        };
        let pairs = stack.frames[at].get().pairs;
        for i in at..kept - 1 {
            let mut frame = stack.frames[i + 1].get();
            frame.cached = 0;
            stack.frames[i].set(frame);
        }
        if depth > MAX_DEPTH {
            // The frame past the array that moves into it was never kept:
            // leave a frame without labels in its place.
            stack.frames[MAX_DEPTH - 1].set(EMPTY_FRAME);
        }
        stack.depth.set(depth - 1);
        Some(pairs)
    })
}

/// A label set: its pairs, sorted by key.
pub(crate) type LabelSet = Vec<(String, String)>;

/// Keys are hashes with nothing to defend against; FxHash never allocates.
type Fast = FxBuildHasher;

/// The interned label sets, owned by the sample table.
pub(crate) struct LabelSets {
    /// Sets from id 2 on (0 and 1 are fixed).
    sets: Vec<LabelSet>,
    /// Set hash -> ids with that hash.
    index: HashMap<u64, Vec<u32>, Fast>,
    bytes: usize,
    /// Samples recorded under [`OTHER_LABELS`].
    pub(crate) other_samples: u64,
    /// The OS name of the process's main thread, which threads started
    /// without a name inherit: such threads get no `thread` label.
    inherited_name: Option<([u8; NAME_LEN], u8)>,
}

impl LabelSets {
    pub(crate) const fn new() -> Self {
        LabelSets {
            sets: Vec::new(),
            index: HashMap::with_hasher(FxBuildHasher),
            bytes: 0,
            other_samples: 0,
            inherited_name: None,
        }
    }

    /// Copies every set out, indexed by id; errors only if memory is short.
    pub(crate) fn copy(&self) -> Result<Vec<LabelSet>, std::collections::TryReserveError> {
        let mut copy = Vec::new();
        copy.try_reserve_exact(self.sets.len() + 2)?;
        copy.push(Vec::new());
        copy.push(vec![(OTHER_KEY.to_owned(), OTHER_VALUE.to_owned())]);
        copy.extend(self.sets.iter().cloned());
        Ok(copy)
    }

    /// The id of `pairs` (sorted by key, already cut), interned if new;
    /// [`OTHER_LABELS`] when a bound or memory is reached.
    fn intern(&mut self, pairs: &[(&str, &str)]) -> u32 {
        if pairs.is_empty() {
            return NO_LABELS;
        }
        let mut hasher = FxHasher::default();
        for (key, value) in pairs {
            hasher.write(key.as_bytes());
            hasher.write_u8(0xff);
            hasher.write(value.as_bytes());
            hasher.write_u8(0xff);
        }
        let hash = hasher.finish();
        if let Some(candidates) = self.index.get(&hash) {
            for &id in candidates {
                let set = &self.sets[id as usize - 2];
                if set.len() == pairs.len()
                    && set
                        .iter()
                        .zip(pairs)
                        .all(|((k, v), (pk, pv))| k == pk && v == pv)
                {
                    return id;
                }
            }
        }
        let bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        if self.sets.len() + 2 >= MAX_LABEL_SETS || self.bytes + bytes > MAX_LABEL_BYTES {
            return OTHER_LABELS;
        }
        self.try_insert(hash, pairs, bytes).unwrap_or(OTHER_LABELS)
    }

    fn try_insert(&mut self, hash: u64, pairs: &[(&str, &str)], bytes: usize) -> Option<u32> {
        let copy_of = |s: &str| {
            let mut owned = String::new();
            owned.try_reserve_exact(s.len()).ok()?;
            owned.push_str(s);
            Some(owned)
        };
        let mut set = Vec::new();
        set.try_reserve_exact(pairs.len()).ok()?;
        for (key, value) in pairs {
            set.push((copy_of(key)?, copy_of(value)?));
        }
        self.sets.try_reserve(1).ok()?;
        self.index.try_reserve(1).ok()?;
        let id = self.sets.len() as u32 + 2;
        let candidates = self.index.entry(hash).or_default();
        candidates.try_reserve(1).ok()?;
        candidates.push(id);
        self.sets.push(set);
        self.bytes += bytes;
        Some(id)
    }
}

/// `s` cut to at most [`MAX_LEN`] bytes, at a character boundary.
pub(crate) fn cut(s: &str) -> &str {
    if s.len() <= MAX_LEN {
        return s;
    }
    let mut end = MAX_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The label set of an allocation sampled now on this thread: the cached id
/// of the innermost scope, or the merged and interned labels of every scope
/// and the thread. Called with the reentrancy guard and the table's lock
/// held (`sets` is the table's).
pub(crate) fn current(sets: &mut LabelSets) -> u32 {
    STACK.with(|stack| {
        let epoch = u64::from(EPOCH.load(Relaxed));
        let depth = stack.depth.get().min(MAX_DEPTH);
        let cached = match depth {
            0 => stack.base.get(),
            top => stack.frames[top - 1].get().cached,
        };
        if cached >> 32 == epoch {
            return cached as u32;
        }
        let id = resolve(stack, depth, sets);
        let cached = epoch << 32 | u64::from(id);
        match depth {
            0 => stack.base.set(cached),
            top => {
                let mut frame = stack.frames[top - 1].get();
                frame.cached = cached;
                stack.frames[top - 1].set(frame);
            }
        }
        id
    })
}

/// Merges the thread's label and the first `depth` frames and interns them.
fn resolve(stack: &LabelStack, depth: usize, sets: &mut LabelSets) -> u32 {
    let name_len = if thread_labels() {
        thread_name(stack, sets)
    } else {
        None
    };
    let name_bytes = stack.name.get();
    let name = name_len.and_then(|len| std::str::from_utf8(&name_bytes[..len]).ok());
    let mut merged = Merged {
        pairs: [("", ""); MAX_LABELS],
        count: 0,
    };
    if let Some(name) = name {
        merged.put(THREAD_KEY, name);
    }
    for frame in &stack.frames[..depth] {
        // SAFETY: the frame is on the stack, so its scope and pairs are
        // alive, for this whole call.
        unsafe { frame.get().pairs.for_each(|k, v| merged.put(k, v)) };
    }
    let pairs = &mut merged.pairs[..merged.count];
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    sets.intern(pairs)
}

/// Labels merged from the outermost scope in: an inner key replaces an
/// outer one, keys past [`MAX_LABELS`] are dropped, all are cut.
struct Merged<'a> {
    pairs: [(&'a str, &'a str); MAX_LABELS],
    count: usize,
}

impl<'a> Merged<'a> {
    fn put(&mut self, key: &'a str, value: &'a str) {
        let (key, value) = (cut(key), cut(value));
        if let Some(pair) = self.pairs[..self.count].iter_mut().find(|(k, _)| *k == key) {
            pair.1 = value;
        } else if self.count < MAX_LABELS {
            self.pairs[self.count] = (key, value);
            self.count += 1;
        }
    }
}

/// The length of this thread's OS name, read once per thread; `None` when
/// it has none of its own (it is the name it inherited from the main
/// thread) or it cannot be read.
fn thread_name(stack: &LabelStack, sets: &mut LabelSets) -> Option<usize> {
    if stack.name_len.get() == NAME_UNREAD {
        let (name, len) = read_thread_name(sets).unwrap_or(([0; NAME_LEN], 0));
        stack.name.set(name);
        stack.name_len.set(len);
    }
    match stack.name_len.get() {
        0 => None,
        len => Some(len as usize),
    }
}

fn read_thread_name(sets: &mut LabelSets) -> Option<([u8; NAME_LEN], u8)> {
    if crate::sys::is_main_thread() {
        let mut name = [0; NAME_LEN];
        name[..4].copy_from_slice(b"main");
        return Some((name, 4));
    }
    let own = crate::sys::thread_name()?;
    if sets.inherited_name.is_none() {
        sets.inherited_name = crate::sys::main_thread_name();
    }
    (sets.inherited_name != Some(own)).then_some(own)
}
