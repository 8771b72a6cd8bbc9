//! The matrix form of the fit, for any network (a hidden layer included): the weighted
//! cross-entropy's gradient, the layers with ReLU between them, and Adam.

use ndarray::{Array, Array1, Array2, Axis, Dimension, Zip};
use rand::rngs::SmallRng;
use rand::Rng;

use crate::pipeline::head::Layer;

/// Adam's decay rates of its running means of the gradient and of its square, and the small
/// number that keeps its step finite.
pub(super) const BETA1: f32 = 0.9;
pub(super) const BETA2: f32 = 0.999;
pub(super) const EPSILON: f32 = 1e-8;

/// Gradient of the batch's weighted cross-entropy with respect to the logits: per row, its
/// weight over the batch size, times (softmax - one-hot of its class).
pub(super) fn loss_gradient(
    logits: &Array2<f32>,
    batch: &[usize],
    classes: &[usize],
    weights: &[f32],
) -> Array2<f32> {
    let (m, n_classes) = logits.dim();
    let mut grad = Array2::<f32>::zeros((m, n_classes));
    for i in 0..m {
        let row = logits.row(i);
        let max = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let exp_sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let c = classes[batch[i]];
        let w = weights[batch[i]] / m as f32;
        for k in 0..n_classes {
            let p = (row[k] - max).exp() / exp_sum;
            grad[[i, k]] = w * (p - if k == c { 1.0 } else { 0.0 });
        }
    }
    grad
}

/// The network's parameters: per layer, a weight matrix (inputs x outputs) and a bias.
pub(super) struct Network {
    pub weights: Vec<Array2<f32>>,
    pub biases: Vec<Array1<f32>>,
}

impl Network {
    /// Layers between consecutive `sizes`: uniform weights at half the He scale, drawn from
    /// `rng` layer by layer, row by row; zero biases.
    pub fn new(sizes: &[usize], rng: &mut SmallRng) -> Network {
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for w in sizes.windows(2) {
            let scale = (2.0 / w[0] as f32).sqrt() * 0.5;
            weights.push(Array2::from_shape_fn((w[0], w[1]), |_| {
                (rng.random::<f32>() - 0.5) * 2.0 * scale
            }));
            biases.push(Array1::zeros(w[1]));
        }
        Network { weights, biases }
    }

    /// Every layer's input, then the logits: ReLU after each layer but the last.
    pub fn forward(&self, input: Array2<f32>) -> Vec<Array2<f32>> {
        let mut activations = vec![input];
        for l in 0..self.weights.len() {
            let mut z = activations[l].dot(&self.weights[l]) + &self.biases[l];
            if l + 1 < self.weights.len() {
                z.mapv_inplace(|v| v.max(0.0));
            }
            activations.push(z);
        }
        activations
    }

    /// Backpropagates `grad` (with respect to the logits) from the last layer down, letting
    /// `adam` update each layer as soon as its gradient is known; the gradient passed further
    /// down uses the layer's weights from before the update. `l2` is the weight decay; the
    /// output weights of class `c` and of class 0 are also pulled together by `pull[c]`.
    pub fn backward(
        &mut self,
        activations: &[Array2<f32>],
        mut grad: Array2<f32>,
        (l2, pull): (f32, &[f32]),
        adam: &mut Adam,
    ) {
        for l in (0..self.weights.len()).rev() {
            let mut grad_w = activations[l].t().dot(&grad) + &(&self.weights[l] * l2);
            if l + 1 == self.weights.len() {
                let w = &self.weights[l];
                for (c, &p) in pull.iter().enumerate().filter(|(_, &p)| p > 0.0) {
                    let apart = &w.column(c) - &w.column(0);
                    grad_w.column_mut(c).scaled_add(p, &apart);
                    grad_w.column_mut(0).scaled_add(-p, &apart);
                }
            }
            let grad_b = grad.sum_axis(Axis(0));
            let below = (l > 0).then(|| {
                let mut g = grad.dot(&self.weights[l].t());
                // Through the ReLU: no gradient where the layer's input was not positive.
                g.zip_mut_with(&activations[l], |a, &h| {
                    if h <= 0.0 {
                        *a = 0.0
                    }
                });
                g
            });
            adam.update(
                l,
                &mut self.weights[l],
                &grad_w,
                &mut self.biases[l],
                &grad_b,
            );
            if let Some(g) = below {
                grad = g;
            }
        }
    }

    /// The layers as the head stores them (weights output-major).
    pub fn into_layers(self) -> Vec<Layer> {
        self.weights
            .iter()
            .zip(&self.biases)
            .map(|(w, b)| Layer {
                inputs: w.nrows(),
                outputs: w.ncols(),
                weights: w.t().iter().copied().collect(),
                bias: b.to_vec(),
            })
            .collect()
    }
}

/// Running means of one parameter's gradient (Adam's first moment) and of its square (second
/// moment).
struct Moments<D: Dimension> {
    mean: Array<f32, D>,
    square_mean: Array<f32, D>,
}

impl<D: Dimension> Moments<D> {
    fn zeros_like(param: &Array<f32, D>) -> Moments<D> {
        Moments {
            mean: Array::zeros(param.raw_dim()),
            square_mean: Array::zeros(param.raw_dim()),
        }
    }

    /// Folds `grad` into the running means, then moves `param` by `rate` times the
    /// bias-corrected mean over the root of the bias-corrected square mean (`correction1`,
    /// `correction2`: one minus the decay rates to the power of the step number).
    fn step(
        &mut self,
        param: &mut Array<f32, D>,
        grad: &Array<f32, D>,
        rate: f32,
        (correction1, correction2): (f32, f32),
    ) {
        self.mean
            .zip_mut_with(grad, |m, &g| *m = BETA1 * *m + (1.0 - BETA1) * g);
        self.square_mean
            .zip_mut_with(grad, |v, &g| *v = BETA2 * *v + (1.0 - BETA2) * g * g);
        let step = Zip::from(&self.mean)
            .and(&self.square_mean)
            .map_collect(|m, v| rate * (m / correction1) / ((v / correction2).sqrt() + EPSILON));
        *param -= &step;
    }
}

/// The Adam optimiser's state: the step number and the moments of every layer's parameters.
pub(super) struct Adam {
    rate: f32,
    step: i32,
    weights: Vec<Moments<ndarray::Ix2>>,
    biases: Vec<Moments<ndarray::Ix1>>,
}

impl Adam {
    /// Zero moments for `net`'s parameters; `rate` is the learning rate.
    pub fn new(net: &Network, rate: f32) -> Adam {
        Adam {
            rate,
            step: 0,
            weights: net.weights.iter().map(Moments::zeros_like).collect(),
            biases: net.biases.iter().map(Moments::zeros_like).collect(),
        }
    }

    /// Counts one more step (one batch).
    pub fn next_step(&mut self) {
        self.step += 1;
    }

    /// Updates layer `l`'s weights and bias from their gradients.
    fn update(
        &mut self,
        l: usize,
        weights: &mut Array2<f32>,
        grad_w: &Array2<f32>,
        bias: &mut Array1<f32>,
        grad_b: &Array1<f32>,
    ) {
        let corrections = (1.0 - BETA1.powi(self.step), 1.0 - BETA2.powi(self.step));
        self.weights[l].step(weights, grad_w, self.rate, corrections);
        self.biases[l].step(bias, grad_b, self.rate, corrections);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_gradient_is_weighted_softmax_minus_one_hot() {
        let logits = ndarray::array![[2.0f32, 0.0], [0.0, 0.0]];
        let g = loss_gradient(&logits, &[1, 0], &[1, 0], &[0.0, 2.0]);
        // Row 0 is example 1 (class 0, weight 2, batch of 2): (p - one-hot) * 1.
        let p = 1.0 / (1.0 + (-2.0f32).exp());
        assert!((g[[0, 0]] - (p - 1.0)).abs() < 1e-6);
        assert!((g[[0, 0]] + g[[0, 1]]).abs() < 1e-6);
        // Row 1 is example 0 with weight 0.
        assert_eq!(g.row(1).to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn an_adam_step_moves_by_the_rate_against_the_gradient() {
        let mut param = ndarray::array![1.0f32, 1.0];
        let mut moments = Moments::zeros_like(&param);
        let corrections = (1.0 - BETA1, 1.0 - BETA2);
        moments.step(&mut param, &ndarray::array![4.0, -0.5], 0.1, corrections);
        assert!(
            (param[0] - 0.9).abs() < 1e-5 && (param[1] - 1.1).abs() < 1e-5,
            "{param}"
        );
        assert!((moments.mean[0] - 0.4).abs() < 1e-6);
        assert!((moments.square_mean[1] - 0.00025).abs() < 1e-8);
    }
}
