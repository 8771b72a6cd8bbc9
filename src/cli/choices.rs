//! What `hark train` and `hark eval` share: who may say the words, the negative bank and the
//! word check on or off, and the recipe that holds every other training knob
//! ([`hark::train::recipe`]); and the [`TrainOptions`] they give.

use anyhow::Result;
use std::path::PathBuf;

use hark::train::recipe::Recipe;
use hark::train::TrainOptions;

/// The training choices on the command line.
#[derive(clap::Args, Clone)]
pub struct Choices {
    /// Who may say the words (a word's `word.toml` overrides it): `mine` (the voices that
    /// recorded it) or `anyone`.
    #[arg(long)]
    voices: Option<hark::pipeline::head::Voices>,
    /// Do not use the synthetic negative bank.
    #[arg(long)]
    no_bank: bool,
    /// No word check in the head (the detector alone decides; see docs/design.md, "The word check").
    #[arg(long)]
    no_word_check: bool,
    /// The design knobs of training, a TOML file (`hark train --print-recipe` prints the
    /// default one; a key left out keeps its default).
    #[arg(long, value_name = "FILE.toml")]
    recipe: Option<PathBuf>,
}

impl Choices {
    /// The recipe of `--recipe`, or the built-in one.
    pub fn recipe(&self) -> Result<Recipe> {
        Ok(match &self.recipe {
            Some(path) => Recipe::load(path)?,
            None => Recipe::default(),
        })
    }

    /// The recipe's training options with the command line's choices; an error naming the
    /// file, line and key for a recipe value that cannot be used.
    pub fn train_options(&self) -> Result<TrainOptions> {
        let mut o = self.recipe()?.options();
        if let Some(v) = self.voices {
            o.voices = v;
        }
        if self.no_bank {
            o.use_bank = false;
        }
        if self.no_word_check {
            o.word_check = None;
        }
        Ok(o)
    }
}

/// A float flag's value, or why it cannot be one.
fn float(s: &str) -> Result<f32, String> {
    s.trim()
        .parse::<f32>()
        .map_err(|_| format!("{s:?} is not a number"))
}

/// A finite number.
fn finite(s: &str) -> Result<f32, String> {
    float(s).and_then(|v| {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{v} is not a finite number"))
        }
    })
}

/// A finite number from `lo` to `hi`.
fn between(s: &str, lo: f32, hi: f32) -> Result<f32, String> {
    finite(s).and_then(|v| {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is not between {lo} and {hi}"))
        }
    })
}

/// A score or share: a number from 0 to 1.
pub fn score(s: &str) -> Result<f32, String> {
    between(s, 0.0, 1.0)
}
