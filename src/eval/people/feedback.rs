//! `hark eval --corpus DIR --feedback`: the feedback loop for a word anyone may say, among many
//! people. Per seed, the corpus's speakers are split in two halves. The word's five-people
//! `anyone` head (as [`super::run`] draws it) hears the word said by its other speakers among
//! the other words of the first half's people; every
//! false trigger's clip is rejected into `_unknown_`, the head is trained again and hears the
//! same stream, and a stream of the other half's people, which no rejected clip came from: what
//! a rejection teaches about the sound rather than about the one clip. The control is the head
//! trained again without the clips, with another training seed.

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::corpus::Corpus;
use super::{Enrolment, PeopleOptions};
use crate::eval::feedback::{false_triggers, rejected, seed_line, Outcome};
use crate::eval::streams::Stream;
use crate::eval::word_check::Heard;
use crate::eval::{decide, EvalOptions, Evaluation, Timeline};
use crate::pipeline::detector::Detection;
use crate::pipeline::head::{Head, Voices};
use crate::Result;

/// Runs the loop for every seed; logs two lines per seed (the corrected stream, the other
/// people's) and returns each seed's outcome, the other people's in [`Outcome::others`].
pub fn run(
    assets: &crate::assets::Assets,
    opts: &EvalOptions,
    people: &PeopleOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<(u64, Outcome)>> {
    let corpus = Corpus::load(&people.corpus, people.split)?;
    let opts = &crate::eval::cached(assets, opts);
    let mut eval = Evaluation::new(assets, opts, log)?;
    let mut out = Vec::new();
    for &seed in &opts.seeds {
        out.push((seed, eval.people_feedback_seed(seed, &corpus, people)?));
    }
    Ok(out)
}

/// The two halves' streams of one seed.
struct Halves {
    corrected: Stream,
    others: Stream,
}

impl Halves {
    /// Splits the corpus's speakers in two at random and draws each half's stream.
    fn draw(
        corpus: &Corpus,
        e: &Enrolment,
        (opts, people): (&EvalOptions, &PeopleOptions),
        rng: &mut SmallRng,
    ) -> Result<Halves> {
        let mut speakers: Vec<&String> = corpus.words.values().flat_map(|by| by.keys()).collect();
        speakers.sort();
        speakers.dedup();
        speakers.shuffle(rng);
        let first: BTreeSet<&str> = speakers[..speakers.len() / 2]
            .iter()
            .map(|s| s.as_str())
            .collect();
        let half = |mine: bool| corpus.only(&|s| first.contains(s) == mine);
        let (corrected, _) = e.stream((corpus, &half(true)), opts, people, rng)?;
        let (others, _) = e.stream((corpus, &half(false)), opts, people, rng)?;
        Ok(Halves { corrected, others })
    }
}

impl Evaluation<'_> {
    /// One seed of the loop: train, hear, reject, train again, hear both halves.
    fn people_feedback_seed(
        &mut self,
        seed: u64,
        corpus: &Corpus,
        people: &PeopleOptions,
    ) -> Result<Outcome> {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0xfeed);
        let e = Enrolment::draw(corpus, self.opts, &mut rng)?;
        let halves = Halves::draw(corpus, &e, (self.opts, people), &mut rng)?;
        let key = format!(
            "pf{seed}-{:?}-{}-{}",
            people.split, people.targets, people.nontargets
        );
        let (a, b) = (&halves.corrected, &halves.others);
        let embs_a = self
            .model
            .embed(&a.samples, self.opts.gate, Some(&format!("{key}-a")))?;
        let embs_b = self
            .model
            .embed(&b.samples, self.opts.gate, Some(&format!("{key}-b")))?;
        let first = self.train_head_as(&e.five, seed, Voices::Anyone)?;
        let wrong = false_triggers(&self.hear(&first, a, &embs_a), &a.truth);
        let mut enrol = e.five.clone();
        enrol.unknown.extend(rejected(&wrong, &a.samples));
        let corrected = self.train_head_as(&enrol, seed, Voices::Anyone)?;
        let control = self.train_head_as(&e.five, seed ^ 0x5eed, Voices::Anyone)?;
        let heads = [first, corrected, control];
        let mut outcome = self.outcome(&heads, a, &embs_a);
        let others = self.outcome(&heads, b, &embs_b);
        if let Some(sp) = &self.speech {
            let count = |h: &Arc<Head>| sp.score(h, self.word_model.as_ref(), &[]).0.false_accepts;
            outcome.unseen = Some((count(&heads[0]), count(&heads[1])));
        }
        (self.log)(&seed_line(seed, &e.word, &outcome));
        (self.log)(&format!(
            "{}  (other people)",
            seed_line(seed, &e.word, &others)
        ));
        outcome.others = Some(Box::new(others));
        Ok(outcome)
    }

    /// The first, corrected and control heads (in that order) on one stream.
    fn outcome(&self, heads: &[Arc<Head>; 3], s: &Stream, embs: &Timeline) -> Outcome {
        let dets: Vec<Vec<Detection>> = heads.iter().map(|h| self.hear(h, s, embs)).collect();
        Outcome::of((&dets[0], &dets[1], &dets[2]), &s.truth, s.seconds())
    }

    /// What `head` detects in `stream` (its embeddings `embs`), the word check deciding as
    /// the daemon's does.
    fn hear(&self, head: &Arc<Head>, stream: &Stream, embs: &Timeline) -> Vec<Detection> {
        let mut ear = Heard::new(self.word_model.as_ref(), &stream.samples);
        decide(head.clone(), embs, &mut ear)
    }
}
