//! The library API: a Rust caller builds the pipeline and receives events on a crossbeam channel.

use crate::common;

use hark::audio::synth;
use hark::{Embedder, Head, Pipeline};
use std::sync::Arc;

/// A head trained on the demo's example recordings, and the base model it was trained with.
fn demo_head(assets: &hark::Assets) -> (Embedder, Arc<Head>) {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("recordings");
    synth::write_recordings(&rec, synth::VOICE).unwrap();
    let ds = hark::train::dataset::Dataset::load(&rec).unwrap();
    let mut emb = Embedder::load(assets).unwrap();
    let opts = hark::train::TrainOptions {
        cross_validate: false,
        ..Default::default()
    };
    let head = hark::train::train(&mut emb, &ds, None, &opts, &|_, _| {}).unwrap();
    (emb, Arc::new(head))
}

#[test]
fn pipeline_on_its_thread_sends_detections_on_a_channel_like_detect_does() {
    let assets = common::assets();
    let (emb, head) = demo_head(&assets);
    let (stream, said) = synth::stream(synth::VOICE, 2).unwrap();

    // Offline, in one go.
    let mut p = Pipeline::new(emb, head.clone(), 16000, None).unwrap();
    let offline = hark::pipeline::detect_signal(&mut p, &stream, 16000).unwrap();

    // Streaming: chunks of 10 ms in on one channel, detections out on another.
    let (audio_tx, audio_rx) = crossbeam_channel::bounded::<Vec<f32>>(64);
    let p = Pipeline::load(&assets, head, 16000, None).unwrap();
    let (thread, events) = p.spawn(audio_rx);
    for c in stream.chunks(160) {
        audio_tx.send(c.to_vec()).unwrap();
    }
    drop(audio_tx);
    let live: Vec<hark::Detection> = events.iter().collect();
    thread.join().unwrap().unwrap();

    assert_eq!(
        live, offline,
        "the streaming path and the offline path must agree"
    );
    let targets = said.iter().filter(|s| s.target).count();
    assert!(
        live.len() >= targets - 1,
        "{} detections for {targets} words",
        live.len()
    );
}

#[test]
fn a_restarted_pipeline_detects_what_new_pipelines_detect() {
    let assets = common::assets();
    let (emb, head) = demo_head(&assets);
    let (speech, said) = synth::stream(synth::VOICE, 1).unwrap();
    // The same speech at 8 kHz (every other sample), then at 16 kHz again.
    let speech_8k: Vec<f32> = speech.iter().step_by(2).copied().collect();
    let streams = [(&speech, 16000), (&speech_8k, 8000), (&speech, 16000)];

    let mut restarted = Pipeline::new(emb, head.clone(), 16000, None).unwrap();
    // An abandoned stream first: half pushed, never finished.
    restarted
        .push(&speech[..speech.len() / 2], &mut |_| {})
        .unwrap();
    for (i, (samples, rate)) in streams.into_iter().enumerate() {
        restarted.restart(rate).unwrap();
        let again = hark::pipeline::detect_signal(&mut restarted, samples, rate).unwrap();
        let mut new = Pipeline::load(&assets, head.clone(), rate, None).unwrap();
        let fresh = hark::pipeline::detect_signal(&mut new, samples, rate).unwrap();
        assert_eq!(again, fresh, "stream {i} at {rate} Hz");
        if rate == 16000 {
            let targets = said.iter().filter(|s| s.target).count();
            assert!(fresh.len() >= targets - 1, "stream {i}: {fresh:?}");
        }
    }
}

#[test]
fn the_quiet_room_gate_skips_the_base_model_in_silence_but_not_in_speech() {
    let assets = common::assets();
    let emb = Embedder::load(&assets).unwrap();
    let mut f = hark::pipeline::Features::new(emb, 16000).unwrap();
    let quiet = synth::noise(20.0, 8.0, 5);
    f.push(&quiet, &mut |_, _| {}).unwrap();
    let (blocks, gated) = f.gate_stats();
    assert!(
        gated as f64 >= 0.9 * blocks as f64,
        "quiet room: {gated} of {blocks} blocks skipped"
    );
    let (speech, said) = synth::stream(synth::VOICE, 1).unwrap();
    let before = f.gate_stats();
    f.push(&speech, &mut |_, _| {}).unwrap();
    let after = f.gate_stats();
    let open = (after.0 - before.0) - (after.1 - before.1);
    // Each word keeps the model running for at least the ~10 blocks its window spans.
    assert!(
        open as usize >= 10 * said.len(),
        "speech: the model ran for only {open} blocks"
    );
}
