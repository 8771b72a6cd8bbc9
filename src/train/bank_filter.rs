//! The negative bank without the windows that hear a custom word's name.

use super::negatives::{words, Bank};
use crate::pipeline::embedding::DIM;

impl Bank {
    /// The bank's embeddings without the windows that hear one of `exclude` (the custom
    /// words' names).
    pub fn without(&self, exclude: &[String]) -> Vec<f32> {
        let banned = banned(exclude);
        if banned.is_empty() {
            return self.embeddings.clone();
        }
        // Banned windows are dropped. A `context` of consecutive windows may then straddle the
        // gap, which is harmless for negatives.
        self.window_words
            .iter()
            .enumerate()
            .filter(|(_, ws)| !ws.iter().any(|w| banned.contains(w)))
            .flat_map(|(i, _)| self.embeddings[i * DIM..(i + 1) * DIM].iter().copied())
            .collect()
    }

    /// [`Bank::without`], in place: the kept windows move down over the dropped ones, so no
    /// second copy of the bank is ever held.
    pub fn into_without(mut self, exclude: &[String]) -> Vec<f32> {
        let banned = banned(exclude);
        let mut kept = 0;
        for (i, ws) in self.window_words.iter().enumerate() {
            if !ws.iter().any(|w| banned.contains(w)) {
                self.embeddings
                    .copy_within(i * DIM..(i + 1) * DIM, kept * DIM);
                kept += 1;
            }
        }
        self.embeddings.truncate(kept * DIM);
        self.embeddings
    }
}

/// Indices into `words()` of the bank words named in `exclude` (case aside).
fn banned(exclude: &[String]) -> Vec<u16> {
    words()
        .iter()
        .enumerate()
        .filter(|(_, w)| exclude.iter().any(|e| e.eq_ignore_ascii_case(w)))
        .map(|(i, _)| i as u16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_drops_the_windows_that_hear_an_excluded_word() {
        let all = words();
        let apple = all.iter().position(|w| *w == "apple").unwrap() as u16;
        let zoo = all.iter().position(|w| *w == "zoo").unwrap() as u16;
        let b = Bank {
            embeddings: (0..3 * DIM).map(|i| (i / DIM) as f32).collect(),
            window_words: vec![vec![zoo], vec![apple, zoo], vec![]],
        };
        assert_eq!(b.without(&["Lantern".into()]), b.embeddings);
        let kept = b.without(&["APPLE".into()]);
        assert_eq!(kept.len(), 2 * DIM);
        assert_eq!((kept[0], kept[DIM]), (0.0, 2.0));
        assert_eq!(b.without(&["zoo".into(), "apple".into()]), vec![2.0; DIM]);
        for exclude in [
            vec![],
            vec!["APPLE".to_string()],
            vec!["zoo".into(), "apple".into()],
        ] {
            assert_eq!(b.clone().into_without(&exclude), b.without(&exclude));
        }
    }
}
