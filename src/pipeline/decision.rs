//! The decision half of the pipeline: embeddings -> head scores -> detector -> (word check) ->
//! events.

use std::sync::Arc;

use crate::pipeline::detector::{Detection, Detector, DetectorSettings};
use crate::pipeline::head::{Head, Scorer};
use crate::pipeline::word_check::check::{Check, Hear};

/// The detector, and the word check after it when there is one: per-window scores in, events
/// out.
pub struct Verdict {
    detector: Detector,
    check: Option<Check>,
    /// The settings events fire at (the detector's own are the candidates' when checked).
    settings: DetectorSettings,
}

impl Verdict {
    /// A verdict at `settings` for `head`'s words; with the word check when `checked` and the
    /// head has one.
    pub fn new(head: &Head, settings: DetectorSettings, checked: bool) -> Verdict {
        let labels = head.labels.clone();
        match head.word_check.as_ref().filter(|_| checked) {
            Some(wc) => Verdict {
                detector: Detector::new(labels, wc.rule.candidate_settings(&settings)),
                check: Some(Check::new(wc.rule, settings.thresholds.clone())),
                settings,
            },
            None => Verdict {
                detector: Detector::new(labels, settings.clone()),
                check: None,
                settings,
            },
        }
    }

    /// The settings events fire at.
    pub fn settings(&self) -> &DetectorSettings {
        &self.settings
    }

    /// Is the word check on?
    pub fn checked(&self) -> bool {
        self.check.is_some()
    }

    /// The head's per-word `scores` and template `similarity` for the window ending at `time`;
    /// the event, if one fires. `ear` hears each candidate of the check once.
    pub fn push(
        &mut self,
        head: &Head,
        time: f64,
        scores: &[f32],
        similarity: &[f32],
        ear: &mut dyn Hear,
    ) -> Option<Detection> {
        let d = self.detector.push(time, scores, similarity);
        let (Some(check), Some(wc)) = (&mut self.check, &head.word_check) else {
            return d;
        };
        let det = &self.detector;
        let candidate = d.and_then(|d| Some((det.word_index(&d.word)?, d)));
        check.step(time, candidate, |w| det.smoothed(w), wc, ear)
    }
}

/// A [`Hear`] with no audio: the check's cosine counts as nothing either way.
pub struct Unheard;

impl Hear for Unheard {
    fn hear(&mut self, _: f64) -> Option<Vec<f32>> {
        None
    }
}

/// The decision half: embeddings -> head scores -> [`Verdict`].
pub struct Decision {
    head: Arc<Head>,
    scorer: Scorer,
    verdict: Verdict,
}

impl Decision {
    /// `settings` overrides the head's own detector defaults when given; `checked` turns the
    /// word check on (when the head has one).
    pub fn new(head: Arc<Head>, settings: Option<DetectorSettings>, checked: bool) -> Self {
        let settings = settings.unwrap_or_else(|| head.detector.clone());
        Decision {
            scorer: Scorer::new(&head),
            verdict: Verdict::new(&head, settings, checked),
            head,
        }
    }

    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    /// Is the word check on?
    pub fn checked(&self) -> bool {
        self.verdict.checked()
    }

    /// The settings events fire at.
    pub fn settings(&self) -> &DetectorSettings {
        self.verdict.settings()
    }

    /// Starts a new stream: forgets the recent embeddings, the smoothing, the refractory time
    /// and an open candidate; keeps the head and the detector settings.
    pub fn restart(&mut self) {
        let checked = self.verdict.checked();
        self.scorer = Scorer::new(&self.head);
        self.verdict = Verdict::new(&self.head, self.verdict.settings().clone(), checked);
    }

    /// Scores one embedding (the window ending at `time`) and returns a detection if one fires.
    /// `None` (a window the gate skipped) scores zero and restarts the head's context.
    /// `ear` hears a candidate's audio for the word check.
    pub fn push(
        &mut self,
        time: f64,
        embedding: Option<&[f32]>,
        ear: &mut dyn Hear,
    ) -> Option<Detection> {
        match embedding {
            Some(e) => {
                if !self.scorer.push(&self.head, e) {
                    return None;
                }
            }
            None => {
                self.scorer.reset();
                self.scorer.scores.fill(0.0);
            }
        }
        let s = &self.scorer;
        self.verdict
            .push(&self.head, time, &s.scores, &s.similarity, ear)
    }
}
