//! The head at run time: a stream's [`Scorer`] (its recent embeddings and scratch buffers,
//! allocated once), the network and its ensemble, the template check and the calibration.

use super::{Head, Layer};
use crate::pipeline::embedding::DIM;

/// Runs dense `layers` (ReLU between them) on `input` into the scratch `h` (one buffer per
/// layer), then the softmax of the last into `out`.
fn run_network(layers: &[Layer], input: &[f32], h: &mut [Vec<f32>], out: &mut [f32]) {
    let last = layers.len() - 1;
    for (i, layer) in layers.iter().enumerate() {
        let (before, after) = h.split_at_mut(i);
        let x: &[f32] = if i == 0 { input } else { &before[i - 1] };
        let y = &mut after[0];
        layer.forward(x, y);
        if i < last {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
    softmax_into(&h[last], out);
}

/// Per-stream scoring state: the ring of recent embeddings and scratch buffers, allocated once.
pub struct Scorer {
    context: usize,
    /// The newest `context` embeddings, oldest first.
    recent: Vec<f32>,
    seen: usize,
    pub(super) x: Vec<f32>,
    h: Vec<Vec<f32>>,
    pub(super) out: Vec<f32>,
    /// Per-word scores and template similarities of the newest window.
    pub scores: Vec<f32>,
    pub similarity: Vec<f32>,
    /// Per-word network probabilities before the template check.
    pub raw: Vec<f32>,
    /// Per word: windows since the template check last passed.
    since_pass: Vec<usize>,
    /// Ensemble scratch: the raw feature, one member's standardised feature, hidden layers
    /// (per member) and probabilities.
    raw_x: Vec<f32>,
    member_x: Vec<f32>,
    member_h: Vec<Vec<Vec<f32>>>,
    member_out: Vec<f32>,
}

impl Scorer {
    pub fn new(head: &Head) -> Self {
        let d = head.feature_dim();
        Scorer {
            context: head.context,
            recent: vec![0.0; d],
            seen: 0,
            x: vec![0.0; d],
            h: head.layers.iter().map(|l| vec![0.0; l.outputs]).collect(),
            out: vec![0.0; head.labels.len() + 1],
            scores: vec![0.0; head.labels.len()],
            similarity: vec![0.0; head.labels.len()],
            raw: vec![0.0; head.labels.len()],
            since_pass: vec![usize::MAX; head.labels.len()],
            raw_x: vec![0.0; d],
            member_x: vec![0.0; d],
            member_h: head
                .members
                .iter()
                .map(|m| m.layers.iter().map(|l| vec![0.0; l.outputs]).collect())
                .collect(),
            member_out: vec![0.0; head.labels.len() + 1],
        }
    }

    /// Forgets the recent embeddings (after a gap in the stream).
    pub fn reset(&mut self) {
        self.seen = 0;
        self.since_pass.fill(usize::MAX);
    }

    /// Adds the newest embedding and scores the window; fills `scores` and `similarity`.
    /// Returns false while fewer than `context` embeddings have been seen.
    pub fn push(&mut self, head: &Head, embedding: &[f32]) -> bool {
        self.recent.copy_within(DIM.., 0);
        let d = self.recent.len();
        self.recent[d - DIM..].copy_from_slice(embedding);
        self.seen += 1;
        if self.seen < self.context {
            self.scores.fill(0.0);
            return false;
        }
        self.x.copy_from_slice(&self.recent);
        self.forward(head);
        // `x` now holds the standardised feature: templates live in that space.
        let norm = dot(&self.x, &self.x).sqrt().max(1e-12);
        for w in 0..head.labels.len() {
            let sim = head.templates[w]
                .iter()
                .map(|t| dot(t, &self.x) / norm)
                .fold(f32::NEG_INFINITY, f32::max);
            self.similarity[w] = sim;
            self.raw[w] = self.out[w + 1];
            self.since_pass[w] = if sim >= head.template_min[w] {
                0
            } else {
                self.since_pass[w].saturating_add(1)
            };
            self.scores[w] = if self.since_pass[w] <= head.template_hold {
                calibrated(head, w, self.out[w + 1])
            } else {
                0.0
            };
        }
        true
    }

    /// Per-word scores of one raw `feature` alone (no context, no hold, no calibration): the
    /// network's score where the template check passes, else 0. Scores below `floor` are
    /// returned without their template check (for calibration, where they never count).
    pub fn gated_scores(&mut self, head: &Head, feature: &[f32], floor: f32) -> &[f32] {
        self.x.copy_from_slice(feature);
        self.forward(head);
        let norm = dot(&self.x, &self.x).sqrt().max(1e-12);
        for w in 0..head.labels.len() {
            let p = self.out[w + 1];
            let pass = p < floor
                || head.templates[w]
                    .iter()
                    .any(|t| dot(t, &self.x) / norm >= head.template_min[w]);
            self.scores[w] = if pass { p } else { 0.0 };
        }
        &self.scores
    }

    pub(super) fn forward(&mut self, head: &Head) {
        if !head.members.is_empty() {
            self.raw_x.copy_from_slice(&self.x);
        }
        for ((x, m), s) in self.x.iter_mut().zip(&head.mean).zip(&head.inv_std) {
            *x = (*x - m) * s;
        }
        run_network(&head.layers, &self.x, &mut self.h, &mut self.out);
        for (member, h) in head.members.iter().zip(&mut self.member_h) {
            let standardised = self.raw_x.iter().zip(&member.mean).zip(&member.inv_std);
            for (z, ((x, m), s)) in self.member_x.iter_mut().zip(standardised) {
                *z = (x - m) * s;
            }
            run_network(&member.layers, &self.member_x, h, &mut self.member_out);
            for (o, p) in self.out.iter_mut().zip(&self.member_out) {
                *o += p;
            }
        }
        if !head.members.is_empty() {
            let n = (head.members.len() + 1) as f32;
            self.out.iter_mut().for_each(|o| *o /= n);
        }
    }
}

/// Word `w`'s score `p` raised to the word's calibrated power, if the head has one.
fn calibrated(head: &Head, w: usize, p: f32) -> f32 {
    match head.score_power.get(w) {
        Some(&power) if power != 1.0 => p.powf(power),
        _ => p,
    }
}

/// The dot product of the common length of `a` and `b`, in 8 running sums: one running sum
/// cannot be reordered, so it is neither vectorised nor pipelined, and the template check
/// takes one per template for every block of every stream (and the linear fit one per class
/// for every training row).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    let tail: f32 = a
        .remainder()
        .iter()
        .zip(b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f32; 8];
    for (x, y) in a.zip(b) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Numerically stable softmax.
pub fn softmax_into(z: &[f32], out: &mut [f32]) {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (o, v) in out.iter_mut().zip(z) {
        *o = (v - m).exp();
        sum += *o;
    }
    out.iter_mut().for_each(|o| *o /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_is_the_dot_product_at_every_length() {
        for n in [0, 1, 7, 8, 9, 100, 1536] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n + 3).map(|i| (i as f32 * 0.11).cos()).collect();
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let got = dot(&a, &b) as f64;
            assert!(
                (got - exact).abs() <= 1e-5 * (1.0 + exact.abs()),
                "{n}: {got} {exact}"
            );
        }
    }
}
