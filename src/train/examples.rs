//! Window-level training examples: the clips are embedded by the base model, and each window of
//! `context` consecutive embeddings becomes one example, labelled by where it sits against the
//! word in its clip. Room noise and the synthetic bank add windows that are all "none".

use anyhow::Result;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::clips::{make_clips, Clip};
use super::TrainOptions;
use crate::pipeline::embedding::{block_end_time, embed_signal, Embedder, DIM, WINDOW_FRAMES};
use crate::pipeline::frontend::{BLOCK_SAMPLES, HOP, N_FFT, SAMPLE_RATE};
use crate::train::dataset::Dataset;

/// Audio one embedding window hears, seconds: `WINDOW_FRAMES` frames, 0.782 s.
const WIN_SECONDS: f64 = ((WINDOW_FRAMES - 1) * HOP + N_FFT) as f64 / SAMPLE_RATE as f64;
/// Time between consecutive embeddings, seconds.
const BLOCK_SECONDS: f64 = BLOCK_SAMPLES as f64 / SAMPLE_RATE as f64;

/// Window-level training examples, one entry per window in each field.
#[derive(Default)]
pub struct Examples {
    /// Features: rows of `context * DIM`.
    pub x: Vec<f32>,
    /// Class: 0 = none, `k` = the k-th word.
    pub y: Vec<usize>,
    /// When cross-validation holds the window out.
    pub fold: Vec<Fold>,
    /// True for word windows from unaugmented takes.
    pub clean: Vec<bool>,
    /// Which clip (augmented take) a window comes from; None for continuous sequences.
    pub clip: Vec<Option<usize>>,
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

/// Which cross-validation fold holds a window out.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Fold {
    /// Held out with take `k` of its word (or of `_unknown_`): in fold `k % folds`. Every clip
    /// made from a take (augmented, spliced, reversed) goes with it.
    Take(usize),
    /// Never held out: room noise and the bank, in the training set of every fold.
    Always,
}

impl Fold {
    /// True when fold `f` of `folds` holds this window out.
    pub fn held_out_in(self, f: usize, folds: usize) -> bool {
        match self {
            Fold::Take(k) => k % folds == f,
            Fold::Always => false,
        }
    }
}

impl Examples {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Features per window (`context * DIM`; 0 when there are no windows).
    fn width(&self) -> usize {
        if self.y.is_empty() {
            0
        } else {
            self.x.len() / self.y.len()
        }
    }

    /// The features of window `r`.
    pub fn features(&self, r: usize) -> &[f32] {
        let d = self.width();
        &self.x[r * d..(r + 1) * d]
    }

    /// The examples at `rows`, in that order.
    pub fn subset(&self, rows: &[usize]) -> Examples {
        Examples {
            x: rows
                .iter()
                .flat_map(|&r| self.features(r).iter().copied())
                .collect(),
            y: rows.iter().map(|&r| self.y[r]).collect(),
            fold: rows.iter().map(|&r| self.fold[r]).collect(),
            clean: rows.iter().map(|&r| self.clean[r]).collect(),
            clip: rows.iter().map(|&r| self.clip[r]).collect(),
            source: rows.iter().map(|&r| self.source[r]).collect(),
        }
    }

    /// Appends one window of class `y`.
    fn push(&mut self, features: &[f32], y: usize, clean: bool, origin: Origin) {
        self.x.extend_from_slice(features);
        self.y.push(y);
        self.fold.push(origin.fold);
        self.clean.push(clean);
        self.clip.push(origin.clip);
        self.source.push(origin.source);
    }
}

/// What the windows of one clip or sequence share.
#[derive(Clone, Copy)]
struct Origin {
    fold: Fold,
    /// The clip's number; None for continuous sequences.
    clip: Option<usize>,
    source: Source,
}

/// How a window relates to the word in its clip.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Role {
    /// It holds the whole word (or the word's end, for words longer than 0.65 s): the word's class.
    Word,
    /// It ends before the word's middle: "none".
    None,
    /// Anything between: left out.
    Ignore,
}

/// The role of a window ending at `end` (seconds) in a clip whose word spans `start..end_of_word`.
fn role(end: f64, start: f64, end_of_word: f64) -> Role {
    let d = end_of_word - start;
    if end >= end_of_word - 0.04
        && end <= end_of_word + 0.30
        && (end - WIN_SECONDS <= start + 0.10 || d > 0.65)
    {
        Role::Word
    } else if end <= start + 0.5 * d {
        Role::None
    } else {
        Role::Ignore
    }
}

/// True when window `b` has `context` windows none of which still sees the warm-up padding.
fn has_full_context(b: usize, context: usize) -> bool {
    block_end_time(b) - WIN_SECONDS >= -1e-6
        && b + 1 >= context
        && block_end_time(b + 1 - context) - WIN_SECONDS >= -1e-6
}

/// Turns clip number `id`'s embeddings into examples.
pub(super) fn clip_examples(
    clip: &Clip,
    id: usize,
    emb: &[f32],
    context: usize,
    out: &mut Examples,
) {
    let origin = Origin {
        fold: clip.fold,
        clip: Some(id),
        source: clip.source,
    };
    let n = emb.len() / DIM;
    for b in (0..n).filter(|&b| has_full_context(b, context)) {
        let r = if clip.class == 0 {
            Role::None
        } else {
            role(
                block_end_time(b),
                clip.audio.word_start,
                clip.audio.word_end,
            )
        };
        let y = match r {
            Role::Word => clip.class,
            Role::None => 0,
            Role::Ignore => continue,
        };
        let features = &emb[(b + 1 - context) * DIM..(b + 1) * DIM];
        out.push(features, y, clip.clean && y != 0, origin);
    }
}

/// Adds a continuous embedding sequence (all "none"), every `step`-th window.
pub fn sequence_examples(
    emb: &[f32],
    context: usize,
    fold: Fold,
    step: usize,
    source: Source,
    out: &mut Examples,
) {
    let n = emb.len() / DIM;
    let origin = Origin {
        fold,
        clip: None,
        source,
    };
    let mut b = context - 1;
    while b < n {
        out.push(
            &emb[(b + 1 - context) * DIM..(b + 1) * DIM],
            0,
            false,
            origin,
        );
        b += step;
    }
}

/// Builds the augmented clips for every take and embeds them into examples, then adds room
/// noise and (every so many of) the `bank` windows.
pub fn build_examples(
    emb: &mut Embedder,
    ds: &Dataset,
    bank: Option<&[f32]>,
    opts: &TrainOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<Examples> {
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let clips = make_clips(ds, opts, &mut rng);
    let total = clips.len() as u64 + 1;
    let mut ex = Examples::default();
    for (i, clip) in clips.iter().enumerate() {
        // Note: `embed_signal` computes log-mels with a new front end (and FFT plan) per clip.
        let e = embed_signal(emb, &clip.audio.samples)?;
        clip_examples(clip, i, &e, opts.context, &mut ex);
        progress(i as u64 + 1, total);
    }
    for noise in &ds.background {
        background_examples(emb, noise, opts.context, &mut ex)?;
    }
    if let Some(bank) = bank {
        let step = (bank.len() / DIM / opts.bank_max.max(1)).max(1);
        sequence_examples(
            bank,
            opts.context,
            Fold::Always,
            step,
            Source::Bank,
            &mut ex,
        );
    }
    progress(total, total);
    Ok(ex)
}

/// Room noise: every window is "none", in every fold. Recordings shorter than 1.6 s are looped;
/// windows that still see the warm-up padding are skipped.
fn background_examples(
    emb: &mut Embedder,
    noise: &[f32],
    context: usize,
    out: &mut Examples,
) -> Result<()> {
    let mut x = noise.to_vec();
    while x.len() < (1.6 * SAMPLE_RATE as f32) as usize {
        x.extend_from_within(..noise.len());
    }
    let e = embed_signal(emb, &x)?;
    let first = (WIN_SECONDS / BLOCK_SECONDS).ceil() as usize;
    if e.len() / DIM > first {
        sequence_examples(
            &e[first * DIM..],
            context,
            Fold::Always,
            1,
            Source::Background,
            out,
        );
    }
    Ok(())
}
