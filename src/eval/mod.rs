//! `hark eval`: the project's accuracy benchmark on real recorded speech (`../shared/data`).
//!
//! Same-speaker few-shot: pick a speaker and 3 digits, enrol `takes` takes of each plus 10
//! two-second room-noise clips (white, pink, running tap) as `_background_`; then stream up to 20
//! of that speaker's other takes of each target digit and 120 takes of other digits by all four
//! speakers, in random order, 0.6-1.6 s apart, over a bed of dishes, bike and cat-imitation noise
//! at 5% of full-scale peak. A hit is the right word firing between a take's start and 0.8 s
//! after its end; a second detection of the same take, and every other detection, is a false
//! accept. Run with and without 30 `_unknown_` takes (other digits by the same speaker).
//! Cross-speaker: enrol one digit from two speakers, detect it spoken by the other two.
//!
//! This file draws the cases and runs them; `streams` has the data, the streams and their
//! embeddings; `score` the hit test and the counts; `crowd` the crowd rows (every speaker's
//! non-target words); `curve` the scores over thresholds; `plot` the picture of them.

mod candidates;
mod crowd;
mod curve;
pub mod feedback;
pub mod people;
pub mod plot;
mod score;
mod speech;
mod streams;
pub mod word_check;

pub use curve::{curve_label, curve_thresholds, is_curve_label};
pub use score::{hits, score, Score, Truth, HIT_WINDOW};
pub use streams::{check_data, speech_stream, Timeline, DIGITS, SPEAKERS};

use crate::Result;
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use std::path::PathBuf;
use std::sync::Arc;

use crate::pipeline::decision::Decision;
use crate::pipeline::detector::Detection;
use crate::pipeline::embedding::Embedder;
use crate::pipeline::head::{Head, Voices};
use crate::pipeline::word_check::check::Hear;
use crate::pipeline::word_check::{SharedWordModel, WordModel};
use crate::train::dataset::{Dataset, Take};
use crate::train::negatives::Bank;
use crate::train::TrainOptions;
use streams::{fsdd, load_take, Stream, StreamEmbedder, StreamItem, TAKES_PER_SPEAKER};
use word_check::Heard;

#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub data: PathBuf,
    pub seeds: Vec<u64>,
    pub takes: usize,
    pub train: TrainOptions,
    /// Also run the cross-speaker cases.
    pub cross_speaker: bool,
    /// Run the same-speaker cases.
    pub same_speaker: bool,
    /// Extra thresholds to report (the head's default is always reported).
    pub sweep: Vec<f32>,
    /// Write each seed's stream and its truth here, for replay with `hark detect`.
    pub write_streams: Option<PathBuf>,
    /// Write each scenario's stream, enrolled takes and candidate detections here, for the
    /// study of a second stage (see `candidates`).
    pub dump_candidates: Option<PathBuf>,
    /// Number of stream takes per target digit and of non-target takes (smaller for quick runs).
    pub targets_per_word: usize,
    pub nontargets: usize,
    /// Print every hit, false accept and miss, and each miss's best score.
    pub explain: bool,
    /// Run the quiet-room gate, as `listen` does.
    pub gate: bool,
    /// Who may say the word in the cross-speaker cases (as `hark train --voices`).
    pub cross_voices: Voices,
    /// Thresholds scored for the DET curve (`--plot`); these rows are not in the table.
    pub curve: Vec<f32>,
    /// Takes in the crowd stream of every speaker's non-target words (0: no crowd rows; the
    /// data set has 2000).
    pub crowd: usize,
    /// A folder of WAV files of continuous speech: every head's false accepts in it, per hour
    /// (none: no such rows).
    pub speech: Option<PathBuf>,
}

/// One scenario's results: per threshold label -> summed score.
pub type Results = Vec<(String, Score)>;

/// Runs the benchmark; prints a line per seed and returns summed results per scenario.
pub fn run(
    assets: &crate::assets::Assets,
    opts: &EvalOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<(String, Results)>> {
    check_data(&opts.data)?;
    let opts = &cached(assets, opts);
    let mut eval = Evaluation::new(assets, opts, log)?;
    for &seed in &opts.seeds {
        eval.run_seed(seed)?;
    }
    Ok(eval.results)
}

/// The options with the synthetic takes' cache, as `hark train` runs: an `anyone` head's
/// synthetic takes are spoken once, for its fit and its word check alike, and read back in
/// later runs.
pub(super) fn cached(assets: &crate::assets::Assets, opts: &EvalOptions) -> EvalOptions {
    let mut opts = opts.clone();
    opts.train
        .synth_cache
        .get_or_insert_with(|| assets.cache_dir().join(".cache"));
    opts
}

/// The word model, when the heads are to have a word check.
pub(super) fn word_model(
    assets: &crate::assets::Assets,
    opts: &EvalOptions,
) -> Result<Option<SharedWordModel>> {
    Ok(match opts.train.word_check {
        Some(_) => Some(Arc::new(std::sync::Mutex::new(WordModel::load(assets)?))),
        None => None,
    })
}

/// The synthetic negative bank, when the options ask for it and espeak-ng is there to make it.
pub(super) fn negative_bank(
    assets: &crate::assets::Assets,
    emb: &mut Embedder,
    opts: &EvalOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Option<Bank>> {
    if !opts.train.use_bank {
        Ok(None)
    } else if crate::audio::synth::espeak_available() {
        Ok(Some(crate::train::negatives::load_or_build(
            &assets.cache_dir(),
            emb,
            &opts.train.bank_engines,
            &|_, _| {},
        )?))
    } else {
        log("note: espeak-ng not found; training without the synthetic negative bank");
        Ok(None)
    }
}

/// A benchmark run in progress: what every seed shares, and the results so far.
struct Evaluation<'a> {
    opts: &'a EvalOptions,
    model: StreamEmbedder,
    bank: Option<Bank>,
    results: Vec<(String, Results)>,
    log: &'a mut dyn FnMut(&str),
    /// The crowd stream's embeddings, made on first use.
    crowd: Option<crowd::Crowd>,
    /// The word check's model (none with `--no-word-check`).
    word_model: Option<SharedWordModel>,
    /// The continuous speech every head also hears (`--speech`).
    speech: Option<speech::Speech>,
}

impl<'a> Evaluation<'a> {
    /// Loads the base model, the negative bank, the continuous speech and the word model.
    fn new(
        assets: &crate::assets::Assets,
        opts: &'a EvalOptions,
        log: &'a mut dyn FnMut(&str),
    ) -> Result<Evaluation<'a>> {
        let mut emb = Embedder::load(assets)?;
        let bank = negative_bank(assets, &mut emb, opts, log)?;
        let mut model = StreamEmbedder::new(emb)?;
        let speech = speech::load(opts, &mut model, log)?;
        Ok(Evaluation {
            opts,
            model,
            bank,
            results: Vec::new(),
            log,
            crowd: None,
            word_model: word_model(assets, opts)?,
            speech,
        })
    }
}

impl Evaluation<'_> {
    /// One seed: the same-speaker case without and with `_unknown_`, then the cross-speaker
    /// case, all drawn from one random sequence.
    fn run_seed(&mut self, seed: u64) -> Result<()> {
        let opts = self.opts;
        let mut rng = SmallRng::seed_from_u64(seed);
        let case = SameSpeaker::draw(opts, &mut rng)?;
        if let Some(dir) = &opts.write_streams {
            case.stream.write(dir, seed)?;
        }
        let key = format!(
            "s{seed}-{}-{}-{}",
            opts.takes, opts.targets_per_word, opts.nontargets
        );
        if opts.same_speaker {
            let embs = self
                .model
                .embed(&case.stream.samples, opts.gate, Some(&key))?;
            // Both heads hear the same stream: what the first heard, the second need not.
            let mut memo = word_check::Memo::new();
            for with_unknown in [false, true] {
                memo = self.same_speaker(seed, &case, (&embs, memo), with_unknown)?;
            }
        }
        if opts.cross_speaker {
            let mut speakers = SPEAKERS.to_vec();
            speakers.shuffle(&mut rng);
            for enrolled in [1, 2] {
                let case = CrossSpeaker::draw(
                    opts,
                    (case.targets[0], &speakers, enrolled),
                    &case.enrol.background,
                    &mut rng,
                )?;
                self.cross_speaker(seed, &case)?;
            }
        }
        Ok(())
    }

    /// Trains on the same-speaker enrolment (with `_unknown_` takes or without), scores the
    /// stream at the head's thresholds and at each swept one, and logs the seed's line.
    fn same_speaker(
        &mut self,
        seed: u64,
        case: &SameSpeaker,
        (embs, memo): (&Timeline, word_check::Memo),
        with_unknown: bool,
    ) -> Result<word_check::Memo> {
        let mut enrol = case.enrol.clone();
        let mut scenario = format!("same speaker, {} takes", self.opts.takes);
        if with_unknown {
            enrol.unknown = case.unknown.clone();
            scenario += " + 30 _unknown_";
        }
        let t0 = std::time::Instant::now();
        let head = self.train_head(&enrol, seed)?;
        let train_s = t0.elapsed().as_secs_f64();
        let word_model = self.word_model.clone();
        let mut ear = Heard::with_memo(word_model.as_ref(), &case.stream.samples, memo);
        let dets = decide(head.clone(), embs, &mut ear);
        let (truth, seconds) = (&case.stream.truth, case.stream.seconds());
        let s = score(&dets, truth, seconds);
        (self.log)(&format!(
            "seed {seed:>3} {:<8} {:<22} {scenario:<38} recall {:.3}  FA/non-target {:.3}  FA/h speech {:>6.1}  (train {train_s:.1} s)",
            case.speaker,
            case.targets.iter().map(|&d| DIGITS[d]).collect::<Vec<_>>().join(","),
            s.recall(), s.fa_per_word(), s.fa_per_speech_hour()
        ));
        self.record(&scenario, "default", &s);
        if self.opts.explain {
            score::explain(&dets, truth, self.log);
            score::trace_misses(&head, &dets, truth, embs, self.log);
        }
        self.sweep(&scenario, &head, (embs, &mut ear), truth, seconds);
        let name = format!("s{seed}-{}", if with_unknown { "unknown" } else { "takes" });
        self.dump_candidates(&name, &head, (embs, &mut ear), &case.stream, &enrol)?;
        self.crowd(seed, &scenario, &head, &enrol)?;
        self.speech_row(seed, &scenario, &head);
        Ok(ear.into_memo())
    }

    /// Embeds the cross-speaker stream, trains on the enrolled speakers and scores.
    fn cross_speaker(&mut self, seed: u64, case: &CrossSpeaker) -> Result<()> {
        let key = format!(
            "x{seed}-{}-{}-{}-{}",
            case.enrolled, self.opts.takes, self.opts.targets_per_word, self.opts.nontargets
        );
        let embs = self
            .model
            .embed(&case.stream.samples, self.opts.gate, Some(&key))?;
        let voices = self.opts.cross_voices;
        let head = self.train_head_as(&case.enrol, seed, voices)?;
        let word_model = self.word_model.clone();
        let mut ear = Heard::new(word_model.as_ref(), &case.stream.samples);
        let s = score(
            &decide(head.clone(), &embs, &mut ear),
            &case.stream.truth,
            case.stream.seconds(),
        );
        let (enrolled, heard) = case.speakers.split_at(case.enrolled);
        (self.log)(&format!(
            "seed {seed:>3} {:<31} cross-speaker ({} from {} -> {}, {voices})  recall {:.3}  FA/non-target {:.3}  FA/h speech {:>6.1}",
            "", DIGITS[case.digit], enrolled.join("+"), heard.join("+"), s.recall(), s.fa_per_word(), s.fa_per_speech_hour()
        ));
        let scenario = format!(
            "cross-speaker, {} enrolled -> {} others, voices {voices}",
            case.enrolled,
            heard.len()
        );
        self.record(&scenario, "default", &s);
        let (truth, seconds) = (&case.stream.truth, case.stream.seconds());
        self.sweep(&scenario, &head, (&embs, &mut ear), truth, seconds);
        self.speech_row(seed, &scenario, &head);
        let name = format!("x{seed}-{}", case.enrolled);
        self.dump_candidates(&name, &head, (&embs, &mut ear), &case.stream, &case.enrol)?;
        Ok(())
    }

    /// With `--dump-candidates`, writes scenario `name`'s folder there (see `candidates`).
    fn dump_candidates(
        &self,
        name: &str,
        head: &Head,
        (embs, ear): (&Timeline, &mut dyn Hear),
        stream: &Stream,
        enrol: &Dataset,
    ) -> Result<()> {
        match &self.opts.dump_candidates {
            Some(dir) => candidates::dump(&dir.join(name), head, embs, stream, enrol, ear),
            None => Ok(()),
        }
    }

    /// Trains a head on `enrol` as `hark train --no-cv` would, with the seed and the negative
    /// bank without the enrolled words.
    fn train_head(&mut self, enrol: &Dataset, seed: u64) -> Result<Arc<Head>> {
        self.train_head_as(enrol, seed, self.opts.train.voices)
    }

    /// [`Self::train_head`] with `voices` for every word.
    fn train_head_as(&mut self, enrol: &Dataset, seed: u64, voices: Voices) -> Result<Arc<Head>> {
        let bank = self.bank.as_ref().map(|b| b.without(&enrol.labels()));
        let mut topts = self.opts.train.clone();
        topts.seed = seed;
        topts.cross_validate = false;
        topts.voices = voices;
        let mut head = crate::train::train(
            self.model.embedder(),
            enrol,
            bank.as_deref(),
            &topts,
            &|_, _| {},
        )?;
        let model = self.word_model.as_ref();
        word_check::enrol(model, &mut head, enrol, &topts)?;
        Ok(Arc::new(head))
    }

    /// Adds a score to the scenario's sum under `label` (scenarios and labels in first-seen
    /// order).
    fn record(&mut self, scenario: &str, label: &str, s: &Score) {
        if !self.results.iter().any(|(n, _)| n == scenario) {
            self.results.push((scenario.to_string(), Vec::new()));
        }
        let r = &mut self
            .results
            .iter_mut()
            .find(|(n, _)| n == scenario)
            .unwrap()
            .1;
        match r.iter_mut().find(|(l, _)| l == label) {
            Some((_, acc)) => acc.add(s),
            None => r.push((label.to_string(), s.clone())),
        }
    }
}

/// The decisions over a stream's embeddings at the head's own settings, with the word check
/// (when the head has one) hearing the stream through `heard`.
fn decide(head: Arc<Head>, embs: &Timeline, heard: &mut dyn Hear) -> Vec<Detection> {
    let mut d = Decision::new(head, None, true);
    embs.iter()
        .filter_map(|(t, e)| d.push(*t, e.as_deref(), heard))
        .collect()
}

/// The take numbers of one digit and speaker in random order, split into the `takes` to enrol
/// and up to `targets_per_word` others to stream.
fn split_takes(opts: &EvalOptions, rng: &mut SmallRng) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..TAKES_PER_SPEAKER).collect();
    idx.shuffle(rng);
    let streamed = idx[opts.takes..]
        .iter()
        .take(opts.targets_per_word)
        .copied()
        .collect();
    idx.truncate(opts.takes);
    (idx, streamed)
}

/// A target take in a stream.
fn target_item(
    data: &std::path::Path,
    digit: usize,
    speaker: &'static str,
    take: usize,
) -> StreamItem {
    (
        fsdd(data, (digit, speaker, take)),
        Some(DIGITS[digit].to_string()),
    )
}

/// One seed's same-speaker case: a speaker, 3 target digits and what is enrolled and streamed.
struct SameSpeaker {
    speaker: &'static str,
    targets: Vec<usize>,
    /// `takes` takes of each target digit, and the room-noise background.
    enrol: Dataset,
    /// Other digits by the same speaker, none of them in the stream: the `_unknown_` takes.
    unknown: Vec<Take>,
    stream: Stream,
}

impl SameSpeaker {
    fn draw(opts: &EvalOptions, rng: &mut SmallRng) -> Result<Self> {
        let data = &opts.data;
        let speaker = *SPEAKERS.choose(rng).unwrap();
        let mut digits: Vec<usize> = (0..10).collect();
        digits.shuffle(rng);
        let targets = digits[..3].to_vec();
        let mut enrol = Dataset::default();
        let mut items = Vec::new();
        for &d in &targets {
            let (enrolled, streamed) = split_takes(opts, rng);
            let takes = enrolled
                .iter()
                .map(|&i| load_take(data, (d, speaker, i)))
                .collect::<Result<Vec<_>>>()?;
            enrol.words.push((DIGITS[d].to_string(), takes));
            items.extend(streamed.iter().map(|&i| target_item(data, d, speaker, i)));
        }
        enrol.words.sort_by(|a, b| a.0.cmp(&b.0));
        enrol.background = streams::background(data, rng)?;
        let (stream, rest) =
            Stream::with_nontargets(data, items, &digits[3..], opts.nontargets, rng)?;
        let unknown = rest
            .into_iter()
            .filter(|(_, s, _)| *s == speaker)
            .take(30)
            .map(|r| load_take(data, r))
            .collect::<Result<_>>()?;
        Ok(SameSpeaker {
            speaker,
            targets,
            enrol,
            unknown,
            stream,
        })
    }
}

/// One seed's cross-speaker case: one digit enrolled from one or two speakers and streamed as
/// said by the others.
struct CrossSpeaker {
    digit: usize,
    /// All four speakers: the first `enrolled` enrolled, the others streamed.
    speakers: Vec<&'static str>,
    enrolled: usize,
    enrol: Dataset,
    stream: Stream,
}

impl CrossSpeaker {
    /// `digit` enrolled from the first `enrolled` of `speakers` (takes at random) and streamed
    /// as the others say it, among other digits by all four.
    fn draw(
        opts: &EvalOptions,
        (digit, speakers, enrolled): (usize, &[&'static str], usize),
        background: &[crate::train::recording::Recording],
        rng: &mut SmallRng,
    ) -> Result<Self> {
        let data = &opts.data;
        let (enrolled_takes, streamed) = split_takes(opts, rng);
        let mut takes = Vec::new();
        for &s in &speakers[..enrolled] {
            for &i in &enrolled_takes {
                takes.push(load_take(data, (digit, s, i))?);
            }
        }
        let enrol = Dataset {
            words: vec![(DIGITS[digit].to_string(), takes)],
            background: background.to_vec(),
            ..Dataset::default()
        };
        let mut items = Vec::new();
        for &s in &speakers[enrolled..] {
            items.extend(streamed.iter().map(|&i| target_item(data, digit, s, i)));
        }
        let others: Vec<usize> = (0..10).filter(|&x| x != digit).collect();
        let (stream, _) = Stream::with_nontargets(data, items, &others, opts.nontargets, rng)?;
        Ok(CrossSpeaker {
            digit,
            speakers: speakers.to_vec(),
            enrolled,
            enrol,
            stream,
        })
    }
}
