//! The template check: besides the network, a detection must come close enough (cosine
//! similarity, in the standardised space the network sees) to one of its word's windows from
//! the takes. The gate per word is set by leaving one take out at a time.

use std::collections::BTreeMap;

use super::examples::Examples;
use super::fit::Fitted;
use super::fold::Fold;
use super::TrainOptions;

/// One word window from the takes.
pub(super) struct Template {
    /// The take it comes from.
    take: Fold,
    /// The clip (augmented take) it comes from.
    clip: Option<usize>,
    /// The standardised features, scaled to unit length.
    pub unit: Vec<f32>,
}

/// `v` scaled to unit length.
fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|a| a / n).collect()
}

/// Per word, the templates: every word window at `rows` (from augmented takes too when
/// `opts.template_augmented`), standardised as `fitted` does.
pub(super) fn collect(
    ex: &Examples,
    rows: &[usize],
    fitted: &Fitted,
    n_words: usize,
    opts: &TrainOptions,
) -> Vec<Vec<Template>> {
    let mut templates: Vec<Vec<Template>> = (0..n_words).map(|_| Vec::new()).collect();
    for &r in rows {
        if ex.y[r] != 0 && (opts.template_augmented || ex.clean[r]) {
            let z: Vec<f32> = ex
                .features(r)
                .iter()
                .zip(&fitted.mean)
                .zip(&fitted.inv_std)
                .map(|((v, m), s)| (v - m) * s)
                .collect();
            templates[ex.y[r] - 1].push(Template {
                take: ex.fold[r],
                clip: ex.clip[r],
                unit: unit(&z),
            });
        }
    }
    templates
}

/// Templates compared with one template at a time (columns of the transposed matrix).
const BLOCK: usize = 256;

/// Leave-one-take-out: per clip, the best similarity of any of its windows to the templates of
/// the word's other takes (clips with no other take are left out).
///
/// Each similarity is summed in the same order as a plain dot product, so the result is that
/// of comparing pair by pair, bit for bit; but the templates are held transposed and compared
/// `BLOCK` at a time, so the sums run side by side in vector registers (10x faster).
fn best_similarities(templates: &[Template]) -> Vec<f32> {
    let n = templates.len();
    let d = templates.first().map_or(0, |t| t.unit.len());
    let mut columns = vec![0.0f32; n * d];
    for (b, t) in templates.iter().enumerate() {
        for (i, v) in t.unit.iter().enumerate() {
            columns[i * n + b] = *v;
        }
    }
    // The start of a sum, as `Iterator::sum` has it.
    let zero: f32 = std::iter::empty::<f32>().sum();
    let mut dots = vec![zero; BLOCK];
    let mut best: BTreeMap<Option<usize>, f32> = Default::default();
    for a in templates {
        let mut m = f32::NEG_INFINITY;
        for from in (0..n).step_by(BLOCK) {
            let dots = &mut dots[..BLOCK.min(n - from)];
            dots.fill(zero);
            for (i, x) in a.unit.iter().enumerate() {
                let row = &columns[i * n + from..][..dots.len()];
                for (s, y) in dots.iter_mut().zip(row) {
                    *s += x * y;
                }
            }
            for (s, b) in dots.iter().zip(&templates[from..]) {
                if b.take != a.take {
                    m = m.max(*s);
                }
            }
        }
        let e = best.entry(a.clip).or_insert(f32::NEG_INFINITY);
        *e = e.max(m);
    }
    best.into_values().filter(|v| v.is_finite()).collect()
}

/// The value at quantile `q` of `sorted` (nearest rank).
fn quantile(sorted: &[f32], q: f32) -> f32 {
    sorted[((sorted.len() - 1) as f32 * q).round() as usize]
}

/// A word's template gate: the `template_quantile` of its clips' best similarities, minus
/// `slack`; -1 (always passes) when the slack is negative or no take has another.
pub(super) fn gate(templates: &[Template], slack: f32, opts: &TrainOptions) -> f32 {
    if slack < 0.0 {
        return -1.0;
    }
    let mut v = best_similarities(templates);
    if v.is_empty() {
        return -1.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    quantile(&v, opts.template_quantile) - slack
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(take: usize, clip: usize, v: &[f32]) -> Template {
        Template {
            take: Fold::Take(take),
            clip: Some(clip),
            unit: unit(v),
        }
    }

    #[test]
    fn unit_vectors_have_length_one() {
        assert_eq!(unit(&[3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(unit(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn quantile_picks_the_nearest_rank() {
        let v = [0.1, 0.2, 0.3, 0.4, 0.5];
        assert_eq!(quantile(&v, 0.0), 0.1);
        assert_eq!(quantile(&v, 0.05), 0.1);
        assert_eq!(quantile(&v, 0.5), 0.3);
        assert_eq!(quantile(&v, 0.9), 0.5);
        assert_eq!(quantile(&v, 1.0), 0.5);
    }

    #[test]
    fn similarities_compare_with_other_takes_only() {
        // Take 0 (clips 0 and 1) points along x, take 1 (clip 2) is 60 degrees away.
        let ts = [
            template(0, 0, &[1.0, 0.0]),
            template(0, 1, &[1.0, 0.0]),
            template(1, 2, &[0.5, 0.75f32.sqrt()]),
        ];
        let best = best_similarities(&ts);
        assert_eq!(best.len(), 3);
        assert!(best.iter().all(|s| (s - 0.5).abs() < 1e-6), "{best:?}");
        // A clip's best window counts.
        let more = [
            template(0, 0, &[1.0, 0.0]),
            template(1, 2, &[1.0, 0.01]),
            template(1, 2, &[0.0, 1.0]),
        ];
        let best = best_similarities(&more);
        assert!(best.iter().all(|s| *s > 0.99), "{best:?}");
        // A single take has nothing to compare with.
        assert!(best_similarities(&ts[..2]).is_empty());
    }

    /// [`best_similarities`] pair by pair, as it was first written.
    fn best_similarities_pairwise(templates: &[Template]) -> Vec<f32> {
        let mut best: BTreeMap<Option<usize>, f32> = Default::default();
        for a in templates {
            let m = templates
                .iter()
                .filter(|b| b.take != a.take)
                .map(|b| a.unit.iter().zip(&b.unit).map(|(x, y)| x * y).sum::<f32>())
                .fold(f32::NEG_INFINITY, f32::max);
            let e = best.entry(a.clip).or_insert(f32::NEG_INFINITY);
            *e = e.max(m);
        }
        best.into_values().filter(|v| v.is_finite()).collect()
    }

    #[test]
    fn blocked_similarities_equal_the_pairwise_ones_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        // More templates than a block, in 4 takes, 3 windows a clip, some values zero.
        let ts: Vec<Template> = (0..600)
            .map(|k| {
                let v: Vec<f32> = (0..288)
                    .map(|i| match (k + i) % 7 {
                        0 => 0.0,
                        _ => rng.random_range(-1.0..1.0f32),
                    })
                    .collect();
                template(k % 4, k / 3, &v)
            })
            .collect();
        let want = best_similarities_pairwise(&ts);
        assert_eq!(want.len(), 200);
        let got = best_similarities(&ts);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
        assert!(best_similarities(&[]).is_empty());
    }

    #[test]
    fn gate_sits_below_the_quantile_by_the_slack() {
        let ts = [template(0, 0, &[1.0, 0.0]), template(1, 1, &[0.6, 0.8])];
        let opts = TrainOptions::default();
        let g = gate(&ts, opts.template_slack, &opts);
        assert!((g - (0.6 - opts.template_slack)).abs() < 1e-6, "{g}");
        let off = TrainOptions {
            template_slack: -1.0,
            ..TrainOptions::default()
        };
        assert_eq!(gate(&ts, off.template_slack, &off), -1.0);
        assert_eq!(gate(&ts[..1], opts.template_slack, &opts), -1.0);
    }
}
