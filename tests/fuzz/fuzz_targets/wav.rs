//! hark's WAV reader (`hark::audio::wav::WavStream`) on arbitrary bytes: open, then read every
//! sample. Must return Ok or Err, never panic, and never allocate what a header claims.
#![no_main]

mod cap;

use hark::audio::wav::WavStream;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

#[global_allocator]
static ALLOC: cap::Capped = cap::Capped;

fuzz_target!(|data: &[u8]| {
    let size = Some(data.len() as u64);
    let Ok(mut wav) = WavStream::from_reader(data, Path::new("fuzz.wav"), size) else {
        return;
    };
    assert!(wav.frames as u64 <= data.len() as u64);
    let mut out = Vec::new();
    while let Ok(n) = wav.read_into(4096, &mut out) {
        if n == 0 {
            break;
        }
        assert!(out.iter().all(|v| v.is_finite()));
        out.clear();
    }
});
