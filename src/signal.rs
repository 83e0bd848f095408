//! The exit dumps on SIGTERM and SIGINT (`at_signal=1`): a process stopped
//! by a signal runs no exit handler, so without this a `kill` or a Ctrl-C
//! leaves no at-exit profile.
//!
//! The handler writes nothing itself: it only writes the signal's number
//! to a pipe (one `write`, async-signal-safe, errno kept). A heapprof
//! thread waiting on the pipe writes the exit dumps, then puts back the
//! disposition the signal had when heapprof installed its handler and
//! sends the signal to the process again, so that disposition takes effect
//! as if heapprof were not there: the program's earlier handler runs, or
//! the default kills the process by that signal (its exit status says
//! SIGTERM, not a normal exit). A handler the program installs after
//! heapprof's replaces it. A signal the program ignores is left alone.
//!
//! This module must never allocate, lock or touch the profiler from the
//! handler; everything else happens on its thread.

use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Once, OnceLock};

use crate::core::counters;
use crate::sys::{self, SignalAction};
use crate::{dump, Error};

/// The signals handled, each with the disposition it had before.
const SIGNALS: [c_int; 2] = [libc::SIGTERM, libc::SIGINT];

/// The dispositions of [`SIGNALS`] before heapprof's handler, set before it
/// is installed, read by the thread (and by the handler in a forked child).
static PREVIOUS: [OnceLock<SignalAction>; 2] = [OnceLock::new(), OnceLock::new()];

/// The pipe's write end, and the process that owns its reading thread.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
static OWNER_PID: AtomicI32 = AtomicI32::new(0);
static START: Once = Once::new();

/// Starts the thread and installs the handler for SIGTERM and SIGINT (once
/// per process; later calls do nothing).
pub(crate) fn start() -> Result<(), Error> {
    let mut started = Ok(());
    START.call_once(|| started = install());
    started
}

fn install() -> Result<(), Error> {
    let (read_end, write_end) =
        sys::pipe().ok_or_else(|| Error::Config("at_signal: cannot make its pipe".to_owned()))?;
    counters::spawn_own_thread("heapprof-signal", || {
        move || {
            while let Some(signal) = sys::read_byte(read_end) {
                dump::write_exit_dumps();
                pass_on(c_int::from(signal));
            }
        }
    })
    .map_err(|e| Error::Config(format!("at_signal: cannot start its thread: {e}")))?;
    PIPE_WRITE.store(write_end, Ordering::Release);
    OWNER_PID.store(sys::process_id(), Ordering::Release);
    for (slot, &signal) in PREVIOUS.iter().zip(&SIGNALS) {
        let Some(previous) = sys::signal_action(signal) else {
            continue;
        };
        // An ignored signal ends nothing: no exit to write dumps for.
        if previous.is_ignored() {
            continue;
        }
        // Known before the handler can run, for the forked child's case.
        let _ = slot.set(previous);
        if !sys::set_signal_handler(signal, on_signal) {
            return Err(Error::Config(format!(
                "at_signal: cannot handle signal {signal}"
            )));
        }
    }
    Ok(())
}

/// Puts back the disposition `signal` had before heapprof's handler and
/// sends it again, so that it takes effect now.
fn pass_on(signal: c_int) {
    let Some(index) = SIGNALS.iter().position(|&s| s == signal) else {
        return;
    };
    if let Some(previous) = PREVIOUS[index].get() {
        sys::restore_signal_action(signal, previous);
        sys::signal_this_process(signal);
    }
}

/// The handler: async-signal-safe only. In a forked child (which inherits
/// the handler and the pipe, not the thread reading it), the byte would
/// reach the parent's thread, so the child passes the signal on at once.
extern "C" fn on_signal(signal: c_int) {
    if sys::process_id() != OWNER_PID.load(Ordering::Acquire) {
        pass_on(signal);
        return;
    }
    // Signal numbers 2 and 15 fit a byte.
    sys::write_byte(PIPE_WRITE.load(Ordering::Acquire), signal as u8);
}
