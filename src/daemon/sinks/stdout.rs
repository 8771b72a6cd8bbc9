//! The stdout sink: one JSON line per event (off with `hark listen --quiet`).

use anyhow::Result;
use std::io::Write;

use super::Sink;
use hark::pipeline::detector::Detection;

/// Prints each event's JSON line on stdout, flushed at once.
pub struct Stdout;

impl Sink for Stdout {
    fn event(&mut self, _d: &Detection, json: &str) -> Result<()> {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{json}");
        let _ = out.flush();
        Ok(())
    }
}
