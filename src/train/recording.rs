//! A 16 kHz recording that may be long (`_background_` room noise, a long `_unknown_`
//! stream). A short one is kept in memory; a long one in an unlinked temporary file, so that
//! its samples (600 s are 38 MB of f32) are not resident while `hark train` holds the negative
//! bank and its examples. Training reads it back in pieces: short noise segments at random
//! places for the augmentation, and consecutive pieces to embed it. Nothing is lost in the
//! round trip (the samples are written as they are), so a head is the same either way.
//!
//! This type keeps the samples; [`crate::pipeline::embedding::Pieces`] is its counterpart that
//! embeds a signal given in pieces, so that neither side ever holds a long recording whole.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audio::wav::WavStream;
use crate::pipeline::frontend::SAMPLE_RATE;
use crate::pipeline::resample::Resampler;
use crate::{Error, Result};

/// Recordings longer than this many samples (60 s) are kept on disk.
pub const SPILL_SAMPLES: usize = 60 * SAMPLE_RATE as usize;
/// Samples read or written at a time.
const PIECE: usize = 1 << 15;

/// A 16 kHz recording, in memory or in a temporary file; see the module docs.
#[derive(Clone)]
pub struct Recording(Kept);

#[derive(Clone)]
enum Kept {
    Memory(Vec<f32>),
    Spilled { file: Arc<File>, len: usize },
}

impl From<Vec<f32>> for Recording {
    /// Keeps `samples` in memory, however long.
    fn from(samples: Vec<f32>) -> Self {
        Recording(Kept::Memory(samples))
    }
}

/// The error for the temporary file.
fn spill_error(action: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    let dir: PathBuf = std::env::temp_dir();
    Error::io(dir, action)
}

impl Recording {
    /// `samples`, moved to a temporary file when there are more than [`SPILL_SAMPLES`].
    pub fn new(samples: Vec<f32>) -> Result<Self> {
        if samples.len() > SPILL_SAMPLES {
            Self::spilled(&samples)
        } else {
            Ok(samples.into())
        }
    }

    /// `samples` in an unlinked temporary file (gone when the last clone is dropped).
    pub fn spilled(samples: &[f32]) -> Result<Self> {
        let mut w = Writer::default();
        w.spill()?;
        w.push(samples)?;
        w.finish()
    }

    /// Reads at most the first `max_seconds` of a WAV file, resampled to 16 kHz mono, in
    /// pieces: each is read, resampled and (past [`SPILL_SAMPLES`]) written to the temporary
    /// file in turn, so a long file is never in memory whole. Also says whether the file went
    /// on beyond `max_seconds` (and was cut).
    pub fn read_16k_at_most(path: &Path, max_seconds: f32) -> Result<(Recording, bool)> {
        let mut st = WavStream::open(path)?;
        let limit = (st.rate as f64 * max_seconds as f64) as usize;
        let mut rs = Resampler::new(st.rate).map_err(|e| Error::Invalid {
            path: path.into(),
            reason: format!("cannot resample from {} Hz", st.rate),
            source: Some(e.into()),
        })?;
        let mut w = Writer::default();
        let (mut piece, mut read) = (Vec::with_capacity(PIECE), 0);
        while read < limit {
            piece.clear();
            let n = st.read_into((limit - read).min(PIECE), &mut piece)?;
            if n == 0 {
                break;
            }
            read += n;
            rs.push(&piece, |s| w.push(s))?;
        }
        piece.clear();
        let cut = read >= limit && st.read_into(1, &mut piece)? > 0;
        if read == 0 {
            return Err(Error::invalid(
                path,
                "contains no audio samples (zero length)",
            ));
        }
        rs.flush(|s| w.push(s))?;
        Ok((w.finish()?, cut))
    }

    /// Samples in the recording.
    pub fn len(&self) -> usize {
        match &self.0 {
            Kept::Memory(v) => v.len(),
            Kept::Spilled { len, .. } => *len,
        }
    }

    /// True when it holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the samples are on disk rather than in memory.
    pub fn is_spilled(&self) -> bool {
        matches!(self.0, Kept::Spilled { .. })
    }

    /// Fills `out` with the samples from `start` on, going round to the beginning at the end
    /// (as a looped recording). Nothing is read from an empty recording.
    pub fn read_looped(&self, start: usize, out: &mut [f32]) -> Result<()> {
        let n = self.len();
        if n == 0 {
            return Ok(());
        }
        let (mut at, mut filled) = (start % n, 0);
        while filled < out.len() {
            let take = (n - at).min(out.len() - filled);
            self.read_at(at, &mut out[filled..filled + take])?;
            filled += take;
            at = 0;
        }
        Ok(())
    }

    /// Fills `out` with the samples from `start` on (all within the recording).
    fn read_at(&self, start: usize, out: &mut [f32]) -> Result<()> {
        let (file, len) = match &self.0 {
            Kept::Memory(v) => {
                out.copy_from_slice(&v[start..start + out.len()]);
                return Ok(());
            }
            Kept::Spilled { file, len } => (file, *len),
        };
        debug_assert!(start + out.len() <= len);
        let mut bytes = vec![0u8; PIECE.min(out.len()) * 4];
        for (i, chunk) in out.chunks_mut(PIECE).enumerate() {
            let bytes = &mut bytes[..chunk.len() * 4];
            let offset = (start + i * PIECE) as u64 * 4;
            file.read_exact_at(bytes, offset).map_err(spill_error(
                "cannot read back a long recording's temporary file",
            ))?;
            for (v, b) in chunk.iter_mut().zip(bytes.chunks_exact(4)) {
                *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Ok(())
    }

    /// Calls `f` on consecutive pieces of the recording, in order, `piece` samples at most
    /// each (at least 1).
    pub fn for_each_piece(
        &self,
        piece: usize,
        mut f: impl FnMut(&[f32]) -> Result<()>,
    ) -> Result<()> {
        let piece = piece.max(1);
        if let Kept::Memory(v) = &self.0 {
            return v.chunks(piece).try_for_each(f);
        }
        let mut buf = vec![0.0f32; piece.min(self.len())];
        let mut at = 0;
        while at < self.len() {
            let n = piece.min(self.len() - at);
            self.read_at(at, &mut buf[..n])?;
            f(&buf[..n])?;
            at += n;
        }
        Ok(())
    }

    /// All the samples, in memory.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let mut v = vec![0.0; self.len()];
        self.read_looped(0, &mut v)?;
        Ok(v)
    }
}

/// Builds a [`Recording`] from consecutive pieces: in memory up to [`SPILL_SAMPLES`], then
/// in a temporary file.
#[derive(Default)]
struct Writer {
    memory: Vec<f32>,
    file: Option<std::io::BufWriter<File>>,
    len: usize,
}

impl Writer {
    /// Moves what is in memory to a new temporary file; later pieces go there too.
    fn spill(&mut self) -> Result<()> {
        let file = tempfile::tempfile().map_err(spill_error(WRITE))?;
        let mut out = std::io::BufWriter::with_capacity(PIECE * 4, file);
        write_samples(&mut out, &self.memory)?;
        self.memory = Vec::new();
        self.file = Some(out);
        Ok(())
    }

    fn push(&mut self, samples: &[f32]) -> Result<()> {
        self.len += samples.len();
        match &mut self.file {
            Some(out) => write_samples(out, samples),
            None => {
                self.memory.extend_from_slice(samples);
                if self.memory.len() > SPILL_SAMPLES {
                    self.spill()?;
                }
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<Recording> {
        let Some(out) = self.file else {
            return Ok(self.memory.into());
        };
        let file = out
            .into_inner()
            .map_err(|e| spill_error(WRITE)(e.into_error()))?;
        Ok(Recording(Kept::Spilled {
            file: Arc::new(file),
            len: self.len,
        }))
    }
}

/// What failed when writing the temporary file.
const WRITE: &str =
    "cannot write a long recording to a temporary file in this folder (set TMPDIR to another)";

fn write_samples(out: &mut impl Write, samples: &[f32]) -> Result<()> {
    for v in samples {
        out.write_all(&v.to_le_bytes())
            .map_err(spill_error(WRITE))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32 * 0.37 - 1000.0).collect()
    }

    #[test]
    fn a_spilled_recording_reads_back_what_memory_holds() {
        let x = ramp(3 * PIECE + 77);
        let (mem, disk) = (Recording::from(x.clone()), Recording::spilled(&x).unwrap());
        assert!(disk.is_spilled() && !mem.is_spilled());
        assert_eq!((disk.len(), disk.to_vec().unwrap()), (x.len(), x.clone()));
        for (start, len) in [
            (0, 10),
            (PIECE - 3, PIECE + 9),
            (x.len() - 5, 12),
            (17, 3 * x.len()),
        ] {
            let (mut a, mut b) = (vec![0.0; len], vec![0.0; len]);
            mem.read_looped(start, &mut a).unwrap();
            disk.read_looped(start, &mut b).unwrap();
            let want: Vec<f32> = (0..len).map(|i| x[(start + i) % x.len()]).collect();
            assert_eq!((&a, &b), (&want, &want), "start {start}, {len} samples");
        }
        for r in [&mem, &disk] {
            let mut pieces = Vec::new();
            r.for_each_piece(1000, |p| {
                assert!(!p.is_empty() && p.len() <= 1000);
                pieces.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
            assert_eq!(pieces, x);
        }
    }

    #[test]
    fn only_long_recordings_are_spilled() {
        assert!(!Recording::new(ramp(SPILL_SAMPLES)).unwrap().is_spilled());
        assert!(Recording::new(ramp(SPILL_SAMPLES + 1))
            .unwrap()
            .is_spilled());
        let empty = Recording::from(Vec::new());
        empty.read_looped(5, &mut [0.0; 3]).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn a_long_wav_is_read_in_pieces_as_resampling_it_whole_would() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 22_050,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..22_050 * 70 {
            let v = ((i as f32 * 0.013).sin() * 9000.0 + (i % 97) as f32 * 40.0) as i16;
            w.write_sample(v).unwrap();
            w.write_sample(v / 2).unwrap();
        }
        w.finalize().unwrap();
        let (r, cut) = Recording::read_16k_at_most(&path, 65.0).unwrap();
        assert!(cut && r.is_spilled());
        let source = crate::audio::wav::read(&path).unwrap();
        let whole = crate::pipeline::resample::to_16k(&source.samples[..22_050 * 65], 22_050);
        assert!(
            r.to_vec().unwrap() == whole.unwrap(),
            "pieces differ from the whole"
        );
        let (short, cut) = Recording::read_16k_at_most(&path, 5.0).unwrap();
        assert!(cut && !short.is_spilled() && short.len().abs_diff(80_000) < 2);
        let (all, cut) = Recording::read_16k_at_most(&path, 600.0).unwrap();
        assert!(!cut && all.len().abs_diff(16_000 * 70) < 2);
    }
}
