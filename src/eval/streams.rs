//! The benchmark's data and streams: the spoken-digit recordings and noise in `../shared/data`,
//! streams of takes over a noise bed with the truth of where each take lies, and the streams'
//! embeddings (cached under `$HARK_EVAL_CACHE` when set).

use crate::{Error, Result};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

use super::score::{speech_seconds, Truth};
use crate::pipeline::embedding::{Embedder, DIM};
use crate::pipeline::frontend::SAMPLE_RATE;
use crate::pipeline::Features;
use crate::train::dataset::Take;

pub const SPEAKERS: [&str; 4] = ["george", "jackson", "nicolas", "theo"];
pub const DIGITS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];
/// Takes per digit and speaker in the data set.
pub(super) const TAKES_PER_SPEAKER: usize = 50;

/// One recording of the data set: (digit, speaker, take number).
pub(super) type Recording = (usize, &'static str, usize);

/// A take to put in a stream: its file and the target word it says (`None`: a non-target).
pub(super) type StreamItem = (PathBuf, Option<String>);

/// The file of one recording.
pub(super) fn fsdd(data: &Path, (digit, speaker, take): Recording) -> PathBuf {
    data.join("fsdd")
        .join(format!("{digit}_{speaker}_{take}.wav"))
}

/// Loads one recording as a training take.
pub(super) fn load_take(data: &Path, recording: Recording) -> Result<Take> {
    crate::train::dataset::load_take(&fsdd(data, recording))
}

/// Checks that the shared data is there; the message says what is missing.
pub fn check_data(data: &Path) -> Result<()> {
    for p in [
        data.join("fsdd/0_george_0.wav"),
        data.join("noise/white_noise.wav"),
    ] {
        if !p.is_file() {
            return Err(Error::invalid(p, "benchmark data not found (expected ../shared/data with fsdd/ and noise/; pass --data DIR)"));
        }
    }
    Ok(())
}

fn noise(data: &Path, name: &str) -> Result<Vec<f32>> {
    crate::audio::wav::read_16k(&data.join("noise").join(name))
}

fn peak_normalise(x: &mut [f32], peak: f32) {
    let m = x.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1.0);
    x.iter_mut().for_each(|v| *v *= peak / m);
}

/// Ten 2-second clips from white, pink and running-tap noise.
pub(super) fn background(
    data: &Path,
    rng: &mut SmallRng,
) -> Result<Vec<crate::train::recording::Recording>> {
    let files = [
        noise(data, "white_noise.wav")?,
        noise(data, "pink_noise.wav")?,
        noise(data, "running_tap.wav")?,
    ];
    let len = 2 * SAMPLE_RATE as usize;
    Ok((0..10)
        .map(|i| {
            let f = &files[i % 3];
            let start = rng.random_range(0..f.len() - len);
            f[start..start + len].to_vec().into()
        })
        .collect())
}

/// Every take of `digits` by all four speakers, shuffled: the pool non-targets come from.
pub(super) fn shuffled_pool(digits: &[usize], rng: &mut SmallRng) -> Vec<Recording> {
    let mut pool: Vec<Recording> = digits
        .iter()
        .flat_map(|&d| {
            SPEAKERS
                .iter()
                .flat_map(move |&s| (0..TAKES_PER_SPEAKER).map(move |i| (d, s, i)))
        })
        .collect();
    pool.shuffle(rng);
    pool
}

/// A benchmark stream: 16 kHz samples and where each take lies in them.
pub(super) struct Stream {
    pub samples: Vec<f32>,
    pub truth: Vec<Truth>,
}

impl Stream {
    /// The stream of the target takes `items` mixed with `nontargets` takes of `other_digits`
    /// by all four speakers, in random order. Also returns the rest of the shuffled non-target
    /// pool, the takes not streamed.
    pub fn with_nontargets(
        data: &Path,
        mut items: Vec<StreamItem>,
        other_digits: &[usize],
        nontargets: usize,
        rng: &mut SmallRng,
    ) -> Result<(Stream, Vec<Recording>)> {
        let mut pool = shuffled_pool(other_digits, rng);
        let rest = pool.split_off(nontargets);
        items.extend(pool.into_iter().map(|r| (fsdd(data, r), None)));
        items.shuffle(rng);
        Ok((Stream::build(data, &items, rng)?, rest))
    }

    /// Lays the takes end to end, 0.6-1.6 s apart with 1.5 s of silence after the last, over a
    /// bed of dishes, bike and cat-imitation noise at 5% of full-scale peak.
    pub(super) fn build(data: &Path, items: &[StreamItem], rng: &mut SmallRng) -> Result<Stream> {
        let sr = SAMPLE_RATE as f64;
        let mut out: Vec<f32> = Vec::new();
        let mut truth = Vec::new();
        for (path, word) in items {
            let gap = rng.random_range(0.6..1.6);
            out.extend(std::iter::repeat_n(0.0, (gap * sr) as usize));
            let x = crate::audio::wav::read_16k(path)?;
            let start = out.len() as f64 / sr;
            out.extend_from_slice(&x);
            truth.push(Truth {
                word: word.clone(),
                start,
                end: out.len() as f64 / sr,
                file: path.display().to_string(),
                speech: speech_seconds(&x),
            });
        }
        out.extend(std::iter::repeat_n(0.0, (1.5 * sr) as usize));
        let bed = noise_bed(data)?;
        let off = rng.random_range(0..bed.len());
        for (i, v) in out.iter_mut().enumerate() {
            *v += bed[(off + i) % bed.len()];
        }
        Ok(Stream {
            samples: out,
            truth,
        })
    }

    /// The stream's length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / SAMPLE_RATE as f64
    }

    /// Writes `stream-{seed}.wav` and its truth as `stream-{seed}.json` into `dir`, for replay
    /// with `hark detect`.
    pub fn write(&self, dir: &Path, seed: u64) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir, "cannot create directory"))?;
        crate::audio::wav::write_16k(&dir.join(format!("stream-{seed}.wav")), &self.samples)?;
        let t: Vec<serde_json::Value> = self
            .truth
            .iter()
            .map(|t| serde_json::json!({"word": t.word, "start": t.start, "end": t.end, "file": t.file}))
            .collect();
        crate::util::write_atomic(
            &dir.join(format!("stream-{seed}.json")),
            format!("{:#}", serde_json::Value::Array(t)).as_bytes(),
        )
    }
}

/// Dishes, bike and cat-imitation noise end to end, each at 5% of full-scale peak.
fn noise_bed(data: &Path) -> Result<Vec<f32>> {
    let mut bed: Vec<f32> = Vec::new();
    for n in [
        "doing_the_dishes.wav",
        "exercise_bike.wav",
        "dude_miaowing.wav",
    ] {
        let mut x = noise(data, n)?;
        peak_normalise(&mut x, 0.05 * 32767.0);
        bed.extend(x);
    }
    Ok(bed)
}

/// A stream of `n` random digit takes by all four speakers over the benchmark's noise bed:
/// speech mixed with noise, for cost benchmarks.
pub fn speech_stream(data: &Path, seed: u64, n: usize) -> Result<Vec<f32>> {
    check_data(data)?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let items: Vec<StreamItem> = (0..n)
        .map(|_| {
            let recording = (
                rng.random_range(0..10),
                SPEAKERS[rng.random_range(0..4)],
                rng.random_range(0..TAKES_PER_SPEAKER),
            );
            (fsdd(data, recording), None)
        })
        .collect();
    Ok(Stream::build(data, &items, &mut rng)?.samples)
}

/// A stream's embeddings with the stream time at which each became available (`None`: a
/// window the quiet-room gate skipped).
pub type Timeline = Vec<(f64, Option<Vec<f32>>)>;

/// The base model inside one streaming feature pipeline, restarted for each benchmark stream
/// and lent to training between streams.
pub(super) struct StreamEmbedder {
    features: Features,
    /// Per gate setting, the [`Self::numerics`] fingerprint once computed.
    fingerprints: [Option<String>; 2],
}

impl StreamEmbedder {
    pub fn new(embedder: Embedder) -> Result<Self> {
        Ok(StreamEmbedder {
            features: Features::new(embedder, SAMPLE_RATE)?,
            fingerprints: [None, None],
        })
    }

    /// A fingerprint of what this build's streaming path computes: the hash of its embeddings
    /// of 3 s of fixed noise (1 s faint, for the gate, then 2 s loud). Part of the cache's
    /// file names, so that a build whose embeddings differ in any digit (a change of rounding,
    /// of the gate) never reads another build's cache.
    fn numerics(&mut self, gate: bool) -> Result<String> {
        if let Some(f) = &self.fingerprints[gate as usize] {
            return Ok(f.clone());
        }
        let mut probe = crate::audio::synth::noise(1.0, 20.0, 1);
        probe.extend(crate::audio::synth::noise(2.0, 1500.0, 2));
        let f = crate::util::sha256_hex(&encode_timeline(&self.embed_uncached(&probe, gate)?));
        self.fingerprints[gate as usize] = Some(f[..8].to_string());
        Ok(f[..8].to_string())
    }

    /// The base model, for training and the negative bank.
    pub fn embedder(&mut self) -> &mut Embedder {
        self.features.embedder_mut()
    }

    /// The stream's embeddings; with a `cache_key`, cached under `$HARK_EVAL_CACHE` when set
    /// (speeds up design sweeps).
    pub fn embed(
        &mut self,
        samples: &[f32],
        gate: bool,
        cache_key: Option<&str>,
    ) -> Result<Timeline> {
        let Some(key) = cache_key.filter(|_| cache_dir().is_some()) else {
            return self.embed_uncached(samples, gate);
        };
        let key = format!("{key}-n{}", self.numerics(gate)?);
        let Some(path) = cache_path(&key, samples, gate) else {
            return self.embed_uncached(samples, gate);
        };
        if let Ok(b) = std::fs::read(&path) {
            return Ok(decode_timeline(&b));
        }
        let out = self.embed_uncached(samples, gate)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io(dir, "cannot create directory"))?;
        }
        crate::util::write_atomic(&path, &encode_timeline(&out))?;
        Ok(out)
    }

    /// Embeds a 16 kHz stream through the streaming feature pipeline in 80 ms chunks.
    fn embed_uncached(&mut self, samples: &[f32], gate: bool) -> Result<Timeline> {
        let f = &mut self.features;
        f.set_gate(gate);
        f.restart(SAMPLE_RATE)?;
        let mut out = Vec::new();
        for c in samples.chunks(1280) {
            f.push(c, &mut |t, e| out.push((t, e.map(|e| e.to_vec()))))?;
        }
        f.finish(&mut |t, e| out.push((t, e.map(|e| e.to_vec()))))?;
        Ok(out)
    }
}

/// The folder of `$HARK_EVAL_CACHE`, when it is set.
fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("HARK_EVAL_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// Where a stream's embeddings are cached, when `$HARK_EVAL_CACHE` is set: named by the key
/// (with the build's numerics fingerprint), the gate and a hash of the samples.
fn cache_path(key: &str, samples: &[f32], gate: bool) -> Option<PathBuf> {
    let dir = cache_dir()?;
    // "t64": the format with f64 times (older files are not read).
    let key = format!("{key}-g{}-t64", gate as u8);
    Some(dir.join(format!(
        "{key}-{}.bin",
        &crate::util::sha256_hex(bytemuck_f32(samples))[..12]
    )))
}

/// Cache format: per step, the time and the embedding as little-endian f32s (NaNs for a
/// skipped window).
/// A timeline as bytes: per window its time (f64: as f32 it moved the word check's audio by a
/// sample and changed decisions when read back) and its embedding (NaNs for a skipped window).
fn encode_timeline(timeline: &Timeline) -> Vec<u8> {
    let mut b = Vec::with_capacity(timeline.len() * (DIM * 4 + 8));
    for (t, e) in timeline {
        b.extend_from_slice(&t.to_le_bytes());
        match e {
            Some(e) => e.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes())),
            None => (0..DIM).for_each(|_| b.extend_from_slice(&f32::NAN.to_le_bytes())),
        }
    }
    b
}

fn decode_timeline(b: &[u8]) -> Timeline {
    b.chunks_exact(8 + DIM * 4)
        .map(|c| {
            let t = f64::from_le_bytes(c[..8].try_into().unwrap());
            let e = crate::util::f32s_from_le_bytes(&c[8..]);
            (t, (!e[0].is_nan()).then_some(e))
        })
        .collect()
}

fn bytemuck_f32(x: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding; any byte view of it is valid.
    unsafe { std::slice::from_raw_parts(x.as_ptr() as *const u8, std::mem::size_of_val(x)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_timeline_reads_back_exactly() {
        // Times late in a long stream, which f32 would round by tens of microseconds.
        let e: Vec<f32> = (0..DIM).map(|i| (i as f32 * 0.37).sin() / 3.0).collect();
        let timeline: Timeline = vec![
            (0.08, Some(e.clone())),
            (1234.56789012, None),
            (4_321.000_000_1, Some(e)),
        ];
        let back = decode_timeline(&encode_timeline(&timeline));
        assert_eq!(back.len(), 3);
        for ((t, e), (u, f)) in timeline.iter().zip(&back) {
            assert_eq!(t.to_bits(), u.to_bits());
            assert_eq!(e, f);
        }
    }
}
