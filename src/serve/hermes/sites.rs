//! The sites hark hears over MQTT: each has its toggle state and, once its first frame arrives,
//! a worker thread with its own [`Stream`](crate::serve::engine::Stream) and a small bounded
//! queue. The MQTT event loop only hands payloads over; a site whose worker falls behind loses
//! frames (counted and logged), never the other sites or the broker connection.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use rumqttc::{Client, QoS};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::daemon::Log;
use crate::hermes::messages::{self, Detected, HotwordError};
use crate::hermes::wav;
use crate::serve::engine::{Engine, Stream};

/// Frames queued per site (about 1 s of Rhasspy's usual 512-sample frames at 16 kHz).
pub const QUEUE: usize = 32;
/// The most toggle reasons remembered per site (the site stays off past it anyway).
const MAX_REASONS: usize = 32;

/// True for the 1st, 2nd, 4th, 8th... occurrence: when a repeated problem is logged.
pub fn worth_logging(count: u64) -> bool {
    count.is_power_of_two()
}

/// A site's toggle state, shared by the event loop and the site's worker.
#[derive(Default)]
pub struct SiteState {
    /// Pending `toggleOff` reasons; the site is off while any is.
    reasons: Mutex<BTreeSet<String>>,
    /// Grows each time the site comes back on: its worker then starts its stream over.
    epoch: AtomicU64,
    /// Frames dropped because the worker was behind (or gone).
    pub dropped: AtomicU64,
    /// Frames that were not valid WAV.
    pub bad: AtomicU64,
}

impl SiteState {
    /// Is the site silenced?
    pub fn is_off(&self) -> bool {
        !self.reasons.lock().unwrap().is_empty()
    }

    /// `toggleOff` with `reason`.
    pub fn off(&self, reason: &str) {
        let mut r = self.reasons.lock().unwrap();
        if r.len() < MAX_REASONS {
            r.insert(reason.chars().take(messages::MAX_NAME).collect());
        }
    }

    /// `toggleOn` with `reason` ("" clears them all); true if the site came back on.
    pub fn on(&self, reason: &str) -> bool {
        let mut r = self.reasons.lock().unwrap();
        let was_off = !r.is_empty();
        if reason.is_empty() {
            r.clear();
        } else {
            let reason: String = reason.chars().take(messages::MAX_NAME).collect();
            r.remove(&reason);
        }
        if was_off && r.is_empty() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        false
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

/// A site's worker: the queue into it and its thread.
struct Worker {
    tx: Sender<Vec<u8>>,
    thread: JoinHandle<()>,
}

/// One site: its state and (after its first frame) its worker.
struct Site {
    state: Arc<SiteState>,
    worker: Option<Worker>,
}

/// What the workers need to run and publish.
#[derive(Clone)]
pub struct Shared {
    pub engine: Arc<Engine>,
    pub client: Client,
    pub log: Log,
}

/// Every site heard so far, at most `max` of them.
pub struct Sites {
    shared: Shared,
    /// The sites served (empty: all).
    allowed: Vec<String>,
    max: usize,
    sites: HashMap<String, Site>,
    /// Sites turned away because `max` was reached.
    refused: u64,
}

impl Sites {
    /// No sites yet; `allowed` empty = any site, up to `max`.
    pub fn new(shared: Shared, allowed: Vec<String>, max: usize) -> Sites {
        Sites {
            shared,
            allowed,
            max,
            sites: HashMap::new(),
            refused: 0,
        }
    }

    /// Is `site` one of the sites served?
    pub fn serves(&self, site: &str) -> bool {
        self.allowed.is_empty() || self.allowed.iter().any(|s| s == site)
    }

    /// The state of `site`, created if it is served and there is room.
    pub fn state(&mut self, site: &str) -> Option<Arc<SiteState>> {
        if !self.serves(site) {
            return None;
        }
        if !self.sites.contains_key(site) {
            if self.sites.len() >= self.max {
                self.refused += 1;
                if worth_logging(self.refused) {
                    self.shared.log.warn(&format!(
                        "MQTT site {site:?} ignored: already {} sites (the cap; {} refused so far)",
                        self.max, self.refused
                    ));
                }
                return None;
            }
            let state = Arc::new(SiteState::default());
            self.sites.insert(
                site.to_string(),
                Site {
                    state,
                    worker: None,
                },
            );
        }
        Some(self.sites[site].state.clone())
    }

    /// Hands one audio-frame payload to `site`'s worker (started on its first frame); drops it
    /// if the site is off, not served, or its worker is behind.
    pub fn frame(&mut self, site: &str, payload: Vec<u8>) {
        let Some(state) = self.state(site) else {
            return;
        };
        if state.is_off() {
            return;
        }
        let shared = &self.shared;
        let entry = self.sites.get_mut(site).unwrap();
        if entry.worker.is_none() {
            entry.worker = spawn(shared.clone(), site.to_string(), state.clone());
        }
        let sent = match &entry.worker {
            Some(w) => w.tx.try_send(payload),
            None => Err(TrySendError::Disconnected(payload)),
        };
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = state.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if worth_logging(n) {
                    shared.log.warn(&format!(
                        "MQTT site {site:?}: audio frame dropped, its detection is behind or \
                         stopped ({n} dropped so far)"
                    ));
                }
            }
        }
    }

    /// Stops every worker (each finishes the frame it is on) and waits for them.
    pub fn close(self) {
        let workers: Vec<Worker> = self.sites.into_values().filter_map(|s| s.worker).collect();
        let threads: Vec<JoinHandle<()>> = workers
            .into_iter()
            .map(|w| {
                drop(w.tx);
                w.thread
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Starts `site`'s worker (`None`, logged, if the system refuses a thread).
fn spawn(shared: Shared, site: String, state: Arc<SiteState>) -> Option<Worker> {
    let (tx, rx) = bounded(QUEUE);
    // A thread's name must not hold a NUL; keep it short and plain.
    let short: String = site
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(5)
        .collect();
    let log = shared.log;
    let spawned = std::thread::Builder::new()
        .name(format!("hark-mqtt-{short}"))
        .spawn({
            let site = site.clone();
            move || run_worker(&shared, &site, &state, rx)
        });
    match spawned {
        Ok(thread) => Some(Worker { tx, thread }),
        Err(e) => {
            log.error(&format!("MQTT site {site:?}: cannot start its thread: {e}"));
            None
        }
    }
}

/// A site's worker: frames in, detections published, until the queue closes.
fn run_worker(shared: &Shared, site: &str, state: &SiteState, rx: Receiver<Vec<u8>>) {
    let mut stream = match shared.engine.open() {
        Ok(s) => s,
        Err(e) => {
            shared.log.error(&format!(
                "MQTT site {site:?}: cannot start detection: {e:#}"
            ));
            return;
        }
    };
    shared.log.info(&format!("MQTT site {site:?}: listening"));
    let mut epoch = state.epoch();
    for payload in rx {
        if state.is_off() {
            continue;
        }
        let frame = match wav::parse(&payload) {
            Ok(f) => f,
            Err(e) => {
                bad_frame(shared, site, state, &e.to_string());
                continue;
            }
        };
        if state.epoch() != epoch {
            epoch = state.epoch();
            if let Err(e) = stream.restart(frame.rate) {
                shared
                    .log
                    .error(&format!("MQTT site {site:?}: cannot restart: {e:#}"));
            }
        }
        push(shared, site, &mut stream, &frame);
    }
}

/// Runs one frame through the site's stream and publishes its detections.
fn push(shared: &Shared, site: &str, stream: &mut Stream, frame: &wav::Frame) {
    let detections = match stream.push(&frame.samples, frame.rate) {
        Ok(d) => d,
        Err(e) => {
            shared
                .log
                .error(&format!("MQTT site {site:?}: detection failed: {e:#}"));
            return;
        }
    };
    for d in detections {
        shared.log.info(&format!(
            "MQTT site {site:?}: {} (score {:.2}) at {:.2} s",
            d.word, d.score, d.time
        ));
        let body = serde_json::to_vec(&Detected::new(&d.word, d.threshold, site)).unwrap();
        if let Err(e) =
            shared
                .client
                .try_publish(messages::detected(&d.word), QoS::AtMostOnce, false, body)
        {
            shared.log.warn(&format!(
                "MQTT site {site:?}: detection of {} not published: {e}",
                d.word
            ));
        }
    }
}

/// Counts a frame that is not valid WAV; logs it and tells `hermes/error/hotword` now and then.
fn bad_frame(shared: &Shared, site: &str, state: &SiteState, why: &str) {
    let n = state.bad.fetch_add(1, Ordering::Relaxed) + 1;
    if !worth_logging(n) {
        return;
    }
    let topic = messages::audio_frame(site);
    shared
        .log
        .warn(&format!("{topic}: bad audio frame ({n} so far): {why}"));
    let body = serde_json::to_vec(&HotwordError {
        error: format!("bad audio frame: {why}"),
        context: Some(topic),
        site_id: site.into(),
        session_id: None,
    })
    .unwrap();
    let _ = shared
        .client
        .try_publish(messages::ERROR, QoS::AtMostOnce, false, body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_is_off_while_any_reason_is_pending() {
        let s = SiteState::default();
        assert!(!s.is_off());
        s.off("dialogueSession");
        s.off("ttsSay");
        assert!(s.is_off());
        assert!(!s.on("dialogueSession"), "ttsSay is still pending");
        assert!(s.is_off());
        assert!(!s.on("playAudio"), "a reason never given changes nothing");
        assert!(s.on("ttsSay"));
        assert!(!s.is_off());
        s.off("playAudio");
        s.off("ttsSay");
        assert!(s.on(""), "an empty reason clears them all");
        assert!(!s.is_off() && s.epoch() == 2);
        assert!(!s.on(""), "already on");
    }
}
