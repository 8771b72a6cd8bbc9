//! `hark train --voices anyone` keeps its synthetic takes in `models/.cache`: the second train
//! runs no speech engine for the words and writes the very same head; a damaged cache entry is
//! spoken again, not trusted.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common;
use hark::audio::synth;

/// Synthetic takes per word.
const TAKES: usize = 12;

/// The engine `name` on PATH, if installed.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A folder of scripts named as the engines that append their arguments to `log` and run the
/// real engine.
fn logging_engines(dir: &Path, log: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["espeak-ng", "flite", "text2wave"] {
        let Some(real) = which(name) else { continue };
        let script = format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        );
        let p = bin.join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// A models folder of links to the repository's base model and runtime, with its own cache.
fn models_dir(dir: &Path) -> PathBuf {
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    for name in ["base", "runtime"] {
        let real = common::root().join("models").join(name);
        std::os::unix::fs::symlink(real.canonicalize().unwrap(), models.join(name)).unwrap();
    }
    models
}

/// Trains the recordings for anyone with the logging engines first on PATH; returns the head's
/// bytes.
fn train(models: &Path, rec: &Path, out: &Path, bin: &Path) -> Vec<u8> {
    let recipe = out.with_extension("recipe.toml");
    std::fs::write(&recipe, format!("[anyone]\nsynth = {TAKES}\n")).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin.to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    let run = Command::new(common::hark_bin())
        .args([
            "--models",
            models.to_str().unwrap(),
            "train",
            "--no-cv",
            "--no-bank",
        ])
        .args(["--voices", "anyone", "--recipe", recipe.to_str().unwrap()])
        .args(["--data", rec.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .env("PATH", std::env::join_paths(dirs).unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    std::fs::read(out).unwrap()
}

/// The engine runs logged that said one of the words, and empties the log.
fn word_runs(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    std::fs::write(log, "").unwrap();
    text.lines()
        .filter(|l| synth::WORDS.iter().any(|w| l.contains(w)))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_second_anyone_train_reads_its_synthetic_takes_from_the_cache() {
    if which("espeak-ng").is_none() {
        eprintln!("skipped: espeak-ng is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("recordings");
    synth::write_recordings(&rec, synth::VOICE).unwrap();
    let log = tmp.path().join("engines.log");
    let bin = logging_engines(tmp.path(), &log);
    let models = models_dir(tmp.path());
    let first = train(&models, &rec, &tmp.path().join("1.head"), &bin);
    let spoken = word_runs(&log);
    // Every synthetic take of every word, each spoken once.
    assert_eq!(spoken.len(), 3 * TAKES, "{spoken:#?}");
    let cache = models.join(".cache");
    // The synthetic takes (the word check's model in the runtime's format lies there too).
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "take"))
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 3 * TAKES, "{entries:?}");

    let second = train(&models, &rec, &tmp.path().join("2.head"), &bin);
    assert_eq!(
        word_runs(&log),
        Vec::<String>::new(),
        "a cached take was spoken again"
    );
    assert!(first == second, "the head from the cache differs");

    // A damaged entry and one cut short are spoken again and replaced; the head is the same.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    bytes[20] ^= 0x40;
    std::fs::write(&entries[0], &bytes).unwrap();
    let cut = std::fs::read(&entries[1]).unwrap();
    std::fs::write(&entries[1], &cut[..cut.len() / 2]).unwrap();
    let third = train(&models, &rec, &tmp.path().join("3.head"), &bin);
    assert_eq!(word_runs(&log).len(), 2);
    assert!(
        first == third,
        "the head after rebuilding damaged entries differs"
    );
    assert_eq!(std::fs::read(&entries[1]).unwrap().len(), cut.len());
}
