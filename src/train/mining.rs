//! Hard-negative mining on the bank: of the many synthetic-speech windows, train on those a
//! first head mistakes most for a word, and on as many random ones.

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::examples::Examples;
use super::fold::Source;
use super::{head_from, TrainOptions};
use crate::pipeline::head::{Scorer, Voices};

/// Fits once on everything else plus `mine` random bank windows, then keeps the `mine` bank
/// windows that head likes most plus `mine` random others. Returns the rows to train on (all
/// rows when mining is off or the bank is small).
pub(super) fn mine_bank(
    ex: &Examples,
    words: (&[String], &[Voices]),
    base_sha: &str,
    opts: &TrainOptions,
) -> Vec<usize> {
    let (bank, mut rest): (Vec<usize>, Vec<usize>) =
        (0..ex.len()).partition(|&r| ex.source[r] == Source::Bank);
    if opts.mine == 0 || bank.len() <= 2 * opts.mine {
        rest.extend(bank);
        return rest;
    }
    let mut rng = SmallRng::seed_from_u64(opts.seed ^ 0x3113);
    let mut shuffled = bank.clone();
    shuffled.shuffle(&mut rng);
    let mut first = rest.clone();
    first.extend_from_slice(&shuffled[..opts.mine]);
    let no_templates = TrainOptions {
        template_slack: -1.0,
        anyone_slack: -1.0,
        ..opts.clone()
    };
    let head = head_from(ex, &first, words, base_sha, &no_templates);
    // Scored on every core, one scorer per task; each score depends on its window alone.
    use rayon::prelude::*;
    let scores: Vec<f32> = bank
        .par_iter()
        .map_init(
            || Scorer::new(&head),
            |scorer, &r| {
                let p = head.probabilities_with(scorer, ex.features(r));
                p[1..].iter().copied().fold(0.0, f32::max)
            },
        )
        .collect();
    let scored: Vec<usize> = hardest_first(&(0..bank.len()).collect::<Vec<_>>(), |i| scores[i])
        .into_iter()
        .map(|i| bank[i])
        .collect();
    let (hard, easy) = scored.split_at(opts.mine);
    rest.extend_from_slice(hard);
    let mut easy = easy.to_vec();
    easy.shuffle(&mut rng);
    rest.extend_from_slice(&easy[..opts.mine.min(easy.len())]);
    rest.sort_unstable();
    rest
}

/// `rows` sorted by `score`, highest first (a stable sort: ties keep their order).
fn hardest_first(rows: &[usize], score: impl Fn(usize) -> f32) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = rows.iter().map(|&r| (score(r), r)).collect();
    scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
    scored.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardest_first_sorts_by_score_and_keeps_ties_in_order() {
        let scores = [0.2, 0.9, 0.2, 0.5];
        assert_eq!(
            hardest_first(&[0, 1, 2, 3], |r| scores[r]),
            vec![1, 3, 0, 2]
        );
    }
}
