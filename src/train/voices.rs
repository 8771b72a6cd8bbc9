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

/// Per word (in class order): `opts.anyone_synth` takes said by the voices of
/// `opts.synth_engines` for the words anyone may say, none for the others (or when none of the
/// engines is installed). Read from and kept in `opts.synth_cache` when it is set.
pub(super) fn synthetic_takes(ds: &Dataset, opts: &TrainOptions) -> Result<Vec<Vec<Vec<f32>>>> {
    let voices = ds.voices(opts.voices);
    let wanted = opts.anyone_synth > 0 && voices.contains(&Voices::Anyone);
    if !wanted || crate::audio::synth::installed(&opts.synth_engines).is_empty() {
        return Ok(vec![]);
    }
    let cache = opts.synth_cache.as_deref().map(SynthCache::new);
    let mut out = Vec::new();
    for (i, (word, _)) in ds.words.iter().enumerate() {
        if voices[i] != Voices::Anyone {
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
            opts.anyone_synth,
            seed,
            &opts.synth_engines,
            cache.as_ref(),
        )?;
        out.push(said.iter().filter_map(|x| trim(x)).collect());
    }
    Ok(out)
}
