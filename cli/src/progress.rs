//! A progress bar on stderr while a command reads many or large files,
//! only when stderr is a terminal: a pipe, a log or a test sees nothing of
//! it, and it is cleared before the command's answer or error.

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Files this large are worth a bar even alone (bytes).
const LARGE: u64 = 4 << 20;

/// The bar over reading a list of files, or nothing.
pub struct Reading {
    bar: Option<ProgressBar>,
}

impl Reading {
    /// A bar over reading `files` (of `bytes` in all), shown when stderr is
    /// a terminal and there are several files, or large ones.
    pub fn new(files: usize, bytes: u64) -> Reading {
        let worth_it = files > 1 || bytes >= LARGE;
        if !worth_it || !std::io::stderr().is_terminal() {
            return Reading { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "heapprof: reading {pos_files} [{bar:30}] {binary_bytes}/{binary_total_bytes} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("pos_files", move |_: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{files} files");
            })
            .progress_chars("=> "),
        );
        Reading { bar: Some(bar) }
    }

    /// `path`, of `bytes`, has been read.
    pub fn read(&self, path: &Path, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
            let name = path.file_name().unwrap_or(path.as_os_str());
            bar.set_message(name.to_string_lossy().into_owned());
        }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
