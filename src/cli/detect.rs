//! `hark detect`: runs WAV files through the detection pipeline and prints every detection.

use anyhow::Result;
use std::path::Path;
use std::sync::Arc;

use super::flags::DetectFlags;
use hark::assets::Assets;
use hark::pipeline::detector::{Detection, DetectorSettings};
use hark::pipeline::embedding::Embedder;
use hark::pipeline::head::Head;
use hark::pipeline::Pipeline;

/// `hark detect`: one line (text or JSON) per detection, file by file.
pub fn run(f: &DetectFlags, assets: &Assets) -> Result<()> {
    let mut emb = Embedder::load(assets)?;
    let head = Arc::new(Head::load(&f.head, &emb.model_sha256)?);
    let settings = f.threshold.map(|t| head.detector.clone().with_threshold(t));
    for file in &f.files {
        let dets;
        (dets, emb) = detect_wav(emb, &head, settings.clone(), file)?;
        for d in &dets {
            if f.json {
                println!("{}", crate::daemon::sinks::event_json(d, Some(file), None));
            } else {
                println!(
                    "{}: {} at {:.2} s (score {:.3})",
                    file.display(),
                    d.word,
                    d.time,
                    d.score
                );
            }
        }
    }
    Ok(())
}

/// Runs the WAV file `path` through a pipeline of `emb` and `head`; returns the detections and
/// the base model, reset for the next file. The pipeline has no way to start a new stream yet,
/// so the base model is taken back out of it (`into_embedder`): here, and nowhere else in the
/// command line.
pub fn detect_wav(
    emb: Embedder,
    head: &Arc<Head>,
    settings: Option<DetectorSettings>,
    path: &Path,
) -> Result<(Vec<Detection>, Embedder)> {
    let audio = hark::audio::wav::read(path)?;
    let mut p = Pipeline::new(emb, head.clone(), audio.rate, settings)?;
    let dets = hark::pipeline::detect_signal(&mut p, &audio.samples, audio.rate)?;
    Ok((dets, p.into_embedder()))
}
