//! Offline symbolization: addresses -> functions, files, lines and inlined
//! frames, from the binaries on disk, for profiles written with
//! `symbolize=offline`. Each mapping is matched to a file by its build id
//! (a stripped binary's debug info may be a separate file, found in a debug
//! directory); the profile model's own `Profile::symbolize_with_options`
//! then hides the allocation machinery, cuts the start-up frames rootward of
//! the program's entry and merges samples exactly as in-process
//! symbolization does, so both give the same profile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use addr2line::Loader;
use heapprof_pprof::{
    build_id_hex, symbol_names, Frame, Location, Mapping, Profile, SymbolizeOptions,
    FULL_STACKS_COMMENT,
};
use object::{Object, ObjectSegment};

use crate::Error;

/// Where to look for a profile's code and debug info.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The program's binary (first) and any shared library; each is matched
    /// to the profile's mappings by build id, and one that matches none is
    /// an error ([`Error::BuildIdMismatch`]).
    pub binaries: Vec<PathBuf>,
    /// Directories of separate debug files (e.g. from `objcopy
    /// --only-keep-debug`), matched by build id; files in them that are not
    /// object files are passed over.
    pub debug_dirs: Vec<PathBuf>,
    /// Use only files whose build id is the mapping's: a mapping without
    /// one is left as addresses. For a profile from elsewhere, whose paths
    /// may hold another build on this machine.
    pub same_build_id_only: bool,
    /// Keep the start-up frames rootward of the program's entry (see
    /// [`SymbolizeOptions::full_stacks`]); also kept, without this, for a
    /// profile whose comments say it was written with `full_stacks=1`.
    pub full_stacks: bool,
}

/// A symbolized profile, and how far symbolization got.
#[derive(Clone, Debug)]
pub struct Symbolized {
    /// The profile with functions, files and lines.
    pub profile: Profile,
    /// Locations resolved to at least one frame.
    pub resolved: usize,
    /// Locations left as addresses.
    pub unresolved: usize,
}

/// Symbolizes `profile` from the files that `options` names, then from
/// each mapping's own path and `/usr/lib/debug/.build-id`.
pub fn symbolize(options: &Options, profile: &Profile) -> Result<Symbolized, Error> {
    let mut candidates = Vec::new();
    for binary in &options.binaries {
        candidates.push(candidate(binary)?);
    }
    for dir in &options.debug_dirs {
        let entries = std::fs::read_dir(dir).map_err(|source| Error::DebugDir {
            dir: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            if let Ok(found) = candidate(&entry.path()) {
                candidates.push(found);
            }
        }
    }
    check_main_binary(profile, &options.binaries, &candidates)?;

    let mut resolvers: HashMap<usize, Option<Resolver>> = HashMap::new();
    let mut resolved = 0usize;
    let mut unresolved = 0usize;
    let shape = SymbolizeOptions {
        full_stacks: options.full_stacks
            || profile.comments.iter().any(|c| c == FULL_STACKS_COMMENT),
    };
    let symbolized = profile.symbolize_with_options(shape, |location, mapping| {
        let frames = location.mapping.zip(mapping).and_then(|(index, mapping)| {
            let resolver = resolvers.entry(index).or_insert_with(|| {
                if options.same_build_id_only && mapping.build_id.is_empty() {
                    return None;
                }
                resolver_for(index, mapping, &candidates)
            });
            resolver.as_ref().map(|r| r.frames(location, mapping))
        });
        match frames {
            Some(frames) if !frames.is_empty() => {
                resolved += 1;
                frames.into()
            }
            _ => {
                unresolved += 1;
                Arc::from(Vec::new())
            }
        }
    });
    Ok(Symbolized {
        profile: symbolized,
        resolved,
        unresolved,
    })
}

/// A file that may hold a mapping's code or debug info.
struct Candidate {
    path: PathBuf,
    build_id: String,
    has_dwarf: bool,
    /// (file offset, size, virtual address) of its loadable segments.
    segments: Vec<(u64, u64, u64)>,
}

/// What resolves one mapping's addresses.
struct Resolver {
    /// Debug info (or at least a symbol table) for the mapping.
    loader: Loader,
    /// (file offset, size, virtual address) of the file's loadable segments.
    segments: Vec<(u64, u64, u64)>,
}

/// Reads what matching needs from an object file: mapped, not read whole,
/// since a debug directory may hold many large files of which one matters.
fn candidate(path: &Path) -> Result<Candidate, Error> {
    let unreadable = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    // SAFETY: the map is only read, and dropped before this returns; a file
    // truncated meanwhile by another process would fault, as for any reader
    // of binaries that maps them (addr2line's loader does too).
    let data = unsafe { memmap2::Mmap::map(&file) }.map_err(unreadable)?;
    let object = object::File::parse(&*data).map_err(|source| Error::NotAnObject {
        path: path.to_owned(),
        source,
    })?;
    let build_id = object
        .build_id()
        .ok()
        .flatten()
        .map(build_id_hex)
        .unwrap_or_default();
    let segments = object
        .segments()
        .map(|s| {
            let (offset, size) = s.file_range();
            (offset, size, s.address())
        })
        .filter(|&(_, size, _)| size > 0)
        .collect();
    Ok(Candidate {
        path: path.to_owned(),
        build_id,
        has_dwarf: object.section_by_name(".debug_info").is_some(),
        segments,
    })
}

/// A binary given that matches no mapping is a mistake worth stopping for:
/// most often the binary was rebuilt since the profile was written.
fn check_main_binary(
    profile: &Profile,
    binaries: &[PathBuf],
    candidates: &[Candidate],
) -> Result<(), Error> {
    for (binary, candidate) in binaries.iter().zip(candidates) {
        let matches = profile
            .mappings
            .iter()
            .any(|m| m.build_id.is_empty() || m.build_id == candidate.build_id);
        if !matches {
            return Err(Error::BuildIdMismatch {
                binary: binary.clone(),
                build_id: candidate.build_id.clone(),
                main: profile
                    .mappings
                    .first()
                    .map_or(String::new(), |m| m.build_id.clone()),
            });
        }
    }
    Ok(())
}

/// The resolver for mapping `index`: the file with its build id (among the
/// candidates, then the mapping's own path), with debug info if one has it.
fn resolver_for(index: usize, mapping: &Mapping, candidates: &[Candidate]) -> Option<Resolver> {
    let own = Path::new(&mapping.filename);
    let own = own.is_absolute().then(|| candidate(own).ok()).flatten();
    // Distributions install separate debug info by build id, where gdb and
    // the backtrace crate look for it too.
    let installed = build_id_path(&mapping.build_id).and_then(|p| candidate(&p).ok());
    let all: Vec<&Candidate> = candidates
        .iter()
        .chain(own.as_ref())
        .chain(installed.as_ref())
        .collect();
    let matching: Vec<&Candidate> = if mapping.build_id.is_empty() {
        // Without a build id, only the main binary can be told apart: it is
        // the first mapping, and the first binary given is meant for it.
        match index {
            0 => all.into_iter().take(1).collect(),
            _ => own.iter().collect(),
        }
    } else {
        all.into_iter()
            .filter(|c| c.build_id == mapping.build_id)
            .collect()
    };
    let code = *matching.first()?;
    let debug = matching
        .iter()
        .find(|c| c.has_dwarf)
        .copied()
        .unwrap_or(code);
    let segments = if code.segments.is_empty() {
        debug.segments.clone()
    } else {
        code.segments.clone()
    };
    let loader = Loader::new(&debug.path).ok()?;
    Some(Resolver { loader, segments })
}

/// `/usr/lib/debug/.build-id/ab/cdef....debug` for build id `abcdef...`.
fn build_id_path(build_id: &str) -> Option<PathBuf> {
    let (dir, rest) = (build_id.get(..2)?, build_id.get(2..)?);
    let path = PathBuf::from(format!("/usr/lib/debug/.build-id/{dir}/{rest}.debug"));
    path.exists().then_some(path)
}

impl Resolver {
    /// The frames of `location`, innermost first.
    fn frames(&self, location: &Location, mapping: &Mapping) -> Vec<Frame> {
        let Some(offset) = (location.address)
            .checked_sub(mapping.memory_start)
            .map(|o| o + mapping.file_offset)
        else {
            return Vec::new();
        };
        let Some(&(start, _, vaddr)) = self
            .segments
            .iter()
            .find(|&&(start, size, _)| start <= offset && offset < start + size)
        else {
            return Vec::new();
        };
        let probe = offset - start + vaddr;
        let mut frames = Vec::new();
        if let Ok(mut iter) = self.loader.find_frames(probe) {
            while let Ok(Some(frame)) = iter.next() {
                // A frame without a name takes the symbol table's, as
                // the in-process symbolizer (the backtrace crate) does.
                let raw = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.raw_name().ok())
                    .map(|n| n.into_owned())
                    .or_else(|| self.loader.find_symbol(probe).map(str::to_owned));
                let (name, system_name) = symbol_names(raw.as_deref(), probe);
                let (file, line) = frame
                    .location
                    .map(|l| (l.file.unwrap_or("").to_owned(), l.line.unwrap_or(0)))
                    .unwrap_or_default();
                frames.push(Frame {
                    name,
                    system_name,
                    file,
                    line,
                });
            }
        }
        if frames.is_empty() {
            if let Some(symbol) = self.loader.find_symbol(probe) {
                let (name, system_name) = symbol_names(Some(symbol), probe);
                frames.push(Frame {
                    name,
                    system_name,
                    ..Frame::default()
                });
            }
        }
        frames
    }
}
