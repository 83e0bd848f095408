//! glibc on Linux: the loaded objects (`dl_iterate_phdr`), the calling
//! thread's stack (`pthread_getattr_np`), giving freed heap pages back
//! (`malloc_trim`), what malloc holds (`mallinfo2`), and running a function
//! before `main` (`.init_array`).
//!
//! Every function here is safe to call; the unsafe blocks are the FFI calls
//! and the reads of what the loader maps. Nothing here panics or allocates
//! through the profiled path. `dl_iterate_phdr` takes the loader's lock,
//! which glibc holds only while it links an object into or out of its list.
//!
//! glibc does not reset that lock in a forked child: a `fork` while another
//! thread is inside `dl_iterate_phdr` leaves the child's loader locked
//! forever, and the child's next walk (a sample, a profile's mappings)
//! would hang. So every walk here holds [`lock_loader_walks`], which the
//! fork handlers hold across `fork`. Walks by other code (a panic's unwinder,
//! another library) are glibc's own hazard, which the child has anyway.

use std::ffi::{c_int, c_void, CStr};
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, TryLockError};

/// An ELF program header of a loaded object, and the kinds and flags of
/// them that the unwinders and the mappings look at.
pub(crate) use libc::{Elf64_Phdr as ProgramHeader, PF_X, PT_GNU_EH_FRAME, PT_LOAD, PT_NOTE};

/// A loaded object, as the loader describes it during [`for_each_object`]:
/// everything it hands out lives as long as the callback runs, while the
/// loader's lock keeps the object from being unloaded.
pub(crate) struct LoadedObject<'a> {
    /// The difference between its load addresses and its link-time ones.
    bias: usize,
    name: &'a CStr,
    headers: &'a [ProgramHeader],
    adds: u64,
    subs: u64,
}

impl<'a> LoadedObject<'a> {
    /// Its path as loaded (empty for the main program, as glibc reports it).
    pub(crate) fn name(&self) -> &'a CStr {
        self.name
    }

    /// Its program headers.
    pub(crate) fn headers(&self) -> &'a [ProgramHeader] {
        self.headers
    }

    /// Where the segment of `header` is loaded.
    pub(crate) fn loaded(&self, header: &ProgramHeader) -> Range<usize> {
        let start = self.bias.wrapping_add(header.p_vaddr as usize);
        start..start.wrapping_add(header.p_memsz as usize)
    }

    /// The loaded bytes at `range`, if they lie inside one readable
    /// `PT_LOAD` segment of this object (as its notes, its `.eh_frame_hdr`
    /// and its `.eh_frame` do).
    pub(crate) fn bytes(&self, range: Range<usize>) -> Option<&'a [u8]> {
        let readable = self
            .headers
            .iter()
            .filter(|h| h.p_type == PT_LOAD && h.p_flags & libc::PF_R != 0)
            .map(|h| self.loaded(h))
            .any(|segment| segment.start <= range.start && range.end <= segment.end);
        if !readable || range.start > range.end {
            return None;
        }
        // SAFETY: the loader maps each PT_LOAD segment for its whole p_memsz
        // (what lies past the file is zero-filled), readable with PF_R, and
        // keeps it mapped while the object is loaded: at least until the
        // callback this object was handed to returns, which bounds 'a.
        Some(unsafe { std::slice::from_raw_parts(range.start as *const u8, range.len()) })
    }
}

/// Held by every walk of the loader's list made here, and by the fork
/// handlers across `fork`.
static LOADER_WALKS: Mutex<()> = Mutex::new(());

/// Waits until no thread walks the loader's list through this module, and
/// keeps it so while the guard lives. Take it before any other lock of the
/// profiler: a walk may allocate, and so sample, while it holds this one.
pub(crate) fn lock_loader_walks() -> MutexGuard<'static, ()> {
    LOADER_WALKS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Calls `visit` with each loaded object, main program first, until it
/// returns false. Holds the loader's lock for the duration. For code that
/// may wait: profile writing.
pub(crate) fn for_each_object(visit: impl FnMut(&LoadedObject<'_>) -> bool) {
    let _walk = lock_loader_walks();
    iterate(visit);
}

/// [`for_each_object`] for the allocation path, which must not wait: false,
/// without calling `visit`, while another walk is under way or a `fork` is.
pub(crate) fn try_for_each_object(visit: impl FnMut(&LoadedObject<'_>) -> bool) -> bool {
    let _walk = match LOADER_WALKS.try_lock() {
        Ok(walk) => walk,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return false,
    };
    iterate(visit);
    true
}

fn iterate(mut visit: impl FnMut(&LoadedObject<'_>) -> bool) {
    let mut visit: &mut dyn FnMut(&LoadedObject<'_>) -> bool = &mut visit;
    // SAFETY: the callback matches the signature dl_iterate_phdr expects, and
    // `data` is `visit`, alive for the whole call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(trampoline),
            &mut visit as *mut &mut dyn FnMut(&LoadedObject<'_>) -> bool as *mut c_void,
        );
    }
}

/// The loader's (objects added, objects removed) counts: they change
/// whenever an object is loaded or unloaded. `None` where
/// [`try_for_each_object`] is.
pub(crate) fn loader_generation() -> Option<(u64, u64)> {
    let mut counts = (0, 0);
    try_for_each_object(|object| {
        counts = (object.adds, object.subs);
        false // the same in every entry: stop at the first
    })
    .then_some(counts)
}

unsafe extern "C" fn trampoline(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid info for the duration of the
    // call, and `data` is the closure handed in by `for_each_object`.
    let (info, visit) = unsafe {
        (
            &*info,
            &mut *(data as *mut &mut dyn FnMut(&LoadedObject<'_>) -> bool),
        )
    };
    let headers: &[ProgramHeader] = if info.dlpi_phdr.is_null() {
        &[]
    } else {
        // SAFETY: dlpi_phdr points at dlpi_phnum program headers, which stay
        // mapped while the object is loaded.
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) }
    };
    let name = if info.dlpi_name.is_null() {
        c""
    } else {
        // SAFETY: a non-null dlpi_name is a NUL-terminated string that lives
        // as long as the object stays loaded.
        unsafe { CStr::from_ptr(info.dlpi_name) }
    };
    let object = LoadedObject {
        bias: info.dlpi_addr as usize,
        name,
        headers,
        adds: info.dlpi_adds,
        subs: info.dlpi_subs,
    };
    c_int::from(!visit(&object))
}

/// The calling thread's stack: its (lowest, highest) address. glibc reads
/// `/proc/self/maps` for the main thread, allocating as it does: call it
/// once per thread, under the reentrancy guard.
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    // SAFETY: `attr` is initialized by pthread_getattr_np before it is read
    // and destroyed after; the out-pointers are valid.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok.then(|| (addr as usize, addr as usize + size))
    }
}

/// Asks glibc's malloc to give the free pages it keeps back to the system
/// (a no-op for memory of other allocators).
pub(crate) fn trim_malloc_heap() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

/// Has glibc call `function` at `exit`, after `main` returns (not after
/// `_exit` or a fatal signal).
pub(crate) fn at_exit(function: extern "C" fn()) {
    // SAFETY: `function` is an `extern "C"` function with no arguments that
    // lives for the whole program.
    unsafe { libc::atexit(function) };
}

/// Has `fork` call `prepare` in the forking thread before it copies the
/// process, and `parent` and `child` in each process after.
pub(crate) fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: the handlers are `extern "C"` functions with no arguments that
    // live for the whole program, as pthread_atfork requires.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// The size of a memory page, if the system says.
pub(crate) fn page_size() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().filter(|&p| p > 0)
}

/// `len` bytes of zeroed, private, anonymous memory straight from the
/// kernel (never through any allocator), or `None` if it refuses. Pages
/// cost nothing until touched, are never freed unless [`unmap`] is called,
/// and are copied into a child by `fork` like any private memory.
pub(crate) fn map_zeroed(len: usize) -> Option<*mut u8> {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing touches no existing memory; the result is checked.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (addr != libc::MAP_FAILED).then_some(addr.cast())
}

/// Gives back a mapping of `len` bytes from [`map_zeroed`].
///
/// # Safety
///
/// `addr` and `len` are those of one [`map_zeroed`] call, and no pointer
/// into the mapping is used afterwards.
pub(crate) unsafe fn unmap(addr: *mut u8, len: usize) {
    // SAFETY: the caller gives up the whole mapping (see above).
    unsafe { libc::munmap(addr.cast(), len) };
}

/// A thread-specific value whose destructor glibc runs at thread exit,
/// after every Rust thread-local destructor: with a non-null value set,
/// `destructor` is called with it when the thread exits.
pub(crate) struct ThreadExitKey(libc::pthread_key_t);

impl ThreadExitKey {
    /// A new key, or `None` if the process has run out of keys.
    pub(crate) fn new(destructor: extern "C" fn(*mut c_void)) -> Option<Self> {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor is an
        // `extern "C"` function that lives for the whole program.
        let created = unsafe { libc::pthread_key_create(&mut key, Some(destructor)) } == 0;
        created.then_some(ThreadExitKey(key))
    }

    /// Sets the calling thread's value.
    pub(crate) fn set(&self, value: *const c_void) {
        // SAFETY: the key was created by `new` and is never deleted.
        unsafe { libc::pthread_setspecific(self.0, value) };
    }
}

/// Has the loader call `$function` (an `extern "C" fn()`) before `main`,
/// as it runs the program's ELF initializers: for code that must run in a
/// program that never calls into the crate. `$name` names the entry.
macro_rules! run_before_main {
    ($name:ident, $function:path) => {
        #[used]
        #[link_section = ".init_array"]
        static $name: extern "C" fn() = $function;
    };
}
pub(crate) use run_before_main;

/// What glibc's malloc holds, from `mallinfo2`, in bytes, summed over
/// every arena as glibc counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MallocTotals {
    /// Bytes of arena chunks in use (`uordblks`), headers included.
    pub(crate) in_use: u64,
    /// Bytes of blocks served by their own `mmap` (`hblkhd`), all in use.
    pub(crate) mmapped: u64,
    /// Bytes of free arena chunks (`fordblks`), the top chunk included,
    /// resident or not (`malloc_trim` gives their pages back but glibc
    /// keeps counting them). `in_use + free` is `arena`, what the arenas
    /// took from the system.
    pub(crate) free: u64,
}

/// `mallinfo2`'s address once looked up: 0 not yet, 1 absent.
#[cfg(target_env = "gnu")]
static MALLINFO2: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// glibc's malloc totals, or `None` where glibc has no `mallinfo2` (before
/// 2.33). Looked up by name at the first call rather than linked, so that
/// the program still loads on an older glibc; the lookup may allocate
/// (dlerror's buffer), so call it inside heapprof's own work. `mallinfo2`
/// takes each arena's lock in turn and walks its free lists: never call it
/// from the allocation path.
#[cfg(target_env = "gnu")]
pub(crate) fn malloc_totals() -> Option<MallocTotals> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut address = MALLINFO2.load(Relaxed);
    if address == 0 {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no
        // other precondition; it returns null when nothing has the name.
        let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"mallinfo2".as_ptr()) };
        address = if found.is_null() { 1 } else { found as usize };
        MALLINFO2.store(address, Relaxed);
    }
    if address == 1 {
        return None;
    }
    // SAFETY: the address is that of glibc's `mallinfo2` (2.33 and later),
    // `struct mallinfo2 mallinfo2(void)`: the type declared here and in
    // libc. It has no preconditions.
    let info = unsafe {
        let mallinfo2: unsafe extern "C" fn() -> libc::mallinfo2 =
            std::mem::transmute(address as *const c_void);
        mallinfo2()
    };
    Some(MallocTotals {
        in_use: info.uordblks as u64,
        mmapped: info.hblkhd as u64,
        free: info.fordblks as u64,
    })
}

/// Not glibc (musl, say): its malloc's totals are unknown.
#[cfg(not(target_env = "gnu"))]
pub(crate) fn malloc_totals() -> Option<MallocTotals> {
    None
}

/// A signal's disposition as `sigaction` describes it: default, ignored or
/// a handler, with its flags and mask.
#[derive(Clone, Copy)]
pub(crate) struct SignalAction(libc::sigaction);

impl SignalAction {
    /// Whether the signal is ignored (`SIG_IGN`).
    pub(crate) fn is_ignored(&self) -> bool {
        self.0.sa_sigaction == libc::SIG_IGN
    }
}

/// The current disposition of `signal`, or `None` if it is not a signal.
/// Async-signal-safe.
pub(crate) fn signal_action(signal: c_int) -> Option<SignalAction> {
    // SAFETY: a null new action only reads the disposition into `old`, a
    // valid out-pointer; an all-zero sigaction is a valid value to overwrite.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(signal, std::ptr::null(), &mut old) == 0).then_some(SignalAction(old))
    }
}

/// Installs `handler` for `signal` with `SA_RESTART` (an interrupted read
/// or write of the program resumes), blocking nothing more while it runs.
/// False if the system refuses.
pub(crate) fn set_signal_handler(signal: c_int, handler: extern "C" fn(c_int)) -> bool {
    // SAFETY: `action` is fully initialized (zeroed, an empty mask, the
    // handler's address) before sigaction reads it; `handler` is an
    // `extern "C" fn(c_int)` that lives for the whole program, the
    // signature a handler without SA_SIGINFO has.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut()) == 0
    }
}

/// Makes `action` the disposition of `signal` again. Async-signal-safe.
pub(crate) fn restore_signal_action(signal: c_int, action: &SignalAction) {
    // SAFETY: `action` was read by sigaction, so it is a valid disposition.
    unsafe { libc::sigaction(signal, &action.0, std::ptr::null_mut()) };
}

/// Sends `signal` to this process (any thread of it that does not block
/// it). Async-signal-safe.
pub(crate) fn signal_this_process(signal: c_int) {
    // SAFETY: kill and getpid have no preconditions.
    unsafe { libc::kill(libc::getpid(), signal) };
}

/// This process's id, by the system call (async-signal-safe).
pub(crate) fn process_id() -> c_int {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// A pipe, both ends closed on `exec`, its write end non-blocking (a full
/// pipe must not stall a signal handler): (read end, write end).
pub(crate) fn pipe() -> Option<(c_int, c_int)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes; fcntl
    // is called on the write end it returned.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return None;
        }
        let flags = libc::fcntl(fds[1], libc::F_GETFL);
        libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    Some((fds[0], fds[1]))
}

/// Writes one byte to `fd`, leaving `errno` as it was: async-signal-safe,
/// for a handler that interrupted code about to read `errno`. A full pipe
/// drops the byte (one already waiting says the same).
pub(crate) fn write_byte(fd: c_int, byte: u8) {
    // SAFETY: __errno_location gives this thread's errno, valid for the
    // thread's life; write reads one byte from a valid local.
    unsafe {
        let errno = *libc::__errno_location();
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *libc::__errno_location() = errno;
    }
}

/// Waits for one byte from `fd`, resuming after interruptions; `None` at
/// end of file or on another error.
pub(crate) fn read_byte(fd: c_int) -> Option<u8> {
    let mut byte = 0u8;
    loop {
        // SAFETY: read writes at most one byte into a valid local.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        match n {
            1 => return Some(byte),
            // SAFETY: __errno_location gives this thread's errno.
            -1 if unsafe { *libc::__errno_location() } == libc::EINTR => continue,
            _ => return None,
        }
    }
}

/// Nanoseconds on the monotonic clock (through the vDSO: no system call,
/// no allocation); 0 if it cannot be read.
pub(crate) fn monotonic_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a valid local.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return 0;
    }
    (now.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(now.tv_nsec as u64)
}

/// Whether the calling thread is the process's main thread.
pub(crate) fn is_main_thread() -> bool {
    // SAFETY: gettid and getpid have no preconditions.
    unsafe { libc::gettid() == libc::getpid() }
}

/// The calling thread's name as the kernel has it (at most 15 bytes) and
/// its length: no allocation, one system call.
pub(crate) fn thread_name() -> Option<([u8; 16], u8)> {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into a
    // buffer of 16.
    if unsafe {
        libc::prctl(
            libc::PR_GET_NAME,
            name.as_mut_ptr() as libc::c_ulong,
            0,
            0,
            0,
        )
    } != 0
    {
        return None;
    }
    let len = name.iter().position(|&b| b == 0).unwrap_or(15).min(15);
    name[len..].fill(0);
    Some((name, len as u8))
}

/// The kernel's name of the process's main thread (what threads started
/// without a name of their own inherit from it), from `/proc/self/comm`.
pub(crate) fn main_thread_name() -> Option<([u8; 16], u8)> {
    let mut name = [0u8; 16];
    // SAFETY: a NUL-terminated path; read writes at most 16 bytes into a
    // buffer of 16; the descriptor is closed once.
    let read = unsafe {
        let fd = libc::open(
            c"/proc/self/comm".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, name.as_mut_ptr().cast(), name.len());
        libc::close(fd);
        n
    };
    let read = usize::try_from(read).ok()?;
    let len = name[..read]
        .iter()
        .position(|&b| b == b'\n' || b == 0)
        .unwrap_or(read)
        .min(15);
    name[len..].fill(0);
    Some((name, len as u8))
}
