//! A word's phonetic neighbours: everyday words that sound nearly like it ("three" beside
//! "tree", "cup" beside "up"), found by an edit distance between espeak-ng's phonemes of the
//! word and of a vocabulary, and said by synthetic voices as "none". A crowd says many words
//! one sound away from a custom word; the takes alone cannot tell the head which sound matters.

use std::process::{Command, Stdio};

use crate::{Error, Result};

/// Number words: among the most common words of speech, and not in the bank's list.
const NUMBERS: &str = "zero one two three four five six seven eight nine ten eleven twelve \
thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty \
seventy eighty ninety hundred thousand million";

/// Short, common words (function words and command words) that the bank's list leaves out.
const SHORT: &str = "a an and are as at be been but by can did do does for from had has he her \
him his i if in into is it its me my no not of off on or our out she so than that the their them \
then they this to too us was we were what will would you your am any back bye fine go gone here \
hey hi how let may might must nor oh ok one own per pick put see set sit ten via want way who \
why yeah yet";

/// The vocabulary the neighbours are drawn from.
pub fn vocabulary() -> Vec<&'static str> {
    let mut v: Vec<&str> = super::negatives::WORDS
        .split_whitespace()
        .chain(NUMBERS.split_whitespace())
        .chain(SHORT.split_whitespace())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// [`vocabulary`]'s words with their phonemes ([`phonemes`]).
pub fn spoken_vocabulary() -> Result<Vec<(&'static str, Vec<String>)>> {
    let words = vocabulary();
    let sounds = phonemes(&words)?;
    Ok(words.into_iter().zip(sounds).collect())
}

/// espeak-ng's phonemes of each text (one line each), stress marks dropped.
pub fn phonemes(texts: &[&str]) -> Result<Vec<Vec<String>>> {
    let input: String = texts.iter().map(|t| format!("{t}.\n")).collect();
    let tool = |message: &str| {
        let message = format!("espeak-ng: {message} (the phonemes of a word's neighbours)");
        move |e| Error::Tool {
            message,
            source: Some(e),
        }
    };
    let mut child = Command::new("espeak-ng")
        .args(["-q", "-v", "en-us", "-x", "--sep=_"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(tool("cannot run it"))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(input.as_bytes())
            .map_err(tool("cannot write the words"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(tool("cannot read the phonemes"))?;
    let lines: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(parse_line)
        .filter(|p| !p.is_empty())
        .collect();
    if lines.len() != texts.len() {
        return Err(Error::Tool {
            message: format!(
                "espeak-ng: {} lines of phonemes for {} words",
                lines.len(),
                texts.len()
            ),
            source: None,
        });
    }
    Ok(lines)
}

/// One line of `espeak-ng -x --sep=_`: phonemes split at `_` and spaces, stress dropped.
fn parse_line(line: &str) -> Vec<String> {
    line.split(['_', ' '])
        .map(|p| p.trim_matches(|c| c == '\'' || c == ',' || c == ';'))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// True for a vowel phoneme of espeak-ng's English set.
fn is_vowel(p: &str) -> bool {
    p.starts_with(|c: char| "aeiouAEIOUV@03".contains(c))
}

/// The cost of hearing `b` for `a`: 0 for the same phoneme, half for one vowel for another
/// (accents move vowels: such pairs are left to the takes), 1 otherwise.
fn substitution(a: &str, b: &str) -> f32 {
    match (a == b, is_vowel(a) && is_vowel(b)) {
        (true, _) => 0.0,
        (false, true) => 0.5,
        _ => 1.0,
    }
}

/// Edit distance between two phoneme sequences (insertions and deletions cost 1).
pub fn distance(a: &[String], b: &[String]) -> f32 {
    let mut row: Vec<f32> = (0..=b.len()).map(|j| j as f32).collect();
    for (i, pa) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = (i + 1) as f32;
        for (j, pb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1.0)
                .min(row[j] + 1.0)
                .min(diagonal + substitution(pa, pb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Up to `k` words of `vocabulary` nearest to `word` in sound, at least one whole sound away
/// (so not the word, a homophone or an accent's vowel) and at most a third of the longer
/// word's sounds plus one; nearest first, ties in the vocabulary's order. `avoid` are words
/// never chosen (the head's other words).
pub fn nearest<'v>(
    word: &[String],
    vocabulary: &[(&'v str, Vec<String>)],
    k: usize,
    avoid: &[&str],
) -> Vec<&'v str> {
    ranked(word, vocabulary, k, |w, p, d| {
        let most = 1.0 + word.len().max(p.len()) as f32 / 3.0;
        !avoid.contains(&w) && d >= 1.0 && d <= most
    })
}

/// Up to `k` words of `vocabulary` at most one sound from `word` (a consonant for another, a
/// sound more or less, a vowel for another, or none: a homophone), nearest first, ties in the
/// vocabulary's order, leaving out `word`'s own text: the words people may be heard saying for
/// it. A `tree` head from five people's takes fired on 166 of 167 other people's `three`s, a
/// `bed` head on half their `bird`s (docs/research/crowd.md).
pub fn sound_alikes<'v>(
    text: &str,
    word: &[String],
    vocabulary: &[(&'v str, Vec<String>)],
    k: usize,
) -> Vec<&'v str> {
    ranked(word, vocabulary, k, |w, _, d| {
        !w.eq_ignore_ascii_case(text) && d <= 1.0
    })
}

/// Up to `k` words of `vocabulary` that `keep` (given a word, its phonemes and their distance
/// from `word`) keeps, nearest to `word` first, ties in the vocabulary's order.
fn ranked<'v>(
    word: &[String],
    vocabulary: &[(&'v str, Vec<String>)],
    k: usize,
    keep: impl Fn(&str, &[String], f32) -> bool,
) -> Vec<&'v str> {
    let mut scored: Vec<(f32, usize)> = vocabulary
        .iter()
        .enumerate()
        .map(|(i, (w, p))| (distance(word, p), i, w, p))
        .filter(|(d, _, w, p)| keep(w, p, *d))
        .map(|(d, i, _, _)| (d, i))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    scored
        .into_iter()
        .take(k)
        .map(|(_, i)| vocabulary[i].0)
        .collect()
}

/// For each of `words` (as they are said) that has everyday words a sound away
/// ([`sound_alikes`], up to three), a note naming them.
pub fn sound_alike_notes(words: &[&str]) -> Result<Vec<String>> {
    let vocabulary = spoken_vocabulary()?;
    let notes = words
        .iter()
        .zip(phonemes(words)?)
        .filter_map(|(w, p)| {
            let near = sound_alikes(w, &p, &vocabulary, 3);
            (!near.is_empty()).then(|| {
                format!(
                    "`{w}` is a sound away from {}: people saying them may set it off \
                     (a longer word or phrase is safer; docs/research/crowd.md)",
                    near.join(", ")
                )
            })
        })
        .collect();
    Ok(notes)
}

/// Sounds a word may have before its `anyone` threshold rises.
pub const LENGTH_FREE: usize = 4;

/// An `anyone` word's threshold by its length: `base` plus `per_sound` for each sound beyond
/// [`LENGTH_FREE`], at most `most` (and never below `base`).
pub fn threshold_for(sounds: usize, base: f32, per_sound: f32, most: f32) -> f32 {
    let extra = sounds.saturating_sub(LENGTH_FREE) as f32 * per_sound;
    (base + extra).min(most.max(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        parse_line(s)
    }

    #[test]
    fn a_longer_word_has_a_higher_threshold_up_to_the_most() {
        assert_eq!(threshold_for(3, 0.3, 0.1, 0.7), 0.3);
        assert_eq!(threshold_for(4, 0.3, 0.1, 0.7), 0.3);
        assert!((threshold_for(6, 0.3, 0.1, 0.7) - 0.5).abs() < 1e-6);
        assert_eq!(threshold_for(12, 0.3, 0.1, 0.7), 0.7);
        assert_eq!(threshold_for(12, 0.8, 0.1, 0.7), 0.8);
    }

    #[test]
    fn espeak_lines_split_into_phonemes_without_stress() {
        assert_eq!(
            p("s_m_'A@_t m_'I_r_3"),
            ["s", "m", "A@", "t", "m", "I", "r", "3"]
        );
        assert_eq!(p("T_r_'i:"), ["T", "r", "i:"]);
    }

    #[test]
    fn a_consonant_away_is_one_a_vowel_away_is_half() {
        assert_eq!(distance(&p("t_r_'i:"), &p("T_r_'i:")), 1.0);
        assert_eq!(distance(&p("'V_p"), &p("k_'V_p")), 1.0);
        assert_eq!(distance(&p("f_'O@"), &p("f_'o@")), 0.5);
        assert_eq!(distance(&p("n_'aI_n"), &p("n_'aI_n")), 0.0);
        assert_eq!(distance(&p("n_'aI_n"), &p("f_'aI_v")), 2.0);
    }

    #[test]
    fn the_nearest_words_leave_out_homophones_the_far_and_the_avoided() {
        let vocab: Vec<(&str, Vec<String>)> = vec![
            ("three", p("T_r_'i:")),
            ("tree", p("t_r_'i:")),
            ("free", p("f_r_'i:")),
            ("trio", p("t_r_'i:_oU")),
            ("elephant", p("'E_l_I_f_@_n_t")),
            ("tray", p("t_r_'eI")),
        ];
        let word = p("t_r_'i:");
        assert_eq!(nearest(&word, &vocab, 2, &[]), ["three", "free"]);
        assert_eq!(nearest(&word, &vocab, 9, &["free"]), ["three", "trio"]);
    }

    #[test]
    fn sound_alikes_are_a_sound_away_at_most_homophones_and_vowels_too() {
        let vocab: Vec<(&str, Vec<String>)> = vec![
            ("bird", p("b_'3:_d")),
            ("bread", p("b_r_'E_d")),
            ("bed", p("b_'E_d")),
            ("bedroom", p("b_'E_d_r_u:_m")),
            ("head", p("h_'E_d")),
            ("bad", p("b_'a_d")),
        ];
        let bed = p("b_'E_d");
        // The word itself left out; a vowel (0.5) before a consonant or a sound more (1).
        assert_eq!(
            sound_alikes("bed", &bed, &vocab, 9),
            ["bird", "bad", "bread", "head"]
        );
        assert_eq!(sound_alikes("bed", &bed, &vocab, 2), ["bird", "bad"]);
        // A homophone (distance 0) counts, when it is another word.
        assert_eq!(sound_alikes("bead", &bed, &vocab[2..3], 9), ["bed"]);
    }

    #[test]
    fn tree_has_sound_alikes_and_smart_mirror_none() {
        if !crate::audio::synth::espeak_available() {
            return;
        }
        let notes = sound_alike_notes(&["tree", "smart mirror"]).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("`tree` is a sound away from"),
            "{notes:?}"
        );
        let vocab = spoken_vocabulary().unwrap();
        let tree = &phonemes(&["tree"]).unwrap()[0];
        let near = sound_alikes("tree", tree, &vocab, 20);
        assert!(
            near.contains(&"three") && !near.contains(&"tree"),
            "{near:?}"
        );
    }

    #[test]
    fn the_neighbours_of_tree_are_everyday_words_a_sound_away() {
        if !crate::audio::synth::espeak_available() {
            return;
        }
        let vocab = spoken_vocabulary().unwrap();
        let tree = &phonemes(&["tree"]).unwrap()[0];
        let near = nearest(tree, &vocab, 8, &["tree"]);
        assert!(
            near.contains(&"three") && !near.contains(&"tree"),
            "{near:?}"
        );
    }
}
