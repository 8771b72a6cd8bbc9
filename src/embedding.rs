//! Stage 3: the base model (`embedding_model.onnx`, the keyword network without its
//! classification layer) run by ONNX Runtime: one 96-dim embedding per 80 ms block from the
//! newest 76 log-mel frames.

use anyhow::{Context, Result};
use ort::session::Session;
use ort::value::TensorRef;

use crate::assets::Assets;
use crate::frontend::{BLOCK_FRAMES, N_MELS};

/// Log-mel frames seen by one embedding (760 ms).
pub const WINDOW_FRAMES: usize = 76;
/// Embedding dimension.
pub const DIM: usize = 96;
const WINDOW_LEN: usize = WINDOW_FRAMES * N_MELS;
/// Windows per batched inference.
const EMBED_BATCH: usize = 64;

/// The base model plus its sliding window of log-mel frames.
pub struct Embedder {
    session: Session,
    /// The newest `WINDOW_FRAMES` scaled log-mel frames, oldest first. Starts as all ones, as
    /// openWakeWord pads its buffer before 76 real frames exist.
    window: Vec<f32>,
    /// sha256 of the model file.
    pub model_sha256: String,
}

impl Embedder {
    /// Loads the base model, checking it is the expected file.
    pub fn load(assets: &Assets) -> Result<Self> {
        let model_sha256 = assets.check_embedding_model()?;
        let session = crate::assets::session(assets, &assets.embedding_model())?;
        Ok(Embedder {
            session,
            window: vec![1.0; WINDOW_LEN],
            model_sha256,
        })
    }

    /// Forgets the window (back to the warm-up state).
    pub fn reset(&mut self) {
        self.window.fill(1.0);
    }

    /// Slides one block of `BLOCK_FRAMES` frames into the window without running the model.
    pub fn slide(&mut self, block: &[f32]) {
        debug_assert_eq!(block.len(), BLOCK_FRAMES * N_MELS);
        self.window.copy_within(block.len().., 0);
        self.window[WINDOW_LEN - block.len()..].copy_from_slice(block);
    }

    /// Slides one block of `BLOCK_FRAMES` frames into the window and computes the embedding of
    /// the newest 76 frames into `out`.
    pub fn push_block(&mut self, block: &[f32], out: &mut [f32]) -> Result<()> {
        self.slide(block);
        let input =
            TensorRef::from_array_view(([1usize, WINDOW_FRAMES, N_MELS, 1], &self.window[..]))?;
        let outputs = self
            .session
            .run(ort::inputs![input])
            .context("base model inference failed")?;
        let (_, emb) = outputs[0].try_extract_tensor::<f32>()?;
        out.copy_from_slice(&emb[..DIM]);
        Ok(())
    }

    /// Embeds many windows at once (`windows.len() / WINDOW_LEN` of them), batched.
    pub fn embed_windows(&mut self, windows: &[f32]) -> Result<Vec<f32>> {
        let n = windows.len() / WINDOW_LEN;
        let mut out = Vec::with_capacity(n * DIM);
        for start in (0..n).step_by(EMBED_BATCH) {
            let b = EMBED_BATCH.min(n - start);
            let slice = &windows[start * WINDOW_LEN..(start + b) * WINDOW_LEN];
            let input = TensorRef::from_array_view(([b, WINDOW_FRAMES, N_MELS, 1], slice))?;
            let outputs = self
                .session
                .run(ort::inputs![input])
                .context("base model inference failed")?;
            let (_, emb) = outputs[0].try_extract_tensor::<f32>()?;
            out.extend_from_slice(&emb[..b * DIM]);
        }
        Ok(out)
    }
}

/// Log-mel frames for a whole 16 kHz signal, as the streaming front end computes them (blocks
/// only; a trailing partial block is dropped).
pub fn logmel(samples: &[f32]) -> Vec<f32> {
    let mut fe = crate::frontend::Frontend::new();
    let mut frames = Vec::with_capacity(samples.len() / crate::frontend::HOP * N_MELS + N_MELS);
    fe.push(samples, |b| frames.extend_from_slice(b));
    frames
}

/// The embedding sequence of a whole 16 kHz signal, equal to what the streaming pipeline yields
/// block by block (starting from the all-ones warm-up window), but computed in batches.
pub fn embed_signal(emb: &mut Embedder, samples: &[f32]) -> Result<Vec<f32>> {
    let frames = logmel(samples);
    let nblocks = frames.len() / (BLOCK_FRAMES * N_MELS);
    let mut padded = vec![1.0f32; WINDOW_LEN];
    padded.extend_from_slice(&frames);
    let mut out = Vec::with_capacity(nblocks * DIM);
    let mut windows = Vec::with_capacity(EMBED_BATCH * WINDOW_LEN);
    for first in (1..=nblocks).step_by(EMBED_BATCH) {
        windows.clear();
        for b in first..(first + EMBED_BATCH).min(nblocks + 1) {
            let end = WINDOW_LEN + b * BLOCK_FRAMES * N_MELS;
            windows.extend_from_slice(&padded[end - WINDOW_LEN..end]);
        }
        out.extend(emb.embed_windows(&windows)?);
    }
    Ok(out)
}

/// Stream time (seconds) at the end of block `b` (0-based): when its embedding is available.
pub fn block_end_time(b: usize) -> f64 {
    use crate::frontend::{HOP, N_FFT, SAMPLE_RATE};
    let last_frame = (b + 1) * BLOCK_FRAMES - 1;
    (last_frame * HOP + N_FFT) as f64 / SAMPLE_RATE as f64
}
