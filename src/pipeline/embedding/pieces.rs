//! Offline embedding of a 16 kHz signal given in pieces of any size: the front end and the
//! model's states are carried from one piece to the next, and the model is called on exactly
//! the batches a whole-signal embedding would use (the warm-up padding, then `EMBED_BATCH`
//! blocks a call), so the embeddings are the same bit for bit. A long clip (600 s of room
//! noise: 38 MB of samples, 7.7 MB of log-mel frames) then never needs to be held whole: only
//! the piece at hand, one batch of frames and the embeddings (2.9 MB for 600 s) are.
//!
//! Training's long recordings are kept, and read back in pieces, by
//! [`crate::train::recording::Recording`]; this type embeds what it reads.

use super::{Embedder, Frames, BLOCK_FRAMES, CONTEXT_FRAMES, DIM, EMBED_BATCH, N_MELS};
use crate::pipeline::frontend::Frontend;
use crate::Result;

/// Frames of one model call.
const BATCH_LEN: usize = EMBED_BATCH * BLOCK_FRAMES * N_MELS;
/// The all-ones warm-up frames that precede a signal (whole blocks).
const WARMUP_LEN: usize = (CONTEXT_FRAMES - BLOCK_FRAMES) * N_MELS;

/// A signal being embedded piece by piece; see the module docs.
pub struct Pieces<'e> {
    emb: &'e mut Embedder,
    frontend: Frontend,
    /// Frames waiting for the next call (at most `BATCH_LEN`).
    batch: Vec<f32>,
    /// Where the signal's own frames begin in `batch` (after the warm-up, in the first batch).
    real_from: usize,
    /// Vocal-tract-length warp of the signal's frames (1 = none).
    warp: f64,
    /// Added to each band of the signal's frames after the warp (empty = nothing).
    colour: Vec<f32>,
    /// The embeddings so far, the warm-up's included.
    out: Vec<f32>,
    /// How many of `out`'s first values are the warm-up's (dropped at the end).
    warmup_out: usize,
}

impl<'e> Pieces<'e> {
    /// Starts a signal of about `samples` samples (sizes the output; 0 if unknown), as a
    /// speaker with a vocal tract `warp` times shorter would say it (see
    /// [`crate::pipeline::frontend::warp_frames`]; 1 = as recorded).
    pub fn new(emb: &'e mut Embedder, warp: f64, samples: usize) -> Self {
        emb.state.cold();
        Self::start(emb, warp, samples, WARMUP_LEN)
    }

    /// [`Pieces::new`], but the model starts from its states after the warm-up (computed once
    /// per embedder) instead of running the warm-up again. Every later call then holds
    /// `EMBED_BATCH` blocks of the signal's own, so the embeddings differ from
    /// [`Pieces::new`]'s in float rounding only.
    pub fn warm(emb: &'e mut Embedder, warp: f64, samples: usize) -> Result<Self> {
        emb.start_warmed_up(WARMUP_LEN)?;
        Ok(Self::start(emb, warp, samples, 0))
    }

    /// A signal whose first batch begins with `warmup` all-ones values.
    fn start(emb: &'e mut Embedder, warp: f64, samples: usize, warmup: usize) -> Self {
        let blocks = samples / crate::pipeline::frontend::BLOCK_SAMPLES + 10;
        let mut batch = Vec::with_capacity(BATCH_LEN);
        batch.resize(warmup, 1.0);
        Pieces {
            emb,
            frontend: Frontend::new(),
            batch,
            real_from: warmup,
            warp,
            colour: Vec::new(),
            out: Vec::with_capacity(blocks.min(1 << 20) * DIM),
            warmup_out: warmup / (BLOCK_FRAMES * N_MELS) * DIM,
        }
    }

    /// As heard through a microphone that colours band `m` by `colour[m]` (log-mel units, 10
    /// dB; empty for none), after the warp.
    pub fn coloured(mut self, colour: &[f32]) -> Self {
        self.colour = colour.to_vec();
        self
    }

    /// Adds the next samples of the signal (16 kHz, int16 scale).
    pub fn push(&mut self, samples: &[f32]) -> Result<()> {
        let Pieces {
            emb,
            frontend,
            batch,
            real_from,
            warp,
            colour,
            out,
            ..
        } = self;
        frontend.push(samples, |block| {
            batch.extend_from_slice(block);
            if batch.len() == BATCH_LEN {
                call(emb, batch, real_from, (*warp, colour), out)?;
            }
            Ok(())
        })
    }

    /// The embedding sequence: one embedding per whole block of the signal (a trailing
    /// partial block is dropped), as [`super::embed_signal`] gives it.
    pub fn finish(mut self) -> Result<Vec<f32>> {
        if !self.batch.is_empty() {
            call(
                self.emb,
                &mut self.batch,
                &mut self.real_from,
                (self.warp, &self.colour),
                &mut self.out,
            )?;
        }
        self.emb.state.warm = false;
        // The first embeddings cover the warm-up alone (and a cold start).
        let warmup = self.warmup_out.min(self.out.len());
        self.out.drain(..warmup);
        Ok(self.out)
    }
}

/// One call of the model on the frames in `batch` (warped and coloured from `real_from` on),
/// its embeddings appended to `out`; `batch` is emptied.
fn call(
    emb: &mut Embedder,
    batch: &mut Vec<f32>,
    real_from: &mut usize,
    (warp, colour): (f64, &[f32]),
    out: &mut Vec<f32>,
) -> Result<()> {
    if warp != 1.0 {
        crate::pipeline::frontend::warp_frames(&mut batch[*real_from..], warp);
    }
    if !colour.is_empty() {
        for frame in batch[*real_from..].chunks_exact_mut(N_MELS) {
            frame.iter_mut().zip(colour).for_each(|(v, c)| *v += c);
        }
    }
    emb.model.infer(&mut emb.state, Frames::Slice(batch))?;
    out.extend_from_slice(&emb.state.out);
    batch.clear();
    *real_from = 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{embed_signal_warm, embed_signal_warped};
    use super::*;

    fn assets() -> crate::assets::Assets {
        let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
        crate::assets::Assets::locate(Some(&models)).expect("models/ (run .ci/setup)")
    }

    #[test]
    fn a_warm_start_gives_the_cold_start_embeddings_within_rounding() {
        let mut emb = Embedder::load(&assets()).unwrap();
        let (speech, _) = crate::audio::synth::stream(crate::audio::synth::VOICE, 1).unwrap();
        let colour: Vec<f32> = (0..N_MELS).map(|m| m as f32 * 0.02 - 0.3).collect();
        // Clips of 1.2 s, 1.6 s and 7 s (past one model call), as recorded and altered.
        let cases = [
            (8_000, 19_200, 1.0, &[][..]),
            (30_000, 25_600, 1.12, &colour[..]),
        ];
        let cases = cases.into_iter().chain([(2_000, 112_000, 0.9, &[][..])]);
        for (from, len, warp, colour) in cases {
            let x = &speech[from..from + len];
            let cold = embed_signal_warped(&mut emb, x, warp, colour).unwrap();
            let warm = embed_signal_warm(&mut emb, x, warp, colour).unwrap();
            assert_eq!(cold.len(), warm.len());
            assert!(cold.len() + 2 * DIM >= len / crate::pipeline::frontend::BLOCK_SAMPLES * DIM);
            let diff = cold
                .iter()
                .zip(&warm)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-4, "{len} samples, warp {warp}: {diff}");
            assert!(cold.iter().any(|v| v.abs() > 0.1));
        }
        // The warm-up is computed once and reused: a second run is the same bit for bit.
        let x = &speech[..20_000];
        let again = embed_signal_warm(&mut emb, x, 1.0, &[]).unwrap();
        let fresh = embed_signal_warm(&mut Embedder::load(&assets()).unwrap(), x, 1.0, &[]);
        assert!(again == fresh.unwrap());
    }
}
