//! `hark detect`: runs WAV files through the detection pipeline and prints every detection.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::flags::DetectFlags;
use hark::assets::Assets;
use hark::pipeline::detector::Detection;
use hark::pipeline::embedding::Embedder;
use hark::pipeline::frontend::SAMPLE_RATE;
use hark::pipeline::head::Head;
use hark::pipeline::Pipeline;

/// `hark detect`: one line (text or JSON) per detection, file by file. A reader that goes away
/// (`hark detect ... | head -1`) ends the command quietly.
pub fn run(f: &DetectFlags, assets: &Assets) -> Result<()> {
    let emb = Embedder::load(assets)?;
    let head = Arc::new(Head::load(&f.head, &emb.model_sha256)?);
    let settings = f.threshold.map(|t| head.detector.clone().with_threshold(t));
    let word_model = match f.no_word_check {
        true => None,
        false => hark::pipeline::word_check::model_for(assets, &head)?,
    };
    let mut pipeline = Pipeline::new(emb, head, SAMPLE_RATE, settings)?;
    pipeline.set_word_check(word_model);
    let mut out = std::io::stdout().lock();
    for file in &f.files {
        for d in &detect_wav(&mut pipeline, file)? {
            let written = if f.json {
                writeln!(
                    out,
                    "{}",
                    crate::daemon::sinks::event_json(d, Some(file), None)
                )
            } else {
                writeln!(
                    out,
                    "{}: {} at {:.2} s (score {:.3})",
                    file.display(),
                    d.word,
                    d.time,
                    d.score
                )
            };
            match written.and_then(|_| out.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                r => r.context("cannot write to stdout")?,
            }
        }
    }
    Ok(())
}

/// Runs the WAV file `path` through `pipeline` as a new stream at the file's rate, and returns
/// the detections. The file is read 80 ms at a time (the chunks `detect_signal` would use), so
/// hours of audio take no more memory than seconds.
pub fn detect_wav(pipeline: &mut Pipeline, path: &Path) -> Result<Vec<Detection>> {
    let mut wav = hark::audio::wav::WavStream::open(path)?;
    pipeline.restart(wav.rate)?;
    let chunk = (wav.rate as usize * 80 / 1000).max(1);
    let mut samples = Vec::with_capacity(chunk);
    let mut out = Vec::new();
    let mut total = 0;
    loop {
        samples.clear();
        let n = wav.read_into(chunk, &mut samples)?;
        if n == 0 {
            break;
        }
        total += n;
        pipeline.push(&samples, &mut |d| out.push(d))?;
    }
    if total == 0 {
        anyhow::bail!(
            "{}: contains no audio samples (zero length)",
            path.display()
        );
    }
    pipeline.finish(&mut |d| out.push(d))?;
    Ok(out)
}
