//! `hark reject ID|CLIP` and `hark confirm ID|CLIP`: file an event's kept clip
//! (`hark listen --keep-audio`) into the recordings, so that the next `hark train` learns from
//! it: a false trigger into `_unknown_/`, a right one into its word's folder.
//!
//! A clip is named by its event id (looked up as `<id>.wav` in the keep-audio folder from
//! `--keep-audio` or the config's `[events] keep_audio`) or by its path (the event's `"audio"`).
//! The move never replaces a file: the clip keeps its name, or gets the next free `<name>-N.wav`.
//! It is a hard link and an unlink on one filesystem, and a copy (synced), a link into place and
//! an unlink across filesystems. The event's sidecar `<id>.json` moves along when it can.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

use crate::daemon::config::Config;
use crate::daemon::keep_audio::is_event_id;
use hark::train::dataset::UNKNOWN;

/// `hark reject`'s flags.
#[derive(Args)]
pub struct ClipFlags {
    /// The event's id (its `"id"`), or the clip's path (its `"audio"`).
    #[arg(value_name = "ID|CLIP")]
    clip: String,
    /// The recordings folder.
    #[arg(long, default_value = "recordings")]
    data: PathBuf,
    /// The keep-audio folder to look ids up in [default: the config's `events.keep_audio`].
    #[arg(long, value_name = "DIR")]
    keep_audio: Option<PathBuf>,
    /// Config file [default: config/hark.toml when it exists].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `hark confirm`'s flags.
#[derive(Args)]
pub struct ConfirmFlags {
    #[command(flatten)]
    clip: ClipFlags,
    /// The word the clip says [default: the word of its event, from `<id>.json`].
    #[arg(long)]
    word: Option<String>,
}

/// `hark reject`: moves the clip into `DATA/_unknown_/`.
pub fn reject(f: &ClipFlags) -> Result<()> {
    let clip = find_clip(f)?;
    let dest = move_clip(&clip, &f.data.join(UNKNOWN))?;
    println!(
        "rejected {}: moved to {} (the next `hark train` learns not to fire on it)",
        clip.display(),
        dest.display()
    );
    Ok(())
}

/// `hark confirm`: moves the clip into `DATA/<word>/`, the word from `--word` or its event.
pub fn confirm(f: &ConfirmFlags) -> Result<()> {
    let clip = find_clip(&f.clip)?;
    let word = match &f.word {
        Some(w) => w.clone(),
        None => event_word(&clip)?,
    };
    if word.is_empty() || word.contains('/') || word.starts_with(['.', '_']) {
        bail!("--word {word:?}: not a word folder name");
    }
    let dir = f.clip.data.join(&word);
    if !dir.is_dir() {
        bail!(
            "{}: no such word folder (record the word first: `hark record {word}`)",
            dir.display()
        );
    }
    let dest = move_clip(&clip, &dir)?;
    println!(
        "confirmed {}: moved to {} as a take of {word:?} (the next `hark train` uses it)",
        clip.display(),
        dest.display()
    );
    Ok(())
}

/// The clip `f.clip` names: a path to a WAV, or an event id in the keep-audio folder.
fn find_clip(f: &ClipFlags) -> Result<PathBuf> {
    let arg = &f.clip;
    if !is_event_id(arg) {
        let p = PathBuf::from(arg);
        if p.extension().is_none_or(|x| x != "wav") {
            bail!("{arg:?} is neither an event id (like 20261129T122818.123Z-7) nor a .wav clip");
        }
        let meta = std::fs::symlink_metadata(&p).with_context(|| format!("{arg}: no such clip"))?;
        if !meta.is_file() {
            bail!("{arg}: not a regular file");
        }
        return Ok(p);
    }
    let dir = match &f.keep_audio {
        Some(d) => d.clone(),
        None => keep_audio_from_config(f.config.as_deref())?,
    };
    let p = dir.join(format!("{arg}.wav"));
    if !p.is_file() {
        bail!(
            "unknown event id {arg}: no {} (filed already, or deleted by the keep-audio caps?)",
            p.display()
        );
    }
    Ok(p)
}

/// The config's `events.keep_audio` (the given config, or config/hark.toml when it exists).
fn keep_audio_from_config(config: Option<&Path>) -> Result<PathBuf> {
    let default = Path::new("config/hark.toml");
    let cfg = match config {
        Some(p) => Config::load(p)?,
        None if default.is_file() => Config::load(default)?,
        None => Config::default(),
    };
    if cfg.events.keep_audio.as_os_str().is_empty() {
        bail!("no keep-audio folder to look the id up in: pass --keep-audio DIR (as given to `hark listen`) or set `events.keep_audio` in the config");
    }
    Ok(cfg.events.keep_audio)
}

/// The word of the event whose clip this is, from its sidecar `<id>.json`.
fn event_word(clip: &Path) -> Result<String> {
    let side = clip.with_extension("json");
    let text = std::fs::read_to_string(&side).with_context(|| {
        format!(
            "{}: cannot read the event's word from it; pass --word W",
            side.display()
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an event's JSON; pass --word W", side.display()))?;
    match v["word"].as_str() {
        Some(w) => Ok(w.to_string()),
        None => bail!("{}: has no \"word\"; pass --word W", side.display()),
    }
}

/// Moves `clip` into `dir` under its own name or the next free `<stem>-N.wav`, never replacing
/// a file; its sidecar JSON follows when its name is free. Returns the new path.
pub fn move_clip(clip: &Path, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let stem = clip
        .file_stem()
        .and_then(|s| s.to_str())
        .context("the clip's name is not UTF-8")?;
    for n in 1..10_000 {
        let name = match n {
            1 => format!("{stem}.wav"),
            _ => format!("{stem}-{n}.wav"),
        };
        let dest = dir.join(name);
        if std::fs::symlink_metadata(&dest).is_ok() {
            continue;
        }
        move_new(clip, &dest)?;
        let side = clip.with_extension("json");
        if side.is_file() && std::fs::symlink_metadata(dest.with_extension("json")).is_err() {
            let _ = move_new(&side, &dest.with_extension("json"));
        }
        return Ok(dest);
    }
    bail!("{}: no free name for {stem}.wav", dir.display())
}

/// Moves `from` to `to`, which must not exist: a hard link and an unlink, or across
/// filesystems (EXDEV) a synced copy linked into place and an unlink.
fn move_new(from: &Path, to: &Path) -> Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => copy_new(from, to)?,
        Err(e) => bail!("cannot move {} to {}: {e}", from.display(), to.display()),
    }
    std::fs::remove_file(from).with_context(|| {
        format!(
            "{}: copied to {}, but cannot remove it",
            from.display(),
            to.display()
        )
    })
}

/// Copies `from` to the free name `to` through a synced temporary file.
pub fn copy_new(from: &Path, to: &Path) -> Result<()> {
    Ok(hark::util::copy_atomic(from, to, false)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_never_replaces_and_brings_the_sidecar() {
        let d = tempfile::tempdir().unwrap();
        let keep = d.path().join("keep");
        std::fs::create_dir_all(&keep).unwrap();
        let to = d.path().join("rec/_unknown_");
        for round in 0..2 {
            std::fs::write(keep.join("a.wav"), format!("clip {round}")).unwrap();
            std::fs::write(keep.join("a.json"), format!("side {round}")).unwrap();
            let dest = move_clip(&keep.join("a.wav"), &to).unwrap();
            let want = if round == 0 { "a.wav" } else { "a-2.wav" };
            assert_eq!(dest, to.join(want));
            assert!(!keep.join("a.wav").exists());
            assert_eq!(
                std::fs::read_to_string(&dest).unwrap(),
                format!("clip {round}")
            );
            assert!(dest.with_extension("json").is_file());
        }
        assert_eq!(std::fs::read_to_string(to.join("a.wav")).unwrap(), "clip 0");
    }

    #[test]
    fn a_move_across_filesystems_copies_then_removes() {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            eprintln!("skipped: no /dev/shm to move across filesystems from");
            return;
        }
        let from = tempfile::tempdir_in(shm).unwrap();
        let to = tempfile::tempdir().unwrap();
        std::fs::write(from.path().join("c.wav"), "clip").unwrap();
        let dest = move_clip(&from.path().join("c.wav"), to.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dest).unwrap(), "clip");
        assert!(!from.path().join("c.wav").exists());
    }

    #[test]
    fn a_copy_goes_to_a_free_name_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x.wav"), "x").unwrap();
        std::fs::write(d.path().join("y.wav"), "y").unwrap();
        copy_new(&d.path().join("x.wav"), &d.path().join("z.wav")).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("z.wav")).unwrap(),
            "x"
        );
        assert!(copy_new(&d.path().join("x.wav"), &d.path().join("y.wav")).is_err());
        assert_eq!(
            std::fs::read_to_string(d.path().join("y.wav")).unwrap(),
            "y"
        );
    }
}
