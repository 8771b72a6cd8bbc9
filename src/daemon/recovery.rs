//! Device recovery: keeps the microphone open through a sound server that dies or a device
//! that is unplugged. A device counts as lost when its stream reports it gone, or when no
//! sample arrives for [`STALL_SECONDS`]; it is then let go and reopened after a back-off
//! (1, 2, 4 ... 30 s) that grows with each failure in a row and resets only once samples flow
//! again, so a silent device does not reopen every few seconds. The reopening runs on a thread
//! of its own (a sound server that hangs must not block signals or clients), and so does the
//! letting go (see [`microphone::release`]).

use anyhow::Result;
use crossbeam_channel::{Receiver, RecvError, Sender};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::daemon::sources::microphone::{self, Capture, Chunk, SourceStats};
use crate::daemon::Log;

/// Seconds without a single sample after which a capture device counts as lost.
pub const STALL_SECONDS: u64 = 3;

/// How long to wait before the next attempt to open the device.
#[derive(Default)]
struct Backoff {
    /// Failures in a row, reset only when samples flow again.
    failures: u32,
    /// When to try opening the device again, if it is to be reopened.
    retry_at: Option<Instant>,
}

/// The wait before the next attempt after `failures` failures in a row: 1, 2, 4 ... 30 s. The
/// one back-off of hark: the microphone, and the MQTT connections of `listen` and `serve`.
pub(crate) fn backoff_wait(failures: u32) -> Duration {
    Duration::from_secs((1u64 << failures.saturating_sub(1).min(5)).min(30))
}

/// Sleeps `d`, or less once `stop` is set.
pub(crate) fn sleep_unless(stop: &std::sync::atomic::AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Backoff {
    /// Counts one more failure and schedules the next attempt; returns the wait.
    fn failed(&mut self) -> Duration {
        self.failures += 1;
        let wait = backoff_wait(self.failures);
        self.retry_at = Some(Instant::now() + wait);
        wait
    }

    /// Whether a scheduled attempt is due.
    fn due(&self) -> bool {
        self.retry_at.is_some_and(|t| Instant::now() >= t)
    }
}

/// The microphone source: the open capture (if any) and everything needed to notice it is gone
/// and open it again.
pub struct Recovery {
    /// The configured device name (empty = the system default).
    device: String,
    capture: Option<Capture>,
    /// The pool's sender, handed to every reopened stream; None once the daemon stops.
    pool_tx: Option<Sender<Chunk>>,
    free_rx: Receiver<Chunk>,
    stats: Arc<SourceStats>,
    /// The rate the processing thread resamples from.
    rate: u32,
    backoff: Backoff,
    /// An open in progress on its own thread: its answer arrives here.
    opening: Option<Receiver<Result<Capture>>>,
    /// Streams being let go.
    releasing: Vec<JoinHandle<()>>,
    /// (samples seen from the source, when that count last changed)
    last_seen: (u64, Instant),
    /// The stream error logged last, and when.
    logged_error: Option<(String, Instant)>,
}

impl Recovery {
    /// Watches `capture`, opened from the configured `device` into the pool.
    pub fn new(
        device: &str,
        capture: Capture,
        pool_tx: Sender<Chunk>,
        free_rx: Receiver<Chunk>,
        stats: Arc<SourceStats>,
    ) -> Recovery {
        Recovery {
            device: device.to_string(),
            rate: capture.rate,
            capture: Some(capture),
            pool_tx: Some(pool_tx),
            free_rx,
            stats,
            backoff: Backoff::default(),
            opening: None,
            releasing: Vec::new(),
            last_seen: (0, Instant::now()),
            logged_error: None,
        }
    }

    /// Where the answer of an open in progress arrives (a channel that never delivers if none).
    pub fn opening(&self) -> Receiver<Result<Capture>> {
        self.opening
            .clone()
            .unwrap_or_else(crossbeam_channel::never)
    }

    /// Takes the answer of an open. Returns the new device's rate if it differs from the one
    /// the processing thread runs at.
    pub fn opened(
        &mut self,
        answer: Result<Result<Capture>, RecvError>,
        stopping: bool,
        log: &Log,
    ) -> Option<u32> {
        self.opening = None;
        match answer.unwrap_or_else(|_| Err(anyhow::anyhow!("the device opener failed"))) {
            Ok(c) if stopping => self.releasing.push(microphone::release(Some(c))),
            Ok(c) => {
                log.info(&format!(
                    "capture device back: {:?} ({} Hz)",
                    c.device, c.rate
                ));
                log_opened(log, &c);
                let new_rate = (c.rate != self.rate).then_some(c.rate);
                self.rate = c.rate;
                self.stats.device_lost.store(false, Ordering::Relaxed);
                self.last_seen.1 = Instant::now();
                self.capture = Some(c);
                return new_rate;
            }
            Err(e) => {
                let wait = self.backoff.failed();
                log.warn(&format!("{e:#}; retrying in {} s", wait.as_secs()));
            }
        }
        None
    }

    /// The periodic check while the daemon runs: reports stream errors, lets a lost or stalled
    /// device go, and starts reopening it when the back-off is over.
    pub fn check(&mut self, log: &Log) {
        self.report_stream_error(log);
        // A device can vanish without an error (a sound server that dies leaves the stream
        // silent): no samples for STALL_SECONDS counts as lost too.
        let seen = self.stats.delivered.load(Ordering::Relaxed)
            + self.stats.dropped.load(Ordering::Relaxed);
        if seen != self.last_seen.0 {
            self.last_seen = (seen, Instant::now());
            self.backoff.failures = 0;
        }
        if self.capture.is_none() {
            // Flags from streams already let go say nothing about the next one.
            self.stats.device_lost.store(false, Ordering::Relaxed);
        } else {
            self.let_go_if_lost(log);
        }
        self.releasing.retain(|h| !h.is_finished());
        if self.backoff.due() && self.opening.is_none() {
            self.reopen();
        }
    }

    /// Logs the stream's latest error. A failing stream repeats its error many times a second:
    /// each is said once a minute.
    fn report_stream_error(&mut self, log: &Log) {
        let Some(e) = self.stats.last_error.lock().ok().and_then(|mut e| e.take()) else {
            return;
        };
        if self
            .logged_error
            .as_ref()
            .is_none_or(|(m, t)| *m != e || t.elapsed() > Duration::from_secs(60))
        {
            log.warn(&format!("capture stream error: {e}"));
            self.logged_error = Some((e, Instant::now()));
        }
    }

    /// Lets the open device go if its stream said it is gone or it stalled, and schedules the
    /// reopening.
    fn let_go_if_lost(&mut self, log: &Log) {
        let lost = self.stats.device_lost.swap(false, Ordering::Relaxed);
        let stalled = self.last_seen.1.elapsed() >= Duration::from_secs(STALL_SECONDS);
        if !(lost || stalled) {
            return;
        }
        let wait = self.backoff.failed();
        log.warn(&format!(
            "capture device {}; reopening it in {} s",
            if lost {
                "lost".to_string()
            } else {
                format!("stalled: no audio for {STALL_SECONDS} s")
            },
            wait.as_secs()
        ));
        self.releasing
            .push(microphone::release(self.capture.take()));
    }

    /// Starts opening the device on a thread of its own; the answer comes on `opening`.
    fn reopen(&mut self) {
        let Some(tx) = self.pool_tx.clone() else {
            return;
        };
        self.backoff.retry_at = None;
        let (open_tx, open_rx) = crossbeam_channel::bounded(1);
        let (device, free_rx, stats) = (
            self.device.clone(),
            self.free_rx.clone(),
            self.stats.clone(),
        );
        std::thread::spawn(move || {
            let _ = open_tx.send(microphone::start(&device, tx, free_rx, stats));
        });
        self.opening = Some(open_rx);
    }

    /// Stops capturing (the stream is let go) and hands no sender to any later stream.
    pub fn stop(&mut self) {
        self.releasing
            .push(microphone::release(self.capture.take()));
        self.pool_tx = None;
    }

    /// Stops capturing and lets the streams stop cleanly, but never waits on one that hangs in
    /// its teardown (at most 1 s).
    pub fn finish(mut self) {
        self.stop();
        let t_release = Instant::now();
        while self.releasing.iter().any(|h| !h.is_finished())
            && t_release.elapsed() < Duration::from_secs(1)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The debug line for a device just opened.
pub fn log_opened(log: &Log, c: &Capture) {
    log.debug(&format!(
        "capture device {:?} opened: {} Hz, {} channel(s), {} samples",
        c.device, c.rate, c.channels, c.format
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_from_one_second_up_to_thirty() {
        let waits: Vec<u64> = (1..=8).map(|f| backoff_wait(f).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
