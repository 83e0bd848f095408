//! The cold paths of the allocator: recording a sampled allocation (unwind,
//! count in the table, remember the block) and the free of a sampled block.
//! Everything here is `#[cold]` and `#[inline(never)]`, out of the hot path's
//! way, and never panics.

use crate::{blocks, fork, guard::Guard, table, unwind};

/// Records the allocation of `size` bytes at `ptr`, sampled at `rate`.
#[cold]
#[inline(never)]
pub(crate) fn sampled_alloc(ptr: *mut u8, size: usize, rate: u64) {
    let _guard = Guard::enter();
    fork::register_handlers();
    let mut frames = [0usize; unwind::MAX_DEPTH];
    let depth = unwind::capture(&mut frames, unwind::address_of(sampled_alloc));
    let Some(bucket) = table::lock().record_alloc(&frames[..depth], size as u64, rate) else {
        return;
    };
    if !blocks::insert(ptr, bucket) {
        table::lock().unrecord_alloc(bucket);
    }
}

/// Called when the filter says `ptr` may be sampled: forgets the block and
/// returns its bucket if it was sampled. The caller then either counts the
/// free ([`count_free`]) or, if the block stays alive, puts it back
/// ([`put_back`]).
#[cold]
#[inline(never)]
pub(crate) fn take_sampled(ptr: *mut u8) -> Option<u32> {
    blocks::remove(ptr)
}

/// Counts the free of a sampled block of `bucket`.
#[cold]
#[inline(never)]
pub(crate) fn count_free(bucket: u32) {
    // The guard makes an allocation by a signal handler that interrupts this
    // thread while it holds the lock pass straight through, not wait for it.
    let _guard = Guard::enter();
    table::lock().record_free(bucket);
}

/// Remembers again a block taken by [`take_sampled`] that stayed alive.
#[cold]
#[inline(never)]
pub(crate) fn put_back(ptr: *mut u8, bucket: u32) {
    let _guard = Guard::enter();
    if !blocks::insert(ptr, bucket) {
        // Without a slot its free could never be seen: count it as freed now
        // and as a dropped sample, rather than leave it in use forever.
        let mut table = table::lock();
        table.record_free(bucket);
        table.count_dropped();
    }
}
