//! The progress bar of the long steps (embedding takes, training, building the negative bank).

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

/// Runs `work` under a progress bar labelled `label`; `work` moves the bar by calling the
/// function it is given with (done, total). The bar is cleared when `work` succeeds; on an
/// error it stays where it stopped, above the error message.
pub fn with_bar<T>(
    label: &'static str,
    work: impl FnOnce(&dyn Fn(u64, u64)) -> Result<T>,
) -> Result<T> {
    let pb = ProgressBar::new(1);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap()
            .progress_chars("=> "),
    );
    pb.set_message(label);
    let out = work(&|done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })?;
    pb.finish_and_clear();
    Ok(out)
}
