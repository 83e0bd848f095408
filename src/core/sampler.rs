//! When to sample: a Poisson process over allocated bytes, per thread.
//!
//! Each thread keeps `bytes_until_sample`, drawn from an exponential
//! distribution with mean = rate (as Go and jemalloc do). The hot path only
//! subtracts the allocation size and branches; an allocation that would take
//! the countdown below zero comes here, to [`on_countdown_expired`], which
//! decides whether that allocation is recorded and draws the next distance.
//! An allocation of `s` bytes is thus sampled with probability
//! `1 - exp(-s / rate)`, and weighting it by the inverse makes every estimate
//! unbiased. Rate 1 records every allocation; rate 0 records none.
//!
//! Rate changes: [`set_rate`] takes effect at once on the calling thread, and
//! on every other thread at its next sample point (within about `rate` bytes
//! of its allocations; within `OFF_RECHECK_BYTES` when sampling was off), as
//! with Go's `MemProfileRate`. Set the rate first thing in `main` for exact
//! figures.
//!
//! Nothing here locks, allocates or panics: the countdown is inline on the
//! hot path, and the cold path only reads atomics and the thread's state.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::guard;
use super::thread::{self, ThreadSampler};

/// The default mean distance between samples: 512 KiB, as in Go and jemalloc.
pub const DEFAULT_RATE: u64 = 512 * 1024;

/// With sampling off, threads still look at the rate every this many bytes,
/// so that turning it back on reaches them.
const OFF_RECHECK_BYTES: i64 = 16 << 20;

/// The most a thread allocates between two visits to the cold path, where
/// the peak of live bytes is checked: the peak is exact to within this much
/// per allocating thread.
pub(crate) const CHECKPOINT_BYTES: i64 = 256 << 10;

static RATE: AtomicU64 = AtomicU64::new(DEFAULT_RATE);
/// Bumped by every rate or seed change; a thread whose epoch differs re-reads
/// the rate (and reseeds) at its next sample point.
static EPOCH: AtomicU32 = AtomicU32::new(1);
/// 0: seed every thread from the clock and its address.
static SEED: AtomicU64 = AtomicU64::new(0);
static THREADS_SEEN: AtomicU64 = AtomicU64::new(0);

#[inline(always)]
fn with<R>(f: impl FnOnce(&ThreadSampler) -> R) -> R {
    thread::with(|local| f(&local.sampler))
}

/// The hot-path test: counts `size` down and returns true when this
/// allocation reached the end of the countdown (which then is below zero:
/// [`on_countdown_expired`] must follow, or [`uncount`] if the allocation
/// failed). One subtraction in memory and a branch on its sign.
#[inline(always)]
pub(crate) fn countdown(size: usize) -> bool {
    with(|sampler| {
        let left = sampler.bytes_until_sample.get() - size as i64;
        sampler.bytes_until_sample.set(left);
        left < 0
    })
}

/// Takes back the countdown of a failed allocation of `size` bytes.
pub(crate) fn uncount(size: usize) {
    with(|sampler| {
        let left = sampler.bytes_until_sample.get() + size as i64;
        sampler.bytes_until_sample.set(left);
    })
}

/// What an allocation that reached the end of the countdown is.
pub(crate) struct Expired {
    /// The rate to record it under, or `None` if it is not recorded (the
    /// profiler's own allocations, sampling off, or not a sample point).
    pub sample: Option<u64>,
    /// Whether the thread has allocated [`CHECKPOINT_BYTES`] since the last
    /// checkpoint, with this allocation: time to check the peak.
    pub checkpoint: bool,
}

/// Called when an allocation of `size` bytes reached the end of the
/// countdown.
///
/// The countdown holds at most what is left of [`CHECKPOINT_BYTES`] since
/// the last checkpoint, and of the distance to the next sample point (the
/// rest waits in `deferred`), so every thread comes here after at most that
/// many bytes: the peak of live bytes is checked here, every
/// [`CHECKPOINT_BYTES`] and not more often, whatever the rate.
#[cold]
#[inline(never)]
pub(crate) fn on_countdown_expired(size: usize) -> Expired {
    with(|sampler| {
        let size = size as i64;
        let now = sampler.bytes_until_sample.get();
        // What the countdown held before this allocation took its size off.
        let before = now + size;
        // Allocated since the countdown was loaded, this allocation included.
        let allocated = sampler.loaded.get() - now;
        let unchecked = sampler.unchecked.get() + allocated;
        let checkpoint = unchecked >= CHECKPOINT_BYTES;
        sampler
            .unchecked
            .set(if checkpoint { 0 } else { unchecked });
        let epoch = EPOCH.load(Ordering::Acquire);
        let remaining = if sampler.epoch.get() != epoch {
            // First sample point of this thread, or the rate changed: adopt
            // the new rate and judge this allocation against a fresh draw.
            adopt_epoch(sampler, epoch);
            next_distance(sampler)
        } else {
            before + sampler.deferred.replace(0)
        };
        if size <= remaining {
            load(sampler, remaining - size);
            return Expired {
                sample: None,
                checkpoint,
            };
        }
        let rate = sampler.rate.get();
        load(sampler, next_distance(sampler));
        Expired {
            sample: (rate != 0 && !guard::is_active()).then_some(rate),
            checkpoint,
        }
    })
}

/// Sets the distance to the next sample point, at most the rest of a
/// checkpoint's worth of it in the countdown.
fn load(sampler: &ThreadSampler, distance: i64) {
    let now = distance.min(CHECKPOINT_BYTES - sampler.unchecked.get());
    sampler.bytes_until_sample.set(now);
    sampler.loaded.set(now);
    sampler.deferred.set(distance - now);
}

fn adopt_epoch(sampler: &ThreadSampler, epoch: u32) {
    sampler.epoch.set(epoch);
    sampler.rate.set(RATE.load(Ordering::Relaxed));
    let thread_index = THREADS_SEEN.fetch_add(1, Ordering::Relaxed);
    let seed = match SEED.load(Ordering::Relaxed) {
        0 => {
            let clock = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            clock ^ (sampler as *const ThreadSampler as u64)
        }
        seed => seed,
    };
    sampler
        .rng_state
        .set(splitmix64(seed ^ thread_index.wrapping_mul(0xA24B_AED4_963E_E407)) | 1);
}

/// Distance in bytes to the next sample point, exponential with mean = rate.
fn next_distance(sampler: &ThreadSampler) -> i64 {
    match sampler.rate.get() {
        0 => OFF_RECHECK_BYTES,
        1 => 0,
        rate => {
            let uniform = next_uniform(sampler);
            let distance = -uniform.ln() * rate as f64;
            distance.min((i64::MAX / 2) as f64) as i64
        }
    }
}

/// A uniform draw in (0, 1] from the thread's xorshift64* generator.
fn next_uniform(sampler: &ThreadSampler) -> f64 {
    let mut x = sampler.rng_state.get();
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    sampler.rng_state.set(x);
    let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
    (bits + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Makes the calling thread re-read rate and seed at its next allocation.
fn restart_this_thread() {
    EPOCH.fetch_add(1, Ordering::AcqRel);
    with(|sampler| {
        let allocated = sampler.loaded.get() - sampler.bytes_until_sample.get();
        sampler.unchecked.set(sampler.unchecked.get() + allocated);
        sampler.loaded.set(0);
        sampler.bytes_until_sample.set(0);
        sampler.deferred.set(0);
    });
}

pub(crate) fn set_rate(rate: u64) {
    RATE.store(rate, Ordering::Relaxed);
    restart_this_thread();
}

pub(crate) fn rate() -> u64 {
    RATE.load(Ordering::Relaxed)
}

pub(crate) fn set_seed(seed: u64) {
    SEED.store(seed, Ordering::Relaxed);
    THREADS_SEEN.store(0, Ordering::Relaxed);
    restart_this_thread();
}

/// The weight that makes a sample of `size` bytes taken at `rate` unbiased:
/// `1 / (1 - exp(-size / rate))`, or 1 when every allocation is recorded.
/// `size` may be an average, hence fractional.
pub(crate) fn weight(size: f64, rate: u64) -> f64 {
    if rate <= 1 || size <= 0.0 {
        return 1.0;
    }
    1.0 / -(-size / rate as f64).exp_m1()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn distances_are_exponential_with_mean_rate() {
        let sampler = ThreadSampler {
            bytes_until_sample: Cell::new(0),
            deferred: Cell::new(0),
            loaded: Cell::new(0),
            unchecked: Cell::new(0),
            rng_state: Cell::new(splitmix64(7) | 1),
            epoch: Cell::new(1),
            rate: Cell::new(4096),
        };
        let n = 200_000;
        let draws: Vec<f64> = (0..n).map(|_| next_distance(&sampler) as f64).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        // Standard error of the mean of an exponential is rate/sqrt(n) ~ 0.22%.
        assert!((mean / 4096.0 - 1.0).abs() < 0.01, "mean {mean}");
        // P(X > rate) = 1/e for an exponential.
        let above = draws.iter().filter(|&&d| d > 4096.0).count() as f64 / n as f64;
        assert!((above - (-1.0f64).exp()).abs() < 0.005, "tail {above}");
    }

    #[test]
    fn weight_matches_go_scaling() {
        assert_eq!(weight(100.0, 1), 1.0);
        let w = weight(1024.0, 512 * 1024);
        let expected = 1.0 / (1.0 - (-1024.0f64 / 524288.0).exp());
        assert!((w - expected).abs() / expected < 1e-12);
        // Huge blocks are always sampled: weight 1.
        assert!((weight((64 << 20) as f64, 512 * 1024) - 1.0).abs() < 1e-12);
    }
}
