//! Stage 3: the base model (`embedding_model.onnx`, the keyword network without its
//! classification layer) run by ONNX Runtime: one 96-dim embedding per 80 ms block from the
//! newest 76 log-mel frames.

use ort::session::Session;
use ort::session::SessionInputValue;
use ort::value::TensorRef;

use crate::assets::Assets;
use crate::pipeline::frontend::{BLOCK_FRAMES, N_MELS};
use crate::{Error, Result};

mod onnx;
pub mod streaming;

/// Log-mel frames seen by one embedding (760 ms).
pub const WINDOW_FRAMES: usize = 76;
/// Embedding dimension.
pub const DIM: usize = 96;
const WINDOW_LEN: usize = WINDOW_FRAMES * N_MELS;
/// Frames kept for a cold start: the window plus the 4 frames that put the first call on the
/// model's pooling grid (see `streaming`).
const CONTEXT_FRAMES: usize = WINDOW_FRAMES + 4;
const CONTEXT_LEN: usize = CONTEXT_FRAMES * N_MELS;
/// State inputs of the streaming base model.
const N_STATES: usize = 11;
/// Blocks per call when embedding a whole signal.
const EMBED_BATCH: usize = 64;

/// The base model, in streaming form, plus the newest log-mel frames.
pub struct Embedder {
    session: Session,
    /// Each convolution's last 2 input rows, as the streaming model's state inputs.
    states: Vec<Vec<f32>>,
    state_shapes: Vec<[usize; 4]>,
    /// The newest `CONTEXT_FRAMES` scaled log-mel frames, oldest first. Starts as all ones, as
    /// openWakeWord pads its buffer before 76 real frames exist.
    context: Vec<f32>,
    /// Whether `states` follow `context` (false after a reset or a skipped block).
    warm: bool,
    /// Embeddings from the last call of the model.
    out: Vec<f32>,
    /// sha256 of the model file.
    pub model_sha256: String,
}

impl Embedder {
    /// Loads the base model, checking it is the expected file, and rewrites it into its
    /// streaming form.
    pub fn load(assets: &Assets) -> Result<Self> {
        let path = assets.embedding_model();
        let original = assets.read_embedding_model()?;
        let model_sha256 = crate::util::sha256_hex(&original);
        let model = streaming::rewrite(&original).map_err(|e| Error::Model {
            message: format!("{}: cannot stream this model", path.display()),
            source: Some(e.into()),
        })?;
        drop(original);
        if model.states.len() != N_STATES {
            return Err(Error::model(format!(
                "{}: the streaming model has {} states, expected {N_STATES}",
                path.display(),
                model.states.len()
            )));
        }
        let session = crate::assets::session_from_memory(assets, &path, &model.bytes)?;
        Ok(Embedder {
            session,
            states: model
                .states
                .iter()
                .map(|s| vec![0.0; s.iter().product()])
                .collect(),
            state_shapes: model.states,
            context: vec![1.0; CONTEXT_LEN],
            warm: false,
            out: Vec::with_capacity(EMBED_BATCH * DIM),
            model_sha256,
        })
    }

    /// Forgets the stream (back to the warm-up state).
    pub fn reset(&mut self) {
        self.context.fill(1.0);
        self.warm = false;
    }

    /// Slides one block of `BLOCK_FRAMES` frames into the context without running the model.
    pub fn slide(&mut self, block: &[f32]) {
        debug_assert_eq!(block.len(), BLOCK_FRAMES * N_MELS);
        self.context.copy_within(block.len().., 0);
        self.context[CONTEXT_LEN - block.len()..].copy_from_slice(block);
        self.warm = false;
    }

    /// Slides one block of `BLOCK_FRAMES` frames in and computes the embedding of the newest 76
    /// frames into `out`. Runs the model on the new block alone while the states are warm, and
    /// on the whole context after a cold start.
    pub fn push_block(&mut self, block: &[f32], out: &mut [f32]) -> Result<()> {
        let warm = self.warm;
        self.slide(block);
        if warm {
            self.infer(Frames::Slice(block))?;
        } else {
            self.cold();
            self.infer(Frames::Context)?;
        }
        self.warm = true;
        out.copy_from_slice(&self.out[self.out.len() - DIM..]);
        Ok(())
    }

    /// Embeds arbitrary 76-frame windows (`windows.len() / WINDOW_LEN` of them), each from a
    /// cold start.
    pub fn embed_windows(&mut self, windows: &[f32]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(windows.len() / WINDOW_LEN * DIM);
        let mut frames = vec![0.0; CONTEXT_LEN];
        for w in windows.chunks_exact(WINDOW_LEN) {
            frames[CONTEXT_LEN - WINDOW_LEN..].copy_from_slice(w);
            self.cold();
            self.infer(Frames::Slice(&frames))?;
            out.extend_from_slice(&self.out[self.out.len() - DIM..]);
        }
        self.warm = false;
        Ok(out)
    }

    /// Zeroes the states before a call that sees a whole window.
    fn cold(&mut self) {
        for s in &mut self.states {
            s.fill(0.0);
        }
    }

    /// One call of the streaming model on a multiple of 8 frames; embeddings into `self.out`,
    /// states updated.
    fn infer(&mut self, frames: Frames) -> Result<()> {
        let frames = match frames {
            Frames::Context => &self.context[..],
            Frames::Slice(f) => f,
        };
        let n = frames.len() / N_MELS;
        debug_assert_eq!(n % BLOCK_FRAMES, 0);
        let mut inputs: Vec<SessionInputValue> = Vec::with_capacity(1 + N_STATES);
        inputs.push(TensorRef::from_array_view(([1usize, n, N_MELS], frames))?.into());
        for (s, shape) in self.states.iter().zip(&self.state_shapes) {
            inputs.push(TensorRef::from_array_view((*shape, &s[..]))?.into());
        }
        let inputs: [SessionInputValue; 1 + N_STATES] = match inputs.try_into() {
            Ok(a) => a,
            Err(_) => unreachable!("checked at load"),
        };
        let outputs = self.session.run(inputs).map_err(|e| Error::Model {
            message: "base model inference failed".into(),
            source: Some(e.into()),
        })?;
        let (_, emb) = outputs[0].try_extract_tensor::<f32>()?;
        self.out.clear();
        self.out.extend_from_slice(emb);
        for (i, s) in self.states.iter_mut().enumerate() {
            let (_, next) = outputs[1 + i].try_extract_tensor::<f32>()?;
            s.copy_from_slice(next);
        }
        Ok(())
    }

    /// The embedding sequence of a run of log-mel frames that starts on a block boundary,
    /// preceded by the warm-up ones: one embedding per block, in calls of `EMBED_BATCH` blocks.
    fn embed_frames(&mut self, frames: &[f32]) -> Result<Vec<f32>> {
        let warmup = (CONTEXT_FRAMES - BLOCK_FRAMES) * N_MELS;
        let mut padded = vec![1.0f32; warmup];
        padded.extend_from_slice(frames);
        let mut all = Vec::with_capacity(padded.len() / (BLOCK_FRAMES * N_MELS) * DIM);
        self.cold();
        for chunk in padded.chunks(EMBED_BATCH * BLOCK_FRAMES * N_MELS) {
            self.infer(Frames::Slice(chunk))?;
            all.extend_from_slice(&self.out);
        }
        self.warm = false;
        // The first 9 embeddings cover the warm-up alone (and a cold start).
        all.drain(..warmup / (BLOCK_FRAMES * N_MELS) * DIM);
        Ok(all)
    }
}

/// What one call of the model runs on: the kept context (after a gap), or given frames.
enum Frames<'a> {
    Context,
    Slice(&'a [f32]),
}

/// Log-mel frames for a whole 16 kHz signal, as the streaming front end computes them (blocks
/// only; a trailing partial block is dropped).
pub fn logmel(samples: &[f32]) -> Vec<f32> {
    let mut fe = crate::pipeline::frontend::Frontend::new();
    let mut frames =
        Vec::with_capacity(samples.len() / crate::pipeline::frontend::HOP * N_MELS + N_MELS);
    fe.push(samples, |b| {
        frames.extend_from_slice(b);
        Ok(())
    })
    .expect("collecting blocks cannot fail");
    frames
}

/// The embedding sequence of a whole 16 kHz signal, equal to what the streaming pipeline yields
/// block by block (starting from the all-ones warm-up window), computed in large calls.
pub fn embed_signal(emb: &mut Embedder, samples: &[f32]) -> Result<Vec<f32>> {
    let frames = logmel(samples);
    let whole = frames.len() / (BLOCK_FRAMES * N_MELS) * BLOCK_FRAMES * N_MELS;
    emb.embed_frames(&frames[..whole])
}

/// Stream time (seconds) at the end of block `b` (0-based): when its embedding is available.
pub fn block_end_time(b: usize) -> f64 {
    use crate::pipeline::frontend::{HOP, N_FFT, SAMPLE_RATE};
    let last_frame = (b + 1) * BLOCK_FRAMES - 1;
    (last_frame * HOP + N_FFT) as f64 / SAMPLE_RATE as f64
}
