//! The recipe of a head: every design knob of training, a TOML file of tables by subject
//! (`hark train --recipe FILE`; `hark train --print-recipe` prints the built-in one). Every key
//! may be left out, and then has its default, the benchmark's choice ([`TrainOptions`]'s
//! default): an empty recipe trains the same head, byte for byte, as none. An unknown key, a
//! value of the wrong type or out of range is refused with one line naming the file, the line
//! and the key: `r.toml:12: key 'anyone.l2': expected a number >= 0, got -1`.
//!
//! What a user chooses (where the takes are, who may say the words, the negative bank and the
//! word check on or off) stays on the command line, beside the recipe.

mod spans;
mod table;

use std::path::Path;

use super::TrainOptions;
use crate::error::Error;
use crate::pipeline::word_check::check::Rule;
use crate::Result;
use table::{any, between, count, engines, finite, inside, score, table, weight, weights};

table! {
    /// The network and its fit.
    Fit("fit"): TrainOptions {
        /// Seed of the augmentation, the network's initialisation and the mining.
        seed: u64 = seed, any;
        /// Consecutive embeddings per feature (1 to 16).
        context: usize = context, count(1, 16);
        /// Hidden units (0 = a linear softmax; up to 1024).
        hidden: usize = hidden, count(0, 1024);
        /// Passes over the examples.
        epochs: usize = epochs, count(1, 100_000);
        /// Weight decay of the fit.
        l2: f32 = l2, weight;
        /// Average the head with the heads of its cross-validation folds (an ensemble).
        ensemble: bool = ensemble, any;
    }
}

table! {
    /// The detector settings written into the head (`mine` words; `anyone` words
    /// have their own threshold in `[anyone]`).
    Detector("detector"): TrainOptions {
        /// Default detection threshold.
        threshold: f32 = threshold, score;
        /// Windows averaged (1 to 50).
        smoothing: usize = smoothing, count(1, 50);
        /// Seconds after an event in which its word does not fire again (0 to 60).
        refractory: f32 = refractory, between(0.0, 60.0);
    }
}

table! {
    /// The augmented copies of each take (`mine` words; `anyone` words change some
    /// in `[anyone]`).
    Augment("augment"): TrainOptions {
        /// Copies per take, the first clean (0 to 50).
        copies: usize = augment, count(0, 50);
        /// Speed perturbation range (0.12 = +-12%).
        speed: f32 = speed, between(0.0, 0.5);
        /// Gain perturbation range in dB (-gain_db to +0.6 gain_db).
        gain_db: f32 = gain_db, between(0.0, 40.0);
        /// Lowest level of a copy's word above its noise, in dB (up to 29).
        snr_min: f32 = snr_min, between(-20.0, 29.0);
        /// `mine` words: share of copies laid over the room noise at its recorded level (+-6
        /// dB; the others lie 5-30 dB below the word).
        room_noise: f32 = room_noise, score;
    }
}

table! {
    /// What "none" is trained on besides the room noise and `_unknown_`.
    Negatives("negatives"): TrainOptions {
        /// Total weight of "none" windows per source, relative to each word's 1: take halves,
        /// altered takes, background, bank, unknown.
        source_weights: table::Weights = source_weights, weights;
        /// The takes played backwards as negatives.
        reversed: bool = reversed, any;
        /// Spliced half-take negatives per take (0 to 20).
        chimeras: usize = chimeras, count(0, 20);
        /// Hard-negative mining: bank windows kept as the hardest (and as many at random;
        /// 0 = every window).
        hardest: usize = mine, any;
        /// Most bank windows used.
        bank_max: usize = bank_max, any;
        /// Speech engines of the synthetic negative bank, taking turns (espeak, flite,
        /// festival, mbrola).
        bank_engines: Vec<crate::audio::synth::Engine> = bank_engines, engines;
        /// Copies of each `_unknown_` take (a clip `hark reject` filed) as other voices would
        /// say it, so that it teaches the sound, not only the one clip (0 to 20).
        unknown_voices: usize = unknown_voices, count(0, 20);
        /// Vocal-tract warp range of those copies (factor 1/(1+w) to 1+w).
        unknown_warp: f32 = unknown_warp, between(0.0, 0.5);
        /// Colour those copies' log-mel bands by up to this many dB (0 = none).
        unknown_colour: f32 = unknown_colour, between(0.0, 20.0);
    }
}

table! {
    /// The similarity check of a window against the takes.
    Templates("templates"): TrainOptions {
        /// Templates from augmented windows too (false: from the clean takes only).
        augmented: bool = template_augmented, any;
        /// Quantile of held-out similarities at which the check's gate sits.
        quantile: f32 = template_quantile, score;
        /// Slack of the check below its gate (negative disables the check).
        slack: f32 = template_slack, finite;
        /// Windows a passed check holds for (0 to 1000).
        hold: usize = template_hold, count(0, 1000);
    }
}

table! {
    /// Per-word calibration on the negative bank.
    Calibration("calibration"): TrainOptions {
        /// The share of bank windows whose score each word's calibrated score puts on its
        /// threshold (0 = off).
        bank_rate: f32 = bank_rate, score;
    }
}

table! {
    /// Words only the voices that recorded them may say.
    Mine("mine"): TrainOptions {
        /// "none" copies per take as another voice would say it (warped vocal tract; 0 to 20).
        foreign: usize = mine_foreign, count(0, 20);
        /// Smallest vocal-tract warp of those copies (factor 1+w to (1+w)^1.5).
        foreign_warp: f32 = foreign_warp, score;
        /// Synthetic takes of the word by the voices of `[synth]`, as "none" (0 to 200).
        synth: usize = mine_synth, count(0, 200);
        /// Colour the copies' log-mel bands by up to this many dB (0 = none).
        colour: f32 = mine_colour, between(0.0, 20.0);
        /// Vocal-tract warp range of the copies (0 = none).
        warp: f32 = mine_warp, between(0.0, 0.5);
        /// Pitch shift (tempo kept) of the copies, up to this many semitones either way.
        pitch: f32 = mine_pitch, between(0.0, 12.0);
    }
}

table! {
    /// Words anyone may say (`--voices anyone`, or `voices = "anyone"` in a word's
    /// `word.toml`).
    Anyone("anyone"): TrainOptions {
        /// Default detection threshold.
        threshold: f32 = anyone_threshold, score;
        /// How much higher the threshold is per sound of the word beyond four (0 = the same
        /// for every word).
        threshold_per_sound: f32 = anyone_threshold_per_sound, between(0.0, 0.2);
        /// The highest threshold that rule gives.
        threshold_most: f32 = anyone_threshold_most, score;
        /// Augmented copies per take (0 to 100).
        copies: usize = anyone_augment, count(0, 100);
        /// Speed perturbation range of the copies.
        speed: f32 = anyone_speed, between(0.0, 0.5);
        /// Lowest level of the copies above their noise, in dB.
        snr_min: f32 = anyone_snr_min, between(-20.0, 29.0);
        /// Vocal-tract warp range of the copies (factor 1/(1+w) to 1+w).
        warp: f32 = anyone_warp, between(0.0, 0.5);
        /// Colour the copies' log-mel bands by up to this many dB (0 = none).
        colour: f32 = anyone_colour, between(0.0, 20.0);
        /// Pitch shift (tempo kept) of the takes' copies, up to this many semitones either way.
        pitch: f32 = anyone_pitch, between(0.0, 12.0);
        /// Synthetic takes said by the voices of `[synth]` (0 to 200).
        synth: usize = anyone_synth, count(0, 200);
        /// Clips per synthetic take: 2 (clean and as another voice) or 1 (only the latter).
        synth_copies: usize = anyone_synth_copies, count(1, 2);
        /// Share of the word's weight its synthetic takes carry (0 = by count).
        synth_share: f32 = anyone_synth_share, between(0.0, 0.95);
        /// Pitch shift of the altered copy of each synthetic take, in semitones.
        synth_pitch: f32 = anyone_synth_pitch, between(0.0, 12.0);
        /// Template check slack (negative disables the check).
        slack: f32 = anyone_slack, finite;
        /// The pull of their rows of the head to the "none" row (a weight decay of their
        /// difference).
        l2: f32 = anyone_l2, weight;
        /// Phonetic neighbours (everyday words a sound away) said by the voices of `[synth]`
        /// as "none" (0 to 100).
        neighbours: usize = anyone_neighbours, count(0, 100);
        /// Takes of each neighbour, each in another voice (1 to 50).
        neighbour_voices: usize = neighbour_voices, count(1, 50);
        /// Total weight of the neighbours' "none" windows, relative to the word's 1.
        neighbour_weight: f32 = neighbour_weight, weight;
    }
}

table! {
    /// The synthetic takes of `[mine]` and `[anyone]`.
    Synth("synth"): TrainOptions {
        /// Their speech engines, taking turns (espeak, flite, festival, mbrola).
        engines: Vec<crate::audio::synth::Engine> = synth_engines, engines;
    }
}

table! {
    /// The rule of the word check (off with `--no-word-check`).
    WordCheck("word_check"): Rule {
        /// The threshold of the detector's candidates (above 0, below 1).
        candidate: f32 = candidate, inside(0.0, 1.0);
        /// How much the cosine to the word's takes counts (0 to 10).
        weight: f32 = weight, between(0.0, 10.0);
        /// The cosine that counts as nothing either way.
        centre: f32 = centre, between(-1.0, 1.0);
        /// A candidate is dropped when an `_unknown_` take is closer by more than this (0 to 2).
        margin: f32 = margin, between(0.0, 2.0);
        /// The cosine a candidate is taken to have before it is heard.
        floor: f32 = floor, between(-1.0, 1.0);
    }
}

/// The recipe: a table per subject.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recipe {
    pub fit: Fit,
    pub detector: Detector,
    pub augment: Augment,
    pub negatives: Negatives,
    pub templates: Templates,
    pub calibration: Calibration,
    pub mine: Mine,
    pub anyone: Anyone,
    pub synth: Synth,
    pub word_check: WordCheck,
}

/// What the printed recipe starts with.
const HEADER: &str = "\
# A recipe for `hark train --recipe FILE` (and `hark eval --recipe FILE`): every design knob of
# training. Any key may be left out: it keeps the value below, the default.
";

impl Recipe {
    /// The recipe of `o`'s knobs.
    pub fn of(o: &TrainOptions) -> Recipe {
        Recipe {
            fit: Fit::of(o),
            detector: Detector::of(o),
            augment: Augment::of(o),
            negatives: Negatives::of(o),
            templates: Templates::of(o),
            calibration: Calibration::of(o),
            mine: Mine::of(o),
            anyone: Anyone::of(o),
            synth: Synth::of(o),
            word_check: WordCheck::of(&o.word_check.unwrap_or_default()),
        }
    }

    /// Sets `o`'s knobs to the recipe's (the word check's rule only if `o` has a word check).
    pub fn apply(&self, o: &mut TrainOptions) {
        self.fit.apply(o);
        self.detector.apply(o);
        self.augment.apply(o);
        self.negatives.apply(o);
        self.templates.apply(o);
        self.calibration.apply(o);
        self.mine.apply(o);
        self.anyone.apply(o);
        self.synth.apply(o);
        if let Some(rule) = &mut o.word_check {
            self.word_check.apply(rule);
        }
    }

    /// The default training options with the recipe's knobs.
    pub fn options(&self) -> TrainOptions {
        let mut o = TrainOptions::default();
        self.apply(&mut o);
        o
    }

    /// Reads a recipe file.
    pub fn load(path: &Path) -> Result<Recipe> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path, "cannot read"))?;
        Recipe::parse(&text, &path.display().to_string())
    }

    /// Reads a recipe from TOML text; `origin` names it in errors, which are one line each:
    /// `origin:line: key 'table.key': what is wrong`.
    pub fn parse(text: &str, origin: &str) -> Result<Recipe> {
        let recipe: Recipe =
            toml::from_str(text).map_err(|e| Error::Data(spans::toml_error(origin, text, &e)))?;
        match recipe.fault() {
            None => Ok(recipe),
            Some((key, why)) => Err(Error::Data(format!(
                "{}: key '{key}': {why}",
                spans::place(origin, text, &key)
            ))),
        }
    }

    /// The first key whose value cannot be used (`table.key`), and why.
    fn fault(&self) -> Option<(String, String)> {
        self.fit
            .fault()
            .or_else(|| self.detector.fault())
            .or_else(|| self.augment.fault())
            .or_else(|| self.negatives.fault())
            .or_else(|| self.templates.fault())
            .or_else(|| self.calibration.fault())
            .or_else(|| self.mine.fault())
            .or_else(|| self.anyone.fault())
            .or_else(|| self.synth.fault())
            .or_else(|| self.word_check.fault())
    }

    /// The recipe as commented TOML, which [`Recipe::parse`] reads back as the same recipe.
    pub fn to_toml(&self) -> String {
        let mut out = HEADER.to_string();
        self.fit.write(&mut out);
        self.detector.write(&mut out);
        self.augment.write(&mut out);
        self.negatives.write(&mut out);
        self.templates.write(&mut out);
        self.calibration.write(&mut out);
        self.mine.write(&mut out);
        self.anyone.write(&mut out);
        self.synth.write(&mut out);
        self.word_check.write(&mut out);
        out
    }
}

#[cfg(test)]
mod tests;
