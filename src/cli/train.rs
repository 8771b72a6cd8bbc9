//! `hark train`: fits a head on the user's recordings and reports what it learned.

use anyhow::Result;
use std::path::PathBuf;
use std::time::Instant;

use super::{bank, progress};
use hark::assets::Assets;
use hark::pipeline::embedding::{Embedder, DIM};
use hark::pipeline::head::Head;
use hark::train::dataset::Dataset;
use hark::train::word_check;
use hark::train::TrainOptions;

/// What `hark train` runs on.
pub struct Train {
    /// Recordings: one folder per word, plus optional _background_ and _unknown_.
    pub data: PathBuf,
    /// Where the head is written.
    pub out: PathBuf,
    pub options: TrainOptions,
}

/// `hark train`: trains, writes the head, prints a summary.
pub fn run(t: &Train, assets: &Assets) -> Result<()> {
    hark::util::one_malloc_arena();
    let ds = Dataset::load(&t.data)?;
    let mut emb = Embedder::load(assets)?;
    let t0 = Instant::now();
    let negatives = bank::negatives_for(
        assets,
        &mut emb,
        &ds,
        t.options.use_bank.then_some(&t.options.bank_engines[..]),
    )?;
    let mut options = t.options.clone();
    options
        .synth_cache
        .get_or_insert_with(|| assets.cache_dir().join(".cache"));
    let head = fit(assets, &mut emb, &ds, negatives.as_deref(), &options)?;
    head.save(&t.out)?;
    println!(
        "trained {} word(s) in {:.1} s -> {}",
        head.labels.len(),
        t0.elapsed().as_secs_f64(),
        t.out.display()
    );
    print_summary(&ds, &head, negatives.as_deref());
    Ok(())
}

/// Trains a head on `ds` (against the bank windows `negatives`) under a progress bar, and
/// with `options.word_check` enrols the takes for the word check on a thread of its own
/// meanwhile (the word model loads and embeds while the head is fitted).
pub fn fit(
    assets: &Assets,
    emb: &mut Embedder,
    ds: &Dataset,
    negatives: Option<&[f32]>,
    options: &TrainOptions,
) -> Result<Head> {
    std::thread::scope(|s| {
        // The synthetic takes, spoken (or read from their cache) once, before the two threads
        // that use them start.
        let synthetic = match options.word_check {
            Some(_) => word_check::synthetic_takes(ds, options)?,
            None => vec![],
        };
        let enrolled = options.word_check.map(|rule| {
            s.spawn(move || {
                let mut model = word_check::lazy_model(assets);
                let dir = Some(assets.cache_dir().join(word_check::CACHE_DIR));
                let mut embeddings = word_check::Embeddings::new(dir, &mut model);
                word_check::enrol(&mut embeddings, (ds, &synthetic), options, rule)
            })
        });
        let mut head = progress::with_bar("training", |tick| {
            Ok(hark::train::train(emb, ds, negatives, options, tick)?)
        })?;
        if let Some(thread) = enrolled {
            let enrolled = thread
                .join()
                .map_err(|_| anyhow::anyhow!("the word check's enrolment panicked"))??;
            word_check::attach(&mut head, enrolled)?;
        }
        Ok(head)
    })
}

/// Each word's takes and threshold, what the head was trained against, and its fit figures.
fn print_summary(ds: &Dataset, head: &Head, negatives: Option<&[f32]>) {
    for note in &ds.notes {
        println!("  note: {note}");
    }
    let words: Vec<&str> = ds.words.iter().map(|(w, _)| w.as_str()).collect();
    // Without espeak-ng there are no phonemes to compare (the bank's line below says so).
    for note in hark::train::sound_alike_notes(&words).unwrap_or_default() {
        println!("  note: {note}");
    }
    for (i, ((w, takes), th)) in ds.words.iter().zip(&head.detector.thresholds).enumerate() {
        let voices = match head.voices_of(i) {
            hark::pipeline::head::Voices::Mine => "voices: mine (the voices that recorded it)",
            hark::pipeline::head::Voices::Anyone => "voices: anyone",
        };
        println!(
            "  {w:<16} {} takes  threshold {th:.2}  {voices}",
            takes.len()
        );
    }
    println!(
        "  background clips: {}, unknown takes: {} (and {} long recording(s), {:.0} s), synthetic negatives: {}",
        ds.background.len(),
        ds.unknown.len(),
        ds.unknown_streams.len(),
        ds.unknown_streams.iter().map(|r| r.len()).sum::<usize>() as f64 / 16_000.0,
        negatives.map_or("none (espeak-ng not found)".to_string(), |b| format!(
            "{} windows",
            b.len() / DIM
        ))
    );
    match &head.word_check {
        Some(wc) => println!(
            "  word check: on ({} takes embedded; rule: candidates at {}, weight {}, centre {}, unknown margin {}, floor {})",
            wc.takes.iter().map(Vec::len).sum::<usize>(),
            wc.rule.candidate,
            wc.rule.weight,
            wc.rule.centre,
            wc.rule.margin,
            wc.rule.floor
        ),
        None => println!("  word check: off (--no-word-check)"),
    }
    for (name, v) in &head.report.figures {
        // Rates are at most 1; a whole number beyond that is a count.
        match v.fract() == 0.0 && v.abs() >= 2.0 {
            true => println!("  {name}: {v:.0}"),
            false => println!("  {name}: {v:.3}"),
        }
    }
    if let Some(kb) = hark::util::peak_rss_kb() {
        println!("  peak memory: {:.1} MB", kb as f64 / 1024.0);
    }
}
