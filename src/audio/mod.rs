//! Audio in and out of files: WAV reading (any format) and writing (16 kHz mono), and speech
//! made with espeak-ng (and flite, festival) for the demo, the negative bank, the synthetic
//! takes of `anyone` words and the tests.

pub mod clip;
pub mod ring;
pub mod synth;
pub mod synth_cache;
pub mod wav;
