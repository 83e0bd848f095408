//! The platform: every call into the C library that the unwinders, the
//! mappings and symbolization make, behind safe functions and types.
//!
//! It owns the unsafe FFI and the reads of loader-owned memory that those
//! calls hand out; nothing outside it calls `libc` for them. Like the
//! unwinders it serves, nothing here may panic, allocate, or wait for a lock
//! of the profiler's own: its functions are called from inside the allocator.

#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
pub(crate) use linux::*;
