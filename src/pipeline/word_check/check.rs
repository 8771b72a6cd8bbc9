//! The word check as a stage of the decision, streaming.
//!
//! The detector runs with each word's threshold lowered to the rule's candidate level; what it
//! fires is a *candidate*, which stays open for [`SPAN`] seconds. While open, the candidate's
//! peak smoothed score is tracked window by window, and once the stream has gone [`AFTER`]
//! seconds past its start the word model hears the audio from [`BEFORE`] seconds before the
//! start to [`AFTER`] after it (once per candidate): its best cosine to the word's takes. The
//! event fires at the first window where
//!
//! `peak + weight * (cosine - centre) >= the word's threshold`,
//!
//! and if none does within the span, the candidate is dropped. The fused score only grows with
//! the peak, so nothing is gained by waiting for the peak itself: an event fires as soon as it
//! is sure, at least `AFTER` (rounded up to the next 80 ms window) after its candidate.
//!
//! A candidate whose peak reaches [`Rule::sure`] before it is heard (the fused score would pass
//! even at a cosine of [`Rule::floor`]) fires at once, unheard. On the benchmark's 16 seeds
//! (with floor 0 and weight 1, as first built) that changed no decision but four, all hits that
//! an `_unknown_` take's veto had wrongly dropped; with today's rule (floor 0.1) it spares the
//! model about two candidates in three and brings those events' latency back to the
//! detector's (docs/design.md, "The word check").

use serde::{Deserialize, Serialize};

use super::{best_similarity, DIM};
use crate::pipeline::detector::{Detection, DetectorSettings};

/// Seconds of audio the check hears before a candidate's start, and after it (1.5 s in all).
pub const BEFORE: f64 = 1.3;
pub const AFTER: f64 = 0.2;
/// Seconds a candidate stays open for its peak.
pub const SPAN: f64 = 0.6;

/// The rule that fuses a candidate's peak score with its cosine.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The threshold of the detector's candidates.
    pub candidate: f32,
    /// How much the cosine counts, and the cosine that counts as nothing either way: cosines
    /// of this model run from about 0.2 for another word to 0.9 for the same take. (Weight
    /// 1.75 and centre 0.255 since 2026-11-30, from a grid on the benchmark's candidates,
    /// checked on held-out seeds; before, 1 and 0.2. docs/research/word-check.md.)
    pub weight: f32,
    pub centre: f32,
    /// A candidate is dropped when its audio's cosine to an `_unknown_` take beats its cosine
    /// to its word's takes by more than this (0.15; `hark eval --feedback` with 0, 0.05, 0.1
    /// and none chose 0.1 for weight 1; docs/research/feedback.md).
    #[serde(default)]
    pub margin: f32,
    /// The lowest cosine a candidate is taken to have before it is heard: a candidate whose
    /// peak alone would pass at this cosine fires at once, unheard ([`Rule::sure`]). 0.1 since
    /// 2026-11-30 (no word's own take scored below 0.08 on the benchmark's 32 streams); a head
    /// without it (older heads) has 0.
    #[serde(default)]
    pub floor: f32,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            candidate: 0.20,
            weight: 1.75,
            centre: 0.255,
            margin: 0.15,
            floor: 0.1,
        }
    }
}

impl Rule {
    /// Checks the rule makes sense; the reason if not.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(self.candidate > 0.0 && self.candidate < 1.0) {
            return Err(format!(
                "the word check's candidate threshold {} is not between 0 and 1",
                self.candidate
            ));
        }
        if !(0.0..=10.0).contains(&self.weight) {
            return Err(format!(
                "the word check's weight {} is not between 0 and 10",
                self.weight
            ));
        }
        if !(-1.0..=1.0).contains(&self.centre) {
            return Err(format!(
                "the word check's centre {} is not a cosine (between -1 and 1)",
                self.centre
            ));
        }
        if !(0.0..=2.0).contains(&self.margin) {
            return Err(format!(
                "the word check's margin {} is not between 0 and 2",
                self.margin
            ));
        }
        if !(-1.0..=1.0).contains(&self.floor) {
            return Err(format!(
                "the word check's floor {} is not a cosine (between -1 and 1)",
                self.floor
            ));
        }
        Ok(())
    }

    /// The peak at which a candidate is sure before it is heard: its fused score would reach
    /// `threshold` even at a cosine of [`Rule::floor`].
    pub fn sure(&self, threshold: f32) -> f32 {
        threshold + self.weight * (self.centre - self.floor)
    }

    /// The candidate detector's settings: every threshold at the candidate level (an event
    /// needs a peak of at least that, whatever its word's threshold).
    pub fn candidate_settings(&self, settings: &DetectorSettings) -> DetectorSettings {
        settings.clone().with_threshold(self.candidate)
    }
}

/// What a head keeps for the word check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolled {
    /// The word model the takes were embedded with.
    pub model_sha256: String,
    pub rule: Rule,
    /// Per word, in the head's label order: the unit embeddings of its takes.
    #[serde(with = "crate::pipeline::head::packed::groups")]
    pub takes: Vec<Vec<Vec<f32>>>,
    /// The unit embeddings of `_unknown_` takes (at most [`MAX_UNKNOWN`], the newest).
    #[serde(default, with = "crate::pipeline::head::packed::rows")]
    pub unknown: Vec<Vec<f32>>,
}

/// `_unknown_` takes the check keeps at most.
pub const MAX_UNKNOWN: usize = 200;

impl Enrolled {
    /// Checks the check fits a head of `words` words; the reason if not.
    pub fn check(&self, words: usize) -> std::result::Result<(), String> {
        self.rule.check()?;
        if self.takes.len() != words {
            return Err(format!(
                "the word check has takes for {} words, the head has {words}",
                self.takes.len()
            ));
        }
        if self.unknown.len() > MAX_UNKNOWN {
            return Err(format!(
                "the word check has {} unknown takes, more than {MAX_UNKNOWN}",
                self.unknown.len()
            ));
        }
        let embeddings = || self.takes.iter().flatten().chain(&self.unknown);
        if embeddings().any(|e| e.len() != DIM) {
            return Err(format!("the word check has a take not of {DIM} values"));
        }
        if embeddings().flatten().any(|v| !v.is_finite()) {
            return Err("the word check holds a number that is not finite".into());
        }
        if self.takes.iter().any(Vec::is_empty) {
            return Err("the word check has a word with no takes".into());
        }
        Ok(())
    }
}

/// Where the check hears a candidate: the word model's unit embedding of the audio around
/// stream time `start` (see [`audio_range`]). The stream has had at least `AFTER` seconds past
/// `start`. `None` (no audio, or the model failed) counts as a cosine of the rule's centre:
/// the first stage decides alone.
pub trait Hear {
    fn hear(&mut self, start: f64) -> Option<Vec<f32>>;
}

/// The word model's unit embedding of `audio` (16 kHz, int16 scale); `None` if it failed.
pub fn embedding_of(model: &mut super::WordModel, audio: &[f32]) -> Option<Vec<f32>> {
    model.embed(audio).ok()
}

/// The sample range `[from, to)` of the 16 kHz stream the check hears for a candidate at
/// `start`.
pub fn audio_range(start: f64) -> (u64, u64) {
    let rate = crate::pipeline::frontend::SAMPLE_RATE as f64;
    let from = ((start - BEFORE) * rate).max(0.0) as u64;
    let to = ((start + AFTER) * rate).max(0.0) as u64;
    (from, to)
}

/// A candidate waiting for its peak and its cosine.
struct Open {
    first: Detection,
    w: usize,
    peak: f32,
    /// The cosine to the word's takes, once heard (`Some(None)`: asked, nothing heard), and
    /// whether an `_unknown_` take was closer.
    cosine: Option<Option<f32>>,
    unknown_closer: bool,
}

/// The check's streaming state (one per stream).
pub struct Check {
    rule: Rule,
    /// Per word, the threshold the fused score must reach.
    thresholds: Vec<f32>,
    open: Option<Open>,
}

impl Check {
    /// A check that fuses by `rule` and fires at `thresholds` (per word).
    pub fn new(rule: Rule, thresholds: Vec<f32>) -> Check {
        Check {
            rule,
            thresholds,
            open: None,
        }
    }

    /// Forgets an open candidate (a new stream).
    pub fn restart(&mut self) {
        self.open = None;
    }

    /// One window at `time`: `candidate` is what the candidate detector fired on it (with its
    /// word's index), `smoothed(w)` the detector's smoothed score of word `w` on it. Asks
    /// `cosine` at most once per candidate; returns the event if one fires now.
    pub fn step(
        &mut self,
        time: f64,
        candidate: Option<(usize, Detection)>,
        smoothed: impl Fn(usize) -> f32,
        enrolled: &Enrolled,
        ear: &mut dyn Hear,
    ) -> Option<Detection> {
        if self
            .open
            .as_ref()
            .is_some_and(|o| time > o.first.time + SPAN + 1e-6)
        {
            self.open = None;
        }
        if self.open.is_none() {
            let (w, first) = candidate?;
            self.open = Some(Open {
                peak: first.score,
                first,
                w,
                cosine: None,
                unknown_closer: false,
            });
        }
        let o = self.open.as_mut()?;
        o.peak = o.peak.max(smoothed(o.w));
        let threshold = self.thresholds[o.w];
        if o.cosine.is_none() && o.peak >= self.rule.sure(threshold) {
            return self.fire(time, threshold, None);
        }
        if o.cosine.is_none() && time >= o.first.time + AFTER - 1e-6 {
            o.hear(enrolled, ear, self.rule.margin);
        }
        let heard = o.cosine?;
        if o.unknown_closer {
            self.open = None;
            return None;
        }
        let c = heard.unwrap_or(self.rule.centre);
        if o.peak + self.rule.weight * (c - self.rule.centre) < threshold {
            return None;
        }
        self.fire(time, threshold, heard)
    }

    /// The open candidate's event, fired at `time` (with its cosine, if heard).
    fn fire(&mut self, time: f64, threshold: f32, heard: Option<f32>) -> Option<Detection> {
        let o = self.open.take()?;
        Some(Detection {
            time,
            score: o.peak,
            threshold,
            word_check: heard,
            ..o.first
        })
    }
}

impl Open {
    /// Hears the candidate's audio through `ear`: its best cosine to its word's takes, and
    /// whether an `_unknown_` take is closer than that by more than `margin`.
    fn hear(&mut self, enrolled: &Enrolled, ear: &mut dyn Hear, margin: f32) {
        let e = ear.hear(self.first.time);
        let takes = enrolled.takes.get(self.w).map_or(&[][..], |t| &t[..]);
        let c = e.as_ref().map(|e| best_similarity(e, takes));
        let u = e.as_ref().map(|e| best_similarity(e, &enrolled.unknown));
        self.unknown_closer = matches!((c, u), (Some(c), Some(u)) if u > c + margin);
        self.cosine = Some(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hears the same embedding for every candidate, and notes the starts asked.
    struct Fixed(Vec<f32>, Vec<f64>);
    impl Hear for Fixed {
        fn hear(&mut self, start: f64) -> Option<Vec<f32>> {
            self.1.push(start);
            Some(self.0.clone())
        }
    }

    /// A unit vector whose cosine with [`take`] is `c`.
    fn at_cosine(c: f32) -> Vec<f32> {
        let mut v = vec![0.0; DIM];
        (v[0], v[1]) = (c, (1.0 - c * c).sqrt());
        v
    }

    fn take() -> Vec<f32> {
        at_cosine(1.0)
    }

    /// The rule the tests reason with (weight 1, centre 0.2, margin 0.1), whatever the
    /// defaults are.
    fn rule() -> Rule {
        Rule {
            candidate: 0.2,
            weight: 1.0,
            centre: 0.2,
            margin: 0.1,
            floor: 0.0,
        }
    }

    fn enrolled(unknown: Vec<Vec<f32>>) -> Enrolled {
        Enrolled {
            model_sha256: String::new(),
            rule: rule(),
            takes: vec![vec![take()]],
            unknown,
        }
    }

    fn cand(score: f32, time: f64) -> Option<(usize, Detection)> {
        Some((
            0,
            Detection {
                word: "a".into(),
                score,
                time,
                threshold: 0.2,
                raw_score: score,
                similarity: 1.0,
                runner_up: None,
                word_check: None,
            },
        ))
    }

    /// Runs windows 80 ms apart with smoothed scores `scores`, a candidate at the first;
    /// returns the events' (time, score) and the cosine's asks.
    fn run(scores: &[f32], cosine: f32) -> (Vec<(f64, f32)>, Vec<f64>) {
        run_with(scores, cosine, &enrolled(vec![]))
    }

    fn run_with(scores: &[f32], cosine: f32, e: &Enrolled) -> (Vec<(f64, f32)>, Vec<f64>) {
        let mut check = Check::new(e.rule, vec![0.5]);
        let mut ear = Fixed(at_cosine(cosine), vec![]);
        let mut out = vec![];
        for (k, &s) in scores.iter().enumerate() {
            let t = 1.0 + k as f64 * 0.08;
            let c = if k == 0 { cand(s, t) } else { None };
            out.extend(
                check
                    .step(t, c, |_| s, e, &mut ear)
                    .map(|d| (d.time, d.score)),
            );
        }
        (out, ear.1)
    }

    #[test]
    fn an_event_fires_once_its_fused_score_is_sure_and_never_before_the_audio_is_heard() {
        // Peak 0.45 at once, cosine 0.5: fused 0.75 >= 0.5, but only when the cosine is
        // known, at the third window (0.24 s >= AFTER).
        let (ev, asks) = run(&[0.45, 0.3, 0.3, 0.3, 0.2], 0.5);
        assert_eq!(asks, [1.0]);
        assert_eq!(ev.len(), 1);
        assert!((ev[0].0 - 1.24).abs() < 1e-9 && ev[0].1 == 0.45, "{ev:?}");
        // Cosine 0.1 (fused = peak - 0.1): fires only when the peak reaches 0.6 within SPAN.
        let (ev, _) = run(&[0.25, 0.4, 0.5, 0.55, 0.61, 0.7, 0.9], 0.1);
        assert_eq!(ev.len(), 1);
        assert!((ev[0].0 - 1.32).abs() < 1e-9 && ev[0].1 == 0.61, "{ev:?}");
        // The peak comes too late (after SPAN): no event; the cosine was asked once.
        let (ev, asks) = run(&[0.25, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.9], 0.1);
        assert!(ev.is_empty());
        assert_eq!(asks.len(), 1);
    }

    #[test]
    fn a_candidate_more_like_an_unknown_take_than_its_word_is_dropped() {
        // Not sure before it is heard (0.6 < 0.5 + 0.2), sure once heard (0.6 + 0.3).
        let scores = [0.6, 0.6, 0.6, 0.6];
        // The audio is at 60 degrees from the word's take (cosine 0.5); an unknown take at
        // 60 + acos(c) degrees from the take has cosine c to the audio.
        let unknown = |x: f32, y: f32| {
            let mut u = vec![0.0; DIM];
            (u[0], u[1]) = (x, y);
            u
        };
        let fires = |u: Vec<f32>| run_with(&scores, 0.5, &enrolled(vec![u])).0.len();
        // Cosine 0.7: closer than the word's takes by more than the margin (0.1): dropped.
        assert_eq!(fires(unknown(-0.26847, 0.96329)), 0);
        // Cosine 0.55: closer, but within the margin; and one far away: kept.
        assert_eq!(fires(unknown(-0.44827, 0.89390)), 1);
        assert_eq!(fires(at_cosine(-0.9)), 1);
        assert_eq!(run(&scores, 0.5).0.len(), 1);
    }

    #[test]
    fn a_candidate_sure_before_it_is_heard_fires_at_once_unheard() {
        // Threshold 0.5, weight 1, centre 0.2: a peak of 0.7 passes at any cosine >= 0.
        assert!((rule().sure(0.5) - 0.7).abs() < 1e-6);
        // The defaults: weight 1.75, centre 0.255, floor 0.1.
        assert!((Rule::default().sure(0.5) - 0.77125).abs() < 1e-6);
        let e = enrolled(vec![take()]);
        let mut check = Check::new(e.rule, vec![0.5]);
        let mut ear = Fixed(at_cosine(0.9), vec![]);
        let first = check.step(1.0, cand(0.75, 1.0), |_| 0.75, &e, &mut ear);
        let d = first.expect("a sure candidate fires on its first window");
        assert_eq!((d.time, d.score, d.word_check), (1.0, 0.75, None));
        // Never heard: not even the unknown take (the word's own take here) could drop it.
        assert!(ear.1.is_empty());
        // A candidate that becomes sure later, before its audio is due, fires then.
        let (ev, asks) = run(&[0.3, 0.72, 0.3], 0.1);
        assert_eq!(ev, [(1.08, 0.72)]);
        assert!(asks.is_empty());
    }

    #[test]
    fn a_bad_rule_or_enrolment_is_refused() {
        assert!(Rule::default().check().is_ok());
        let bad = |r: Rule| r.check().unwrap_err();
        assert!(bad(Rule {
            candidate: 1.5,
            ..Rule::default()
        })
        .contains("candidate"));
        assert!(bad(Rule {
            weight: -1.0,
            ..Rule::default()
        })
        .contains("weight"));
        assert!(bad(Rule {
            centre: f32::NAN,
            ..Rule::default()
        })
        .contains("centre"));
        assert!(bad(Rule {
            floor: 2.0,
            ..Rule::default()
        })
        .contains("floor"));
        let e = Enrolled {
            model_sha256: String::new(),
            rule: Rule::default(),
            takes: vec![vec![vec![0.0; DIM]]],
            unknown: vec![],
        };
        assert!(e.check(1).is_ok());
        assert!(e.check(2).unwrap_err().contains("takes for 1 words"));
        let short = Enrolled {
            takes: vec![vec![vec![0.0; 3]]],
            ..e.clone()
        };
        assert!(short.check(1).unwrap_err().contains("2048"));
    }
}
