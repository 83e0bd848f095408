//! Output files are written whole or not at all, by the profile crate's
//! [`heapprof_pprof::write_atomically`]; this adds the CLI's wording.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Result};
use heapprof_pprof::Error;

/// Writes what `fill` produces to `path`, atomically.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    heapprof_pprof::write_atomically(path, fill).map_err(|e| match e.downcast::<Error>() {
        Ok(Error::Io { source, .. }) => anyhow!("cannot write {}: {source}", path.display()),
        Ok(other) => other.into(),
        Err(e) => e,
    })
}
