//! `hark train`'s command line and its recipe: a short `--help`, the default recipe printed by
//! `--print-recipe`, and the same head, byte for byte, with no recipe, with the printed default
//! and with an empty one.

use std::path::Path;

use crate::common::{self, hark, root};
use hark::audio::synth;

/// The options `hark <command> --help` lists.
fn help_options(command: &str) -> Vec<String> {
    let (code, out, err) = hark(&[command, "--help"], &root());
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .map(str::to_string)
        .collect()
}

#[test]
fn train_help_lists_at_most_16_options_and_the_recipe() {
    let options = help_options("train");
    assert!(
        options.len() <= 16,
        "{} options: {options:#?}",
        options.len()
    );
    for flag in ["--data", "--out", "--voices", "--recipe", "--print-recipe"] {
        assert!(
            options.iter().any(|o| o.starts_with(&format!("{flag} "))),
            "{flag} missing: {options:#?}"
        );
    }
    assert!(help_options("eval")
        .iter()
        .any(|o| o.starts_with("--recipe ")));
}

#[test]
fn print_recipe_prints_the_default_or_a_files_recipe_with_its_defaults() {
    let (code, default, err) = hark(&["train", "--print-recipe"], &root());
    assert_eq!(code, 0, "{err}");
    assert!(default.contains("\n[anyone]\n") && default.contains("\nl2 = 0.3\n"));
    let tmp = tempfile::tempdir().unwrap();
    let partial = tmp.path().join("partial.toml");
    std::fs::write(&partial, "[anyone]\nl2 = 0.5\n").unwrap();
    let (code, printed, err) = hark(
        &[
            "train",
            "--print-recipe",
            "--recipe",
            partial.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(printed, default.replace("\nl2 = 0.3\n", "\nl2 = 0.5\n"));
}

/// Trains on `rec` into `out` with `extra` flags; the head's bytes.
fn head(rec: &Path, out: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["--data", rec.to_str().unwrap()];
    args.extend_from_slice(extra);
    common::train_head_with(out, &args);
    std::fs::read(out).unwrap()
}

#[test]
fn the_default_recipe_printed_or_empty_trains_the_same_head_as_none() {
    if !synth::espeak_available() {
        eprintln!("skipped: espeak-ng is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rec = d.join("recordings");
    synth::write_recordings(&rec, synth::VOICE).unwrap();
    let (code, printed, err) = hark(&["train", "--print-recipe"], &root());
    assert_eq!(code, 0, "{err}");
    let (default, empty) = (d.join("default.toml"), d.join("empty.toml"));
    std::fs::write(&default, printed).unwrap();
    std::fs::write(&empty, "# nothing changed\n").unwrap();
    let (default, empty) = (default.to_str().unwrap(), empty.to_str().unwrap());
    // `hark train`'s defaults (the bank, cross-validation and the ensemble, the word check).
    let none = head(&rec, &d.join("none.head"), &[]);
    assert!(none == head(&rec, &d.join("default.head"), &["--recipe", default]));
    assert!(none == head(&rec, &d.join("empty.head"), &["--recipe", empty]));
    // Words anyone may say: the `[anyone]` table's defaults.
    let anyone = ["--no-cv", "--no-bank", "--voices", "anyone"];
    let none = head(&rec, &d.join("anyone-none.head"), &anyone);
    let with = [&anyone[..], &["--recipe", default]].concat();
    assert!(none == head(&rec, &d.join("anyone-default.head"), &with));
}
