//! The whole pipeline, source-agnostic: samples in at any rate, detections out.
//!
//! resample (16 kHz) -> frontend (log-mel, 80 ms blocks) -> embedding (base model) -> head ->
//! detector -> word check. [`Features`] (`features.rs`) is the first half, [`Decision`]
//! (`decision.rs`) the second; [`Pipeline`] joins them for one stream, with the word check's
//! ear. `hark detect`, `hark listen --input` and `hark listen` all drive this one type; only
//! where the samples come from differs.

pub mod decision;
pub mod detector;
pub mod embedding;
pub mod features;
pub mod frontend;
mod gate;
pub mod head;
pub mod resample;
pub mod word_check;

/// The copies in ONNX Runtime's own format that a listening daemon maps (the base model's and
/// the word model's stages): how many are missing (`make` false), or how many were made
/// (`make` true). Making them costs a process about 17 MB more at its peak than running on
/// them, which is why `hark listen` has a child process (`hark setup`) make them.
pub fn runtime_copies(assets: &crate::assets::Assets, make: bool) -> crate::Result<usize> {
    let base = match embedding::runtime_copy(assets, make)? {
        made if make => usize::from(made),
        there => usize::from(!there),
    };
    Ok(base + word_check::runtime_copies(assets, make)?)
}

use crossbeam_channel::{Receiver, Sender};
use std::cell::RefCell;
use std::sync::Arc;

use crate::assets::Assets;
use crate::audio::ring::Ring;
pub use crate::pipeline::decision::Decision;
use crate::pipeline::decision::Unheard;
use crate::pipeline::detector::{Detection, DetectorSettings};
use crate::pipeline::embedding::batch::Batch;
use crate::pipeline::embedding::{BaseModel, Embedder, StreamState};
pub use crate::pipeline::features::Features;
use crate::pipeline::head::Head;
use crate::pipeline::resample::Resampler;
use crate::pipeline::word_check::check::{audio_range, embedding_of, Hear};
use crate::pipeline::word_check::SharedWordModel;
use crate::Result;

/// The word check's ear for one stream: its recent 16 kHz audio and the word model (shared
/// with other streams).
struct Ear {
    model: SharedWordModel,
    recent: RefCell<Ring>,
}

/// Seconds of audio an ear keeps: a candidate's audio when its cosine is asked is at most
/// `BEFORE + AFTER` plus an 80 ms window old (1.58 s), the front end holds back less than a
/// block and its FFT's overlap (0.11 s), and up to a second more may be pushed at once after
/// it (callers push at most a second at a time; see [`Pipeline::push_frontend`]): 2.69 s. Each
/// second is 32 KB of every stream (`hark serve`'s 100 streams: 3.2 MB).
const EAR_SECONDS: usize = 3;

impl Ear {
    fn new(model: SharedWordModel) -> Ear {
        let rate = crate::pipeline::frontend::SAMPLE_RATE as usize;
        Ear {
            model,
            recent: RefCell::new(Ring::with_capacity(EAR_SECONDS * rate)),
        }
    }
}

/// The word check's [`Hear`] through an ear.
struct Hearing<'a> {
    model: &'a SharedWordModel,
    recent: &'a RefCell<Ring>,
}

impl Hear for Hearing<'_> {
    /// The candidate's audio is cut into the model's own buffer, one for every stream that
    /// shares the model (they take turns at it).
    fn hear(&mut self, start: f64) -> Option<Vec<f32>> {
        let (from, to) = audio_range(start);
        let mut model = self.model.lock().ok()?;
        let mut cut = model.take_cut();
        self.recent.borrow().copy_out(from, to, &mut cut);
        let e = embedding_of(&mut model, &cut);
        model.put_cut(cut);
        e
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
        let Some(Ear { model, recent }) = ear else {
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
        let mut hearing = Hearing { model, recent };
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
