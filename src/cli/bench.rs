//! `hark bench`: what hark costs, against openWakeWord 0.5.1 (its ONNX backend, fed the same
//! file in 80 ms chunks through `Model.predict`) and against the floor (one base-model
//! inference per 80 ms), measured in one run on the same machine so that load cancels out.
//! Every process is measured by the kernel: user+system CPU time from `wait4`, and peak RSS
//! from the process's own `VmHWM`, which it prints as it ends (`wait4`'s peak RSS would count
//! this benchmark's own memory at the time of the spawn).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

use hark::pipeline::frontend::SAMPLE_RATE;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub data: PathBuf,
    /// Minutes of speech+noise and of quiet room for the streaming figures.
    pub minutes: f32,
    /// Minutes of audio for the offline figure.
    pub offline_minutes: f32,
    /// Measure openWakeWord too (installs it into models/.venv-oww on first use).
    pub peer: bool,
    /// Seeds of the accuracy benchmark used for the latency figure.
    pub latency_seeds: u64,
    pub hark: PathBuf,
}

/// CPU seconds and peak RSS of a finished child process.
pub struct Usage {
    pub cpu: f64,
    /// `wait4`'s figure: an upper bound, as Linux counts the parent's resident set at the time
    /// of the spawn into the child's peak.
    pub max_rss_kb: i64,
    /// The child's own `VmHWM`, when it printed it on stderr (`hark listen` does, in its
    /// summary; the peer script does too).
    pub own_peak_kb: Option<u64>,
    pub wall: f64,
}

impl Usage {
    /// The best figure for the child's peak RSS, kB.
    pub fn peak_kb(&self) -> f64 {
        self.own_peak_kb
            .map_or(self.max_rss_kb as f64, |k| k as f64)
    }
}

/// Runs a command to completion and measures it with wait4.
pub fn measure(cmd: &mut Command) -> Result<Usage> {
    let t0 = std::time::Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let pid = child.id() as i32;
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let stderr = child.stderr;
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let err = err_thread.join().unwrap_or_default();
    if r < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{cmd:?} failed: {}", err.trim());
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let own_peak_kb = err
        .lines()
        .rev()
        .filter_map(|l| l.split("peak memory ").nth(1))
        .filter_map(|v| v.trim().trim_end_matches("MB").trim().parse::<f64>().ok())
        .map(|mb| (mb * 1024.0) as u64)
        .next();
    Ok(Usage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_kb: ru.ru_maxrss,
        own_peak_kb,
        wall: t0.elapsed().as_secs_f64(),
    })
}

const PEER_SCRIPT: &str = r#"
import sys, wave, numpy as np, openwakeword, os
from openwakeword.model import Model
d = os.path.join(os.path.dirname(openwakeword.__file__), "resources", "models")
m = Model(wakeword_models=[os.path.join(d, "alexa_v0.1.onnx")], inference_framework="onnx",
          melspec_model_path=os.path.join(d, "melspectrogram.onnx"),
          embedding_model_path=os.path.join(d, "embedding_model.onnx"))
w = wave.open(sys.argv[1]); x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
for i in range(0, len(x) - 1279, 1280):
    m.predict(x[i:i + 1280])
hwm = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")]
if hwm: print(f"peak memory {int(hwm[0]) / 1024:.1f} MB", file=sys.stderr)
"#;

/// The peer's Python: a virtual environment with openWakeWord 0.5.1 and onnxruntime.
fn peer_python(models: &Path) -> Result<PathBuf> {
    let venv = models.join(".venv-oww");
    let py = venv.join("bin/python");
    let ok = |py: &Path| {
        Command::new(py)
            .args(["-c", "import openwakeword, onnxruntime"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok(&py) {
        return Ok(py);
    }
    eprintln!(
        "bench: installing openWakeWord 0.5.1 into {} (once)",
        venv.display()
    );
    let run = |c: &mut Command| -> Result<()> {
        let o = c.output()?;
        if !o.status.success() {
            bail!("{c:?}: {}", String::from_utf8_lossy(&o.stderr));
        }
        Ok(())
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    let pip = venv.join("bin/pip");
    // openwakeword 0.5.1 lists tflite-runtime for Linux; its ONNX backend does not need it.
    run(Command::new(&pip).args(["install", "-q", "--no-deps", "openwakeword==0.5.1"]))?;
    run(Command::new(&pip).args([
        "install",
        "-q",
        "onnxruntime==1.32.0",
        "numpy",
        "scipy",
        "scikit-learn",
        "tqdm",
    ]))?;
    if !ok(&py) {
        bail!(
            "{}: openWakeWord does not import after installation",
            py.display()
        );
    }
    Ok(py)
}

/// CPU seconds of `n` base-model inferences on this thread: the floor. This is the original
/// `embedding_model.onnx` on a whole 76-frame window, as openWakeWord and a plain port run it,
/// with ONNX Runtime's default (all) graph optimisations.
fn floor_cpu(assets: &hark::assets::Assets, n: usize) -> Result<f64> {
    use hark::pipeline::embedding::WINDOW_FRAMES;
    use hark::pipeline::frontend::N_MELS;
    let mut session = hark::assets::session_fastest(assets, &assets.embedding_model())?;
    let mut window = vec![0.5f32; WINDOW_FRAMES * N_MELS];
    let len = window.len();
    let mut sum = 0.0f32;
    let cpu = || {
        let mut t: libc::timespec = unsafe { std::mem::zeroed() };
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
    };
    let t0 = cpu();
    for i in 0..n {
        window[i % len] = 1.0 + (i % 7) as f32 * 0.1;
        let input = ort::value::TensorRef::from_array_view((
            [1usize, WINDOW_FRAMES, N_MELS, 1],
            &window[..],
        ))?;
        let outputs = session.run(ort::inputs![input])?;
        sum += outputs[0].try_extract_tensor::<f32>()?.1[0];
    }
    let t = cpu() - t0;
    std::hint::black_box(sum);
    Ok(t)
}

/// Runs every figure; returns the table as Markdown lines.
pub fn run(assets: &hark::assets::Assets, o: &BenchOptions) -> Result<Vec<String>> {
    let dir = tempfile_dir()?;
    let sr = SAMPLE_RATE as f32;
    let n_items = ((o.minutes * 60.0) / 1.6).max(5.0) as usize;
    let speech = hark::eval::speech_stream(&o.data, 7, n_items)?;
    let speech_s = speech.len() as f64 / sr as f64;
    let speech_wav = dir.join("speech.wav");
    hark::audio::wav::write_16k(&speech_wav, &speech)?;
    let quiet = hark::audio::synth::noise(speech_s as f32, 8.0, 3);
    let quiet_wav = dir.join("quiet.wav");
    hark::audio::wav::write_16k(&quiet_wav, &quiet)?;
    let rec = dir.join("recordings");
    hark::audio::synth::write_recordings(&rec, hark::audio::synth::VOICE)?;
    let head = dir.join("bench.head");
    let models = std::fs::canonicalize(&assets.dir)?;
    let hark = |args: &[&str]| {
        let mut c = Command::new(&o.hark);
        c.args(args).arg("--models").arg(&models);
        c
    };
    let train = measure(
        hark(&[
            "train",
            "--no-cv",
            "--data",
            rec.to_str().unwrap(),
            "--out",
            head.to_str().unwrap(),
        ])
        .current_dir(&dir),
    )?;
    let listen = |wav: &Path| -> Result<Usage> {
        measure(
            hark(&[
                "listen",
                "--quiet",
                "--head",
                head.to_str().unwrap(),
                "--socket",
                dir.join("b.sock").to_str().unwrap(),
                "--input",
                wav.to_str().unwrap(),
            ])
            .current_dir(&dir),
        )
    };
    let h_speech = listen(&speech_wav)?;
    let h_quiet = listen(&quiet_wav)?;
    let floor = floor_cpu(assets, (speech_s / 0.08) as usize)?;
    // Offline: the speech stream repeated to `offline_minutes`.
    let reps = ((o.offline_minutes as f64 * 60.0) / speech_s)
        .ceil()
        .max(1.0) as usize;
    let long: Vec<f32> = speech
        .iter()
        .copied()
        .cycle()
        .take(speech.len() * reps)
        .collect();
    let long_s = long.len() as f64 / sr as f64;
    let long_wav = dir.join("long.wav");
    hark::audio::wav::write_16k(&long_wav, &long)?;
    drop(long);
    let offline = measure(
        hark(&[
            "detect",
            "--head",
            head.to_str().unwrap(),
            long_wav.to_str().unwrap(),
        ])
        .current_dir(&dir),
    )?;
    let (p_speech, p_quiet) = if o.peer {
        let py = peer_python(&assets.dir)?;
        let script = dir.join("oww_bench.py");
        std::fs::write(&script, PEER_SCRIPT)?;
        (
            Some(measure(Command::new(&py).arg(&script).arg(&speech_wav))?),
            Some(measure(Command::new(&py).arg(&script).arg(&quiet_wav))?),
        )
    } else {
        (None, None)
    };
    let lat = if o.latency_seeds > 0 {
        let eo = hark::eval::EvalOptions {
            data: o.data.clone(),
            seeds: (1..=o.latency_seeds).collect(),
            takes: 5,
            train: hark::train::TrainOptions {
                cross_validate: false,
                ..Default::default()
            },
            cross_speaker: false,
            sweep: vec![],
            write_streams: None,
            targets_per_word: 20,
            nontargets: 120,
            explain: false,
            gate: true,
        };
        let res = hark::eval::run(assets, &eo, &mut |_| {})?;
        Some(res[0].1[0].1.clone())
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&dir);

    let per = |u: &Usage, s: f64| u.cpu / s;
    let ratio = |a: f64, b: Option<f64>| b.map_or("-".to_string(), |b| format!("{:.3}", a / b));
    let pct = |x: f64| format!("{:.4} ({:.2}% of a core)", x, x * 100.0);
    let mut t = vec![
        "| figure | hark | openWakeWord 0.5.1 | hark / openWakeWord | target |".to_string(),
        "| --- | --- | --- | --- | --- |".to_string(),
    ];
    let hs = per(&h_speech, speech_s);
    let ps = p_speech.as_ref().map(|u| per(u, speech_s));
    t.push(format!("| 1. streaming cost, CPU-s per s of audio ({:.0} s speech + noise, 80 ms chunks) | {} | {} | {} | <= 0.4 |", speech_s, pct(hs), ps.map_or("-".into(), pct), ratio(hs, ps)));
    t.push(format!("| 1b. the floor: one base-model inference per 80 ms | {} | | hark / floor {:.2} | <= 1.2 |", pct(floor / speech_s), hs / (floor / speech_s)));
    let hq = per(&h_quiet, speech_s);
    let pq = p_quiet.as_ref().map(|u| per(u, speech_s));
    t.push(format!(
        "| 2. quiet-room cost, CPU-s per s (low noise, no speech) | {} | {} | {} | <= 0.1 |",
        pct(hq),
        pq.map_or("-".into(), pct),
        ratio(hq, pq)
    ));
    t.push(format!("| 3. offline `hark detect`, {:.0} min of audio | {:.0}x real time ({:.1} CPU-s) | | | >= 150x |", long_s / 60.0, long_s / offline.cpu, offline.cpu));
    // wait4's figure stands in only when a process did not print its own, and says so.
    let mb = |u: &Usage| {
        let note = if u.own_peak_kb.is_some() {
            ""
        } else {
            " (wait4: an upper bound)"
        };
        format!("{:.1} MB{note}", u.peak_kb() / 1024.0)
    };
    t.push(format!(
        "| 4. peak RSS of the process (its own VmHWM), speech file | {} | {} | {} | <= 40 MB |",
        mb(&h_speech),
        p_speech.as_ref().map_or("-".into(), mb),
        ratio(h_speech.peak_kb(), p_speech.as_ref().map(|u| u.peak_kb()))
    ));
    t.push(format!("| 5. training 3 words x 5 takes + noise, end to end | {:.2} s wall ({:.2} CPU-s) | | | <= 3 s |", train.wall, train.cpu));
    if let Some(l) = lat {
        t.push(format!(
            "| 6. latency after the word's end, {} seeds of the accuracy benchmark ({} hits) | median {:.0} ms, p95 {:.0} ms | | | <= 250 / 400 ms |",
            o.latency_seeds,
            l.hits,
            l.latency(0.5) * 1000.0,
            l.latency(0.95) * 1000.0
        ));
    }
    Ok(t)
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("hark-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
