//! [`Ring`]: the recent samples of a stream in a buffer allocated once, addressed by their
//! position in the whole stream. `hark listen --keep-audio` cuts event clips from one; the word
//! check cuts the audio around a candidate from another. Pushing never allocates. The samples
//! are kept as 16-bit integers (half the memory of floats): exact for what a 16-bit source
//! gives, within half a step for resampled audio.

/// The recent samples, and how many the stream has had in all.
pub struct Ring {
    buf: Box<[i16]>,
    total: u64,
}

impl Ring {
    /// An empty ring that holds the last `capacity` samples (the one allocation).
    pub fn with_capacity(capacity: usize) -> Ring {
        Ring {
            buf: vec![0; capacity.max(1)].into_boxed_slice(),
            total: 0,
        }
    }

    /// Samples the stream has had in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Forgets the stream (a new one starts at position 0); keeps the buffer.
    pub fn clear(&mut self) {
        self.total = 0;
    }

    /// Appends samples, overwriting the oldest.
    pub fn push(&mut self, x: &[f32]) {
        let n = self.buf.len();
        let skip = x.len().saturating_sub(n);
        self.total += skip as u64;
        let x = &x[skip..];
        let mut at = (self.total % n as u64) as usize;
        let mut rest = x;
        while !rest.is_empty() {
            let k = rest.len().min(n - at);
            for (o, v) in self.buf[at..at + k].iter_mut().zip(&rest[..k]) {
                // `as` saturates (and takes NaN to 0).
                *o = v.round() as i16;
            }
            rest = &rest[k..];
            at = (at + k) % n;
        }
        self.total += x.len() as u64;
    }

    /// Copies stream samples `[start, end)` (clamped to what the ring still holds and has had)
    /// into `out`, which keeps its capacity.
    pub fn copy_out(&self, start: u64, end: u64, out: &mut Vec<f32>) {
        out.clear();
        let n = self.buf.len() as u64;
        let start = start.max(self.total.saturating_sub(n));
        for i in start..end.min(self.total) {
            out.push(f32::from(self.buf[(i % n) as usize]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample `i` of the test stream: its position, wrapped into 16 bits.
    fn at(i: usize) -> f32 {
        (i % 30_000) as f32
    }

    #[test]
    fn the_ring_keeps_the_newest_samples_and_cuts_by_stream_position() {
        const CAP: usize = 56_000;
        let mut r = Ring::with_capacity(CAP);
        let x: Vec<f32> = (0..100_000).map(at).collect();
        for c in x.chunks(3000) {
            r.push(c);
        }
        assert_eq!(r.total(), 100_000);
        let mut out = Vec::new();
        r.copy_out(90_000, 99_000, &mut out);
        assert_eq!(
            (out.len(), out[0], out[8999]),
            (9000, at(90_000), at(98_999))
        );
        // Gone from the ring: clamped to what it holds; past the end: clamped to the total.
        r.copy_out(0, 200_000, &mut out);
        assert_eq!(out.len(), CAP);
        assert_eq!(out[0], at(100_000 - CAP));
        r.push(&x[..CAP + 10]);
        assert_eq!(r.total(), 100_000 + CAP as u64 + 10);
        r.copy_out(r.total() - 2, r.total(), &mut out);
        assert_eq!(out, [at(CAP + 8), at(CAP + 9)]);
        r.clear();
        r.copy_out(0, 10, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn samples_are_kept_to_the_nearest_16_bit_step_and_saturate() {
        let mut r = Ring::with_capacity(8);
        r.push(&[0.4, -0.6, 1234.5, 40_000.0, -40_000.0, f32::NAN, -3.0]);
        let mut out = Vec::new();
        r.copy_out(0, 7, &mut out);
        assert_eq!(out, [0.0, -1.0, 1235.0, 32767.0, -32768.0, 0.0, -3.0]);
    }
}
