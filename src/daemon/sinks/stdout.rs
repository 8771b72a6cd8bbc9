//! The stdout sink: one JSON line per event (off with `hark listen --quiet`).
//!
//! Lines are written by a thread of their own through a bounded queue, so a stdout that nobody
//! reads (a full pipe) never stalls the daemon: when the queue is full, or stdout is gone, an
//! event's line is dropped and counted, as a slow socket client would be.

use anyhow::Result;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Sink;
use crate::daemon::Summary;
use hark::pipeline::detector::Detection;

/// Lines waiting for stdout, at most.
const QUEUE: usize = 256;
/// How long the daemon waits at exit for the queued lines to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// Prints each event's JSON line on stdout, flushed at once, from its own thread.
pub struct Stdout {
    lines: Option<Sender<String>>,
    /// Closed by the writer thread when it ends.
    done: Receiver<()>,
    /// Lines handed to the writer, and lines it wrote.
    sent: u64,
    written: Arc<AtomicU64>,
}

impl Stdout {
    /// Starts the writer thread.
    pub fn start() -> Stdout {
        let (lines, rx) = crossbeam_channel::bounded::<String>(QUEUE);
        let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
        let written = Arc::new(AtomicU64::new(0));
        let count = written.clone();
        std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || {
                let _done = done_tx; // dropped when this thread ends
                let mut out = std::io::stdout();
                for line in rx {
                    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                        break; // stdout is gone: later lines are dropped and counted
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
            .expect("spawn the stdout thread");
        Stdout {
            lines: Some(lines),
            done,
            sent: 0,
            written,
        }
    }
}

impl Sink for Stdout {
    fn event(&mut self, _d: &Detection, json: &str) -> Result<()> {
        let Some(lines) = &self.lines else {
            return Ok(());
        };
        self.sent += 1;
        // A full queue or a writer that has ended: the line is lost, and counted at the end.
        let _: Result<(), TrySendError<String>> = lines.try_send(json.to_string());
        Ok(())
    }

    fn finish(&mut self, summary: &mut Summary) {
        drop(self.lines.take());
        // The writer ends once the queue is written; a stdout nobody reads is not waited for.
        let _ = self.done.recv_timeout(FLUSH_WAIT);
        summary.dropped_stdout = self.sent - self.written.load(Ordering::Relaxed);
    }
}
