//! A corpus of isolated words said by many people, laid out as Speech Commands is:
//! `ROOT/<word>/<speaker>_nohash_<n>.wav`. The index of who said what, and the split of the
//! speakers into the ones the benchmark tunes on and the ones it keeps aside.
//!
//! Speech Commands decides each speaker's split by the SHA-1 of the speaker id (its
//! `which_set`): 10% validation, 10% testing, the rest training. hark computes the same split
//! and never reads a speaker of the testing split (the data set's `testing_list.txt`, kept
//! aside to check this project), so neither that list nor its files are needed. The
//! validation speakers are this benchmark's own held-out people; the training speakers are
//! the ones it tunes on.

use crate::{Error, Result};
use sha1::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which speakers a run draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Speech Commands' training speakers: what the benchmark is tuned on.
    Tune,
    /// Its validation speakers: kept aside to check what was tuned.
    Check,
}

/// Speech Commands' split of a speaker: 0-10 validation, 10-20 testing, else training, on the
/// percentage the SHA-1 of the speaker id gives (as its `which_set` computes it).
fn percentage(speaker: &str) -> f64 {
    const MAX: u128 = (1 << 27) - 1;
    let h: [u8; 20] = sha1::Sha1::digest(speaker.as_bytes()).into();
    // The hash as a big number mod MAX+1: only its low 27 bits count.
    let low = u128::from_be_bytes(h[4..20].try_into().unwrap());
    ((low % (MAX + 1)) as f64) * (100.0 / MAX as f64)
}

/// The split a speaker belongs to; `None` for Speech Commands' testing speakers.
pub fn split_of(speaker: &str) -> Option<Split> {
    match percentage(speaker) {
        p if p < 10.0 => Some(Split::Check),
        p if p < 20.0 => None,
        _ => Some(Split::Tune),
    }
}

/// Every take of the split: word -> speaker -> files (sorted, so that a seed draws the same
/// takes on every machine).
pub struct Corpus {
    pub root: PathBuf,
    pub words: BTreeMap<String, BTreeMap<String, Vec<PathBuf>>>,
}

impl Corpus {
    /// Indexes `root`, keeping the speakers of `split`. Folders that start with `_` (noise)
    /// and files that are not `<speaker>_nohash_<n>.wav` are left out.
    pub fn load(root: &Path, split: Split) -> Result<Corpus> {
        let mut words: BTreeMap<String, BTreeMap<String, Vec<PathBuf>>> = BTreeMap::new();
        let dirs = std::fs::read_dir(root).map_err(Error::io(root, "cannot read the corpus"))?;
        for d in dirs.flatten() {
            let word = d.file_name().to_string_lossy().to_string();
            if word.starts_with('_') || !d.path().is_dir() {
                continue;
            }
            let files = std::fs::read_dir(d.path()).map_err(Error::io(d.path(), "cannot read"))?;
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                let Some((speaker, _)) = name.split_once("_nohash_") else {
                    continue;
                };
                if name.ends_with(".wav") && split_of(speaker) == Some(split) {
                    let by = words.entry(word.clone()).or_default();
                    by.entry(speaker.to_string()).or_default().push(f.path());
                }
            }
        }
        words.retain(|_, s| !s.is_empty());
        words
            .values_mut()
            .flat_map(|s| s.values_mut())
            .for_each(|f| f.sort());
        if words.len() < 4 {
            return Err(Error::invalid(root, format!("found {} word folders of <speaker>_nohash_<n>.wav files; expected a Speech Commands-style corpus (see docs/benchmarks.md)", words.len())));
        }
        Ok(Corpus {
            root: root.to_path_buf(),
            words,
        })
    }

    /// The corpus of only the speakers `keep` says yes to (words left with none are left out).
    pub fn only(&self, keep: &dyn Fn(&str) -> bool) -> Corpus {
        let words = self
            .words
            .iter()
            .map(|(w, by)| {
                let by = by.iter().filter(|(s, _)| keep(s));
                (w.clone(), by.map(|(s, f)| (s.clone(), f.clone())).collect())
            })
            .filter(|(_, by): &(String, BTreeMap<String, Vec<PathBuf>>)| !by.is_empty())
            .collect();
        Corpus {
            root: self.root.clone(),
            words,
        }
    }

    /// The number of distinct speakers and of takes.
    pub fn counts(&self) -> (usize, usize) {
        let mut speakers = std::collections::HashSet::new();
        let mut takes = 0;
        for (s, f) in self.words.values().flatten() {
            speakers.insert(s);
            takes += f.len();
        }
        (speakers.len(), takes)
    }
}

/// The word a corpus file says: its folder's name.
pub fn word_of(path: &str) -> &str {
    let mut parts = path.rsplit('/');
    parts.next();
    parts.next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_the_one_speech_commands_computes() {
        // Computed with Python's hashlib from `which_set`'s formula.
        for (speaker, want) in [
            ("0a7c2a8d", 56.836387),
            ("00004f28", 9.668689),
            ("0001847e", 13.236310),
            ("c0445658", 76.037702),
        ] {
            let p = percentage(speaker);
            assert!((p - want).abs() < 1e-5, "{speaker}: {p}, want {want}");
        }
        assert_eq!(split_of("00004f28"), Some(Split::Check));
        assert_eq!(split_of("0001847e"), None);
        assert_eq!(split_of("0a7c2a8d"), Some(Split::Tune));
        // About 10% of ids fall in each of the two small splits.
        let ids: Vec<String> = (0..4000).map(|i| format!("{i:08x}")).collect();
        let check = ids
            .iter()
            .filter(|s| split_of(s) == Some(Split::Check))
            .count();
        let test = ids.iter().filter(|s| split_of(s).is_none()).count();
        assert!((300..500).contains(&check), "{check}");
        assert!((300..500).contains(&test), "{test}");
    }

    #[test]
    fn a_file_says_its_folders_word() {
        assert_eq!(word_of("/c/sheila/0a7c2a8d_nohash_0.wav"), "sheila");
    }
}
