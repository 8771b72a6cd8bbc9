//! `hark record`: a guided session that records takes of a word (or room noise) from the
//! microphone, with a countdown and a live level meter; rejects clipped, silent or too long
//! takes with the reason and asks again; writes 16 kHz mono 16-bit WAV files and never
//! overwrites an existing take.

use anyhow::{bail, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::daemon::sources::microphone::{self, Pool, SourceStats};
use hark::pipeline::frontend::SAMPLE_RATE;

/// Why a take is refused, if it is.
pub fn take_problem(x: &[f32], window_seconds: f32) -> Option<String> {
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let clipped = x.iter().filter(|v| v.abs() >= 32600.0).count();
    if clipped > 8 {
        return Some(format!(
            "clipped ({clipped} samples at full scale): speak a little further from the microphone"
        ));
    }
    let Some(t) = hark::train::dataset::trim(x) else {
        return Some(format!(
            "silent (peak {:.0} dBFS): speak closer to the microphone",
            20.0 * (peak.max(1.0) / 32768.0).log10()
        ));
    };
    let secs = t.len() as f32 / SAMPLE_RATE as f32;
    if secs > hark::train::dataset::MAX_TAKE_SECONDS.min(window_seconds - 0.3) {
        return Some(format!(
            "too long ({secs:.1} s of sound): say just the word, once"
        ));
    }
    // Sound running into either edge of the window means the word was cut.
    let edge = (0.05 * SAMPLE_RATE as f32) as usize;
    let db = |s: &[f32]| {
        10.0 * (s.iter().map(|v| v * v).sum::<f32>() / s.len().max(1) as f32 + 1e-3).log10()
    };
    let max_db = x.chunks(160).map(db).fold(f32::NEG_INFINITY, f32::max);
    if x.len() > 2 * edge
        && (db(&x[..edge]) > max_db - 15.0 || db(&x[x.len() - edge..]) > max_db - 15.0)
    {
        return Some(
            "cut off at the start or end: wait for the prompt, and finish before the time is up"
                .into(),
        );
    }
    None
}

/// The next free `take-N.wav` in `dir`.
fn next_path(dir: &Path, stem: &str) -> PathBuf {
    (1..)
        .map(|n| dir.join(format!("{stem}-{n}.wav")))
        .find(|p| !p.exists())
        .unwrap()
}

/// Records one stream of `seconds` into the next free `dir/<stem>-N.wav`: room noise (`room`)
/// or other speech for `_unknown_` (`stream`), which training uses window by window.
fn record_stream(dir: &Path, stem: &str, seconds: f32, device: &str) -> Result<()> {
    let most = hark::train::dataset::MAX_BACKGROUND_SECONDS;
    if !(seconds >= 0.5 && seconds <= most) {
        bail!("--seconds {seconds}: not between 0.5 and {most:.0}");
    }
    let what = match stem {
        "room" => "room noise: stay quiet, keep the room as it usually is",
        _ => "other speech (TV, radio, talk) that must not fire: none of your words",
    };
    eprintln!("Recording {seconds:.0} s of {what}.");
    let x = capture_for(device, seconds, stem)?;
    let p = next_path(dir, stem);
    write_new(&p, &x)?;
    println!("saved {}", p.display());
    Ok(())
}

/// Writes without ever replacing an existing file.
fn write_new(path: &Path, samples: &[f32]) -> Result<()> {
    Ok(hark::audio::wav::write_16k_new(path, samples)?)
}

/// Records `seconds` from the device, showing a level meter; returns 16 kHz samples.
fn capture_for(device: &str, seconds: f32, label: &str) -> Result<Vec<f32>> {
    let pool = Pool::new();
    let stats = Arc::new(SourceStats::default());
    let cap = microphone::start(device, pool.full_tx.clone(), pool.free_rx.clone(), stats)?;
    let rate = cap.rate;
    let want = (seconds * rate as f32) as usize;
    let mut got: Vec<f32> = Vec::with_capacity(want);
    let t0 = Instant::now();
    let mut err = std::io::stderr();
    // The meter redraws in place, so only on a terminal, and at most 20 times a second.
    let meter = std::io::IsTerminal::is_terminal(&err);
    let mut drawn = Instant::now()
        .checked_sub(Duration::from_secs(1))
        .unwrap_or_else(Instant::now);
    let mut peak_since = 0.0f32;
    while got.len() < want {
        if t0.elapsed() > Duration::from_secs_f32(seconds + 5.0) {
            bail!("capture device {:?} delivered no audio", cap.device);
        }
        let Ok(chunk) = pool.full_rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let s = chunk.samples();
        peak_since = s.iter().fold(peak_since, |m, v| m.max(v.abs()));
        got.extend_from_slice(&s[..s.len().min(want - got.len())]);
        let _ = pool.free_tx.send(chunk);
        if !meter || (drawn.elapsed() < Duration::from_millis(50) && got.len() < want) {
            continue;
        }
        drawn = Instant::now();
        let db = 20.0 * (peak_since.max(1.0) / 32768.0).log10();
        peak_since = 0.0;
        let bars = ((db + 60.0) / 60.0 * 30.0).clamp(0.0, 30.0) as usize;
        let _ = write!(
            err,
            "\r  {label} [{:<30}] {:>5.1} dBFS  {:.1} s ",
            "#".repeat(bars),
            db,
            got.len() as f32 / rate as f32
        );
        let _ = err.flush();
    }
    if meter {
        let _ = writeln!(err);
    }
    drop(cap);
    Ok(hark::pipeline::resample::to_16k(&got, rate)?)
}

/// Records `count` takes of `word` into `data/word/`; or, as one stream, `seconds` of room noise
/// for `_background_` (10 s by default) or of other speech for `_unknown_` (when `seconds` is
/// given; `_unknown_` without it records takes).
pub fn record(
    data: &Path,
    word: &str,
    count: usize,
    seconds: Option<f32>,
    device: &str,
) -> Result<()> {
    if word.is_empty()
        || word.contains('/')
        || word.starts_with('.')
        || word.chars().any(char::is_control)
    {
        bail!("{word:?} is not a usable word name (it becomes a folder name)");
    }
    // The folder is made with the first saved take, so a failed recording leaves none behind.
    let dir = data.join(word);
    let mut err = std::io::stderr();
    use hark::train::dataset::{BACKGROUND, UNKNOWN};
    match (word, seconds) {
        (BACKGROUND, s) => return record_stream(&dir, "room", s.unwrap_or(10.0), device),
        (UNKNOWN, Some(s)) => return record_stream(&dir, "stream", s, device),
        _ => {}
    }
    let window = 2.5f32;
    let mut saved = 0;
    let mut tries = 0;
    while saved < count {
        tries += 1;
        if tries > count * 4 {
            bail!(
                "gave up after {} tries; check the microphone with `hark devices` and its level",
                tries - 1
            );
        }
        let _ = write!(
            err,
            "Take {}/{count}: say {word:?} when you see GO ",
            saved + 1
        );
        for n in (1..=3).rev() {
            let _ = write!(err, "{n}.. ");
            let _ = err.flush();
            std::thread::sleep(Duration::from_millis(600));
        }
        let _ = writeln!(err, "GO");
        let x = capture_for(device, window, word)?;
        if let Some(why) = take_problem(&x, window) {
            let _ = writeln!(err, "  take refused: {why}. Again.");
            continue;
        }
        let trimmed = hark::train::dataset::trim(&x).unwrap_or(x);
        let p = next_path(&dir, "take");
        write_new(&p, &trimmed)?;
        saved += 1;
        println!(
            "saved {} ({:.2} s)",
            p.display(),
            trimmed.len() as f32 / SAMPLE_RATE as f32
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(len: usize, amp: f32, at: usize, total: usize) -> Vec<f32> {
        let mut x: Vec<f32> = (0..total).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        for (i, v) in x.iter_mut().enumerate().skip(at).take(len) {
            *v = (i as f32 * 0.3).sin() * amp;
        }
        x
    }

    #[test]
    fn refuses_clipped_silent_long_and_cut_takes_and_accepts_a_good_one() {
        assert!(take_problem(&word(8000, 9000.0, 12000, 40000), 2.5).is_none());
        assert!(take_problem(&word(8000, 40000.0, 12000, 40000), 2.5)
            .unwrap()
            .starts_with("clipped"));
        assert!(take_problem(&word(8000, 0.0, 12000, 40000), 2.5)
            .unwrap()
            .starts_with("silent"));
        assert!(take_problem(&word(36000, 9000.0, 2000, 40000), 2.5)
            .unwrap()
            .starts_with("too long"));
        assert!(take_problem(&word(8000, 9000.0, 0, 40000), 2.5)
            .unwrap()
            .starts_with("cut off"));
    }

    #[test]
    fn never_overwrites_an_existing_take() {
        let dir = std::env::temp_dir().join(format!("hark-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("take-1.wav"), b"mine").unwrap();
        let p = next_path(&dir, "take");
        assert_eq!(p.file_name().unwrap(), "take-2.wav");
        assert!(write_new(&dir.join("take-1.wav"), &[0.0; 100]).is_err());
        assert_eq!(std::fs::read(dir.join("take-1.wav")).unwrap(), b"mine");
        write_new(&p, &[0.0; 100]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
