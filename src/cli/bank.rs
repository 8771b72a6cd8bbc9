//! `hark bank`, and the synthetic negative bank that `train` and `demo` train against.

use anyhow::{Context, Result};
use std::time::Instant;

use super::progress;
use hark::assets::Assets;
use hark::audio::synth::Engine;
use hark::pipeline::embedding::Embedder;
use hark::train::dataset::Dataset;
use hark::train::negatives::Bank;

/// `hark bank`: builds the negative bank now (or finds it cached) and says how big it is.
pub fn run(assets: &Assets) -> Result<()> {
    let mut emb = Embedder::load(assets)?;
    let t0 = Instant::now();
    match load(assets, &mut emb, Some(hark::train::negatives::ENGINES))? {
        Some(b) => println!(
            "negative bank ready: {} windows ({:.0} s)",
            b.window_words.len(),
            t0.elapsed().as_secs_f64()
        ),
        None => println!("no negative bank: espeak-ng is not installed"),
    }
    Ok(())
}

/// The negatives a head for `ds` trains against: the bank's windows (said by `engines`) without
/// `ds`'s own words; None if `engines` is None (no bank) or espeak-ng is missing.
pub fn negatives_for(
    assets: &Assets,
    emb: &mut Embedder,
    ds: &Dataset,
    engines: Option<&[Engine]>,
) -> Result<Option<Vec<f32>>> {
    let bank = load(assets, emb, engines)?;
    Ok(bank.map(|b| b.into_without(&ds.labels())))
}

/// The negative bank said by `engines`, built on first use; None if `engines` is None, or if
/// espeak-ng is missing (a note on stderr then says what that costs).
fn load(assets: &Assets, emb: &mut Embedder, engines: Option<&[Engine]>) -> Result<Option<Bank>> {
    let Some(engines) = engines else {
        return Ok(None);
    };
    if !hark::audio::synth::espeak_available() {
        eprintln!("hark: note: espeak-ng not found; training without synthetic negatives (install espeak-ng for a head that rejects other speech better)");
        return Ok(None);
    }
    let bank = progress::with_bar("negatives", |tick| {
        hark::train::negatives::load_or_build(&assets.cache_dir(), emb, engines, tick)
            .context("cannot build the synthetic negative bank")
    })?;
    Ok(Some(bank))
}
