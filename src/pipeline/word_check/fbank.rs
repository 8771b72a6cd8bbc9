//! The word model's front end, exactly as it was trained (python_speech_features' `logfbank`
//! as EfficientWord-Net calls it): 25 ms frames every 10 ms with no window and no pre-emphasis,
//! a 512-point power spectrum divided by 512, 64 triangular mel filters from 0 Hz to 8 kHz on
//! whole FFT bins, and the natural log (an empty filter's 0 becomes the smallest f64 step).
//! Computed in f64, as numpy does.

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;

/// Samples per frame and between frames (16 kHz).
const FRAME: usize = 400;
const STEP: usize = 160;
const NFFT: usize = 512;
/// Filters, and the frames of the model's 1.5 s window.
pub const FILTERS: usize = 64;
pub const FRAMES: usize = 149;

/// The filters, one row of `NFFT / 2 + 1` weights each.
fn filterbank() -> Vec<[f64; NFFT / 2 + 1]> {
    let hz2mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let mel2hz = |mel: f64| 700.0 * (10f64.powf(mel / 2595.0) - 1.0);
    let top = hz2mel(8000.0);
    let step = top / (FILTERS + 1) as f64;
    let bins: Vec<f64> = (0..FILTERS + 2)
        .map(|i| {
            let mel = if i == FILTERS + 1 {
                top
            } else {
                i as f64 * step
            };
            ((NFFT + 1) as f64 * mel2hz(mel) / 16000.0).floor()
        })
        .collect();
    (0..FILTERS)
        .map(|j| {
            let mut row = [0.0; NFFT / 2 + 1];
            let (a, b, c) = (bins[j], bins[j + 1], bins[j + 2]);
            for (i, w) in row.iter_mut().enumerate().take(c as usize).skip(a as usize) {
                let i = i as f64;
                *w = if i < b {
                    (i - a) / (b - a)
                } else {
                    (c - i) / (c - b)
                };
            }
            row
        })
        .collect()
}

/// The front end, made once: its FFT plan, filters and buffers.
pub struct Fbank {
    fft: std::sync::Arc<dyn rustfft::Fft<f64>>,
    bank: Vec<[f64; NFFT / 2 + 1]>,
    buf: Vec<Complex<f64>>,
    power: Vec<f64>,
}

impl Default for Fbank {
    fn default() -> Self {
        Fbank {
            fft: FftPlanner::<f64>::new().plan_fft_forward(NFFT),
            bank: filterbank(),
            buf: vec![Complex::new(0.0, 0.0); NFFT],
            power: vec![0.0; NFFT / 2 + 1],
        }
    }
}

impl Fbank {
    /// The log filterbank energies of `x` (float samples, -1..1): one row of `FILTERS` per
    /// frame, `1 + ceil((len - 400) / 160)` frames (the signal padded with zeros to fill the
    /// last).
    pub fn log_fbank(&mut self, x: &[f32]) -> Vec<[f32; FILTERS]> {
        let frames = if x.len() <= FRAME {
            1
        } else {
            1 + (x.len() - FRAME).div_ceil(STEP)
        };
        (0..frames).map(|f| self.frame(x, f * STEP)).collect()
    }

    /// The row of the frame that starts at sample `from` of `x`.
    fn frame(&mut self, x: &[f32], from: usize) -> [f32; FILTERS] {
        self.buf.fill(Complex::new(0.0, 0.0));
        for (b, &v) in self.buf.iter_mut().zip(x.iter().skip(from).take(FRAME)) {
            b.re = v as f64;
        }
        self.fft.process(&mut self.buf);
        for (p, c) in self.power.iter_mut().zip(&self.buf) {
            *p = c.norm_sqr() / NFFT as f64;
        }
        let mut row = [0.0f32; FILTERS];
        for (o, filter) in row.iter_mut().zip(&self.bank) {
            let e: f64 = filter.iter().zip(&self.power).map(|(w, p)| w * p).sum();
            *o = (if e == 0.0 { f64::EPSILON } else { e }).ln() as f32;
        }
        row
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Two tones and a little deterministic noise, 1.5 s.
    pub(crate) fn signal() -> Vec<f32> {
        (0..24_000)
            .map(|n| {
                let t = n as f64 / 16000.0;
                let noise = ((n * 7919) % 10007) as f64 / 10007.0 - 0.5;
                (0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                    + 0.1 * (2.0 * std::f64::consts::PI * 3000.0 * t).sin()
                    + 0.02 * noise) as f32
            })
            .collect()
    }

    #[test]
    fn the_front_end_gives_what_the_word_model_was_trained_on() {
        // Reference: tests/probes/word_check.py's log_fbank (the wheel's own, to the last bit).
        let f = Fbank::default().log_fbank(&signal());
        assert_eq!(f.len(), FRAMES);
        let want = [
            (0, 0, -15.819353),
            (0, 5, -5.906118),
            (74, 10, -1.403589),
            (148, 63, -8.234616),
            (148, 20, -5.219404),
        ];
        for (t, m, v) in want {
            assert!(
                (f[t][m] as f64 - v).abs() < 2e-4,
                "[{t}][{m}] {} != {v}",
                f[t][m]
            );
        }
        let sum: f64 = f.iter().flatten().map(|&v| v as f64).sum();
        assert!((sum - -56207.616).abs() < 0.05, "{sum}");
    }
}
