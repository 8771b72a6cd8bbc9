//! The engine of `hark serve`: many streams of audio that clients send, one head.
//!
//! Each client stream is a [`Stream`]: feed it samples at any rate, get [`Detection`]s back.
//! The [`Engine`] holds what the streams share: the base model, the head (swapped for every
//! stream at once by [`Engine::reload`]) and its words.
//!
//! This first form gives each stream a whole [`Pipeline`] of its own (its own ONNX Runtime
//! session). The API is what the Wyoming and MQTT front ends build on; the inside is to become
//! one shared session and a fixed pool of workers (issue 9).

use anyhow::Result;
use std::sync::{Arc, RwLock};

use hark::assets::Assets;
use hark::pipeline::detector::Detection;
use hark::pipeline::frontend::SAMPLE_RATE;
use hark::pipeline::head::Head;
use hark::pipeline::Pipeline;

/// What all streams share.
pub struct Engine {
    assets: Assets,
    /// The head, with a generation that grows on every reload.
    head: RwLock<(u64, Arc<Head>)>,
}

impl Engine {
    pub fn new(assets: Assets, head: Arc<Head>) -> Engine {
        Engine {
            assets,
            head: RwLock::new((0, head)),
        }
    }

    /// The current head.
    pub fn head(&self) -> Arc<Head> {
        self.head.read().unwrap().1.clone()
    }

    /// The head's words, in its label order.
    pub fn words(&self) -> Vec<String> {
        self.head().labels.clone()
    }

    /// Swaps the head for every stream; each takes it up at its next push, from a fresh start.
    pub fn reload(&self, head: Arc<Head>) {
        let mut h = self.head.write().unwrap();
        *h = (h.0 + 1, head);
    }

    /// A new stream with every word selected.
    pub fn open(self: &Arc<Self>) -> Result<Stream> {
        let (generation, head) = self.head.read().unwrap().clone();
        Ok(Stream {
            pipeline: Pipeline::load(&self.assets, head, SAMPLE_RATE, None)?,
            engine: self.clone(),
            generation,
            rate: SAMPLE_RATE,
            selected: None,
        })
    }
}

/// One client's stream of audio.
pub struct Stream {
    engine: Arc<Engine>,
    pipeline: Pipeline,
    /// The head generation the pipeline runs.
    generation: u64,
    /// The rate of the samples being pushed.
    rate: u32,
    /// The words to report (`None`: all).
    selected: Option<Vec<String>>,
}

impl Stream {
    /// Reports only `words` from now on (`None`: all; names the head does not have are
    /// ignored), and starts the stream over.
    pub fn select(&mut self, words: Option<Vec<String>>) -> Result<()> {
        self.selected = words;
        self.restart(self.rate)
    }

    /// Starts the stream over (its time back to 0) with samples at `rate`.
    pub fn restart(&mut self, rate: u32) -> Result<()> {
        self.rate = rate;
        self.take_up_reload();
        Ok(self.pipeline.restart(rate)?)
    }

    /// Feeds mono samples at `rate` (int16 scale); returns the selected words' detections, with
    /// times in seconds of audio since the stream (re)started. A new rate restarts the stream.
    pub fn push(&mut self, samples: &[f32], rate: u32) -> Result<Vec<Detection>> {
        if rate != self.rate || self.take_up_reload() {
            self.restart(rate)?;
        }
        let mut out = Vec::new();
        let selected = &self.selected;
        self.pipeline.push(samples, &mut |d| {
            if selected.as_ref().is_none_or(|w| w.contains(&d.word)) {
                out.push(d)
            }
        })?;
        Ok(out)
    }

    /// Switches to the engine's newest head if there is one; true if it did.
    fn take_up_reload(&mut self) -> bool {
        let (generation, head) = self.engine.head.read().unwrap().clone();
        if generation == self.generation {
            return false;
        }
        self.generation = generation;
        self.pipeline.replace_head(head, None);
        true
    }
}
