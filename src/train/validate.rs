//! Cross-validation for the training report: folds by take, so that every take is once heard by
//! a head that never trained on it.

use std::collections::HashMap;

use super::examples::Examples;
use super::fold::Fold;
use super::{head_from, TrainOptions};
use crate::pipeline::head::{Head, Scorer, Voices};
use crate::train::dataset::Dataset;

/// What cross-validation measured.
#[derive(Default, Debug, PartialEq)]
pub(super) struct CrossValidation {
    /// Held-out clean takes whose best window named their word at or above the threshold.
    pub hits: usize,
    pub takes: usize,
    /// Held-out "none" windows at or above the threshold.
    pub fires: usize,
    pub negatives: usize,
}

impl CrossValidation {
    /// Recall of held-out takes.
    pub fn recall(&self) -> f32 {
        self.hits as f32 / self.takes.max(1) as f32
    }

    /// False-fire rate of held-out negative windows.
    pub fn false_fire_rate(&self) -> f32 {
        self.fires as f32 / self.negatives.max(1) as f32
    }
}

/// The folds' counts added up.
impl<'a> std::iter::Sum<&'a CrossValidation> for CrossValidation {
    fn sum<I: Iterator<Item = &'a CrossValidation>>(folds: I) -> CrossValidation {
        folds.fold(CrossValidation::default(), |a, f| CrossValidation {
            hits: a.hits + f.hits,
            takes: a.takes + f.takes,
            fires: a.fires + f.fires,
            negatives: a.negatives + f.negatives,
        })
    }
}

/// Folds for `ds`: as many as the word with fewest takes has, at most 5.
pub(super) fn fold_count(ds: &Dataset) -> usize {
    ds.words
        .iter()
        .map(|(_, t)| t.len())
        .min()
        .unwrap_or(1)
        .min(5)
}

/// The head on all the examples and, for each of `folds` folds (none when 0), a head without
/// that fold's takes, scored on the held-out windows: the figures and the folds' heads. The
/// heads are fitted on every core, the whole one first (the longest); each fit draws from its
/// own random stream, so they are the same whatever the threads do.
pub(super) fn head_and_folds(
    ex: &Examples,
    words: (&[String], &[Voices]),
    base_sha: &str,
    opts: &TrainOptions,
    folds: usize,
) -> (Head, CrossValidation, Vec<Head>) {
    let all: Vec<usize> = (0..ex.len()).collect();
    let splits: Vec<(Vec<usize>, Vec<usize>)> = (0..folds)
        .map(|f| (0..ex.len()).partition(|&r| ex.fold[r].held_out_in(f, folds)))
        .collect();
    // A fold's head is scored, and kept in an ensemble, by its network alone: its template
    // gates would be computed for nothing.
    let no_gates = TrainOptions {
        template_slack: -1.0,
        anyone_slack: -1.0,
        ..opts.clone()
    };
    use rayon::prelude::*;
    let mut heads: Vec<(Head, CrossValidation)> = (0..folds + 1)
        .into_par_iter()
        .map(|k| {
            let (rows, opts) = match k {
                0 => (&all, opts),
                _ => (&splits[k - 1].1, &no_gates),
            };
            let head = head_from(ex, rows, words, base_sha, opts);
            let mut cv = CrossValidation::default();
            if k > 0 {
                score_held_out(ex, &head, &splits[k - 1].0, opts.threshold, &mut cv);
            }
            (head, cv)
        })
        .collect();
    let (whole, _) = heads.remove(0);
    let cv = heads.iter().map(|(_, fold)| fold).sum();
    (whole, cv, heads.into_iter().map(|(h, _)| h).collect())
}

/// The word with the highest probability (0-based) and that probability, from a head's
/// probabilities ("none" first); (0, 0) when no word beats 0.
fn best_word(p: &[f32]) -> (usize, f32) {
    p[1..]
        .iter()
        .enumerate()
        .fold((0, 0.0f32), |a, (i, &v)| if v > a.1 { (i, v) } else { a })
}

/// Adds the held-out rows to `cv`: each "none" window that reaches `threshold` is a fire; each
/// clean take is a hit when its best window names its word at or above `threshold`.
fn score_held_out(
    ex: &Examples,
    head: &Head,
    held: &[usize],
    threshold: f32,
    cv: &mut CrossValidation,
) {
    let mut take_best: HashMap<(usize, Fold), f32> = Default::default();
    let mut scorer = Scorer::new(head);
    for &r in held {
        let (word, p) = best_word(head.probabilities_with(&mut scorer, ex.features(r)));
        if ex.y[r] == 0 {
            cv.negatives += 1;
            if p >= threshold {
                cv.fires += 1;
            }
        } else if ex.clean[r] {
            let score = if word + 1 == ex.y[r] { p } else { 0.0 };
            let e = take_best.entry((ex.y[r], ex.fold[r])).or_insert(0.0);
            *e = e.max(score);
        }
    }
    cv.takes += take_best.len();
    cv.hits += take_best.values().filter(|&&s| s >= threshold).count();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::dataset::Take;

    #[test]
    fn folds_hold_out_each_take_once_and_never_the_shared_windows() {
        let folds = 3;
        for k in 0..7 {
            let held: Vec<usize> = (0..folds)
                .filter(|&f| Fold::Take(k).held_out_in(f, folds))
                .collect();
            assert_eq!(held, vec![k % folds]);
        }
        assert!((0..folds).all(|f| !Fold::Always.held_out_in(f, folds)));
    }

    #[test]
    fn fold_count_follows_the_fewest_takes_up_to_five() {
        let takes = |n: usize| {
            vec![
                Take {
                    path: Default::default(),
                    samples: vec![]
                };
                n
            ]
        };
        let ds = |ns: &[usize]| Dataset {
            words: ns.iter().map(|&n| ("w".to_string(), takes(n))).collect(),
            ..Dataset::default()
        };
        assert_eq!(fold_count(&ds(&[4, 3, 6])), 3);
        assert_eq!(fold_count(&ds(&[9, 8])), 5);
        assert_eq!(fold_count(&ds(&[])), 1);
    }

    #[test]
    fn best_word_skips_none_and_needs_more_than_zero() {
        assert_eq!(best_word(&[0.7, 0.1, 0.2]), (1, 0.2));
        assert_eq!(best_word(&[0.1, 0.5, 0.4]), (0, 0.5));
        assert_eq!(best_word(&[1.0, 0.0, 0.0]), (0, 0.0));
    }

    #[test]
    fn rates_divide_by_at_least_one() {
        let cv = CrossValidation {
            hits: 3,
            takes: 4,
            fires: 0,
            negatives: 0,
        };
        assert_eq!(cv.recall(), 0.75);
        assert_eq!(cv.false_fire_rate(), 0.0);
    }

    #[test]
    fn folds_add_up_count_by_count() {
        let fold = |hits, takes, fires, negatives| CrossValidation {
            hits,
            takes,
            fires,
            negatives,
        };
        let folds = [fold(1, 2, 3, 40), fold(2, 2, 0, 50)];
        assert_eq!(folds.iter().sum::<CrossValidation>(), fold(3, 4, 3, 90));
        assert_eq!(
            [].iter().sum::<CrossValidation>(),
            CrossValidation::default()
        );
    }
}
