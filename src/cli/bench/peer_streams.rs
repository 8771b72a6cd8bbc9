//! openWakeWord 0.5.1 beside `hark bench --streams`: one `Model` per stream in one Python
//! process, as its Wyoming server runs them, fed the same audio as hark's clients (each stream
//! from its own start) in real time: every 80 ms, one `predict` per stream. The script measures
//! its CPU time over the streaming alone and prints its own `VmHWM`.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

use super::stream_audio::StreamAudio;

/// The real-time loop; prints `cpu`, `delay_p95`, `delay_max`, `seconds` and `peak memory`.
const SCRIPT: &str = r#"
import sys, os, time, wave, numpy as np, openwakeword
from openwakeword.model import Model
d = os.path.join(os.path.dirname(openwakeword.__file__), "resources", "models")
path, n, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
offs = [int(v) for v in sys.argv[4].split(",")]
w = wave.open(path); x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
models = [Model(wakeword_models=[os.path.join(d, "alexa_v0.1.onnx")], inference_framework="onnx",
                melspec_model_path=os.path.join(d, "melspectrogram.onnx"),
                embedding_model_path=os.path.join(d, "embedding_model.onnx")) for _ in range(n)]
rounds = length // 1280
delays = []
c0 = time.process_time(); t0 = time.monotonic()
for k in range(rounds):
    due = t0 + (k + 1) * 0.08
    now = time.monotonic()
    if now < due:
        time.sleep(due - now)
    for i in range(n):
        o = offs[i] + k * 1280
        models[i].predict(x[o:o + 1280])
    delays.append(time.monotonic() - due)
cpu = time.process_time() - c0
delays.sort()
print(f"cpu {cpu:.4f}", file=sys.stderr)
print(f"delay_p95 {delays[int(round((len(delays) - 1) * 0.95))]:.4f}", file=sys.stderr)
print(f"delay_max {delays[-1]:.4f}", file=sys.stderr)
print(f"seconds {rounds * 0.08:.3f}", file=sys.stderr)
hwm = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")]
print(f"peak memory {int(hwm[0]) / 1024:.1f} MB", file=sys.stderr)
"#;

/// One row of openWakeWord's side.
pub struct PeerRow {
    pub n: usize,
    /// CPU seconds per second of audio per stream, over the streaming alone.
    pub cpu: f64,
    /// 95th percentile and worst of how late a round of `predict` calls (one per stream)
    /// finished after its 80 ms of audio had come, seconds.
    pub delay_p95: f64,
    pub delay_max: f64,
    pub peak_mb: f64,
}

impl PeerRow {
    /// Did it keep up: every round done within 1 s of its audio (p95 and worst)?
    pub fn kept_up(&self) -> bool {
        self.delay_p95 <= 1.0 && self.delay_max <= 2.0
    }
}

/// Runs `n` openWakeWord models in real time on the benchmark's audio.
pub fn run(models: &Path, dir: &Path, audio: &StreamAudio, n: usize) -> Result<PeerRow> {
    let py = super::peer_python(models)?;
    let script = dir.join("oww_streams.py");
    std::fs::write(&script, SCRIPT)
        .with_context(|| format!("cannot write {}", script.display()))?;
    let wav = dir.join("streams.wav");
    if !wav.is_file() {
        let x: Vec<f32> = audio.doubled.iter().map(|&v| v as f32).collect();
        hark::audio::wav::write_16k(&wav, &x)?;
    }
    let offsets: Vec<String> = audio.offsets(n).iter().map(|o| o.to_string()).collect();
    let out = Command::new(&py)
        .arg(&script)
        .arg(&wav)
        .arg(n.to_string())
        .arg(audio.len.to_string())
        .arg(offsets.join(","))
        .output()
        .with_context(|| format!("cannot run {}", py.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("openWakeWord with {n} models failed: {}", err.trim());
    }
    let field = |name: &str| -> Result<f64> {
        err.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("MB").trim().parse().ok())
            .with_context(|| format!("openWakeWord script printed no {name:?}: {}", err.trim()))
    };
    let seconds = field("seconds ")?;
    Ok(PeerRow {
        n,
        cpu: field("cpu ")? / seconds / n as f64,
        delay_p95: field("delay_p95 ")?,
        delay_max: field("delay_max ")?,
        peak_mb: field("peak memory ")?,
    })
}
