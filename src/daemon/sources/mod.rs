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

    /// Stops the source and waits for it (a hung stream at most 1 s, a file its current
    /// chunk); an error if a file could not be read to its end. The main loop ends when the
    /// processing thread does, which may be before the end of a file (a processing error): a
    /// `--realtime` file not stopped here would play on to its end, the daemon deaf to signals.
    pub fn finish(self) -> Result<()> {
        match self {
            Source::Microphone(r) => {
                r.finish();
                Ok(())
            }
            Source::File(f) => {
                f.stop();
                f.join()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use microphone::Pool;
    use std::time::{Duration, Instant};

    /// Processing ended (an error) while a `--realtime` file still had 30 s to play: `finish`
    /// stops it at once instead of waiting for its end.
    #[test]
    fn finish_stops_a_realtime_file_whose_processing_has_ended() {
        let dir = std::env::temp_dir().join(format!("hark-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wav = dir.join("long.wav");
        hark::audio::wav::write_16k(&wav, &vec![100.0; 16_000 * 30]).unwrap();
        let pool = Pool::new();
        let stats = Arc::new(SourceStats::default());
        let log = Log::new("error");
        let ends = (pool.full_tx, pool.free_rx);
        let (source, _) = Source::open(Some(&wav), true, "", ends, &stats, &log).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        drop((pool.full_rx, pool.free_tx)); // the processing thread is gone
        let t0 = Instant::now();
        source.finish().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "finish took {:?}",
            t0.elapsed()
        );
    }
}
