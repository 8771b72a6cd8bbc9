//! The whole pipeline, source-agnostic: samples in at any rate, detections out.
//!
//! resample (16 kHz) -> frontend (log-mel, 80 ms blocks) -> embedding (base model) -> head ->
//! detector. `hark detect`, `hark listen --input` and `hark listen` all drive this one type; only
//! where the samples come from differs.

pub mod detector;
pub mod embedding;
pub mod frontend;
mod gate;
pub mod head;
pub mod resample;

use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;

use crate::assets::Assets;
use crate::pipeline::detector::{Detection, Detector, DetectorSettings};
use crate::pipeline::embedding::{Embedder, DIM};
use crate::pipeline::frontend::Frontend;
use crate::pipeline::head::{Head, Scorer};
use crate::pipeline::resample::Resampler;
use crate::Result;
use gate::Gate;

/// Per-block work after the front end: the gate and the base model.
struct Stage {
    embedder: Embedder,
    embedding: [f32; DIM],
    blocks: usize,
    gate: Gate,
    /// Blocks for which the base model was skipped.
    gated: u64,
}

impl Stage {
    fn new(embedder: Embedder) -> Stage {
        Stage {
            embedder,
            embedding: [0.0; DIM],
            blocks: 0,
            gate: Gate::new(),
            gated: 0,
        }
    }

    /// Starts a new stream: the base model's context, the block count and the gate's floor
    /// start again; the gate's switch is kept.
    fn restart(&mut self) {
        self.embedder.reset();
        self.embedding = [0.0; DIM];
        self.blocks = 0;
        let enabled = self.gate.enabled;
        self.gate = Gate::new();
        self.gate.enabled = enabled;
        self.gated = 0;
    }

    fn block(
        &mut self,
        block: &[f32],
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<()> {
        let loud = (block.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 2.0) * 10.0;
        let time = crate::pipeline::embedding::block_end_time(self.blocks);
        self.blocks += 1;
        if self.gate.open(loud) {
            self.embedder.push_block(block, &mut self.embedding)?;
            on_embedding(time, Some(&self.embedding));
        } else {
            self.embedder.slide(block);
            self.gated += 1;
            on_embedding(time, None);
        }
        Ok(())
    }
}

/// The feature half of the pipeline: samples -> embeddings, one per 80 ms block (or `None`
/// where the quiet-room gate skipped the base model).
pub struct Features {
    resampler: Resampler,
    frontend: Frontend,
    stage: Stage,
}

impl Features {
    pub fn new(embedder: Embedder, source_rate: u32) -> Result<Self> {
        Ok(Features {
            resampler: Resampler::new(source_rate)?,
            frontend: Frontend::new(),
            stage: Stage::new(embedder),
        })
    }

    /// Starts a new stream at `source_rate` from its beginning, as [`Features::new`] would with
    /// the same base model: nothing of the old stream is kept but the gate's switch.
    pub fn restart(&mut self, source_rate: u32) -> Result<()> {
        self.resampler = Resampler::new(source_rate)?;
        self.frontend.reset();
        self.stage.restart();
        Ok(())
    }

    /// The base model, to use it between streams (for offline embedding, say); the next
    /// [`Features::restart`] resets its streaming state.
    pub fn embedder_mut(&mut self) -> &mut Embedder {
        &mut self.stage.embedder
    }

    /// Turns the quiet-room gate on or off (on by default).
    pub fn set_gate(&mut self, on: bool) {
        self.stage.gate.enabled = on;
    }

    /// (blocks seen, blocks for which the gate skipped the base model).
    pub fn gate_stats(&self) -> (u64, u64) {
        (self.stage.blocks as u64, self.stage.gated)
    }

    /// Feeds mono samples at the source rate; calls `on_embedding(stream_time, embedding)` for
    /// each new 80 ms block (`None` when gated). After an error (the base model failed) the
    /// rest of `samples` is dropped.
    pub fn push(
        &mut self,
        samples: &[f32],
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<()> {
        let Features {
            resampler,
            frontend,
            stage,
        } = self;
        resampler.push(samples, |s16| {
            frontend.push(s16, |block| stage.block(block, on_embedding))
        })
    }

    /// Flushes the resampler at end of stream.
    pub fn finish(&mut self, on_embedding: &mut dyn FnMut(f64, Option<&[f32]>)) -> Result<()> {
        let Features {
            resampler,
            frontend,
            stage,
        } = self;
        resampler.flush(|s16| frontend.push(s16, |block| stage.block(block, on_embedding)))
    }
}

/// The decision half: embeddings -> head scores -> detector.
pub struct Decision {
    head: Arc<Head>,
    scorer: Scorer,
    detector: Detector,
}

impl Decision {
    /// `settings` overrides the head's own detector defaults when given.
    pub fn new(head: Arc<Head>, settings: Option<DetectorSettings>) -> Self {
        let settings = settings.unwrap_or_else(|| head.detector.clone());
        Decision {
            scorer: Scorer::new(&head),
            detector: Detector::new(head.labels.clone(), settings),
            head,
        }
    }

    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    /// Starts a new stream: forgets the recent embeddings, the smoothing and the refractory
    /// time; keeps the head and the detector settings.
    pub fn restart(&mut self) {
        self.scorer = Scorer::new(&self.head);
        self.detector = Detector::new(self.head.labels.clone(), self.detector.settings().clone());
    }

    /// Scores one embedding (the window ending at `time`) and returns a detection if one fires.
    /// `None` (a window the gate skipped) scores zero and restarts the head's context.
    pub fn push(&mut self, time: f64, embedding: Option<&[f32]>) -> Option<Detection> {
        let Some(embedding) = embedding else {
            self.scorer.reset();
            self.scorer.scores.fill(0.0);
            return self
                .detector
                .push(time, &self.scorer.scores, &self.scorer.similarity);
        };
        if !self.scorer.push(&self.head, embedding) {
            return None;
        }
        self.detector
            .push(time, &self.scorer.scores, &self.scorer.similarity)
    }
}

/// The whole pipeline for one stream.
pub struct Pipeline {
    features: Features,
    decision: Decision,
}

impl Pipeline {
    pub fn new(
        embedder: Embedder,
        head: Arc<Head>,
        source_rate: u32,
        settings: Option<DetectorSettings>,
    ) -> Result<Self> {
        Ok(Pipeline {
            features: Features::new(embedder, source_rate)?,
            decision: Decision::new(head, settings),
        })
    }

    /// Loads the base model and builds a pipeline around `head`.
    pub fn load(
        assets: &Assets,
        head: Arc<Head>,
        source_rate: u32,
        settings: Option<DetectorSettings>,
    ) -> Result<Self> {
        Self::new(Embedder::load(assets)?, head, source_rate, settings)
    }

    /// Starts a new stream at `source_rate` from its beginning, with the same base model, head
    /// and settings: what a new pipeline would do, without loading the base model again.
    pub fn restart(&mut self, source_rate: u32) -> Result<()> {
        self.features.restart(source_rate)?;
        self.decision.restart();
        Ok(())
    }

    /// Feeds mono samples at the source rate (int16 scale); calls `on_detection` for each event.
    pub fn push(&mut self, samples: &[f32], on_detection: &mut dyn FnMut(Detection)) -> Result<()> {
        let decision = &mut self.decision;
        self.features.push(samples, &mut |t, e| {
            if let Some(d) = decision.push(t, e) {
                on_detection(d)
            }
        })
    }

    /// Ends the stream, flushing buffered samples.
    pub fn finish(&mut self, on_detection: &mut dyn FnMut(Detection)) -> Result<()> {
        let decision = &mut self.decision;
        self.features.finish(&mut |t, e| {
            if let Some(d) = decision.push(t, e) {
                on_detection(d)
            }
        })
    }

    /// Runs the pipeline on its own thread: audio chunks in on `audio`, detections out on the
    /// returned channel. The thread ends when `audio` is closed (after flushing) or on error.
    pub fn spawn(
        mut self,
        audio: Receiver<Vec<f32>>,
    ) -> (std::thread::JoinHandle<Result<()>>, Receiver<Detection>) {
        let (tx, rx): (Sender<Detection>, Receiver<Detection>) = crossbeam_channel::unbounded();
        let h = std::thread::spawn(move || {
            let mut send = |d: Detection| {
                let _ = tx.send(d);
            };
            for chunk in audio {
                self.push(&chunk, &mut send)?;
            }
            self.finish(&mut send)
        });
        (h, rx)
    }
}

/// Runs a whole signal at `rate` through `pipeline` in 80 ms chunks, as a microphone would
/// deliver it, and ends the stream; returns the detections. The pipeline must be at the start
/// of a stream at `rate` (new, or restarted).
pub fn detect_signal(
    pipeline: &mut Pipeline,
    samples: &[f32],
    rate: u32,
) -> Result<Vec<Detection>> {
    let chunk = (rate as usize * 80 / 1000).max(1);
    let mut out = Vec::new();
    for c in samples.chunks(chunk) {
        pipeline.push(c, &mut |d| out.push(d))?;
    }
    pipeline.finish(&mut |d| out.push(d))?;
    Ok(out)
}

impl Pipeline {
    /// Turns the quiet-room gate on or off (on by default).
    pub fn set_gate(&mut self, on: bool) {
        self.features.set_gate(on);
    }

    /// (blocks seen, blocks for which the gate skipped the base model).
    pub fn gate_stats(&self) -> (u64, u64) {
        self.features.gate_stats()
    }

    /// Takes samples at a new source rate from now on (a capture device reopened at another
    /// rate). Samples still in the old resampler are dropped.
    pub fn set_source_rate(&mut self, rate: u32) -> Result<()> {
        self.features.resampler = Resampler::new(rate)?;
        Ok(())
    }

    /// Swaps in a new head and detector settings without touching the stream (SIGHUP reload).
    pub fn replace_head(&mut self, head: Arc<Head>, settings: Option<DetectorSettings>) {
        self.decision = Decision::new(head, settings);
    }
}
