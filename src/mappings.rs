//! The loaded objects of the running process (`dl_iterate_phdr`, behind
//! [`for_each_object`]), and their executable mappings with build ids, read
//! from the objects themselves, so a profile can say which binary each
//! address belongs to.

use std::ffi::{c_int, c_void, CStr};

/// An executable segment of a loaded object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoadedSegment {
    pub start: u64,
    pub limit: u64,
    pub file_offset: u64,
    pub path: String,
    pub build_id: String,
}

/// A loaded object, as the loader describes it during [`for_each_object`].
pub(crate) struct LoadedObject<'a> {
    /// The difference between its load addresses and its link-time ones.
    pub bias: u64,
    /// Its path as loaded (empty for the main program, as glibc reports it).
    pub name: &'a CStr,
    /// Its program headers.
    pub headers: &'a [libc::Elf64_Phdr],
    /// The loader's count of objects loaded so far.
    pub adds: u64,
    /// The loader's count of objects unloaded so far.
    pub subs: u64,
}

/// Calls `visit` with each loaded object, main program first, until it
/// returns false. Takes the loader's lock for the duration (`dl_iterate_phdr`).
pub(crate) fn for_each_object(mut visit: impl FnMut(&LoadedObject) -> bool) {
    let mut visit: &mut dyn FnMut(&LoadedObject) -> bool = &mut visit;
    // SAFETY: the callback matches the signature dl_iterate_phdr expects, and
    // `data` is `visit`, alive for the whole call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(trampoline),
            &mut visit as *mut &mut dyn FnMut(&LoadedObject) -> bool as *mut c_void,
        );
    }
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
            &mut *(data as *mut &mut dyn FnMut(&LoadedObject) -> bool),
        )
    };
    let headers: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
        &[]
    } else {
        // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
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
        bias: info.dlpi_addr,
        name,
        headers,
        adds: info.dlpi_adds,
        subs: info.dlpi_subs,
    };
    c_int::from(!visit(&object))
}

/// Every executable segment of every loaded object, main program first.
pub(crate) fn loaded_segments() -> Vec<LoadedSegment> {
    let mut segments = Vec::new();
    for_each_object(|object| {
        add_segments(object, &mut segments);
        true
    });
    segments
}

fn add_segments(object: &LoadedObject, segments: &mut Vec<LoadedSegment>) {
    let path = object.name.to_string_lossy().into_owned();
    let path = if path.is_empty() && segments.is_empty() {
        std::fs::read_link("/proc/self/exe")
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    } else {
        path
    };
    if path.is_empty() || path.starts_with("linux-vdso") {
        return;
    }
    let build_id = object
        .headers
        .iter()
        .filter(|h| h.p_type == libc::PT_NOTE)
        .find_map(|h| {
            let start = object.bias.wrapping_add(h.p_vaddr) as *const u8;
            // SAFETY: a PT_NOTE segment of a loaded object is mapped readable
            // for p_memsz bytes at load address + p_vaddr.
            let notes = unsafe { std::slice::from_raw_parts(start, h.p_memsz as usize) };
            gnu_build_id(notes)
        })
        .unwrap_or_default();
    for h in object
        .headers
        .iter()
        .filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_X != 0)
    {
        let start = object.bias.wrapping_add(h.p_vaddr);
        segments.push(LoadedSegment {
            start,
            limit: start + h.p_memsz,
            file_offset: h.p_offset,
            path: path.clone(),
            build_id: build_id.clone(),
        });
    }
}

/// The hex NT_GNU_BUILD_ID in an ELF note section, if present.
fn gnu_build_id(mut notes: &[u8]) -> Option<String> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let word = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let align4 = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let (name_len, desc_len, kind) = (word(notes), word(&notes[4..]), word(&notes[8..]) as u32);
        let name_end = 12 + align4(name_len);
        let desc_end = name_end + align4(desc_len);
        if desc_end > notes.len() {
            return None;
        }
        if kind == NT_GNU_BUILD_ID && &notes[12..12 + name_len] == b"GNU\0" {
            let desc = &notes[name_end..name_end + desc_len];
            return Some(desc.iter().map(|b| format!("{b:02x}")).collect());
        }
        notes = &notes[desc_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_program_is_first_and_contains_this_function() {
        let segments = loaded_segments();
        let here =
            the_main_program_is_first_and_contains_this_function as *const () as usize as u64;
        let main = segments
            .iter()
            .find(|s| s.start <= here && here < s.limit)
            .expect("own segment");
        assert_eq!(main.path, segments[0].path);
        assert!(main.path.ends_with(
            std::env::current_exe()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
        ));
        // Rust binaries on Linux are linked with a GNU build id: 20 bytes of SHA-1.
        assert_eq!(main.build_id.len(), 40, "{main:?}");
    }
}
