//! The word check's enrolment: each word's takes (and an `anyone` word's synthetic takes, and
//! the `_unknown_` takes) embedded by the word model, kept in the head with the rule (see
//! [`crate::pipeline::word_check::check`]). [`Embeddings`] keeps each clip's embedding between
//! trainings.

use crate::pipeline::head::{Head, Voices};
use crate::pipeline::word_check::check::{Enrolled, Rule, MAX_UNKNOWN};
use crate::pipeline::word_check::{WordModel, DIM, WINDOW};
use crate::train::dataset::{Dataset, Take};
use crate::Result;

/// The part of a take the word model hears: all of it when it fits in the model's 1.5 s (the
/// model centres it in silence), else the 1.5 s that hold the most energy.
pub fn loudest_window(x: &[f32]) -> &[f32] {
    if x.len() <= WINDOW {
        return x;
    }
    let energy = |v: &f32| (*v as f64) * (*v as f64);
    let mut sum: f64 = x[..WINDOW].iter().map(energy).sum();
    let (mut best, mut at) = (sum, 0);
    for i in WINDOW..x.len() {
        sum += energy(&x[i]) - energy(&x[i - WINDOW]);
        if sum > best {
            (best, at) = (sum, i + 1 - WINDOW);
        }
    }
    &x[at..at + WINDOW]
}

/// Where `hark train` keeps the embeddings, in the models folder.
pub const CACHE_DIR: &str = ".word-check";

/// The synthetic takes of `ds`'s words as training makes them from `opts` (spoken, or read
/// from `opts.synth_cache`), for [`enrol`]: none when no word is an `anyone` word (only
/// theirs are enrolled).
pub fn synthetic_takes(
    ds: &Dataset,
    opts: &crate::train::TrainOptions,
) -> Result<Vec<Vec<Vec<f32>>>> {
    if !ds.voices(opts.voices).contains(&Voices::Anyone) {
        return Ok(vec![]);
    }
    super::voices::synthetic_takes(ds, opts)
}

/// Embeds clips for the word check, through a cache: each clip's embedding is kept in `dir`
/// (one 8 KB file named by the sha256 of the model's and the clip's), so that a retraining
/// embeds only new clips and loads the model only if there is one.
pub struct Embeddings<'a> {
    dir: Option<std::path::PathBuf>,
    model: &'a mut dyn FnMut(&[f32]) -> Result<Vec<f32>>,
    /// (clips read from the cache, clips embedded).
    pub counts: (usize, usize),
}

/// A word model that loads on its first use: for [`Embeddings::new`].
pub fn lazy_model(assets: &crate::assets::Assets) -> impl FnMut(&[f32]) -> Result<Vec<f32>> + '_ {
    let mut model: Option<WordModel> = None;
    move |x| {
        if model.is_none() {
            model = Some(WordModel::load(assets)?);
        }
        model.as_mut().expect("loaded above").embed(x)
    }
}

impl<'a> Embeddings<'a> {
    /// Embeddings kept in `dir` (`None`: none kept), made by `model` (the word model's
    /// [`WordModel::embed`]) for the clips the cache does not hold.
    pub fn new(
        dir: Option<std::path::PathBuf>,
        model: &'a mut dyn FnMut(&[f32]) -> Result<Vec<f32>>,
    ) -> Embeddings<'a> {
        Embeddings {
            dir,
            model,
            counts: (0, 0),
        }
    }

    /// The unit embedding of the loudest 1.5 s of `x` (16 kHz, int16 scale).
    pub fn embed(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let x = loudest_window(x);
        let path = self.dir.as_ref().map(|d| d.join(key(x)));
        if let Some(e) = path.as_deref().and_then(read_cached) {
            self.counts.0 += 1;
            return Ok(e);
        }
        let e = (self.model)(x)?;
        self.counts.1 += 1;
        if let Some(p) = path {
            let bytes = crate::util::f32_le_bytes(&e);
            // A cache that cannot be written only costs time next run.
            let _ = std::fs::create_dir_all(p.parent().unwrap_or(&p))
                .map_err(|e| e.to_string())
                .and_then(|_| crate::util::write_atomic(&p, &bytes).map_err(|e| e.to_string()));
        }
        Ok(e)
    }
}

/// A clip's cache file name: the sha256 of the model's sha256, its stages' (as hark runs it)
/// and the clip's samples.
fn key(x: &[f32]) -> String {
    let mut bytes = crate::assets::WORD_CHECK_SHA256.as_bytes().to_vec();
    for sha in crate::assets::WORD_CHECK_STAGE_SHA256 {
        bytes.extend(sha.as_bytes());
    }
    bytes.extend(crate::util::f32_le_bytes(x));
    format!("{}.f32", crate::util::sha256_hex(&bytes))
}

/// A cached embedding, if the file holds one whole (anything else is embedded again).
fn read_cached(p: &std::path::Path) -> Option<Vec<f32>> {
    let bytes = std::fs::read(p).ok()?;
    if bytes.len() != DIM * 4 {
        return None;
    }
    let e = crate::util::f32s_from_le_bytes(&bytes);
    e.iter().all(|v| v.is_finite()).then_some(e)
}

/// Each of `ds`'s words' takes (in the head's label order: the dataset's), an `anyone` word's
/// `synthetic` takes too (from [`synthetic_takes`]), and the newest `_unknown_` takes (at most
/// [`MAX_UNKNOWN`]), embedded.
pub fn enrol(
    embeddings: &mut Embeddings,
    (ds, synthetic): (&Dataset, &[Vec<Vec<f32>>]),
    opts: &crate::train::TrainOptions,
    rule: Rule,
) -> Result<Enrolled> {
    let voices = ds.voices(opts.voices);
    let mut takes = Vec::with_capacity(ds.words.len());
    for (w, (_, ts)) in ds.words.iter().enumerate() {
        let mut embedded = Vec::with_capacity(ts.len());
        for t in ts {
            embedded.push(embeddings.embed(&t.samples)?);
        }
        if voices.get(w) == Some(&Voices::Anyone) {
            for t in synthetic.get(w).into_iter().flatten() {
                embedded.push(embeddings.embed(t)?);
            }
        }
        takes.push(embedded);
    }
    let unknown = newest(&ds.unknown, MAX_UNKNOWN)
        .map(|t| embeddings.embed(&t.samples))
        .collect::<Result<Vec<_>>>()?;
    Ok(Enrolled {
        model_sha256: crate::assets::WORD_CHECK_SHA256.to_string(),
        rule,
        takes,
        unknown,
    })
}

/// The `n` newest of `takes` (by their files' modification times; all when there are no more).
fn newest(takes: &[Take], n: usize) -> impl Iterator<Item = &Take> {
    let mut by_age: Vec<(std::time::SystemTime, &Take)> = takes
        .iter()
        .map(|t| {
            let modified = std::fs::metadata(&t.path).and_then(|m| m.modified());
            (modified.unwrap_or(std::time::UNIX_EPOCH), t)
        })
        .collect();
    by_age.sort_by_key(|a| std::cmp::Reverse(a.0));
    by_age.into_iter().take(n).map(|(_, t)| t)
}

/// Puts `enrolled` into `head`, whose words must be the dataset's it was made from.
pub fn attach(head: &mut Head, enrolled: Enrolled) -> Result<()> {
    enrolled
        .check(head.labels.len())
        .map_err(crate::Error::Data)?;
    head.word_check = Some(enrolled);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_take_is_heard_where_it_is_loudest() {
        let short = vec![1.0; 100];
        assert_eq!(loudest_window(&short).len(), 100);
        let mut x = vec![0.0f32; WINDOW * 3];
        x[WINDOW * 2 + 10] = 5.0;
        let w = loudest_window(&x);
        assert_eq!(w.len(), WINDOW);
        assert!(w.contains(&5.0));
        // The earliest window that holds it.
        assert_eq!(w.as_ptr(), x[WINDOW + 11..].as_ptr());
    }
}
