//! Writing files whole or not at all, for profiles and everything rendered
//! from them: readers (a scraper, `go tool pprof` on a dump that is being
//! rewritten) never see half a file.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::Error;

/// Writes what `fill` produces to `path` through a temporary file in the
/// same directory (`.NAME.PID.tmp`), synced and then renamed over `path`.
/// On any error the temporary file is removed and `path` is untouched;
/// errors of the file system come back as [`Error::Io`] naming `path`,
/// errors of `fill` as they are.
///
/// ```
/// let path = std::env::temp_dir().join(format!("heapprof-doc-{}.txt", std::process::id()));
/// heapprof_pprof::write_atomically(&path, |out| {
///     out.write_all(b"whole").map_err(|e| heapprof_pprof::Error::io("whole", e))
/// })
/// .unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"whole");
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn write_atomically<E: From<Error>>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    let io_error = |e| E::from(Error::io(path, e));
    let file_name = path.file_name().ok_or_else(|| {
        io_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = path.with_file_name(temp_name);
    let result = (|| {
        let file = fs::File::create(&temp).map_err(io_error)?;
        let mut writer = io::BufWriter::new(file);
        fill(&mut writer)?;
        let file = writer.into_inner().map_err(|e| io_error(e.into_error()))?;
        file.sync_all().map_err(io_error)?;
        fs::rename(&temp, path).map_err(io_error)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}
