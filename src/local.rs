//! The per-thread state of the hot path (the sampling countdown, the exact
//! counters, the thread's filter of sampled addresses) in one const-initialized
//! thread-local with no destructor: every access is an offset from one
//! thread-pointer base, never allocates, and works during thread teardown.

use crate::counters::ThreadCounts;
use crate::sampler::ThreadSampler;

pub(crate) struct Local {
    pub sampler: ThreadSampler,
    pub counts: ThreadCounts,
}

thread_local! {
    pub(crate) static LOCAL: Local = const {
        Local { sampler: ThreadSampler::new(), counts: ThreadCounts::new() }
    };
}
