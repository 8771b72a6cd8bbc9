//! `hark train` on long recordings: a long `_background_` clip is cut at 600 s with a note,
//! read and embedded in pieces, and kept on disk rather than in memory, so the peak stays low.

use crate::common;

/// A long, 16 kHz, noisy recording: a hum and a hiss that changes every second.
fn room(seconds: usize) -> Vec<f32> {
    let mut seed = 0x2545_f491_u32;
    (0..seconds * 16_000)
        .map(|i| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let hiss = (seed >> 16) as f32 / 65_536.0 - 0.5;
            let level = 200.0 + (i / 16_000 % 7) as f32 * 150.0;
            hiss * level + (i as f32 * 0.0196).sin() * 300.0
        })
        .collect()
}

#[test]
fn train_on_a_long_background_clip_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    for (word, pitch) in [("lantern", 40), ("pumpkin", 60)] {
        for (i, speed) in [140, 160, 180].into_iter().enumerate() {
            let take = common::say(word, "en-us", speed, pitch);
            common::write_wav(&rec.join(word).join(format!("take-{i}.wav")), &take);
        }
    }
    // 610 s: 39 MB of samples as f32, of which 600 s are used.
    common::write_wav(&rec.join("_background_").join("tv.wav"), &room(610));
    let head = dir.path().join("h.head");
    let (code, out, err) = common::hark(
        &[
            "train",
            "--no-cv",
            "--no-bank",
            // What this guards is the clip's handling; the word check's model is a fixed cost
            // on top (docs/design.md, "The word check").
            "--no-word-check",
            "--data",
            rec.to_str().unwrap(),
            "--out",
            head.to_str().unwrap(),
        ],
        &common::root(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("tv.wav: only its first 600 s are used"),
        "{out}"
    );
    let peak: f64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("peak memory: "))
        .and_then(|v| v.trim_end_matches(" MB").parse().ok())
        .unwrap_or_else(|| panic!("no peak memory in {out}"));
    // Holding the clip (38 MB) and its log-mel frames whole peaked at about 110 MB.
    assert!(peak < 80.0, "peak memory {peak} MB");
}

#[test]
fn a_long_clip_with_nowhere_to_wait_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    common::write_wav(&rec.join("_background_").join("tv.wav"), &room(61));
    let out = std::process::Command::new(common::hark_bin())
        .args(["train", "--no-bank", "--data", rec.to_str().unwrap()])
        .arg("--out")
        .arg(dir.path().join("h.head"))
        .current_dir(common::root())
        .env("TMPDIR", dir.path().join("missing"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("missing: cannot write a long recording")
            && err.contains("set TMPDIR")
            && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(!dir.path().join("h.head").exists());
}
