//! One Wyoming connection's state: the events a wake-word service answers, and the audio it
//! converts for its [`WakeStream`].
//!
//! - `describe` -> `info` (one wake program, "hark", whose models are the head's words);
//! - `detect {names}` selects words (null = all; unknown names ignored) and starts over;
//! - `audio-start` starts over at its rate; `audio-chunk` (any rate, 1 to 4 bytes per sample,
//!   any number of channels) is pushed as mono, int16 scale; each detection is sent as
//!   `detection {name, timestamp}` (ms of audio since the stream began) and listening goes on;
//! - `audio-stop` -> `not-detected` when nothing was detected since the start;
//! - `ping` -> `pong`; unknown types are ignored; bad input -> `error {text, code}`.

use anyhow::Result;
use serde_json::{json, Value};

use super::frame::Event;
use hark::pipeline::detector::Detection;

/// Where a connection's audio goes: a stream of the engine (or a stand-in in tests).
pub trait WakeStream {
    /// The words the service knows now.
    fn words(&self) -> Vec<String>;
    /// Reports only `words` (None: all) and starts over.
    fn select(&mut self, words: Option<Vec<String>>) -> Result<()>;
    /// Starts over with samples at `rate`.
    fn restart(&mut self, rate: u32) -> Result<()>;
    /// Feeds mono samples (int16 scale) at `rate`; the detections, times in seconds since the
    /// stream (re)started.
    fn push(&mut self, samples: &[f32], rate: u32) -> Result<Vec<Detection>>;
    /// How many more samples at the pushed rate complete the stream's next 80 ms block (1 when
    /// it does not know).
    fn samples_to_block(&self) -> usize {
        1
    }
}

/// Where the wake program says it comes from.
const URL: &str = "https://github.com/hark-voice/hark";

/// One connection's state.
pub struct Connection<S: WakeStream> {
    stream: S,
    /// A detection since the last `detect` or `audio-start`.
    detected: bool,
    /// Seconds of audio received since the last `detect` or `audio-start`.
    seconds: f64,
    /// Reused buffer of converted samples.
    mono: Vec<f32>,
    /// Samples in the last audio chunk, while audio flows (0 after any other event).
    chunk_samples: usize,
}

impl<S: WakeStream> Connection<S> {
    /// A connection feeding `stream`.
    pub fn new(stream: S) -> Self {
        Connection {
            stream,
            detected: false,
            seconds: 0.0,
            mono: Vec::new(),
            chunk_samples: 0,
        }
    }

    /// While audio flows: how many more chunks the size of the last one complete the stream's
    /// next 80 ms block (at least 1); `None` when the last event was not an audio chunk.
    pub fn chunks_to_block(&self) -> Option<usize> {
        (self.chunk_samples > 0).then(|| {
            self.stream
                .samples_to_block()
                .div_ceil(self.chunk_samples)
                .max(1)
        })
    }

    /// Handles one event; returns the events to send back. Bad input gives an `error` event and
    /// leaves the connection usable.
    pub fn handle(&mut self, event: &Event) -> Vec<Event> {
        match self.dispatch(event) {
            Ok(out) => out,
            Err(e) => vec![error_event(&format!("{e:#}"), "bad-event")],
        }
    }

    fn dispatch(&mut self, event: &Event) -> Result<Vec<Event>> {
        let data = &event.data;
        self.chunk_samples = 0;
        match event.kind.as_str() {
            "describe" => return Ok(vec![info_event(&self.stream.words())]),
            "ping" => return Ok(vec![Event::new("pong", json!({"text": data.get("text")}))]),
            "detect" => {
                self.stream.select(names(data.get("names"))?)?;
                (self.detected, self.seconds) = (false, 0.0);
            }
            "audio-start" => {
                self.stream.restart(rate(data)?)?;
                (self.detected, self.seconds) = (false, 0.0);
            }
            "audio-chunk" => return self.chunk(event),
            "audio-stop" if !self.detected => {
                return Ok(vec![Event::new("not-detected", json!({}))])
            }
            _ => {}
        }
        Ok(Vec::new())
    }

    /// An audio chunk: converted to mono, pushed, and its detections as events, stamped with
    /// the audio received up to the end of this chunk (the engine's own stream time starts over
    /// when a reload swaps the head in, this count does not).
    fn chunk(&mut self, event: &Event) -> Result<Vec<Event>> {
        let rate = rate(&event.data)?;
        let width = field(&event.data, "width", 1, 4)? as usize;
        let channels = field(&event.data, "channels", 1, 64)? as usize;
        to_mono(&event.payload, width, channels, &mut self.mono)?;
        let detections = self.stream.push(&self.mono, rate)?;
        self.chunk_samples = self.mono.len();
        self.seconds += self.mono.len() as f64 / rate as f64;
        self.detected |= !detections.is_empty();
        let ms = (self.seconds * 1000.0).round() as u64;
        Ok(detections
            .iter()
            .map(|d| {
                Event::new(
                    "detection",
                    json!({"name": d.word, "timestamp": ms, "speaker": null}),
                )
            })
            .collect())
    }
}

/// The `error` event.
pub fn error_event(text: &str, code: &str) -> Event {
    Event::new("error", json!({"text": text, "code": code}))
}

/// The `info` event: one wake program, whose models are `words`.
pub fn info_event(words: &[String]) -> Event {
    let version = env!("CARGO_PKG_VERSION");
    let attribution = json!({"name": "hark", "url": URL});
    let models: Vec<Value> = words
        .iter()
        .map(|w| {
            json!({
                "name": w,
                "attribution": attribution,
                "installed": true,
                "description": w,
                "version": version,
                "languages": ["en"],
                "phrase": w,
            })
        })
        .collect();
    let program = json!({
        "name": "hark",
        "attribution": attribution,
        "installed": true,
        "description": "hark: custom wake words trained from a few takes",
        "version": version,
        "models": models,
    });
    Event::new("info", json!({"wake": [program]}))
}

/// `detect`'s `names`: null or absent = all words, else a list of strings.
fn names(v: Option<&Value>) -> Result<Option<Vec<String>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|n| n.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("detect: `names` {v:?} is not a list of strings")),
        Some(other) => anyhow::bail!("detect: `names` {other} is not a list of strings"),
    }
}

/// The sample rates a client may send: the usual ones. (Any other would need a resampler of
/// unbounded size: its FFT length follows the rate's ratio to 16 kHz.)
const RATES: [u32; 11] = [
    8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000,
];

/// The `rate` of the data, one of [`RATES`].
fn rate(data: &serde_json::Map<String, Value>) -> Result<u32> {
    let r = field(data, "rate", 1, u32::MAX as u64)?;
    if !RATES.contains(&r) {
        anyhow::bail!("`rate` {r} is not one of {RATES:?}");
    }
    Ok(r)
}

/// An integer field of the data, required, within `lo..=hi`.
fn field(data: &serde_json::Map<String, Value>, key: &str, lo: u64, hi: u64) -> Result<u32> {
    match data.get(key).and_then(Value::as_u64) {
        Some(v) if (lo..=hi).contains(&v) => Ok(v as u32),
        Some(v) => anyhow::bail!("`{key}` {v} is not between {lo} and {hi}"),
        None => anyhow::bail!("`{key}` is missing or not a whole number"),
    }
}

/// Little-endian signed PCM of `width` bytes and `channels` interleaved channels, into mono
/// samples at int16 scale (the channels averaged).
pub fn to_mono(pcm: &[u8], width: usize, channels: usize, out: &mut Vec<f32>) -> Result<()> {
    let frame = width * channels;
    if !pcm.len().is_multiple_of(frame) {
        anyhow::bail!(
            "audio-chunk: payload of {} bytes is not whole frames of {channels} channel(s) x {width} byte(s)",
            pcm.len()
        );
    }
    out.clear();
    if (width, channels) == (2, 1) {
        // What nearly every client sends, converted without a call per sample.
        let samples = pcm.chunks_exact(2);
        out.extend(samples.map(|b| i16::from_le_bytes([b[0], b[1]]) as f32));
        return Ok(());
    }
    // int16 scale: a sample of `width` bytes is divided by 256^(width-2).
    let scale = 256f32.powi(2 - width as i32) / channels as f32;
    out.extend(pcm.chunks_exact(frame).map(|f| {
        let sum: i64 = f.chunks_exact(width).map(|s| sample(s) as i64).sum();
        sum as f32 * scale
    }));
    Ok(())
}

/// One little-endian signed sample of 1 to 4 bytes.
fn sample(b: &[u8]) -> i32 {
    // the bytes fill the top of an i32; the arithmetic shift brings the sign down
    let mut v = [0u8; 4];
    v[4 - b.len()..].copy_from_slice(b);
    i32::from_le_bytes(v) >> (8 * (4 - b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in stream: records what it was told; "detects" when a chunk's first sample is 1000.
    #[derive(Default)]
    struct Fake {
        selected: Option<Option<Vec<String>>>,
        restarts: Vec<u32>,
        pushed: Vec<(Vec<f32>, u32)>,
        /// What `samples_to_block` answers.
        to_block: usize,
    }

    impl WakeStream for Fake {
        fn words(&self) -> Vec<String> {
            vec!["lantern".into(), "violin".into()]
        }
        fn select(&mut self, words: Option<Vec<String>>) -> Result<()> {
            self.selected = Some(words);
            Ok(())
        }
        fn restart(&mut self, rate: u32) -> Result<()> {
            self.restarts.push(rate);
            Ok(())
        }
        fn push(&mut self, samples: &[f32], rate: u32) -> Result<Vec<Detection>> {
            self.pushed.push((samples.to_vec(), rate));
            Ok(if samples.first() == Some(&1000.0) {
                vec![Detection {
                    word: "lantern".into(),
                    score: 0.9,
                    time: 1.2345,
                    threshold: 0.5,
                    raw_score: 0.9,
                    similarity: 1.0,
                    runner_up: None,
                    word_check: None,
                }]
            } else {
                vec![]
            })
        }
        fn samples_to_block(&self) -> usize {
            self.to_block
        }
    }

    #[test]
    fn chunks_to_block_counts_chunks_like_the_last_one_while_audio_flows() {
        let mut c = Connection::new(Fake::default());
        assert_eq!(c.chunks_to_block(), None);
        c.stream.to_block = 1000;
        c.handle(&chunk(&[0; 160]));
        assert_eq!(c.chunks_to_block(), Some(7));
        c.stream.to_block = 160;
        assert_eq!(c.chunks_to_block(), Some(1));
        c.stream.to_block = 1;
        assert_eq!(c.chunks_to_block(), Some(1));
        c.handle(&ev("ping", Value::Null, &[]));
        assert_eq!(c.chunks_to_block(), None, "not after another event");
        c.handle(&ev("audio-chunk", json!({"rate": 16000}), &[0; 4]));
        assert_eq!(c.chunks_to_block(), None, "not after a bad chunk");
    }

    fn ev(kind: &str, data: Value, payload: &[u8]) -> Event {
        let mut e = Event::new(kind, data);
        e.payload = payload.to_vec();
        e
    }

    fn chunk(samples: &[i16]) -> Event {
        let pcm: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        ev(
            "audio-chunk",
            json!({"rate": 16000, "width": 2, "channels": 1}),
            &pcm,
        )
    }

    #[test]
    fn describe_lists_the_words_as_models_of_one_installed_program() {
        let mut c = Connection::new(Fake::default());
        let out = c.handle(&ev("describe", Value::Null, &[]));
        let wake = &out[0].data["wake"][0];
        assert_eq!(
            (out[0].kind.as_str(), &wake["name"]),
            ("info", &json!("hark"))
        );
        assert_eq!(wake["installed"], json!(true));
        let models = wake["models"].as_array().unwrap();
        assert_eq!(models.len(), 2);
        assert_eq!(models[1]["phrase"], json!("violin"));
        assert_eq!(models[0]["languages"], json!(["en"]));
    }

    #[test]
    fn detect_selects_audio_start_restarts_and_detections_carry_ms() {
        let mut c = Connection::new(Fake::default());
        assert!(c
            .handle(&ev("detect", json!({"names": ["lantern"]}), &[]))
            .is_empty());
        assert!(c
            .handle(&ev("detect", json!({"names": null}), &[]))
            .is_empty());
        assert_eq!(c.stream.selected, Some(None));
        c.handle(&ev(
            "audio-start",
            json!({"rate": 22050, "width": 2, "channels": 1}),
            &[],
        ));
        assert_eq!(c.stream.restarts, vec![22050]);
        assert!(c.handle(&chunk(&[0; 1600])).is_empty());
        let out = c.handle(&chunk(&[1000; 160]));
        assert_eq!(out[0].kind, "detection");
        assert_eq!(out[0].data["name"], json!("lantern"));
        assert_eq!(
            out[0].data["timestamp"],
            json!(110),
            "ms of audio up to this chunk"
        );
        // still listening; a detection since the start: no not-detected
        assert!(c.handle(&chunk(&[0, 0])).is_empty());
        assert!(c.handle(&ev("audio-stop", json!({}), &[])).is_empty());
        c.handle(&ev("audio-start", json!({"rate": 16000}), &[]));
        let out = c.handle(&ev("audio-stop", json!({}), &[]));
        assert_eq!(out[0].kind, "not-detected");
    }

    #[test]
    fn ping_pongs_unknown_types_are_ignored_and_bad_input_is_an_error() {
        let mut c = Connection::new(Fake::default());
        let out = c.handle(&ev("ping", json!({"text": "hi"}), &[]));
        assert_eq!(
            (out[0].kind.as_str(), &out[0].data["text"]),
            ("pong", &json!("hi"))
        );
        assert!(c
            .handle(&ev("select-program", json!({"name": "x"}), &[]))
            .is_empty());
        for bad in [
            ev("detect", json!({"names": "lantern"}), &[]),
            ev(
                "audio-chunk",
                json!({"rate": 16000, "width": 5, "channels": 1}),
                &[0; 5],
            ),
            ev("audio-chunk", json!({"width": 2, "channels": 1}), &[0; 2]),
            ev(
                "audio-chunk",
                json!({"rate": 16000, "width": 2, "channels": 2}),
                &[0; 6],
            ),
            ev("audio-start", json!({"rate": -5}), &[]),
            ev("audio-start", json!({"rate": 16001}), &[]),
            ev(
                "audio-chunk",
                json!({"rate": 383_999, "width": 2, "channels": 1}),
                &[0; 2],
            ),
        ] {
            let out = c.handle(&bad);
            assert_eq!(out[0].kind, "error", "{bad:?}");
            assert!(out[0].data["text"].as_str().is_some_and(|t| !t.is_empty()));
        }
    }

    #[test]
    fn every_width_and_channel_count_becomes_mono_int16_scale() {
        let mut out = Vec::new();
        to_mono(&[0x80, 0x7f, 0x00], 1, 1, &mut out).unwrap();
        assert_eq!(out, vec![-32768.0, 32512.0, 0.0]);
        to_mono(&[0x00, 0x80, 0xff, 0x7f], 2, 1, &mut out).unwrap();
        assert_eq!(out, vec![-32768.0, 32767.0]);
        to_mono(&[0x00, 0x00, 0x80, 0x00, 0x01, 0x00], 3, 1, &mut out).unwrap();
        assert_eq!(out, vec![-32768.0, 1.0]);
        to_mono(&(-65536i32 * 3).to_le_bytes(), 4, 1, &mut out).unwrap();
        assert_eq!(out, vec![-3.0]);
        let stereo: Vec<u8> = [100i16, 300, -50, -150]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        to_mono(&stereo, 2, 2, &mut out).unwrap();
        assert_eq!(out, vec![200.0, -100.0]);
        let mut c = Connection::new(Fake::default());
        c.handle(&ev(
            "audio-chunk",
            json!({"rate": 48000, "width": 2, "channels": 2}),
            &stereo,
        ));
        assert_eq!(c.stream.pushed, vec![(vec![200.0, -100.0], 48000)]);
    }
}
