//! `hark listen`: the daemon. A source (microphone or file) fills the capture pool; the
//! processing thread runs the pipeline; the main thread hands events to the sinks and handles
//! signals: SIGINT/SIGTERM stop cleanly, SIGHUP reloads the config and the head without stopping
//! capture (keeping the old ones if the new ones are invalid).
//!
//! source --(bounded pool of chunks)--> processing (pipeline) --(events)--> main (sinks)

pub mod config;
pub mod sinks;
pub mod sources;

use anyhow::{bail, Context, Result};
use crossbeam_channel::select;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::daemon::config::Config;
use crate::daemon::sinks::SocketServer;
use crate::daemon::sources::file::FileSource;
use crate::daemon::sources::microphone::{self, Capture, Pool, SourceStats};
use hark::assets::Assets;
use hark::pipeline::detector::{Detection, DetectorSettings};
use hark::pipeline::embedding::Embedder;
use hark::pipeline::head::Head;
use hark::pipeline::Pipeline;

/// Flags of `hark listen` that override the config.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub head: Option<PathBuf>,
    pub device: Option<String>,
    pub socket: Option<PathBuf>,
    pub models: Option<PathBuf>,
}

impl Overrides {
    pub fn apply(&self, mut c: Config) -> Config {
        if let Some(h) = &self.head {
            c.head = h.clone();
        }
        if let Some(d) = &self.device {
            c.device = d.clone();
        }
        if let Some(s) = &self.socket {
            c.socket.path = s.clone();
            c.socket.enabled = true;
        }
        if let Some(m) = &self.models {
            c.models_dir = m.clone();
        }
        c
    }
}

/// What to listen to and with which settings.
pub struct ListenOptions {
    /// The config file (re-read on SIGHUP), or None for the defaults.
    pub config_path: Option<PathBuf>,
    pub overrides: Overrides,
    /// A WAV file instead of the microphone.
    pub input: Option<PathBuf>,
    /// Pace the file like a microphone.
    pub realtime: bool,
    /// Print events on stdout.
    pub stdout: bool,
}

/// What the daemon did, printed when it stops.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub seconds: f64,
    pub events: u64,
    pub dropped_samples: u64,
    pub dropped_clients: u64,
    /// The process's peak resident memory (kB), where the system reports it.
    pub peak_rss_kb: Option<u64>,
    /// 80 ms blocks processed, and how many of them the quiet-room gate skipped.
    pub blocks: u64,
    pub gated_blocks: u64,
}

/// Leveled logging to stderr.
#[derive(Clone, Copy)]
pub struct Log(u8);

impl Log {
    pub fn new(level: &str) -> Log {
        Log(match level {
            "error" => 0,
            "warn" => 1,
            "info" => 2,
            _ => 3,
        })
    }
    pub fn error(&self, m: &str) {
        eprintln!("hark: error: {m}");
    }
    pub fn warn(&self, m: &str) {
        if self.0 >= 1 {
            eprintln!("hark: warning: {m}");
        }
    }
    pub fn info(&self, m: &str) {
        if self.0 >= 2 {
            eprintln!("hark: {m}");
        }
    }
}

fn load_config(opts: &ListenOptions) -> Result<Config> {
    let base = match &opts.config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let c = opts.overrides.apply(base);
    c.validate()?;
    Ok(c)
}

/// The head and detector settings a config asks for.
fn load_head(cfg: &Config, base_sha: &str) -> Result<(Arc<Head>, DetectorSettings)> {
    let head = Head::load(&cfg.head, base_sha)?;
    let mut s = head.detector.clone();
    for (w, t) in &cfg.thresholds {
        let Some(i) = head.word_index(w) else {
            bail!(
                "key `thresholds.{w}`: the head {} has no word {w:?} (its words: {})",
                cfg.head.display(),
                head.labels.join(", ")
            );
        };
        s.thresholds[i] = *t;
    }
    if cfg.refractory > 0.0 {
        s.refractory = cfg.refractory;
    }
    Ok((Arc::new(head), s))
}

/// Seconds without a single sample after which a capture device counts as lost.
const STALL_SECONDS: u64 = 3;

/// The wait before reopening a device after `failures` failures in a row: 1, 2, 4 ... 30 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs((1u64 << failures.saturating_sub(1).min(5)).min(30))
}

enum Control {
    Stop(i32),
    Reload,
}

/// Runs the daemon until SIGINT/SIGTERM (or the end of `--input`).
pub fn listen(opts: ListenOptions) -> Result<Summary> {
    // One malloc arena: the daemon's threads allocate little, and extra arenas only hold memory.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let mut cfg = load_config(&opts)?;
    let log = Log::new(&cfg.log_level);
    let assets = Assets::locate(
        (!cfg.models_dir.as_os_str().is_empty()).then_some(cfg.models_dir.as_path()),
    )?;
    let embedder = Embedder::load(&assets)?;
    let base_sha = embedder.model_sha256.clone();
    let (head, settings) = load_head(&cfg, &base_sha)?;
    let socket = if cfg.socket.enabled {
        Some(SocketServer::bind(&cfg.socket_path(), cfg.socket_mode()?)?)
    } else {
        None
    };

    // Signals.
    let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<Control>();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .context("cannot install signal handlers")?;
    let sig_handle = signals.handle();
    let sig_thread = std::thread::spawn(move || {
        for s in signals.forever() {
            let msg = if s == signal_hook::consts::SIGHUP {
                Control::Reload
            } else {
                Control::Stop(s)
            };
            if ctl_tx.send(msg).is_err() {
                break;
            }
        }
    });

    // Source.
    let pool = Pool::new();
    let stats = Arc::new(SourceStats::default());
    let mut capture = None;
    let mut file = None;
    let rate = if let Some(input) = &opts.input {
        let f = FileSource::start(
            input,
            opts.realtime,
            pool.full_tx.clone(),
            pool.free_rx.clone(),
            stats.clone(),
        )?;
        let rate = f.rate;
        file = Some(f);
        log.info(&format!(
            "listening to {} ({rate} Hz{})",
            input.display(),
            if opts.realtime { ", real time" } else { "" }
        ));
        rate
    } else {
        let c = microphone::start(
            &cfg.device,
            pool.full_tx.clone(),
            pool.free_rx.clone(),
            stats.clone(),
        )?;
        log.info(&format!(
            "listening on {:?} ({} Hz, {} channel(s))",
            c.device, c.rate, c.channels
        ));
        let r = c.rate;
        capture = Some(c);
        r
    };
    if let Some(s) = &socket {
        log.info(&format!("events on socket {}", s.path().display()));
    }
    log.info(&format!("words: {}", head.labels.join(", ")));
    // Loading parsed files and built sessions; hand the freed heap back before the long run.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }

    // Processing thread.
    let (event_tx, event_rx) = crossbeam_channel::unbounded::<Detection>();
    let (reload_tx, reload_rx) = crossbeam_channel::unbounded::<(Arc<Head>, DetectorSettings)>();
    // A reopened device may run at another rate than the one it replaces.
    let (rate_tx, rate_rx) = crossbeam_channel::unbounded::<u32>();
    let Pool {
        full_tx,
        full_rx,
        free_tx,
        free_rx,
    } = pool;
    let mut pipeline = Pipeline::new(embedder, head, rate, Some(settings))?;
    pipeline.set_gate(cfg.quiet_gate);
    // Ends the processing thread on a signal even if a stalled stream still holds a sender.
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let proc_thread = std::thread::spawn(move || -> Result<(u64, u64)> {
        let mut emit = |d: Detection| {
            let _ = event_tx.send(d);
        };
        loop {
            select! {
                recv(full_rx) -> msg => match msg {
                    Ok(chunk) => {
                        pipeline.push(chunk.samples(), &mut emit)?;
                        let _ = free_tx.send(chunk);
                    }
                    Err(_) => break,
                },
                recv(reload_rx) -> msg => if let Ok((h, s)) = msg {
                    pipeline.replace_head(h, Some(s));
                },
                recv(rate_rx) -> msg => if let Ok(r) = msg {
                    pipeline.set_source_rate(r)?;
                },
                recv(stop_rx) -> _ => break,
            }
        }
        pipeline.finish(&mut emit)?;
        Ok(pipeline.gate_stats())
    });
    // The processing thread ends when every sender of full chunks is gone. With a file, the
    // file thread holds its own sender, and ours goes now so the end of the file ends the run.
    let mut pool_sender = if opts.input.is_some() {
        drop(full_tx);
        None
    } else {
        Some(full_tx)
    };

    let t0 = Instant::now();
    let mut summary = Summary::default();
    // Device recovery: when to try opening it again; an open running on its own thread (a
    // sound server that hangs must not block signals or clients); failures in a row, reset
    // only when samples flow again; streams being let go.
    let mut retry_at: Option<Instant> = None;
    let mut opening: Option<crossbeam_channel::Receiver<Result<Capture>>> = None;
    let mut failures = 0u32;
    let mut releasing: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let mut source_rate = rate;
    // (samples seen from the source, when that count last changed)
    let mut last_seen = (0u64, Instant::now());
    let mut logged_error: Option<(String, Instant)> = None;
    let tick = crossbeam_channel::tick(Duration::from_millis(100));
    let mut stopping = false;
    let mut reported_drops = 0u64;
    let handle_event = |d: Detection, summary: &mut Summary, cfg: &Config| {
        summary.events += 1;
        let json = sinks::event_json(&d, None, Some(std::time::SystemTime::now()));
        if opts.stdout {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{json}");
            let _ = out.flush();
        }
        if let Some(s) = &socket {
            s.broadcast(&json);
        }
        if let Err(e) = sinks::run_hook(&cfg.hook.command, &d, &json) {
            log.warn(&format!("{e:#}"));
        }
    };
    loop {
        select! {
            recv(event_rx) -> msg => match msg {
                Ok(d) => handle_event(d, &mut summary, &cfg),
                Err(_) => break, // processing ended (end of input, or error)
            },
            recv(ctl_rx) -> msg => match msg {
                Ok(Control::Stop(sig)) if !stopping => {
                    log.info(&format!("signal {sig}: stopping"));
                    stopping = true;
                    if let Some(f) = &file {
                        f.stop();
                    }
                    releasing.push(microphone::release(capture.take())); // stops the stream
                    pool_sender = None;
                    let _ = stop_tx.try_send(());
                }
                Ok(Control::Reload) => {
                    match load_config(&opts).and_then(|c| load_head(&c, &base_sha).map(|h| (c, h))) {
                        Ok((c, (h, s))) => {
                            log.info(&format!("reloaded: words {}", h.labels.join(", ")));
                            let _ = reload_tx.send((h, s));
                            if c.device != cfg.device || c.socket != cfg.socket || c.quiet_gate != cfg.quiet_gate {
                                log.warn("device, socket and quiet_gate changes take effect on restart");
                            }
                            cfg.hook = c.hook.clone();
                            cfg.thresholds = c.thresholds.clone();
                            cfg.head = c.head.clone();
                        }
                        Err(e) => log.error(&format!("reload failed, keeping the running config and head: {e:#}")),
                    }
                }
                _ => {}
            },
            recv(opening.clone().unwrap_or_else(crossbeam_channel::never)) -> msg => {
                opening = None;
                match msg.unwrap_or_else(|_| Err(anyhow::anyhow!("the device opener failed"))) {
                    Ok(c) if stopping => releasing.push(microphone::release(Some(c))),
                    Ok(c) => {
                        log.info(&format!("capture device back: {:?} ({} Hz)", c.device, c.rate));
                        if c.rate != source_rate {
                            source_rate = c.rate;
                            let _ = rate_tx.send(c.rate);
                        }
                        stats.device_lost.store(false, Ordering::Relaxed);
                        last_seen.1 = Instant::now();
                        capture = Some(c);
                    }
                    Err(e) => {
                        failures += 1;
                        let wait = backoff(failures);
                        log.warn(&format!("{e:#}; retrying in {} s", wait.as_secs()));
                        retry_at = Some(Instant::now() + wait);
                    }
                }
            },
            recv(tick) -> _ => {
                if let Some(s) = &socket {
                    s.accept();
                }
                let dropped = stats.dropped.load(Ordering::Relaxed);
                if dropped > reported_drops {
                    log.warn(&format!("capture overrun: processing fell behind, {} samples dropped ({dropped} in all)", dropped - reported_drops));
                    reported_drops = dropped;
                }
                if stopping || opts.input.is_some() {
                    continue;
                }
                if let Some(e) = stats.last_error.lock().ok().and_then(|mut e| e.take()) {
                    // A failing stream repeats its error many times a second: say each once a minute.
                    if logged_error.as_ref().is_none_or(|(m, t)| *m != e || t.elapsed() > Duration::from_secs(60)) {
                        log.warn(&format!("capture stream error: {e}"));
                        logged_error = Some((e, Instant::now()));
                    }
                }
                // A device can vanish without an error (a sound server that dies leaves the
                // stream silent): no samples for STALL_SECONDS counts as lost too.
                let seen = stats.delivered.load(Ordering::Relaxed) + stats.dropped.load(Ordering::Relaxed);
                if seen != last_seen.0 {
                    last_seen = (seen, Instant::now());
                    failures = 0;
                }
                if capture.is_none() {
                    // Flags from streams already let go say nothing about the next one.
                    stats.device_lost.store(false, Ordering::Relaxed);
                } else {
                    let lost = stats.device_lost.swap(false, Ordering::Relaxed);
                    let stalled = last_seen.1.elapsed() >= Duration::from_secs(STALL_SECONDS);
                    if lost || stalled {
                        failures += 1;
                        let wait = backoff(failures);
                        log.warn(&format!(
                            "capture device {}; reopening it in {} s",
                            if lost { "lost".to_string() } else { format!("stalled: no audio for {STALL_SECONDS} s") },
                            wait.as_secs()
                        ));
                        releasing.push(microphone::release(capture.take()));
                        retry_at = Some(Instant::now() + wait);
                    }
                }
                releasing.retain(|h| !h.is_finished());
                if retry_at.is_some_and(|t| Instant::now() >= t) && opening.is_none() {
                    let Some(tx) = pool_sender.clone() else { continue };
                    retry_at = None;
                    let (open_tx, open_rx) = crossbeam_channel::bounded(1);
                    let (device, free_rx, stats) = (cfg.device.clone(), free_rx.clone(), stats.clone());
                    std::thread::spawn(move || {
                        let _ = open_tx.send(microphone::start(&device, tx, free_rx, stats));
                    });
                    opening = Some(open_rx);
                }
            },
        }
    }
    releasing.push(microphone::release(capture));
    drop(pool_sender);
    // Let the streams stop cleanly, but never wait on one that hangs in its teardown.
    let t_release = Instant::now();
    while releasing.iter().any(|h| !h.is_finished()) && t_release.elapsed() < Duration::from_secs(1)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Some(f) = file {
        f.join();
    }
    let result = proc_thread
        .join()
        .map_err(|_| anyhow::anyhow!("processing thread panicked"))?;
    sig_handle.close();
    let _ = sig_thread.join();
    summary.seconds = t0.elapsed().as_secs_f64();
    summary.dropped_samples = stats.dropped.load(Ordering::Relaxed);
    summary.dropped_clients = socket
        .as_ref()
        .map_or(0, |s| s.dropped_clients.load(Ordering::Relaxed));
    drop(socket); // closes clients, removes the socket file
    summary.peak_rss_kb = hark::util::peak_rss_kb();
    (summary.blocks, summary.gated_blocks) = result?;
    Ok(summary)
}
