//! Example recordings the project makes for itself with espeak-ng, and a demo stream: what
//! `hark demo` trains on and replays, and what the integration tests use.

use std::path::Path;
use std::process::Command;

use crate::pipeline::frontend::SAMPLE_RATE;
use crate::{Error, Result};

/// The demo's custom words (none of them is in the negative bank's word list).
pub const WORDS: [&str; 3] = ["lantern", "pumpkin", "violin"];
/// Other speech in the demo stream, which must not fire (none of it is in the negative bank).
pub const OTHER: [&str; 8] = [
    "pancake",
    "saxophone",
    "cucumber",
    "blueberry",
    "helicopter",
    "spaghetti",
    "kangaroo",
    "lavender",
];

/// The demo's speaker (an espeak-ng voice).
pub const VOICE: &str = "en-us+m3";
/// Speed and pitch of the example takes: one speaker's takes vary a little.
pub const TAKES: [(u32, u32); 5] = [(150, 45), (165, 50), (140, 42), (158, 55), (172, 48)];

/// Pink-ish noise (white noise through a one-pole low-pass), deterministic.
pub fn noise(seconds: f32, rms: f32, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut y = 0.0f32;
    let mut out: Vec<f32> = (0..(seconds * SAMPLE_RATE as f32) as usize)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let w = ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5;
            y = 0.9 * y + w;
            y
        })
        .collect();
    let cur = (out.iter().map(|v| v * v).sum::<f32>() / out.len().max(1) as f32)
        .sqrt()
        .max(1e-9);
    out.iter_mut().for_each(|v| *v *= rms / cur);
    out
}

/// Writes example recordings of `voice`: `dir/<word>/take-N.wav` (5 takes each) and
/// `dir/_background_/`.
pub fn write_recordings(dir: &Path, voice: &str) -> Result<()> {
    for w in WORDS {
        let d = dir.join(w);
        std::fs::create_dir_all(&d).map_err(Error::io(&d, "cannot create"))?;
        for (i, (speed, pitch)) in TAKES.iter().enumerate() {
            let x = say(w, voice, *speed, *pitch)?;
            crate::audio::wav::write_16k(&d.join(format!("take-{}.wav", i + 1)), &x)?;
        }
    }
    let bg = dir.join(crate::train::dataset::BACKGROUND);
    std::fs::create_dir_all(&bg).map_err(Error::io(&bg, "cannot create"))?;
    for i in 0..3 {
        crate::audio::wav::write_16k(
            &bg.join(format!("room-{}.wav", i + 1)),
            &noise(2.0, 60.0, i),
        )?;
    }
    Ok(())
}

/// One spoken item in a demo stream.
#[derive(Clone, Debug)]
pub struct Spoken {
    pub text: String,
    /// True if it is one of the custom words.
    pub target: bool,
    pub start: f64,
    pub end: f64,
}

/// A stream of the custom words (new takes: other speeds and pitches than the recordings) and
/// other words, 1 s apart, over faint noise. Returns samples and what was said when.
pub fn stream(voice: &str, rounds: usize) -> Result<(Vec<f32>, Vec<Spoken>)> {
    let sr = SAMPLE_RATE as f64;
    let mut out = noise(1.0, 60.0, 99);
    let mut said = Vec::new();
    let mut k = 0;
    for r in 0..rounds {
        for (i, w) in WORDS.iter().enumerate() {
            for (text, target) in [(*w, true), (OTHER[(k) % OTHER.len()], false)] {
                k += 1;
                let speed = 145 + ((r * 7 + i * 11) % 30) as u32;
                let pitch = 40 + ((r * 5 + i * 3) % 20) as u32;
                let x = say(text, voice, speed, pitch)?;
                let x = crate::train::dataset::trim(&x).unwrap_or(x);
                let start = out.len() as f64 / sr;
                out.extend_from_slice(&x);
                said.push(Spoken {
                    text: text.to_string(),
                    target,
                    start,
                    end: out.len() as f64 / sr,
                });
                out.extend(std::iter::repeat_n(0.0, SAMPLE_RATE as usize));
            }
        }
    }
    let bed = noise(out.len() as f32 / SAMPLE_RATE as f32 + 0.1, 60.0, 7);
    out.iter_mut().zip(bed).for_each(|(a, b)| *a += b);
    Ok((out, said))
}

/// Is espeak-ng on PATH?
pub fn espeak_available() -> bool {
    Command::new("espeak-ng")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Synthesises `text` with espeak-ng, returning 16 kHz samples (int16 scale).
pub fn say(text: &str, voice: &str, speed: u32, pitch: u32) -> Result<Vec<f32>> {
    let out = Command::new("espeak-ng")
        .args([
            "-v",
            voice,
            "-s",
            &speed.to_string(),
            "-p",
            &pitch.to_string(),
            "--stdout",
            text,
        ])
        .output()
        .map_err(|e| Error::Tool {
            message: "cannot run espeak-ng (install the Debian package espeak-ng)".into(),
            source: Some(e),
        })?;
    if !out.status.success() || out.stdout.len() < 44 {
        return Err(Error::Tool {
            message: format!(
                "espeak-ng failed for voice {voice}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            source: None,
        });
    }
    // espeak-ng streams a WAV whose header carries placeholder sizes; read it by hand.
    let rate = u32::from_le_bytes(out.stdout[24..28].try_into().unwrap());
    let pcm: Vec<f32> = out.stdout[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
        .collect();
    crate::pipeline::resample::to_16k(&pcm, rate)
}
