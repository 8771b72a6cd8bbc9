//! An event's clip: the audio around a detection that `hark listen --keep-audio` saves and
//! `hark reject` / `hark confirm` file into the recordings. One definition of where it lies, so
//! the daemon's ring buffer and the feedback benchmark cut the same samples.

use crate::pipeline::frontend::SAMPLE_RATE;

/// Seconds of audio kept before the moment a detection fires (the firing windows and the
/// smoothing look back about 0.95 s).
pub const BEFORE_SECONDS: f64 = 1.5;
/// Seconds kept after it: the clip is complete this long after the event.
pub const AFTER_SECONDS: f64 = 0.5;
/// Samples in a whole clip at 16 kHz.
pub const CLIP_SAMPLES: usize = ((BEFORE_SECONDS + AFTER_SECONDS) * SAMPLE_RATE as f64) as usize;

/// The 16 kHz sample range `[start, end)` of the clip of an event at stream time `time`
/// (seconds), before clamping to what a stream holds.
pub fn range(time: f64) -> (u64, u64) {
    let sr = SAMPLE_RATE as f64;
    let end = ((time + AFTER_SECONDS) * sr).round().max(0.0) as u64;
    (end.saturating_sub(CLIP_SAMPLES as u64), end)
}

/// The clip of an event at `time` cut from a whole 16 kHz stream (shorter at its edges).
pub fn cut(samples: &[f32], time: f64) -> &[f32] {
    let (a, b) = range(time);
    let n = samples.len() as u64;
    &samples[a.min(n) as usize..b.min(n) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clip_runs_from_before_to_after_the_event_and_is_clamped_to_the_stream() {
        assert_eq!(range(10.0), (136_000, 168_000));
        assert_eq!(range(0.2), (0, 11_200));
        let x: Vec<f32> = (0..170_000).map(|i| i as f32).collect();
        let c = cut(&x, 10.0);
        assert_eq!((c.len(), c[0]), (CLIP_SAMPLES, 136_000.0));
        assert_eq!(cut(&x, 10.6).len(), 170_000 - 145_600);
    }
}
