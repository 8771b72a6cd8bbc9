//! The speech engines of `hark::audio::synth`: every installed engine, each of its voices,
//! says a word as 16 kHz speech. An engine that is not installed is skipped with a note, except
//! under CI for those `.ci/setup` installs (espeak-ng, flite, festival), which must speak.

use hark::audio::synth::{Engine, Voice};

/// The engines `.ci/setup` installs (mbrola is not in Debian main).
const SET_UP: [Engine; 3] = [Engine::Espeak, Engine::Flite, Engine::Festival];

#[test]
fn every_installed_engine_says_a_word_as_16k_speech() {
    for engine in Engine::ALL {
        if !engine.available() {
            assert!(
                std::env::var_os("CI").is_none() || !SET_UP.contains(&engine),
                "{engine} is not installed although .ci/setup installs it"
            );
            println!(
                "skipped {engine}: not installed (Debian: {})",
                engine.package()
            );
            continue;
        }
        for name in engine.voices() {
            for (speed, pitch) in [(175, 50), (120, 20), (210, 85)] {
                let voice = Voice::new(engine, name, speed, pitch);
                let x = voice.say("window").unwrap();
                let seconds = x.len() as f32 / 16000.0;
                assert!((0.25..3.0).contains(&seconds), "{voice:?}: {seconds} s");
                let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
                assert!(rms > 300.0, "{voice:?}: nearly silent (rms {rms})");
                // Speech, not a tone or noise: energy rises and falls over the word.
                let frames: Vec<f32> = x
                    .chunks(400)
                    .map(|c| c.iter().map(|v| v.abs()).sum::<f32>() / c.len() as f32)
                    .collect();
                let loud = frames.iter().cloned().fold(0.0, f32::max);
                assert!(
                    frames.iter().any(|f| *f < loud * 0.1),
                    "{voice:?}: no pause"
                );
            }
        }
    }
}

#[test]
fn slower_speech_is_longer_and_the_engines_differ() {
    let mut said = Vec::new();
    for engine in hark::audio::synth::installed(&SET_UP) {
        let name = engine.voices()[0];
        let fast = Voice::new(engine, name, 220, 50).say("breakfast").unwrap();
        let slow = Voice::new(engine, name, 120, 50).say("breakfast").unwrap();
        let (fast, slow) = (
            hark::train::dataset::trim(&fast).unwrap(),
            hark::train::dataset::trim(&slow).unwrap(),
        );
        assert!(
            slow.len() as f32 > fast.len() as f32 * 1.3,
            "{engine}: {} vs {}",
            slow.len(),
            fast.len()
        );
        said.push(slow);
    }
    for (i, a) in said.iter().enumerate() {
        assert!(
            said[..i].iter().all(|b| b != a),
            "two engines said the same samples"
        );
    }
}
