//! The training examples as a set: per window its features (its own copy, or a slice of the
//! negative bank borrowed), class, fold, source and clip. `super` builds them from clips.

use crate::train::fold::{Fold, Source};

/// Window-level training examples, one entry per window in each field. A window's features are
/// its own copy, or (for the negative bank, the bulk of the windows) a slice of the bank's
/// embedding sequence, borrowed rather than copied: consecutive embeddings are contiguous there.
#[derive(Default)]
pub struct Examples<'a> {
    /// Features of the windows that own them, one after another.
    pub(super) own: Vec<f32>,
    /// Where each window's features begin: in `own`, or in `shared`.
    at: Vec<Features>,
    /// The borrowed sequence (the bank's embeddings).
    pub(super) shared: &'a [f32],
    /// Features per window (`context * DIM`).
    width: usize,
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

/// Where a window's features begin.
#[derive(Clone, Copy)]
enum Features {
    Own(usize),
    Shared(usize),
}

impl<'a> Examples<'a> {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// The features of window `r`.
    pub fn features(&self, r: usize) -> &[f32] {
        let d = self.width;
        match self.at[r] {
            Features::Own(o) => &self.own[o..o + d],
            Features::Shared(o) => &self.shared[o..o + d],
        }
    }

    /// The examples at `rows`, in that order (borrowed features stay borrowed).
    pub fn subset(&self, rows: &[usize]) -> Examples<'a> {
        let owned = rows
            .iter()
            .filter(|&&r| matches!(self.at[r], Features::Own(_)))
            .count();
        let mut own = Vec::with_capacity(owned * self.width);
        let at = rows
            .iter()
            .map(|&r| match self.at[r] {
                Features::Own(_) => {
                    own.extend_from_slice(self.features(r));
                    Features::Own(own.len() - self.width)
                }
                shared => shared,
            })
            .collect();
        Examples {
            own,
            at,
            shared: self.shared,
            width: self.width,
            y: rows.iter().map(|&r| self.y[r]).collect(),
            fold: rows.iter().map(|&r| self.fold[r]).collect(),
            clean: rows.iter().map(|&r| self.clean[r]).collect(),
            clip: rows.iter().map(|&r| self.clip[r]).collect(),
            source: rows.iter().map(|&r| self.source[r]).collect(),
        }
    }

    /// The examples at `rows`, in that order, all with features of their own: the windows that
    /// owned theirs keep them where they are (no copy), and the borrowed ones (the bank's) are
    /// copied after them. The fits read the windows in random order, many times over: a few
    /// megabytes packed together are read faster than windows spread over the whole bank.
    pub fn into_packed(mut self, rows: &[usize]) -> Examples<'a> {
        let width = self.width;
        let mut own = std::mem::take(&mut self.own);
        let shared = rows
            .iter()
            .filter(|&&r| matches!(self.at[r], Features::Shared(_)))
            .count();
        own.reserve_exact(shared * width);
        let at = rows
            .iter()
            .map(|&r| match self.at[r] {
                Features::Shared(o) => {
                    own.extend_from_slice(&self.shared[o..o + width]);
                    Features::Own(own.len() - width)
                }
                mine => mine,
            })
            .collect();
        let mut sub = self.subset(&[]);
        sub.own = own;
        sub.at = at;
        sub.y = rows.iter().map(|&r| self.y[r]).collect();
        sub.fold = rows.iter().map(|&r| self.fold[r]).collect();
        sub.clean = rows.iter().map(|&r| self.clean[r]).collect();
        sub.clip = rows.iter().map(|&r| self.clip[r]).collect();
        sub.source = rows.iter().map(|&r| self.source[r]).collect();
        sub
    }

    /// Appends one window of class `y`, with its own copy of `features`.
    pub(super) fn push(&mut self, features: &[f32], y: usize, clean: bool, origin: Origin) {
        self.width = features.len();
        self.at.push(Features::Own(self.own.len()));
        self.own.extend_from_slice(features);
        self.label(y, clean, origin);
    }

    /// Appends one "none" window whose features are `shared[offset..offset + width]`.
    pub(super) fn push_shared(&mut self, offset: usize, width: usize, origin: Origin) {
        self.width = width;
        self.at.push(Features::Shared(offset));
        self.label(0, false, origin);
    }

    /// Room for `more` windows (sized once rather than grown by doubling).
    pub(super) fn reserve(&mut self, more: usize) {
        self.at.reserve_exact(more);
        self.y.reserve_exact(more);
        self.fold.reserve_exact(more);
        self.clean.reserve_exact(more);
        self.clip.reserve_exact(more);
        self.source.reserve_exact(more);
    }

    fn label(&mut self, y: usize, clean: bool, origin: Origin) {
        self.y.push(y);
        self.fold.push(origin.fold);
        self.clean.push(clean);
        self.clip.push(origin.clip);
        self.source.push(origin.source);
    }
}

/// What the windows of one clip or sequence share.
#[derive(Clone, Copy)]
pub(super) struct Origin {
    pub fold: Fold,
    /// The clip's number; None for continuous sequences.
    pub clip: Option<usize>,
    pub source: Source,
}
