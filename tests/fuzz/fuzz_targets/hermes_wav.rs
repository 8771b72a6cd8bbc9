//! The Hermes audio-frame WAV parser of `hark serve` (src/hermes/wav.rs, in the binary
//! crate, included here by path: it needs only std and anyhow) on arbitrary bytes.
#![no_main]

mod cap;

#[allow(dead_code)]
#[path = "../../../src/hermes/wav.rs"]
mod wav;

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: cap::Capped = cap::Capped;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = wav::parse(data) {
        assert!(frame.samples.len() <= data.len());
        assert!(frame.samples.iter().all(|v| v.is_finite()));
    }
});
