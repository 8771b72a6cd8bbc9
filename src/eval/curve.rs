//! Scores at many thresholds, for `hark eval --sweep` (rows of the table) and the DET-style
//! curve of `--plot` (points of the picture): the head scores each stream once, and one
//! detector per threshold reads those scores, as [`Decision`](crate::pipeline::Decision) would.

use crate::pipeline::decision::{Unheard, Verdict};
use crate::pipeline::detector::Detection;
use crate::pipeline::head::{Head, Scorer};
use crate::pipeline::word_check::check::Hear;

use super::{score, Evaluation, Timeline, Truth};

/// The label of a curve point in the results: the table leaves these rows out.
pub fn curve_label(threshold: f32) -> String {
    format!("curve {threshold}")
}

/// Is this results label a curve point?
pub fn is_curve_label(label: &str) -> bool {
    label.starts_with("curve ")
}

/// The thresholds `hark eval --plot` scores: fine near both ends, where the false accepts
/// and the recall change fastest.
pub fn curve_thresholds() -> Vec<f32> {
    let mut t = vec![0.01, 0.02, 0.05];
    t.extend((2..=18).map(|i| i as f32 * 0.05));
    t.extend([0.95, 0.97, 0.98, 0.99, 0.995, 0.999]);
    t
}

/// The decisions over a stream's embeddings at each of `thresholds`, the head's other
/// detector settings kept, the word check (when the head has one) hearing through `heard`
/// (`None`: the detector alone).
pub(super) fn decide_at(
    head: &Head,
    embs: &Timeline,
    thresholds: &[f32],
    mut heard: Option<&mut dyn Hear>,
) -> Vec<Vec<Detection>> {
    let checked = heard.is_some();
    let mut verdicts: Vec<Verdict> = thresholds
        .iter()
        .map(|&t| Verdict::new(head, head.detector.clone().with_threshold(t), checked))
        .collect();
    let mut unheard = Unheard;
    let mut out = vec![Vec::new(); thresholds.len()];
    each_scored(head, embs, |time, sc| {
        for (v, o) in verdicts.iter_mut().zip(&mut out) {
            let h: &mut dyn Hear = match heard.as_deref_mut() {
                Some(h) => h,
                None => &mut unheard,
            };
            o.extend(v.push(head, time, &sc.scores, &sc.similarity, h));
        }
    });
    out
}

/// The head's scores over a stream's embeddings, as [`Decision`](crate::pipeline::Decision)
/// makes them: `each` sees the scorer after every window that has scores (a window the gate
/// skipped scores zero and restarts the head's context).
pub(super) fn each_scored(head: &Head, embs: &Timeline, mut each: impl FnMut(f64, &Scorer)) {
    let mut sc = Scorer::new(head);
    for (time, e) in embs {
        match e {
            Some(e) => {
                if !sc.push(head, e) {
                    continue;
                }
            }
            None => {
                sc.reset();
                sc.scores.fill(0.0);
            }
        }
        each(*time, &sc);
    }
}

impl Evaluation<'_> {
    /// Scores a scenario's stream at each `--sweep` threshold and each curve threshold and
    /// records them under the scenario.
    pub(super) fn sweep(
        &mut self,
        scenario: &str,
        head: &Head,
        (embs, heard): (&Timeline, &mut dyn Hear),
        truth: &[Truth],
        seconds: f64,
    ) {
        let opts = self.opts;
        let thresholds: Vec<f32> = opts.sweep.iter().chain(&opts.curve).copied().collect();
        if thresholds.is_empty() {
            return;
        }
        let labels = opts
            .sweep
            .iter()
            .map(|t| format!("threshold {t}"))
            .chain(opts.curve.iter().map(|&t| curve_label(t)));
        for (label, dets) in labels.zip(decide_at(head, embs, &thresholds, Some(heard))) {
            self.record(scenario, &label, &score(&dets, truth, seconds));
        }
    }
}
