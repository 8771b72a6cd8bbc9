//! `hark serve`: the detection pipeline for audio that clients send (Home Assistant and
//! wyoming-satellite over Wyoming, Rhasspy over Hermes/MQTT), many streams in one process.
//!
//! - [`engine`]: the streams and what they share (the base model, the head);
//! - [`hermes`]: the Hermes (MQTT) front end, for Rhasspy: a stream per site.

pub mod engine;
pub mod hermes;
