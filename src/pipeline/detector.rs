//! Stage 5: the detector turns per-window head scores into events: smoothing over consecutive
//! windows, a per-word threshold, and a refractory time so one utterance gives one event.

use serde::{Deserialize, Serialize};

/// Detector settings. Stored in the head file as defaults; the config may override them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DetectorSettings {
    /// Score threshold per word, in the head's label order.
    pub thresholds: Vec<f32>,
    /// Number of consecutive windows averaged (1 = no smoothing).
    pub smoothing: usize,
    /// Seconds after an event during which no other event fires.
    pub refractory: f32,
}

/// Windows averaged, at most.
pub const MAX_SMOOTHING: usize = 50;
/// Refractory seconds, at most.
pub const MAX_REFRACTORY: f32 = 60.0;

impl DetectorSettings {
    /// Checks the settings make sense for `words` words; the reason if not.
    pub fn check(&self, words: usize) -> std::result::Result<(), String> {
        if self.thresholds.len() != words {
            return Err(format!(
                "detector has {} thresholds for {words} words",
                self.thresholds.len()
            ));
        }
        if let Some(t) = self.thresholds.iter().find(|t| !(0.0..=1.0).contains(*t)) {
            return Err(format!("detector threshold {t} is not between 0 and 1"));
        }
        if !(1..=MAX_SMOOTHING).contains(&self.smoothing) {
            return Err(format!(
                "detector smoothing {} is not between 1 and {MAX_SMOOTHING} windows",
                self.smoothing
            ));
        }
        if !(0.0..=MAX_REFRACTORY).contains(&self.refractory) {
            return Err(format!(
                "detector refractory time {} is not between 0 and {MAX_REFRACTORY} s",
                self.refractory
            ));
        }
        Ok(())
    }

    /// These settings with every word's threshold set to `threshold`.
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.thresholds.fill(threshold);
        self
    }
}

/// One detection, with the evidence that helps tune a threshold.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Detection {
    pub word: String,
    /// Smoothed score that crossed the threshold.
    pub score: f32,
    /// Stream time (s) at which the detection fired.
    pub time: f64,
    /// The threshold it crossed.
    pub threshold: f32,
    /// The raw (unsmoothed) head score of the firing window.
    pub raw_score: f32,
    /// Similarity to the closest enrolled take (the template check), when the head has one.
    pub similarity: f32,
    /// Best other word and its score: how close a confusion was.
    pub runner_up: Option<(String, f32)>,
    /// The word check's cosine between the event's audio and the word's takes, when the check
    /// decided the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_check: Option<f32>,
}

/// Streaming detector state. Allocation-free per window once built.
pub struct Detector {
    settings: DetectorSettings,
    labels: Vec<String>,
    /// Ring of the last `smoothing` score vectors.
    history: Vec<f32>,
    filled: usize,
    pos: usize,
    /// Stream time before which nothing fires.
    quiet_until: f64,
}

impl Detector {
    pub fn new(labels: Vec<String>, settings: DetectorSettings) -> Self {
        let n = labels.len();
        let s = settings.smoothing.max(1);
        Detector {
            history: vec![0.0; n * s],
            labels,
            settings,
            filled: 0,
            pos: 0,
            quiet_until: f64::NEG_INFINITY,
        }
    }

    pub fn settings(&self) -> &DetectorSettings {
        &self.settings
    }

    /// Feeds the head's per-word scores and template similarities for the window ending at
    /// `time`; returns a detection if one fires.
    pub fn push(&mut self, time: f64, scores: &[f32], similarity: &[f32]) -> Option<Detection> {
        let n = self.labels.len();
        let s = self.settings.smoothing.max(1);
        self.history[self.pos * n..(self.pos + 1) * n].copy_from_slice(scores);
        self.pos = (self.pos + 1) % s;
        self.filled = (self.filled + 1).min(s);
        if time < self.quiet_until {
            return None;
        }
        let mut best: Option<(usize, f32)> = None;
        let mut runner: Option<(usize, f32)> = None;
        for w in 0..n {
            let avg = (0..self.filled)
                .map(|k| self.history[k * n + w])
                .sum::<f32>()
                / self.filled as f32;
            if best.is_none_or(|(_, b)| avg > b) {
                runner = best;
                best = Some((w, avg));
            } else if runner.is_none_or(|(_, r)| avg > r) {
                runner = Some((w, avg));
            }
        }
        let (w, score) = best?;
        let threshold = self.settings.thresholds[w];
        if score < threshold {
            return None;
        }
        self.quiet_until = time + self.settings.refractory as f64;
        Some(Detection {
            word: self.labels[w].clone(),
            score,
            time,
            threshold,
            raw_score: scores[w],
            similarity: similarity.get(w).copied().unwrap_or(f32::NAN),
            runner_up: runner.map(|(r, sc)| (self.labels[r].clone(), sc)),
            word_check: None,
        })
    }

    /// Where `word` is in the detector's labels.
    pub fn word_index(&self, word: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == word)
    }

    /// Word `w`'s smoothed score at the last window pushed.
    pub fn smoothed(&self, w: usize) -> f32 {
        let n = self.labels.len();
        let sum: f32 = (0..self.filled).map(|k| self.history[k * n + w]).sum();
        sum / self.filled.max(1) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(smoothing: usize, refractory: f32) -> Detector {
        Detector::new(
            vec!["a".into(), "b".into()],
            DetectorSettings {
                thresholds: vec![0.5, 0.9],
                smoothing,
                refractory,
            },
        )
    }

    #[test]
    fn fires_once_per_utterance_within_refractory_time() {
        let mut d = det(1, 1.0);
        let fired: Vec<f64> = (0..30)
            .filter_map(|i| {
                d.push(i as f64 * 0.08, &[0.8, 0.0], &[1.0, 1.0])
                    .map(|x| x.time)
            })
            .collect();
        // 30 windows over 2.4 s, refractory 1 s: fires at 0, then at the first window >= 1.0 s, etc.
        assert_eq!(fired.len(), 3, "{fired:?}");
    }

    #[test]
    fn per_word_thresholds_and_smoothing() {
        let mut d = det(2, 0.5);
        // b at 0.85 is below its own threshold 0.9 even though above a's.
        assert!(d.push(0.0, &[0.0, 0.85], &[]).is_none());
        // a single spike to 1.0 averaged with 0.0 gives 0.5: fires (>= 0.5).
        let e = d.push(0.08, &[1.0, 0.0], &[]).unwrap();
        assert_eq!(e.word, "a");
        assert!((e.score - 0.5).abs() < 1e-6);
        assert_eq!(e.runner_up.as_ref().unwrap().0, "b");
    }
}
