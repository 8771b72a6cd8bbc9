//! Per-word score calibration on the negative bank: one threshold does not suit every word (a
//! word that sounds like much everyday speech scores high on it more often), so each word's
//! scores are raised to a power that puts its bank score at a chosen false-fire rate on the
//! head's threshold. A loose word's scores fall, a tight word's rise; the order of one word's
//! scores, and so its curve over thresholds, does not change.

use crate::pipeline::embedding::DIM;
use crate::pipeline::head::{Head, Scorer};

/// Windows whose network score is below this never pass a threshold after calibration, so
/// their template check is not computed.
const FLOOR: f32 = 0.02;
/// The score powers are kept within `1 / MAX_POWER ..= MAX_POWER`.
pub const MAX_POWER: f32 = 3.0;

/// Per word, the score that `rate` of the bank's windows reach (smoothed as the detector
/// smooths, through the template check), every `step`-th window.
pub(super) fn bank_quantiles(head: &Head, bank: &[f32], rate: f32, step: usize) -> Vec<f32> {
    let n_words = head.labels.len();
    let smoothing = head.detector.smoothing.max(1);
    let mut scorer = Scorer::new(head);
    let mut recent = vec![0.0f32; n_words * smoothing];
    let mut smoothed: Vec<Vec<f32>> = vec![Vec::new(); n_words];
    let n = bank.len() / DIM;
    let mut b = head.context - 1;
    let mut k = 0;
    while b < n {
        let feature = &bank[(b + 1 - head.context) * DIM..(b + 1) * DIM];
        let slot = k % smoothing;
        for (w, s) in scorer.gated_scores(head, feature, FLOOR).iter().enumerate() {
            recent[slot * n_words + w] = *s;
        }
        k += 1;
        if k >= smoothing {
            for (w, out) in smoothed.iter_mut().enumerate() {
                let sum: f32 = (0..smoothing).map(|i| recent[i * n_words + w]).sum();
                out.push(sum / smoothing as f32);
            }
        }
        b += step.max(1);
    }
    smoothed
        .into_iter()
        .map(|mut v| exceeded_by(&mut v, rate))
        .collect()
}

/// The value that a share `rate` of `v` reaches (0 for no values).
fn exceeded_by(v: &mut [f32], rate: f32) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| b.total_cmp(a));
    let i = ((v.len() as f32 * rate) as usize).min(v.len() - 1);
    v[i]
}

/// The power that maps bank score `q` onto `threshold`: `q^p = threshold`, within
/// `1 / MAX_POWER ..= MAX_POWER` (1 when `q` says nothing: 0 or 1).
pub(super) fn power_for(q: f32, threshold: f32) -> f32 {
    if !(q > 0.0 && q < 1.0 && threshold > 0.0 && threshold < 1.0) {
        return 1.0;
    }
    (threshold.ln() / q.ln()).clamp(1.0 / MAX_POWER, MAX_POWER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_map_the_bank_score_onto_the_threshold() {
        let p = power_for(0.7, 0.5);
        assert!((0.7f32.powf(p) - 0.5).abs() < 1e-5, "{p}");
        assert!(p > 1.0, "a loose word's scores fall");
        let p = power_for(0.3, 0.5);
        assert!((0.3f32.powf(p) - 0.5).abs() < 1e-5 && p < 1.0, "{p}");
        assert_eq!(power_for(0.999, 0.5), MAX_POWER);
        assert_eq!(power_for(1e-6, 0.5), 1.0 / MAX_POWER);
        assert_eq!(power_for(0.0, 0.5), 1.0);
        assert_eq!(power_for(1.0, 0.5), 1.0);
    }

    #[test]
    fn exceeded_by_counts_from_the_top() {
        let mut v: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        assert_eq!(exceeded_by(&mut v, 0.0), 0.99);
        assert_eq!(exceeded_by(&mut v, 0.1), 0.89);
        assert_eq!(exceeded_by(&mut v, 1.0), 0.0);
        assert_eq!(exceeded_by(&mut [], 0.1), 0.0);
    }
}
