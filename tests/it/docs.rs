//! The project's own files. The README is a newcomer's guide, at most 500 lines (the rest is in
//! docs/). And the files of README.md, src/, tests/ and docs/ speak of the project alone: none
//! dates a figure or a default by a work session (the word and a number, the regex
//! `(?i)\bsessions? [0-9]+`, here with any whitespace between them), but by a calendar date or a
//! release.

use std::path::{Path, PathBuf};

use crate::common;

/// The README's longest allowed length, in lines.
const README_MAX_LINES: usize = 500;

#[test]
fn readme_is_at_most_500_lines() {
    let text = std::fs::read_to_string(common::root().join("README.md")).expect("README.md");
    let lines = text.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move the rest to docs/"
    );
}

/// Is `b` part of a word, for the regex's `\b` (ASCII letters, digits and `_`)?
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The 1-based line numbers of `text` where the word "session" or "sessions" (any case, at
/// the start of a word) is followed by whitespace and a digit.
fn session_mentions(text: &[u8]) -> Vec<usize> {
    const WORD: &[u8] = b"session";
    let mut found = Vec::new();
    for start in 0..text.len() {
        if !text[start..].starts_with_ignore_case(WORD) {
            continue;
        }
        if start > 0 && is_word_byte(text[start - 1]) {
            continue;
        }
        let mut i = start + WORD.len();
        if i < text.len() && text[i].eq_ignore_ascii_case(&b's') {
            i += 1;
        }
        let gap = text[i..]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        if gap > 0 && text.get(i + gap).is_some_and(u8::is_ascii_digit) {
            found.push(1 + text[..start].iter().filter(|&&b| b == b'\n').count());
        }
    }
    found
}

/// Case-insensitive `starts_with` on bytes.
trait StartsWithIgnoreCase {
    fn starts_with_ignore_case(&self, prefix: &[u8]) -> bool;
}

impl StartsWithIgnoreCase for [u8] {
    fn starts_with_ignore_case(&self, prefix: &[u8]) -> bool {
        self.len() >= prefix.len() && self[..prefix.len()].eq_ignore_ascii_case(prefix)
    }
}

/// Every file below `path` (or `path` itself), symbolic links not followed. Build output
/// (`target/`, Python's `__pycache__/`), which git ignores, is not the project's writing.
fn files(path: &Path, out: &mut Vec<PathBuf>) {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    if meta.is_file() {
        out.push(path.to_path_buf());
    } else if meta.is_dir() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "target" || name == "__pycache__" {
            return;
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{path:?}: {e}"))
            .map(|e| e.expect("a folder entry").path())
            .collect();
        entries.sort();
        for e in entries {
            files(&e, out);
        }
    }
}

#[test]
fn readme_and_docs_date_nothing_by_work_session() {
    let root = common::root();
    let mut all = Vec::new();
    for top in ["README.md", "src", "tests", "docs"] {
        files(&root.join(top), &mut all);
    }
    assert!(
        all.len() > 100,
        "only {} files found below {root:?}",
        all.len()
    );
    let mut mentions = Vec::new();
    for path in &all {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        for line in session_mentions(&bytes) {
            let rel = path.strip_prefix(&root).unwrap_or(path);
            mentions.push(format!("{}:{line}", rel.display()));
        }
    }
    assert!(
        mentions.is_empty(),
        "dated by work session instead of a calendar date or release: {}",
        mentions.join(", ")
    );
}

#[test]
fn docs_session_matcher_finds_what_the_rule_forbids_and_nothing_else() {
    // Built at run time, so that this file does not say what it forbids.
    let w = ["sess", "ion"].concat();
    let upper = w.to_uppercase();
    for (text, lines) in [
        (format!("as in {w} 22's defaults"), vec![1]),
        (format!("the defaults of {upper}S 15-21"), vec![1]),
        (format!("one line\nbefore {w}\n16 began"), vec![2]),
        (format!("({w}\t3)"), vec![1]),
        (format!("an ONNX {w} is built"), vec![]),
        (format!("{w}s are 2"), vec![]),
        (format!("ob{w} 3"), vec![]),
        (format!("{w}_2 and {w}-2"), vec![]),
        (w.clone(), vec![]),
    ] {
        assert_eq!(session_mentions(text.as_bytes()), lines, "{text:?}");
    }
}
