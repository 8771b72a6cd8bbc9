//! `hark serve`: runs the servers, and says what they did when they stop.

use anyhow::Result;

use crate::serve::ServeOptions;

/// `hark serve`: the servers until SIGINT/SIGTERM, then a one-line summary on stderr.
pub fn run(opts: &ServeOptions) -> Result<()> {
    let s = crate::serve::serve(opts)?;
    let peak = s.peak_rss_kb.map_or(String::new(), |kb| {
        format!(", peak memory {:.1} MB", kb as f64 / 1024.0)
    });
    let c = s.counts;
    eprintln!(
        "hark: stopped after {:.1} s: {} connection(s), {} detection(s), {} refused, {} dropped{peak}",
        s.seconds, c.connections, c.detections, c.refused, c.dropped
    );
    Ok(())
}
