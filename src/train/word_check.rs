//! The word check's enrolment: each word's takes embedded by the word model, kept in the head
//! with the rule (see [`crate::pipeline::word_check::check`]).

use crate::pipeline::head::Head;
use crate::pipeline::word_check::check::{Enrolled, Rule, MAX_UNKNOWN};
use crate::pipeline::word_check::{WordModel, WINDOW};
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

/// Each of `ds`'s words' takes (in the head's label order: the dataset's), and its newest
/// `_unknown_` takes (at most [`MAX_UNKNOWN`]), embedded.
pub fn enrol(model: &mut WordModel, ds: &Dataset, rule: Rule) -> Result<Enrolled> {
    let takes = ds
        .words
        .iter()
        .map(|(_, ts)| {
            ts.iter()
                .map(|t| model.embed(loudest_window(&t.samples)))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let unknown = newest(&ds.unknown, MAX_UNKNOWN)
        .map(|t| model.embed(loudest_window(&t.samples)))
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
