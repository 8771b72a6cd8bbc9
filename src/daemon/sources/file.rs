//! Stage 0, a file: a WAV file fed into the capture pool on its own thread, as fast as the
//! processing takes it or paced like a microphone (`--realtime`).

use anyhow::{bail, Result};
use crossbeam_channel::{Receiver, Sender};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::microphone::{Chunk, Filler, SourceStats};
use hark::audio::wav::WavStream;

/// A WAV file being fed into the pool. The feeding thread holds the pool's only sender, so the
/// end of the file ends the processing thread, and with it the run.
pub struct FileSource {
    /// The file's sample rate.
    pub rate: u32,
    stop: Arc<AtomicBool>,
    /// Ends with the read error that cut the file short, if one did.
    thread: JoinHandle<Result<()>>,
}

impl FileSource {
    /// Opens `path` and starts feeding it, in 80 ms chunks, paced in real time if `realtime`.
    pub fn start(
        path: &Path,
        realtime: bool,
        full_tx: Sender<Chunk>,
        free_rx: Receiver<Chunk>,
        stats: Arc<SourceStats>,
    ) -> Result<FileSource> {
        let wav = WavStream::open(path)?;
        if wav.frames == 0 {
            bail!(
                "{}: contains no audio samples (zero length)",
                path.display()
            );
        }
        let rate = wav.rate;
        let filler = Filler::new(full_tx, free_rx, stats);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || feed(wav, realtime, filler, &stop_flag));
        Ok(FileSource { rate, stop, thread })
    }

    /// Asks the feeding thread to stop before the next chunk.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the feeding thread to end; an error if the file could not be read to its end
    /// (truncated, say).
    pub fn join(self) -> Result<()> {
        self.thread
            .join()
            .unwrap_or_else(|_| bail!("the file reading thread panicked"))
    }
}

/// The feeding thread: reads the file in 80 ms chunks until its end or `stop`. A read error
/// ends the feed (what was read is processed) and is returned.
fn feed(mut wav: WavStream, realtime: bool, mut filler: Filler, stop: &AtomicBool) -> Result<()> {
    let rate = wav.rate;
    let step = (rate as usize * 80 / 1000).max(1);
    let t0 = Instant::now();
    let mut buf = Vec::with_capacity(step);
    let mut done = 0usize;
    let mut result = Ok(());
    loop {
        buf.clear();
        match wav.read_into(step, &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                result = Err(e.into());
                break;
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if realtime {
            let due = t0 + Duration::from_secs_f64(done as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if stop.load(Ordering::Relaxed) {
                break; // stopped while waiting: these samples were never due
            }
            for &v in &buf {
                filler.push_frame(v);
            }
            filler.flush();
        } else if !filler.push_blocking(&buf) {
            return result;
        }
        done += buf.len();
    }
    filler.send_rest();
    result
}
