//! Pitch shifts that keep tempo, for the augmented copies of words anyone may say: the take is
//! resampled by the pitch ratio (pitch and speed change together, as with [`speed`]) and then
//! stretched back to its length by WSOLA (overlap-add of Hann-windowed frames, each taken where
//! its waveform best continues the frame before), so the harmonics move as another speaker's
//! would while the duration stays.

use super::augment::speed;

/// Frame length of the stretch, samples (24 ms at 16 kHz).
const FRAME: usize = 384;
/// Hop between output frames (half a frame: Hann windows at this hop sum to one).
const HOP: usize = FRAME / 2;
/// How far (samples, either way) a frame may move from its nominal place to fit the one
/// before: 6 ms, more than half the pitch period of all but the lowest voices.
const TOLERANCE: isize = 96;

/// `x` with its pitch multiplied by `ratio` (e.g. 1.2: a fifth of an octave higher, nearly a
/// third), its length unchanged.
pub(super) fn shift_pitch(x: &[f32], ratio: f32) -> Vec<f32> {
    if ratio == 1.0 || x.len() < FRAME {
        return x.to_vec();
    }
    stretch(&speed(x, ratio), x.len())
}

/// The ratio of a shift of `semitones` (negative: lower).
pub(super) fn ratio_of(semitones: f32) -> f32 {
    2f32.powf(semitones / 12.0)
}

/// `x` made `out_len` samples long at its own pitch (WSOLA).
pub(super) fn stretch(x: &[f32], out_len: usize) -> Vec<f32> {
    let window: Vec<f32> = (0..FRAME)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / FRAME as f32).cos())
        .collect();
    let at = |i: isize| -> f32 {
        match usize::try_from(i) {
            Ok(i) if i < x.len() => x[i],
            _ => 0.0,
        }
    };
    let mut out = vec![0.0f32; out_len + FRAME];
    let mut weight = vec![0.0f32; out_len + FRAME];
    // Input samples per output sample.
    let alpha = x.len() as f64 / out_len.max(1) as f64;
    let mut prev: isize = 0;
    for k in 0..out_len.div_ceil(HOP) {
        let nominal = ((k * HOP) as f64 * alpha).round() as isize;
        let pos = if k == 0 {
            0
        } else {
            best_fit(&at, prev + HOP as isize, nominal)
        };
        for (i, w) in window.iter().enumerate() {
            out[k * HOP + i] += w * at(pos + i as isize);
            weight[k * HOP + i] += w;
        }
        prev = pos;
    }
    out.truncate(out_len);
    for (v, w) in out.iter_mut().zip(&weight) {
        // The first half-frame has one window only: undo its taper (never by more than 10x).
        *v /= w.max(0.1);
    }
    out
}

/// The start near `nominal` (within [`TOLERANCE`]) whose frame best matches the frame at
/// `natural` (the continuation of the frame before): normalised cross-correlation, searched
/// on every second offset and sample, then refined by one offset either way.
fn best_fit(at: &dyn Fn(isize) -> f32, natural: isize, nominal: isize) -> isize {
    let score = |start: isize| -> f32 {
        let (mut dot, mut energy) = (0.0f32, 1e-3f32);
        for i in (0..FRAME as isize).step_by(2) {
            let c = at(start + i);
            dot += at(natural + i) * c;
            energy += c * c;
        }
        dot / energy.sqrt()
    };
    let best_of = |candidates: &mut dyn Iterator<Item = isize>| {
        candidates
            .map(|s| (score(s), s))
            .fold((f32::MIN, nominal), |a, b| if b.0 > a.0 { b } else { a })
            .1
    };
    let coarse = best_of(&mut (-TOLERANCE..=TOLERANCE).step_by(2).map(|d| nominal + d));
    best_of(&mut (coarse - 1..=coarse + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frequency (Hz, 1 Hz steps) from 50 to 1000 Hz where `x`'s spectrum is strongest.
    fn peak_hz(x: &[f32]) -> f32 {
        let power = |f: f32| {
            let w = 2.0 * std::f32::consts::PI * f / 16000.0;
            let (re, im) = x.iter().enumerate().fold((0.0, 0.0), |(re, im), (i, v)| {
                (re + v * (w * i as f32).cos(), im + v * (w * i as f32).sin())
            });
            re * re + im * im
        };
        (50..=1000)
            .map(|f| (power(f as f32), f as f32))
            .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
            .1
    }

    fn tone(hz: f32, n: usize) -> Vec<f32> {
        let w = 2.0 * std::f32::consts::PI * hz / 16000.0;
        (0..n).map(|i| (w * i as f32).sin() * 3000.0).collect()
    }

    #[test]
    fn a_tone_shifted_up_a_fifth_of_its_pitch_keeps_its_length() {
        let x = tone(200.0, 16000);
        assert!((peak_hz(&x) - 200.0).abs() <= 1.0);
        let y = shift_pitch(&x, 1.2);
        assert!(
            (y.len() as f32 / x.len() as f32 - 1.0).abs() < 0.01,
            "{}",
            y.len()
        );
        let hz = peak_hz(&y);
        assert!((hz - 240.0).abs() <= 3.0, "{hz}");
        let down = peak_hz(&shift_pitch(&x, ratio_of(-3.0)));
        assert!((down - 200.0 * ratio_of(-3.0)).abs() <= 3.0, "{down}");
        // The level holds (no gaps or doubled frames), but for the tapered ends.
        let rms = |v: &[f32]| (v.iter().map(|s| s * s).sum::<f32>() / v.len() as f32).sqrt();
        let (a, b) = (rms(&x[1000..15000]), rms(&y[1000..15000]));
        assert!((b / a - 1.0).abs() < 0.15, "{a} {b}");
    }

    /// A vowel-like sound: a 120 Hz pulse train through a decaying 700 Hz resonance, with
    /// the pitch gliding and the loudness rising and falling, in two syllables.
    fn speech_like(n: usize) -> Vec<f32> {
        let mut phase = 0.0f32;
        let mut ring = 0.0f32;
        (0..n)
            .map(|i| {
                let t = i as f32 / 16000.0;
                phase += (120.0 + 40.0 * t) / 16000.0;
                let pulse = if phase >= 1.0 {
                    phase -= 1.0;
                    1.0
                } else {
                    0.0
                };
                ring = ring * 0.995 + pulse;
                let envelope = (std::f32::consts::PI * 2.0 * t / (n as f32 / 16000.0))
                    .sin()
                    .abs();
                ring * (2.0 * std::f32::consts::PI * 700.0 * t).sin() * envelope * 2000.0
            })
            .collect()
    }

    #[test]
    fn speech_keeps_its_length_and_its_syllables_where_they_were() {
        let x = speech_like(12_000);
        for ratio in [0.8, ratio_of(-2.0), ratio_of(3.0), 1.25] {
            let y = shift_pitch(&x, ratio);
            assert_eq!(y.len(), x.len());
            // Loudness per 50 ms follows the original's: the syllables stay in place.
            let env = |v: &[f32]| -> Vec<f32> {
                v.chunks(800)
                    .map(|c| c.iter().map(|s| s.abs()).sum::<f32>() / c.len() as f32)
                    .collect()
            };
            let (ex, ey) = (env(&x), env(&y));
            let corr = ex.iter().zip(&ey).map(|(a, b)| a * b).sum::<f32>()
                / (ex.iter().map(|a| a * a).sum::<f32>() * ey.iter().map(|b| b * b).sum::<f32>())
                    .sqrt();
            assert!(corr > 0.95, "ratio {ratio}: envelope correlation {corr}");
            assert!(y.iter().all(|v| v.is_finite()));
        }
        assert_eq!(shift_pitch(&x, 1.0), x);
        assert_eq!(shift_pitch(&x[..100], 1.3), &x[..100]);
    }

    #[test]
    fn a_stretch_to_twice_the_length_keeps_the_tone() {
        let x = tone(300.0, 8000);
        let y = stretch(&x, 16000);
        assert_eq!(y.len(), 16000);
        assert!((peak_hz(&y) - 300.0).abs() <= 2.0);
    }
}
