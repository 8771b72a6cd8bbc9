//! Bad input: each case gets a clear error naming the file (or key) and what is wrong, a non-zero
//! exit, and nothing the user had is lost.

use crate::common;

use crate::common::{hark, root, write_wav};
use std::path::{Path, PathBuf};

/// Runs hark and expects failure with stderr containing every one of `needles`.
fn fails_with(args: &[&str], needles: &[&str]) {
    let (code, out, err) = hark(args, &root());
    assert_ne!(code, 0, "expected failure for {args:?}, got success: {out}");
    for n in needles {
        assert!(
            err.contains(n),
            "stderr for {args:?} should mention {n:?}: {err}"
        );
    }
    assert!(
        err.starts_with("hark: error:"),
        "one clear error line: {err}"
    );
}

fn tone(seconds: f32) -> Vec<f32> {
    (0..(16000.0 * seconds) as usize)
        .map(|i| (i as f32 * 0.2).sin() * 6000.0)
        .collect()
}

/// A small valid head trained on tones (no espeak needed), for detect's error paths.
fn some_head(dir: &Path) -> PathBuf {
    let rec = dir.join("rec");
    for w in ["hum", "buzz"] {
        for i in 0..3 {
            let f = if w == "hum" { 0.2 } else { 0.5 } + i as f32 * 0.01;
            let x: Vec<f32> = (0..8000).map(|k| (k as f32 * f).sin() * 8000.0).collect();
            write_wav(&rec.join(w).join(format!("{i}.wav")), &x);
        }
    }
    let head = dir.join("h.head");
    common::train_head(&rec, &head, &["--no-bank"]);
    head
}

#[test]
fn detect_rejects_missing_empty_non_wav_truncated_and_unsupported_files() {
    let tmp = tempfile::tempdir().unwrap();
    let head = some_head(tmp.path());
    let h = head.to_str().unwrap();
    let d = tmp.path();

    let missing = d.join("nope.wav");
    fails_with(
        &["detect", "--head", h, missing.to_str().unwrap()],
        &["nope.wav", "cannot open"],
    );

    let empty = d.join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    fails_with(
        &["detect", "--head", h, empty.to_str().unwrap()],
        &["empty.wav", "empty"],
    );

    let text = d.join("notes.wav");
    std::fs::write(&text, b"these are my notes, not audio at all").unwrap();
    fails_with(
        &["detect", "--head", h, text.to_str().unwrap()],
        &["notes.wav", "not a readable WAV file"],
    );

    let good = d.join("good.wav");
    write_wav(&good, &tone(1.0));
    let bytes = std::fs::read(&good).unwrap();
    let cut = d.join("cut.wav");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(
        &["detect", "--head", h, cut.to_str().unwrap()],
        &["cut.wav", "truncated"],
    );

    let zero = d.join("zero.wav");
    write_wav(&zero, &[]);
    fails_with(
        &["detect", "--head", h, zero.to_str().unwrap()],
        &["zero.wav", "no audio samples"],
    );

    // A WAV header declaring 64-bit float samples.
    let mut f64wav = Vec::new();
    let data = vec![0u8; 800];
    f64wav.extend_from_slice(b"RIFF");
    f64wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    f64wav.extend_from_slice(b"WAVEfmt ");
    f64wav.extend_from_slice(&16u32.to_le_bytes());
    f64wav.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    f64wav.extend_from_slice(&1u16.to_le_bytes());
    f64wav.extend_from_slice(&16000u32.to_le_bytes());
    f64wav.extend_from_slice(&(16000u32 * 8).to_le_bytes());
    f64wav.extend_from_slice(&8u16.to_le_bytes());
    f64wav.extend_from_slice(&64u16.to_le_bytes());
    f64wav.extend_from_slice(b"data");
    f64wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f64wav.extend_from_slice(&data);
    let f64p = d.join("double.wav");
    std::fs::write(&f64p, &f64wav).unwrap();
    fails_with(
        &["detect", "--head", h, f64p.to_str().unwrap()],
        &["double.wav", "unsupported"],
    );
}

#[test]
fn train_rejects_silent_zero_length_and_single_takes_and_keeps_the_old_head() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("mine.head");
    std::fs::write(&out, b"the user's previous head").unwrap();
    let o = out.to_str().unwrap();

    let rec = d.join("rec1");
    for i in 0..3 {
        write_wav(&rec.join("hello").join(format!("{i}.wav")), &tone(0.5));
    }
    write_wav(&rec.join("hello").join("3.wav"), &vec![0.0; 8000]);
    fails_with(
        &[
            "train",
            "--no-bank",
            "--data",
            rec.to_str().unwrap(),
            "--out",
            o,
        ],
        &["3.wav", "silent"],
    );

    let rec = d.join("rec2");
    for i in 0..3 {
        write_wav(&rec.join("hello").join(format!("{i}.wav")), &tone(0.5));
    }
    write_wav(&rec.join("hello").join("empty.wav"), &[]);
    fails_with(
        &[
            "train",
            "--no-bank",
            "--data",
            rec.to_str().unwrap(),
            "--out",
            o,
        ],
        &["empty.wav", "no audio samples"],
    );

    let rec = d.join("rec3");
    write_wav(&rec.join("lonely").join("0.wav"), &tone(0.5));
    fails_with(
        &[
            "train",
            "--no-bank",
            "--data",
            rec.to_str().unwrap(),
            "--out",
            o,
        ],
        &["lonely", "1 take", "at least 3"],
    );

    let rec = d.join("rec4");
    for i in 0..3 {
        write_wav(&rec.join("long").join(format!("{i}.wav")), &tone(5.0));
    }
    fails_with(
        &[
            "train",
            "--no-bank",
            "--data",
            rec.to_str().unwrap(),
            "--out",
            o,
        ],
        &["0.wav", "long"],
    );

    fails_with(
        &[
            "train",
            "--data",
            d.join("nowhere").to_str().unwrap(),
            "--out",
            o,
        ],
        &["nowhere", "does not exist"],
    );

    let rec = d.join("rec5");
    std::fs::create_dir_all(rec.join("_noise_")).unwrap();
    fails_with(
        &["train", "--data", rec.to_str().unwrap(), "--out", o],
        &["_noise_", "unknown special folder"],
    );

    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"the user's previous head",
        "a failed train must not touch the old head"
    );
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

#[test]
fn heads_from_another_base_model_or_damaged_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let head = some_head(tmp.path());
    let wav = tmp.path().join("t.wav");
    write_wav(&wav, &tone(1.0));
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    v["base_model_sha256"] = serde_json::json!("0".repeat(64));
    let other = tmp.path().join("other.head");
    std::fs::write(&other, v.to_string()).unwrap();
    fails_with(
        &[
            "detect",
            "--head",
            other.to_str().unwrap(),
            wav.to_str().unwrap(),
        ],
        &["other.head", "base model", "retrain"],
    );

    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    v["frontend"] = serde_json::json!("logmel n_mels=40");
    let fe = tmp.path().join("frontend.head");
    std::fs::write(&fe, v.to_string()).unwrap();
    fails_with(
        &[
            "detect",
            "--head",
            fe.to_str().unwrap(),
            wav.to_str().unwrap(),
        ],
        &["frontend.head", "front end"],
    );

    let broken = tmp.path().join("broken.head");
    std::fs::write(&broken, &std::fs::read(&head).unwrap()[..100]).unwrap();
    fails_with(
        &[
            "detect",
            "--head",
            broken.to_str().unwrap(),
            wav.to_str().unwrap(),
        ],
        &["broken.head", "not a valid hark head"],
    );

    fails_with(
        &[
            "detect",
            "--head",
            tmp.path().join("absent.head").to_str().unwrap(),
            wav.to_str().unwrap(),
        ],
        &["absent.head", "cannot read"],
    );
}

#[test]
fn a_missing_base_model_or_runtime_library_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("t.wav");
    write_wav(&wav, &tone(1.0));
    // A models folder with the runtime but no base model.
    let m1 = tmp.path().join("m1");
    std::fs::create_dir_all(m1.join("base")).unwrap();
    std::os::unix::fs::symlink(root().join("models/runtime"), m1.join("runtime")).unwrap();
    fails_with(
        &[
            "--models",
            m1.to_str().unwrap(),
            "detect",
            wav.to_str().unwrap(),
        ],
        &["embedding_model.onnx", "base model not found", ".ci/setup"],
    );
    // A models folder with the base model but no runtime library.
    let m2 = tmp.path().join("m2");
    std::fs::create_dir_all(&m2).unwrap();
    std::os::unix::fs::symlink(root().join("models/base"), m2.join("base")).unwrap();
    fails_with(
        &[
            "--models",
            m2.to_str().unwrap(),
            "detect",
            wav.to_str().unwrap(),
        ],
        &["ONNX Runtime library not found", ".ci/setup"],
    );
    // A base model that is not the expected file.
    let m3 = tmp.path().join("m3");
    std::fs::create_dir_all(m3.join("base")).unwrap();
    std::fs::write(m3.join("base/embedding_model.onnx"), b"not a model").unwrap();
    std::os::unix::fs::symlink(root().join("models/runtime"), m3.join("runtime")).unwrap();
    fails_with(
        &[
            "--models",
            m3.to_str().unwrap(),
            "detect",
            wav.to_str().unwrap(),
        ],
        &["embedding_model.onnx", "sha256"],
    );
    fails_with(
        &[
            "--models",
            tmp.path().join("nowhere").to_str().unwrap(),
            "detect",
            wav.to_str().unwrap(),
        ],
        &["nowhere", "does not exist"],
    );
}

#[test]
fn a_model_of_another_shape_is_refused_by_the_streaming_rewrite_with_the_reason() {
    let assets = common::assets();
    let err = hark::pipeline::embedding::streaming::rewrite(b"not a model at all")
        .err()
        .expect("garbage is refused");
    assert!(format!("{err:#}").contains("not an ONNX model"), "{err:#}");
    // The front-end model is ONNX, but not a stack of convolutions.
    let mel = std::fs::read(assets.melspec_model()).unwrap();
    let err = hark::pipeline::embedding::streaming::rewrite(&mel)
        .err()
        .expect("the front-end model is refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("does not have the structure hark streams"),
        "{msg}"
    );
    // The base model itself streams, with a state per time convolution.
    let base = std::fs::read(assets.embedding_model()).unwrap();
    let m = hark::pipeline::embedding::streaming::rewrite(&base).unwrap();
    assert_eq!(m.states.len(), 11);
    assert!(m.states.iter().all(|s| s[0] == 1 && s[2] == 2));
}

#[test]
fn a_recipe_of_wrong_keys_or_values_is_refused_by_file_line_and_key_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    for i in 0..3 {
        write_wav(&rec.join("hello").join(format!("{i}.wav")), &tone(0.5));
    }
    let out = tmp.path().join("w.head");
    let recipe = tmp.path().join("r.toml");
    let r = recipe.to_str().unwrap();
    let train = [
        "train",
        "--no-bank",
        "--no-cv",
        "--recipe",
        r,
        "--data",
        rec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    // eval's recipe too, before it looks at its data.
    let eval = ["eval", "--data", "nowhere", "--recipe", r];
    for (args, text, needle) in [
        (
            &train[..],
            "[negatives]\nsource_weights = [1, 2, 3]\n",
            ":2: key 'negatives.source_weights': expected 5 weights (take halves, altered takes, background, bank, unknown), got 3",
        ),
        (
            &eval[..],
            "# weights\n[negatives]\n\nsource_weights = [1, 1, 1, 1, 1, 1]\n",
            ":4: key 'negatives.source_weights': expected 5 weights (take halves, altered takes, background, bank, unknown), got 6",
        ),
        (
            &train[..],
            "[word_check]\nfloor = -3\n",
            ":2: key 'word_check.floor': expected a number from -1 to 1, got -3",
        ),
        (
            &train[..],
            "[word_check]\ncandidate = 0.2\nweight = -1\n",
            ":3: key 'word_check.weight': expected a number from 0 to 10, got -1",
        ),
        (
            &eval[..],
            "word_check.candidate = 1.5",
            ":1: key 'word_check.candidate': expected a number above 0 and below 1, got 1.5",
        ),
        (
            &train[..],
            "[anyone]\nsynth = 3\nwarp = 0.1\nl3 = 0\n",
            ":4: key 'anyone.l3': unknown key `l3`",
        ),
    ] {
        std::fs::write(&recipe, text).unwrap();
        fails_with(args, &[&format!("{r}{needle}")]);
        let (code, _, err) = hark(args, &root());
        assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    }
    assert!(!out.exists(), "no head is written");
    let missing = tmp.path().join("nowhere.toml");
    fails_with(
        &["train", "--recipe", missing.to_str().unwrap()],
        &["nowhere.toml", "cannot read"],
    );
}

#[test]
fn nan_infinite_and_huge_float_samples_are_sanitised_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let head = some_head(tmp.path());
    let path = tmp.path().join("glitch.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..44_100 {
        let v = match i {
            1000 => f32::NAN,
            2000 => f32::INFINITY,
            3000 => f32::NEG_INFINITY,
            4000 => 1e35,
            _ => (i as f32 * 0.05).sin() * 0.3,
        };
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    let (code, _, err) = hark(
        &[
            "detect",
            "--head",
            head.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(code, 0, "a glitch in a float WAV is not fatal: {err}");
    let samples = hark::audio::wav::read(&path).unwrap().samples;
    assert!(samples
        .iter()
        .all(|v| v.is_finite() && v.abs() <= hark::audio::wav::FLOAT_LIMIT));
    assert_eq!(samples[1000], 0.0);
}

#[test]
fn listen_on_a_truncated_file_fails_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let head = some_head(tmp.path());
    let path = tmp.path().join("cut.wav");
    write_wav(&path, &tone(3.0));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2 + 1]).unwrap();
    let sock = tmp.path().join("s.sock");
    let (code, _, err) = hark(
        &[
            "listen",
            "--head",
            head.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
            "--input",
            path.to_str().unwrap(),
            "--quiet",
        ],
        &root(),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cut.wav") && err.contains("truncated"),
        "the file and what is wrong: {err}"
    );
}

#[test]
fn detect_into_a_closed_pipe_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let head = some_head(tmp.path());
    let mut x = Vec::new();
    for k in 0..6 {
        x.extend(std::iter::repeat_n(0.0, 16000));
        let f = if k % 2 == 0 { 0.2 } else { 0.5 };
        x.extend((0..8000).map(|i| (i as f32 * f).sin() * 8000.0));
    }
    let wav = tmp.path().join("tones.wav");
    write_wav(&wav, &x);
    let args = [
        "detect",
        "--head",
        head.to_str().unwrap(),
        wav.to_str().unwrap(),
    ];
    let (code, out, err) = hark(&args, &root());
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() >= 1, "the file fires: {out}");
    let mut child = std::process::Command::new(common::hark_bin())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before anything is written
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "exit {:?}: {err}", done.status);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn flag_and_recipe_values_that_make_no_sense_are_refused_and_the_head_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let head = some_head(tmp.path());
    let before = std::fs::read(&head).unwrap();
    let wav = tmp.path().join("t.wav");
    write_wav(&wav, &tone(1.0));
    let (h, w) = (head.to_str().unwrap(), wav.to_str().unwrap());
    for t in ["nan", "inf", "1.5", "-0.2"] {
        let flag = format!("--threshold={t}");
        fails_with(&["detect", "--head", h, &flag, w], &["--threshold", t]);
    }
    let rec = tmp.path().join("rec");
    let r = rec.to_str().unwrap();
    let recipe = tmp.path().join("r.toml");
    for (key, value) in [
        ("fit.context", "0"),
        ("fit.context", "100000000000"),
        ("detector.smoothing", "0"),
        ("detector.threshold", "nan"),
        ("templates.quantile", "7"),
        ("augment.speed", "3"),
        ("fit.l2", "-1"),
    ] {
        std::fs::write(&recipe, format!("{key} = {value}\n")).unwrap();
        let args = [
            "train",
            "--no-cv",
            "--no-bank",
            "--recipe",
            recipe.to_str().unwrap(),
            "--data",
            r,
            "--out",
            h,
        ];
        let value = value.replace("nan", "NaN");
        fails_with(&args, &[&format!("r.toml:1: key '{key}'"), &value]);
    }
    assert_eq!(
        std::fs::read(&head).unwrap(),
        before,
        "the head is untouched"
    );
}

/// A 16 kHz mono 8-bit WAV header whose data chunk claims `claimed` bytes, then `real` bytes.
fn lying_wav(claimed: u32, real: usize) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&claimed.saturating_add(36).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&16000u32.to_le_bytes());
    b.extend_from_slice(&16000u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&8u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&claimed.to_le_bytes());
    b.extend((0..real).map(|i| (128.0 + 60.0 * (i as f32 * 0.3).sin()) as u8));
    b
}

#[test]
fn a_header_that_claims_gigabytes_is_not_trusted_and_a_fifo_is_read() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let head = some_head(tmp.path());
    let liar = tmp.path().join("liar.wav");
    std::fs::write(&liar, lying_wav(0xFFFF_FFF0, 16000)).unwrap();
    // 4 GiB of address space: enough for hark, not for the 16 GiB the header asks for.
    let mut cmd = std::process::Command::new(common::hark_bin());
    cmd.args([
        "detect",
        "--head",
        head.to_str().unwrap(),
        liar.to_str().unwrap(),
    ]);
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 4 << 30,
                rlim_max: 4 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a clear error, not an abort: {err}"
    );
    assert!(
        err.contains("liar.wav") && err.contains("truncated"),
        "{err}"
    );

    // A FIFO is not "empty": it is read as it comes.
    let fifo = tmp.path().join("pipe.wav");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let good = lying_wav(16000, 16000);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, good).unwrap())
    };
    let (code, _, err) = hark(
        &[
            "detect",
            "--head",
            head.to_str().unwrap(),
            fifo.to_str().unwrap(),
        ],
        &root(),
    );
    writer.join().unwrap();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_recording_that_cannot_open_its_device_leaves_no_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("recordings");
    let (code, _, err) = hark(
        &[
            "record",
            "lantern",
            "--data",
            data.to_str().unwrap(),
            "--device",
            "no-such-device-anywhere",
        ],
        &root(),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("hark: error:") && err.contains("no-such-device-anywhere"),
        "{err}"
    );
    assert!(
        !data.join("lantern").exists(),
        "no empty word folder is left"
    );
}
