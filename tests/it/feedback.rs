//! The feedback loop through the real commands, on real speech (`../shared/data`; skipped with a
//! message when it is absent): `hark train` on one speaker's 5 takes of 3 digits, `hark listen
//! --input STREAM --keep-audio DIR` on a stream of that speaker's other takes and other digits by
//! four speakers, `hark reject ID` for every event the stream's truth says is false, `hark train`
//! again, `hark listen` again on the same stream. At least 80% of the rejected false triggers
//! must be gone, and recall may drop by 0.02 at most. `hark eval --feedback` measures the same
//! loop over many seeds.

use std::path::Path;

use crate::common::{hark, listen_input, root, shared_data, train_head, write_wav};
use hark::eval::feedback::{false_triggers, gone, Case};
use hark::eval::score;
use hark::Detection;

/// The cases drawn (speaker, digits, stream), summed, and their size. The seeds are ones whose
/// first heads fire wrongly: those of seeds 1-3 no longer do since the ensemble and the
/// warped-voice negatives (issue 10); 4, 5 and 7 are the first three after them that do.
const SEEDS: [u64; 3] = [4, 5, 7];
const TARGETS_PER_WORD: usize = 20;
const NONTARGETS: usize = 120;

/// Writes the case's enrolment as a recordings folder and its stream as a WAV.
fn write_case(case: &Case, rec: &Path, stream: &Path) {
    for (word, takes) in &case.enrol.words {
        for (i, t) in takes.iter().enumerate() {
            write_wav(&rec.join(word).join(format!("take-{i}.wav")), &t.samples);
        }
    }
    for (i, b) in case.enrol.background.iter().enumerate() {
        let b = b.to_vec().unwrap();
        write_wav(&rec.join("_background_").join(format!("room-{i}.wav")), &b);
    }
    write_wav(stream, &case.samples);
}

/// `hark listen` on the stream, keeping clips in `keep`: the events' JSON.
fn listen(dir: &Path, head: &Path, stream: &Path, keep: &Path) -> Vec<serde_json::Value> {
    let cfg = dir.join("hark.toml");
    std::fs::write(&cfg, "[socket]\nenabled = false\n").unwrap();
    let (out, err) = listen_input(
        &cfg,
        head,
        stream,
        &["--keep-audio", keep.to_str().unwrap()],
    );
    assert!(err.contains("clip(s) kept, 0 not kept"), "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The events as detections (word and time are what scoring needs).
fn detections(events: &[serde_json::Value]) -> Vec<Detection> {
    events
        .iter()
        .map(|e| Detection {
            word: e["word"].as_str().unwrap().to_string(),
            score: e["score"].as_f64().unwrap() as f32,
            time: e["time"].as_f64().unwrap(),
            threshold: e["threshold"].as_f64().unwrap() as f32,
            raw_score: 0.0,
            similarity: 0.0,
            runner_up: None,
            word_check: None,
        })
        .collect()
}

/// Each event names its clip, which holds the stream's audio from 1.5 s before the event to
/// 0.5 s after (less at the stream's ends), with the event's JSON beside it.
fn check_clips(events: &[serde_json::Value], keep: &Path, stream: &[f32]) {
    for e in events {
        let id = e["id"].as_str().unwrap();
        let audio = Path::new(e["audio"].as_str().unwrap());
        assert_eq!(audio, keep.join(format!("{id}.wav")));
        let x = hark::audio::wav::read_16k(audio).unwrap();
        let want = hark::audio::clip::cut(stream, e["time"].as_f64().unwrap());
        assert_eq!(x.len(), want.len(), "{id}");
        let off = x
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            off <= 1.0,
            "{id}: the clip is not the stream's audio there ({off})"
        );
        let side = std::fs::read_to_string(audio.with_extension("json")).unwrap();
        let side: serde_json::Value = serde_json::from_str(&side).unwrap();
        assert_eq!(&side, e);
    }
}

/// What one case's loop gave: false triggers rejected, of them gone, and hits before and after
/// out of the targets.
#[derive(Default)]
struct Loop {
    rejected: usize,
    gone: usize,
    hits: (usize, usize),
    targets: usize,
}

/// Rejects every false event (by the truth) with `hark reject ID`, checking what it says.
fn reject_false(events: &[serde_json::Value], wrong: &[Detection], rec: &Path, keep: &Path) {
    for d in wrong {
        let e = events
            .iter()
            .find(|e| e["time"].as_f64() == Some(d.time))
            .unwrap();
        let id = e["id"].as_str().unwrap();
        let args = [
            "reject",
            id,
            "--data",
            rec.to_str().unwrap(),
            "--keep-audio",
            keep.to_str().unwrap(),
        ];
        let (code, out, err) = hark(&args, &root());
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.lines().count(), 1, "{out}");
        let filed = rec.join("_unknown_").join(format!("{id}.wav"));
        assert!(filed.is_file(), "{out}");
        // Filed once: the id is unknown now.
        let (code, _, err) = hark(&args, &root());
        assert!(code == 1 && err.contains("unknown event id"), "{err}");
    }
}

/// The loop on seed `seed`'s case, through the commands.
fn one_case(data: &Path, seed: u64) -> Loop {
    let case = Case::draw(data, seed, 5, TARGETS_PER_WORD, NONTARGETS).unwrap();
    let seconds = case.samples.len() as f64 / 16_000.0;
    let dir = tempfile::tempdir().unwrap();
    let (rec, stream, keep) = (
        dir.path().join("rec"),
        dir.path().join("stream.wav"),
        dir.path().join("keep"),
    );
    write_case(&case, &rec, &stream);
    let head = dir.path().join("first.head");
    train_head(&rec, &head, &[]);
    let events = listen(dir.path(), &head, &stream, &keep);
    check_clips(
        &events,
        &keep,
        &hark::audio::wav::read_16k(&stream).unwrap(),
    );
    let before = detections(&events);
    let wrong = false_triggers(&before, &case.truth);
    reject_false(&events, &wrong, &rec, &keep);
    let retrained = dir.path().join("second.head");
    train_head(&rec, &retrained, &[]);
    let after = listen(dir.path(), &retrained, &stream, &dir.path().join("keep2"));
    let after = detections(&after);
    let times = |v: &[Detection]| v.iter().map(|d| d.time).collect::<Vec<_>>();
    let still_wrong = false_triggers(&after, &case.truth);
    let (s0, s1) = (
        score(&before, &case.truth, seconds),
        score(&after, &case.truth, seconds),
    );
    eprintln!(
        "feedback seed {seed}: {} false triggers rejected, {} gone ({} false after); hits {} -> {} of {}",
        wrong.len(),
        gone(&times(&wrong), &times(&still_wrong)),
        still_wrong.len(),
        s0.hits,
        s1.hits,
        s0.targets
    );
    Loop {
        rejected: wrong.len(),
        gone: gone(&times(&wrong), &times(&still_wrong)),
        hits: (s0.hits, s1.hits),
        targets: s0.targets,
    }
}

#[test]
fn rejecting_every_false_trigger_and_retraining_removes_them_at_no_cost_in_recall() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data is absent");
        return;
    };
    let mut sum = Loop::default();
    for seed in SEEDS {
        let l = one_case(&data, seed);
        sum.rejected += l.rejected;
        sum.gone += l.gone;
        sum.hits.0 += l.hits.0;
        sum.hits.1 += l.hits.1;
        sum.targets += l.targets;
    }
    let (r0, r1) = (
        sum.hits.0 as f64 / sum.targets as f64,
        sum.hits.1 as f64 / sum.targets as f64,
    );
    eprintln!(
        "feedback: {} false triggers rejected, {} gone; recall {r0:.3} -> {r1:.3}",
        sum.rejected, sum.gone
    );
    assert!(sum.rejected >= 3, "the streams should fool the first heads");
    assert!(
        sum.gone * 5 >= sum.rejected * 4,
        "only {} of {} gone",
        sum.gone,
        sum.rejected
    );
    assert!(
        r0 - r1 <= 0.02 + 1e-9,
        "recall fell from {r0:.3} to {r1:.3}"
    );
}

#[test]
fn confirm_files_a_clip_under_its_event_s_word_and_refuses_what_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let (keep, rec) = (dir.path().join("keep"), dir.path().join("rec"));
    std::fs::create_dir_all(rec.join("lantern")).unwrap();
    let id = "20261129T122818.123Z-4";
    write_wav(&keep.join(format!("{id}.wav")), &vec![100.0; 32_000]);
    std::fs::write(
        keep.join(format!("{id}.json")),
        format!("{{\"id\":\"{id}\",\"word\":\"lantern\"}}"),
    )
    .unwrap();
    std::fs::write(
        rec.join("lantern").join(format!("{id}.wav")),
        "an older take",
    )
    .unwrap();
    let r = rec.to_str().unwrap();
    let clip = keep.join(format!("{id}.wav"));
    let (code, out, err) = hark(&["confirm", clip.to_str().unwrap(), "--data", r], &root());
    assert_eq!(code, 0, "{err}");
    let moved = rec.join("lantern").join(format!("{id}-2.wav"));
    assert!(
        moved.is_file() && out.contains(moved.to_str().unwrap()),
        "{out}"
    );
    let old = std::fs::read_to_string(rec.join("lantern").join(format!("{id}.wav"))).unwrap();
    assert_eq!(old, "an older take", "never overwritten");
    let k = keep.to_str().unwrap();
    for (args, says) in [
        (
            vec![
                "confirm",
                "20261129T122818.123Z-5",
                "--data",
                r,
                "--keep-audio",
                k,
            ],
            "unknown event id",
        ),
        (vec!["reject", "no-such.wav", "--data", r], "no such clip"),
        (
            vec!["reject", "lantern", "--data", r],
            "neither an event id",
        ),
        (
            vec![
                "confirm",
                moved.to_str().unwrap(),
                "--data",
                r,
                "--word",
                "violin",
            ],
            "no such word folder",
        ),
    ] {
        let (code, _, err) = hark(&args, &root());
        assert!(
            code == 1 && err.contains(says) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}
