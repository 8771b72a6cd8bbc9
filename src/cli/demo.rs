//! `hark demo`: hark end to end with nothing to record. espeak-ng says the example words, a head
//! is trained on them, and a stream of those and other words is replayed through the detector.

use anyhow::{bail, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::{bank, detect, train};
use hark::assets::Assets;
use hark::audio::synth::{self, Spoken};
use hark::pipeline::detector::Detection;
use hark::pipeline::embedding::Embedder;
use hark::pipeline::frontend::SAMPLE_RATE;
use hark::pipeline::head::Head;
use hark::pipeline::word_check::SharedWordModel;
use hark::pipeline::Pipeline;
use hark::train::dataset::Dataset;
use hark::train::TrainOptions;

/// `hark demo`: recordings, head and stream go into `dir`; each step says what it did.
pub fn run(dir: &Path, assets: &Assets) -> Result<()> {
    if !synth::espeak_available() {
        bail!("the demo makes its speech with espeak-ng, which is not installed (Debian: apt-get install espeak-ng)");
    }
    let rec = dir.join("recordings");
    println!(
        "1. example recordings of {:?} by espeak-ng voice {} -> {}",
        synth::WORDS,
        synth::VOICE,
        rec.display()
    );
    synth::write_recordings(&rec, synth::VOICE)?;
    let ds = Dataset::load(&rec)?;
    let mut emb = Embedder::load(assets)?;
    let negatives =
        bank::negatives_for(assets, &mut emb, &ds, Some(hark::train::negatives::ENGINES))?;
    let t0 = Instant::now();
    let options = TrainOptions::default();
    let head = train::fit(assets, &mut emb, &ds, negatives.as_deref(), &options)?;
    let head_path = dir.join("demo.head");
    head.save(&head_path)?;
    println!(
        "2. trained in {:.1} s -> {}",
        t0.elapsed().as_secs_f64(),
        head_path.display()
    );
    for (name, v) in &head.report.figures {
        println!("     {name}: {v:.3}");
    }
    let word_model = hark::pipeline::word_check::model_for(assets, &head)?;
    replay(dir, (emb, word_model), head, &head_path)
}

/// Step 3: writes a stream of the example words (and others between them) to `dir`, runs it
/// through the detector and marks what was said as heard, missed, falsely heard or rightly
/// ignored.
fn replay(
    dir: &Path,
    (emb, word_model): (Embedder, Option<SharedWordModel>),
    head: Head,
    head_path: &Path,
) -> Result<()> {
    let (stream, said) = synth::stream(synth::VOICE, 3)?;
    let wav = dir.join("stream.wav");
    hark::audio::wav::write_16k(&wav, &stream)?;
    println!(
        "3. replaying {} ({:.0} s: each word 3 times, other words between) through the detector:",
        wav.display(),
        stream.len() as f64 / 16000.0
    );
    let mut pipeline = Pipeline::new(emb, Arc::new(head), SAMPLE_RATE, None)?;
    pipeline.set_word_check(word_model);
    let dets = detect::detect_wav(&mut pipeline, &wav)?;
    let mut heard = 0;
    for s in &said {
        let d = dets
            .iter()
            .find(|d| hark::eval::hits(d.time, s.start, s.end));
        let (mark, hit) = mark(s, d);
        heard += hit as usize;
        println!("   {:6.2} s  said {:<10} -> {mark}", s.start, s.text);
    }
    let targets = said.iter().filter(|s| s.target).count();
    println!(
        "heard {heard} of {targets} custom words; {} detection(s) in all",
        dets.len()
    );
    println!("Next: `hark detect --head {} --json {}`, or record your own words with `hark record <word>`.", head_path.display(), wav.display());
    Ok(())
}

/// What became of the spoken `s`, given the detection `d` in its time (if any); true if it is
/// a custom word heard as itself.
fn mark(s: &Spoken, d: Option<&Detection>) -> (String, bool) {
    match (s.target, d) {
        (true, Some(d)) if d.word == s.text => (
            format!(
                "heard  {:<10} at {:6.2} s  score {:.2}",
                d.word, d.time, d.score
            ),
            true,
        ),
        (true, _) => ("missed".to_string(), false),
        (false, Some(d)) => (
            format!(
                "FALSE  {:<10} at {:6.2} s  score {:.2}",
                d.word, d.time, d.score
            ),
            false,
        ),
        (false, None) => ("quiet (right)".to_string(), false),
    }
}
