//! The fit of a linear softmax head (no hidden layer), one row at a time: each row is
//! standardised, scored and folded into the batch's gradient in one pass over its features, in
//! buffers made once, and Adam updates the parameters in place. It computes what
//! [`super::fit`]'s matrix path ([`super::network`]) computes with matrices (the same initial weights, batches,
//! gradient, weight decay and Adam steps) in about a third of the time, summing in another
//! order.

use super::network::{BETA1, BETA2, EPSILON};
use crate::pipeline::head::dot;
use crate::train::examples::Examples;

/// A linear softmax layer being fitted: weights stored class-major (`classes x d`), so a class's
/// score is one dot product, and Adam's moments beside them.
pub(super) struct Linear {
    d: usize,
    classes: usize,
    /// `[classes, d]` weights, then `classes` biases: every parameter in one vector.
    params: Vec<f32>,
    mean1: Vec<f32>,
    mean2: Vec<f32>,
    grad: Vec<f32>,
    step: i32,
    /// The row at hand, made once.
    scratch: Scratch,
}

/// One row's features standardised, and its class scores.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    z: Vec<f32>,
}

impl Linear {
    /// A layer from input-major weights (`d x classes`, as the general path draws them) and
    /// biases.
    pub fn new(weights: &[f32], bias: &[f32]) -> Linear {
        let classes = bias.len();
        let d = weights.len() / classes;
        let mut params = vec![0.0; (d + 1) * classes];
        for k in 0..d {
            for c in 0..classes {
                params[c * d + k] = weights[k * classes + c];
            }
        }
        params[d * classes..].copy_from_slice(bias);
        let n = params.len();
        Linear {
            d,
            classes,
            params,
            mean1: vec![0.0; n],
            mean2: vec![0.0; n],
            grad: vec![0.0; n],
            step: 0,
            scratch: Scratch {
                x: vec![0.0; d],
                z: vec![0.0; classes],
            },
        }
    }

    /// Input-major weights (`d x classes`) and biases, as the general path keeps them.
    pub fn weights_and_bias(&self) -> (Vec<f32>, Vec<f32>) {
        let (d, n) = (self.d, self.classes);
        let mut w = vec![0.0; d * n];
        for k in 0..d {
            for c in 0..n {
                w[k * n + c] = self.params[c * d + k];
            }
        }
        (w, self.params[d * n..].to_vec())
    }

    /// One Adam step (learning rate `rate`, weight decay `l2`, class `c`'s weights and class
    /// 0's pulled together by `pull[c]`) on the weighted cross-entropy of the rows `rows[i]`
    /// for `i` in `batch`, of classes `classes[i]` and weights `weights[i]`.
    pub fn step(
        &mut self,
        ex: &Examples,
        (rows, batch): (&[usize], &[usize]),
        (classes, weights): (&[usize], &[f32]),
        (mean, inv_std): (&[f32], &[f32]),
        (rate, (l2, pull)): (f32, (f32, &[f32])),
    ) {
        let mut s = std::mem::take(&mut self.scratch);
        self.grad.fill(0.0);
        fold_batch(
            self,
            &mut s,
            ex,
            (rows, batch),
            (classes, weights),
            (mean, inv_std),
        );
        self.scratch = s;
        let (d, wd) = (self.d, self.d * self.classes);
        for (g, w) in self.grad[..wd].iter_mut().zip(&self.params[..wd]) {
            *g += w * l2;
        }
        for (c, &p) in pull.iter().enumerate().filter(|(_, &p)| p > 0.0) {
            for k in 0..d {
                let apart = p * (self.params[c * d + k] - self.params[k]);
                self.grad[c * d + k] += apart;
                self.grad[k] -= apart;
            }
        }
        self.adam(rate);
    }

    /// Adam's update of every parameter from `grad`, in place.
    fn adam(&mut self, rate: f32) {
        self.step += 1;
        let c1 = 1.0 - BETA1.powi(self.step);
        let c2 = 1.0 - BETA2.powi(self.step);
        let moments = self.mean1.iter_mut().zip(self.mean2.iter_mut());
        for ((p, g), (m1, m2)) in self.params.iter_mut().zip(&self.grad).zip(moments) {
            *m1 = BETA1 * *m1 + (1.0 - BETA1) * g;
            *m2 = BETA2 * *m2 + (1.0 - BETA2) * g * g;
            *p -= rate * (*m1 / c1) / ((*m2 / c2).sqrt() + EPSILON);
        }
    }
}

/// Standardises the rows `rows[i]` for `i` in `batch` and adds each one's gradient to
/// `lin.grad`. Compiled also for AVX2 and picked at run time: the sums keep their order, so
/// the fit gives the same head bit for bit on either path.
#[multiversion::multiversion(targets("x86_64+avx2"))]
fn fold_batch(
    lin: &mut Linear,
    s: &mut Scratch,
    ex: &Examples,
    (rows, batch): (&[usize], &[usize]),
    (classes, weights): (&[usize], &[f32]),
    (mean, inv_std): (&[f32], &[f32]),
) {
    let m = batch.len() as f32;
    for (k, &i) in batch.iter().enumerate() {
        if let Some(&ahead) = batch.get(k + AHEAD) {
            prefetch(ex.features(rows[ahead]));
        }
        let by = mean.iter().zip(inv_std);
        for ((o, v), (mu, sd)) in s.x.iter_mut().zip(ex.features(rows[i])).zip(by) {
            *o = (v - mu) * sd;
        }
        accumulate(lin, s, classes[i], weights[i] / m);
    }
}

/// Rows ahead whose features are fetched into the cache while a row is worked on: the rows of
/// a batch are scattered over megabytes, and waiting for them was most of the fit's time.
const AHEAD: usize = 2;

/// Asks the processor to bring `v` into the cache (a hint; nothing else happens).
#[inline(always)]
fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in v.chunks(16) {
        // SAFETY: a prefetch only hints the cache; SSE is in every x86-64 processor.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
        }
    }
}

/// Adds one standardised row's gradient (its softmax minus the one-hot of `class`, times
/// `w`) to `lin.grad`.
#[inline(always)]
fn accumulate(lin: &mut Linear, s: &mut Scratch, class: usize, w: f32) {
    let (d, n) = (lin.d, lin.classes);
    let (weights, bias) = lin.params.split_at(d * n);
    for (c, z) in s.z.iter_mut().enumerate() {
        *z = bias[c] + dot(&s.x, &weights[c * d..(c + 1) * d]);
    }
    let max = s.z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    s.z.iter_mut().for_each(|z| *z = (*z - max).exp());
    let sum: f32 = s.z.iter().sum();
    let (gw, gb) = lin.grad.split_at_mut(d * n);
    for (c, &e) in s.z.iter().enumerate() {
        let g = w * (e / sum - if c == class { 1.0 } else { 0.0 });
        gb[c] += g;
        for (o, x) in gw[c * d..(c + 1) * d].iter_mut().zip(&s.x) {
            *o += g * x;
        }
    }
}
