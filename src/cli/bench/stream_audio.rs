//! The audio of `hark bench --streams`, shared by hark's side ([`super::streams`]) and
//! openWakeWord's ([`super::peer_streams`]): the custom words and other speech over the
//! benchmark's speech-in-noise bed, and where each client begins in it.

use anyhow::Result;
use std::path::Path;

use hark::audio::synth;
use hark::pipeline::frontend::SAMPLE_RATE;

/// Gain of the digits-over-noise bed under the custom words (about -10 dB).
const BED_GAIN: f32 = 0.3;
/// Seconds after a word's end where a client's audio may begin (inside the 1 s gap).
const CUT_AFTER_WORD: f64 = 0.7;

/// The audio every client sends (rotated to its own start), and what it says when.
pub(super) struct StreamAudio {
    /// Twice over, so that every rotation is one slice.
    pub doubled: Vec<i16>,
    /// One copy's length, samples.
    pub len: usize,
    /// Where each custom word lies in one copy: (word, start, end), seconds.
    pub words: Vec<(String, f64, f64)>,
    /// Sample offsets where a client may begin (in a gap between words).
    pub cuts: Vec<usize>,
}

impl StreamAudio {
    /// About `seconds` of the custom words and other words (new takes, 1 s apart) over the
    /// accuracy benchmark's digits and noise bed.
    pub fn prepare(data: &Path, seconds: f64) -> Result<StreamAudio> {
        let rounds = (seconds / 10.3).ceil().max(1.0) as usize;
        let (mut x, said) = synth::stream(synth::VOICE, rounds)?;
        let bed = hark::eval::speech_stream(data, 11, (x.len() / 16000 / 2).max(5))?;
        for (v, b) in x.iter_mut().zip(bed.iter().cycle()) {
            *v += BED_GAIN * b;
        }
        let sr = SAMPLE_RATE as f64;
        let pcm: Vec<i16> = x
            .iter()
            .map(|v| v.clamp(-32768.0, 32767.0) as i16)
            .collect();
        let len = pcm.len();
        let words = said
            .iter()
            .filter(|s| s.target)
            .map(|s| (s.text.clone(), s.start, s.end))
            .collect();
        let mut cuts = vec![0];
        cuts.extend(
            said.iter()
                .map(|s| ((s.end + CUT_AFTER_WORD) * sr) as usize),
        );
        cuts.retain(|&c| c < len);
        let doubled = [pcm.as_slice(), pcm.as_slice()].concat();
        Ok(StreamAudio {
            doubled,
            len,
            words,
            cuts,
        })
    }

    /// The audio's length, seconds.
    pub fn seconds(&self) -> f64 {
        self.len as f64 / SAMPLE_RATE as f64
    }

    /// Where client `i` of `n` begins: the cuts taken in turn, spread over the stream.
    pub fn offsets(&self, n: usize) -> Vec<usize> {
        let step = (self.cuts.len() / n.max(1)).max(1);
        (0..n)
            .map(|i| self.cuts[(i * step + i / self.cuts.len()) % self.cuts.len()])
            .collect()
    }

    /// The custom words as a client that begins at sample `offset` hears them: (word, start,
    /// end) in its own audio time.
    pub fn words_from(&self, offset: usize) -> Vec<(String, f64, f64)> {
        let (o, l) = (
            offset as f64 / SAMPLE_RATE as f64,
            self.len as f64 / SAMPLE_RATE as f64,
        );
        let shift = |t: f64| if t >= o { t - o } else { t + l - o };
        self.words
            .iter()
            .map(|(w, s, e)| (w.clone(), shift(*s), shift(*e)))
            .collect()
    }
}
