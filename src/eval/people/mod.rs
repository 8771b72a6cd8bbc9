//! `hark eval --corpus DIR`: the benchmark on many people. Where the four speakers of
//! `../shared/data` say digits, this draws from a Speech Commands-style corpus of short
//! command words said by hundreds of people (`corpus`), and from continuous read speech
//! (`--speech`, in `eval::speech`) for the false accepts per hour.
//!
//! Per seed, one target word is drawn and its speakers shuffled:
//! - `anyone`, one enrolled speaker: 5 takes of one speaker, then the word said once by each
//!   of up to 40 others, among 600 other words by other people, a quarter of them the word's
//!   confusable neighbours (on/off, no/go, ...) where it has some (without a speaker who
//!   said the word 5 times, as in a corpus that does not name its speakers and gives each
//!   take a speaker of its own, this case is left out);
//! - `anyone`, five enrolled speakers: one take each of five others, the same stream;
//! - `mine`, same speaker: one speaker with enough takes of three words enrols 5 of each and
//!   says the rest among the same kind of crowd (seeds without such a speaker skip it).
//!
//! The stream's non-target takes that are the target's confusable words are also scored
//! alone, as the row "confusable words". Continuous speech, when given, goes through every
//! head: every detection in it is a false accept, per hour of speech.

pub mod corpus;
pub mod feedback;

use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::streams::{background, Stream, StreamItem};
use super::word_check::{Heard, Memo};
use super::{decide, score, EvalOptions, Evaluation, Results, Score, Timeline, Truth};
use crate::pipeline::detector::Detection;
use crate::pipeline::head::{Head, Voices};
use crate::train::dataset::{load_take, Dataset};
use crate::Result;
use corpus::{word_of, Corpus, Split};

/// What the people benchmark draws from, beside [`EvalOptions`].
#[derive(Clone, Debug)]
pub struct PeopleOptions {
    /// The corpus of words (Speech Commands' layout).
    pub corpus: PathBuf,
    /// Tune on the corpus's training speakers or check on its held-out ones.
    pub split: Split,
    /// Other people saying the target word in each stream.
    pub targets: usize,
    /// Other words in each stream.
    pub nontargets: usize,
}

/// Speakers a word needs to be drawn: five enrol it, the others say it in the stream.
const MIN_SPEAKERS: usize = 8;

/// Pairs of words that sound alike: each is the other's confusable neighbour.
const CONFUSABLE: [(&str, &str); 10] = [
    ("on", "off"),
    ("no", "go"),
    ("no", "nine"),
    ("tree", "three"),
    ("bed", "bird"),
    ("dog", "down"),
    ("four", "forward"),
    ("five", "nine"),
    ("learn", "left"),
    ("up", "off"),
];

/// The word's confusable neighbours.
pub fn confusables(word: &str) -> Vec<&'static str> {
    CONFUSABLE
        .iter()
        .filter_map(|&(a, b)| match word {
            w if w == a => Some(b),
            w if w == b => Some(a),
            _ => None,
        })
        .collect()
}

/// Runs the people benchmark; prints a line per scenario and seed and returns the summed
/// results per scenario.
pub fn run(
    assets: &crate::assets::Assets,
    opts: &EvalOptions,
    people: &PeopleOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<(String, Results)>> {
    super::streams::check_data(&opts.data)?;
    let corpus = Corpus::load(&people.corpus, people.split)?;
    let (speakers, takes) = corpus.counts();
    log(&format!(
        "corpus {}: {} words, {speakers} speakers, {takes} takes ({:?} split)",
        people.corpus.display(),
        corpus.words.len(),
        people.split
    ));
    let opts = &super::cached(assets, opts);
    let mut eval = Evaluation::new(assets, opts, log)?;
    for &seed in &opts.seeds {
        eval.people_seed(seed, &corpus, people)?;
    }
    Ok(eval.results)
}

/// One seed's draw: the target word, who enrols it and the stream they are heard in.
struct Draw {
    word: String,
    /// One speaker's `takes` takes of the word (none when no speaker said it that often, as in
    /// a corpus without speaker names, where each take is its own speaker).
    one: Option<Dataset>,
    /// One take each of five other speakers.
    five: Dataset,
    stream: Stream,
    /// Per take of the stream, whether it is a confusable neighbour of the word.
    confusable: Vec<bool>,
}

/// Who enrols a seed's word, and who is left to say it in a stream.
struct Enrolment<'c> {
    word: String,
    /// As [`Draw::one`].
    one: Option<Dataset>,
    /// One take each of five speakers.
    five: Dataset,
    /// The word's other speakers, in random order.
    others: Vec<&'c String>,
}

impl<'c> Enrolment<'c> {
    /// Draws a word said by at least [`MIN_SPEAKERS`] people, who enrols it, and the rest.
    fn draw(corpus: &'c Corpus, opts: &EvalOptions, rng: &mut SmallRng) -> Result<Enrolment<'c>> {
        let words: Vec<&String> = corpus
            .words
            .iter()
            .filter(|(_, by)| by.len() >= MIN_SPEAKERS)
            .map(|(w, _)| w)
            .collect();
        let word = (*words.choose(rng).ok_or_else(|| {
            crate::Error::invalid(
                &corpus.root,
                format!("no word is said by {MIN_SPEAKERS} speakers"),
            )
        })?)
        .clone();
        let by = &corpus.words[&word];
        let mut others: Vec<&String> = by.keys().collect();
        others.shuffle(rng);
        let enroller = others
            .iter()
            .position(|s| by[*s].len() >= opts.takes)
            .map(|first| others.remove(first));
        let five = enrol_five(by, &mut others, rng);
        let background = background(&opts.data, rng)?;
        let one = match enroller {
            Some(s) => Some(dataset(&word, by[s].iter().take(opts.takes), &background)?),
            None => None,
        };
        let five = dataset(&word, five.iter(), &background)?;
        Ok(Enrolment {
            word,
            one,
            five,
            others,
        })
    }

    /// A stream: the word said once by each of up to `people.targets` of its other speakers
    /// (in `corpus`), among `people.nontargets` other words said by the people of `crowd`
    /// (the whole corpus or some of its people); and which of its takes are confusable.
    fn stream(
        &self,
        (corpus, crowd): (&Corpus, &Corpus),
        opts: &EvalOptions,
        people: &PeopleOptions,
        rng: &mut SmallRng,
    ) -> Result<(Stream, Vec<bool>)> {
        let by = &corpus.words[&self.word];
        let items: Vec<StreamItem> = (self.others.iter())
            .take(people.targets)
            .map(|s| (by[*s].choose(rng).unwrap().clone(), Some(self.word.clone())))
            .collect();
        let targets = (&[self.word.as_str()][..], people.nontargets);
        crowd_stream(crowd, &opts.data, items, targets, rng)
    }
}

impl Draw {
    fn new(
        corpus: &Corpus,
        opts: &EvalOptions,
        people: &PeopleOptions,
        rng: &mut SmallRng,
    ) -> Result<Draw> {
        let e = Enrolment::draw(corpus, opts, rng)?;
        let (stream, confusable) = e.stream((corpus, corpus), opts, people, rng)?;
        Ok(Draw {
            word: e.word,
            one: e.one,
            five: e.five,
            stream,
            confusable,
        })
    }
}

/// One take each of the first five `speakers` with a take hark accepts (one word of at most
/// 3 s of sound: some crowd-sourced clips hold more), taken out of `speakers`; those whose
/// drawn take it refuses are left out of the draw.
fn enrol_five(
    by: &std::collections::BTreeMap<String, Vec<PathBuf>>,
    speakers: &mut Vec<&String>,
    rng: &mut SmallRng,
) -> Vec<PathBuf> {
    let mut five = Vec::new();
    while five.len() < 5 && speakers.len() > 1 {
        let take = by[speakers.remove(0)].choose(rng).unwrap();
        if load_take(take).is_ok() {
            five.push(take.clone());
        }
    }
    five
}

/// A dataset of one word's takes and the room noise.
fn dataset<'a>(
    word: &str,
    files: impl Iterator<Item = &'a PathBuf>,
    background: &[crate::train::recording::Recording],
) -> Result<Dataset> {
    Ok(Dataset {
        words: vec![(
            word.to_string(),
            files.map(|p| load_take(p)).collect::<Result<_>>()?,
        )],
        background: background.to_vec(),
        ..Dataset::default()
    })
}

/// The target takes `items` among `n` takes of other words than the `targets` by random
/// people, a quarter of them the targets' confusable neighbours where they have some, shuffled
/// and laid out as every benchmark stream is. Also says which takes are confusable.
fn crowd_stream(
    corpus: &Corpus,
    data: &Path,
    mut items: Vec<StreamItem>,
    (targets, n): (&[&str], usize),
    rng: &mut SmallRng,
) -> Result<(Stream, Vec<bool>)> {
    let near: Vec<&str> = targets
        .iter()
        .flat_map(|t| confusables(t))
        .filter(|w| corpus.words.contains_key(*w) && !targets.contains(w))
        .collect();
    let others: Vec<&String> = corpus
        .words
        .keys()
        .filter(|w| !targets.contains(&w.as_str()))
        .collect();
    for i in 0..n {
        let word = match near.is_empty() || i % 4 != 0 {
            true => others.choose(rng).unwrap().as_str(),
            false => near.choose(rng).unwrap(),
        };
        let by = &corpus.words[word];
        let files = by
            .values()
            .nth(rand::Rng::random_range(rng, 0..by.len()))
            .unwrap();
        items.push((files.choose(rng).unwrap().clone(), None));
    }
    items.shuffle(rng);
    let stream = Stream::build(data, &items, rng)?;
    let confusable = stream
        .truth
        .iter()
        .map(|t| t.word.is_none() && near.contains(&word_of(&t.file)))
        .collect();
    Ok((stream, confusable))
}

impl Evaluation<'_> {
    /// One seed of the people benchmark: the `anyone` cases, then the `mine` case.
    fn people_seed(&mut self, seed: u64, corpus: &Corpus, people: &PeopleOptions) -> Result<()> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let draw = Draw::new(corpus, self.opts, people, &mut rng)?;
        let key = format!(
            "p{seed}-{:?}-{}-{}",
            people.split, people.targets, people.nontargets
        );
        let embs = self
            .model
            .embed(&draw.stream.samples, self.opts.gate, Some(&key))?;
        let mut memo = Memo::new();
        for (enrol, name) in [
            (draw.one.as_ref(), "1 enrolled speaker"),
            (Some(&draw.five), "5 enrolled speakers, 1 take each"),
        ] {
            let Some(enrol) = enrol else { continue };
            let scenario = format!("anyone, {name} -> others");
            let head = self.train_head_as(enrol, seed, Voices::Anyone)?;
            let case = (&head, draw.word.as_str(), enrol);
            memo = self.people_case(seed, &scenario, case, (&draw, &embs), memo)?;
            self.speech_row(seed, &scenario, &head);
        }
        if let Some(case) = mine::Mine::draw(corpus, self.opts, people, &mut rng)? {
            self.mine_case(seed, &case, &key)?;
        }
        Ok(())
    }

    /// Scores one head on the draw's stream (all of it, then its confusable takes alone),
    /// with the sweep, and logs the seed's line.
    fn people_case(
        &mut self,
        seed: u64,
        scenario: &str,
        (head, word, enrol): (&Arc<Head>, &str, &Dataset),
        (draw, embs): (&Draw, &Timeline),
        memo: Memo,
    ) -> Result<Memo> {
        let stream = &draw.stream;
        let word_model = self.word_model.clone();
        let mut ear = Heard::with_memo(word_model.as_ref(), &stream.samples, memo);
        let dets = decide(head.clone(), embs, &mut ear);
        let s = score(&dets, &stream.truth, stream.seconds());
        let near = only(&dets, &stream.truth, &draw.confusable, stream.seconds());
        (self.log)(&format!(
            "seed {seed:>3} {word:<9} {scenario:<50} recall {:.3}  FA/non-target {:.4}  confusable {}/{}",
            s.recall(),
            s.fa_per_word(),
            near.false_accepts,
            near.nontargets
        ));
        self.record(scenario, "default", &s);
        if near.nontargets > 0 {
            self.record(&format!("confusable words ({scenario})"), "default", &near);
        }
        self.sweep(
            scenario,
            head,
            (embs, &mut ear),
            &stream.truth,
            stream.seconds(),
        );
        let name = format!("p{seed}-{}", enrol.words[0].1.len());
        self.dump_candidates(&name, head, (embs, &mut ear), stream, enrol)?;
        Ok(ear.into_memo())
    }
}

/// The false accepts on the takes `keep` marks, against their count: a detection counts when
/// it lands in a marked take's hit window, whatever else the stream holds.
fn only(dets: &[Detection], truth: &[Truth], keep: &[bool], seconds: f64) -> Score {
    let kept: Vec<&Truth> = truth
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(t, _)| t)
        .collect();
    let on_kept = |d: &&Detection| kept.iter().any(|t| super::hits(d.time, t.start, t.end));
    Score {
        nontargets: kept.len(),
        false_accepts: dets.iter().filter(on_kept).count(),
        seconds,
        speech_seconds: kept.iter().map(|t| t.speech).sum(),
        ..Score::default()
    }
}

mod mine;
