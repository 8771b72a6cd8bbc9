//! Reading WAV files (any format hound reads) into mono samples in int16 scale.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A decoded WAV file: mono samples in int16 scale (-32768..32767) at the file's own rate.
pub struct Audio {
    pub rate: u32,
    pub samples: Vec<f32>,
}

/// A WAV file read in chunks: mono samples in int16 scale, so a long file never sits in memory.
/// `R` is where the bytes come from: a file by default, any reader via [`WavStream::from_reader`].
pub struct WavStream<R: Read = BufReader<std::fs::File>> {
    reader: hound::WavReader<R>,
    path: PathBuf,
    channels: usize,
    /// Multiplier to int16 scale; None for float samples.
    int_scale: Option<f64>,
    pub rate: u32,
    /// Frames in the file according to its header, at most what the file's size can hold.
    pub frames: u32,
}

impl WavStream {
    /// Opens and checks a WAV file of 8/16/24/32-bit integer or 32-bit float samples. Every
    /// error names the file and what is wrong with it.
    pub fn open(path: &Path) -> Result<WavStream> {
        let invalid = |reason: String| Error::invalid(path, reason);
        let meta = std::fs::metadata(path).map_err(Error::io(path, "cannot open"))?;
        if meta.is_dir() {
            return Err(invalid("is a directory, not a WAV file".into()));
        }
        // A FIFO or a device has no length to check; it is read as it comes.
        if meta.is_file() && meta.len() == 0 {
            return Err(invalid("file is empty (0 bytes), not a WAV file".into()));
        }
        let file = std::fs::File::open(path).map_err(Error::io(path, "cannot open"))?;
        let size = meta.is_file().then_some(meta.len());
        WavStream::from_reader(BufReader::new(file), path, size)
    }
}

impl<R: Read> WavStream<R> {
    /// Checks a WAV header read from `reader` (bytes in memory, a pipe...); `path` names it in
    /// errors, `size` is its length in bytes when known (a header never counts beyond it).
    pub fn from_reader(reader: R, path: &Path, size: Option<u64>) -> Result<WavStream<R>> {
        let invalid = |reason: String| Error::invalid(path, reason);
        let reader = hound::WavReader::new(reader).map_err(|e| invalid(header_problem(e)))?;
        let spec = reader.spec();
        let channels = spec.channels as usize;
        if channels == 0 {
            return Err(invalid("WAV header says 0 channels".into()));
        }
        if spec.sample_rate < 4000 || spec.sample_rate > 384_000 {
            return Err(invalid(format!(
                "sample rate {} Hz is outside 4000..=384000 Hz",
                spec.sample_rate
            )));
        }
        let int_scale = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, 32) => None,
            (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
                Some(32768.0 / (1u64 << (bits - 1)) as f64)
            }
            (fmt, bits) => {
                return Err(invalid(format!(
                    "unsupported sample format: {bits}-bit {fmt:?}"
                )))
            }
        };
        // A header may claim more than the file holds: never trust it beyond the file's size.
        let bytes_per_frame = channels as u64 * spec.bits_per_sample.div_ceil(8) as u64;
        let frames = match size {
            Some(len) => (reader.duration() as u64).min(len / bytes_per_frame) as u32,
            None => reader.duration(),
        };
        Ok(WavStream {
            reader,
            path: path.to_path_buf(),
            channels,
            int_scale,
            rate: spec.sample_rate,
            frames,
        })
    }

    /// Appends up to `frames` mono samples to `out`; returns how many (0 at the end).
    pub fn read_into(&mut self, frames: usize, out: &mut Vec<f32>) -> Result<usize> {
        let path = &self.path;
        let truncated = |e: hound::Error| Error::invalid(path, sample_problem(e));
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
                    push(sane(s.map_err(truncated)? * 32768.0), out);
                }
            }
            Some(scale) => {
                for s in self.reader.samples::<i32>().take(frames * ch) {
                    push((s.map_err(truncated)? as f64 * scale) as f32, out);
                }
            }
        }
        if k != 0 {
            return Err(Error::invalid(path, "truncated: last frame is incomplete"));
        }
        Ok(n)
    }
}

/// The largest float sample magnitude hark passes on (int16 scale: 24 dB over full scale).
pub const FLOAT_LIMIT: f32 = 32768.0 * 16.0;

/// A float sample made safe for the stages after it: NaN and infinities become silence, and
/// magnitudes beyond [`FLOAT_LIMIT`] are clipped (a corrupt 1e35 would overflow the resampler).
fn sane(v: f32) -> f32 {
    if v.is_finite() {
        v.clamp(-FLOAT_LIMIT, FLOAT_LIMIT)
    } else {
        0.0
    }
}

/// What is wrong with a WAV file whose header hound refuses.
fn header_problem(e: hound::Error) -> String {
    match e {
        hound::Error::FormatError(m) if m.contains("bits per sample") || m.contains("format") => {
            format!("unsupported sample format ({m}); hark reads 8/16/24/32-bit integer and 32-bit float WAV")
        }
        hound::Error::FormatError(m) => format!("not a readable WAV file ({m})"),
        hound::Error::Unsupported => "unsupported WAV sample format".into(),
        other => format!("cannot read WAV header ({other})"),
    }
}

/// What is wrong with a WAV file whose samples hound cannot decode.
fn sample_problem(e: hound::Error) -> String {
    match e {
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "truncated: the data chunk ends before its declared length".into()
        }
        other if other.to_string().contains("enough bytes") => {
            "truncated: the data chunk ends before its declared length".into()
        }
        other => format!("cannot decode samples ({other})"),
    }
}

/// Reads a whole WAV file of 8/16/24/32-bit integer or 32-bit float samples, mixing all
/// channels down to mono. Every error names the file and what is wrong with it.
pub fn read(path: &Path) -> Result<Audio> {
    let mut st = WavStream::open(path)?;
    // Reserved from the header's count only up to a bound: a header can lie.
    let mut samples = Vec::with_capacity((st.frames as usize).min(1 << 24));
    while st.read_into(1 << 16, &mut samples)? > 0 {}
    if samples.is_empty() {
        return Err(Error::invalid(
            path,
            "contains no audio samples (zero length)",
        ));
    }
    Ok(Audio {
        rate: st.rate,
        samples,
    })
}

/// Reads a WAV file and resamples it to 16 kHz mono.
pub fn read_16k(path: &Path) -> Result<Vec<f32>> {
    let a = read(path)?;
    crate::pipeline::resample::to_16k(&a.samples, a.rate).map_err(|e| Error::Invalid {
        path: path.into(),
        reason: format!("cannot resample from {} Hz", a.rate),
        source: Some(e.into()),
    })
}

/// Writes 16 kHz mono 16-bit samples (int16 scale) to `path` via a temporary file and a rename,
/// so the file is never half-written (see [`AtomicFile`](crate::util::AtomicFile)).
pub fn write_16k(path: &Path, samples: &[f32]) -> Result<()> {
    let out = encode_16k(path, samples)?;
    out.commit()
}

/// Writes 16 kHz mono 16-bit samples to `path` only if no file has that name: an existing
/// file is never replaced.
pub fn write_16k_new(path: &Path, samples: &[f32]) -> Result<()> {
    let out = encode_16k(path, samples)?;
    out.commit_new()
}

/// The samples as a 16 kHz mono 16-bit WAV in a temporary file for `path`, not yet in place.
fn encode_16k(path: &Path, samples: &[f32]) -> Result<crate::util::AtomicFile> {
    let out = crate::util::AtomicFile::create(path)?;
    let tmp = out.temp_path().to_path_buf();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: crate::pipeline::frontend::SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(std::io::BufWriter::new(out.file()), spec)
        .map_err(Error::io(&tmp, "cannot create"))?;
    for s in samples {
        w.write_sample(s.round().clamp(-32768.0, 32767.0) as i16)
            .map_err(Error::io(&tmp, "cannot write"))?;
    }
    w.finalize().map_err(Error::io(&tmp, "cannot write"))?;
    Ok(out)
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

    #[test]
    fn a_header_read_from_memory_is_trusted_only_as_far_as_its_bytes() {
        // 8-bit mono whose data chunk claims 4 GiB but holds 4 bytes (tests/fuzz/corpus/wav/).
        let mut b = b"RIFF\xff\xff\xff\xffWAVEfmt \x10\0\0\0\x01\0\x01\0".to_vec();
        b.extend_from_slice(&16000u32.to_le_bytes());
        b.extend_from_slice(&16000u32.to_le_bytes());
        b.extend_from_slice(b"\x01\0\x08\0data\xf0\xff\xff\xff\x80\x80\x80\x80");
        let mut st = WavStream::from_reader(&b[..], Path::new("m.wav"), Some(b.len() as u64));
        let st = st.as_mut().unwrap();
        assert!(st.frames as usize <= b.len());
        let mut out = Vec::new();
        let err = loop {
            match st.read_into(1 << 16, &mut out) {
                Ok(0) => panic!("a 4-byte data chunk read as complete"),
                Ok(_) => continue,
                Err(e) => break e.to_string(),
            }
        };
        assert!(err.contains("m.wav") && err.contains("truncated"), "{err}");
        assert_eq!(out, [0.0; 4]);
    }
}
