//! hark: a voice-trigger daemon that learns custom words from a few takes.
//!
//! The pipeline, one module per stage:
//! [`resample`] (any rate to 16 kHz) -> [`frontend`] (log-mel, 80 ms blocks) -> [`embedding`]
//! (the pretrained base model) -> [`head`] (the transfer-learned words) -> [`detector`]
//! (smoothing, threshold, refractory time). [`pipeline`] joins them for one stream; a Rust caller
//! receives detections on a crossbeam channel with [`pipeline::Pipeline::spawn`].
//!
//! Training lives in [`dataset`] (the recordings on disk), [`negatives`] (synthetic speech the
//! head must reject) and [`train`]; [`eval`] is the project's accuracy benchmark.

pub mod assets;
pub mod bench;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod dataset;
pub mod demo;
pub mod detector;
pub mod embedding;
pub mod eval;
pub mod frontend;
pub mod head;
pub mod negatives;
pub mod pipeline;
pub mod record;
pub mod resample;
pub mod sinks;
pub mod train;
pub mod util;
pub mod wav;

pub use detector::Detection;
pub use pipeline::Pipeline;
