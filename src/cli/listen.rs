//! `hark listen`: runs the daemon, and says what it did when it stops.

use anyhow::Result;

use crate::daemon::ListenOptions;

/// `hark listen`: the daemon until it stops, then a one-line summary on stderr: events, drops,
/// the share of blocks the quiet-room gate spared the base model, and the peak memory.
pub fn run(opts: ListenOptions) -> Result<()> {
    let s = crate::daemon::listen(opts)?;
    let peak = s.peak_rss_kb.map_or(String::new(), |kb| {
        format!(", peak memory {:.1} MB", kb as f64 / 1024.0)
    });
    let skipped = if s.blocks > 0 {
        format!(
            ", base model skipped for {:.0}% of blocks",
            100.0 * s.gated_blocks as f64 / s.blocks as f64
        )
    } else {
        String::new()
    };
    let unread = if s.dropped_stdout > 0 {
        format!(
            ", {} event(s) not written to stdout (nobody read it)",
            s.dropped_stdout
        )
    } else {
        String::new()
    };
    let clips = s.kept_clips.map_or(String::new(), |(kept, dropped)| {
        format!(", {kept} clip(s) kept, {dropped} not kept")
    });
    eprintln!(
        "hark: stopped after {:.1} s: {} event(s), {} dropped sample(s), {} dropped client(s){unread}{clips}{skipped}{peak}",
        s.seconds, s.events, s.dropped_samples, s.dropped_clients
    );
    Ok(())
}
