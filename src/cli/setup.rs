//! `hark setup`: copies the models hark runs on (the base model, the front end, the word check's
//! model and the ONNX Runtime library) from the folder it found them in into a folder of the
//! user's, checking each file's sha256, so that an installed `hark` no longer needs the clone.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

use hark::assets::{self, Assets};

/// `hark setup [--to DIR]`: copies the models into `to` (default `~/.local/share/hark/models`).
/// Files already there with the right contents are left alone; each copy is written beside its
/// place and renamed into it, so nothing half-written is ever found.
pub fn run(assets: &Assets, to: Option<&Path>) -> Result<()> {
    let dest = match to {
        Some(d) => d.to_path_buf(),
        None => assets::user_models_dir()
            .context("no home folder ($HOME is not set): say where with --to DIR")?,
    };
    if same_dir(&assets.dir, &dest) {
        println!("the models are already in {}", dest.display());
        return Ok(());
    }
    let runtime = assets.runtime_library()?;
    let files: Vec<(PathBuf, Option<&str>)> = vec![
        (assets.embedding_model(), Some(assets::EMBEDDING_SHA256)),
        (assets.melspec_model(), Some(assets::MELSPEC_SHA256)),
        (assets.word_check_model(), Some(assets::WORD_CHECK_SHA256)),
        (runtime, None),
    ];
    let mut copied = 0;
    for (src, sha) in &files {
        let rel = src
            .strip_prefix(&assets.dir)
            .expect("a file of the models folder");
        copied += usize::from(copy_checked(src, &dest.join(rel), *sha)?);
    }
    println!(
        "models in {}: {copied} file(s) copied from {}, {} already there",
        dest.display(),
        assets.dir.display(),
        files.len() - copied
    );
    Ok(())
}

/// Whether `a` and `b` are the same folder (both existing).
fn same_dir(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Copies `src` to `dest` unless `dest` already has its contents; `sha` (when pinned) is what
/// `src` must hash to. Returns whether it copied.
fn copy_checked(src: &Path, dest: &Path, sha: Option<&str>) -> Result<bool> {
    let hash = |p: &Path| {
        hark::util::sha256_file_hex(p).with_context(|| format!("{}: cannot read", p.display()))
    };
    if !src.is_file() {
        bail!(
            "{}: not found; run `bash .ci/setup` in the repository first",
            src.display()
        );
    }
    let want = hash(src)?;
    if let Some(pinned) = sha.filter(|s| *s != want) {
        bail!(
            "{}: sha256 {want}, expected {pinned}: not copying a damaged model",
            src.display()
        );
    }
    if dest.is_file() && hash(dest)? == want {
        return Ok(false);
    }
    let out = hark::util::AtomicFile::create(dest)?;
    let mut from =
        std::fs::File::open(src).with_context(|| format!("{}: cannot open", src.display()))?;
    std::io::copy(&mut from, &mut out.file())
        .with_context(|| format!("{}: cannot write", out.temp_path().display()))?;
    out.commit()?;
    if hash(dest)? != want {
        bail!(
            "{}: the copy does not match {}",
            dest.display(),
            src.display()
        );
    }
    Ok(true)
}
