//! Words anyone may say: besides the takes' own voices varied in training (see `clips`), more
//! takes of the word said by synthetic voices.

use crate::audio::synth_cache::SynthCache;
use crate::pipeline::head::Voices;
use crate::train::dataset::{trim, Dataset};
use crate::train::TrainOptions;
use crate::Result;

/// What a word's label says aloud: `_` and `-` are spaces.
pub fn phrase(label: &str) -> String {
    label.replace(['_', '-'], " ")
}

/// The synthetic speech a dataset is trained with besides its takes.
#[derive(Default)]
pub(super) struct Synthetic {
    /// Per word (in class order), its synthetic takes (see [`synthetic_takes`]).
    pub takes: Vec<Vec<Vec<f32>>>,
    /// The `anyone` words' phonetic neighbours, "none" (see [`neighbour_takes`]).
    pub neighbours: Vec<Vec<f32>>,
}

impl Synthetic {
    /// Both, spoken (or read from the cache) as `opts` asks.
    pub fn of(ds: &Dataset, opts: &TrainOptions) -> Result<Synthetic> {
        Ok(Synthetic {
            takes: synthetic_takes(ds, opts)?,
            neighbours: neighbour_takes(ds, opts)?,
        })
    }
}

/// Per word (in class order): `opts.anyone_synth` takes said by the voices of
/// `opts.synth_engines` for the words anyone may say (more examples of the word), and
/// `opts.mine_synth` for the others (examples of what the word is not: someone else saying it);
/// none when the count is 0 or none of the engines is installed. Read from and kept in
/// `opts.synth_cache` when it is set.
pub(super) fn synthetic_takes(ds: &Dataset, opts: &TrainOptions) -> Result<Vec<Vec<Vec<f32>>>> {
    let voices = ds.voices(opts.voices);
    let count = |v: &Voices| match v {
        Voices::Anyone => opts.anyone_synth,
        Voices::Mine => opts.mine_synth,
    };
    let wanted = voices.iter().any(|v| count(v) > 0);
    if !wanted || crate::audio::synth::installed(&opts.synth_engines).is_empty() {
        return Ok(vec![]);
    }
    let cache = opts.synth_cache.as_deref().map(SynthCache::new);
    let mut out = Vec::new();
    for (i, (word, _)) in ds.words.iter().enumerate() {
        let n = count(&voices[i]);
        if n == 0 {
            out.push(vec![]);
            continue;
        }
        let seed = word
            .bytes()
            .fold(opts.seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            });
        let said = super::negatives::say_in_voices(
            &phrase(word),
            n,
            seed,
            &opts.synth_engines,
            cache.as_ref(),
        )?;
        out.push(said.iter().filter_map(|x| trim(x)).collect());
    }
    Ok(out)
}

/// The "none" takes of the phonetic neighbours of the words anyone may say: per such word, its
/// `opts.anyone_neighbours` nearest everyday words (never one of the head's words), each said
/// `opts.neighbour_voices` times by the voices of `opts.synth_engines`. None when the count is
/// 0, no word is an `anyone` word or no engine is installed.
pub(super) fn neighbour_takes(ds: &Dataset, opts: &TrainOptions) -> Result<Vec<Vec<f32>>> {
    let voices = ds.voices(opts.voices);
    let anyone: Vec<String> = ds
        .words
        .iter()
        .zip(&voices)
        .filter(|(_, v)| **v == Voices::Anyone)
        .map(|((w, _), _)| phrase(w))
        .collect();
    let engines = crate::audio::synth::installed(&opts.synth_engines);
    if opts.anyone_neighbours == 0 || anyone.is_empty() || engines.is_empty() {
        return Ok(vec![]);
    }
    let ours: Vec<String> = ds.words.iter().map(|(w, _)| phrase(w)).collect();
    let avoid: Vec<&str> = ours.iter().map(String::as_str).collect();
    let vocabulary = super::neighbours::spoken_vocabulary()?;
    let words: Vec<&str> = anyone.iter().map(String::as_str).collect();
    let mut chosen: Vec<&str> = Vec::new();
    for word in super::neighbours::phonemes(&words)? {
        let near = super::neighbours::nearest(&word, &vocabulary, opts.anyone_neighbours, &avoid);
        chosen.extend(
            near.into_iter()
                .filter(|w| !chosen.contains(w))
                .collect::<Vec<_>>(),
        );
    }
    let cache = opts.synth_cache.as_deref().map(SynthCache::new);
    let said = super::negatives::say_each_in_voices(
        &chosen,
        opts.neighbour_voices,
        opts.seed ^ 0x6e65_6967_6862_6f75,
        &opts.synth_engines,
        cache.as_ref(),
    )?;
    Ok(said.iter().filter_map(|x| trim(x)).collect())
}
