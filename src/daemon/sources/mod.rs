//! Where the daemon's samples come from: the microphone (cpal, kept open by
//! [`Recovery`]) or a WAV file paced in real time. Both fill the same pool of chunk buffers
//! ([`microphone::Pool`]).

pub mod file;
pub mod microphone;

use anyhow::Result;
use crossbeam_channel::{Receiver, Sender};
use std::path::Path;
use std::sync::Arc;

use crate::daemon::recovery::{self, Recovery};
use crate::daemon::Log;
use file::FileSource;
use microphone::{Chunk, SourceStats};

/// The running source.
pub enum Source {
    Microphone(Box<Recovery>),
    File(FileSource),
}

impl Source {
    /// Starts the file `input` if given, else the configured microphone `device`, feeding the
    /// pool (`full_tx`, `free_rx`); logs what it listens to. Returns the source and its rate.
    pub fn open(
        input: Option<&Path>,
        realtime: bool,
        device: &str,
        (full_tx, free_rx): (Sender<Chunk>, Receiver<Chunk>),
        stats: &Arc<SourceStats>,
        log: &Log,
    ) -> Result<(Source, u32)> {
        if let Some(input) = input {
            let f = FileSource::start(input, realtime, full_tx, free_rx, stats.clone())?;
            log.info(&format!(
                "listening to {} ({} Hz{})",
                input.display(),
                f.rate,
                if realtime { ", real time" } else { "" }
            ));
            let rate = f.rate;
            return Ok((Source::File(f), rate));
        }
        let c = microphone::start(device, full_tx.clone(), free_rx.clone(), stats.clone())?;
        log.info(&format!(
            "listening on {:?} ({} Hz, {} channel(s))",
            c.device, c.rate, c.channels
        ));
        recovery::log_opened(log, &c);
        let rate = c.rate;
        let r = Recovery::new(device, c, full_tx, free_rx, stats.clone());
        Ok((Source::Microphone(Box::new(r)), rate))
    }

    /// Stops the source: the file stops before its next chunk, the microphone stream is let go.
    pub fn stop(&mut self) {
        match self {
            Source::Microphone(r) => r.stop(),
            Source::File(f) => f.stop(),
        }
    }

    /// Stops the source and waits for it (a hung stream at most 1 s); an error if a file could
    /// not be read to its end.
    pub fn finish(self) -> Result<()> {
        match self {
            Source::Microphone(r) => {
                r.finish();
                Ok(())
            }
            Source::File(f) => f.join(),
        }
    }
}
