//! The word check in the benchmark. Heads are trained with it as `hark train` trains them
//! (unless `--no-word-check`), and every stream is decided as `hark detect` decides it: a
//! [`Heard`] gives the check each candidate's audio, cut from the stream's samples as the
//! pipeline's ear cuts it, and remembers its embedding, so that the many detectors of a sweep
//! hear each candidate once.

use std::collections::HashMap;

use crate::pipeline::head::Head;
use crate::pipeline::word_check::check::{audio_range, embedding_of, Hear};
use crate::pipeline::word_check::SharedWordModel;
use crate::train::dataset::Dataset;
use crate::Result;

/// Embeddings of a stream's audio by candidate start: what one head heard, for the next head
/// on the same stream.
pub type Memo = HashMap<u64, Option<Vec<f32>>>;

/// A stream's audio for the word check (with no model, nothing is heard).
pub struct Heard<'a> {
    model: Option<&'a SharedWordModel>,
    samples: &'a [f32],
    memo: Memo,
}

impl<'a> Heard<'a> {
    pub fn new(model: Option<&'a SharedWordModel>, samples: &'a [f32]) -> Heard<'a> {
        Self::with_memo(model, samples, Memo::new())
    }

    /// The same, remembering what another head heard on these samples.
    pub fn with_memo(
        model: Option<&'a SharedWordModel>,
        samples: &'a [f32],
        memo: Memo,
    ) -> Heard<'a> {
        Heard {
            model,
            samples,
            memo,
        }
    }

    /// What was heard, for the next head.
    pub fn into_memo(self) -> Memo {
        self.memo
    }
}

impl Hear for Heard<'_> {
    fn hear(&mut self, start: f64) -> Option<Vec<f32>> {
        let model = self.model?;
        let samples = self.samples;
        let heard = self.memo.entry(start.to_bits()).or_insert_with(|| {
            let (from, to) = audio_range(start);
            let to = (to as usize).min(samples.len());
            let audio = &samples[(from as usize).min(to)..to];
            embedding_of(&mut *model.lock().ok()?, audio)
        });
        heard.clone()
    }
}

/// Adds the word check to `head`, trained on `enrol` with `opts`, when there is a word model.
pub(super) fn enrol(
    model: Option<&SharedWordModel>,
    head: &mut Head,
    enrol: &Dataset,
    opts: &crate::train::TrainOptions,
) -> Result<()> {
    let (Some(model), Some(rule)) = (model, opts.word_check) else {
        return Ok(());
    };
    let mut m = model
        .lock()
        .map_err(|_| crate::Error::model("the word model's lock is poisoned"))?;
    let mut embed = |x: &[f32]| m.embed(x);
    let mut embeddings = crate::train::word_check::Embeddings::new(None, &mut embed);
    let synthetic = crate::train::word_check::synthetic_takes(enrol, opts)?;
    let both = (enrol, &synthetic[..]);
    let enrolled = crate::train::word_check::enrol(&mut embeddings, both, opts, rule)?;
    crate::train::word_check::attach(head, enrolled)
}
