//! [`Ring`]: the recent samples of a stream in a buffer allocated once, addressed by their
//! position in the whole stream. `hark listen --keep-audio` cuts event clips from one; the word
//! check cuts the audio around a candidate from another. Pushing never allocates.

/// The recent samples, and how many the stream has had in all.
pub struct Ring {
    buf: Box<[f32]>,
    total: u64,
}

impl Ring {
    /// An empty ring that holds the last `capacity` samples (the one allocation).
    pub fn with_capacity(capacity: usize) -> Ring {
        Ring {
            buf: vec![0.0; capacity.max(1)].into_boxed_slice(),
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
            self.buf[at..at + k].copy_from_slice(&rest[..k]);
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
            out.push(self.buf[(i % n) as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_samples_and_cuts_by_stream_position() {
        const CAP: usize = 56_000;
        let mut r = Ring::with_capacity(CAP);
        let x: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        for c in x.chunks(3000) {
            r.push(c);
        }
        assert_eq!(r.total(), 100_000);
        let mut out = Vec::new();
        r.copy_out(90_000, 99_000, &mut out);
        assert_eq!((out.len(), out[0], out[8999]), (9000, 90_000.0, 98_999.0));
        // Gone from the ring: clamped to what it holds; past the end: clamped to the total.
        r.copy_out(0, 200_000, &mut out);
        assert_eq!(out.len(), CAP);
        assert_eq!(out[0], (100_000 - CAP) as f32);
        r.push(&x[..CAP + 10]);
        assert_eq!(r.total(), 100_000 + CAP as u64 + 10);
        r.copy_out(r.total() - 2, r.total(), &mut out);
        assert_eq!(out, [(CAP + 8) as f32, (CAP + 9) as f32]);
        r.clear();
        r.copy_out(0, 10, &mut out);
        assert!(out.is_empty());
    }
}
