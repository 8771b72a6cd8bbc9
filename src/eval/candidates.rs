//! `hark eval --dump-candidates DIR`: what a second stage after the detector would see. For
//! each scenario of each seed, a folder (`s<seed>-takes`, `s<seed>-unknown`, `x<seed>-<n>`)
//! holds the stream (`stream.wav`), the enrolled takes (`take-<word>-<i>.wav`) and
//! `candidates.json`: the detections at each threshold 0.05, 0.10, ..., 0.95, each with its
//! time, word, template similarity, the truth take it hits (its index, or null for a false
//! accept, as the benchmark scores it) and its `level`: the highest of those thresholds at
//! which the same word fires within 0.6 s (its peak smoothed score, to 0.05). A script can
//! then score any rule that keeps or drops candidates, on the benchmark's own terms.
//!
//! When the head has a word check, `checks.json` lists what the check sees of each candidate
//! at the rule's candidate level: its word, time, exact peak smoothed score within the check's
//! span, its cosine to each of its word's takes, its best cosine to each word's takes and to
//! the `_unknown_` takes, and the truth take whose window holds it (its index, word and file): what
//! a study of the fusion needs.

use serde_json::{json, Map, Value};
use std::path::Path;

use super::curve::{decide_at, each_scored};
use super::score::match_detections;
use super::streams::Stream;
use super::Timeline;
use crate::pipeline::detector::{Detection, Detector};
use crate::pipeline::head::Head;
use crate::pipeline::word_check::best_similarity;
use crate::pipeline::word_check::check::{Hear, SPAN};
use crate::train::dataset::Dataset;
use crate::{Error, Result};

/// Detections of the same word this close (seconds) are one event at two thresholds.
const SAME_EVENT: f64 = 0.6;

/// The thresholds candidates are listed at.
pub fn levels() -> Vec<f32> {
    (1..=19).map(|k| k as f32 * 0.05).collect()
}

/// Writes one scenario's folder `dir` (see the module docs).
pub fn dump(
    dir: &Path,
    head: &Head,
    embs: &Timeline,
    stream: &Stream,
    enrol: &Dataset,
    ear: &mut dyn Hear,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir, "cannot create directory"))?;
    crate::audio::wav::write_16k(&dir.join("stream.wav"), &stream.samples)?;
    let mut takes = Map::new();
    for (word, ts) in &enrol.words {
        let mut files = Vec::new();
        for (i, t) in ts.iter().enumerate() {
            let name = format!("take-{word}-{i}.wav");
            crate::audio::wav::write_16k(&dir.join(&name), &t.samples)?;
            files.push(Value::String(name));
        }
        takes.insert(word.clone(), Value::Array(files));
    }
    let mut at_level = Map::new();
    for (threshold, listed) in levels().into_iter().zip(with_levels(head, embs)) {
        let dets: Vec<Detection> = listed.iter().map(|(d, _)| d.clone()).collect();
        let hits = match_detections(&dets, &stream.truth);
        let listed = listed.iter().zip(hits).map(|((d, level), hit)| {
            json!({"time": d.time, "word": d.word, "level": level,
                   "similarity": d.similarity, "hit": hit})
        });
        at_level.insert(format!("{threshold:.2}"), Value::Array(listed.collect()));
    }
    let targets = stream.truth.iter().filter(|t| t.word.is_some()).count();
    let summary = json!({
        "targets": targets,
        "nontargets": stream.truth.len() - targets,
        "thresholds": head.detector.thresholds,
        "takes": takes,
        "candidates": at_level,
    });
    crate::util::write_atomic(&dir.join("candidates.json"), summary.to_string().as_bytes())?;
    match checks(head, embs, &stream.truth, ear) {
        Some(c) => crate::util::write_atomic(&dir.join("checks.json"), c.to_string().as_bytes()),
        None => Ok(()),
    }
}

/// Every window's time and smoothed scores (per word).
type Smoothed = Vec<(f64, Vec<f32>)>;

/// The candidate detector's detections over `embs`, and its [`Smoothed`] scores.
fn candidates(head: &Head, embs: &Timeline) -> Option<(Vec<Detection>, Smoothed)> {
    let wc = head.word_check.as_ref()?;
    let mut det = Detector::new(
        head.labels.clone(),
        wc.rule.candidate_settings(&head.detector),
    );
    let (mut found, mut smoothed) = (Vec::new(), Vec::new());
    each_scored(head, embs, |time, sc| {
        found.extend(det.push(time, &sc.scores, &sc.similarity));
        let scores = (0..head.labels.len()).map(|w| det.smoothed(w)).collect();
        smoothed.push((time, scores));
    });
    Some((found, smoothed))
}

/// What the word check sees of each candidate (see the module docs; a candidate the model
/// could not hear is left out); `None` without a check.
fn checks(
    head: &Head,
    embs: &Timeline,
    truth: &[super::Truth],
    ear: &mut dyn Hear,
) -> Option<Value> {
    let wc = head.word_check.as_ref()?;
    let (found, smoothed) = candidates(head, embs)?;
    let listed = found.iter().filter_map(|d| {
        let w = head.labels.iter().position(|l| *l == d.word)?;
        let peak = smoothed
            .iter()
            .filter(|(t, _)| *t >= d.time - 1e-6 && *t <= d.time + SPAN + 1e-6)
            .fold(d.score, |p, (_, s)| p.max(s[w]));
        let e = ear.hear(d.time)?;
        let cos: Vec<f32> = wc.takes[w]
            .iter()
            .map(|t| crate::pipeline::head::dot(&e, t))
            .collect();
        let best: Vec<f32> = wc.takes.iter().map(|t| best_similarity(&e, t)).collect();
        let at = truth
            .iter()
            .position(|t| super::hits(d.time, t.start, t.end));
        Some(
            json!({"time": d.time, "word": w, "peak": peak, "cosines": cos, "best": best,
                    "unknown": best_similarity(&e, &wc.unknown),
                    "truth": at, "truth_word": at.and_then(|i| truth[i].word.clone()),
                    "truth_file": at.map(|i| truth[i].file.clone()),
                    "truth_span": at.map(|i| [truth[i].start, truth[i].end, truth[i].speech])}),
        )
    });
    let targets = truth.iter().filter(|t| t.word.is_some()).count();
    Some(
        json!({"labels": head.labels, "thresholds": head.detector.thresholds,
                "targets": targets, "nontargets": truth.len() - targets,
                "candidates": listed.collect::<Vec<_>>()}),
    )
}

/// The detections at each of [`levels`], each with its level: the highest of those thresholds
/// at which the same word fires within `SAME_EVENT` (its peak smoothed score, to 0.05).
pub fn with_levels(head: &Head, embs: &Timeline) -> Vec<Vec<(Detection, f32)>> {
    let levels = levels();
    let all = decide_at(head, embs, &levels, None);
    all.iter()
        .enumerate()
        .map(|(k, dets)| {
            dets.iter()
                .map(|d| {
                    let same =
                        |e: &Detection| e.word == d.word && (e.time - d.time).abs() < SAME_EVENT;
                    let peak = (k..levels.len())
                        .rev()
                        .find(|&j| all[j].iter().any(same))
                        .unwrap_or(k);
                    (d.clone(), levels[peak])
                })
                .collect()
        })
        .collect()
}
