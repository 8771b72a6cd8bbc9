//! `hark eval --dump-candidates DIR`: what a second stage after the detector would see. For
//! each scenario of each seed, a folder (`s<seed>-takes`, `s<seed>-unknown`, `x<seed>-<n>`)
//! holds the stream (`stream.wav`), the enrolled takes (`take-<word>-<i>.wav`) and
//! `candidates.json`: the detections at each threshold 0.05, 0.10, ..., 0.95, each with its
//! time, word, template similarity, the truth take it hits (its index, or null for a false
//! accept, as the benchmark scores it) and its `level`: the highest of those thresholds at
//! which the same word fires within 0.6 s (its peak smoothed score, to 0.05). A script can
//! then score any rule that keeps or drops candidates, on the benchmark's own terms.

use serde_json::{json, Map, Value};
use std::path::Path;

use super::curve::decide_at;
use super::score::match_detections;
use super::streams::Stream;
use super::Timeline;
use crate::pipeline::detector::Detection;
use crate::pipeline::head::Head;
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
    crate::util::write_atomic(&dir.join("candidates.json"), summary.to_string().as_bytes())
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
