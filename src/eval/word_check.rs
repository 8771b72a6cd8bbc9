//! `hark eval --word-check`: each scenario again with the word check as a second stage (see
//! [`crate::pipeline::word_check`]), under its own name with " + word check". A candidate is a
//! detection at the rule's candidate threshold; it is kept when its peak score plus the rule's
//! weight times (its best cosine to its word's takes - the rule's centre) reaches the word's
//! threshold (or the swept one). The rule is the one `tests/probes/word_check.py` chose on seeds 1-8.

use super::candidates::{levels, with_levels};
use super::score::score;
use super::streams::Stream;
use super::{curve_label, Evaluation, Timeline};
use crate::pipeline::detector::Detection;
use crate::pipeline::head::Head;
use crate::pipeline::word_check::{best_similarity, WordModel};
use crate::train::dataset::Dataset;
use crate::Result;

/// The rule of the check (`hark eval --word-check [--word-check-rule CAND,WEIGHT,CENTRE]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    /// The threshold of the first stage's candidates (one of [`levels`]).
    pub candidate: f32,
    /// How much the cosine counts, and the cosine that counts as nothing either way: set so
    /// that the words' own thresholds fall where the probe's best points were (cosines of this
    /// model run from about 0.2 for another word to 0.9 for the same take).
    pub weight: f32,
    pub centre: f32,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            candidate: 0.20,
            weight: 1.0,
            centre: 0.2,
        }
    }
}

/// The audio the check hears: this long before the detection and after it (1.5 s in all).
const BEFORE: f64 = 1.3;
const AFTER: f64 = 0.2;

/// Each candidate of `head` on `embs` with its fused score.
pub(super) fn fused(
    model: &mut WordModel,
    rule: Rule,
    head: &Head,
    embs: &Timeline,
    stream: &Stream,
    enrol: &Dataset,
) -> Result<Vec<(Detection, f32)>> {
    let mut takes = std::collections::HashMap::new();
    for (word, ts) in &enrol.words {
        let e: Result<Vec<Vec<f32>>> = ts.iter().map(|t| model.embed(&t.samples)).collect();
        takes.insert(word.clone(), e?);
    }
    let k = levels()
        .iter()
        .position(|&l| (l - rule.candidate).abs() < 1e-6)
        .unwrap_or(0);
    let candidates = with_levels(head, embs).swap_remove(k);
    let rate = crate::pipeline::frontend::SAMPLE_RATE as f64;
    let mut out = Vec::with_capacity(candidates.len());
    for (d, level) in candidates {
        let from = ((d.time - BEFORE) * rate).max(0.0) as usize;
        let to = (((d.time + AFTER) * rate) as usize).min(stream.samples.len());
        let e = model.embed(&stream.samples[from.min(to)..to])?;
        let sim = takes.get(&d.word).map_or(-1.0, |t| best_similarity(&e, t));
        out.push((d, level + rule.weight * (sim - rule.centre)));
    }
    Ok(out)
}

impl Evaluation<'_> {
    /// With `--word-check`, scores `scenario` again with the check, at each word's threshold,
    /// each `--sweep` threshold and each curve threshold.
    pub(super) fn word_check(
        &mut self,
        scenario: &str,
        head: &Head,
        embs: &Timeline,
        stream: &Stream,
        enrol: &Dataset,
    ) -> Result<()> {
        let Some(model) = self.word_model.as_mut() else {
            return Ok(());
        };
        let scored = fused(model, self.opts.word_check_rule, head, embs, stream, enrol)?;
        let name = format!("{scenario} + word check");
        let (truth, seconds) = (&stream.truth, stream.seconds());
        let threshold_of = |w: &str| {
            let i = head.labels.iter().position(|l| l == w).unwrap_or(0);
            head.detector.thresholds.get(i).copied().unwrap_or(0.5)
        };
        let kept = |keep: &dyn Fn(&Detection, f32) -> bool| -> Vec<Detection> {
            scored
                .iter()
                .filter(|(d, s)| keep(d, *s))
                .map(|(d, _)| d.clone())
                .collect()
        };
        let default = kept(&|d, s| s >= threshold_of(&d.word));
        self.record(&name, "default", &score(&default, truth, seconds));
        let opts = self.opts;
        let rows = opts
            .sweep
            .iter()
            .map(|&t| (format!("threshold {t}"), t))
            .chain(opts.curve.iter().map(|&t| (curve_label(t), t)));
        for (label, t) in rows {
            self.record(&name, &label, &score(&kept(&|_, s| s >= t), truth, seconds));
        }
        Ok(())
    }
}
