//! The feature half of the pipeline: samples at any rate -> resample (16 kHz) -> front end
//! (log-mel, 80 ms blocks) -> quiet-room gate -> base model -> one embedding per block.

use crate::pipeline::embedding::batch::Batch;
use crate::pipeline::embedding::{BaseModel, Embedder, StreamState, DIM};
use crate::pipeline::frontend::{Frontend, BLOCK_FRAMES, N_MELS};
use crate::pipeline::gate::Gate;
use crate::pipeline::resample::Resampler;
use crate::{Error, Result};

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
    pub(super) resampler: Resampler,
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
        self.run_through(model, Some(samples), tap, on_embedding)
    }

    /// What the resampler gives for `samples` (`None`: its tail, at the end of the stream),
    /// handed to `tap` in runs of at most a block, then through the front end and the stage.
    fn run_through(
        &mut self,
        model: &mut BaseModel,
        samples: Option<&[f32]>,
        tap: &mut dyn FnMut(&[f32]),
        on_embedding: &mut dyn FnMut(f64, Option<&[f32]>),
    ) -> Result<()> {
        let Features {
            resampler,
            frontend,
            stage,
            ..
        } = self;
        let mut then = |s16: &[f32]| {
            in_runs(s16, tap, |run| {
                frontend.push(run, |block| stage.block(model, block, on_embedding))
            })
        };
        match samples {
            Some(x) => resampler.push(x, &mut then),
            None => resampler.flush(&mut then),
        }
    }

    /// The first half of [`Features::push_with`], which needs no base model: runs `samples`
    /// through the resampler and the front end and appends each finished 80 ms block of
    /// log-mel frames to `blocks`. Hand them to [`Features::push_blocks_with`], in order.
    pub fn push_frontend(&mut self, samples: &[f32], blocks: &mut Vec<f32>) -> Result<()> {
        self.push_frontend_tapped(samples, &mut |_| {}, blocks)
    }

    /// [`Features::push_frontend`] that also hands the 16 kHz samples to `tap` (in runs of at
    /// most a block, as [`Features::push_with_tap`] does).
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
            in_runs(s16, tap, |run| {
                frontend.push(run, |block| {
                    blocks.extend_from_slice(block);
                    Ok(())
                })
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
        self.run_through(model, None, tap, on_embedding)
    }

    pub(super) fn with_own_model(
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
