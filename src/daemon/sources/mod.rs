//! Where the daemon's samples come from: the microphone (cpal) or a WAV file paced in real time.

pub mod file;
pub mod microphone;
