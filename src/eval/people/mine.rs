//! The people benchmark's `mine` case: one person enrols three words (5 takes each) and says
//! the rest of their takes among other people's words.

use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::corpus::Corpus;
use super::{crowd_stream, dataset, PeopleOptions};
use crate::eval::streams::{background, Stream};
use crate::eval::word_check::Heard;
use crate::eval::{decide, score, EvalOptions, Evaluation};
use crate::pipeline::head::Voices;
use crate::train::dataset::Dataset;
use crate::Result;

/// Words a `mine` case enrols.
const WORDS: usize = 3;
/// Most of the speaker's other takes of each word in the stream.
const STREAMED: usize = 20;

/// One speaker's three words, enrolled and streamed.
pub(super) struct Mine {
    speaker: String,
    enrol: Dataset,
    stream: Stream,
}

impl Mine {
    /// A speaker with at least `takes + 2` takes of three words, or `None` when the corpus has
    /// none.
    pub fn draw(
        corpus: &Corpus,
        opts: &EvalOptions,
        people: &PeopleOptions,
        rng: &mut SmallRng,
    ) -> Result<Option<Mine>> {
        let need = opts.takes + 2;
        let mut by_speaker: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (w, by) in &corpus.words {
            for (s, f) in by {
                if f.len() >= need {
                    by_speaker.entry(s).or_default().push(w);
                }
            }
        }
        let able: Vec<(&str, Vec<&str>)> = by_speaker
            .into_iter()
            .filter(|(_, w)| w.len() >= WORDS)
            .collect();
        let Some((speaker, words)) = able.choose(rng) else {
            return Ok(None);
        };
        let mut words = words.clone();
        words.shuffle(rng);
        words.truncate(WORDS);
        words.sort();
        let background = background(&opts.data, rng)?;
        let mut enrol = Dataset {
            background,
            ..Dataset::default()
        };
        let mut items = Vec::new();
        for w in &words {
            let mut files = corpus.words[*w][*speaker].clone();
            files.shuffle(rng);
            let d = dataset(w, files.iter().take(opts.takes), &[])?;
            enrol.words.extend(d.words);
            let rest = files.iter().skip(opts.takes).take(STREAMED);
            items.extend(rest.map(|f| (f.clone(), Some(w.to_string()))));
        }
        let (stream, _) =
            crowd_stream(corpus, &opts.data, items, (&words, people.nontargets), rng)?;
        Ok(Some(Mine {
            speaker: speaker.to_string(),
            enrol,
            stream,
        }))
    }
}

impl Evaluation<'_> {
    /// Trains the `mine` head, scores it on its stream (and the sweep) and on the continuous
    /// speech.
    pub(super) fn mine_case(&mut self, seed: u64, case: &Mine, key: &str) -> Result<()> {
        let scenario = format!("mine, same speaker, {} takes", self.opts.takes);
        let embs = self.model.embed(
            &case.stream.samples,
            self.opts.gate,
            Some(&format!("{key}-mine")),
        )?;
        let head = self.train_head_as(&case.enrol, seed, Voices::Mine)?;
        let word_model = self.word_model.clone();
        let mut ear = Heard::new(word_model.as_ref(), &case.stream.samples);
        let (truth, seconds) = (&case.stream.truth, case.stream.seconds());
        let s = score(&decide(head.clone(), &embs, &mut ear), truth, seconds);
        (self.log)(&format!(
            "seed {seed:>3} {:<9} {scenario:<50} recall {:.3}  FA/non-target {:.4}  ({} targets, {})",
            case.enrol.labels().join(","),
            s.recall(),
            s.fa_per_word(),
            s.targets,
            case.speaker
        ));
        self.record(&scenario, "default", &s);
        self.sweep(&scenario, &head, (&embs, &mut ear), truth, seconds);
        self.speech_row(seed, &scenario, &head);
        Ok(())
    }
}
