//! `heapprof symbolize`: flags onto [`heapprof_report::symbolize`], the
//! symbolized profile into a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use heapprof_report::symbolize;

use crate::args::SymbolizeArgs;
use crate::{load, output};

/// Runs `heapprof symbolize`.
pub fn run(args: &SymbolizeArgs, out: &mut impl Write) -> Result<()> {
    if load::is_stdin(&args.profile) && args.output.is_none() {
        anyhow::bail!("a profile read from - (stdin) needs --output (-o) for the symbolized one");
    }
    let profile = load::profile(&args.profile)?;
    let options = symbolize::Options {
        binaries: args.binary.clone(),
        debug_dirs: args.debug_dir.clone(),
        same_build_id_only: false,
        full_stacks: args.full_stacks,
    };
    let symbolized = symbolize::symbolize(&options, profile)?;
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| default_output(&args.profile));
    output::write_atomically(&path, |w| {
        w.write_all(&symbolized.profile.encode())?;
        Ok(())
    })?;
    writeln!(
        out,
        "Wrote {} ({} locations symbolized, {} left as addresses)",
        path.display(),
        symbolized.resolved,
        symbolized.unresolved
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
