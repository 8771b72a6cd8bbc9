//! Stage 1: resampling to 16 kHz mono, streaming, with rubato's FFT resampler.

use rubato::{FftFixedIn, Resampler as _};

use crate::pipeline::frontend::SAMPLE_RATE;
use crate::{Error, Result};

const CHUNK: usize = 1024;

/// A streaming resampler from any rate to 16 kHz. At 16 kHz it passes samples straight through.
/// Output is delay-compensated: output sample `n` corresponds to input time `n / 16000` s.
pub struct Resampler {
    inner: Option<Inner>,
}

struct Inner {
    rs: FftFixedIn<f32>,
    input: Vec<Vec<f32>>,
    output: Vec<Vec<f32>>,
    /// Output samples still to drop to compensate the resampler's delay.
    skip: usize,
    /// Output samples owed in total so far (input consumed * ratio), for `flush`.
    consumed_in: u64,
    emitted_out: u64,
    rate: u32,
}

impl Resampler {
    pub fn new(rate: u32) -> Result<Self> {
        if rate == SAMPLE_RATE {
            return Ok(Resampler { inner: None });
        }
        let rs = FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE as usize, CHUNK, 2, 1)
            .map_err(|e| Error::Data(format!("cannot build a resampler from {rate} Hz: {e}")))?;
        let skip = rs.output_delay();
        let out_max = rs.output_frames_max();
        Ok(Resampler {
            inner: Some(Inner {
                rs,
                input: vec![Vec::with_capacity(CHUNK)],
                output: vec![vec![0.0; out_max]],
                skip,
                consumed_in: 0,
                emitted_out: 0,
                rate,
            }),
        })
    }

    /// Feeds mono samples at the source rate; calls `out` with 16 kHz samples. Stops at the
    /// first error `out` returns (the rest of `samples` is then dropped).
    pub fn push(
        &mut self,
        samples: &[f32],
        mut out: impl FnMut(&[f32]) -> Result<()>,
    ) -> Result<()> {
        let Some(st) = self.inner.as_mut() else {
            return out(samples);
        };
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (CHUNK - st.input[0].len()).min(rest.len());
            st.input[0].extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if st.input[0].len() == CHUNK {
                st.consumed_in += CHUNK as u64;
                st.run(&mut out, None)?;
            }
        }
        Ok(())
    }

    /// About how many more input samples give at least `out` more 16 kHz samples: exact at
    /// 16 kHz and for what the next burst (one FFT chunk of input) gives, within one burst
    /// beyond it (the bursts' sizes vary a little).
    pub fn input_for(&self, out: usize) -> usize {
        let Some(st) = self.inner.as_ref() else {
            return out;
        };
        let owed = out + st.skip;
        let first = st.rs.output_frames_next();
        let to_burst = CHUNK - st.input[0].len();
        if owed <= first {
            return to_burst;
        }
        let per_burst = (CHUNK as u64 * SAMPLE_RATE as u64 / st.rate as u64).max(1) as usize;
        to_burst + (owed - first).div_ceil(per_burst) * CHUNK
    }

    /// Pushes out what is still buffered (end of stream), trimmed to the input's duration.
    pub fn flush(&mut self, mut out: impl FnMut(&[f32]) -> Result<()>) -> Result<()> {
        let Some(st) = self.inner.as_mut() else {
            return Ok(());
        };
        st.consumed_in += st.input[0].len() as u64;
        let total = st.consumed_in * SAMPLE_RATE as u64 / st.rate as u64;
        // Feed silence until the delayed output has caught up with the input's duration.
        let mut guard = 0;
        while st.emitted_out < total && guard < 16 {
            st.input[0].resize(CHUNK, 0.0);
            st.run(&mut out, Some(total))?;
            guard += 1;
        }
        Ok(())
    }
}

impl Inner {
    fn run(
        &mut self,
        out: &mut impl FnMut(&[f32]) -> Result<()>,
        limit: Option<u64>,
    ) -> Result<()> {
        let (_, n) = self
            .rs
            .process_into_buffer(&self.input, &mut self.output, None)
            .expect("resampler buffers are sized by the resampler itself");
        self.input[0].clear();
        let mut chunk = &self.output[0][..n];
        let drop = self.skip.min(chunk.len());
        self.skip -= drop;
        chunk = &chunk[drop..];
        if let Some(limit) = limit {
            let left = limit.saturating_sub(self.emitted_out) as usize;
            chunk = &chunk[..chunk.len().min(left)];
        }
        self.emitted_out += chunk.len() as u64;
        if chunk.is_empty() {
            return Ok(());
        }
        out(chunk)
    }
}

/// Resamples a whole signal to 16 kHz.
pub fn to_16k(samples: &[f32], rate: u32) -> Result<Vec<f32>> {
    let mut rs = Resampler::new(rate)?;
    let mut v = Vec::with_capacity(samples.len() * SAMPLE_RATE as usize / rate as usize + CHUNK);
    let mut collect = |s: &[f32]| {
        v.extend_from_slice(s);
        Ok(())
    };
    rs.push(samples, &mut collect)?;
    rs.flush(&mut collect)?;
    Ok(v)
}

/// [`to_16k`] of owned samples: at 16 kHz they are returned as they are, with no copy.
pub fn into_16k(samples: Vec<f32>, rate: u32) -> Result<Vec<f32>> {
    if rate == SAMPLE_RATE {
        return Ok(samples);
    }
    to_16k(&samples, rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 16 kHz samples `rs` gives for `x`.
    fn count(rs: &mut Resampler, x: &[f32]) -> usize {
        let mut n = 0;
        rs.push(x, |s| {
            n += s.len();
            Ok(())
        })
        .unwrap();
        n
    }

    #[test]
    fn input_for_gives_the_output_within_one_burst() {
        for rate in [8000, 16000, 44100, 48000] {
            let x = tone(rate, 440.0, 2.0);
            let slack = if rate == SAMPLE_RATE { 0 } else { CHUNK };
            for (prefix, out) in [(0, 1), (0, 1280), (3000, 1), (3000, 700), (5000, 4000)] {
                let (mut a, mut b) = (Resampler::new(rate).unwrap(), Resampler::new(rate).unwrap());
                count(&mut a, &x[..prefix]);
                count(&mut b, &x[..prefix]);
                let n = a.input_for(out);
                let what = format!("{rate} Hz, after {prefix}, for {out}: {n}");
                assert!(
                    count(&mut a, &x[prefix..prefix + n + slack]) >= out,
                    "{what}"
                );
                let short = (n - 1).saturating_sub(slack);
                assert!(count(&mut b, &x[prefix..prefix + short]) < out, "{what}");
            }
        }
    }

    fn tone(rate: u32, hz: f32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 10000.0)
            .collect()
    }

    #[test]
    fn keeps_length_and_phase_for_common_rates() {
        for rate in [8000u32, 22050, 44100, 48000] {
            let x = tone(rate, 440.0, 1.0);
            let y = to_16k(&x, rate).unwrap();
            assert_eq!(y.len(), 16000, "rate {rate}");
            let want = tone(16000, 440.0, 1.0);
            // Away from the edges the delay-compensated output matches the ideal tone, up to the
            // resampler's delay rounded to whole output samples (under half a sample at 16 kHz,
            // which is under 0.07 of the amplitude for a 440 Hz tone).
            let err = y[2000..14000]
                .iter()
                .zip(&want[2000..14000])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 700.0, "rate {rate}: max error {err}");
        }
    }

    #[test]
    fn chunking_does_not_change_the_output() {
        let x = tone(44100, 300.0, 0.7);
        let whole = to_16k(&x, 44100).unwrap();
        let mut rs = Resampler::new(44100).unwrap();
        let mut v = Vec::new();
        let mut collect = |s: &[f32]| {
            v.extend_from_slice(s);
            Ok(())
        };
        for c in x.chunks(333) {
            rs.push(c, &mut collect).unwrap();
        }
        rs.flush(&mut collect).unwrap();
        assert_eq!(whole, v);
    }
}
