//! The training design knobs `hark train` and `hark eval` share, and the [`TrainOptions`] they
//! give.

use anyhow::{bail, Result};
use clap::builder::RangedU64ValueParser;
use hark::pipeline::word_check::check::Rule;
use hark::train::TrainOptions;

/// Training knobs (defaults are the benchmark's choice).
#[derive(clap::Args, Clone)]
#[command(next_help_heading = "Design knobs (defaults are the benchmark's choice; see README)")]
pub struct Knobs {
    /// Consecutive embeddings per feature.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=16))]
    context: Option<usize>,
    /// Hidden units (0 = linear softmax).
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(0..=1024))]
    hidden: Option<usize>,
    /// Augmented copies per take.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(0..=50))]
    augment: Option<usize>,
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100000))]
    epochs: Option<usize>,
    /// Default detection threshold written into the head.
    #[arg(long = "default-threshold", value_parser = score)]
    default_threshold: Option<f32>,
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=50))]
    smoothing: Option<usize>,
    /// "none" weights per source: take halves, altered takes, background, bank, unknown.
    #[arg(long, value_delimiter = ',', value_parser = weight)]
    source_weights: Option<Vec<f32>>,
    #[arg(long, value_parser = weight)]
    l2: Option<f32>,
    /// Template check slack (negative disables).
    #[arg(long, value_parser = finite)]
    template_slack: Option<f32>,
    /// Do not use reversed takes as negatives.
    #[arg(long)]
    no_reversed: bool,
    /// Do not use the synthetic negative bank.
    #[arg(long)]
    no_bank: bool,
    #[arg(long)]
    bank_max: Option<usize>,
    /// Quantile of held-out similarities for the template gate.
    #[arg(long, value_parser = score)]
    template_quantile: Option<f32>,
    /// Templates from clean takes only.
    #[arg(long)]
    clean_templates: bool,
    /// Speed perturbation range for augmented takes (e.g. 0.1 = +-10%).
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 0.5))]
    speed: Option<f32>,
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 40.0))]
    gain_db: Option<f32>,
    /// Lowest level of augmented copies above their noise, in dB (up to 30).
    #[arg(long, value_parser = |s: &str| between(s, -20.0, 29.0))]
    snr_min: Option<f32>,
    /// `mine` words: share of augmented copies laid over the room noise at its recorded
    /// level (+-6 dB; the others lie 5-30 dB below the word).
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 1.0))]
    room_noise: Option<f32>,
    /// Windows a passed template check holds for.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(0..=1000))]
    template_hold: Option<usize>,
    /// Hard-negative mining: keep this many hardest bank windows (and as many random).
    #[arg(long)]
    mine: Option<usize>,
    /// Spliced half-take negatives per take.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(0..=20))]
    chimeras: Option<usize>,
    /// Who may say the words (a word's `word.toml` overrides it): `mine` (the voices that
    /// recorded it) or `anyone`.
    #[arg(long)]
    voices: Option<hark::pipeline::head::Voices>,
    /// `anyone` words: vocal-tract warp range of augmented copies (e.g. 0.15).
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 0.5))]
    anyone_warp: Option<f32>,
    /// `anyone` words: colour augmented copies' log-mel bands by up to this many dB (0 = none).
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 20.0))]
    anyone_colour: Option<f32>,
    /// `anyone` words: speed perturbation range.
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 0.5))]
    anyone_speed: Option<f32>,
    /// `anyone` words: lowest level of their copies above the noise, in dB.
    #[arg(long, value_parser = |s: &str| between(s, -20.0, 29.0))]
    anyone_snr_min: Option<f32>,
    /// `anyone` words: pitch shift (tempo kept) of the takes' augmented copies, up to this
    /// many semitones either way (0 = none).
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 12.0))]
    anyone_pitch: Option<f32>,
    /// `anyone` words: the same for the altered copy of each synthetic take.
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 12.0))]
    anyone_synth_pitch: Option<f32>,
    /// `anyone` words: augmented copies per take.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(0..=100))]
    anyone_augment: Option<usize>,
    /// `anyone` words: template check slack (negative disables).
    #[arg(long, value_parser = finite)]
    anyone_slack: Option<f32>,
    /// `anyone` words: the pull of their rows of the head to the "none" row (a weight decay of
    /// their difference).
    #[arg(long, value_parser = weight)]
    anyone_l2: Option<f32>,
    /// `anyone` words: default detection threshold written into the head.
    #[arg(long, value_parser = score)]
    anyone_threshold: Option<f32>,
    /// `anyone` words: synthetic takes said by the voices of `--synth-engines`.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(0..=200))]
    anyone_synth: Option<usize>,
    /// `anyone` words: clips per synthetic take: 2 (clean and as another voice) or 1 (only the latter).
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=2))]
    anyone_synth_copies: Option<usize>,
    /// `anyone` words: share of the word's weight its synthetic takes carry (0 = by count).
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 0.95))]
    anyone_synth_share: Option<f32>,
    /// `mine` words: "none" copies per take as another voice would say it (warped vocal tract).
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(0..=20))]
    mine_foreign: Option<usize>,
    /// Average the head with the heads of its cross-validation folds (an ensemble): true or false.
    #[arg(long)]
    ensemble: Option<bool>,
    /// `mine` words: synthetic takes of the word by the voices of `--synth-engines`, as "none".
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(0..=200))]
    mine_synth: Option<usize>,
    /// Per-word calibration: the share of negative-bank windows whose score each word's
    /// calibrated score puts on its threshold (0 = off).
    #[arg(long, value_parser = score)]
    bank_rate: Option<f32>,
    /// Smallest vocal-tract warp of those copies (e.g. 0.2).
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 1.0))]
    foreign_warp: Option<f32>,
    /// `mine` words: colour augmented copies' log-mel bands by up to this many dB (0 = none).
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 20.0))]
    mine_colour: Option<f32>,
    /// `mine` words: vocal-tract warp range of augmented copies (0 = none).
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 0.5))]
    mine_warp: Option<f32>,
    /// `mine` words: pitch shift (tempo kept) of augmented copies, up to this many semitones
    /// either way (0 = none).
    #[arg(long, value_parser = |s: &str| between(s, 0.0, 12.0))]
    mine_pitch: Option<f32>,
    /// Speech engines of those synthetic takes, taking turns (espeak, flite, festival, mbrola).
    #[arg(long, value_delimiter = ',')]
    synth_engines: Option<Vec<hark::audio::synth::Engine>>,
    /// Speech engines of the synthetic negative bank, taking turns (espeak, flite, festival, mbrola).
    #[arg(long, value_delimiter = ',')]
    bank_engines: Option<Vec<hark::audio::synth::Engine>>,
    /// No word check in the head (the detector alone decides; see README, "The word check").
    #[arg(long)]
    no_word_check: bool,
    /// The word check's rule: the candidates' threshold, the cosine's weight and its centre,
    /// the margin by which an `_unknown_` take must be closer to drop a candidate, and the
    /// cosine a candidate is taken to have before it is heard, e.g. `0.2,1.75,0.255,0.15,0.1`
    /// (the default; the last two may be left out).
    #[arg(long, value_name = "CAND,WEIGHT,CENTRE[,MARGIN[,FLOOR]]", value_delimiter = ',', value_parser = finite)]
    word_check_rule: Option<Vec<f32>>,
}

impl Knobs {
    /// The default training options with every knob given in place of its default; an error
    /// naming the flag for a value that cannot be used.
    pub fn train_options(&self) -> Result<TrainOptions> {
        let mut o = TrainOptions::default();
        macro_rules! set {
            ($($f:ident => $g:ident),*) => { $(if let Some(v) = self.$f { o.$g = v; })* };
        }
        set!(context => context, hidden => hidden, augment => augment, epochs => epochs,
             default_threshold => threshold, smoothing => smoothing,
             l2 => l2, template_slack => template_slack, bank_max => bank_max, chimeras => chimeras, template_quantile => template_quantile, speed => speed, gain_db => gain_db, snr_min => snr_min, room_noise => room_noise, mine => mine, template_hold => template_hold, voices => voices,
             anyone_warp => anyone_warp, anyone_colour => anyone_colour, anyone_speed => anyone_speed, anyone_snr_min => anyone_snr_min,
             anyone_augment => anyone_augment, anyone_slack => anyone_slack,
             anyone_synth => anyone_synth, anyone_threshold => anyone_threshold, anyone_l2 => anyone_l2,
             anyone_synth_share => anyone_synth_share, anyone_synth_copies => anyone_synth_copies,
             anyone_pitch => anyone_pitch, anyone_synth_pitch => anyone_synth_pitch,
             mine_foreign => mine_foreign, foreign_warp => foreign_warp, bank_rate => bank_rate, mine_synth => mine_synth, ensemble => ensemble,
             mine_colour => mine_colour, mine_warp => mine_warp, mine_pitch => mine_pitch);
        if let Some(e) = &self.synth_engines {
            o.synth_engines.clone_from(e);
        }
        if let Some(e) = &self.bank_engines {
            o.bank_engines.clone_from(e);
        }
        if self.clean_templates {
            o.template_augmented = false;
        }
        if let Some(w) = &self.source_weights {
            if w.len() != o.source_weights.len() {
                bail!(
                    "--source-weights needs {} values (take halves, altered takes, background, bank, unknown), got {}: {}",
                    o.source_weights.len(),
                    w.len(),
                    w.iter().map(f32::to_string).collect::<Vec<_>>().join(",")
                );
            }
            o.source_weights.copy_from_slice(w);
        }
        if self.no_bank {
            o.use_bank = false;
        }
        o.word_check = match self.no_word_check {
            true => None,
            false => Some(word_check_rule(self.word_check_rule.as_deref())?),
        };
        if self.no_reversed {
            o.reversed = false;
        }
        Ok(o)
    }
}

/// `--word-check-rule CAND,WEIGHT,CENTRE[,MARGIN[,FLOOR]]`, checked.
fn word_check_rule(v: Option<&[f32]>) -> Result<Rule> {
    let d = Rule::default();
    let Some(v) = v else {
        return Ok(d);
    };
    if !(3..=5).contains(&v.len()) {
        bail!(
            "--word-check-rule wants 3 to 5 values (CAND,WEIGHT,CENTRE[,MARGIN[,FLOOR]]), got {}",
            v.len()
        );
    }
    let rule = Rule {
        candidate: v[0],
        weight: v[1],
        centre: v[2],
        margin: v.get(3).copied().unwrap_or(d.margin),
        floor: v.get(4).copied().unwrap_or(d.floor),
    };
    rule.check()
        .map_err(|e| anyhow::anyhow!("--word-check-rule: {e}"))?;
    Ok(rule)
}

/// A float flag's value, or why it cannot be one.
fn float(s: &str) -> Result<f32, String> {
    s.trim()
        .parse::<f32>()
        .map_err(|_| format!("{s:?} is not a number"))
}

/// A finite number.
pub fn finite(s: &str) -> Result<f32, String> {
    float(s).and_then(|v| {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{v} is not a finite number"))
        }
    })
}

/// A finite number from `lo` to `hi`.
fn between(s: &str, lo: f32, hi: f32) -> Result<f32, String> {
    finite(s).and_then(|v| {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is not between {lo} and {hi}"))
        }
    })
}

/// A score or share: a number from 0 to 1.
pub fn score(s: &str) -> Result<f32, String> {
    between(s, 0.0, 1.0)
}

/// A weight: a finite number, 0 or more.
fn weight(s: &str) -> Result<f32, String> {
    finite(s).and_then(|v| match v >= 0.0 {
        true => Ok(v),
        false => Err(format!("{v} is negative")),
    })
}
