//! The whole pipeline, source-agnostic: samples in at any rate, detections out.
//!
//! resample (16 kHz) -> frontend (log-mel, 80 ms blocks) -> embedding (base model) -> head ->
//! detector. `hark detect`, `hark listen --input` and `hark listen` all drive this one type; only
//! where the samples come from differs.

pub mod decision;
pub mod detector;
pub mod embedding;
pub mod frontend;
mod gate;
pub mod head;
pub mod resample;
pub mod word_check;

use crossbeam_channel::{Receiver, Sender};
use std::cell::RefCell;
use std::sync::Arc;

use crate::assets::Assets;
use crate::audio::ring::Ring;
pub use crate::pipeline::decision::Decision;
use crate::pipeline::decision::Unheard;
use crate::pipeline::detector::{Detection, DetectorSettings};
use crate::pipeline::embedding::batch::Batch;
use crate::pipeline::embedding::{BaseModel, Embedder, StreamState, DIM};
use crate::pipeline::frontend::{Frontend, BLOCK_FRAMES, N_MELS};
use crate::pipeline::head::Head;
use crate::pipeline::resample::Resampler;
use crate::pipeline::word_check::check::{audio_range, embedding_of, Hear};
use crate::pipeline::word_check::SharedWordModel;
use crate::{Error, Result};
use gate::Gate;

/// Per-block work after the front end: the gate and the base model's state for this stream.
struct Stage {
    state: StreamState,
    embedding: [f32; DIM],
    blocks: usize,
    gate: Gate,
    /// Blocks for which the base model was skipped.
    gated: u64,
    /// Stream time of the block waiting in a [`Batch`].
    pending: f64,
}

impl Stage {
    fn new(state: StreamState) -> Stage {
        Stage {
            state,
            embedding: [0.0; DIM],
            blocks: 0,
            gate: Gate::new(),
            gated: 0,
            pending: 0.0,
        }
    }

    /// Starts a new stream: the base model's context, the block count and the gate's floor
    /// start again; the gate's switch is kept.
    fn restart(&mut self) {
        self.state.reset();
        self.embedding = [0.0; DIM];
        self.blocks = 0;
        let enabled = self.gate.enabled;
        self.gate = Gate::new();
        self.gate.enabled = enabled;
        self.gated = 0;
    }

    /// The gate's verdict on the next block: its stream time, and whether the base model
    /// runs on it (if not, the block is slid into the context here).
    fn next(&mut self, block: &[f32]) -> (f64, bool) {
        let loud = (block.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 2.0) * 10.0;
        let time = crate::pipeline::embedding::block_end_time(self.blocks);
        self.blocks += 1;
        if self.gate.open(loud) {
            return (time, true);
        }
        self.state.slide(block);
        self.gated += 1;
        (time, false)
    }

    fn block(
        &mut self,
        model: &mut BaseModel,
        block: &[f32],
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<()> {
        match self.next(block) {
            (time, true) => self.alone(model, block, time, on_embedding)?,
            (time, false) => on_embedding(time, None),
        }
        Ok(())
    }

    /// The base model on one block of this stream alone.
    fn alone(
        &mut self,
        model: &mut BaseModel,
        block: &[f32],
        time: f64,
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<()> {
        model.push_block(&mut self.state, block, &mut self.embedding)?;
        on_embedding(time, Some(&self.embedding));
        Ok(())
    }
}

/// The feature half of the pipeline: samples -> embeddings, one per 80 ms block (or `None`
/// where the quiet-room gate skipped the base model).
///
/// Made with [`Features::new`] it owns its base model; made with [`Features::with_state`] it
/// holds only its stream's state and runs through a model lent at each
/// [`Features::push_with`] (or [`Features::push_blocks_with`]), so many streams share a few
/// models.
pub struct Features {
    resampler: Resampler,
    frontend: Frontend,
    stage: Stage,
    /// The base model, when these features have one of their own (its state serves offline
    /// embedding between streams; the stream's state is the stage's).
    own: Option<Embedder>,
}

impl Features {
    /// Features with a base model of their own.
    pub fn new(mut embedder: Embedder, source_rate: u32) -> Result<Self> {
        let mut features = Self::with_state(embedder.model_mut().new_state(), source_rate)?;
        features.own = Some(embedder);
        Ok(features)
    }

    /// Features that hold only their stream's base-model state (from
    /// [`BaseModel::new_state`]); feed them with [`Features::push_with`].
    pub fn with_state(state: StreamState, source_rate: u32) -> Result<Self> {
        Ok(Features {
            resampler: Resampler::new(source_rate)?,
            frontend: Frontend::new(),
            stage: Stage::new(state),
            own: None,
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

    /// The base model of these features' own, to use it between streams (for offline
    /// embedding, say); it does not touch the stream's state.
    ///
    /// # Panics
    /// For features made [`Features::with_state`] (they have no model of their own).
    pub fn embedder_mut(&mut self) -> &mut Embedder {
        self.own
            .as_mut()
            .expect("embedder_mut: these features borrow their base model")
    }

    /// How many more samples at the source rate complete the next 80 ms block (at least 1).
    pub fn samples_to_block(&self) -> usize {
        self.resampler
            .input_for(self.frontend.samples_to_block())
            .max(1)
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
    /// rest of `samples` is dropped. Needs a base model of its own ([`Features::new`]).
    pub fn push(
        &mut self,
        samples: &[f32],
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<()> {
        self.with_own_model(|f, model| f.push_with(model, samples, on_embedding))
    }

    /// Flushes the resampler at end of stream. Needs a base model of its own.
    pub fn finish(&mut self, on_embedding: &mut dyn FnMut(f64, Option<&[f32]>)) -> Result<()> {
        self.with_own_model(|f, model| f.finish_with(model, on_embedding))
    }

    /// [`Features::push`] through a base model lent for this call.
    pub fn push_with(
        &mut self,
        model: &mut BaseModel,
        samples: &[f32],
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<()> {
        self.push_with_tap(model, samples, &mut |_| {}, on_embedding)
    }

    /// [`Features::push_with`] that also hands each run of resampled 16 kHz samples to `tap`,
    /// before the embeddings they complete (sample `n` of the 16 kHz stream is at `n / 16000` s
    /// of stream time). The runs are at most an 80 ms block long, so a tap's ring never has to
    /// hold more than a block past the embedding being made.
    pub fn push_with_tap(
        &mut self,
        model: &mut BaseModel,
        samples: &[f32],
        tap: &mut dyn FnMut(&[f32]),
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<()> {
        let Features {
            resampler,
            frontend,
            stage,
            ..
        } = self;
        resampler.push(samples, |s16| {
            in_runs(s16, tap, |run| {
                frontend.push(run, |block| stage.block(model, block, on_embedding))
            })
        })
    }

    /// The first half of [`Features::push_with`], which needs no base model: runs `samples`
    /// through the resampler and the front end and appends each finished 80 ms block of
    /// log-mel frames to `blocks`. Hand them to [`Features::push_blocks_with`], in order.
    pub fn push_frontend(&mut self, samples: &[f32], blocks: &mut Vec<f32>) -> Result<()> {
        self.push_frontend_tapped(samples, &mut |_| {}, blocks)
    }

    /// [`Features::push_frontend`] that also hands the 16 kHz samples to `tap`.
    pub fn push_frontend_tapped(
        &mut self,
        samples: &[f32],
        tap: &mut dyn FnMut(&[f32]),
        blocks: &mut Vec<f32>,
    ) -> Result<()> {
        let Features {
            resampler,
            frontend,
            ..
        } = self;
        resampler.push(samples, |s16| {
            tap(s16);
            frontend.push(s16, |block| {
                blocks.extend_from_slice(block);
                Ok(())
            })
        })
    }

    /// The second half of [`Features::push_with`]: runs blocks from
    /// [`Features::push_frontend`] through the gate and a base model lent for this call.
    /// After an error the rest of `blocks` is dropped.
    pub fn push_blocks_with(
        &mut self,
        model: &mut BaseModel,
        blocks: &[f32],
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<()> {
        for block in blocks.chunks_exact(BLOCK_FRAMES * N_MELS) {
            self.stage.block(model, block, on_embedding)?;
        }
        Ok(())
    }

    /// The next block from [`Features::push_frontend`] through the gate, added to `batch` if
    /// the base model runs on it and the stream is warm: then its place in the batch, and
    /// after [`Batch::run`], [`Features::end_block`] gives the stream its embedding. Otherwise
    /// the block is done here (`None`): gated, or run alone through `model` (a cold start).
    pub fn begin_block(
        &mut self,
        model: &mut BaseModel,
        block: &[f32],
        batch: &mut Batch,
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<Option<usize>> {
        let stage = &mut self.stage;
        let (time, open) = stage.next(block);
        if !open {
            on_embedding(time, None);
            return Ok(None);
        }
        if let Some(i) = batch.add(&mut stage.state, block) {
            stage.pending = time;
            return Ok(Some(i));
        }
        stage.alone(model, block, time, on_embedding)?;
        Ok(None)
    }

    /// The embedding of the block at place `i` of `batch`, after its run.
    pub fn end_block(
        &mut self,
        batch: &Batch,
        i: usize,
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) {
        let stage = &mut self.stage;
        batch.take(i, &mut stage.state, &mut stage.embedding);
        on_embedding(stage.pending, Some(&stage.embedding));
    }

    /// [`Features::finish`] through a base model lent for this call.
    pub fn finish_with(
        &mut self,
        model: &mut BaseModel,
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<()> {
        self.finish_with_tap(model, &mut |_| {}, on_embedding)
    }

    /// [`Features::finish_with`] that hands the last 16 kHz samples to `tap` too.
    pub fn finish_with_tap(
        &mut self,
        model: &mut BaseModel,
        tap: &mut dyn FnMut(&[f32]),
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<()> {
        let Features {
            resampler,
            frontend,
            stage,
            ..
        } = self;
        resampler.flush(|s16| {
            in_runs(s16, tap, |run| {
                frontend.push(run, |block| stage.block(model, block, on_embedding))
            })
        })
    }

    fn with_own_model(
        &mut self,
        run: impl FnOnce(&mut Self, &mut BaseModel) -> Result<()>,
    ) -> Result<()> {
        let Some(mut own) = self.own.take() else {
            return Err(Error::model(
                "these features have no base model of their own: feed them with push_with",
            ));
        };
        let result = run(self, own.model_mut());
        self.own = Some(own);
        result
    }
}

/// Hands `s16` to `tap` and then to `then` in runs of at most one 80 ms block.
fn in_runs(
    s16: &[f32],
    tap: &mut dyn FnMut(&[f32]),
    mut then: impl FnMut(&[f32]) -> Result<()>,
) -> Result<()> {
    for run in s16.chunks(crate::pipeline::frontend::BLOCK_SAMPLES) {
        tap(run);
        then(run)?;
    }
    Ok(())
}

/// The word check's ear for one stream: its recent 16 kHz audio and the word model (shared
/// with other streams).
struct Ear {
    model: SharedWordModel,
    recent: RefCell<Ring>,
    /// One candidate's audio, cut from `recent` (allocated once).
    cut: Vec<f32>,
}

/// Seconds of audio an ear keeps: a candidate's audio when its cosine is asked is at most
/// `BEFORE + AFTER` plus a window old, and up to a second more may be pushed at once after it
/// (callers push at most a second at a time; see [`Pipeline::push_frontend`]).
const EAR_SECONDS: usize = 4;

impl Ear {
    fn new(model: SharedWordModel) -> Ear {
        let rate = crate::pipeline::frontend::SAMPLE_RATE as usize;
        Ear {
            model,
            recent: RefCell::new(Ring::with_capacity(EAR_SECONDS * rate)),
            cut: Vec::with_capacity(crate::pipeline::word_check::WINDOW),
        }
    }
}

/// The word check's [`Hear`] through an ear.
struct Hearing<'a> {
    model: &'a SharedWordModel,
    recent: &'a RefCell<Ring>,
    cut: &'a mut Vec<f32>,
}

impl Hear for Hearing<'_> {
    fn hear(&mut self, start: f64) -> Option<Vec<f32>> {
        let (from, to) = audio_range(start);
        self.recent.borrow().copy_out(from, to, self.cut);
        let mut model = self.model.lock().ok()?;
        embedding_of(&mut model, self.cut)
    }
}

/// A tap: each run of 16 kHz samples.
type Tap<'a> = dyn FnMut(&[f32]) + 'a;
/// The feature half's callback for each embedding.
type OnEmbedding<'a> = dyn FnMut(f64, Option<&[f32]>) + 'a;

/// The whole pipeline for one stream.
pub struct Pipeline {
    features: Features,
    decision: Decision,
    /// The word check's ear, when the check is on.
    ear: Option<Ear>,
}

impl Pipeline {
    /// A pipeline with a base model of its own.
    pub fn new(
        embedder: Embedder,
        head: Arc<Head>,
        source_rate: u32,
        settings: Option<DetectorSettings>,
    ) -> Result<Self> {
        let features = Features::new(embedder, source_rate)?;
        Ok(Self::assemble(features, head, settings))
    }

    /// Loads the base model (and the word model, when the head has a word check) and builds a
    /// pipeline around `head`.
    pub fn load(
        assets: &Assets,
        head: Arc<Head>,
        source_rate: u32,
        settings: Option<DetectorSettings>,
    ) -> Result<Self> {
        let model = crate::pipeline::word_check::model_for(assets, &head)?;
        let mut p = Self::new(Embedder::load(assets)?, head, source_rate, settings)?;
        p.set_word_check(model);
        Ok(p)
    }

    /// Starts a new stream at `source_rate` from its beginning, with the same base model, head
    /// and settings: what a new pipeline would do, without loading the base model again.
    pub fn restart(&mut self, source_rate: u32) -> Result<()> {
        self.features.restart(source_rate)?;
        self.decision.restart();
        if let Some(ear) = &mut self.ear {
            ear.recent.get_mut().clear();
        }
        Ok(())
    }

    /// A pipeline that holds only its stream's base-model state (from
    /// [`BaseModel::new_state`]), for a model lent at each [`Pipeline::push_blocks_with`].
    pub fn with_state(
        state: StreamState,
        head: Arc<Head>,
        source_rate: u32,
        settings: Option<DetectorSettings>,
    ) -> Result<Self> {
        let features = Features::with_state(state, source_rate)?;
        Ok(Self::assemble(features, head, settings))
    }

    fn assemble(features: Features, head: Arc<Head>, settings: Option<DetectorSettings>) -> Self {
        Pipeline {
            features,
            decision: Decision::new(head, settings, false),
            ear: None,
        }
    }

    /// Turns the word check on, through `model` (it checks only heads that have one: see
    /// [`word_check::model_for`]), or off (`None`). The stream's recent audio starts empty,
    /// unless the model is the one already in use.
    pub fn set_word_check(&mut self, model: Option<SharedWordModel>) {
        let same = match (&self.ear, &model) {
            (Some(ear), Some(m)) => Arc::ptr_eq(&ear.model, m),
            _ => false,
        };
        if !same {
            self.ear = model.map(Ear::new);
        }
        let head = self.decision.head().clone();
        let settings = self.decision.settings().clone();
        self.decision = Decision::new(head, Some(settings), self.ear.is_some());
    }

    /// Is the word check deciding this pipeline's events?
    pub fn word_checked(&self) -> bool {
        self.decision.checked()
    }

    /// Runs `work` on the features, with `tap` (and the ear) hearing the 16 kHz samples and
    /// the decision behind the embeddings, calling `on_detection` for each event.
    fn run<R>(
        &mut self,
        tap: &mut Tap<'_>,
        on_detection: &mut dyn FnMut(Detection),
        work: impl FnOnce(&mut Features, &mut Tap<'_>, &mut OnEmbedding<'_>) -> R,
    ) -> R {
        let Pipeline {
            features,
            decision,
            ear,
        } = self;
        let Some(Ear { model, recent, cut }) = ear else {
            let mut decide = |t, e: Option<&[f32]>| {
                if let Some(d) = decision.push(t, e, &mut Unheard) {
                    on_detection(d)
                }
            };
            return work(features, tap, &mut decide);
        };
        let recent = &*recent;
        let mut heard = |x: &[f32]| {
            tap(x);
            recent.borrow_mut().push(x);
        };
        let mut hearing = Hearing { model, recent, cut };
        let mut decide = |t, e: Option<&[f32]>| {
            if let Some(d) = decision.push(t, e, &mut hearing) {
                on_detection(d)
            }
        };
        work(features, &mut heard, &mut decide)
    }

    /// Feeds mono samples at the source rate (int16 scale); calls `on_detection` for each event.
    pub fn push(&mut self, samples: &[f32], on_detection: &mut dyn FnMut(Detection)) -> Result<()> {
        self.push_tapped(samples, &mut |_| {}, on_detection)
    }

    /// The first half of a push, which needs no base model (a pipeline made with
    /// [`Pipeline::with_state`]): see [`Features::push_frontend`]. With the word check on,
    /// push at most a second of samples at a time (the ear keeps a few).
    pub fn push_frontend(&mut self, samples: &[f32], blocks: &mut Vec<f32>) -> Result<()> {
        self.run(&mut |_| {}, &mut |_| {}, |f, tap, _| {
            f.push_frontend_tapped(samples, tap, blocks)
        })
    }

    /// The second half: the blocks through a base model lent for this call, the head and the
    /// detector; calls `on_detection` for each event.
    pub fn push_blocks_with(
        &mut self,
        model: &mut BaseModel,
        blocks: &[f32],
        on_detection: &mut dyn FnMut(Detection),
    ) -> Result<()> {
        self.run(&mut |_| {}, on_detection, |f, _, d| {
            f.push_blocks_with(model, blocks, d)
        })
    }

    /// The next block of a batched second half (see [`Features::begin_block`]); calls
    /// `on_detection` for an event of a block done here.
    pub fn begin_block(
        &mut self,
        model: &mut BaseModel,
        block: &[f32],
        batch: &mut Batch,
        on_detection: &mut dyn FnMut(Detection),
    ) -> Result<Option<usize>> {
        self.run(&mut |_| {}, on_detection, |f, _, d| {
            f.begin_block(model, block, batch, d)
        })
    }

    /// The block at place `i` of `batch`, after its run, through the head and the detector.
    pub fn end_block(&mut self, batch: &Batch, i: usize, on_detection: &mut dyn FnMut(Detection)) {
        self.run(&mut |_| {}, on_detection, |f, _, d| {
            f.end_block(batch, i, d)
        })
    }

    /// Ends the stream, flushing buffered samples.
    pub fn finish(&mut self, on_detection: &mut dyn FnMut(Detection)) -> Result<()> {
        self.finish_tapped(&mut |_| {}, on_detection)
    }

    /// [`Pipeline::push`] that also hands each run of resampled 16 kHz samples to `tap`, before
    /// the detections they cause (`hark listen --keep-audio` keeps them in a ring buffer).
    pub fn push_tapped(
        &mut self,
        samples: &[f32],
        tap: &mut Tap<'_>,
        on_detection: &mut dyn FnMut(Detection),
    ) -> Result<()> {
        self.run(tap, on_detection, |f, tap, d| {
            f.with_own_model(|f, m| f.push_with_tap(m, samples, tap, d))
        })
    }

    /// [`Pipeline::finish`] with a `tap` as in [`Pipeline::push_tapped`].
    pub fn finish_tapped(
        &mut self,
        tap: &mut Tap<'_>,
        on_detection: &mut dyn FnMut(Detection),
    ) -> Result<()> {
        self.run(tap, on_detection, |f, tap, d| {
            f.with_own_model(|f, m| f.finish_with_tap(m, tap, d))
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

    /// How many more samples at the source rate complete the next 80 ms block: a caller that
    /// can wait for them wakes once per block instead of once per chunk.
    pub fn samples_to_block(&self) -> usize {
        self.features.samples_to_block()
    }

    /// Takes samples at a new source rate from now on (a capture device reopened at another
    /// rate). Samples still in the old resampler are dropped.
    pub fn set_source_rate(&mut self, rate: u32) -> Result<()> {
        self.features.resampler = Resampler::new(rate)?;
        Ok(())
    }

    /// Swaps in a new head and detector settings without touching the stream (SIGHUP reload).
    pub fn replace_head(&mut self, head: Arc<Head>, settings: Option<DetectorSettings>) {
        self.decision = Decision::new(head, settings, self.ear.is_some());
    }
}
