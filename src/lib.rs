//! hark: a voice-trigger library and daemon that learns custom words from a few takes.
//!
//! The library is the pipeline and the trainer; the `hark` binary (`src/main.rs`, with
//! `src/cli/` and `src/daemon/`) is built on this public list and nothing else.
//!
//! - [`pipeline`]: one stream, samples in, detections out: `resample` (any rate to 16 kHz) ->
//!   `frontend` (log-mel, 80 ms blocks) -> `gate` (skips the base model in a quiet room) ->
//!   `embedding` (the pretrained base model, streaming) -> `head` (the transfer-learned words) ->
//!   `detector` (smoothing, threshold, refractory time). A Rust caller receives detections on a
//!   crossbeam channel with [`Pipeline::spawn`].
//! - [`train`]: the recordings on disk (`dataset`), synthetic negatives (`negatives`) and the
//!   fit of a [`Head`] from them.
//! - [`eval`]: the accuracy benchmark on real recorded speech.
//! - [`audio`]: WAV files in and out, and speech made with espeak-ng.
//! - [`assets`]: where the base model and ONNX Runtime live, and sessions on them.
//!
//! A Rust caller (docs/design.md, "The library"):
//!
//! ```no_run
//! # fn main() -> hark::Result<()> {
//! let assets = hark::Assets::locate(None)?;
//! let emb = hark::Embedder::load(&assets)?;
//! let head = std::sync::Arc::new(hark::Head::load("models/hark.head".as_ref(), &emb.model_sha256)?);
//! let pipeline = hark::Pipeline::new(emb, head, 48_000, None)?; // source rate of your samples
//! let (audio_tx, audio_rx) = crossbeam_channel::bounded::<Vec<f32>>(64);
//! let (_thread, events) = pipeline.spawn(audio_rx); // crossbeam Receiver<Detection>
//! // send mono chunks (int16 scale) on audio_tx; receive hark::Detection on events
//! # drop((audio_tx, events));
//! # Ok(())
//! # }
//! ```

pub mod assets;
pub mod audio;
pub mod error;
pub mod eval;
pub mod pages;
pub mod pipeline;
pub mod train;
pub mod util;

pub use assets::Assets;
pub use error::{Error, Result};
pub use pipeline::detector::{Detection, DetectorSettings};
pub use pipeline::embedding::Embedder;
pub use pipeline::head::Head;
pub use pipeline::Pipeline;
pub use train::dataset::Dataset;
pub use train::{train, TrainOptions};
