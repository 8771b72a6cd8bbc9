//! The clips a dataset makes before anything is embedded: per take, its augmented copies (the
//! word), its halves spliced with other sounds and its reversed copies ("none"); per
//! `_unknown_` take, two copies ("none").

use rand::rngs::SmallRng;
use rand::Rng;
use std::borrow::Cow;

use super::augment::{reversed, splice, Augmenter, Placed, Ranges};
use super::fold::{Fold, Source};
use super::pitch;
use super::voices::Synthetic;
use super::TrainOptions;
use crate::pipeline::frontend::N_MELS;
use crate::pipeline::head::Voices;
use crate::train::dataset::Dataset;
use crate::Result;

/// A clip to embed: its audio (and where the word is), and what its windows are.
pub(super) struct Clip {
    pub audio: Placed,
    /// Class of the word windows (0 when the whole clip is negative).
    pub class: usize,
    pub fold: Fold,
    /// True for the unaugmented copy of a take.
    pub clean: bool,
    pub source: Source,
}

impl Clip {
    /// A clip whose windows are all "none".
    fn negative(audio: Placed, fold: Fold, source: Source) -> Clip {
        Clip {
            audio,
            class: 0,
            fold,
            clean: false,
            source,
        }
    }
}

/// Every clip of `ds`, drawn from `rng` in a fixed order: per word and take, the take's
/// augmented copies, spliced halves and reversed copies; then the `_unknown_` takes.
/// `synthetic[w]` are takes of word `w` by other voices, in every fold's training set: more
/// examples of a word anyone may say, "none" for a word only its own voices may say.
/// Fails only when a long background recording cannot be read back from its temporary file.
#[cfg(test)]
pub(super) fn make_clips(
    ds: &Dataset,
    synthetic: &Synthetic,
    opts: &TrainOptions,
    rng: &mut SmallRng,
) -> Result<Vec<Clip>> {
    let mut clips = Vec::new();
    for_each_clip(ds, synthetic, opts, rng, &mut |c| clips.push(c))?;
    Ok(clips)
}

/// The clips of [`make_clips`], each handed to `emit` as soon as it is made, so that they need
/// not all be held at once (an `anyone` word's 60 synthetic takes make 73 MB of clips).
pub(super) fn for_each_clip(
    ds: &Dataset,
    synthetic: &Synthetic,
    opts: &TrainOptions,
    rng: &mut SmallRng,
    emit: &mut dyn FnMut(Clip),
) -> Result<()> {
    let mut maker = ClipMaker {
        augmenter: Augmenter::new(&ds.background, opts),
        opts,
        rng,
        emit,
        room: opts.room_noise,
    };
    let reversed_takes: Vec<Vec<f32>> = ds
        .words
        .iter()
        .flat_map(|(_, t)| t.iter().map(|t| reversed(&t.samples)))
        .collect();
    let voices = ds.voices(opts.voices);
    for (ci, (_, takes)) in ds.words.iter().enumerate() {
        let partners = splice_partners(ds, ci, &reversed_takes);
        // Not at this room's level for a word anyone may say, nor for what is made from its
        // takes: measured worse for such words (docs/research/head.md).
        maker.room = match voices[ci] {
            Voices::Mine => opts.room_noise,
            Voices::Anyone => 0.0,
        };
        for (ti, take) in takes.iter().enumerate() {
            let fold = Fold::Take(ti);
            match voices[ci] {
                Voices::Mine => {
                    maker.take(&take.samples, ci + 1, fold, &partners);
                    maker.foreign(&take.samples, fold);
                }
                Voices::Anyone => maker.take_for_anyone(&take.samples, ci + 1, fold, &partners),
            }
        }
        for take in synthetic.takes.get(ci).into_iter().flatten() {
            match voices[ci] {
                Voices::Mine => maker.twice(take, Fold::Always, Source::Altered),
                Voices::Anyone => maker.synthetic_take(take, ci + 1),
            }
        }
    }
    maker.room = 0.0;
    for take in &synthetic.neighbours {
        maker.twice(take, Fold::Always, Source::Neighbour);
    }
    maker.room = opts.room_noise;
    for (ui, take) in ds.unknown.iter().enumerate() {
        maker.unknown(&take.samples, Fold::Take(ui));
    }
    match maker.augmenter.failure() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How many clips [`for_each_clip`] makes (for a progress bar), from the same per-take counts
/// the clip maker uses.
pub(super) fn clip_count(ds: &Dataset, synthetic: &Synthetic, opts: &TrainOptions) -> usize {
    let voices = ds.voices(opts.voices);
    let words: usize = ds
        .words
        .iter()
        .zip(&voices)
        .enumerate()
        .map(|(ci, ((_, takes), &v))| {
            let per_take =
                word_copies(opts, v) + foreign_copies(opts, v) + negatives_per_take(opts);
            let synthetic = synthetic.takes.get(ci).map_or(0, Vec::len);
            takes.len() * per_take + synthetic_copies(opts, v) * synthetic
        })
        .sum();
    words + TWICE * synthetic.neighbours.len() + (TWICE + opts.unknown_voices) * ds.unknown.len()
}

/// Clips of a sound made twice, clean and augmented (`_unknown_` takes, reversed takes, a `mine`
/// word's synthetic takes).
const TWICE: usize = 2;

/// Copies of a take of a word that are the word (the first clean).
fn word_copies(opts: &TrainOptions, voices: Voices) -> usize {
    match voices {
        Voices::Mine => opts.augment.max(1),
        Voices::Anyone => opts.anyone_augment.max(1),
    }
}

/// "None" copies of a take as another voice would say it (`mine` words only).
fn foreign_copies(opts: &TrainOptions, voices: Voices) -> usize {
    match voices {
        Voices::Mine => opts.mine_foreign,
        Voices::Anyone => 0,
    }
}

/// "None" clips made from each take: spliced halves, and the reversed take twice.
fn negatives_per_take(opts: &TrainOptions) -> usize {
    opts.chimeras + if opts.reversed { TWICE } else { 0 }
}

/// Clips made from each synthetic take of a word: its copies for an `anyone` word (2: clean
/// and as another voice, or 1: only the latter), two "none" clips for a `mine` word.
fn synthetic_copies(opts: &TrainOptions, voices: Voices) -> usize {
    match voices {
        Voices::Mine => TWICE,
        Voices::Anyone => opts.anyone_synth_copies.clamp(1, 2),
    }
}

/// Sounds to splice word `ci`'s takes with: the other words' takes, `_unknown_` takes, and
/// every reversed take.
fn splice_partners<'a>(
    ds: &'a Dataset,
    ci: usize,
    reversed_takes: &'a [Vec<f32>],
) -> Vec<&'a [f32]> {
    ds.words
        .iter()
        .enumerate()
        .filter(|(cj, _)| *cj != ci)
        .flat_map(|(_, (_, t))| t.iter().map(|t| &t.samples[..]))
        .chain(ds.unknown.iter().map(|t| &t.samples[..]))
        .chain(reversed_takes.iter().map(|v| &v[..]))
        .collect()
}

/// A random colouring of the log-mel bands, as another microphone, room or voice quality
/// would give: a tilt from -`db` to +`db` dB across the bands (or the reverse) plus two bumps
/// of up to +-`db` dB, 2-6 bands wide, anywhere; in log-mel units (10 dB).
pub(super) fn colouring(rng: &mut SmallRng, db: f32) -> Vec<f32> {
    let unit = db / 10.0;
    let tilt = rng.random_range(-1.0..1.0f32) * unit;
    let bumps: Vec<(f32, f32, f32)> = (0..2)
        .map(|_| {
            let centre = rng.random_range(0.0..N_MELS as f32);
            let width = rng.random_range(2.0..6.0f32);
            (centre, width, rng.random_range(-1.0..1.0f32) * unit)
        })
        .collect();
    (0..N_MELS)
        .map(|m| {
            let x = m as f32 / (N_MELS - 1) as f32 * 2.0 - 1.0;
            let bump: f32 = bumps
                .iter()
                .map(|(c, w, g)| g * (-0.5 * ((m as f32 - c) / w).powi(2)).exp())
                .sum();
            tilt * x + bump
        })
        .collect()
}

/// Makes clips one after another from one random stream.
struct ClipMaker<'a> {
    augmenter: Augmenter<'a>,
    opts: &'a TrainOptions,
    rng: &'a mut SmallRng,
    emit: &'a mut dyn FnMut(Clip),
    /// The share of perturbed copies laid over the room noise at its recorded level, for the
    /// word being made.
    room: f32,
}

impl ClipMaker<'_> {
    /// A take of word `class`: `augment` copies (the first clean), then the negatives made from it.
    fn take(&mut self, take: &[f32], class: usize, fold: Fold, partners: &[&[f32]]) {
        for aug in 0..word_copies(self.opts, Voices::Mine) {
            let pitch = if aug > 0 { self.opts.mine_pitch } else { 0.0 };
            let shifted = self.pitch_shifted(take, pitch);
            let mut audio = self.place(&shifted, aug > 0);
            if aug > 0 {
                self.vary(&mut audio, self.opts.mine_warp, self.opts.mine_colour);
            }
            self.word(audio, class, fold, aug == 0);
        }
        self.negatives_of(take, fold, partners);
    }

    /// A take of a word anyone may say: `anyone_augment` copies (the first clean), the others
    /// as other voices would say it: a wider speed range, a warped vocal tract, a colouring
    /// and (`anyone_pitch`) a pitch shift.
    fn take_for_anyone(&mut self, take: &[f32], class: usize, fold: Fold, partners: &[&[f32]]) {
        for aug in 0..word_copies(self.opts, Voices::Anyone) {
            let ranges = (aug > 0).then_some(self.anyone_ranges());
            let pitch = if aug > 0 { self.opts.anyone_pitch } else { 0.0 };
            let shifted = self.pitch_shifted(take, pitch);
            let mut audio = self.augmenter.place(self.rng, &shifted, ranges);
            if aug > 0 {
                self.vary(&mut audio, self.opts.anyone_warp, self.opts.anyone_colour);
            }
            self.word(audio, class, fold, aug == 0);
        }
        self.negatives_of(take, fold, partners);
    }

    /// A synthetic take of a word anyone may say: a clean copy and one as another voice.
    fn synthetic_take(&mut self, take: &[f32], class: usize) {
        if synthetic_copies(self.opts, Voices::Anyone) > 1 {
            let clean = self.augmenter.place(self.rng, take, None);
            self.word(clean, class, Fold::Always, false);
        }
        let shifted = self.pitch_shifted(take, self.opts.anyone_synth_pitch);
        let ranges = self.anyone_ranges();
        let mut other = self.augmenter.place(self.rng, &shifted, Some(ranges));
        self.vary(&mut other, self.opts.anyone_warp, self.opts.anyone_colour);
        self.word(other, class, Fold::Always, false);
    }

    /// `sound` laid over noise, perturbed (within `opts`' ranges and the word's room share) or
    /// not.
    fn place(&mut self, sound: &[f32], perturbed: bool) -> Placed {
        let ranges = Ranges {
            room: self.room,
            ..Ranges::of(self.opts)
        };
        self.augmenter
            .place(self.rng, sound, perturbed.then_some(ranges))
    }

    /// The perturbation ranges of a copy as another voice would say a word anyone may say.
    fn anyone_ranges(&self) -> Ranges {
        Ranges {
            speed: self.opts.anyone_speed,
            snr_min: self.opts.anyone_snr_min,
            room: 0.0,
        }
    }

    /// Warps `audio`'s vocal tract by a factor within 1/(1+`warp`)..1+`warp` and colours its
    /// bands by up to `colour_db` (each only when above 0), drawing from the random stream.
    fn vary(&mut self, audio: &mut Placed, warp: f32, colour_db: f32) {
        if warp > 0.0 {
            audio.warp = (self.rng.random_range(-1.0..1.0) * (1.0 + warp as f64).ln()).exp();
        }
        if colour_db > 0.0 {
            audio.colour = colouring(self.rng, colour_db);
        }
    }

    /// `take` with its pitch shifted (tempo kept) by up to `semitones` either way, drawn
    /// evenly in semitones; unchanged (and nothing drawn) when `semitones` is 0.
    fn pitch_shifted<'t>(&mut self, take: &'t [f32], semitones: f32) -> Cow<'t, [f32]> {
        if semitones <= 0.0 {
            return Cow::Borrowed(take);
        }
        let ratio = pitch::ratio_of(self.rng.random_range(-semitones..=semitones));
        Cow::Owned(pitch::shift_pitch(take, ratio))
    }

    /// One copy of a take: the word's windows are its class.
    fn word(&mut self, audio: Placed, class: usize, fold: Fold, clean: bool) {
        (self.emit)(Clip {
            audio,
            class,
            fold,
            clean,
            source: Source::Take,
        });
    }

    /// `mine_foreign` "none" copies of a take of a word only its own voices may say: the take
    /// as a voice with a vocal tract `foreign_warp` to 1.5 `foreign_warp` longer or shorter
    /// would say it, so that the head learns the voice as well as the word.
    fn foreign(&mut self, take: &[f32], fold: Fold) {
        let lo = (1.0 + self.opts.foreign_warp as f64).ln();
        for _ in 0..foreign_copies(self.opts, Voices::Mine) {
            let mut audio = self.place(take, true);
            let sign = if self.rng.random_bool(0.5) { 1.0 } else { -1.0 };
            audio.warp = (sign * self.rng.random_range(lo..=1.5 * lo)).exp();
            (self.emit)(Clip::negative(audio, fold, Source::Altered));
        }
    }

    /// The "none" clips made from a take: spliced with other sounds, and played backwards.
    fn negatives_of(&mut self, take: &[f32], fold: Fold, partners: &[&[f32]]) {
        // Half of this take joined to half of another sound: the head must hear the whole word,
        // not a shared beginning or ending.
        for k in 0..self.opts.chimeras {
            let partner = partners[self.rng.random_range(0..partners.len())];
            let x = if k % 2 == 0 {
                splice(self.rng, take, partner)
            } else {
                splice(self.rng, partner, take)
            };
            let audio = self.place(&x, true);
            (self.emit)(Clip::negative(audio, fold, Source::Altered));
        }
        if self.opts.reversed {
            self.twice(&reversed(take), fold, Source::Altered);
        }
    }

    /// Two "none" clips of `sound`: a clean copy and an augmented one.
    /// An `_unknown_` take: twice as it is (clean and augmented), then `unknown_voices`
    /// copies as other voices would say it.
    fn unknown(&mut self, take: &[f32], fold: Fold) {
        self.twice(take, fold, Source::Unknown);
        for _ in 0..self.opts.unknown_voices {
            let mut audio = self.place(take, true);
            self.vary(&mut audio, self.opts.unknown_warp, self.opts.unknown_colour);
            (self.emit)(Clip::negative(audio, fold, Source::Unknown));
        }
    }

    fn twice(&mut self, sound: &[f32], fold: Fold, source: Source) {
        for aug in 0..TWICE {
            let audio = self.place(sound, aug > 0);
            (self.emit)(Clip::negative(audio, fold, source));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::dataset::Take;
    use rand::SeedableRng;

    #[test]
    fn a_colouring_is_a_tilt_and_two_bumps_within_its_bound() {
        let mut rng = SmallRng::seed_from_u64(3);
        let curves: Vec<Vec<f32>> = (0..50).map(|_| colouring(&mut rng, 6.0)).collect();
        for c in &curves {
            assert_eq!(c.len(), N_MELS);
            // A tilt of up to 6 dB and two bumps of up to 6 dB each, in units of 10 dB.
            assert!(c.iter().all(|v| v.abs() <= 1.8 + 1e-6), "{c:?}");
        }
        assert!(curves.iter().any(|c| c.iter().any(|v| v.abs() > 0.6)));
        assert_ne!(curves[0], curves[1]);
        let again = colouring(&mut SmallRng::seed_from_u64(3), 6.0);
        assert_eq!(again, curves[0], "drawn from the random stream alone");
    }

    fn take(seed: usize) -> Take {
        Take {
            path: Default::default(),
            samples: (0..4000)
                .map(|i| ((i * (seed + 3)) as f32 * 0.01).sin() * 3000.0)
                .collect(),
        }
    }

    fn dataset(words: usize, takes: usize, unknown: usize) -> Dataset {
        Dataset {
            words: (0..words)
                .map(|w| {
                    (
                        format!("w{w}"),
                        (0..takes).map(|t| take(w * 10 + t)).collect(),
                    )
                })
                .collect(),
            background: vec![],
            unknown: (0..unknown).map(|u| take(100 + u)).collect(),
            ..Default::default()
        }
    }

    /// (class, fold, clean, source) of every clip.
    fn summary(clips: &[Clip]) -> Vec<(usize, Fold, bool, Source)> {
        clips
            .iter()
            .map(|c| (c.class, c.fold, c.clean, c.source))
            .collect()
    }

    #[test]
    fn each_take_makes_copies_then_its_negatives() {
        let ds = dataset(2, 3, 2);
        let opts = TrainOptions {
            augment: 3,
            chimeras: 2,
            mine_foreign: 0,
            ..TrainOptions::default()
        };
        let clips = make_clips(
            &ds,
            &Synthetic::default(),
            &opts,
            &mut SmallRng::seed_from_u64(5),
        )
        .unwrap();
        // Per take: 3 copies + 2 chimeras + 2 reversed; per unknown take: 2.
        assert_eq!(clips.len(), 2 * 3 * 7 + 2 * 2);
        let s = summary(&clips);
        let per_take = |class, t| {
            let mut v = vec![(class, Fold::Take(t), true, Source::Take)];
            v.extend([(class, Fold::Take(t), false, Source::Take); 2]);
            v.extend([(0, Fold::Take(t), false, Source::Altered); 4]);
            v
        };
        assert_eq!(s[..7], per_take(1, 0));
        assert_eq!(s[7..14], per_take(1, 1));
        assert_eq!(s[21..28], per_take(2, 0));
        assert_eq!(s[42], (0, Fold::Take(0), false, Source::Unknown));
        assert_eq!(s[45], (0, Fold::Take(1), false, Source::Unknown));
        // The clean copy holds the take unchanged (over quiet noise), where it says.
        let c = &clips[0].audio;
        let start = (c.word_start * 16000.0).round() as usize;
        let diff = c.samples[start + 100] - ds.words[0].1[0].samples[100];
        assert!(diff.abs() < 0.05 * 3000.0, "{diff}");
    }

    #[test]
    fn foreign_voices_of_a_take_are_warped_negatives() {
        let ds = dataset(1, 2, 0);
        let opts = TrainOptions {
            augment: 1,
            reversed: false,
            mine_foreign: 3,
            foreign_warp: 0.2,
            ..TrainOptions::default()
        };
        let clips = make_clips(
            &ds,
            &Synthetic::default(),
            &opts,
            &mut SmallRng::seed_from_u64(5),
        )
        .unwrap();
        assert_eq!(clips.len(), 2 * (1 + 3));
        let foreign: Vec<&Clip> = clips.iter().filter(|c| c.class == 0).collect();
        assert_eq!(foreign.len(), 6);
        for c in &foreign {
            assert_eq!((c.source, c.clean), (Source::Altered, false));
            let w = c.audio.warp.ln().abs();
            assert!(
                (1.2f64.ln() - 1e-9..=1.5 * 1.2f64.ln() + 1e-9).contains(&w),
                "{w}"
            );
        }
        assert!(foreign.iter().any(|c| c.audio.warp > 1.0));
        assert!(foreign.iter().any(|c| c.audio.warp < 1.0));
        assert_eq!(foreign[3].fold, Fold::Take(1));
        // `anyone` words have none: other voices are theirs.
        let anyone = TrainOptions {
            voices: Voices::Anyone,
            anyone_augment: 1,
            ..opts
        };
        let clips = make_clips(
            &ds,
            &Synthetic::default(),
            &anyone,
            &mut SmallRng::seed_from_u64(5),
        )
        .unwrap();
        assert!(clips.iter().all(|c| c.class == 1));
    }

    #[test]
    fn options_turn_negatives_off_and_the_stream_is_reproducible() {
        let ds = dataset(1, 3, 0);
        let opts = TrainOptions {
            augment: 0,
            reversed: false,
            mine_foreign: 0,
            ..TrainOptions::default()
        };
        let clips = make_clips(
            &ds,
            &Synthetic::default(),
            &opts,
            &mut SmallRng::seed_from_u64(5),
        )
        .unwrap();
        // `augment` 0 still makes the clean copy.
        assert_eq!(summary(&clips).len(), 3);
        assert!(clips.iter().all(|c| c.clean && c.class == 1));
        let again = make_clips(
            &ds,
            &Synthetic::default(),
            &opts,
            &mut SmallRng::seed_from_u64(5),
        )
        .unwrap();
        assert!(clips
            .iter()
            .zip(&again)
            .all(|(a, b)| a.audio.samples == b.audio.samples));
    }

    #[test]
    fn pitch_shifted_copies_of_anyone_takes_keep_their_length_and_the_clean_copy() {
        let ds = dataset(1, 2, 0);
        let opts = |pitch| TrainOptions {
            voices: Voices::Anyone,
            anyone_augment: 4,
            anyone_speed: 0.0,
            anyone_pitch: pitch,
            reversed: false,
            ..TrainOptions::default()
        };
        let make = |pitch| {
            make_clips(
                &ds,
                &Synthetic::default(),
                &opts(pitch),
                &mut SmallRng::seed_from_u64(5),
            )
        };
        let (plain, shifted) = (make(0.0).unwrap(), make(4.0).unwrap());
        assert_eq!(plain.len(), shifted.len());
        let word = |c: &Clip| {
            let start = (c.audio.word_start * 16000.0).round() as usize;
            let end = (c.audio.word_end * 16000.0).round() as usize;
            c.audio.samples[start..end].to_vec()
        };
        for (i, (p, s)) in plain.iter().zip(&shifted).enumerate() {
            // Tempo is kept: the word is as long as the take.
            assert_eq!(word(s).len(), 4000, "clip {i}");
            assert_eq!(p.clean, s.clean);
        }
        // The clean copies are the same; the others are shifted.
        assert_eq!(word(&plain[0]), word(&shifted[0]));
        // Gain and noise leave a copy like its take; a pitch shift does not.
        let likeness = |c: &Clip| {
            let (w, t) = (word(c), &ds.words[0].1[0].samples);
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
            dot(&w, t) / (dot(&w, &w) * dot(t, t)).sqrt()
        };
        assert!(plain[1..4].iter().all(|c| likeness(c) > 0.8));
        assert!(shifted[1..4].iter().any(|c| likeness(c) < 0.5));
    }

    #[test]
    fn clip_count_is_the_number_of_clips_made() {
        let ds = dataset(2, 3, 2);
        let synthetic = Synthetic {
            takes: vec![vec![take(7).samples; 4], vec![take(8).samples; 3]],
            neighbours: vec![take(9).samples; 2],
        };
        for voices in [Voices::Mine, Voices::Anyone] {
            let opts = TrainOptions {
                voices,
                augment: 2,
                anyone_augment: 3,
                mine_foreign: 1,
                chimeras: 2,
                ..TrainOptions::default()
            };
            let mut rng = SmallRng::seed_from_u64(5);
            let made = make_clips(&ds, &synthetic, &opts, &mut rng).unwrap().len();
            assert_eq!(clip_count(&ds, &synthetic, &opts), made, "{voices:?}");
        }
    }
}
