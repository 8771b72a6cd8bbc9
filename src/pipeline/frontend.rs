//! Stage 2: the log-mel front end, computing exactly what `melspectrogram.onnx` computes.
//!
//! Streaming and incremental: every 160 new samples (16 kHz, int16 scale) complete one new
//! 512-sample frame; no old frame is recomputed and nothing allocates per frame. Frames are handed
//! on in blocks of [`BLOCK_FRAMES`] (80 ms), the rhythm of the base model, with the reference's
//! `max - 80 dB` floor applied per block and the `x / 10 + 2` scaling the base model expects.

use rustfft::{num_complex::Complex32, Fft, FftPlanner};
use std::sync::{Arc, OnceLock};

use crate::Result;

/// Sample rate the front end works at.
pub const SAMPLE_RATE: u32 = 16_000;
/// FFT length and frame length in samples.
pub const N_FFT: usize = 512;
/// Hop between frames in samples (10 ms).
pub const HOP: usize = 160;
/// Length of the periodic Hann window inside the 512-sample frame.
pub const WIN_LEN: usize = 400;
/// Number of mel bands.
pub const N_MELS: usize = 32;
/// Lowest and highest mel filter edge in Hz.
pub const F_MIN: f64 = 60.0;
pub const F_MAX: f64 = 3800.0;
/// Frames per block (80 ms): the rhythm at which embeddings are computed.
pub const BLOCK_FRAMES: usize = 8;
/// Samples per block.
pub const BLOCK_SAMPLES: usize = BLOCK_FRAMES * HOP;
/// Dynamic range floor in dB below the block maximum.
pub const TOP_DB: f32 = 80.0;
const N_BINS: usize = N_FFT / 2 + 1;

/// The front end's parameters, recorded in every head file so a head is refused if they differ.
pub fn parameters() -> String {
    format!(
        "logmel sr={SAMPLE_RATE} n_fft={N_FFT} hop={HOP} hann={WIN_LEN} n_mels={N_MELS} \
         fmin={F_MIN} fmax={F_MAX} slaney top_db={TOP_DB} block={BLOCK_FRAMES} scale=x/10+2"
    )
}

/// What every front end reads and none changes: the FFT plan, the window and the mel weights.
/// Built once per process (planning costs more than the frames of a short training clip).
struct Tables {
    fft: Arc<dyn Fft<f32>>,
    window: [f32; N_FFT],
    /// Sparse mel weights: for each band, the first FFT bin and its weights.
    mel: Vec<(usize, Vec<f32>)>,
}

/// The process's one [`Tables`].
fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut window = [0.0f32; N_FFT];
        let pad = (N_FFT - WIN_LEN) / 2;
        for n in 0..WIN_LEN {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / WIN_LEN as f64).cos();
            window[pad + n] = w as f32;
        }
        Tables {
            fft: FftPlanner::new().plan_fft_forward(N_FFT),
            window,
            mel: mel_filters(),
        }
    })
}

/// Streaming log-mel front end: the shared [`Tables`] and its own stream state and scratch
/// buffers.
pub struct Frontend {
    tables: &'static Tables,
    /// Samples not yet consumed by a complete frame (at most `N_FFT + HOP` long).
    pending: Vec<f32>,
    fft_buf: Vec<Complex32>,
    scratch: Vec<Complex32>,
    /// The block being filled: `BLOCK_FRAMES x N_MELS` dB values.
    block: [f32; BLOCK_FRAMES * N_MELS],
    in_block: usize,
    frames: u64,
}

impl Default for Frontend {
    fn default() -> Self {
        Self::new()
    }
}

impl Frontend {
    /// A front end at the start of a stream. Cheap: the FFT plan, window and mel weights are
    /// built on the first call in the process and shared from then on.
    pub fn new() -> Self {
        let tables = tables();
        Frontend {
            tables,
            pending: Vec::with_capacity(N_FFT + BLOCK_SAMPLES * 4),
            fft_buf: vec![Complex32::default(); N_FFT],
            scratch: vec![Complex32::default(); tables.fft.get_inplace_scratch_len()],
            block: [0.0; BLOCK_FRAMES * N_MELS],
            in_block: 0,
            frames: 0,
        }
    }

    /// Starts a new stream: forgets buffered samples and the block being filled.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.in_block = 0;
        self.frames = 0;
    }

    /// How many more samples complete the block being filled.
    pub fn samples_to_block(&self) -> usize {
        N_FFT.saturating_sub(self.pending.len()).max(1) + (BLOCK_FRAMES - 1 - self.in_block) * HOP
    }

    /// Number of frames computed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Feeds 16 kHz mono samples (int16 scale). Calls `on_block` with each completed block of
    /// `BLOCK_FRAMES x N_MELS` scaled log-mel values, oldest frame first. Stops at the first
    /// error `on_block` returns (the rest of `samples` is then dropped).
    pub fn push(
        &mut self,
        samples: &[f32],
        mut on_block: impl FnMut(&[f32]) -> Result<()>,
    ) -> Result<()> {
        let mut rest = samples;
        while !rest.is_empty() {
            // Take just enough to complete the next frame, so `pending` stays small.
            let need = N_FFT.saturating_sub(self.pending.len()).max(1);
            let take = need.min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() >= N_FFT {
                self.frame();
                self.pending.drain(..HOP);
                if self.in_block == BLOCK_FRAMES {
                    finish_block(&mut self.block);
                    self.in_block = 0;
                    on_block(&self.block)?;
                }
            }
        }
        Ok(())
    }

    /// Computes the dB mel values of the frame at the head of `pending` into the block.
    fn frame(&mut self) {
        let Tables { fft, window, mel } = self.tables;
        for (i, c) in self.fft_buf.iter_mut().enumerate() {
            *c = Complex32::new(self.pending[i] * window[i], 0.0);
        }
        fft.process_with_scratch(&mut self.fft_buf, &mut self.scratch);
        let out = &mut self.block[self.in_block * N_MELS..(self.in_block + 1) * N_MELS];
        for (m, (start, weights)) in mel.iter().enumerate() {
            let mut acc = 0.0f64;
            for (k, w) in weights.iter().enumerate() {
                let c = self.fft_buf[start + k];
                acc +=
                    (*w as f64) * ((c.re as f64) * (c.re as f64) + (c.im as f64) * (c.im as f64));
            }
            out[m] = (10.0 * acc.max(1e-10).log10()) as f32;
        }
        self.in_block += 1;
        self.frames += 1;
    }
}

/// Applies the `max - TOP_DB` floor over the block and the `x / 10 + 2` scaling.
fn finish_block(block: &mut [f32]) {
    let max = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let floor = max - TOP_DB;
    for v in block.iter_mut() {
        *v = v.max(floor) / 10.0 + 2.0;
    }
}

/// Vocal-tract-length warping of finished log-mel frames (training only): band `m` takes the
/// value the spectrum had at its centre frequency divided by `alpha`, interpolated between
/// neighbouring bands (held at the edges). `alpha` > 1 sounds like a shorter vocal tract.
pub fn warp_frames(frames: &mut [f32], alpha: f64) {
    let (lo, hi) = (hz_to_mel(F_MIN), hz_to_mel(F_MAX));
    let step = (hi - lo) / (N_MELS + 1) as f64;
    let source: Vec<(usize, f32)> = (0..N_MELS)
        .map(|m| {
            let centre = mel_to_hz(lo + step * (m + 1) as f64);
            let j = ((hz_to_mel(centre / alpha) - lo) / step - 1.0).clamp(0.0, (N_MELS - 1) as f64);
            let k = (j.floor() as usize).min(N_MELS - 2);
            (k, (j - k as f64) as f32)
        })
        .collect();
    let mut band = [0.0f32; N_MELS];
    for frame in frames.chunks_exact_mut(N_MELS) {
        band.copy_from_slice(frame);
        for (v, &(k, w)) in frame.iter_mut().zip(&source) {
            *v = band[k] * (1.0 - w) + band[k + 1] * w;
        }
    }
}

fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let (min_log_hz, min_log_mel) = (1000.0, 1000.0 / f_sp);
    let logstep = (6.4f64).ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let (min_log_hz, min_log_mel) = (1000.0, 1000.0 / f_sp);
    let logstep = (6.4f64).ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// librosa `mel(sr=16000, n_fft=512, n_mels=32, fmin=60, fmax=3800, htk=False, norm="slaney")`,
/// stored sparsely as (first bin, weights) per band.
fn mel_filters() -> Vec<(usize, Vec<f32>)> {
    let (lo, hi) = (hz_to_mel(F_MIN), hz_to_mel(F_MAX));
    let pts: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (N_MELS + 1) as f64))
        .collect();
    (0..N_MELS)
        .map(|m| {
            let enorm = 2.0 / (pts[m + 2] - pts[m]);
            let w: Vec<(usize, f32)> = (0..N_BINS)
                .filter_map(|k| {
                    let f = k as f64 * SAMPLE_RATE as f64 / N_FFT as f64;
                    let lower = (f - pts[m]) / (pts[m + 1] - pts[m]);
                    let upper = (pts[m + 2] - f) / (pts[m + 2] - pts[m + 1]);
                    let v = lower.min(upper).max(0.0) * enorm;
                    (v > 0.0).then_some((k, v as f32))
                })
                .collect();
            let start = w.first().map(|x| x.0).unwrap_or(0);
            let end = w.last().map(|x| x.0 + 1).unwrap_or(0);
            let mut dense = vec![0.0f32; end - start];
            for (k, v) in w {
                dense[k - start] = v;
            }
            (start, dense)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blocks `fe` completes on `samples`, concatenated.
    fn blocks(fe: &mut Frontend, samples: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        fe.push(samples, |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn samples_to_block_is_exactly_what_completes_the_next_block() {
        let signal: Vec<f32> = (0..40000)
            .map(|i| ((i * 7919) % 2001) as f32 - 1000.0)
            .collect();
        let mut fe = Frontend::new();
        let mut at = 0;
        for chunk in [1, 160, 37, 1024, 500, 3] {
            fe.push(&signal[at..at + chunk], |_| Ok(())).unwrap();
            at += chunk;
            let n = fe.samples_to_block();
            assert!((1..=N_FFT + (BLOCK_FRAMES - 1) * HOP).contains(&n), "{n}");
            assert!(blocks(&mut fe, &signal[at..at + n - 1]).is_empty(), "{n}");
            let one = blocks(&mut fe, &signal[at + n - 1..at + n]);
            assert_eq!(one.len(), BLOCK_FRAMES * N_MELS, "{n}");
            at += n;
        }
    }

    #[test]
    fn one_block_per_1280_samples_whatever_the_chunking() {
        let signal: Vec<f32> = (0..16000)
            .map(|i| ((i as f32) * 0.05).sin() * 3000.0)
            .collect();
        let mut a = Frontend::new();
        let blocks_a = blocks(&mut a, &signal);
        let mut b = Frontend::new();
        let mut blocks_b = Vec::new();
        for chunk in signal.chunks(97) {
            blocks_b.extend(blocks(&mut b, chunk));
        }
        // frames: (16000 - 512) / 160 + 1 = 97 -> 12 whole blocks
        assert_eq!(a.frames(), 97);
        assert_eq!(blocks_a.len(), 12 * BLOCK_FRAMES * N_MELS);
        assert_eq!(blocks_a, blocks_b);
    }

    #[test]
    fn a_reset_front_end_computes_what_a_new_one_does() {
        let signal: Vec<f32> = (0..9000)
            .map(|i| ((i as f32) * 0.03).sin() * 2000.0)
            .collect();
        let mut fe = Frontend::new();
        let first = blocks(&mut fe, &signal[..4321]);
        assert!(!first.is_empty());
        fe.reset();
        assert_eq!(fe.frames(), 0);
        assert_eq!(
            blocks(&mut fe, &signal),
            blocks(&mut Frontend::new(), &signal)
        );
    }

    #[test]
    fn mel_filters_cover_the_band_with_slaney_area_normalisation() {
        let f = mel_filters();
        assert_eq!(f.len(), N_MELS);
        // Slaney normalisation: each triangle's area (in Hz) is about 1.
        for (start, w) in &f {
            assert!(*start >= 1, "60 Hz lower edge excludes DC");
            let area: f32 = w.iter().sum::<f32>() * (SAMPLE_RATE as f32 / N_FFT as f32);
            assert!((0.5..1.5).contains(&area), "area {area}");
        }
    }

    #[test]
    fn warping_by_one_changes_nothing_and_upward_moves_energy_up() {
        let frame: Vec<f32> = (0..N_MELS)
            .map(|m| if m == 10 { 5.0 } else { 0.0 })
            .collect();
        let mut same = frame.clone();
        warp_frames(&mut same, 1.0);
        for (a, b) in same.iter().zip(&frame) {
            assert!((a - b).abs() < 1e-4, "{same:?}");
        }
        let mut up = frame.clone();
        warp_frames(&mut up, 1.2);
        let peak = |x: &[f32]| (0..N_MELS).max_by(|&a, &b| x[a].total_cmp(&x[b])).unwrap();
        assert!(peak(&up) > 10, "{up:?}");
        let mut down = frame;
        warp_frames(&mut down, 0.8);
        assert!(peak(&down) < 10, "{down:?}");
    }

    #[test]
    fn silence_is_floored_not_minus_infinity() {
        let out = blocks(&mut Frontend::new(), &[0.0; 4000]);
        assert!(out
            .iter()
            .all(|v| (*v - (-100.0 / 10.0 + 2.0)).abs() < 1e-4));
    }
}
