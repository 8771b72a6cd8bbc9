//! The reporting parts of `hark eval`: the speech-hour figures, the crowd rows, the continuous
//! speech rows, the curve's scores and `--plot`'s picture, on a small run over the real speech in `../shared/data`
//! (skipped with a message when it is absent).

use crate::common;

#[test]
fn eval_plot_to_a_missing_folder_fails_at_once_in_one_line() {
    let t = std::time::Instant::now();
    let (code, out, err) = common::hark(
        &["eval", "--plot", "/no/such/folder/det.png"],
        &common::root(),
    );
    assert_ne!(code, 0, "{out}");
    let err = err.trim();
    assert!(
        err.contains("/no/such/folder/det.png") && err.contains("folder does not exist"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.is_empty(), "the benchmark ran before the check: {out}");
    assert!(t.elapsed().as_secs() < 30, "took {:?}", t.elapsed());
}

#[test]
fn a_small_eval_reports_speech_hours_the_crowd_continuous_speech_and_a_curve_and_plots_it() {
    let Some(data) = common::shared_data() else {
        eprintln!("SKIPPED: ../shared/data is absent; the eval report did not run");
        return;
    };
    let curve = hark::eval::curve_thresholds();
    let dumped = tempfile::tempdir().unwrap();
    let speech = continuous_speech();
    let opts = hark::eval::EvalOptions {
        data,
        seeds: vec![5],
        takes: 5,
        train: hark::train::TrainOptions::default(),
        cross_speaker: true,
        same_speaker: true,
        // `mine` heads keep the 0.5 default that the sweep's row below is compared with.
        cross_voices: hark::pipeline::head::Voices::Mine,
        sweep: vec![0.5],
        write_streams: None,
        dump_candidates: Some(dumped.path().to_path_buf()),
        targets_per_word: 5,
        nontargets: 30,
        explain: false,
        gate: true,
        curve: curve.clone(),
        crowd: 150,
        speech: Some(speech.path().to_path_buf()),
    };
    let res = hark::eval::run(&common::assets(), &opts, &mut |l| eprintln!("{l}")).unwrap();
    let names: Vec<&str> = res.iter().map(|(n, _)| n.as_str()).collect();
    // 4 scenarios, 2 crowd rows and the 4 heads in continuous speech.
    assert_eq!(names.len(), 10, "{names:?}");
    for (scenario, rows) in &res {
        let default = &rows[0].1;
        assert!(default.speech_seconds > 0.0 && default.speech_seconds < default.seconds);
        if scenario.starts_with("continuous speech") {
            check_continuous(scenario, rows);
            continue;
        }
        if scenario.starts_with("crowd") {
            // 150 takes, minus the head's 3 words (about 45) and the takes it trained on.
            assert_eq!((rows.len(), default.targets), (1, 0), "{scenario}");
            assert!(
                (60..150).contains(&default.nontargets),
                "{scenario}: {default:?}"
            );
            continue;
        }
        // The curve and the sweep score the stream once; at the default threshold they give
        // what the head's own decision gave.
        for label in ["threshold 0.5".to_string(), hark::eval::curve_label(0.5)] {
            let s = &rows.iter().find(|(l, _)| *l == label).unwrap().1;
            assert_eq!(
                (s.hits, s.false_accepts),
                (default.hits, default.false_accepts)
            );
        }
        assert_eq!(rows.len(), 2 + curve.len(), "{scenario}");
        let at = |t: f32| {
            let label = hark::eval::curve_label(t);
            rows.iter().find(|(l, _)| *l == label).unwrap().1.clone()
        };
        let (low, high) = (at(0.01), at(0.999));
        assert!(low.hits >= high.hits && low.false_accepts >= high.false_accepts);
    }
    check_candidates(dumped.path(), &res);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("det.png");
    hark::eval::plot::write(&png, &res, &curve).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
}

/// Three sentences by two espeak-ng voices, as continuous speech (`--speech`).
fn continuous_speech() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let said = [
        (
            "The weather turned cold before the harvest was in.",
            "en-us",
        ),
        ("She counted the boxes twice and wrote it all down.", "en"),
        ("Nobody expected the river to rise so quickly.", "en-us"),
    ];
    for (i, (text, voice)) in said.iter().enumerate() {
        let samples = common::say(text, voice, 160, 50);
        common::write_wav(&dir.path().join(format!("{i}.wav")), &samples);
    }
    dir
}

/// A continuous-speech row has no targets, counts its three files, and scores the sweep's
/// default threshold (0.5) as the head's own decision did.
fn check_continuous(scenario: &str, rows: &[(String, hark::eval::Score)]) {
    let default = &rows[0].1;
    assert_eq!((default.targets, default.nontargets), (0, 3), "{scenario}");
    assert!(default.speech_seconds > 3.0, "{scenario}: {default:?}");
    assert_eq!(rows.len(), 2, "{scenario}");
    assert_eq!(rows[1].0, "threshold 0.5");
    assert_eq!(rows[1].1.false_accepts, default.false_accepts, "{scenario}");
}

/// `--dump-candidates` wrote a folder per scenario with the detector's candidates (before the
/// word check), each with a level at or above the threshold it was listed at, and the enrolled
/// takes beside them. The benchmark's events (the word check's, at 0.5) are among the
/// candidates at the check's own candidate level (0.2): no more hits than those.
fn check_candidates(dir: &std::path::Path, res: &[(String, Vec<(String, hark::eval::Score)>)]) {
    let folders = [
        ("same speaker, 5 takes", "s5-takes"),
        ("same speaker, 5 takes + 30 _unknown_", "s5-unknown"),
        ("cross-speaker, 1 enrolled", "x5-1"),
        ("cross-speaker, 2 enrolled", "x5-2"),
    ];
    for (scenario, folder) in folders {
        let (_, rows) = res.iter().find(|(n, _)| n.starts_with(scenario)).unwrap();
        let default = &rows[0].1;
        let path = dir.join(folder).join("candidates.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let dump: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(dump["targets"], default.targets, "{folder}");
        let candidates = dump["candidates"]["0.20"].as_array().unwrap();
        let hits = candidates.iter().filter(|c| !c["hit"].is_null()).count();
        assert!(hits >= default.hits, "{folder}: {hits} < {}", default.hits);
        for (level, cands) in dump["candidates"].as_object().unwrap() {
            let level: f64 = level.parse().unwrap();
            for c in cands.as_array().unwrap() {
                assert!(
                    c["level"].as_f64().unwrap() >= level - 1e-6,
                    "{folder}: {c}"
                );
            }
        }
        let takes = dump["takes"].as_object().unwrap();
        check_checks(&dir.join(folder), candidates.len(), takes);
        let first = takes.values().next().unwrap()[0].as_str().unwrap();
        assert!(dir.join(folder).join(first).is_file(), "{folder}: {first}");
        assert!(dir.join(folder).join("stream.wav").is_file());
    }
}

/// `checks.json` lists what the word check sees of each candidate at its candidate level
/// (0.2): as many as `candidates.json` lists there, each with its peak (at least that level)
/// and a cosine to each of its word's takes (these heads are `mine`: the enrolled takes).
fn check_checks(
    dir: &std::path::Path,
    candidates: usize,
    takes: &serde_json::Map<String, serde_json::Value>,
) {
    let text = std::fs::read_to_string(dir.join("checks.json")).unwrap();
    let checks: serde_json::Value = serde_json::from_str(&text).unwrap();
    let listed = checks["candidates"].as_array().unwrap();
    assert_eq!(listed.len(), candidates, "{dir:?}");
    let labels = checks["labels"].as_array().unwrap();
    for c in listed {
        assert!(c["peak"].as_f64().unwrap() >= 0.2 - 1e-6, "{c}");
        let word = labels[c["word"].as_u64().unwrap() as usize]
            .as_str()
            .unwrap();
        let cosines = c["cosines"].as_array().unwrap();
        assert_eq!(cosines.len(), takes[word].as_array().unwrap().len(), "{c}");
        assert!(cosines
            .iter()
            .all(|v| v.as_f64().unwrap().abs() <= 1.0 + 1e-5));
    }
}
