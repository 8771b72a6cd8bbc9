//! The processing thread: runs the pipeline on the source's chunks and sends each detection to
//! the main loop. It ends when the source's senders are all gone (the end of a file), on
//! [`Processing::stop`], or on a pipeline error.

use anyhow::Result;
use crossbeam_channel::{select, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::daemon::sources::microphone::Chunk;
use hark::pipeline::detector::{Detection, DetectorSettings};
use hark::pipeline::head::Head;
use hark::pipeline::Pipeline;

/// Blocks processed, and how many of them the quiet-room gate skipped.
type GateStats = (u64, u64);

/// The processing thread and the main thread's ends of the channels to it.
pub struct Processing {
    thread: JoinHandle<Result<GateStats>>,
    reload_tx: Sender<(Arc<Head>, DetectorSettings)>,
    rate_tx: Sender<u32>,
    stop_tx: Sender<()>,
}

impl Processing {
    /// Starts the thread on the pool's `full_rx` (chunks to process; each goes back on
    /// `free_tx`). Returns it and the channel its detections arrive on.
    pub fn spawn(
        pipeline: Pipeline,
        full_rx: Receiver<Chunk>,
        free_tx: Sender<Chunk>,
    ) -> (Processing, Receiver<Detection>) {
        let (event_tx, event_rx) = crossbeam_channel::unbounded::<Detection>();
        let (reload_tx, reload_rx) = crossbeam_channel::unbounded();
        let (rate_tx, rate_rx) = crossbeam_channel::unbounded::<u32>();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let inbox = Inbox {
            full_rx,
            free_tx,
            reload_rx,
            rate_rx,
            stop_rx,
        };
        let thread = std::thread::spawn(move || run(pipeline, inbox, event_tx));
        let p = Processing {
            thread,
            reload_tx,
            rate_tx,
            stop_tx,
        };
        (p, event_rx)
    }

    /// Swaps the head and its detector settings (SIGHUP) without stopping.
    pub fn replace_head(&self, head: Arc<Head>, settings: DetectorSettings) {
        let _ = self.reload_tx.send((head, settings));
    }

    /// A reopened device runs at `rate`, which may not be the one it replaces.
    pub fn set_source_rate(&self, rate: u32) {
        let _ = self.rate_tx.send(rate);
    }

    /// Ends the thread at once, even if a stalled stream still holds a sender of chunks.
    pub fn stop(&self) {
        let _ = self.stop_tx.try_send(());
    }

    /// Waits for the thread. The outer error says it panicked; the inner one is the pipeline's.
    pub fn join(self) -> Result<Result<GateStats>> {
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("processing thread panicked"))
    }
}

/// The processing thread's ends of its channels.
struct Inbox {
    full_rx: Receiver<Chunk>,
    free_tx: Sender<Chunk>,
    reload_rx: Receiver<(Arc<Head>, DetectorSettings)>,
    rate_rx: Receiver<u32>,
    stop_rx: Receiver<()>,
}

/// The thread's loop.
fn run(mut pipeline: Pipeline, inbox: Inbox, event_tx: Sender<Detection>) -> Result<GateStats> {
    let mut emit = |d: Detection| {
        let _ = event_tx.send(d);
    };
    loop {
        select! {
            recv(inbox.full_rx) -> msg => match msg {
                Ok(chunk) => {
                    pipeline.push(chunk.samples(), &mut emit)?;
                    let _ = inbox.free_tx.send(chunk);
                }
                Err(_) => break,
            },
            recv(inbox.reload_rx) -> msg => if let Ok((h, s)) = msg {
                pipeline.replace_head(h, Some(s));
            },
            recv(inbox.rate_rx) -> msg => if let Ok(r) = msg {
                pipeline.set_source_rate(r)?;
            },
            recv(inbox.stop_rx) -> _ => break,
        }
    }
    pipeline.finish(&mut emit)?;
    Ok(pipeline.gate_stats())
}
