//! Helpers shared by the integration tests: assets, speech made with espeak-ng, WAV writing.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn assets() -> hark::assets::Assets {
    hark::assets::Assets::locate(Some(&root().join("models"))).expect("models/ (run .ci/setup)")
}

/// A loopback port free a moment ago, for a service a test starts.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

pub fn hark_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hark"))
}

/// The shared data folder, or None (the caller then says it skips).
pub fn shared_data() -> Option<PathBuf> {
    let p = root().join("../shared/data");
    p.join("fsdd/0_george_0.wav").is_file().then_some(p)
}

/// Synthesises `text` with espeak-ng into 16 kHz samples (int16 scale).
pub fn say(text: &str, voice: &str, speed: u32, pitch: u32) -> Vec<f32> {
    hark::audio::synth::say(text, voice, speed, pitch).expect("espeak-ng")
}

pub fn write_wav(path: &Path, samples: &[f32]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    hark::audio::wav::write_16k(path, samples).unwrap();
}

/// Runs hark with arguments; returns (status code, stdout, stderr).
pub fn hark(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(hark_bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run hark");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Trains a head at `out` on the recordings in `data` (`hark train --no-cv` plus `extra`
/// flags), asserting it succeeds.
pub fn train_head(data: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["--no-cv", "--data", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    train_head_with(out, &args);
}

/// Trains a head at `out` with `hark train` and `args`, asserting it succeeds.
pub fn train_head_with(out: &Path, args: &[&str]) {
    let mut all = vec!["train", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, _, err) = hark(&all, &root());
    assert_eq!(code, 0, "{err}");
}

/// Runs `hark listen` on a WAV file with a config, a head and `extra` flags; asserts it exits 0
/// and returns (stdout, stderr).
pub fn listen_input(cfg: &Path, head: &Path, wav: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "listen",
        "--config",
        cfg.to_str().unwrap(),
        "--head",
        head.to_str().unwrap(),
        "--input",
        wav.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = hark(&args, &root());
    assert_eq!(code, 0, "{err}");
    (out, err)
}

/// The demo voice's stream (one round of every word) written to `dir/stream.wav`.
pub fn stream_wav(dir: &Path) -> PathBuf {
    let (stream, _) = hark::audio::synth::stream(hark::audio::synth::VOICE, 1).unwrap();
    let wav = dir.join("stream.wav");
    write_wav(&wav, &stream);
    wav
}

/// `hark listen --config CFG --head HEAD --input WAV --realtime`, run to its end.
pub fn listen_realtime(cfg: &Path, head: &Path, wav: &Path) -> std::process::Output {
    Command::new(hark_bin())
        .args(["listen", "--config", cfg.to_str().unwrap()])
        .args(["--head", head.to_str().unwrap()])
        .args(["--input", wav.to_str().unwrap(), "--realtime"])
        .current_dir(root())
        .output()
        .unwrap()
}
