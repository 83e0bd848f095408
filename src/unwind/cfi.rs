//! Cached DWARF unwinding: each code address's unwind rule is read from the
//! `.eh_frame` of its loaded object once (with gimli), reduced to a few
//! numbers and cached, so walking a stack seen before costs a cache probe
//! and one or two stack reads per frame.
//!
//! libgcc's unwinder (behind the `backtrace` crate) finds and interprets
//! each frame's CFI program from scratch, about 150 ns a frame. The rules
//! compilers emit for x86-64 code almost all have one shape: the frame's
//! canonical frame address (CFA) is the stack or frame pointer plus a
//! constant, the return address is just below the CFA, and the caller's
//! frame pointer is saved at a constant offset from the CFA, or not touched.
//! Anything else (CFA expressions, signal frames, code outside any loaded
//! object) ends the walk with `None`, and the caller asks libgcc instead.
//!
//! The loaded objects are read with `dl_iterate_phdr` at the first walk and
//! again whenever the loader's counts of objects added and removed change,
//! which a walk checks before it reads any object's unwind data (at its
//! first cache miss), so the unwind data of a `dlclose`d object is not read
//! (unless another thread unloads it during the walk while a return address
//! on this thread's stack points into it, already a bug in the program).
//! A change also empties the caches, though a walk that misses nothing does
//! not look: after a `dlclose` and a `dlopen` of other code at the same
//! addresses, it could follow a stale rule, which reads only the stack. An
//! object's unwind data is its `PT_GNU_EH_FRAME` segment (the
//! `.eh_frame_hdr` search table) and the `.eh_frame` that table points
//! into, up to the end of the segment holding it. Every stack read is
//! checked against the thread's stack bounds first.
//!
//! Walks run inside the allocator, so nothing here panics, and what it
//! allocates (the caches, the object list) is allocated under the caller's
//! reentrancy guard, past the profiled path. Nothing here waits for a lock:
//! walks share the object list (a reader lock, taken with `try_read`; it is
//! rebuilt under `try_write`), each takes one of four rule caches with
//! `try_lock`, and a walk that finds them busy returns `None` too. That also
//! keeps a child forked while another thread held one from hanging.

use std::num::NonZeroI16;
use std::ops::Range;
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EndianSlice, LittleEndian, ParsedEhFrameHdr,
    Pointer, RegisterRule, UnwindContext, UnwindSection, X86_64,
};

use super::stack::{Registers, MAX_DEPTH, TRUNCATED};
use crate::sys::{self, LoadedObject, ProgramHeader, PF_X, PT_GNU_EH_FRAME, PT_LOAD};

type Data = EndianSlice<'static, LittleEndian>;

/// How a frame is undone, for every code address of a cache entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// The outermost frame: its return address is undefined.
    End,
    /// CFA = (frame pointer if `from_bp`, else stack pointer) + `offset`;
    /// return address at CFA - 8; the caller's frame pointer at CFA +
    /// `bp_at` (never 0: that is the caller's own frame), or the same as
    /// this frame's.
    Frame {
        offset: i32,
        bp_at: Option<NonZeroI16>,
        from_bp: bool,
    },
    /// Anything else: this walk is left to libgcc.
    Unsupported,
}

// Eight bytes: a cache entry is sixteen, a set half a cache line, and the
// 2048 sets 64 KiB.
const _: () = assert!(std::mem::size_of::<Rule>() == 8);

/// Cache sets of two entries each, chosen by a hash of the code address:
/// two hot addresses that share a set both stay (with one entry per set,
/// the code layout decided which pairs kept evicting each other, and a
/// build could lose a third of its speed at rate 1 to that).
const SETS: usize = 2048;

/// A cache set: the most recently used entry first.
type Set = [(usize, Rule); 2];

const EMPTY: Set = [(0, Rule::Unsupported); 2];

/// One walker's rule cache, and gimli's scratch space for misses.
struct Cache {
    sets: Box<[Set; SETS]>,
    context: Box<UnwindContext<usize>>,
    generation: (u64, u64),
}

impl Cache {
    /// An empty cache, built on the heap: built on the stack and moved, its
    /// 64 KiB made every walk probe that much stack.
    #[cold]
    #[inline(never)]
    fn new() -> Option<Cache> {
        Some(Cache {
            sets: vec![EMPTY; SETS].into_boxed_slice().try_into().ok()?,
            context: Box::new(UnwindContext::new()),
            generation: (0, 0), // the loader has always added objects
        })
    }
}

/// Rule caches, one per concurrent walk: a thread takes the first free one.
static CACHES: [Mutex<Option<Cache>>; 4] = [const { Mutex::new(None) }; 4];

/// The loaded objects, sorted by code address, and the loader's counts they
/// were read at.
struct Objects {
    list: Vec<Object>,
    generation: (u64, u64),
}

static OBJECTS: RwLock<Option<Objects>> = RwLock::new(None);

/// One loaded object's code range and unwind data.
struct Object {
    code: Range<usize>,
    bases: BaseAddresses,
    hdr: ParsedEhFrameHdr<Data>,
    eh_frame: EhFrame<Data>,
}

/// Walks this thread's stack from `start` (a point inside the caller, whose
/// frames must still be live), skipping the first `skip` addresses (the first
/// being `start.pc`), and writes the return addresses after them into
/// `frames`. `None` when the walk could not be done or did not reach the
/// root of the stack, or when all the rule caches are busy.
pub(super) fn walk(
    frames: &mut [usize; MAX_DEPTH],
    start: Registers,
    skip: usize,
    bounds: (usize, usize),
) -> Option<usize> {
    let mut slot = CACHES.iter().find_map(|cache| cache.try_lock().ok())?;
    walk_with(&mut slot, frames, start, skip, bounds)
}

/// [`walk`] with the rule cache in `slot`, built there at its first use.
#[inline(always)]
fn walk_with(
    slot: &mut Option<Cache>,
    frames: &mut [usize; MAX_DEPTH],
    start: Registers,
    skip: usize,
    (low, high): (usize, usize),
) -> Option<usize> {
    if slot.is_none() {
        *slot = Some(Cache::new()?);
    }
    let cache = slot.as_mut()?;
    // Taken at the first miss: a walk of cached rules reads only the stack.
    let mut objects = None;
    // Every frame a walk reads lies above where it starts: between that and
    // the top of the stack, all is mapped (the main thread's stack below it
    // may not be yet).
    let low = low.max(start.sp);
    let last_word = high.checked_sub(8)?;
    let read = |address: usize| -> Option<usize> {
        if address < low || address % 8 != 0 || address > last_word {
            return None;
        }
        // SAFETY: the word lies in this thread's stack between the walk's
        // starting point and the top: the live frames of its callers, mapped
        // and readable.
        Some(unsafe { *(address as *const usize) })
    };
    let Registers {
        pc: mut lookup,
        mut sp,
        mut bp,
    } = start;
    let mut seen = 1; // start.pc itself
    let mut depth = 0;
    loop {
        let set = set_of(lookup);
        if cache.sets[set][0].0 != lookup {
            if cache.sets[set][1].0 != lookup {
                let rule = rule_on_miss(cache, &mut objects, lookup)?;
                cache.sets[set][1] = (lookup, rule);
            }
            cache.sets[set].swap(0, 1);
        }
        let (from_bp, offset, bp_at) = match cache.sets[set][0].1 {
            Rule::End => return Some(depth),
            Rule::Unsupported => return None,
            Rule::Frame {
                from_bp,
                offset,
                bp_at,
            } => (from_bp, offset, bp_at),
        };
        let cfa = (if from_bp { bp } else { sp }).checked_add_signed(offset as isize)?;
        if cfa <= sp {
            return None; // the stack must grow towards the root
        }
        let ret = read(cfa - 8)?;
        if let Some(at) = bp_at {
            bp = read(cfa.checked_add_signed(at.get() as isize)?)?;
        }
        sp = cfa;
        if ret == 0 {
            return Some(depth);
        }
        seen += 1;
        if seen > skip {
            if depth == MAX_DEPTH {
                frames[MAX_DEPTH - 1] = TRUNCATED;
                return Some(depth);
            }
            frames[depth] = ret;
            depth += 1;
        }
        // The call instruction, not the one after it, which may belong to
        // the next function or to a different row of this one.
        lookup = ret - 1;
    }
}

/// The rule for `address`, not in `cache`: read from the object list, taken
/// into `objects` for the rest of the walk (`None` while it is busy). A
/// cache filled under an older list is emptied first.
fn rule_on_miss(
    cache: &mut Cache,
    objects: &mut Option<RwLockReadGuard<'static, Option<Objects>>>,
    address: usize,
) -> Option<Rule> {
    if objects.is_none() {
        let current = current_objects()?;
        let generation = current.as_ref()?.generation;
        if cache.generation != generation {
            cache.sets.fill(EMPTY);
            cache.generation = generation;
        }
        *objects = Some(current);
    }
    let objects = objects.as_ref()?.as_ref()?;
    Some(objects.rule_for(address, &mut cache.context))
}

/// The cache set of a code address (Fibonacci hashing).
fn set_of(address: usize) -> usize {
    (address as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as usize >> (usize::BITS - SETS.ilog2())
}

impl Objects {
    /// The rule for code address `address`, read from its object's CFI.
    fn rule_for(&self, address: usize, context: &mut UnwindContext<usize>) -> Rule {
        let index = self.list.partition_point(|o| o.code.end <= address);
        let Some(object) = self.list.get(index).filter(|o| o.code.contains(&address)) else {
            return Rule::Unsupported;
        };
        let Some(table) = object.hdr.table() else {
            return Rule::Unsupported;
        };
        let row = table.unwind_info_for_address(
            &object.eh_frame,
            &object.bases,
            context,
            address as u64,
            EhFrame::cie_from_offset,
        );
        let Ok(row) = row else {
            return Rule::Unsupported;
        };
        match row.register(X86_64::RA) {
            Some(RegisterRule::Undefined) => return Rule::End,
            Some(RegisterRule::Offset(-8)) => {}
            _ => return Rule::Unsupported,
        }
        let (from_bp, offset) = match *row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RSP => {
                (false, offset)
            }
            CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RBP => {
                (true, offset)
            }
            _ => return Rule::Unsupported,
        };
        let bp_at = match row.register(X86_64::RBP) {
            None | Some(RegisterRule::SameValue) | Some(RegisterRule::Undefined) => None,
            Some(RegisterRule::Offset(at)) => {
                match i16::try_from(at).ok().and_then(NonZeroI16::new) {
                    Some(at) => Some(at),
                    None => return Rule::Unsupported,
                }
            }
            Some(_) => return Rule::Unsupported,
        };
        match i32::try_from(offset) {
            Ok(offset) => Rule::Frame {
                offset,
                bp_at,
                from_bp,
            },
            Err(_) => Rule::Unsupported,
        }
    }
}

/// The object list, read again first if objects were loaded or unloaded
/// since. `None` while another thread reads it or walks the loader's list.
fn current_objects() -> Option<RwLockReadGuard<'static, Option<Objects>>> {
    let generation = sys::loader_generation()?;
    {
        let objects = OBJECTS.try_read().ok()?;
        if objects.as_ref().is_some_and(|o| o.generation == generation) {
            return Some(objects);
        }
    }
    *OBJECTS.try_write().ok()? = Some(read_objects(generation)?);
    OBJECTS.try_read().ok()
}

fn read_objects(generation: (u64, u64)) -> Option<Objects> {
    let mut list: Vec<Object> = Vec::new();
    let read = sys::try_for_each_object(|object| {
        list.extend(object_of(object));
        true
    });
    list.sort_by_key(|o| o.code.start);
    read.then_some(Objects { list, generation })
}

/// The code range and unwind data of a loaded object; `None` without a
/// usable `.eh_frame_hdr`.
fn object_of(object: &LoadedObject<'_>) -> Option<Object> {
    let headers = object.headers();
    let loads = || headers.iter().filter(|h| h.p_type == PT_LOAD);
    let code = loads()
        .filter(|h| h.p_flags & PF_X != 0)
        .map(|h| object.loaded(h))
        .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end))?;
    let eh_frame_hdr = |h: &&ProgramHeader| h.p_type == PT_GNU_EH_FRAME;
    let hdr_range = object.loaded(headers.iter().find(eh_frame_hdr)?);
    let hdr_bytes = object.bytes(hdr_range.clone())?;
    // SAFETY: the bytes stay mapped for as long as the object stays loaded,
    // not just during this callback, and a walk checks the loader's counts
    // before it reads any object's unwind data (see the module's docs).
    let hdr_bytes: &'static [u8] = unsafe { &*(hdr_bytes as *const [u8]) };
    let (hdr, eh_frame_start) = parse_hdr(hdr_range.start, hdr_bytes)?;
    let segment = loads()
        .map(|h| object.loaded(h))
        .find(|r| r.contains(&eh_frame_start))?;
    let eh_frame_bytes = object.bytes(eh_frame_start..segment.end)?;
    // SAFETY: as above.
    let eh_frame_bytes: &'static [u8] = unsafe { &*(eh_frame_bytes as *const [u8]) };
    let bases = BaseAddresses::default()
        .set_eh_frame_hdr(hdr_range.start as u64)
        .set_eh_frame(eh_frame_start as u64)
        .set_text(code.start as u64);
    Some(Object {
        code,
        bases,
        hdr,
        eh_frame: EhFrame::new(eh_frame_bytes, LittleEndian),
    })
}

/// The `.eh_frame_hdr` at `address`, parsed, and the address of the
/// `.eh_frame` it points to (gimli decodes its pointer encoding).
fn parse_hdr(
    address: usize,
    bytes: &[u8],
) -> Option<(ParsedEhFrameHdr<EndianSlice<'_, LittleEndian>>, usize)> {
    let bases = BaseAddresses::default().set_eh_frame_hdr(address as u64);
    let hdr = EhFrameHdr::new(bytes, LittleEndian).parse(&bases, 8).ok()?;
    match hdr.eh_frame_ptr() {
        Pointer::Direct(eh_frame) => Some((hdr, usize::try_from(eh_frame).ok()?)),
        Pointer::Indirect(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::stack::stack_bounds;
    use super::*;
    use std::hint::black_box;

    /// [`super::walk`], but waiting for a free rule cache where that gives
    /// up: the tests run beside each other and start more walks at once
    /// than there are caches, and a walk refused for that says nothing
    /// about the walk itself.
    fn walk(
        frames: &mut [usize; MAX_DEPTH],
        start: Registers,
        skip: usize,
        bounds: (usize, usize),
    ) -> Option<usize> {
        loop {
            if let Some(mut slot) = CACHES.iter().find_map(|cache| cache.try_lock().ok()) {
                return walk_with(&mut slot, frames, start, skip, bounds);
            }
            std::thread::yield_now();
        }
    }

    /// This thread's stack from the caller of `both_ways`, walked with
    /// cached CFI and with libgcc's unwinder.
    #[inline(never)]
    fn both_ways() -> (Option<Vec<usize>>, Vec<usize>) {
        let start = Registers::here();
        let mut frames = [0usize; MAX_DEPTH];
        // Skip `both_ways` itself: start at the return into its caller. A
        // walk that misses the cache gives up while another test walks the
        // loader's list: try again for a while, as a later sample would.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let walked = loop {
            let walked = walk(&mut frames, start, 1, stack_bounds());
            if walked.is_some() || std::time::Instant::now() > deadline {
                break walked.map(|n| frames[..n].to_vec());
            }
            std::thread::yield_now();
        };
        let mut reference = Vec::new();
        backtrace::trace(|frame| {
            reference.push(frame.ip() as usize);
            true
        });
        // libgcc's walk starts inside `backtrace`: keep what follows the
        // first address the two share.
        if let Some(first) = walked.as_ref().and_then(|w| w.first()) {
            if let Some(at) = reference.iter().position(|ip| ip == first) {
                reference.drain(..at);
            }
        }
        reference.retain(|&ip| ip != 0);
        (walked, reference)
    }

    /// Recursion that is not a tail call, through a closure and an iterator
    /// of the standard library.
    #[inline(never)]
    fn nested(depth: usize) -> (Option<Vec<usize>>, Vec<usize>) {
        if depth == 0 {
            return both_ways();
        }
        let result = (0..1).map(|_| black_box(nested(depth - 1))).next().unwrap();
        black_box(result)
    }

    /// Reads the object list once before a test's walks: while one thread
    /// reads it, walks on others return `None`. Waits by the clock, not by
    /// a count of yields: on a loaded machine the thread building the list
    /// may be off its core for many of them.
    fn read_objects_first() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if current_objects().is_some_and(|o| o.is_some()) {
                return;
            }
            std::thread::yield_now();
        }
        panic!("the object list stays busy");
    }

    #[test]
    fn cached_walks_are_exactly_libgcc_walks() {
        read_objects_first();
        for depth in [0, 1, 5, 40, 200] {
            for round in 0..2 {
                let (walked, reference) = nested(depth);
                let walked = walked.expect("the walk reaches the root");
                if reference.len() <= MAX_DEPTH {
                    assert_eq!(walked, reference, "depth {depth}, round {round}");
                } else {
                    assert_eq!(walked.len(), MAX_DEPTH);
                    assert_eq!(walked[..MAX_DEPTH - 1], reference[..MAX_DEPTH - 1]);
                    assert_eq!(walked[MAX_DEPTH - 1], TRUNCATED);
                }
            }
        }
    }

    /// Three threads at once, beside the other tests' walks.
    #[test]
    fn cached_walks_on_other_threads_reach_their_root() {
        read_objects_first();
        let threads: Vec<_> = (0..3)
            .map(|i| std::thread::spawn(move || nested(i * 3)))
            .collect();
        for thread in threads {
            let (walked, reference) = thread.join().unwrap();
            assert_eq!(walked.expect("the walk reaches the root"), reference);
        }
    }

    #[test]
    fn a_walk_from_outside_any_object_is_refused() {
        read_objects_first();
        let mut frames = [0usize; MAX_DEPTH];
        let here = Registers::here();
        let nowhere = Registers { pc: 8, ..here };
        assert_eq!(walk(&mut frames, nowhere, 0, stack_bounds()), None);
        let no_stack = Registers {
            sp: 0,
            bp: 0,
            ..here
        };
        assert_eq!(walk(&mut frames, no_stack, 0, stack_bounds()), None);
    }

    /// The `.eh_frame` address of a header at `address`.
    fn eh_frame_address(address: usize, hdr: &[u8]) -> Option<usize> {
        parse_hdr(address, hdr).map(|(_, eh_frame)| eh_frame)
    }

    /// Headers of version 1 with an `eh_frame_ptr` in each encoding, and an
    /// FDE count of 0 (udata4) after it.
    #[test]
    fn eh_frame_pointers_in_the_encodings_linkers_use() {
        let pcrel = [1, 0x1b, 0x03, 0x3b, 0xf0, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(eh_frame_address(0x1000, &pcrel), Some(0x1004 - 0x10));
        let abs = [1, 0x03, 0x03, 0x3b, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0];
        assert_eq!(eh_frame_address(0x1000, &abs), Some(0x2000));
        assert_eq!(eh_frame_address(0x1000, &[2, 0x1b, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(eh_frame_address(0x1000, &[1, 0x1b, 0, 0, 0]), None, "short");
        assert_eq!(eh_frame_address(0x1000, &[1, 0x50, 0, 0, 0, 0, 0, 0]), None);
    }
}
