//! What every clip and every training window is tagged with: where it comes from ([`Source`])
//! and which cross-validation fold holds it out ([`Fold`]). Below `clips`, `examples` and `pool`,
//! which all speak of them.

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
    /// Synthetic voices saying a word's phonetic neighbours (see `neighbours`).
    Neighbour = 5,
}

/// How many sources there are.
pub const SOURCES: usize = 6;

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
