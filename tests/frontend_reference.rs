//! The Rust front end against the reference `melspectrogram.onnx`, run by ONNX Runtime on real
//! speech: log-mel values within 0.005 (after `x/10+2`), embeddings with cosine >= 0.9999.

mod common;

use hark::embedding::{Embedder, DIM, WINDOW_FRAMES};
use hark::frontend::{BLOCK_FRAMES, BLOCK_SAMPLES, N_FFT, N_MELS};
use ort::value::TensorRef;

fn speech() -> Vec<f32> {
    // Real recorded speech when the shared data is there, else espeak-ng speech.
    let mut x = Vec::new();
    if let Some(d) = common::shared_data() {
        for f in [
            "3_theo_10.wav",
            "7_george_3.wav",
            "0_nicolas_20.wav",
            "9_jackson_4.wav",
        ] {
            x.extend(hark::wav::read_16k(&d.join("fsdd").join(f)).unwrap());
            x.extend(std::iter::repeat_n(0.0, 3000));
        }
        let n = hark::wav::read_16k(&d.join("noise/running_tap.wav")).unwrap();
        x.iter_mut().zip(n).for_each(|(a, b)| *a += 0.05 * b);
    } else {
        eprintln!("note: ../shared/data absent; comparing on espeak-ng speech instead");
        x = common::say(
            "the quick brown fox jumps over the lazy dog",
            "en-us",
            150,
            50,
        );
    }
    x
}

#[test]
fn rust_logmel_matches_the_reference_model_and_its_embeddings() {
    let assets = common::assets();
    let x = speech();
    let ours = hark::embedding::logmel(&x);
    let nblocks = ours.len() / (BLOCK_FRAMES * N_MELS);
    assert!(nblocks > 20);
    let mut session = hark::assets::session(&assets, &assets.melspec_model()).unwrap();
    // The reference, block by block as openWakeWord calls it (so the -80 dB floor is per block).
    let span = BLOCK_SAMPLES + N_FFT - hark::frontend::HOP; // 8 frames
    let mut reference = Vec::with_capacity(ours.len());
    for b in 0..nblocks {
        let chunk = &x[b * BLOCK_SAMPLES..b * BLOCK_SAMPLES + span];
        let input = TensorRef::from_array_view(([1usize, span], chunk)).unwrap();
        let out = session.run(ort::inputs![input]).unwrap();
        let (shape, v) = out[0].try_extract_tensor::<f32>().unwrap();
        assert_eq!(v.len(), BLOCK_FRAMES * N_MELS, "reference shape {shape:?}");
        reference.extend(v.iter().map(|d| d / 10.0 + 2.0));
    }
    let max_diff = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "log-mel max |ours - reference| = {max_diff:.6} over {} values",
        ours.len()
    );
    assert!(max_diff <= 0.005, "max abs difference {max_diff}");

    // Embeddings of the same windows from both.
    let mut emb = Embedder::load(&assets).unwrap();
    let win = WINDOW_FRAMES * N_MELS;
    let windows = |m: &[f32]| -> Vec<f32> {
        (0..=(m.len() - win) / (BLOCK_FRAMES * N_MELS))
            .flat_map(|b| m[b * BLOCK_FRAMES * N_MELS..][..win].to_vec())
            .collect()
    };
    let ea = emb.embed_windows(&windows(&ours)).unwrap();
    let eb = emb.embed_windows(&windows(&reference)).unwrap();
    let mut worst = 1.0f32;
    for (a, b) in ea.chunks(DIM).zip(eb.chunks(DIM)) {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        let nb = b.iter().map(|v| v * v).sum::<f32>().sqrt();
        worst = worst.min(dot / (na * nb));
    }
    eprintln!("embedding cosine similarity, worst window: {worst:.6}");
    assert!(worst >= 0.9999, "worst cosine {worst}");
}

#[test]
fn streaming_embeddings_equal_batched_ones() {
    let assets = common::assets();
    let x = speech();
    let mut emb = Embedder::load(&assets).unwrap();
    let batched = hark::embedding::embed_signal(&mut emb, &x).unwrap();
    let mut f = hark::pipeline::Features::new(emb, 16000).unwrap();
    f.set_gate(false);
    let mut streamed = Vec::new();
    for c in x.chunks(1280) {
        f.push(c, &mut |_, e| {
            streamed.extend_from_slice(e.expect("gate is off"))
        })
        .unwrap();
    }
    assert_eq!(streamed.len(), batched.len());
    let diff = streamed
        .iter()
        .zip(&batched)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-3,
        "streamed vs batched embeddings differ by {diff}"
    );
}
