//! The executable mappings of the running process with their build ids,
//! read from the loaded objects themselves (through [`sys`]), so a profile
//! can say which binary each address belongs to.
//!
//! Profile-writing code, outside the allocator: it allocates freely, and
//! holds no unsafe code (the loader's memory is read through [`sys`]).

use crate::sys::{self, LoadedObject, PF_X, PT_LOAD, PT_NOTE};

/// An executable segment of a loaded object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoadedSegment {
    pub start: u64,
    pub limit: u64,
    pub file_offset: u64,
    pub path: String,
    pub build_id: String,
}

/// Every executable segment of every loaded object, main program first.
pub(crate) fn loaded_segments() -> Vec<LoadedSegment> {
    let mut segments = Vec::new();
    sys::for_each_object(|object| {
        add_segments(object, &mut segments);
        true
    });
    segments
}

fn add_segments(object: &LoadedObject<'_>, segments: &mut Vec<LoadedSegment>) {
    let path = object.name().to_string_lossy().into_owned();
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
        .headers()
        .iter()
        .filter(|h| h.p_type == PT_NOTE)
        .find_map(|h| gnu_build_id(object.bytes(object.loaded(h))?))
        .unwrap_or_default();
    for h in object
        .headers()
        .iter()
        .filter(|h| h.p_type == PT_LOAD && h.p_flags & PF_X != 0)
    {
        let start = object.loaded(h).start as u64;
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
