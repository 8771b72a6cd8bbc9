//! The crowd rows of `hark eval`: every digit take of the data set, all four speakers (2000
//! takes, about 50 minutes), laid out as the benchmark's streams are (0.6-1.6 s apart over the
//! same noise bed) in streams of up to 500 takes, and embedded once per run (cached under
//! `$HARK_EVAL_CACHE` like the other streams). Each same-speaker head of each seed runs over
//! it at its default threshold. The takes of the head's own words and the takes it was
//! trained on are masked: a detection on one of them is not counted, and neither is the take.
//! Every other detection is a false accept, against the remaining non-target words and their
//! hours of speech.

use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::collections::HashSet;
use std::sync::Arc;

use super::streams::{fsdd, shuffled_pool, Stream, StreamEmbedder, StreamItem};
use super::word_check::{Heard, Memo};
use super::{decide, hits, score, EvalOptions, Evaluation, Score, Timeline, Truth, DIGITS};
use crate::pipeline::detector::Detection;
use crate::pipeline::head::Head;
use crate::pipeline::word_check::SharedWordModel;
use crate::train::dataset::Dataset;
use crate::Result;

/// The order of the crowd's takes and its gaps: the same crowd in every run.
const CROWD_SEED: u64 = 0x00c2_0bd5;
/// Takes per crowd stream (about 13 minutes: bounds the memory the samples take).
const PART_TAKES: usize = 500;

/// The crowd's streams, embedded.
pub(super) struct Crowd {
    parts: Vec<Part>,
}

/// One crowd stream: its embeddings, its samples (kept for the word check; else empty), its
/// truth, the digit of each take and its length.
struct Part {
    embs: Timeline,
    samples: Vec<f32>,
    /// What the heads so far heard of `samples` (the same candidate times recur).
    memo: std::sync::Mutex<Memo>,
    truth: Vec<Truth>,
    digits: Vec<usize>,
    seconds: f64,
}

impl Crowd {
    /// The first `opts.crowd` takes of the shuffled data set, in streams, embedded.
    fn build(opts: &EvalOptions, model: &mut StreamEmbedder, keep_audio: bool) -> Result<Crowd> {
        let mut rng = SmallRng::seed_from_u64(CROWD_SEED);
        let all: Vec<usize> = (0..DIGITS.len()).collect();
        let mut pool = shuffled_pool(&all, &mut rng);
        pool.truncate(opts.crowd);
        let mut parts = Vec::new();
        for (k, chunk) in pool.chunks(PART_TAKES).enumerate() {
            let items: Vec<StreamItem> =
                chunk.iter().map(|&r| (fsdd(&opts.data, r), None)).collect();
            let stream = Stream::build(&opts.data, &items, &mut rng)?;
            let key = format!("crowd{}-{k}", opts.crowd);
            parts.push(Part {
                embs: model.embed(&stream.samples, opts.gate, Some(&key))?,
                seconds: stream.seconds(),
                samples: match keep_audio {
                    true => stream.samples,
                    false => Vec::new(),
                },
                memo: Default::default(),
                truth: stream.truth,
                digits: chunk.iter().map(|r| r.0).collect(),
            });
        }
        Ok(Crowd { parts })
    }

    /// The head's false accepts on the crowd; `trained` holds the files it was trained on.
    /// The streams are decided on threads of their own (the head's scoring is what costs).
    fn score(
        &self,
        head: &Arc<Head>,
        trained: &HashSet<String>,
        word_model: Option<&SharedWordModel>,
    ) -> Score {
        let part_score = |p: &Part| {
            let masked: Vec<bool> = p
                .truth
                .iter()
                .zip(&p.digits)
                .map(|(t, &d)| {
                    head.labels.iter().any(|l| l == DIGITS[d]) || trained.contains(&t.file)
                })
                .collect();
            let memo = std::mem::take(&mut *p.memo.lock().unwrap());
            let mut heard = Heard::with_memo(word_model, &p.samples, memo);
            let dets = decide(head.clone(), &p.embs, &mut heard);
            *p.memo.lock().unwrap() = heard.into_memo();
            score_masked(&dets, &p.truth, &masked, p.seconds)
        };
        let mut total = Score::default();
        std::thread::scope(|s| {
            let threads: Vec<_> = self
                .parts
                .iter()
                .map(|p| s.spawn(move || part_score(p)))
                .collect();
            for t in threads {
                match t.join() {
                    Ok(score) => total.add(&score),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        });
        total
    }
}

/// Scores detections on a stream of non-targets of which some takes are masked: detections
/// on a masked take (in its hit window) are dropped, and the masked takes count neither as
/// words, nor as speech, nor as stream time.
fn score_masked(dets: &[Detection], truth: &[Truth], masked: &[bool], seconds: f64) -> Score {
    let on_masked = |d: &&Detection| {
        truth
            .iter()
            .position(|t| hits(d.time, t.start, t.end))
            .is_some_and(|i| masked[i])
    };
    let dets: Vec<Detection> = dets.iter().filter(|d| !on_masked(d)).cloned().collect();
    let mut kept = Vec::new();
    let mut masked_seconds = 0.0;
    for (t, &m) in truth.iter().zip(masked) {
        if m {
            masked_seconds += t.end - t.start;
        } else {
            kept.push(Truth {
                word: None,
                ..t.clone()
            });
        }
    }
    score(&dets, &kept, seconds - masked_seconds)
}

impl Evaluation<'_> {
    /// Scores `head`, trained on `enrol`, on the crowd (built on first use) and records and
    /// logs it as the row "crowd (`scenario`)". Does nothing when `opts.crowd` is 0.
    pub(super) fn crowd(
        &mut self,
        seed: u64,
        scenario: &str,
        head: &Arc<Head>,
        enrol: &Dataset,
    ) -> Result<()> {
        if self.opts.crowd == 0 {
            return Ok(());
        }
        let crowd = match self.crowd.take() {
            Some(c) => c,
            None => {
                let t0 = std::time::Instant::now();
                let keep_audio = self.word_model.is_some();
                let c = Crowd::build(self.opts, &mut self.model, keep_audio)?;
                (self.log)(&format!(
                    "crowd: {} takes in {} streams, embedded in {:.1} s",
                    c.parts.iter().map(|p| p.truth.len()).sum::<usize>(),
                    c.parts.len(),
                    t0.elapsed().as_secs_f64()
                ));
                c
            }
        };
        let trained: HashSet<String> = enrol
            .words
            .iter()
            .flat_map(|(_, takes)| takes)
            .chain(&enrol.unknown)
            .map(|t| t.path.display().to_string())
            .collect();
        let s = crowd.score(head, &trained, self.word_model.as_ref());
        self.crowd = Some(crowd);
        let row = format!("crowd ({scenario})");
        (self.log)(&format!(
            "seed {seed:>3} {row:<70} {} non-target words  FA/non-target {:.4}  FA/h speech {:>6.1}",
            s.nontargets,
            s.fa_per_word(),
            s.fa_per_speech_hour()
        ));
        self.record(&row, "default", &s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(start: f64, end: f64) -> Truth {
        Truth {
            word: None,
            start,
            end,
            file: format!("{start}.wav"),
            speech: (end - start) / 2.0,
        }
    }

    fn det(time: f64) -> Detection {
        super::super::score::det("one", time)
    }

    #[test]
    fn masked_takes_and_detections_on_them_are_not_counted() {
        let truth = [take(1.0, 2.0), take(3.0, 4.0), take(5.0, 6.0)];
        let masked = [false, true, false];
        // On the first take, on the masked one (in its window after the end), in a gap, on the last.
        let dets = [det(1.5), det(4.5), det(8.0), det(5.2)];
        let s = score_masked(&dets, &truth, &masked, 10.0);
        assert_eq!((s.targets, s.nontargets, s.false_accepts), (0, 2, 3));
        assert!((s.seconds - 9.0).abs() < 1e-9);
        assert!((s.speech_seconds - 1.0).abs() < 1e-9);
    }
}
