//! Window-level training examples: the clips are embedded by the base model, and each window of
//! `context` consecutive embeddings becomes one example, labelled by where it sits against the
//! word in its clip. Room noise and the synthetic bank add windows that are all "none".

use crate::Result;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::clips::{clip_count, for_each_clip, Clip};
use super::fold::{Fold, Source};
use super::recording::Recording;
use super::TrainOptions;
use crate::pipeline::embedding::{block_end_time, Embedder, Pieces, DIM, WINDOW_FRAMES};
use crate::pipeline::frontend::{BLOCK_SAMPLES, HOP, N_FFT, SAMPLE_RATE};
use crate::train::dataset::Dataset;

mod set;

pub use set::Examples;
use set::Origin;

/// Audio one embedding window hears, seconds: `WINDOW_FRAMES` frames, 0.782 s.
const WIN_SECONDS: f64 = ((WINDOW_FRAMES - 1) * HOP + N_FFT) as f64 / SAMPLE_RATE as f64;
/// Time between consecutive embeddings, seconds.
const BLOCK_SECONDS: f64 = BLOCK_SAMPLES as f64 / SAMPLE_RATE as f64;

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

/// How long after the word's end a window may end and still be the word's, seconds.
const WORD_AFTER: f64 = 0.30;

/// The role of a window ending at `end` (seconds) in a clip whose word spans `start..end_of_word`.
fn role(end: f64, start: f64, end_of_word: f64) -> Role {
    let d = end_of_word - start;
    if end >= end_of_word - 0.04
        && end <= end_of_word + WORD_AFTER
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

/// How many of `clip`'s samples its examples hear: all of a "none" clip's; of a word's, those
/// up to `WORD_AFTER` after the word (and a block more): the windows ending later are left out,
/// and the model is causal, so embedding the rest (0.15 s a clip) would be work thrown away.
fn samples_used(clip: &Clip) -> usize {
    let n = clip.audio.samples.len();
    if clip.class == 0 {
        return n;
    }
    let end = (clip.audio.word_end + WORD_AFTER) * SAMPLE_RATE as f64;
    n.min(end.ceil() as usize + BLOCK_SAMPLES)
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
pub fn build_examples<'a>(
    emb: &mut Embedder,
    ds: &Dataset,
    bank: Option<&'a [f32]>,
    opts: &TrainOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<Examples<'a>> {
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let synthetic = super::voices::Synthetic::of(ds, opts)?;
    let total = clip_count(ds, &synthetic, opts) as u64 + 1;
    let mut ex = Examples::default();
    // Each clip is embedded as soon as it is made (on every core, by sessions alike to each
    // other, so a clip's embeddings do not depend on its worker), and its samples let go.
    let mut own = emb.fastest_copies(super::pool::worker_count())?;
    let mut workers: Vec<&mut Embedder> = own.iter_mut().collect();
    let mut make = |emit: &mut dyn FnMut(Clip)| {
        for_each_clip(ds, &synthetic, opts, &mut rng, &mut |mut clip| {
            clip.audio.samples.truncate(samples_used(&clip));
            emit(clip)
        })
    };
    super::pool::embed_clips(&mut workers, &mut make, &mut |i, clip, e| {
        clip_examples(&clip, i, e, opts.context, &mut ex);
        progress((i as u64 + 1).min(total - 1), total);
    })?;
    drop(workers);
    drop(own);
    crate::util::trim_heap();
    for noise in &ds.background {
        background_examples(emb, noise, opts.context, Source::Background, &mut ex)?;
    }
    for talk in &ds.unknown_streams {
        background_examples(emb, talk, opts.context, Source::Unknown, &mut ex)?;
    }
    if let Some(bank) = bank {
        let step = (bank.len() / DIM / opts.bank_max.max(1)).max(1);
        bank_examples(bank, opts.context, step, &mut ex);
    }
    progress(total, total);
    Ok(ex)
}

/// Every `step`-th window of the bank's embedding sequence (as [`sequence_examples`] would add
/// them), borrowed rather than copied.
fn bank_examples<'a>(bank: &'a [f32], context: usize, step: usize, out: &mut Examples<'a>) {
    let origin = Origin {
        fold: Fold::Always,
        clip: None,
        source: Source::Bank,
    };
    out.shared = bank;
    let n = bank.len() / DIM;
    out.reserve((n + step).saturating_sub(context) / step);
    let mut b = context - 1;
    while b < n {
        out.push_shared((b + 1 - context) * DIM, context * DIM, origin);
        b += step;
    }
}

/// Room noise (or a long `_unknown_` recording, by `source`): every window is "none", in every
/// fold. Recordings shorter than 1.6 s are looped; windows that still see the warm-up padding
/// are skipped. A long recording is embedded piece by piece, never held whole.
fn background_examples(
    emb: &mut Embedder,
    noise: &Recording,
    context: usize,
    source: Source,
    out: &mut Examples,
) -> Result<()> {
    let min_len = (1.6 * SAMPLE_RATE as f32) as usize;
    let mut pieces = Pieces::warm(emb, 1.0, noise.len().max(min_len))?;
    if noise.len() < min_len {
        let once = noise.to_vec()?;
        let mut x = once.clone();
        while x.len() < min_len {
            x.extend_from_slice(&once);
        }
        pieces.push(&x)?;
    } else {
        noise.for_each_piece(1 << 16, |piece| pieces.push(piece))?;
    }
    let e = pieces.finish()?;
    let first = (WIN_SECONDS / BLOCK_SECONDS).ceil() as usize;
    if e.len() / DIM > first {
        sequence_examples(&e[first * DIM..], context, Fold::Always, 1, source, out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::augment::Placed;

    #[test]
    fn roles_follow_the_window_against_the_word() {
        // A 0.5 s word from 1.0 s to 1.5 s.
        assert_eq!(role(1.5, 1.0, 1.5), Role::Word);
        assert_eq!(role(1.47, 1.0, 1.5), Role::Word);
        assert_eq!(role(1.79, 1.0, 1.5), Role::Word);
        assert_eq!(role(1.45, 1.0, 1.5), Role::Ignore, "word not over yet");
        assert_eq!(
            role(1.81, 1.0, 1.5),
            Role::Ignore,
            "too long after the word"
        );
        assert_eq!(role(1.25, 1.0, 1.5), Role::None, "first half");
        assert_eq!(role(0.5, 1.0, 1.5), Role::None);
        // A 0.6 s word: a window ending at 1.89 s starts after 1.1 s and misses its beginning.
        assert_eq!(role(1.89, 1.0, 1.6), Role::Ignore);
        // Words over 0.65 s never fit a window: their end is enough.
        assert_eq!(role(1.89, 1.0, 1.7), Role::Word);
    }

    #[test]
    fn full_context_skips_the_warm_up() {
        // Window 9 is the first that hears no padding (it ends at 0.782 s).
        assert!(!has_full_context(8, 1));
        assert!(has_full_context(9, 1));
        assert!(!has_full_context(9, 2));
        assert!(has_full_context(10, 2));
        assert!(!has_full_context(0, 3));
    }

    /// `n` embeddings; every value of embedding `b` is `b`.
    fn numbered(n: usize) -> Vec<f32> {
        (0..n).flat_map(|b| [b as f32; DIM]).collect()
    }

    fn clip(class: usize, clean: bool) -> Clip {
        Clip {
            audio: Placed {
                samples: vec![],
                word_start: 1.0,
                word_end: 1.5,
                warp: 1.0,
                colour: Vec::new(),
            },
            class,
            fold: Fold::Take(3),
            clean,
            source: Source::Take,
        }
    }

    #[test]
    fn clip_windows_are_labelled_by_role_with_their_context() {
        let mut ex = Examples::default();
        clip_examples(&clip(2, true), 7, &numbered(30), 2, &mut ex);
        let ends: Vec<f64> = (10..30).map(block_end_time).collect();
        let expected: Vec<usize> = ends
            .iter()
            .filter_map(|&e| match role(e, 1.0, 1.5) {
                Role::Word => Some(2),
                Role::None => Some(0),
                Role::Ignore => None,
            })
            .collect();
        assert_eq!(ex.y, expected);
        assert!(ex.y.contains(&2) && ex.y.contains(&0));
        assert_eq!(ex.own.len(), ex.len() * 2 * DIM);
        // The first window is number 10 with its predecessor: features 9.., then 10...
        assert_eq!(ex.features(0)[0], 9.0);
        assert_eq!(ex.features(0)[DIM], 10.0);
        assert!(ex.fold.iter().all(|&f| f == Fold::Take(3)));
        assert!(ex.clip.iter().all(|&c| c == Some(7)));
        let clean: Vec<bool> = ex.y.iter().map(|&y| y != 0).collect();
        assert_eq!(ex.clean, clean, "only word windows are clean");
        // A negative clip: every full-context window is "none".
        let mut neg = Examples::default();
        clip_examples(&clip(0, false), 0, &numbered(30), 2, &mut neg);
        assert_eq!(neg.y, vec![0; 20]);
        assert!(neg.clean.iter().all(|&c| !c));
    }

    #[test]
    fn a_word_clip_cut_after_its_last_word_window_gives_the_same_examples() {
        let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
        let assets = crate::assets::Assets::locate(Some(&models)).unwrap();
        let mut emb = Embedder::load(&assets).unwrap();
        let (speech, _) = crate::audio::synth::stream(crate::audio::synth::VOICE, 1).unwrap();
        for (class, word_end) in [(1, 1.5), (2, 1.1), (0, 1.5)] {
            let mut c = clip(class, true);
            c.audio.samples = speech[4_000..4_000 + 40_000].to_vec();
            c.audio.word_end = word_end;
            let examples = |c: &Clip, emb: &mut Embedder| {
                let e =
                    crate::pipeline::embedding::embed_signal_warm(emb, &c.audio.samples, 1.0, &[]);
                let mut ex = Examples::default();
                clip_examples(c, 0, &e.unwrap(), 3, &mut ex);
                ex
            };
            let whole = examples(&c, &mut emb);
            let used = samples_used(&c);
            c.audio.samples.truncate(used);
            let cut = examples(&c, &mut emb);
            // A "none" clip is heard whole, a word's up to 0.3 s after the word and a block.
            assert_eq!(used == 40_000, class == 0, "{used}");
            assert_eq!((cut.y.clone(), cut.len()), (whole.y.clone(), whole.len()));
            assert!(whole.y.contains(&class));
            for r in 0..whole.len() {
                let d = whole.features(r).iter().zip(cut.features(r));
                assert!(d.map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) < 1e-4);
            }
        }
    }

    #[test]
    fn sequences_take_every_step_th_window() {
        let mut ex = Examples::default();
        sequence_examples(&numbered(10), 2, Fold::Always, 3, Source::Bank, &mut ex);
        assert_eq!(ex.len(), 3);
        let firsts: Vec<f32> = (0..3).map(|r| ex.features(r)[0]).collect();
        assert_eq!(firsts, vec![0.0, 3.0, 6.0]);
        assert_eq!(ex.features(2)[DIM], 7.0);
        assert_eq!(ex.y, vec![0; 3]);
        assert_eq!(ex.fold, vec![Fold::Always; 3]);
        assert_eq!(ex.clip, vec![None; 3]);
        assert_eq!(ex.source, vec![Source::Bank; 3]);
    }

    #[test]
    fn subset_keeps_the_rows_in_the_given_order() {
        let mut ex = Examples::default();
        sequence_examples(
            &numbered(6),
            1,
            Fold::Always,
            1,
            Source::Background,
            &mut ex,
        );
        clip_examples(&clip(1, true), 0, &numbered(20), 1, &mut ex);
        let sub = ex.subset(&[7, 2]);
        assert_eq!(sub.len(), 2);
        assert_eq!(sub.features(0), ex.features(7));
        assert_eq!(sub.features(1), &[2.0; DIM][..]);
        assert_eq!(sub.source, vec![Source::Take, Source::Background]);
        assert_eq!(sub.fold, vec![Fold::Take(3), Fold::Always]);
        assert_eq!(sub.clip, vec![Some(0), None]);
        assert_eq!((sub.y[1], sub.clean[1]), (0, false));
    }

    #[test]
    fn bank_windows_are_borrowed_and_equal_what_a_copy_would_hold() {
        let bank = numbered(10);
        let mut copied = Examples::default();
        sequence_examples(&bank, 2, Fold::Always, 3, Source::Bank, &mut copied);
        let mut borrowed = Examples::default();
        clip_examples(&clip(1, true), 0, &numbered(20), 2, &mut borrowed);
        let own = borrowed.len();
        bank_examples(&bank, 2, 3, &mut borrowed);
        assert_eq!(borrowed.len(), own + copied.len());
        assert_eq!(
            borrowed.own.len(),
            own * 2 * DIM,
            "bank windows are not copied"
        );
        for r in 0..copied.len() {
            assert_eq!(borrowed.features(own + r), copied.features(r));
            assert_eq!(borrowed.source[own + r], Source::Bank);
            assert_eq!(
                (borrowed.y[own + r], borrowed.fold[own + r]),
                (0, Fold::Always)
            );
        }
        // A packed subset owns them all, with the same features; own ones are not copied.
        let kept = borrowed.subset(&(0..borrowed.len()).collect::<Vec<_>>());
        let packed = kept.into_packed(&[own + 2, 0, own + 1]);
        assert_eq!(packed.own.len(), (own + 2) * 2 * DIM);
        assert_eq!(packed.features(0), copied.features(2));
        assert_eq!(packed.features(1), borrowed.features(0));
        assert_eq!(packed.features(2), copied.features(1));
        assert_eq!(packed.source, [Source::Bank, Source::Take, Source::Bank]);
        assert_eq!((packed.y[1], packed.clip[1]), (borrowed.y[0], Some(0)));
        // A subset keeps borrowed windows borrowed, and own ones its own.
        let sub = borrowed.subset(&[own + 2, 0]);
        assert_eq!(sub.own.len(), 2 * DIM);
        assert_eq!(sub.features(0), copied.features(2));
        assert_eq!(sub.features(1), borrowed.features(0));
    }
}
