//! `hark train`: fits the transfer-learned head on a few takes per word.
//!
//! Each take is augmented (speed, gain, room noise, position in the window) and embedded by the
//! base model; windows that hold the whole word are that word's examples. Everything else is
//! "none": room noise, the other words, `_unknown_` speech, the first half of each take, the
//! takes played backwards (same voice, other sounds), and a bank of synthetic speech from
//! espeak-ng (see `negatives`). A small softmax network is fitted on windows of `context`
//! consecutive embeddings; templates from the takes add a similarity check.

pub mod dataset;
pub mod negatives;

use anyhow::Result;
use ndarray::{Array1, Array2, Axis};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::pipeline::detector::DetectorSettings;
use crate::pipeline::embedding::{Embedder, DIM, WINDOW_FRAMES};
use crate::pipeline::frontend::{HOP, SAMPLE_RATE};
use crate::pipeline::head::{Head, Layer, TrainReport};
use crate::train::dataset::Dataset;

/// Training knobs (defaults are what the benchmark chose; see README's design table).
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub context: usize,
    pub hidden: usize,
    pub augment: usize,
    pub epochs: usize,
    pub seed: u64,
    pub threshold: f32,
    pub smoothing: usize,
    pub refractory: f32,
    /// Total weight of "none" windows per source (take halves, altered takes, background,
    /// bank, unknown), relative to each word's total of 1.
    pub source_weights: [f32; 5],
    pub l2: f32,
    /// Use the takes played backwards as negatives.
    pub reversed: bool,
    /// Spliced half-take negatives per take.
    pub chimeras: usize,
    /// Speed perturbation range (+-) for augmented takes.
    pub speed: f32,
    /// Gain perturbation range in dB (-gain_db .. +0.6 gain_db).
    pub gain_db: f32,
    /// Templates from augmented windows too (not only the clean takes).
    pub template_augmented: bool,
    /// Quantile of held-out clips' best similarity at which the gate sits.
    pub template_quantile: f32,
    /// Windows a passed template check holds for.
    pub template_hold: usize,
    /// Template check slack (negative disables the check).
    pub template_slack: f32,
    /// Use the synthetic negative bank when available.
    pub use_bank: bool,
    /// Hard-negative mining: bank windows kept as hardest (and as many random); 0 = use all.
    pub mine: usize,
    /// Most bank windows used.
    pub bank_max: usize,
    /// Run cross-validation for the report.
    pub cross_validate: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            context: 2,
            hidden: 0,
            augment: 6,
            epochs: 40,
            seed: 1,
            threshold: 0.5,
            smoothing: 2,
            refractory: 1.0,
            source_weights: [0.5, 0.5, 0.5, 5.0, 6.0],
            l2: 1e-3,
            reversed: true,
            chimeras: 0,
            speed: 0.12,
            gain_db: 10.0,
            template_augmented: true,
            template_quantile: 0.05,
            template_slack: 0.15,
            template_hold: 0,
            bank_max: 1_000_000,
            use_bank: true,
            mine: 3000,
            cross_validate: true,
        }
    }
}

/// Window-level training examples: features (rows of `context * DIM`), class (0 = none), and
/// group (take index for cross-validation folds; `usize::MAX` for examples in every fold).
#[derive(Default)]
pub struct Examples {
    pub x: Vec<f32>,
    pub y: Vec<usize>,
    pub group: Vec<usize>,
    /// True for windows from unaugmented takes.
    pub clean: Vec<bool>,
    /// Which clip (augmented take) a window comes from; `usize::MAX` for continuous sequences.
    pub clip: Vec<usize>,
    /// Where a window comes from (weights of the "none" class are set per source).
    pub source: Vec<Source>,
}

/// Origin of a training window.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Source {
    /// A take: its word windows, and its first-half windows as "none".
    Take = 0,
    /// Takes played backwards or spliced with other sounds.
    Altered = 1,
    /// `_background_` room noise.
    Background = 2,
    /// The synthetic speech bank.
    Bank = 3,
    /// `_unknown_` takes.
    Unknown = 4,
}

impl Examples {
    fn len(&self) -> usize {
        self.y.len()
    }

    /// The examples at `rows`, in that order.
    fn subset(&self, rows: &[usize]) -> Examples {
        let d = if self.y.is_empty() {
            0
        } else {
            self.x.len() / self.y.len()
        };
        Examples {
            x: rows
                .iter()
                .flat_map(|&r| self.x[r * d..(r + 1) * d].iter().copied())
                .collect(),
            y: rows.iter().map(|&r| self.y[r]).collect(),
            group: rows.iter().map(|&r| self.group[r]).collect(),
            clean: rows.iter().map(|&r| self.clean[r]).collect(),
            clip: rows.iter().map(|&r| self.clip[r]).collect(),
            source: rows.iter().map(|&r| self.source[r]).collect(),
        }
    }
}

const WIN_SECONDS: f64 = (WINDOW_FRAMES * HOP + 352) as f64 / SAMPLE_RATE as f64; // 0.7752 s
const LEAD_SECONDS: f32 = 0.85;
const TAIL_SECONDS: f32 = 0.45;

/// Noise source for augmentation: random segments of the background recordings, or faint
/// synthetic noise when there are none.
struct NoiseBed<'a> {
    clips: &'a [Vec<f32>],
}

impl NoiseBed<'_> {
    fn segment(&self, rng: &mut SmallRng, len: usize, rms: f32) -> Vec<f32> {
        let mut out = vec![0.0f32; len];
        if self.clips.is_empty() {
            for v in out.iter_mut() {
                *v = (rng.random::<f32>() - 0.5) * 2.0 * rms * 1.7;
            }
            return out;
        }
        let clip = &self.clips[rng.random_range(0..self.clips.len())];
        let start = rng.random_range(0..clip.len());
        for (i, v) in out.iter_mut().enumerate() {
            *v = clip[(start + i) % clip.len()];
        }
        let cur = rms_of(&out).max(1e-3);
        out.iter_mut().for_each(|v| *v *= rms / cur);
        out
    }
}

fn rms_of(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// Changes speed (and pitch) by `factor` with linear interpolation.
fn speed(x: &[f32], factor: f32) -> Vec<f32> {
    let n = ((x.len() as f32) / factor) as usize;
    (0..n)
        .map(|i| {
            let p = i as f32 * factor;
            let k = p as usize;
            let f = p - k as f32;
            let a = x[k.min(x.len() - 1)];
            let b = x[(k + 1).min(x.len() - 1)];
            a + (b - a) * f
        })
        .collect()
}

/// How a window relates to the word in its clip.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Role {
    Word,
    None,
    Ignore,
}

fn role(end: f64, s: f64, e: f64) -> Role {
    let d = e - s;
    if end >= e - 0.04 && end <= e + 0.30 && (end - WIN_SECONDS <= s + 0.10 || d > 0.65) {
        Role::Word
    } else if end <= s + 0.5 * d {
        Role::None
    } else {
        Role::Ignore
    }
}

/// A clip to embed: its samples, where the word is, and its classes.
struct Clip {
    samples: Vec<f32>,
    word_start: f64,
    word_end: f64,
    /// Class of the word windows (0 when the whole clip is negative).
    class: usize,
    group: usize,
    clean: bool,
    source: Source,
}

impl Clip {
    /// A clip made by `make` (samples, word start, word end) whose windows are all "none".
    fn negative(
        (samples, word_start, word_end): (Vec<f32>, f64, f64),
        group: usize,
        source: Source,
    ) -> Clip {
        Clip {
            samples,
            word_start,
            word_end,
            class: 0,
            group,
            clean: false,
            source,
        }
    }
}

/// Turns a clip's embeddings into examples.
fn clip_examples(clip: &Clip, id: usize, emb: &[f32], context: usize, out: &mut Examples) {
    let n = emb.len() / DIM;
    for b in 0..n {
        let end = crate::pipeline::embedding::block_end_time(b);
        // Skip windows that still see the warm-up padding, and those without full context.
        if end - WIN_SECONDS < -1e-6
            || b + 1 < context
            || crate::pipeline::embedding::block_end_time(b + 1 - context) - WIN_SECONDS < -1e-6
        {
            continue;
        }
        let r = if clip.class == 0 {
            Role::None
        } else {
            role(end, clip.word_start, clip.word_end)
        };
        let y = match r {
            Role::Word => clip.class,
            Role::None => 0,
            Role::Ignore => continue,
        };
        out.x
            .extend_from_slice(&emb[(b + 1 - context) * DIM..(b + 1) * DIM]);
        out.y.push(y);
        out.group.push(clip.group);
        out.clean.push(clip.clean && y != 0);
        out.clip.push(id);
        out.source.push(clip.source);
    }
}

/// Adds a continuous embedding sequence (all "none") with the given group.
pub fn sequence_examples(
    emb: &[f32],
    context: usize,
    group: usize,
    step: usize,
    source: Source,
    out: &mut Examples,
) {
    let n = emb.len() / DIM;
    let mut b = context - 1;
    while b < n {
        out.x
            .extend_from_slice(&emb[(b + 1 - context) * DIM..(b + 1) * DIM]);
        out.y.push(0);
        out.group.push(group);
        out.clean.push(false);
        out.clip.push(usize::MAX);
        out.source.push(source);
        b += step;
    }
}

/// Builds the augmented clips for every take and embeds them into examples.
pub fn build_examples(
    emb: &mut Embedder,
    ds: &Dataset,
    bank: Option<&[f32]>,
    opts: &TrainOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<Examples> {
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let bed = NoiseBed {
        clips: &ds.background,
    };
    let mut clips: Vec<Clip> = Vec::new();
    let sr = SAMPLE_RATE as f32;
    let make = |rng: &mut SmallRng, take: &[f32], aug: usize| -> (Vec<f32>, f64, f64) {
        let (factor, gain_db, snr_db) = if aug == 0 {
            (1.0, 0.0, 30.0)
        } else {
            (
                if opts.speed > 0.0 {
                    rng.random_range(1.0 - opts.speed..1.0 + opts.speed)
                } else {
                    1.0
                },
                rng.random_range(-opts.gain_db..opts.gain_db * 0.6),
                rng.random_range(5.0..30.0),
            )
        };
        let mut word = if factor == 1.0 {
            take.to_vec()
        } else {
            speed(take, factor)
        };
        let g = 10f32.powf(gain_db / 20.0);
        let peak = word.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
        let g = g.min(32000.0 / peak);
        word.iter_mut().for_each(|v| *v *= g);
        let lead = (LEAD_SECONDS * sr) as usize + rng.random_range(0..(0.1 * sr) as usize);
        let tail = (TAIL_SECONDS * sr) as usize;
        let noise_rms = rms_of(&word) / 10f32.powf(snr_db / 20.0);
        let mut x = bed.segment(rng, lead + word.len() + tail, noise_rms);
        for (i, v) in word.iter().enumerate() {
            x[lead + i] += v;
        }
        let s = lead as f64 / sr as f64;
        (x, s, s + word.len() as f64 / sr as f64)
    };
    // Sounds to splice with: the other words' takes, `_unknown_` takes, and reversed takes.
    let reversed_takes: Vec<Vec<f32>> = ds
        .words
        .iter()
        .flat_map(|(_, t)| t.iter().map(|t| t.samples.iter().rev().copied().collect()))
        .collect();
    for (ci, (_, takes)) in ds.words.iter().enumerate() {
        let mut partners: Vec<&[f32]> = ds
            .words
            .iter()
            .enumerate()
            .filter(|(cj, _)| *cj != ci)
            .flat_map(|(_, (_, t))| t.iter().map(|t| &t.samples[..]))
            .chain(ds.unknown.iter().map(|t| &t.samples[..]))
            .collect();
        partners.extend(reversed_takes.iter().map(|v| &v[..]));
        for (ti, take) in takes.iter().enumerate() {
            for aug in 0..opts.augment.max(1) {
                let (samples, s, e) = make(&mut rng, &take.samples, aug);
                clips.push(Clip {
                    samples,
                    word_start: s,
                    word_end: e,
                    class: ci + 1,
                    group: ti,
                    clean: aug == 0,
                    source: Source::Take,
                });
            }
            if opts.chimeras > 0 {
                // Half of this take joined to half of another sound: the head must hear the whole
                // word, not a shared beginning or ending.
                for k in 0..opts.chimeras {
                    let partner = partners[rng.random_range(0..partners.len())];
                    let (head_part, tail_part) = if k % 2 == 0 {
                        (&take.samples[..], partner)
                    } else {
                        (partner, &take.samples[..])
                    };
                    let cut_a = (head_part.len() as f32 * rng.random_range(0.4..0.6)) as usize;
                    let cut_b = (tail_part.len() as f32 * rng.random_range(0.4..0.6)) as usize;
                    let mut x = head_part[..cut_a].to_vec();
                    let scale = rms_of(head_part) / rms_of(tail_part).max(1.0);
                    x.extend(tail_part[cut_b..].iter().map(|v| v * scale));
                    clips.push(Clip::negative(make(&mut rng, &x, 1), ti, Source::Altered));
                }
            }
            if opts.reversed {
                let rev: Vec<f32> = take.samples.iter().rev().copied().collect();
                for aug in 0..2 {
                    clips.push(Clip::negative(
                        make(&mut rng, &rev, aug),
                        ti,
                        Source::Altered,
                    ));
                }
            }
        }
    }
    for (ui, take) in ds.unknown.iter().enumerate() {
        for aug in 0..2 {
            clips.push(Clip::negative(
                make(&mut rng, &take.samples, aug),
                ui,
                Source::Unknown,
            ));
        }
    }
    let total = clips.len() as u64 + 1;
    let mut ex = Examples::default();
    for (i, clip) in clips.iter().enumerate() {
        let e = crate::pipeline::embedding::embed_signal(emb, &clip.samples)?;
        clip_examples(clip, i, &e, opts.context, &mut ex);
        progress(i as u64 + 1, total);
    }
    // Room noise: every window is "none", in every fold.
    for clip in &ds.background {
        let mut x = clip.clone();
        while x.len() < (1.6 * sr) as usize {
            x.extend_from_within(..clip.len());
        }
        let e = crate::pipeline::embedding::embed_signal(emb, &x)?;
        let first = (WIN_SECONDS / 0.08).ceil() as usize;
        if e.len() / DIM > first {
            sequence_examples(
                &e[first * DIM..],
                opts.context,
                usize::MAX,
                1,
                Source::Background,
                &mut ex,
            );
        }
    }
    if let Some(bank) = bank {
        let n = bank.len() / DIM;
        let step = (n / opts.bank_max.max(1)).max(1);
        sequence_examples(
            bank,
            opts.context,
            usize::MAX - 1,
            step,
            Source::Bank,
            &mut ex,
        );
    }
    progress(total, total);
    Ok(ex)
}

/// Fits the softmax network on examples whose group passes `keep`.
fn fit(
    ex: &Examples,
    rows: &[usize],
    n_classes: usize,
    opts: &TrainOptions,
) -> (Vec<f32>, Vec<f32>, Vec<Layer>) {
    let d = opts.context * DIM;
    let n = rows.len();
    let mut x = Array2::<f32>::zeros((n, d));
    let mut y = vec![0usize; n];
    for (i, &r) in rows.iter().enumerate() {
        x.row_mut(i)
            .assign(&ndarray::ArrayView1::from(&ex.x[r * d..(r + 1) * d]));
        y[i] = ex.y[r];
    }
    let mean = x.mean_axis(Axis(0)).unwrap();
    let std = x.std_axis(Axis(0), 0.0).mapv(|s| 1.0 / s.max(1e-3));
    x -= &mean;
    x *= &std;
    // Sample weights: each word's windows weigh 1 in all; the "none" windows weigh, per source,
    // that source's share (`source_weights`), so no one source drowns the others.
    let mut counts = vec![0usize; n_classes];
    let mut src_counts = [0usize; 5];
    for &r in rows {
        counts[ex.y[r]] += 1;
        if ex.y[r] == 0 {
            src_counts[ex.source[r] as usize] += 1;
        }
    }
    let mut sw: Vec<f32> = rows
        .iter()
        .map(|&r| {
            let c = ex.y[r];
            if c > 0 {
                1.0 / counts[c] as f32
            } else {
                let s = ex.source[r] as usize;
                opts.source_weights[s] / src_counts[s] as f32
            }
        })
        .collect();
    let mean_w = sw.iter().sum::<f32>() / n as f32;
    sw.iter_mut().for_each(|w| *w /= mean_w);
    let mut rng = SmallRng::seed_from_u64(opts.seed ^ 0x5eed);
    let sizes: Vec<usize> = if opts.hidden > 0 {
        vec![d, opts.hidden, n_classes]
    } else {
        vec![d, n_classes]
    };
    let mut ws: Vec<Array2<f32>> = Vec::new();
    let mut bs: Vec<Array1<f32>> = Vec::new();
    for w in sizes.windows(2) {
        let scale = (2.0 / w[0] as f32).sqrt() * 0.5;
        ws.push(Array2::from_shape_fn((w[0], w[1]), |_| {
            (rng.random::<f32>() - 0.5) * 2.0 * scale
        }));
        bs.push(Array1::zeros(w[1]));
    }
    let mut mw: Vec<Array2<f32>> = ws.iter().map(|w| Array2::zeros(w.raw_dim())).collect();
    let mut vw = mw.clone();
    let mut mb: Vec<Array1<f32>> = bs.iter().map(|b| Array1::zeros(b.raw_dim())).collect();
    let mut vb = mb.clone();
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let lr = if opts.hidden > 0 { 3e-3 } else { 1e-2 };
    let batch = 256usize;
    let mut order: Vec<usize> = (0..n).collect();
    let mut t = 0i32;
    for _epoch in 0..opts.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch) {
            t += 1;
            let xb = x.select(Axis(0), chunk);
            // forward
            let mut acts = vec![xb];
            for l in 0..ws.len() {
                let mut z = acts[l].dot(&ws[l]) + &bs[l];
                if l + 1 < ws.len() {
                    z.mapv_inplace(|v| v.max(0.0));
                }
                acts.push(z);
            }
            let logits = acts.last().unwrap();
            let m = chunk.len();
            let mut g = Array2::<f32>::zeros((m, n_classes));
            for i in 0..m {
                let row = logits.row(i);
                let mx = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let ex_sum: f32 = row.iter().map(|v| (v - mx).exp()).sum();
                let c = y[chunk[i]];
                let w = sw[chunk[i]] / m as f32;
                for k in 0..n_classes {
                    let p = (row[k] - mx).exp() / ex_sum;
                    g[[i, k]] = w * (p - if k == c { 1.0 } else { 0.0 });
                }
            }
            // backward
            for l in (0..ws.len()).rev() {
                let gw = acts[l].t().dot(&g) + &(&ws[l] * opts.l2);
                let gb = g.sum_axis(Axis(0));
                let next_g = if l > 0 {
                    let mut gp = g.dot(&ws[l].t());
                    gp.zip_mut_with(&acts[l], |a, &h| {
                        if h <= 0.0 {
                            *a = 0.0
                        }
                    });
                    Some(gp)
                } else {
                    None
                };
                let c1 = 1.0 - b1.powi(t);
                let c2 = 1.0 - b2.powi(t);
                mw[l].zip_mut_with(&gw, |m, &g| *m = b1 * *m + (1.0 - b1) * g);
                vw[l].zip_mut_with(&gw, |v, &g| *v = b2 * *v + (1.0 - b2) * g * g);
                let step = ndarray::Zip::from(&mw[l])
                    .and(&vw[l])
                    .map_collect(|m, v| lr * (m / c1) / ((v / c2).sqrt() + eps));
                ws[l] -= &step;
                mb[l].zip_mut_with(&gb, |m, &g| *m = b1 * *m + (1.0 - b1) * g);
                vb[l].zip_mut_with(&gb, |v, &g| *v = b2 * *v + (1.0 - b2) * g * g);
                let stepb = ndarray::Zip::from(&mb[l])
                    .and(&vb[l])
                    .map_collect(|m, v| lr * (m / c1) / ((v / c2).sqrt() + eps));
                bs[l] -= &stepb;
                if let Some(gp) = next_g {
                    g = gp;
                }
            }
        }
    }
    let layers = ws
        .iter()
        .zip(&bs)
        .map(|(w, b)| Layer {
            inputs: w.nrows(),
            outputs: w.ncols(),
            weights: w.t().iter().copied().collect(),
            bias: b.to_vec(),
        })
        .collect();
    (mean.to_vec(), std.to_vec(), layers)
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|a| a / n).collect()
}

/// Builds the head from examples, using only rows in `rows`.
fn head_from(
    ex: &Examples,
    rows: &[usize],
    labels: &[String],
    base_sha: &str,
    opts: &TrainOptions,
) -> Head {
    let d = opts.context * DIM;
    let (mean, inv_std, layers) = fit(ex, rows, labels.len() + 1, opts);
    // Templates: every word window (augmented ones too), per word, with its take (group) and
    // clip, in the standardised space the network sees.
    let mut templates: Vec<Vec<(usize, usize, Vec<f32>)>> = vec![Vec::new(); labels.len()];
    for &r in rows {
        if ex.y[r] != 0 && (opts.template_augmented || ex.clean[r]) {
            let z: Vec<f32> = ex.x[r * d..(r + 1) * d]
                .iter()
                .zip(&mean)
                .zip(&inv_std)
                .map(|((v, m), s)| (v - m) * s)
                .collect();
            templates[ex.y[r] - 1].push((ex.group[r], ex.clip[r], unit(&z)));
        }
    }
    let template_min: Vec<f32> = templates
        .iter()
        .map(|ts| {
            if opts.template_slack < 0.0 {
                return -1.0;
            }
            // Leave-one-take-out: for each clip, how close its best window comes to the other
            // takes' templates; the gate sits at a low quantile of those, minus the slack.
            let mut best: std::collections::BTreeMap<usize, f32> = Default::default();
            for a in ts {
                let m = ts
                    .iter()
                    .filter(|b| b.0 != a.0)
                    .map(|b| a.2.iter().zip(&b.2).map(|(x, y)| x * y).sum::<f32>())
                    .fold(f32::NEG_INFINITY, f32::max);
                let e = best.entry(a.1).or_insert(f32::NEG_INFINITY);
                *e = e.max(m);
            }
            let mut v: Vec<f32> = best.into_values().filter(|v| v.is_finite()).collect();
            if v.is_empty() {
                return -1.0;
            }
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let q = v[((v.len() - 1) as f32 * opts.template_quantile).round() as usize];
            q - opts.template_slack
        })
        .collect();
    Head {
        format: crate::pipeline::head::FORMAT.into(),
        labels: labels.to_vec(),
        base_model_sha256: base_sha.into(),
        frontend: crate::pipeline::frontend::parameters(),
        context: opts.context,
        mean,
        inv_std,
        layers,
        templates: templates
            .into_iter()
            .map(|ts| ts.into_iter().map(|t| t.2).collect())
            .collect(),
        template_min,
        detector: DetectorSettings {
            thresholds: vec![opts.threshold; labels.len()],
            smoothing: opts.smoothing,
            refractory: opts.refractory,
        },
        template_hold: opts.template_hold,
        report: TrainReport::default(),
    }
}

/// Cross-validated figures: folds by take index. Returns (recall of held-out takes, false-fire
/// rate of held-out negative windows, number of held-out negative windows).
fn cross_validate(
    ex: &Examples,
    labels: &[String],
    base_sha: &str,
    opts: &TrainOptions,
    folds: usize,
) -> (f32, f32, usize) {
    let d = opts.context * DIM;
    let (mut hit, mut takes, mut fires, mut negs) = (0usize, 0usize, 0usize, 0usize);
    for f in 0..folds {
        let held = |g: usize| g < usize::MAX - 1 && g % folds == f;
        let rows: Vec<usize> = (0..ex.len()).filter(|&r| !held(ex.group[r])).collect();
        let head = head_from(ex, &rows, labels, base_sha, opts);
        let mut scorer_best: std::collections::HashMap<(usize, usize), f32> = Default::default();
        for r in (0..ex.len()).filter(|&r| held(ex.group[r])) {
            let p = head.probabilities(&ex.x[r * d..(r + 1) * d]);
            let (bw, bp) =
                p[1..]
                    .iter()
                    .enumerate()
                    .fold((0, 0.0f32), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
            if ex.y[r] == 0 {
                negs += 1;
                if bp >= opts.threshold {
                    fires += 1;
                }
            } else if ex.clean[r] {
                let key = (ex.y[r], ex.group[r]);
                let s = if bw + 1 == ex.y[r] { bp } else { 0.0 };
                let e = scorer_best.entry(key).or_insert(0.0);
                *e = e.max(s);
            }
        }
        takes += scorer_best.len();
        hit += scorer_best
            .values()
            .filter(|&&s| s >= opts.threshold)
            .count();
    }
    (
        hit as f32 / takes.max(1) as f32,
        fires as f32 / negs.max(1) as f32,
        negs,
    )
}

/// Hard-negative mining on the bank: fits once on everything else plus a random part of the
/// bank, then keeps the `mine` bank windows that head likes most plus `mine` random ones.
/// Returns the rows to train on.
fn mine_bank(ex: &Examples, labels: &[String], base_sha: &str, opts: &TrainOptions) -> Vec<usize> {
    let all: Vec<usize> = (0..ex.len()).collect();
    let (bank, mut rest): (Vec<usize>, Vec<usize>) =
        all.into_iter().partition(|&r| ex.source[r] == Source::Bank);
    if opts.mine == 0 || bank.len() <= 2 * opts.mine {
        rest.extend(bank);
        return rest;
    }
    let mut rng = SmallRng::seed_from_u64(opts.seed ^ 0x3113);
    let mut shuffled = bank.clone();
    shuffled.shuffle(&mut rng);
    let mut first = rest.clone();
    first.extend_from_slice(&shuffled[..opts.mine]);
    let mut o = opts.clone();
    o.template_slack = -1.0;
    let head = head_from(ex, &first, labels, base_sha, &o);
    let d = opts.context * DIM;
    let mut scored: Vec<(f32, usize)> = bank
        .iter()
        .map(|&r| {
            let p = head.probabilities(&ex.x[r * d..(r + 1) * d]);
            (p[1..].iter().copied().fold(0.0, f32::max), r)
        })
        .collect();
    scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
    let (hard, easy) = scored.split_at(opts.mine);
    rest.extend(hard.iter().map(|h| h.1));
    let mut easy: Vec<usize> = easy.iter().map(|e| e.1).collect();
    easy.shuffle(&mut rng);
    rest.extend_from_slice(&easy[..opts.mine.min(easy.len())]);
    rest.sort_unstable();
    rest
}

/// Trains a head: builds examples, optionally cross-validates, fits on everything.
pub fn train(
    emb: &mut Embedder,
    ds: &Dataset,
    bank: Option<&[f32]>,
    opts: &TrainOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<Head> {
    let labels = ds.labels();
    let ex = build_examples(emb, ds, bank, opts, progress)?;
    let rows = mine_bank(&ex, &labels, &emb.model_sha256, opts);
    let ex = ex.subset(&rows);
    let rows: Vec<usize> = (0..ex.len()).collect();
    let mut head = head_from(&ex, &rows, &labels, &emb.model_sha256, opts);
    head.report.takes = ds.words.iter().map(|(_, t)| t.len()).collect();
    head.report
        .figures
        .push(("training windows".into(), ex.len() as f32));
    if opts.cross_validate {
        let folds = ds
            .words
            .iter()
            .map(|(_, t)| t.len())
            .min()
            .unwrap_or(1)
            .min(5);
        let (recall, fire, negs) = cross_validate(&ex, &labels, &emb.model_sha256, opts, folds);
        head.report.figures.push((
            format!("{folds}-fold cross-validated recall of held-out takes"),
            recall,
        ));
        head.report.figures.push((
            format!("false-fire rate of held-out negative windows ({negs})"),
            fire,
        ));
    }
    Ok(head)
}
