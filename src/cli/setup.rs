//! `hark setup`: copies the models hark runs on (the base model, the front end, the word check's
//! model and the ONNX Runtime library) from the folder it found them in into a folder of the
//! user's, checking each file's sha256, so that an installed `hark` no longer needs the clone.

use anyhow::{bail, Context, Result};
use std::path::Path;

use hark::assets::{self, Assets};

/// `hark setup [--to DIR]`: copies the models into `to` (default `~/.local/share/hark/models`).
/// Files already there with the right contents are left alone; each copy is written beside its
/// place and renamed into it, so nothing half-written is ever found.
pub fn run(assets: &Assets, to: Option<&Path>) -> Result<()> {
    // Large blocks mapped on their own, so that each copy's session gives its memory back.
    hark::util::one_malloc_arena();
    let dest = match to {
        Some(d) => d.to_path_buf(),
        None => assets::user_models_dir()
            .context("no home folder ($HOME is not set): say where with --to DIR")?,
    };
    if same_dir(&assets.dir, &dest) {
        let made = runtime_copies(assets)?;
        println!("the models are already in {}{made}", dest.display());
        return Ok(());
    }
    let runtime = assets.runtime_library()?;
    let pinned = [
        (
            assets.embedding_model(),
            assets::EMBEDDING_SHA256,
            "base model",
        ),
        (assets.melspec_model(), assets::MELSPEC_SHA256, "front end"),
        (
            assets.word_check_model(),
            assets::WORD_CHECK_SHA256,
            "word check model",
        ),
    ];
    let stages = assets::WORD_CHECK_STAGE_SHA256.iter().enumerate();
    let stages = stages.map(|(k, sha)| (assets.word_check_stage(k + 1), *sha, "word check stage"));
    let mut files = Vec::new();
    for (src, sha, what) in pinned.into_iter().chain(stages) {
        assets.check_file(&src, sha, what)?;
        files.push((src, sha.to_string()));
    }
    let sha = hash(&runtime)?;
    files.push((runtime, sha));
    let mut copied = 0;
    for (src, sha) in &files {
        let rel = src
            .strip_prefix(&assets.dir)
            .expect("a file of the models folder");
        copied += usize::from(copy_checked(src, &dest.join(rel), sha)?);
    }
    let made = runtime_copies(&Assets::locate(Some(&dest))?)?;
    println!(
        "models in {}: {copied} file(s) copied from {}, {} already there{made}",
        dest.display(),
        assets.dir.display(),
        files.len() - copied
    );
    Ok(())
}

/// Makes the copies in ONNX Runtime's format that `hark listen` maps, where missing; what it
/// made, as the end of a sentence.
fn runtime_copies(assets: &Assets) -> Result<String> {
    let made = hark::pipeline::runtime_copies(assets, true)?;
    Ok(match made {
        0 => String::new(),
        1 => format!(
            "; 1 copy in ONNX Runtime's format made in {}",
            assets.cache_dir().display()
        ),
        n => format!(
            "; {n} copies in ONNX Runtime's format made in {}",
            assets.cache_dir().display()
        ),
    })
}

/// Whether `a` and `b` are the same folder (both existing).
fn same_dir(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// The sha256 of file `p`.
fn hash(p: &Path) -> Result<String> {
    hark::util::sha256_file_hex(p).with_context(|| format!("{}: cannot read", p.display()))
}

/// Copies `src`, whose sha256 is `want`, to `dest` unless `dest` already has its contents.
/// Returns whether it copied.
fn copy_checked(src: &Path, dest: &Path, want: &str) -> Result<bool> {
    if dest.is_file() && hash(dest)? == want {
        return Ok(false);
    }
    hark::util::copy_atomic(src, dest, true)?;
    if hash(dest)? != want {
        bail!(
            "{}: the copy does not match {}",
            dest.display(),
            src.display()
        );
    }
    Ok(true)
}
