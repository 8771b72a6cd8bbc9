//! Augmentation: a take is sped up or slowed down, made louder or quieter and laid over room
//! noise at a slightly random position, so that a few takes make many training clips.

use rand::rngs::SmallRng;
use rand::Rng;

use std::cell::RefCell;

use super::recording::Recording;
use super::TrainOptions;
use crate::pipeline::frontend::SAMPLE_RATE;
use crate::Error;

/// Noise before the word, seconds (plus up to 0.1 s at random).
const LEAD_SECONDS: f32 = 0.85;
/// Noise after the word, seconds.
const TAIL_SECONDS: f32 = 0.45;

/// A sound laid over noise: the samples, and where the sound starts and ends (seconds).
pub(super) struct Placed {
    pub samples: Vec<f32>,
    pub word_start: f64,
    pub word_end: f64,
    /// Vocal-tract-length factor to warp the clip's log-mel frames by (1 = as recorded).
    pub warp: f64,
    /// What to add to each log-mel band (a microphone's or voice's colouring; empty for none).
    pub colour: Vec<f32>,
}

/// Noise source for augmentation: random segments of the background recordings, or faint
/// synthetic noise when there are none. A recording that cannot be read back (see
/// [`Recording`]) gives silence, and the error is kept for [`NoiseBed::failure`].
pub(super) struct NoiseBed<'a> {
    clips: &'a [Recording],
    failed: RefCell<Option<Error>>,
}

impl<'a> NoiseBed<'a> {
    fn new(clips: &'a [Recording]) -> Self {
        NoiseBed {
            clips,
            failed: RefCell::new(None),
        }
    }

    /// `len` samples of noise at `level` (synthetic noise has no level of its own: at
    /// `Level::Recorded` it takes the fallback).
    fn segment(&self, rng: &mut SmallRng, len: usize, level: Level) -> Vec<f32> {
        let rms = match level {
            Level::Rms(r) | Level::Recorded { fallback: r, .. } => r,
        };
        let mut out = vec![0.0f32; len];
        if self.clips.is_empty() {
            for v in out.iter_mut() {
                *v = (rng.random::<f32>() - 0.5) * 2.0 * rms * 1.7;
            }
            return out;
        }
        let clip = &self.clips[rng.random_range(0..self.clips.len())];
        let start = rng.random_range(0..clip.len());
        if let Err(e) = clip.read_looped(start, &mut out) {
            out.fill(0.0);
            self.failed.borrow_mut().get_or_insert(e);
        }
        let scale = match level {
            Level::Rms(rms) => rms / rms_of(&out).max(1e-3),
            Level::Recorded { gain, .. } => gain,
        };
        out.iter_mut().for_each(|v| *v *= scale);
        out
    }

    /// The first error reading a recording, if any (taken: asked again, it is None).
    fn failure(&self) -> Option<Error> {
        self.failed.borrow_mut().take()
    }
}

/// How loud a noise segment is laid.
#[derive(Clone, Copy, Debug)]
enum Level {
    /// At this root mean square.
    Rms(f32),
    /// At the recording's own level times `gain` (as loud as the room was, give or take);
    /// at `fallback` root mean square for synthetic noise.
    Recorded { gain: f32, fallback: f32 },
}

/// Root mean square of `x` (0 for no samples).
pub(super) fn rms_of(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// Changes speed (and pitch) by `factor` with linear interpolation.
pub(super) fn speed(x: &[f32], factor: f32) -> Vec<f32> {
    let n = ((x.len() as f32) / factor) as usize;
    (0..n)
        .map(|i| {
            let p = i as f32 * factor;
            let k = p as usize;
            let f = p - k as f32;
            let a = x[k.min(x.len() - 1)];
            let b = x[(k + 1).min(x.len() - 1)];
            a + (b - a) * f
        })
        .collect()
}

/// `x` played backwards.
pub(super) fn reversed(x: &[f32]) -> Vec<f32> {
    x.iter().rev().copied().collect()
}

/// Scales `x` by `gain_db`, but never past a peak of 32000 (int16 full scale, nearly).
fn apply_gain(x: &mut [f32], gain_db: f32) {
    let g = 10f32.powf(gain_db / 20.0);
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
    let g = g.min(32000.0 / peak);
    x.iter_mut().for_each(|v| *v *= g);
}

/// Half of `first` joined to half of `second` (each cut between 40 and 60 %), the second part
/// scaled to the first's level.
pub(super) fn splice(rng: &mut SmallRng, first: &[f32], second: &[f32]) -> Vec<f32> {
    let cut_a = (first.len() as f32 * rng.random_range(0.4..0.6)) as usize;
    let cut_b = (second.len() as f32 * rng.random_range(0.4..0.6)) as usize;
    let mut x = first[..cut_a].to_vec();
    let scale = rms_of(first) / rms_of(second).max(1.0);
    x.extend(second[cut_b..].iter().map(|v| v * scale));
    x
}

/// How one clip is altered.
struct Perturbation {
    speed: f32,
    gain_db: f32,
    /// Level of the word above the noise.
    snr_db: f32,
    /// When set: the noise at its recorded level, this many dB louder (`snr_db` is then the
    /// fallback for synthetic noise).
    room_db: Option<f32>,
}

impl Perturbation {
    /// The clean copy: original speed and level, 30 dB above the noise.
    const CLEAN: Perturbation = Perturbation {
        speed: 1.0,
        gain_db: 0.0,
        snr_db: 30.0,
        room_db: None,
    };

    /// A random perturbation within `ranges` and `opts`' gain range.
    fn draw(rng: &mut SmallRng, ranges: Ranges, opts: &TrainOptions) -> Perturbation {
        let speed = if ranges.speed > 0.0 {
            rng.random_range(1.0 - ranges.speed..1.0 + ranges.speed)
        } else {
            1.0
        };
        let gain_db = if opts.gain_db > 0.0 {
            rng.random_range(-opts.gain_db..opts.gain_db * 0.6)
        } else {
            0.0
        };
        let snr_db = rng.random_range(ranges.snr_min.min(29.0)..30.0);
        let room = ranges.room > 0.0 && rng.random_bool(ranges.room.min(1.0) as f64);
        Perturbation {
            speed,
            gain_db,
            snr_db,
            room_db: room.then(|| rng.random_range(-6.0..6.0)),
        }
    }
}

/// The ranges a perturbed copy is drawn from: speed `1 +- speed`; the word `snr_min` to 30 dB
/// above the noise, or (a share `room` of the copies) the noise as loud as it was recorded,
/// give or take 6 dB.
#[derive(Clone, Copy, Debug)]
pub struct Ranges {
    pub speed: f32,
    pub snr_min: f32,
    pub room: f32,
}

impl Ranges {
    /// `opts`' ranges for a `mine` word's copies.
    pub fn of(opts: &TrainOptions) -> Ranges {
        Ranges {
            speed: opts.speed,
            snr_min: opts.snr_min,
            room: opts.room_noise,
        }
    }
}

/// Makes the clips of a take: perturbed (or not) and laid over noise.
pub(super) struct Augmenter<'a> {
    bed: NoiseBed<'a>,
    opts: &'a TrainOptions,
}

impl<'a> Augmenter<'a> {
    /// Noise from `background` (synthetic noise when it is empty); ranges from `opts`.
    pub fn new(background: &'a [Recording], opts: &'a TrainOptions) -> Augmenter<'a> {
        Augmenter {
            bed: NoiseBed::new(background),
            opts,
        }
    }

    /// The first error reading the background back, if any (see [`NoiseBed`]).
    pub fn failure(&self) -> Option<Error> {
        self.bed.failure()
    }

    /// `sound` laid over noise after a lead of 0.85 to 0.95 s and before a 0.45 s tail,
    /// perturbed within `ranges` when they are given (else: the clean copy).
    pub fn place(&self, rng: &mut SmallRng, sound: &[f32], ranges: Option<Ranges>) -> Placed {
        let p = match ranges {
            Some(r) => Perturbation::draw(rng, r, self.opts),
            None => Perturbation::CLEAN,
        };
        let mut word = if p.speed == 1.0 {
            sound.to_vec()
        } else {
            speed(sound, p.speed)
        };
        apply_gain(&mut word, p.gain_db);
        let sr = SAMPLE_RATE as f32;
        let lead = (LEAD_SECONDS * sr) as usize + rng.random_range(0..(0.1 * sr) as usize);
        let tail = (TAIL_SECONDS * sr) as usize;
        let noise_rms = rms_of(&word) / 10f32.powf(p.snr_db / 20.0);
        let level = match p.room_db {
            Some(db) => Level::Recorded {
                gain: 10f32.powf(db / 20.0),
                fallback: noise_rms,
            },
            None => Level::Rms(noise_rms),
        };
        let mut samples = self.bed.segment(rng, lead + word.len() + tail, level);
        for (i, v) in word.iter().enumerate() {
            samples[lead + i] += v;
        }
        let word_start = lead as f64 / sr as f64;
        Placed {
            samples,
            word_start,
            word_end: word_start + word.len() as f64 / sr as f64,
            warp: 1.0,
            colour: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn tone(n: usize, amplitude: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * 0.05).sin() * amplitude)
            .collect()
    }

    #[test]
    fn speed_changes_length_and_keeps_samples_at_factor_one() {
        let x = tone(1000, 1000.0);
        assert_eq!(speed(&x, 1.0), x);
        assert_eq!(speed(&x, 2.0).len(), 500);
        assert_eq!(speed(&x, 0.5).len(), 2000);
        // Halving the speed interpolates half-way between neighbours.
        let slow = speed(&[0.0, 10.0, 20.0], 0.5);
        assert_eq!(&slow[..4], &[0.0, 5.0, 10.0, 15.0]);
    }

    #[test]
    fn gain_is_capped_at_full_scale() {
        let mut x = vec![1000.0, -2000.0];
        apply_gain(&mut x, 20.0);
        assert_eq!(x, vec![10000.0, -20000.0]);
        let mut y = vec![1000.0, -20000.0];
        apply_gain(&mut y, 20.0);
        assert_eq!(y, vec![1600.0, -32000.0]);
    }

    #[test]
    fn noise_bed_meets_the_requested_level() {
        let mut rng = SmallRng::seed_from_u64(7);
        let clips = vec![Recording::from(tone(4000, 300.0))];
        for bed in [NoiseBed::new(&clips), NoiseBed::new(&[])] {
            let x = bed.segment(&mut rng, 8000, Level::Rms(50.0));
            assert_eq!(x.len(), 8000);
            let rms = rms_of(&x);
            assert!((rms - 50.0).abs() < 5.0, "{rms}");
            assert!(bed.failure().is_none());
        }
    }

    #[test]
    fn noise_from_a_spilled_recording_is_the_same_as_from_memory() {
        let x = tone(70_000, 300.0);
        let clips = [Recording::from(x.clone()), Recording::spilled(&x).unwrap()];
        let segments: Vec<Vec<f32>> = (0..2)
            .map(|i| {
                let bed = NoiseBed::new(&clips[i..i + 1]);
                let mut rng = SmallRng::seed_from_u64(9);
                (0..20)
                    .flat_map(|_| bed.segment(&mut rng, 30_000, Level::Rms(40.0)))
                    .collect()
            })
            .collect();
        assert_eq!(segments[0], segments[1]);
        assert!(rms_of(&segments[0]) > 30.0);
    }

    #[test]
    fn splice_joins_halves_at_the_first_level() {
        let mut rng = SmallRng::seed_from_u64(3);
        let first = vec![100.0; 1000];
        let second = vec![-400.0; 2000];
        let x = splice(&mut rng, &first, &second);
        let n_first = x.iter().take_while(|&&v| v == 100.0).count();
        assert!((400..600).contains(&n_first), "{n_first}");
        assert!((800..=1200).contains(&(x.len() - n_first)));
        assert!(x[n_first..].iter().all(|&v| v == -100.0));
    }

    #[test]
    fn placed_word_sits_after_the_lead() {
        let opts = TrainOptions::default();
        let aug = Augmenter::new(&[], &opts);
        let mut rng = SmallRng::seed_from_u64(1);
        let word = tone(8000, 5000.0);
        let clean = aug.place(&mut rng, &word, None);
        assert!((0.85..0.95).contains(&clean.word_start));
        assert!((clean.word_end - clean.word_start - 0.5).abs() < 1e-9);
        let lead = (clean.word_start * 16000.0).round() as usize;
        assert_eq!(clean.samples.len(), lead + 8000 + 7200);
        // The clean copy is 30 dB above the noise: the lead is quiet, the word loud.
        assert!(rms_of(&clean.samples[..lead]) < 0.05 * rms_of(&word));
        let changed = aug.place(&mut rng, &word, Some(Ranges::of(&opts)));
        let secs = changed.word_end - changed.word_start;
        assert!((0.5 / 1.12..=0.5 / 0.88).contains(&secs), "{secs}");
    }

    #[test]
    fn perturbed_copies_lie_within_the_noise_range() {
        let word = tone(8000, 5000.0);
        // The lead's level against the word's, in dB, of 30 perturbed copies.
        let levels = |snr_min: f32| -> Vec<f32> {
            let opts = TrainOptions {
                gain_db: 0.0,
                ..TrainOptions::default()
            };
            let aug = Augmenter::new(&[], &opts);
            let mut rng = SmallRng::seed_from_u64(5);
            let ranges = Ranges {
                speed: 0.0,
                snr_min,
                room: 0.0,
            };
            (0..30)
                .map(|_| {
                    let p = aug.place(&mut rng, &word, Some(ranges));
                    let lead = (p.word_start * 16000.0) as usize;
                    20.0 * (rms_of(&word) / rms_of(&p.samples[..lead])).log10()
                })
                .collect()
        };
        let low = levels(-5.0);
        assert!(low.iter().all(|&l| (-6.0..31.0).contains(&l)), "{low:?}");
        assert!(low.iter().any(|&l| l < 4.0), "{low:?}");
        let high = levels(20.0);
        assert!(high.iter().all(|&l| (19.0..31.0).contains(&l)), "{high:?}");
    }

    #[test]
    fn room_noise_keeps_the_level_it_was_recorded_at() {
        let mut rng = SmallRng::seed_from_u64(11);
        let clips = vec![Recording::from(tone(4000, 300.0))];
        let recorded = rms_of(&tone(4000, 300.0));
        let bed = NoiseBed::new(&clips);
        let at = |gain, rng: &mut SmallRng| {
            let level = Level::Recorded {
                gain,
                fallback: 5.0,
            };
            rms_of(&bed.segment(rng, 8000, level))
        };
        assert!((at(1.0, &mut rng) / recorded - 1.0).abs() < 0.05);
        assert!((at(2.0, &mut rng) / recorded - 2.0).abs() < 0.1);
        // Synthetic noise has no level of its own: the fallback.
        let x = NoiseBed::new(&[]).segment(
            &mut rng,
            8000,
            Level::Recorded {
                gain: 1.0,
                fallback: 5.0,
            },
        );
        assert!((rms_of(&x) - 5.0).abs() < 0.5, "{}", rms_of(&x));
        // Every perturbed copy at the room's level: the lead is as loud as the room, whatever
        // the word's level.
        let opts = TrainOptions {
            room_noise: 1.0,
            ..TrainOptions::default()
        };
        let aug = Augmenter::new(&clips, &opts);
        for amplitude in [300.0, 3000.0] {
            let p = aug.place(&mut rng, &tone(8000, amplitude), Some(Ranges::of(&opts)));
            let lead = (p.word_start * 16000.0) as usize;
            let db = 20.0 * (rms_of(&p.samples[..lead]) / recorded).log10();
            assert!((-6.5..6.5).contains(&db), "{db}");
        }
    }
}
