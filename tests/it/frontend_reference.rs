//! The Rust front end against the reference `melspectrogram.onnx`, run by ONNX Runtime on real
//! speech: log-mel values within 0.005 (after `x/10+2`), embeddings with cosine >= 0.9999.

use crate::common;

use hark::pipeline::embedding::{Embedder, DIM, WINDOW_FRAMES};
use hark::pipeline::frontend::{BLOCK_FRAMES, BLOCK_SAMPLES, N_FFT, N_MELS};
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
            x.extend(hark::audio::wav::read_16k(&d.join("fsdd").join(f)).unwrap());
            x.extend(std::iter::repeat_n(0.0, 3000));
        }
        let n = hark::audio::wav::read_16k(&d.join("noise/running_tap.wav")).unwrap();
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
    let ours = hark::pipeline::embedding::logmel(&x);
    let nblocks = ours.len() / (BLOCK_FRAMES * N_MELS);
    assert!(nblocks > 20);
    let mut session = hark::assets::session(&assets, &assets.melspec_model()).unwrap();
    // The reference, block by block as openWakeWord calls it (so the -80 dB floor is per block).
    let span = BLOCK_SAMPLES + N_FFT - hark::pipeline::frontend::HOP; // 8 frames
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
    let batched = hark::pipeline::embedding::embed_signal(&mut emb, &x).unwrap();
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

/// The original `embedding_model.onnx`, run by ONNX Runtime on whole 76-frame windows.
fn original_model_embeddings(assets: &hark::assets::Assets, frames: &[f32]) -> Vec<f32> {
    let mut session = hark::assets::session(assets, &assets.embedding_model()).unwrap();
    let win = WINDOW_FRAMES * N_MELS;
    // The warm-up window is all ones, then one window per 8-frame block.
    let mut padded = vec![1.0f32; win - BLOCK_FRAMES * N_MELS];
    padded.extend_from_slice(frames);
    let mut out = Vec::new();
    for b in 0..frames.len() / (BLOCK_FRAMES * N_MELS) {
        let w = &padded[b * BLOCK_FRAMES * N_MELS..][..win];
        let input = TensorRef::from_array_view(([1usize, WINDOW_FRAMES, N_MELS, 1], w)).unwrap();
        let outputs = session.run(ort::inputs![input]).unwrap();
        let (_, e) = outputs[0].try_extract_tensor::<f32>().unwrap();
        out.extend_from_slice(&e[..DIM]);
    }
    out
}

#[test]
fn the_streaming_base_model_equals_the_original_on_every_window() {
    let assets = common::assets();
    let x = speech();
    let frames = hark::pipeline::embedding::logmel(&x);
    let want = original_model_embeddings(&assets, &frames);
    let mut emb = Embedder::load(&assets).unwrap();

    // Offline: large calls over the whole signal.
    let batched = hark::pipeline::embedding::embed_signal(&mut emb, &x).unwrap();
    // Streaming: one block per call, after the one cold start.
    let mut streamed = Vec::new();
    let mut e = [0.0f32; DIM];
    for block in frames.chunks(BLOCK_FRAMES * N_MELS) {
        emb.push_block(block, &mut e).unwrap();
        streamed.extend_from_slice(&e);
    }
    assert_eq!(want.len(), frames.len() / (BLOCK_FRAMES * N_MELS) * DIM);
    for (name, got) in [("batched", &batched), ("streamed", &streamed)] {
        assert_eq!(got.len(), want.len(), "{name}: number of embeddings");
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{name} streaming model vs original: max |diff| {worst:e}");
        assert!(worst <= 1e-4, "{name}: max |diff| {worst}");
    }
}

#[test]
fn embeddings_after_the_gate_reopens_equal_ungated_ones() {
    let assets = common::assets();
    // Words separated by stretches of a quiet room long enough for the gate to close.
    let mut x = Vec::new();
    for w in ["lantern", "pumpkin", "violin"] {
        x.extend(std::iter::repeat_n(0.0, 48000));
        x.extend(common::say(w, "en-us", 150, 50));
    }
    x.extend(std::iter::repeat_n(0.0, 48000));
    let room = hark::audio::synth::noise(x.len() as f32 / 16000.0 + 1.0, 8.0, 9);
    x.iter_mut().zip(room).for_each(|(a, n)| *a += n);
    let mut emb = Embedder::load(&assets).unwrap();
    let want = hark::pipeline::embedding::embed_signal(&mut emb, &x).unwrap();
    let mut f = hark::pipeline::Features::new(emb, 16000).unwrap();
    let mut got: Vec<Option<Vec<f32>>> = Vec::new();
    for c in x.chunks(1280) {
        f.push(c, &mut |_, e| got.push(e.map(|e| e.to_vec())))
            .unwrap();
    }
    let (blocks, gated) = f.gate_stats();
    assert!(gated > 0 && gated < blocks, "{gated} of {blocks} gated");
    let mut reopened = 0;
    let mut worst = 0.0f32;
    for (b, e) in got.iter().enumerate() {
        if let Some(e) = e {
            if b > 0 && got[b - 1].is_none() {
                reopened += 1;
            }
            for (a, w) in e.iter().zip(&want[b * DIM..(b + 1) * DIM]) {
                worst = worst.max((a - w).abs());
            }
        }
    }
    let pattern: String = got
        .iter()
        .map(|e| if e.is_some() { '#' } else { '.' })
        .collect();
    eprintln!("gate reopened {reopened} times; max |diff| {worst:e}\n{pattern}");
    assert!(reopened >= 3, "gate reopened {reopened} times");
    assert!(worst <= 1e-4, "max |diff| {worst}");
}

#[test]
fn embedding_a_long_clip_in_pieces_equals_embedding_it_whole() {
    use hark::pipeline::embedding::{embed_signal_warped, Pieces};
    let assets = common::assets();
    let mut emb = Embedder::load(&assets).unwrap();
    // Long enough for several calls of the model (64 blocks, 5.12 s each) and a partial one.
    let once = speech();
    let mut x = Vec::new();
    while x.len() < 16000 * 14 {
        x.extend_from_slice(&once);
    }
    x.truncate(16000 * 14 + 777);
    for warp in [1.0, 1.1] {
        let whole = embed_signal_warped(&mut emb, &x, warp, &[]).unwrap();
        assert_eq!(whole.len() / DIM, x.len() / BLOCK_SAMPLES);
        let sizes = [1, 159, 160, 1279, 1280, 16000, 81_920, 3];
        let mut pieces = Pieces::new(&mut emb, warp, 0);
        let (mut at, mut k) = (0, 0);
        while at < x.len() {
            let n = sizes[k % sizes.len()].min(x.len() - at);
            pieces.push(&x[at..at + n]).unwrap();
            (at, k) = (at + n, k + 1);
        }
        let parts = pieces.finish().unwrap();
        assert!(whole == parts, "warp {warp}: pieces differ from the whole");
    }
    // A signal shorter than one block has no embedding, in pieces or whole.
    let mut short = Pieces::new(&mut emb, 1.0, 100);
    short.push(&x[..1000]).unwrap();
    assert!(short.finish().unwrap().is_empty());
}
