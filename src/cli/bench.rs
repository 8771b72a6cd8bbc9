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

mod page_cache;
mod peer_streams;
mod soak;
mod stream_audio;
mod streams;
mod wyoming_load;

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
    /// `--streams`: the numbers of Wyoming clients for the many-streams benchmark (empty: the
    /// single-stream figures instead).
    pub streams: Vec<usize>,
    /// `--quick`: the short check.
    pub quick: bool,
    /// `--soak`: hours of audio for the soak benchmark (see [`soak`]) instead of the table.
    pub soak_hours: Option<f64>,
    /// `--rss-slack`: the soak's bound on VmRSS growth, MB.
    pub soak_rss_slack_mb: f64,
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

/// Every measurement the table reports.
struct Figures {
    /// Length of the speech stream (and of the quiet one), seconds.
    speech_s: f64,
    /// `hark train` on the demo recordings.
    train: Usage,
    /// `hark listen` on the speech and on the quiet stream.
    speech: Usage,
    quiet: Usage,
    /// `hark listen` on the speech stream with `word_check = false`.
    unchecked: Usage,
    /// `speech` and `unchecked` again, with the files they map out of the page cache
    /// (`speech` and `unchecked` ran with them read through, as right after set-up).
    cold: (Usage, Usage),
    /// openWakeWord on the same two streams, when measured.
    peer_speech: Option<Usage>,
    peer_quiet: Option<Usage>,
    /// CPU seconds of one base-model inference per 80 ms of the speech stream.
    floor: f64,
    /// `hark detect` on `offline_s` seconds of audio.
    offline: Usage,
    offline_s: f64,
    /// The accuracy benchmark's summed default-threshold score, for the latency figure.
    latency: Option<hark::eval::Score>,
}

/// `hark bench`: the cost benchmark's table (from [`bench::run`]) and how long it took.
pub fn report(o: &BenchOptions, assets: &hark::assets::Assets) -> Result<()> {
    if let Some(hours) = o.soak_hours {
        return soak::report(o, assets, hours);
    }
    if !o.streams.is_empty() {
        return report_streams(o, assets);
    }
    let t0 = std::time::Instant::now();
    for line in run(assets, o)? {
        println!("{line}");
    }
    println!(
        "\n(measured in {:.0} s; CPU times by wait4 per process; peak RSS is each process's own VmHWM)",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `hark bench --streams`: many Wyoming clients on one `hark serve` (see [`streams`]).
fn report_streams(o: &BenchOptions, assets: &hark::assets::Assets) -> Result<()> {
    let dir = tempfile_dir()?;
    let recordings = dir.join("recordings");
    hark::audio::synth::write_recordings(&recordings, hark::audio::synth::VOICE)?;
    let hark = Hark {
        exe: o.hark.clone(),
        models: std::fs::canonicalize(&assets.dir)?,
        dir: dir.clone(),
    };
    let res = streams::report(o, &dir, &hark);
    let _ = std::fs::remove_dir_all(&dir);
    res
}

/// Runs every figure; returns the table as Markdown lines.
pub fn run(assets: &hark::assets::Assets, o: &BenchOptions) -> Result<Vec<String>> {
    let dir = tempfile_dir()?;
    let audio = Audio::prepare(o, &dir)?;
    let hark = Hark {
        exe: o.hark.clone(),
        models: std::fs::canonicalize(&assets.dir)?,
        dir: dir.clone(),
    };
    let head = dir.join("bench.head");
    let train = hark.train(&audio.recordings, &head)?;
    let mapped = page_cache::mapped_files(&hark.exe, &hark.models, &assets.cache_dir());
    page_cache::warm(&mapped);
    let speech = hark.listen(&head, &audio.speech_wav)?;
    let unchecked = hark.listen_unchecked(&head, &audio.speech_wav)?;
    page_cache::evict(&mapped);
    let speech_cold = hark.listen(&head, &audio.speech_wav)?;
    page_cache::evict(&mapped);
    let unchecked_cold = hark.listen_unchecked(&head, &audio.speech_wav)?;
    let quiet = hark.listen(&head, &audio.quiet_wav)?;
    let floor = floor_cpu(assets, (audio.speech_s / 0.08) as usize)?;
    let (offline_s, offline) = offline(&hark, &head, &audio, o.offline_minutes)?;
    let (peer_speech, peer_quiet) = if o.peer {
        let (s, q) = peer(assets, &dir, &audio)?;
        (Some(s), Some(q))
    } else {
        (None, None)
    };
    let latency = latency(assets, o)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(table(
        o,
        &Figures {
            speech_s: audio.speech_s,
            train,
            speech,
            unchecked,
            cold: (speech_cold, unchecked_cold),
            quiet,
            peer_speech,
            peer_quiet,
            floor,
            offline,
            offline_s,
            latency,
        },
    ))
}

/// The benchmark's audio, written into its temporary folder.
struct Audio {
    /// Speech + noise from the accuracy benchmark's data: the streaming figures' input.
    speech: Vec<f32>,
    speech_s: f64,
    speech_wav: PathBuf,
    /// Low noise without speech, as long as the speech stream.
    quiet_wav: PathBuf,
    /// The demo recordings (3 words x 5 takes + noise) that `hark train` learns from.
    recordings: PathBuf,
}

impl Audio {
    fn prepare(o: &BenchOptions, dir: &Path) -> Result<Audio> {
        let n_items = ((o.minutes * 60.0) / 1.6).max(5.0) as usize;
        let speech = hark::eval::speech_stream(&o.data, 7, n_items)?;
        let speech_s = speech.len() as f64 / SAMPLE_RATE as f64;
        let speech_wav = dir.join("speech.wav");
        hark::audio::wav::write_16k(&speech_wav, &speech)?;
        let quiet = hark::audio::synth::noise(speech_s as f32, 8.0, 3);
        let quiet_wav = dir.join("quiet.wav");
        hark::audio::wav::write_16k(&quiet_wav, &quiet)?;
        let recordings = dir.join("recordings");
        hark::audio::synth::write_recordings(&recordings, hark::audio::synth::VOICE)?;
        Ok(Audio {
            speech,
            speech_s,
            speech_wav,
            quiet_wav,
            recordings,
        })
    }
}

/// The `hark` binary under test, run in the benchmark's folder on the given models.
struct Hark {
    exe: PathBuf,
    models: PathBuf,
    dir: PathBuf,
}

impl Hark {
    /// Measures `hark <args> --models <models>`, run in the benchmark's folder.
    fn measure(&self, args: &[&str]) -> Result<Usage> {
        let mut c = Command::new(&self.exe);
        c.args(args).arg("--models").arg(&self.models);
        measure(c.current_dir(&self.dir))
    }

    /// `hark train --no-cv` on the recordings, end to end.
    fn train(&self, recordings: &Path, head: &Path) -> Result<Usage> {
        self.measure(&[
            "train",
            "--no-cv",
            "--data",
            recordings.to_str().unwrap(),
            "--out",
            head.to_str().unwrap(),
        ])
    }

    /// `hark listen` on a file: the streaming cost.
    fn listen(&self, head: &Path, wav: &Path) -> Result<Usage> {
        self.listen_with(head, wav, &[])
    }

    /// [`Hark::listen`] with `word_check = false` (a config of that key alone).
    fn listen_unchecked(&self, head: &Path, wav: &Path) -> Result<Usage> {
        let config = self.dir.join("unchecked.toml");
        std::fs::write(&config, "word_check = false\n")?;
        self.listen_with(head, wav, &["--config", config.to_str().unwrap()])
    }

    fn listen_with(&self, head: &Path, wav: &Path, more: &[&str]) -> Result<Usage> {
        let socket = self.dir.join("b.sock");
        let mut args = vec!["listen", "--quiet", "--head", head.to_str().unwrap()];
        args.extend([
            "--socket",
            socket.to_str().unwrap(),
            "--input",
            wav.to_str().unwrap(),
        ]);
        args.extend(more);
        self.measure(&args)
    }
}

/// `hark detect` on the speech stream repeated to `offline_minutes`; returns the audio's
/// length in seconds and the measurement.
fn offline(hark: &Hark, head: &Path, audio: &Audio, offline_minutes: f32) -> Result<(f64, Usage)> {
    let reps = ((offline_minutes as f64 * 60.0) / audio.speech_s)
        .ceil()
        .max(1.0) as usize;
    let long: Vec<f32> = audio
        .speech
        .iter()
        .copied()
        .cycle()
        .take(audio.speech.len() * reps)
        .collect();
    let long_s = long.len() as f64 / SAMPLE_RATE as f64;
    let long_wav = hark.dir.join("long.wav");
    hark::audio::wav::write_16k(&long_wav, &long)?;
    drop(long);
    let usage = hark.measure(&[
        "detect",
        "--head",
        head.to_str().unwrap(),
        long_wav.to_str().unwrap(),
    ])?;
    Ok((long_s, usage))
}

/// openWakeWord on the speech and on the quiet stream.
fn peer(assets: &hark::assets::Assets, dir: &Path, audio: &Audio) -> Result<(Usage, Usage)> {
    let py = peer_python(&assets.dir)?;
    let script = dir.join("oww_bench.py");
    std::fs::write(&script, PEER_SCRIPT)?;
    Ok((
        measure(Command::new(&py).arg(&script).arg(&audio.speech_wav))?,
        measure(Command::new(&py).arg(&script).arg(&audio.quiet_wav))?,
    ))
}

/// The first `latency_seeds` seeds of the accuracy benchmark at its full size, gate on: the
/// same-speaker score whose latencies the table reports (`None` for no seeds).
fn latency(assets: &hark::assets::Assets, o: &BenchOptions) -> Result<Option<hark::eval::Score>> {
    if o.latency_seeds == 0 {
        return Ok(None);
    }
    let eo = hark::eval::EvalOptions {
        data: o.data.clone(),
        seeds: (1..=o.latency_seeds).collect(),
        takes: 5,
        train: hark::train::TrainOptions {
            cross_validate: false,
            ..Default::default()
        },
        cross_speaker: false,
        same_speaker: true,
        cross_voices: hark::pipeline::head::Voices::Mine,
        sweep: vec![],
        write_streams: None,
        dump_candidates: None,
        targets_per_word: 20,
        nontargets: 120,
        explain: false,
        gate: true,
        curve: vec![],
        crowd: 0,
        speech: None,
    };
    let res = hark::eval::run(assets, &eo, &mut |_| {})?;
    Ok(Some(res[0].1[0].1.clone()))
}

/// The figures as a Markdown table, hark beside openWakeWord and the targets.
fn table(o: &BenchOptions, f: &Figures) -> Vec<String> {
    let speech_s = f.speech_s;
    let per = |u: &Usage, s: f64| u.cpu / s;
    let ratio = |a: f64, b: Option<f64>| b.map_or("-".to_string(), |b| format!("{:.3}", a / b));
    let pct = |x: f64| format!("{:.4} ({:.2}% of a core)", x, x * 100.0);
    let mut t = vec![
        "| figure | hark | openWakeWord 0.5.1 | hark / openWakeWord | target |".to_string(),
        "| --- | --- | --- | --- | --- |".to_string(),
    ];
    let hs = per(&f.speech, speech_s);
    let ps = f.peer_speech.as_ref().map(|u| per(u, speech_s));
    t.push(format!("| 1. streaming cost, CPU-s per s of audio ({:.0} s speech + noise, 80 ms chunks) | {} | {} | {} | <= 0.4 |", speech_s, pct(hs), ps.map_or("-".into(), pct), ratio(hs, ps)));
    t.push(format!("| 1b. the floor: one base-model inference per 80 ms | {} | | hark / floor {:.2} | <= 1.2 |", pct(f.floor / speech_s), hs / (f.floor / speech_s)));
    let hq = per(&f.quiet, speech_s);
    let pq = f.peer_quiet.as_ref().map(|u| per(u, speech_s));
    t.push(format!(
        "| 2. quiet-room cost, CPU-s per s (low noise, no speech) | {} | {} | {} | <= 0.1 |",
        pct(hq),
        pq.map_or("-".into(), pct),
        ratio(hq, pq)
    ));
    t.push(format!("| 3. offline `hark detect`, {:.0} min of audio | {:.0}x real time ({:.1} CPU-s) | | | >= 150x |", f.offline_s / 60.0, f.offline_s / f.offline.cpu, f.offline.cpu));
    t.push(format!(
        "| 4. peak RSS of the process (its own VmHWM), speech file, the files it maps in the page cache (as right after set-up) | {} | {} | {} | <= 45 MB |",
        peak_mb(&f.speech),
        f.peer_speech.as_ref().map_or("-".into(), peak_mb),
        ratio(
            f.speech.peak_kb(),
            f.peer_speech.as_ref().map(|u| u.peak_kb())
        )
    ));
    t.push(format!(
        "| 4b. the same with `word_check = false` | {} | | | <= 30 MB |",
        peak_mb(&f.unchecked)
    ));
    t.push(format!(
        "| 4c. row 4 with those files out of the page cache (as after they sat a while) | {} | | | <= 45 MB |",
        peak_mb(&f.cold.0)
    ));
    t.push(format!(
        "| 4d. row 4b with those files out of the page cache | {} | | | <= 30 MB |",
        peak_mb(&f.cold.1)
    ));
    t.push(format!("| 5. training 3 words x 5 takes + noise, end to end | {:.2} s wall ({:.2} CPU-s) | | | <= 3 s |", f.train.wall, f.train.cpu));
    if let Some(l) = &f.latency {
        t.push(format!(
            "| 6. latency after the word's end, {} seeds of the accuracy benchmark ({} hits) | median {:.0} ms, p95 {:.0} ms | | | <= 250 / 400 ms |",
            o.latency_seeds,
            l.hits,
            l.latency(0.5) * 1000.0,
            l.latency(0.95) * 1000.0
        ));
    }
    t
}

/// A process's peak RSS in MB; wait4's figure stands in only when the process did not print
/// its own, and says so.
fn peak_mb(u: &Usage) -> String {
    let note = if u.own_peak_kb.is_some() {
        ""
    } else {
        " (wait4: an upper bound)"
    };
    format!("{:.1} MB{note}", u.peak_kb() / 1024.0)
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("hark-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
