//! The gradient fit: a small softmax network (linear, or with one ReLU hidden layer) on
//! standardised window features, trained with Adam on a weighted cross-entropy.
//!
//! This file holds what every fit shares (the standardisation, the sample weights, the passes
//! over shuffled batches); `linear` fits a linear head row by row, `network` any network with
//! matrices.

use ndarray::{Array1, Array2};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

mod linear;
mod network;

use super::examples::Examples;
use super::fold::{Fold, SOURCES};
use super::TrainOptions;
use crate::pipeline::embedding::DIM;
use crate::pipeline::head::{Layer, Voices};
use linear::Linear;
use network::{loss_gradient, Adam, Network};

/// Windows per gradient step.
const BATCH: usize = 256;

/// A fitted network, as the head stores it.
pub(super) struct Fitted {
    /// Feature means and inverse standard deviations (the standardisation).
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
    pub layers: Vec<Layer>,
}

/// Fits the softmax network on the examples at `rows`: `epochs` passes in shuffled batches of
/// `BATCH`, each batch one Adam step (learning rate 1e-2, or 3e-3 with a hidden layer) on the
/// weighted cross-entropy plus `opts.l2` weight decay and `pull[c] / 2` times the squared
/// distance between the output weights of class `c` and of "none" (class 0; see
/// [`class_pull`]; one value per class, so `pull.len()` is the number of classes). One random
/// stream draws the initial weights, then each pass's order.
pub(super) fn fit(ex: &Examples, rows: &[usize], pull: &[f32], opts: &TrainOptions) -> Fitted {
    let (d, n_classes) = (opts.context * DIM, pull.len());
    let (mean, inv_std) = moments(ex, rows, d);
    let data = Data {
        ex,
        rows,
        classes: rows.iter().map(|&r| ex.y[r]).collect(),
        weights: sample_weights(
            ex,
            rows,
            n_classes,
            &source_weights(opts),
            opts.anyone_synth_share,
        ),
        standardise: (&mean, &inv_std),
        pull,
    };
    let mut rng = SmallRng::seed_from_u64(opts.seed ^ 0x5eed);
    let sizes: Vec<usize> = if opts.hidden > 0 {
        vec![d, opts.hidden, n_classes]
    } else {
        vec![d, n_classes]
    };
    let mut net = Network::new(&sizes, &mut rng);
    if opts.hidden == 0 {
        linear_passes(&mut net, &data, opts, &mut rng);
    } else {
        matrix_passes(&mut net, &data, (3e-3, opts), &mut rng);
    }
    Fitted {
        mean: mean.to_vec(),
        inv_std: inv_std.to_vec(),
        layers: net.into_layers(),
    }
}

/// What a fit's passes read: the examples at `rows`, each row's class and weight (by position
/// in `rows`), the standardisation and each class's pull to "none".
struct Data<'d, 'e> {
    ex: &'d Examples<'e>,
    rows: &'d [usize],
    classes: Vec<usize>,
    weights: Vec<f32>,
    standardise: (&'d Array1<f32>, &'d Array1<f32>),
    pull: &'d [f32],
}

/// Each class's pull to "none": 0 for "none" and `mine` words, `anyone_l2` for `anyone`
/// words. A word's score against "none" rests on the difference of their weights; pulling
/// them together keeps that difference small and smooth, a head that generalises from a few
/// voices to everyone's (docs/research/anyone-words.md, "A smoother head"). For a head of one word it is what a
/// weight decay of twice as much on both rows would be. Only differences of rows count in a
/// softmax, so the `mine` words of the same head keep their fit: their rows move with "none".
pub(super) fn class_pull(voices: &[Voices], opts: &TrainOptions) -> Vec<f32> {
    let word = voices.iter().map(|v| match v {
        Voices::Mine => 0.0,
        Voices::Anyone => opts.anyone_l2,
    });
    std::iter::once(0.0).chain(word).collect()
}

/// `opts.epochs` passes over `data` in batches shuffled by `rng`, for a linear `net`, row by
/// row (see [`linear`]); learning rate 1e-2.
fn linear_passes(net: &mut Network, data: &Data, opts: &TrainOptions, rng: &mut SmallRng) {
    let mut linear = Linear::new(as_slice2(&net.weights[0]), as_slice(&net.biases[0]));
    let (mean, inv_std) = data.standardise;
    let mut order: Vec<usize> = (0..data.rows.len()).collect();
    for _epoch in 0..opts.epochs {
        order.shuffle(rng);
        for batch in order.chunks(BATCH) {
            linear.step(
                data.ex,
                (data.rows, batch),
                (&data.classes, &data.weights),
                (as_slice(mean), as_slice(inv_std)),
                (1e-2, (opts.l2, data.pull)),
            );
        }
    }
    let (w, b) = linear.weights_and_bias();
    net.weights[0] = Array2::from_shape_vec(net.weights[0].raw_dim(), w).expect("d x classes");
    net.biases[0] = Array1::from(b);
}

/// `opts.epochs` passes over `data` in batches shuffled by `rng`, with matrices: any network,
/// learning rate `rate`.
fn matrix_passes(
    net: &mut Network,
    data: &Data,
    (rate, opts): (f32, &TrainOptions),
    rng: &mut SmallRng,
) {
    let mut adam = Adam::new(net, rate);
    let mut order: Vec<usize> = (0..data.rows.len()).collect();
    for _epoch in 0..opts.epochs {
        order.shuffle(rng);
        for batch in order.chunks(BATCH) {
            let x = standardised(data.ex, data.rows, batch, data.standardise);
            let activations = net.forward(x);
            let logits = activations.last().unwrap();
            let grad = loss_gradient(logits, batch, &data.classes, &data.weights);
            adam.next_step();
            net.backward(&activations, grad, (opts.l2, data.pull), &mut adam);
        }
    }
}

/// The means and inverse standard deviations (deviations floored at 1e-3) of the features at
/// `rows` (`d` each). Computed a row at a time, as ndarray's `mean_axis` and `std_axis` compute
/// them over the whole matrix (the same sums in the same order: the same values bit for bit),
/// so the matrix (13 MB for 3 words x 5 takes, more with long recordings) is never held.
fn moments(ex: &Examples, rows: &[usize], d: usize) -> (Array1<f32>, Array1<f32>) {
    let mut sum = Array1::<f32>::zeros(d);
    let mut mean = Array1::<f32>::zeros(d);
    let mut sum_sq = Array1::<f32>::zeros(d);
    for (i, &r) in rows.iter().enumerate() {
        let count = (i + 1) as f32;
        let running = sum.iter_mut().zip(mean.iter_mut()).zip(sum_sq.iter_mut());
        for (&x, ((s, m), q)) in ex.features(r).iter().zip(running) {
            *s += x;
            let delta = x - *m;
            *m += delta / count;
            *q = (x - *m).mul_add(delta, *q);
        }
    }
    let n = rows.len() as f32;
    let inv_std = sum_sq.mapv(|q| 1.0 / (q / n).sqrt().max(1e-3));
    (sum.mapv(|s| s / n), inv_std)
}

/// The features of `rows[i]` for each `i` in `batch`, standardised: minus the means, times the
/// inverse deviations.
fn standardised(
    ex: &Examples,
    rows: &[usize],
    batch: &[usize],
    (mean, inv_std): (&Array1<f32>, &Array1<f32>),
) -> Array2<f32> {
    let d = mean.len();
    let (mean, inv_std) = (as_slice(mean), as_slice(inv_std));
    let mut x = vec![0.0f32; batch.len() * d];
    for (row, &i) in x.chunks_exact_mut(d).zip(batch) {
        let by = mean.iter().zip(inv_std);
        for ((o, v), (m, s)) in row.iter_mut().zip(ex.features(rows[i])).zip(by) {
            *o = (v - m) * s;
        }
    }
    Array2::from_shape_vec((batch.len(), d), x).expect("batch.len() rows of d")
}

/// The values of a matrix made here (contiguous, row-major).
fn as_slice2(v: &Array2<f32>) -> &[f32] {
    v.as_slice()
        .expect("a matrix made by from_shape_fn is contiguous")
}

/// The values of a vector made here (contiguous).
fn as_slice(v: &Array1<f32>) -> &[f32] {
    v.as_slice()
        .expect("a vector made by zeros and mapv is contiguous")
}

/// The total weight of "none" windows per [`Source`](crate::train::fold::Source).
fn source_weights(opts: &TrainOptions) -> [f32; SOURCES] {
    let w = opts.source_weights;
    [w[0], w[1], w[2], w[3], w[4], opts.neighbour_weight]
}

/// Weight per row: each word's windows weigh 1 in all; the "none" windows weigh, per source,
/// that source's share (`source_weights`, indexed by `Source`), so no one source drowns the
/// others. With `synth_share` above 0, a word's synthetic takes' windows (its word windows in
/// every fold) weigh that share of the word together and its own takes the rest, however many
/// of each there are. Scaled so that the mean weight is 1.
pub(super) fn sample_weights(
    ex: &Examples,
    rows: &[usize],
    n_classes: usize,
    source_weights: &[f32],
    synth_share: f32,
) -> Vec<f32> {
    let mut class_counts = vec![0usize; n_classes];
    let mut synth_counts = vec![0usize; n_classes];
    let mut source_counts = [0usize; SOURCES];
    for &r in rows {
        class_counts[ex.y[r]] += 1;
        if ex.y[r] == 0 {
            source_counts[ex.source[r] as usize] += 1;
        } else if ex.fold[r] == Fold::Always {
            synth_counts[ex.y[r]] += 1;
        }
    }
    let mut weights: Vec<f32> = rows
        .iter()
        .map(|&r| {
            let c = ex.y[r];
            let (all, synth) = (class_counts[c], synth_counts[c]);
            if c > 0 && synth_share > 0.0 && synth > 0 && synth < all {
                match ex.fold[r] {
                    Fold::Always => synth_share / synth as f32,
                    Fold::Take(_) => (1.0 - synth_share) / (all - synth) as f32,
                }
            } else if c > 0 {
                1.0 / all as f32
            } else {
                let s = ex.source[r] as usize;
                source_weights[s] / source_counts[s] as f32
            }
        })
        .collect();
    let mean = weights.iter().sum::<f32>() / rows.len() as f32;
    weights.iter_mut().for_each(|w| *w /= mean);
    weights
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::train::{sequence_examples, Fold, Source};
    use ndarray::Axis;

    /// Examples of one dimension-`DIM` window each, with the given classes and sources.
    pub(in crate::train) fn examples(
        rows: &[(usize, Source)],
        features: impl Fn(usize, usize) -> f32,
    ) -> Examples<'static> {
        let mut ex = Examples::default();
        for (i, &(y, source)) in rows.iter().enumerate() {
            let emb: Vec<f32> = (0..DIM).map(|k| features(i, k)).collect();
            sequence_examples(&emb, 1, Fold::Always, 1, source, &mut ex);
            ex.y[i] = y;
        }
        ex
    }

    #[test]
    fn row_by_row_standardisation_equals_the_whole_matrix_bit_for_bit() {
        let rows: Vec<(usize, Source)> = (0..300).map(|i| (i % 3, Source::Take)).collect();
        // Values of very different scales, and one constant feature (its deviation floored).
        let ex = examples(&rows, |i, k| match k {
            0 => 5.0,
            _ => ((i * 31 + k * 17) % 97) as f32 * 0.37 * (k as f32).powi(2) - 40.0,
        });
        let rows: Vec<usize> = (0..300).filter(|r| r % 7 != 3).collect();
        // The matrix and ndarray's moments, as the fit held them.
        let mut x = Array2::<f32>::zeros((rows.len(), DIM));
        for (i, &r) in rows.iter().enumerate() {
            x.row_mut(i)
                .assign(&ndarray::ArrayView1::from(ex.features(r)));
        }
        let want_mean = x.mean_axis(Axis(0)).unwrap();
        let want_inv = x.std_axis(Axis(0), 0.0).mapv(|s| 1.0 / s.max(1e-3));
        let (mean, inv_std) = moments(&ex, &rows, DIM);
        let bits = |a: &Array1<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&mean), bits(&want_mean));
        assert_eq!(bits(&inv_std), bits(&want_inv));
        assert!((inv_std[0] - 1e3).abs() < 1e-2, "{}", inv_std[0]);
        x -= &want_mean;
        x *= &want_inv;
        let batch = [5, 0, 17, 5];
        let got = standardised(&ex, &rows, &batch, (&mean, &inv_std));
        let want = x.select(Axis(0), &batch);
        assert!(got
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn the_row_by_row_linear_fit_follows_the_matrix_fit() {
        let rows: Vec<(usize, Source)> = (0..700).map(|i| (i % 3, Source::Take)).collect();
        // Three overlapping classes: class c leans on features c and c + 3, plus noise.
        let ex = examples(&rows, |i, k| {
            let noise = ((i * 7919 + k * 104729) % 1000) as f32 / 500.0 - 1.0;
            noise + if k % 3 == i % 3 && k < 6 { 1.5 } else { 0.0 }
        });
        let all: Vec<usize> = (0..rows.len()).collect();
        let (mean, inv_std) = moments(&ex, &all, DIM);
        let data = Data {
            ex: &ex,
            rows: &all,
            classes: all.iter().map(|&r| ex.y[r]).collect(),
            weights: sample_weights(&ex, &all, 3, &[0.5, 0.5, 0.5, 5.0, 6.0], 0.0),
            standardise: (&mean, &inv_std),
            pull: &[0.0, 0.0, 0.1],
        };
        let opts = TrainOptions {
            epochs: 15,
            ..TrainOptions::default()
        };
        let fitted = |linear: bool| {
            let mut rng = SmallRng::seed_from_u64(9);
            let mut net = Network::new(&[DIM, 3], &mut rng);
            match linear {
                true => linear_passes(&mut net, &data, &opts, &mut rng),
                false => matrix_passes(&mut net, &data, (1e-2, &opts), &mut rng),
            }
            net.into_layers().remove(0)
        };
        let (a, b) = (fitted(true), fitted(false));
        let scale = b.weights.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        assert!(scale > 0.1, "the fit learned something: {scale}");
        let params = |l: &Layer| l.weights.iter().chain(&l.bias).copied().collect::<Vec<_>>();
        let worst = params(&a)
            .iter()
            .zip(params(&b))
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst < 1e-3 * scale, "{worst} of {scale}");
    }

    #[test]
    fn anyone_words_are_pulled_to_none_and_mine_words_are_not() {
        let opts = TrainOptions {
            epochs: 200,
            context: 1,
            anyone_l2: 0.5,
            ..TrainOptions::default()
        };
        let pull = class_pull(&[Voices::Mine, Voices::Anyone], &opts);
        assert_eq!(pull, [0.0, 0.0, 0.5]);
        let rows: Vec<(usize, Source)> = (0..600).map(|i| (i % 3, Source::Take)).collect();
        let ex = examples(&rows, |i, k| {
            let noise = ((i * 7919 + k * 104729) % 1000) as f32 / 500.0 - 1.0;
            noise + if k % 3 == i % 3 && k < 6 { 1.5 } else { 0.0 }
        });
        let all: Vec<usize> = (0..rows.len()).collect();
        // Each word's distance from "none" (weights output-major: class c's row is c * DIM..).
        let distances = |pull: &[f32]| {
            let w = fit(&ex, &all, pull, &opts).layers.remove(0).weights;
            let row = |c: usize| &w[c * DIM..(c + 1) * DIM];
            [1, 2].map(|c| {
                let d2: f32 = row(c)
                    .iter()
                    .zip(row(0))
                    .map(|(a, b)| (a - b).powi(2))
                    .sum();
                d2.sqrt()
            })
        };
        let (free, pulled) = (distances(&[0.0, 0.0, 0.0]), distances(&pull));
        assert!(
            pulled[1] < 0.7 * free[1],
            "pulled {pulled:?}, free {free:?}"
        );
        assert!(
            (pulled[0] - free[0]).abs() < 0.1 * free[0],
            "{pulled:?} {free:?}"
        );
    }

    #[test]
    fn weights_balance_words_and_sources() {
        use Source::*;
        let rows = [
            (1, Take),
            (1, Take),
            (1, Take),
            (2, Take),
            (0, Take),
            (0, Take),
            (0, Bank),
        ];
        let ex = examples(&rows, |_, _| 0.0);
        let all: Vec<usize> = (0..rows.len()).collect();
        let w = sample_weights(&ex, &all, 3, &[0.5, 0.5, 0.5, 5.0, 6.0], 0.0);
        let total = |range: std::ops::Range<usize>| w[range].iter().sum::<f32>();
        let word = total(0..3);
        assert!(
            (total(3..4) - word).abs() < 1e-5,
            "each word weighs the same"
        );
        assert!((total(4..6) - 0.5 * word).abs() < 1e-5);
        assert!((total(6..7) - 5.0 * word).abs() < 1e-5);
        assert!((w.iter().sum::<f32>() / 7.0 - 1.0).abs() < 1e-5, "mean 1");
        assert_eq!(w[0], w[2]);
    }

    #[test]
    fn synthetic_takes_carry_their_share_of_a_word_however_many_there_are() {
        use Source::*;
        let rows = [
            (1, Take),
            (1, Take),
            (1, Take),
            (1, Take),
            (2, Take),
            (0, Bank),
        ];
        let mut ex = examples(&rows, |_, _| 0.0);
        // Word 1: one own take's window and three synthetic ones; word 2 has no synthetic ones.
        ex.fold[0] = Fold::Take(0);
        ex.fold[4] = Fold::Take(0);
        let all: Vec<usize> = (0..rows.len()).collect();
        let by_count = sample_weights(&ex, &all, 3, &[0.5, 0.5, 0.5, 5.0, 6.0], 0.0);
        assert_eq!(
            by_count[0], by_count[1],
            "by count, every word window weighs the same"
        );
        let w = sample_weights(&ex, &all, 3, &[0.5, 0.5, 0.5, 5.0, 6.0], 0.25);
        let synth: f32 = w[1..4].iter().sum();
        assert!((synth - w[0] / 3.0).abs() < 1e-5, "0.25 vs 0.75: {w:?}");
        assert!(
            ((synth + w[0]) - w[4]).abs() < 1e-5,
            "each word still weighs the same"
        );
        assert!((w[5] - 5.0 * w[4]).abs() < 1e-5);
    }
}
