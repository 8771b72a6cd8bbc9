//! Reading WAV files (any format hound reads) into mono samples in int16 scale.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// A decoded WAV file: mono samples in int16 scale (-32768..32767) at the file's own rate.
pub struct Audio {
    pub rate: u32,
    pub samples: Vec<f32>,
}

/// A WAV file read in chunks: mono samples in int16 scale, so a long file never sits in memory.
pub struct WavStream {
    reader: hound::WavReader<std::io::BufReader<std::fs::File>>,
    shown: String,
    channels: usize,
    /// Multiplier to int16 scale; None for float samples.
    int_scale: Option<f64>,
    pub rate: u32,
    /// Frames in the file according to its header.
    pub frames: u32,
}

impl WavStream {
    /// Opens and checks a WAV file of 8/16/24/32-bit integer or 32-bit float samples. Every
    /// error names the file and what is wrong with it.
    pub fn open(path: &Path) -> Result<WavStream> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).with_context(|| format!("{shown}: cannot open"))?;
        if meta.is_dir() {
            bail!("{shown}: is a directory, not a WAV file");
        }
        if meta.len() == 0 {
            bail!("{shown}: file is empty (0 bytes), not a WAV file");
        }
        let reader = hound::WavReader::open(path).map_err(|e| match e {
            hound::Error::FormatError(m) if m.contains("bits per sample") || m.contains("format") => {
                anyhow::anyhow!("{shown}: unsupported sample format ({m}); hark reads 8/16/24/32-bit integer and 32-bit float WAV")
            }
            hound::Error::FormatError(m) => anyhow::anyhow!("{shown}: not a readable WAV file ({m})"),
            hound::Error::Unsupported => anyhow::anyhow!("{shown}: unsupported WAV sample format"),
            other => anyhow::anyhow!("{shown}: cannot read WAV header ({other})"),
        })?;
        let spec = reader.spec();
        let channels = spec.channels as usize;
        if channels == 0 {
            bail!("{shown}: WAV header says 0 channels");
        }
        if spec.sample_rate < 4000 || spec.sample_rate > 384_000 {
            bail!(
                "{shown}: sample rate {} Hz is outside 4000..=384000 Hz",
                spec.sample_rate
            );
        }
        let int_scale = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, 32) => None,
            (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
                Some(32768.0 / (1u64 << (bits - 1)) as f64)
            }
            (fmt, bits) => bail!("{shown}: unsupported sample format: {bits}-bit {fmt:?}"),
        };
        let frames = reader.duration();
        Ok(WavStream {
            reader,
            shown,
            channels,
            int_scale,
            rate: spec.sample_rate,
            frames,
        })
    }

    /// Appends up to `frames` mono samples to `out`; returns how many (0 at the end).
    pub fn read_into(&mut self, frames: usize, out: &mut Vec<f32>) -> Result<usize> {
        let shown = &self.shown;
        let truncated = |e: hound::Error| match e {
            hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                anyhow::anyhow!(
                    "{shown}: truncated: the data chunk ends before its declared length"
                )
            }
            other if other.to_string().contains("enough bytes") => {
                anyhow::anyhow!(
                    "{shown}: truncated: the data chunk ends before its declared length"
                )
            }
            other => anyhow::anyhow!("{shown}: cannot decode samples ({other})"),
        };
        let ch = self.channels;
        let (mut n, mut acc, mut k) = (0usize, 0.0f32, 0usize);
        let mut push = |v: f32, out: &mut Vec<f32>| {
            acc += v;
            k += 1;
            if k == ch {
                out.push(acc / ch as f32);
                acc = 0.0;
                k = 0;
                n += 1;
            }
        };
        match self.int_scale {
            None => {
                for s in self.reader.samples::<f32>().take(frames * ch) {
                    push(s.map_err(truncated)? * 32768.0, out);
                }
            }
            Some(scale) => {
                for s in self.reader.samples::<i32>().take(frames * ch) {
                    push((s.map_err(truncated)? as f64 * scale) as f32, out);
                }
            }
        }
        if k != 0 {
            bail!("{shown}: truncated: last frame is incomplete");
        }
        Ok(n)
    }
}

/// Reads a whole WAV file of 8/16/24/32-bit integer or 32-bit float samples, mixing all
/// channels down to mono. Every error names the file and what is wrong with it.
pub fn read(path: &Path) -> Result<Audio> {
    let mut st = WavStream::open(path)?;
    let mut samples = Vec::with_capacity(st.frames as usize);
    while st.read_into(1 << 16, &mut samples)? > 0 {}
    if samples.is_empty() {
        bail!(
            "{}: contains no audio samples (zero length)",
            path.display()
        );
    }
    Ok(Audio {
        rate: st.rate,
        samples,
    })
}

/// Reads a WAV file and resamples it to 16 kHz mono.
pub fn read_16k(path: &Path) -> Result<Vec<f32>> {
    let a = read(path)?;
    crate::pipeline::resample::to_16k(&a.samples, a.rate)
        .with_context(|| format!("{}: cannot resample from {} Hz", path.display(), a.rate))
}

/// Writes 16 kHz mono 16-bit samples (int16 scale) to `path` via a temporary file and a rename,
/// so the file is never half-written.
pub fn write_16k(path: &Path, samples: &[f32]) -> Result<()> {
    let tmp = crate::util::temp_sibling(path);
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: crate::pipeline::frontend::SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&tmp, spec)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        for s in samples {
            w.write_sample(s.round().clamp(-32768.0, 32767.0) as i16)?;
        }
        w.finalize()
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
    }
    crate::util::commit(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, spec: hound::WavSpec, frames: &[f32]) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &v in frames {
            for _ in 0..spec.channels {
                match (spec.sample_format, spec.bits_per_sample) {
                    (hound::SampleFormat::Float, _) => w.write_sample(v).unwrap(),
                    (_, 8) => w.write_sample((v * 127.0) as i8).unwrap(),
                    (_, 16) => w.write_sample((v * 32767.0) as i16).unwrap(),
                    (_, 24) => w.write_sample((v * 8388607.0) as i32).unwrap(),
                    _ => w.write_sample((v * 2147483647.0) as i32).unwrap(),
                }
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn reads_every_integer_width_float_and_multichannel_in_int16_scale() {
        let dir = std::env::temp_dir().join(format!("hark-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let frames: Vec<f32> = (0..800).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        for (fmt, bits, ch) in [
            (hound::SampleFormat::Int, 8, 1),
            (hound::SampleFormat::Int, 16, 2),
            (hound::SampleFormat::Int, 24, 1),
            (hound::SampleFormat::Int, 32, 6),
            (hound::SampleFormat::Float, 32, 2),
        ] {
            let p = dir.join(format!("{bits}-{ch}.wav"));
            write(
                &p,
                hound::WavSpec {
                    channels: ch,
                    sample_rate: 22050,
                    bits_per_sample: bits,
                    sample_format: fmt,
                },
                &frames,
            );
            let a = read(&p).unwrap();
            assert_eq!(a.rate, 22050);
            assert_eq!(a.samples.len(), frames.len(), "{bits}-bit {ch} ch");
            let err = a
                .samples
                .iter()
                .zip(&frames)
                .map(|(x, y)| (x - y * 32768.0).abs())
                .fold(0.0f32, f32::max);
            let tol = if bits == 8 { 2.0 * 256.0 } else { 2.0 }; // 8-bit: one step is 256
            assert!(err < tol, "{bits}-bit {ch} ch: error {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
