//! `hark train`: fits the transfer-learned head on a few takes per word.
//!
//! Each take is augmented (speed, gain, room noise, position in the window; see `augment` and
//! `clips`) and embedded by the base model; windows that hold the whole word are that word's
//! examples (`examples`). Everything else is "none": room noise, the other words, `_unknown_`
//! speech, the first half of each take, the takes played backwards (same voice, other sounds),
//! and a bank of synthetic speech from espeak-ng (see `negatives`; its hardest windows are
//! chosen in `mining`). A small softmax network is fitted on windows of `context` consecutive
//! embeddings (`fit`); templates from the takes add a similarity check (`templates`);
//! cross-validation by take gives the report's figures (`validate`).

mod augment;
mod bank_filter;
mod calibrate;
mod clips;
pub mod dataset;
mod examples;
mod fit;
mod fold;
mod mining;
pub mod negatives;
mod neighbours;
mod pitch;
mod pool;
pub mod recipe;
pub mod recording;
mod templates;
mod validate;
mod voices;
pub mod word_check;

use crate::audio::synth::Engine;
use crate::Result;

pub use examples::{build_examples, sequence_examples, Examples};
pub use fold::{Fold, Source};

use crate::pipeline::detector::DetectorSettings;
use crate::pipeline::embedding::Embedder;
use crate::pipeline::head::{Head, Member, TrainReport, Voices};
use crate::train::dataset::Dataset;

/// Training knobs (defaults are what the benchmark chose; see docs/research/head.md). The design
/// knobs are the keys of a [`recipe`]; the others (`voices`, `use_bank`, `cross_validate`, whether
/// there is a `word_check`, `synth_cache`) are the command line's or the caller's.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Consecutive embeddings per feature.
    pub context: usize,
    /// Hidden units (0 = linear softmax).
    pub hidden: usize,
    /// Copies per take, the first clean (at least one is made).
    pub augment: usize,
    /// Passes over the examples.
    pub epochs: usize,
    /// Seed of the augmentation, the network's initialisation and the mining.
    pub seed: u64,
    /// Default detection threshold written into the head.
    pub threshold: f32,
    /// Default detector smoothing (windows averaged).
    pub smoothing: usize,
    /// Default refractory time (seconds).
    pub refractory: f32,
    /// Total weight of "none" windows per source (take halves, altered takes, background,
    /// bank, unknown), relative to each word's total of 1.
    pub source_weights: [f32; 5],
    /// Weight decay of the fit.
    pub l2: f32,
    /// Use the takes played backwards as negatives.
    pub reversed: bool,
    /// Spliced half-take negatives per take.
    pub chimeras: usize,
    /// Speed perturbation range (+-) for augmented takes.
    pub speed: f32,
    /// Gain perturbation range in dB (-gain_db .. +0.6 gain_db).
    pub gain_db: f32,
    /// Lowest level of an augmented copy's word above its noise, in dB (up to 30).
    pub snr_min: f32,
    /// `mine` words: share of augmented copies laid over the room noise at the level it was
    /// recorded at (+-6 dB) rather than at a level relative to the word (`anyone` words: none;
    /// measured worse, docs/research/head.md).
    pub room_noise: f32,
    /// Templates from augmented windows too (not only the clean takes).
    pub template_augmented: bool,
    /// Quantile of held-out clips' best similarity at which the gate sits.
    pub template_quantile: f32,
    /// Windows a passed template check holds for.
    pub template_hold: usize,
    /// Template check slack (negative disables the check).
    pub template_slack: f32,
    /// Use the synthetic negative bank when available.
    pub use_bank: bool,
    /// Hard-negative mining: bank windows kept as hardest (and as many random); 0 = use all.
    pub mine: usize,
    /// Most bank windows used.
    pub bank_max: usize,
    /// Run cross-validation for the report.
    pub cross_validate: bool,
    /// Who may say a word whose folder has no `word.toml` saying otherwise.
    pub voices: Voices,
    /// `anyone` words: vocal-tract-length warp range of augmented copies (factor 1/(1+w)..1+w).
    pub anyone_warp: f32,
    /// `anyone` words: colouring of augmented copies' log-mel bands, up to this many dB (a tilt
    /// and two bumps; 0 = none; see `clips::colouring`).
    pub anyone_colour: f32,
    /// `anyone` words: speed perturbation range (+-) instead of `speed`.
    pub anyone_speed: f32,
    /// `anyone` words: the lowest level of their copies above the noise instead of `snr_min`.
    pub anyone_snr_min: f32,
    /// `anyone` words: pitch shift of the takes' augmented copies, tempo kept, up to this many
    /// semitones either way (0 = none; see `pitch`).
    pub anyone_pitch: f32,
    /// `anyone` words: the same for the second (altered) copy of each synthetic take.
    pub anyone_synth_pitch: f32,
    /// `anyone` words: augmented copies per take instead of `augment`.
    pub anyone_augment: usize,
    /// `anyone` words: template check slack instead of `template_slack` (negative disables).
    pub anyone_slack: f32,
    /// `anyone` words: synthetic takes (voices of `synth_engines` saying the word).
    pub anyone_synth: usize,
    /// `anyone` words: the share of the word's weight its synthetic takes carry together (0 =
    /// every word window weighs the same, whoever said it). 0.7 since 2026-11-30 (0.5 before:
    /// with the word check's weight 1.75, 0.7 is better on both seed sets;
    /// docs/research/anyone-words.md).
    pub anyone_synth_share: f32,
    /// `anyone` words: clips per synthetic take: 2 (a clean copy and one as another voice) or 1
    /// (only the other voice).
    pub anyone_synth_copies: usize,
    /// `anyone` words: the pull of their rows of the head to the "none" row, a weight decay of
    /// their difference (see `fit::class_pull`). 0.3 since 2026-11-30 (none before: +0.04-0.06
    /// recall at equal false accepts from one or two enrolled speakers;
    /// docs/research/anyone-words.md, "A smoother head for `anyone` words").
    pub anyone_l2: f32,
    /// `anyone` words: default detection threshold instead of `threshold`.
    pub anyone_threshold: f32,
    /// `anyone` words: how much higher the threshold is for each of the word's sounds beyond
    /// `LENGTH_FREE` (a longer word holds more evidence), up to `anyone_threshold_most`. 0.15
    /// since 0.2.0 (wake words from five people on speech kept aside: 129 -> 11 false accepts
    /// per hour of LibriSpeech, recall 0.973 -> 0.967; docs/research/crowd.md).
    pub anyone_threshold_per_sound: f32,
    /// `anyone` words: the highest threshold the length gives.
    pub anyone_threshold_most: f32,
    /// `anyone` words: phonetic neighbours (words a sound away, see `neighbours`) said by
    /// synthetic voices as "none" (0 = none).
    pub anyone_neighbours: usize,
    /// Takes of each neighbour, each in another synthetic voice.
    pub neighbour_voices: usize,
    /// Total weight of the neighbours' "none" windows, relative to each word's 1.
    pub neighbour_weight: f32,
    /// Average the head with its cross-validation folds' heads (an ensemble).
    pub ensemble: bool,
    /// `mine` words: synthetic takes of the word (voices of `synth_engines`) as "none": the
    /// word said by someone else.
    pub mine_synth: usize,
    /// `mine` words: "none" copies per take as another voice would say it (warped vocal tract).
    pub mine_foreign: usize,
    /// Copies of each `_unknown_` take as other voices would say it (warped vocal tract,
    /// coloured bands), beside its clean and augmented copies.
    pub unknown_voices: usize,
    /// Vocal-tract warp range of those copies (factor 1/(1+w) to 1+w).
    pub unknown_warp: f32,
    /// Colouring of those copies' log-mel bands, in dB.
    pub unknown_colour: f32,
    /// Per-word calibration on the negative bank: each word's scores are raised to the power
    /// that puts the score this share of bank windows reach on its threshold (0 = off).
    pub bank_rate: f32,
    /// Smallest vocal-tract warp of those copies (factor 1+w to (1+w)^1.5, longer or shorter).
    pub foreign_warp: f32,
    /// `mine` words: colouring of augmented copies' log-mel bands, up to this many dB (0 = none;
    /// tried, see docs/research/head.md).
    pub mine_colour: f32,
    /// `mine` words: vocal-tract warp range of augmented copies (0 = none; tried, see docs/research/head.md).
    pub mine_warp: f32,
    /// `mine` words: pitch shift (tempo kept) of augmented copies, up to this many semitones
    /// either way (0 = none; tried, see docs/research/head.md).
    pub mine_pitch: f32,
    /// The speech engines of the synthetic takes (those installed take turns; espeak-ng and
    /// flite measured best, see docs/research/anyone-words.md).
    pub synth_engines: Vec<Engine>,
    /// Where the synthetic takes are kept between runs (`hark train`: `models/.cache`; None =
    /// spoken afresh each time; see `audio::synth_cache`).
    pub synth_cache: Option<std::path::PathBuf>,
    /// The speech engines of the negative bank (those installed take turns; see
    /// `negatives::ENGINES`).
    pub bank_engines: Vec<Engine>,
    /// The word check's rule, kept in the head with the takes' embeddings (`None`: no check;
    /// the caller enrols the takes, see `word_check`).
    pub word_check: Option<crate::pipeline::word_check::check::Rule>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            context: 2,
            hidden: 0,
            augment: 6,
            epochs: 40,
            seed: 1,
            threshold: 0.5,
            smoothing: 2,
            refractory: 1.0,
            source_weights: [0.5, 0.5, 0.5, 5.0, 6.0],
            l2: 1e-3,
            reversed: true,
            chimeras: 0,
            speed: 0.12,
            gain_db: 10.0,
            snr_min: 5.0,
            room_noise: 0.5,
            template_augmented: true,
            template_quantile: 0.05,
            template_slack: 0.15,
            template_hold: 0,
            bank_max: 1_000_000,
            use_bank: true,
            mine: 3000,
            cross_validate: true,
            voices: Voices::Mine,
            anyone_warp: 0.15,
            anyone_colour: 6.0,
            anyone_speed: 0.15,
            anyone_snr_min: 5.0,
            anyone_pitch: 0.0,
            anyone_synth_pitch: 0.0,
            anyone_augment: 12,
            anyone_slack: 0.3,
            anyone_synth: 60,
            anyone_synth_share: 0.7,
            anyone_threshold: 0.3,
            anyone_threshold_per_sound: 0.15,
            anyone_threshold_most: 0.7,
            anyone_neighbours: 0,
            neighbour_voices: 6,
            neighbour_weight: 2.0,
            anyone_l2: 0.3,
            anyone_synth_copies: 2,
            ensemble: true,
            mine_foreign: 2,
            unknown_voices: 0,
            unknown_warp: 0.2,
            unknown_colour: 6.0,
            mine_synth: 0,
            bank_rate: 0.0,
            foreign_warp: 0.2,
            mine_colour: 0.0,
            mine_warp: 0.0,
            mine_pitch: 0.0,
            synth_engines: vec![Engine::Espeak, Engine::Flite],
            synth_cache: None,
            bank_engines: negatives::ENGINES.to_vec(),
            word_check: Some(Default::default()),
        }
    }
}

/// Builds the head from the examples at `rows`: the network, the templates and their gates,
/// and the detector settings from `opts`.
fn head_from(
    ex: &Examples,
    rows: &[usize],
    (labels, voices): (&[String], &[Voices]),
    base_sha: &str,
    opts: &TrainOptions,
) -> Head {
    let fitted = fit::fit(ex, rows, &fit::class_pull(voices, opts), opts);
    let templates = templates::collect(ex, rows, &fitted, labels.len(), opts);
    let template_min = templates
        .iter()
        .zip(voices)
        .map(|(ts, v)| match v {
            Voices::Mine => templates::gate(ts, opts.template_slack, opts),
            Voices::Anyone => templates::gate(ts, opts.anyone_slack, opts),
        })
        .collect();
    Head {
        format: crate::pipeline::head::FORMAT.into(),
        labels: labels.to_vec(),
        base_model_sha256: base_sha.into(),
        frontend: crate::pipeline::frontend::parameters(),
        context: opts.context,
        mean: fitted.mean,
        inv_std: fitted.inv_std,
        layers: fitted.layers,
        templates: templates
            .into_iter()
            .map(|ts| ts.into_iter().map(|t| t.unit).collect())
            .collect(),
        template_min,
        detector: DetectorSettings {
            thresholds: voices
                .iter()
                .map(|v| match v {
                    Voices::Mine => opts.threshold,
                    Voices::Anyone => opts.anyone_threshold,
                })
                .collect(),
            smoothing: opts.smoothing,
            refractory: opts.refractory,
        },
        template_hold: opts.template_hold,
        report: TrainReport::default(),
        voices: voices.to_vec(),
        score_power: vec![],
        members: vec![],
        word_check: None,
    }
}

/// Trains a head: builds examples, mines the bank's hardest windows, fits on everything and,
/// with `opts.cross_validate`, adds cross-validated figures to the report.
pub fn train(
    emb: &mut Embedder,
    ds: &Dataset,
    bank: Option<&[f32]>,
    opts: &TrainOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<Head> {
    let labels = ds.labels();
    let voices = ds.voices(opts.voices);
    let words = (&labels[..], &voices[..]);
    let ex = {
        // Every window, until mining has chosen the bank's; then only those (and the rest)
        // are kept, packed together for the fits: the first set is dropped here.
        let all = build_examples(emb, ds, bank, opts, progress)?;
        let rows = mining::mine_bank(&all, words, &emb.model_sha256, opts);
        all.into_packed(&rows)
    };
    let cv_wanted = opts.cross_validate || opts.ensemble;
    let folds = validate::fold_count(ds);
    let (mut head, cv, fold_heads) = validate::head_and_folds(
        &ex,
        words,
        &emb.model_sha256,
        opts,
        if cv_wanted { folds } else { 0 },
    );
    head.report.takes = ds.words.iter().map(|(_, t)| t.len()).collect();
    head.report
        .figures
        .push(("training windows".into(), ex.len() as f32));
    // Without espeak-ng (which also speaks the synthetic takes) the length is not known: every
    // `anyone` word keeps `anyone_threshold`.
    let anyone = voices.contains(&Voices::Anyone);
    if opts.anyone_threshold_per_sound > 0.0 && anyone && crate::audio::synth::espeak_available() {
        thresholds_by_length(&mut head, &voices, opts)?;
    }
    if let Some(bank) = bank.filter(|_| opts.bank_rate > 0.0) {
        calibrate_on_bank(&mut head, bank, opts.bank_rate);
    }
    if cv_wanted {
        add_folds(&mut head, cv, fold_heads, folds, opts);
    }
    Ok(head)
}

/// The folds' heads as the ensemble's members (with `opts.ensemble`), and the cross-validated
/// figures in the report (with `opts.cross_validate`).
fn add_folds(
    head: &mut Head,
    cv: validate::CrossValidation,
    fold_heads: Vec<Head>,
    folds: usize,
    opts: &TrainOptions,
) {
    if opts.ensemble && folds > 1 {
        head.members = fold_heads
            .into_iter()
            .map(|h| Member {
                mean: h.mean,
                inv_std: h.inv_std,
                layers: h.layers,
            })
            .collect();
    }
    if opts.cross_validate {
        let figures = &mut head.report.figures;
        figures.push((
            format!("{folds}-fold cross-validated recall of held-out takes"),
            cv.recall(),
        ));
        figures.push((
            format!(
                "false-fire rate of held-out negative windows ({})",
                cv.negatives
            ),
            cv.false_fire_rate(),
        ));
    }
}

/// Bank windows scored for the calibration, at most (every so many of the bank's).
const CALIBRATION_WINDOWS: usize = 60_000;

/// Sets each word's score power from its bank score at `rate` (see `calibrate`), and adds the
/// bank scores to the report.
fn calibrate_on_bank(head: &mut Head, bank: &[f32], rate: f32) {
    let step = (bank.len() / crate::pipeline::embedding::DIM).div_ceil(CALIBRATION_WINDOWS);
    let q = calibrate::bank_quantiles(head, bank, rate, step);
    head.score_power = q
        .iter()
        .zip(&head.detector.thresholds)
        .map(|(q, t)| calibrate::power_for(*q, *t))
        .collect();
    for (label, (q, p)) in head.labels.iter().zip(q.iter().zip(&head.score_power)) {
        head.report.figures.push((
            format!("{label}: bank score at rate {rate} (score power {p:.2})"),
            *q,
        ));
    }
}

/// For each word `labels` name that has everyday words a sound away, a note naming them
/// (espeak-ng's phonemes; see `neighbours::sound_alikes`).
pub fn sound_alike_notes(labels: &[&str]) -> Result<Vec<String>> {
    let phrases: Vec<String> = labels.iter().map(|l| voices::phrase(l)).collect();
    let words: Vec<&str> = phrases.iter().map(String::as_str).collect();
    neighbours::sound_alike_notes(&words)
}

/// Sets the thresholds of `head`'s `anyone` words by their length in espeak-ng's phonemes.
fn thresholds_by_length(
    head: &mut crate::pipeline::head::Head,
    voices: &[crate::pipeline::head::Voices],
    opts: &TrainOptions,
) -> Result<()> {
    let phrases: Vec<String> = head.labels.iter().map(|l| voices::phrase(l)).collect();
    let texts: Vec<&str> = phrases.iter().map(String::as_str).collect();
    let sounds = neighbours::phonemes(&texts)?;
    for (w, v) in voices.iter().enumerate() {
        if *v == crate::pipeline::head::Voices::Anyone {
            head.detector.thresholds[w] = neighbours::threshold_for(
                sounds[w].len(),
                opts.anyone_threshold,
                opts.anyone_threshold_per_sound,
                opts.anyone_threshold_most,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::embedding::DIM;

    #[test]
    fn a_head_from_separable_examples_tells_them_apart() {
        let rows: Vec<(usize, Source)> = (0..60).map(|i| (i % 3, Source::Take)).collect();
        // Class c lights feature c.
        let features = |i: usize, k: usize| if k == i % 3 { 3.0 } else { 0.0 };
        let ex = fit::tests::examples(&rows, features);
        let all: Vec<usize> = (0..60).collect();
        let labels = ["one".to_string(), "two".to_string()];
        for hidden in [0, 8] {
            let opts = TrainOptions {
                context: 1,
                hidden,
                epochs: 300,
                ..TrainOptions::default()
            };
            let head = head_from(&ex, &all, (&labels, &[Voices::Mine; 2]), "sha", &opts);
            assert_eq!(head.layers.len(), if hidden > 0 { 2 } else { 1 });
            assert_eq!((head.layers[0].inputs, head.feature_dim()), (DIM, DIM));
            assert_eq!(head.layers.last().unwrap().outputs, 3);
            assert_eq!(
                head.templates.iter().map(Vec::len).collect::<Vec<_>>(),
                [20, 20]
            );
            // All windows share one take: no other take to set the gate by.
            assert_eq!(head.template_min, [-1.0, -1.0]);
            assert_eq!(head.detector.thresholds, [opts.threshold; 2]);
            for r in 0..60 {
                let p = head.probabilities(ex.features(r));
                let best = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
                assert_eq!(best, r % 3, "row {r}: {p:?}");
            }
        }
    }

    #[test]
    fn calibration_lowers_a_word_the_bank_says_often_and_raises_one_it_never_says() {
        let rows: Vec<(usize, Source)> = (0..60).map(|i| (i % 3, Source::Take)).collect();
        let ex = fit::tests::examples(&rows, |i, k| if k == i % 3 { 3.0 } else { 0.0 });
        let all: Vec<usize> = (0..60).collect();
        let labels = ["one".to_string(), "two".to_string()];
        let opts = TrainOptions {
            context: 1,
            epochs: 300,
            ensemble: false,
            ..TrainOptions::default()
        };
        let mut head = head_from(&ex, &all, (&labels, &[Voices::Mine; 2]), "sha", &opts);
        // A bank of 100 windows: 20 in a row sound like "one", the rest like nothing.
        let bank: Vec<f32> = (0..100)
            .flat_map(|b| {
                let mut e = [0.0; DIM];
                e[if (40..60).contains(&b) { 1 } else { 0 }] = 3.0;
                e
            })
            .collect();
        let q = calibrate::bank_quantiles(&head, &bank, 0.1, 1);
        assert!(q[0] > 0.9 && q[1] < 0.1, "{q:?}");
        calibrate_on_bank(&mut head, &bank, 0.1);
        let [one, two] = head.score_power[..] else {
            panic!("{:?}", head.score_power)
        };
        assert!(one > 1.0 && two < 1.0, "{one} {two}");
        head.validate().unwrap();
        assert_eq!(head.report.figures.len(), 2);
    }
}
