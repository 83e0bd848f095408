//! `heapprof symbolize`: addresses -> functions, files, lines and inlined
//! frames, from the binaries on disk, for profiles written with
//! `symbolize=offline`. Each mapping is matched to a file by its build id
//! (a stripped binary's debug info may be a separate file, found in
//! `--debug-dir`); the library's own `Profile::symbolize_with` then hides
//! the allocation machinery and merges samples exactly as in-process
//! symbolization does, so both give the same profile.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use addr2line::Loader;
use anyhow::{bail, Context, Result};
use heapprof::pprof::{Frame, Location, Mapping, Profile};
use object::{Object, ObjectSegment};

use crate::args::SymbolizeArgs;
use crate::{load, output};

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

/// Runs `heapprof symbolize`.
pub fn run(args: &SymbolizeArgs, out: &mut dyn Write) -> Result<()> {
    let profile = load::profile(&args.profile)?;
    let mut candidates = Vec::new();
    for binary in &args.binary {
        candidates.push(candidate(binary)?);
    }
    for dir in &args.debug_dir {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read debug directory {}", dir.display()))?;
        for entry in entries.flatten() {
            if let Ok(found) = candidate(&entry.path()) {
                candidates.push(found);
            }
        }
    }
    check_main_binary(profile, &args.binary, &candidates)?;

    let mut resolvers: HashMap<usize, Option<Resolver>> = HashMap::new();
    let mut resolved = 0usize;
    let mut unresolved = 0usize;
    let symbolized = profile.symbolize_with(|location, mapping| {
        let frames = location.mapping.zip(mapping).and_then(|(index, mapping)| {
            let resolver = resolvers
                .entry(index)
                .or_insert_with(|| resolver_for(index, mapping, &candidates));
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
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| default_output(&args.profile));
    output::write_atomically(&path, |w| {
        w.write_all(&symbolized.encode())?;
        Ok(())
    })?;
    writeln!(
        out,
        "Wrote {} ({resolved} locations symbolized, {unresolved} left as addresses)",
        path.display()
    )?;
    Ok(())
}

/// `heap.pb.gz` -> `heap.symbolized.pb.gz`.
fn default_output(input: &Path) -> PathBuf {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".pb.gz").unwrap_or(&name);
    input.with_file_name(format!("{stem}.symbolized.pb.gz"))
}

/// Reads what matching needs from an object file: mapped, not read whole,
/// since a debug directory may hold many large files of which one matters.
fn candidate(path: &Path) -> Result<Candidate> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    // SAFETY: the map is only read, and dropped before this returns; a file
    // truncated meanwhile by another process would fault, as for any reader
    // of binaries that maps them (addr2line's loader does too).
    let data = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("cannot read {}", path.display()))?;
    let object = object::File::parse(&*data)
        .with_context(|| format!("{}: not an object file", path.display()))?;
    let build_id = object
        .build_id()
        .ok()
        .flatten()
        .map(hex)
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `--binary` that matches no mapping is a mistake worth stopping for:
/// most often the binary was rebuilt since the profile was written.
fn check_main_binary(
    profile: &Profile,
    binaries: &[PathBuf],
    candidates: &[Candidate],
) -> Result<()> {
    for (binary, candidate) in binaries.iter().zip(candidates) {
        let matches = profile
            .mappings
            .iter()
            .any(|m| m.build_id.is_empty() || m.build_id == candidate.build_id);
        if !matches {
            let main = profile.mappings.first().map_or("", |m| &m.build_id);
            bail!(
                "{}: build id {} does not match the profile's main binary (build id {main}); was it rebuilt since the profile was written?",
                binary.display(),
                if candidate.build_id.is_empty() { "(none)" } else { &candidate.build_id },
            );
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
        // the first mapping, and the first --binary is meant for it.
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
                let (name, system_name) = names(raw.as_deref(), probe);
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
                let (name, system_name) = names(Some(symbol), probe);
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

/// (name, system name) as heapprof's in-process symbolizer gives them: a
/// mangled linker symbol demangled without its hash, a source-level name
/// as it is.
fn names(raw: Option<&str>, probe: u64) -> (String, String) {
    match raw {
        Some(raw) if raw.starts_with("_ZN") || raw.starts_with("_R") => {
            match rustc_demangle::try_demangle(raw) {
                Ok(name) => (format!("{name:#}"), raw.to_owned()),
                Err(_) => (raw.to_owned(), String::new()),
            }
        }
        Some(raw) if !raw.is_empty() => (raw.to_owned(), String::new()),
        _ => (format!("{probe:#x}"), String::new()),
    }
}
