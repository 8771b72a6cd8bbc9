//! The training design knobs `hark train` and `hark eval` share, and the [`TrainOptions`] they
//! give.

use anyhow::{bail, Result};
use hark::train::TrainOptions;

/// Training knobs (defaults are the benchmark's choice).
#[derive(clap::Args, Clone)]
#[command(next_help_heading = "Design knobs (defaults are the benchmark's choice; see README)")]
pub struct Knobs {
    /// Consecutive embeddings per feature.
    #[arg(long)]
    context: Option<usize>,
    /// Hidden units (0 = linear softmax).
    #[arg(long)]
    hidden: Option<usize>,
    /// Augmented copies per take.
    #[arg(long)]
    augment: Option<usize>,
    #[arg(long)]
    epochs: Option<usize>,
    /// Default detection threshold written into the head.
    #[arg(long = "default-threshold")]
    default_threshold: Option<f32>,
    #[arg(long)]
    smoothing: Option<usize>,
    /// "none" weights per source: take halves, altered takes, background, bank, unknown.
    #[arg(long, value_delimiter = ',')]
    source_weights: Option<Vec<f32>>,
    #[arg(long)]
    l2: Option<f32>,
    /// Template check slack (negative disables).
    #[arg(long)]
    template_slack: Option<f32>,
    /// Do not use reversed takes as negatives.
    #[arg(long)]
    no_reversed: bool,
    /// Do not use the synthetic negative bank.
    #[arg(long)]
    no_bank: bool,
    #[arg(long)]
    bank_max: Option<usize>,
    /// Quantile of held-out similarities for the template gate.
    #[arg(long)]
    template_quantile: Option<f32>,
    /// Templates from clean takes only.
    #[arg(long)]
    clean_templates: bool,
    /// Speed perturbation range for augmented takes (e.g. 0.1 = +-10%).
    #[arg(long)]
    speed: Option<f32>,
    #[arg(long)]
    gain_db: Option<f32>,
    /// Windows a passed template check holds for.
    #[arg(long)]
    template_hold: Option<usize>,
    /// Hard-negative mining: keep this many hardest bank windows (and as many random).
    #[arg(long)]
    mine: Option<usize>,
    /// Spliced half-take negatives per take.
    #[arg(long)]
    chimeras: Option<usize>,
}

impl Knobs {
    /// The default training options with every knob given in place of its default; an error
    /// naming the flag for a value that cannot be used.
    pub fn train_options(&self) -> Result<TrainOptions> {
        let mut o = TrainOptions::default();
        macro_rules! set {
            ($($f:ident => $g:ident),*) => { $(if let Some(v) = self.$f { o.$g = v; })* };
        }
        set!(context => context, hidden => hidden, augment => augment, epochs => epochs,
             default_threshold => threshold, smoothing => smoothing,
             l2 => l2, template_slack => template_slack, bank_max => bank_max, chimeras => chimeras, template_quantile => template_quantile, speed => speed, gain_db => gain_db, mine => mine, template_hold => template_hold);
        if self.clean_templates {
            o.template_augmented = false;
        }
        if let Some(w) = &self.source_weights {
            if w.len() != o.source_weights.len() {
                bail!(
                    "--source-weights needs {} values (take halves, altered takes, background, bank, unknown), got {}: {}",
                    o.source_weights.len(),
                    w.len(),
                    w.iter().map(f32::to_string).collect::<Vec<_>>().join(",")
                );
            }
            o.source_weights.copy_from_slice(w);
        }
        if self.no_bank {
            o.use_bank = false;
        }
        if self.no_reversed {
            o.reversed = false;
        }
        Ok(o)
    }
}
