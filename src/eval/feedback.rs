//! The feedback loop, measured (`hark eval --feedback`): a head trained on one speaker's takes
//! listens to a stream and fires wrongly; every false trigger's clip (the audio
//! `hark listen --keep-audio` keeps, [`crate::audio::clip`]) is rejected into `_unknown_`, the
//! head is trained again, and the same stream is heard again. How many of those false triggers
//! are gone, and what it costs in recall.
//!
//! The case is the benchmark's same-speaker case ([`Case::draw`]): a speaker, 3 digits, `takes`
//! takes each and room noise enrolled; a stream of that speaker's other takes of the digits and
//! of other digits by all four speakers over the noise bed. `tests/it/feedback.rs` runs the same
//! loop through the real commands (`listen --keep-audio`, `reject`, `train`).

use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::score::{match_detections, score, Score, Truth};
use super::streams::{self, fsdd, load_take, Stream, StreamEmbedder, Timeline};
use super::word_check::Heard;
use super::{decide, EvalOptions, DIGITS, SPEAKERS};
use crate::pipeline::detector::Detection;
use crate::pipeline::embedding::Embedder;
use crate::pipeline::head::Head;
use crate::pipeline::word_check::SharedWordModel;
use crate::train::dataset::{Dataset, Take};
use crate::train::negatives::Bank;
use crate::Result;

/// A false trigger counts as gone when the retrained head fires wrongly nowhere within this many
/// seconds of it.
pub const GONE_WITHIN: f64 = 1.0;

/// One feedback case: what is enrolled, and the stream with its truth.
pub struct Case {
    pub speaker: &'static str,
    /// `takes` takes of each of 3 digits (trimmed, 16 kHz) and 10 clips of room noise.
    pub enrol: Dataset,
    /// The stream, 16 kHz.
    pub samples: Vec<f32>,
    pub truth: Vec<Truth>,
}

impl Case {
    /// Draws seed `seed`'s case from the data set in `data`: `targets_per_word` of the speaker's
    /// other takes of each digit and `nontargets` takes of the 7 other digits in the stream.
    pub fn draw(
        data: &Path,
        seed: u64,
        takes: usize,
        targets_per_word: usize,
        nontargets: usize,
    ) -> Result<Case> {
        streams::check_data(data)?;
        let mut rng = SmallRng::seed_from_u64(seed ^ 0xfeed);
        let speaker = *SPEAKERS.choose(&mut rng).unwrap_or(&SPEAKERS[0]);
        let mut digits: Vec<usize> = (0..10).collect();
        digits.shuffle(&mut rng);
        let mut enrol = Dataset::default();
        let mut items = Vec::new();
        for &d in &digits[..3] {
            let mut idx: Vec<usize> = (0..streams::TAKES_PER_SPEAKER).collect();
            idx.shuffle(&mut rng);
            let enrolled = idx[..takes]
                .iter()
                .map(|&i| load_take(data, (d, speaker, i)))
                .collect::<Result<Vec<_>>>()?;
            enrol.words.push((DIGITS[d].to_string(), enrolled));
            for &i in idx[takes..].iter().take(targets_per_word) {
                items.push((fsdd(data, (d, speaker, i)), Some(DIGITS[d].to_string())));
            }
        }
        enrol.words.sort_by(|a, b| a.0.cmp(&b.0));
        enrol.background = streams::background(data, &mut rng)?;
        let (Stream { samples, truth }, _) =
            Stream::with_nontargets(data, items, &digits[3..], nontargets, &mut rng)?;
        Ok(Case {
            speaker,
            enrol,
            samples,
            truth,
        })
    }
}

/// The detections of a run that are false accepts (by the truth).
pub fn false_triggers(dets: &[Detection], truth: &[Truth]) -> Vec<Detection> {
    dets.iter()
        .zip(match_detections(dets, truth))
        .filter(|(_, m)| m.is_none())
        .map(|(d, _)| d.clone())
        .collect()
}

/// How many of the false triggers at `before` (times, seconds) have no false trigger at
/// `after` within [`GONE_WITHIN`] seconds.
pub fn gone(before: &[f64], after: &[f64]) -> usize {
    before
        .iter()
        .filter(|&&t| !after.iter().any(|&u| (u - t).abs() <= GONE_WITHIN))
        .count()
}

/// One seed's loop: the run before and after rejecting its false triggers.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub before: Score,
    pub after: Score,
    /// False triggers before that are gone after.
    pub gone: usize,
    /// Rejected clips that hold some of a target word (it is in their 1.5 s before the event).
    pub with_target: usize,
    /// The control: retrained on the first data alone with another training seed, what moves
    /// by chance; and how many of the false triggers that makes go away.
    pub control: Score,
    pub control_gone: usize,
    /// With `--speech`: false accepts in that continuous speech of other voices, which the
    /// rejected clips did not come from, before and after retraining.
    pub unseen: Option<(usize, usize)>,
    /// With `--corpus`: the same heads on a stream of other people than the corrected
    /// stream's, which no rejected clip came from ([`crate::eval::people::feedback`]).
    pub others: Option<Box<Outcome>>,
}

impl Outcome {
    /// Adds another seed's outcome to this sum.
    pub fn add(&mut self, o: &Outcome) {
        self.before.add(&o.before);
        self.after.add(&o.after);
        self.gone += o.gone;
        self.with_target += o.with_target;
        self.control.add(&o.control);
        self.control_gone += o.control_gone;
        if let Some((b, a)) = o.unseen {
            let (sb, sa) = self.unseen.unwrap_or_default();
            self.unseen = Some((sb + b, sa + a));
        }
        if let Some(other) = &o.others {
            self.others.get_or_insert_with(Default::default).add(other);
        }
    }

    /// The outcome of one stream heard by the first head, the corrected one and the control.
    pub(crate) fn of(
        (first, corrected, control): (&[Detection], &[Detection], &[Detection]),
        truth: &[Truth],
        seconds: f64,
    ) -> Outcome {
        let wrong = false_triggers(first, truth);
        let times = |v: &[Detection]| v.iter().map(|d| d.time).collect::<Vec<_>>();
        let gone_from = |d: &[Detection]| gone(&times(&wrong), &times(&false_triggers(d, truth)));
        Outcome {
            before: score(first, truth, seconds),
            after: score(corrected, truth, seconds),
            gone: gone_from(corrected),
            with_target: with_target(&wrong, truth),
            control: score(control, truth, seconds),
            control_gone: gone_from(control),
            ..Outcome::default()
        }
    }
}

/// Runs the loop for every seed of `opts` (its `takes`, `targets_per_word`, `nontargets`,
/// `train` and `gate`); logs a line per seed and returns each seed's outcome.
pub fn run(
    assets: &crate::assets::Assets,
    opts: &EvalOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<(u64, Outcome)>> {
    streams::check_data(&opts.data)?;
    let mut emb = Embedder::load(assets)?;
    let bank = super::negative_bank(assets, &mut emb, opts, log)?;
    let mut model = StreamEmbedder::new(emb)?;
    let word_model = super::word_model(assets, opts)?;
    let speech = super::speech::load(opts, &mut model, log)?;
    let mut out = Vec::new();
    for &seed in &opts.seeds {
        let case = Case::draw(
            &opts.data,
            seed,
            opts.takes,
            opts.targets_per_word,
            opts.nontargets,
        )?;
        let embs = model.embed(&case.samples, opts.gate, None)?;
        let models = (&mut model, word_model.as_ref());
        let mut o = one_seed(models, bank.as_ref(), opts, seed, &case, &embs)?;
        if let (Some(sp), Some(heads)) = (&speech, o.heads.take()) {
            let count = |h: &Arc<Head>| sp.score(h, word_model.as_ref(), &[]).0.false_accepts;
            o.outcome.unseen = Some((count(&heads.0), count(&heads.1)));
        }
        let o = o.outcome;
        log(&seed_line(seed, case.speaker, &o));
        if let Some((b, a)) = o.unseen {
            log(&format!(
                "seed {seed:>3} {:<8} continuous speech of other voices: {b} -> {a} false accepts",
                case.speaker
            ));
        }
        out.push((seed, o));
    }
    Ok(out)
}

/// One seed's line: its false triggers before and after, and its recall.
pub(super) fn seed_line(seed: u64, who: &str, o: &Outcome) -> String {
    format!(
        "seed {seed:>3} {who:<8} false triggers {:>2} -> {:>2} ({} of them gone, {} new; {} clip(s) with a target word)  recall {:.3} -> {:.3}",
        o.before.false_accepts,
        o.after.false_accepts,
        o.gone,
        (o.after.false_accepts + o.gone).saturating_sub(o.before.false_accepts),
        o.with_target,
        o.before.recall(),
        o.after.recall()
    )
}

/// One seed's outcome, and the heads before and after the rejections (taken to hear more).
struct Seed {
    outcome: Outcome,
    heads: Option<(Arc<Head>, Arc<Head>)>,
}

/// Trains, listens, rejects every false trigger into `_unknown_`, trains again, listens again;
/// and, as a control, trains on the first data with another training seed.
fn one_seed(
    (model, word_model): (&mut StreamEmbedder, Option<&SharedWordModel>),
    bank: Option<&Bank>,
    opts: &EvalOptions,
    seed: u64,
    case: &Case,
    embs: &Timeline,
) -> Result<Seed> {
    let mut train = |seed: u64, enrol: &Dataset| {
        let mut head = train(model.embedder(), bank, opts, seed, enrol)?;
        super::word_check::enrol(word_model, &mut head, enrol, &opts.train)?;
        Ok::<_, crate::Error>(Arc::new(head))
    };
    let decide = |head| decide(head, embs, &mut Heard::new(word_model, &case.samples));
    let first = train(seed, &case.enrol)?;
    let dets = decide(first.clone());
    let seconds = case.samples.len() as f64 / 16_000.0;
    let wrong = false_triggers(&dets, &case.truth);
    let mut enrol = case.enrol.clone();
    enrol.unknown.extend(rejected(&wrong, &case.samples));
    let corrected = train(seed, &enrol)?;
    let after = decide(corrected.clone());
    let head = train(seed ^ 0x5eed, &case.enrol)?;
    let control = decide(head);
    let outcome = Outcome::of((&dets, &after, &control), &case.truth, seconds);
    Ok(Seed {
        outcome,
        heads: Some((first, corrected)),
    })
}

/// The clips of the false triggers `wrong`, cut from the stream as `--keep-audio` cuts them and
/// loaded as `_unknown_` takes are (trimmed).
pub(super) fn rejected(wrong: &[Detection], samples: &[f32]) -> Vec<Take> {
    wrong
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let samples = crate::train::dataset::trim(crate::audio::clip::cut(samples, d.time))?;
            Some(Take {
                path: PathBuf::from(format!("rejected-{i}.wav")),
                samples,
            })
        })
        .collect()
}

/// How many of the clips of `wrong` hold some of a target word.
pub(super) fn with_target(wrong: &[Detection], truth: &[Truth]) -> usize {
    wrong
        .iter()
        .filter(|d| {
            let (a, b) = crate::audio::clip::range(d.time);
            let (a, b) = (a as f64 / 16_000.0, b as f64 / 16_000.0);
            truth
                .iter()
                .any(|t| t.word.is_some() && t.end > a && t.start < b)
        })
        .count()
}

/// A head trained on `enrol` as `hark train --no-cv` would.
fn train(
    emb: &mut Embedder,
    bank: Option<&Bank>,
    opts: &EvalOptions,
    seed: u64,
    enrol: &Dataset,
) -> Result<Head> {
    let bank = bank.map(|b| b.without(&enrol.labels()));
    let mut topts = opts.train.clone();
    topts.seed = seed;
    topts.cross_validate = false;
    crate::train::train(emb, enrol, bank.as_deref(), &topts, &|_, _| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_false_trigger_is_gone_when_nothing_false_fires_near_it() {
        assert_eq!(gone(&[10.0, 20.0, 30.0], &[10.5, 45.0]), 2);
        assert_eq!(gone(&[10.0], &[]), 1);
        assert_eq!(gone(&[], &[3.0]), 0);
    }
}
