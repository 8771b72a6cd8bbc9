//! The processing thread: runs the pipeline on the source's chunks and sends each detection to
//! the main loop as an [`Event`] with its id and JSON line. With `--keep-audio` it also keeps
//! the recent 16 kHz samples in a [`Ring`] and hands each event's clip to the writer
//! ([`keep_audio`](crate::daemon::keep_audio)). It ends when the source's senders are all gone
//! (the end of a file), on [`Processing::stop`], or on a pipeline error.

use anyhow::Result;
use crossbeam_channel::{select, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use crate::daemon::keep_audio::{event_id, Clips, Ring, RING_SAMPLES};
use crate::daemon::sinks;

use crate::daemon::sources::microphone::Chunk;
use hark::pipeline::detector::{Detection, DetectorSettings};
use hark::pipeline::head::Head;
use hark::pipeline::word_check::SharedWordModel;
use hark::pipeline::Pipeline;

/// Blocks processed, and how many of them the quiet-room gate skipped.
type GateStats = (u64, u64);

/// The processing thread and the main thread's ends of the channels to it.
pub struct Processing {
    thread: JoinHandle<Result<GateStats>>,
    reload_tx: Sender<Reload>,
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
        clips: Option<Clips>,
    ) -> (Processing, Receiver<Event>) {
        let (event_tx, event_rx) = crossbeam_channel::unbounded::<Event>();
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
        let out = Emitter {
            tx: event_tx,
            count: 0,
            clips,
        };
        let thread = std::thread::spawn(move || run(pipeline, inbox, out));
        let p = Processing {
            thread,
            reload_tx,
            rate_tx,
            stop_tx,
        };
        (p, event_rx)
    }

    /// Swaps the head, its detector settings and the word check's model (SIGHUP) without
    /// stopping.
    pub fn replace_head(
        &self,
        head: Arc<Head>,
        settings: DetectorSettings,
        word_model: Option<SharedWordModel>,
    ) {
        let _ = self.reload_tx.send((head, settings, word_model));
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

/// A reload: the head, its settings, the word check's model.
type Reload = (Arc<Head>, DetectorSettings, Option<SharedWordModel>);

/// The processing thread's ends of its channels.
struct Inbox {
    full_rx: Receiver<Chunk>,
    free_tx: Sender<Chunk>,
    reload_rx: Receiver<Reload>,
    rate_rx: Receiver<u32>,
    stop_rx: Receiver<()>,
}

/// A detection as the main loop receives it, with its JSON line (which holds its `id`, and its
/// clip's path as `audio` when the clip is kept).
pub struct Event {
    pub detection: Detection,
    pub json: String,
}

/// Turns detections into events: ids, JSON lines, clips.
struct Emitter {
    tx: Sender<Event>,
    /// Events so far (the id's number).
    count: u64,
    clips: Option<Clips>,
}

impl Emitter {
    /// One detection: its id, its clip (when kept and a slot is free) and its event.
    fn emit(&mut self, d: Detection) {
        let wall = SystemTime::now();
        self.count += 1;
        let id = event_id(wall, self.count);
        let audio = match &self.clips {
            Some(c) if c.has_room() => Some(c.path(&id)),
            Some(c) => {
                c.count_dropped();
                None
            }
            None => None,
        };
        let json = sinks::event_json_kept(&d, &id, audio.as_deref(), wall);
        if let (Some(c), Some(wav)) = (&mut self.clips, audio) {
            c.schedule(d.time, wav, json.clone());
        }
        let _ = self.tx.send(Event { detection: d, json });
    }

    /// Runs `samples` through the pipeline; with a ring, keeps them and hands on the clips due.
    fn push(&mut self, p: &mut Pipeline, ring: Option<&mut Ring>, samples: &[f32]) -> Result<()> {
        let Some(ring) = ring else {
            return Ok(p.push(samples, &mut |d| self.emit(d))?);
        };
        p.push_tapped(samples, &mut |x| ring.push(x), &mut |d| self.emit(d))?;
        if let Some(c) = &mut self.clips {
            c.service(ring, false);
        }
        Ok(())
    }

    /// Ends the stream; the last clips are written before this returns.
    fn finish(&mut self, p: &mut Pipeline, ring: Option<&mut Ring>) -> Result<()> {
        let Some(ring) = ring else {
            return Ok(p.finish(&mut |d| self.emit(d))?);
        };
        p.finish_tapped(&mut |x| ring.push(x), &mut |d| self.emit(d))?;
        if let Some(c) = &mut self.clips {
            c.finish(ring);
        }
        Ok(())
    }
}

/// The thread's loop.
fn run(mut pipeline: Pipeline, inbox: Inbox, mut out: Emitter) -> Result<GateStats> {
    // The one allocation of the ring, before the first block.
    let mut ring = out
        .clips
        .as_ref()
        .map(|_| Ring::with_capacity(RING_SAMPLES));
    loop {
        select! {
            recv(inbox.full_rx) -> msg => match msg {
                Ok(chunk) => {
                    out.push(&mut pipeline, ring.as_mut(), chunk.samples())?;
                    let _ = inbox.free_tx.send(chunk);
                }
                Err(_) => break,
            },
            recv(inbox.reload_rx) -> msg => if let Ok((h, s, m)) = msg {
                pipeline.replace_head(h, Some(s));
                pipeline.set_word_check(m);
            },
            recv(inbox.rate_rx) -> msg => if let Ok(r) = msg {
                pipeline.set_source_rate(r)?;
            },
            recv(inbox.stop_rx) -> _ => break,
        }
    }
    out.finish(&mut pipeline, ring.as_mut())?;
    Ok(pipeline.gate_stats())
}
