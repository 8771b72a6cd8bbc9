//! The daemon as one value: [`Daemon::start`] loads the config and the head, binds the sinks,
//! opens the source and starts the processing thread; [`Daemon::run`] is the main loop (events
//! to the sinks, signals, reload, device recovery); [`Daemon::shutdown`] stops the parts and
//! returns the [`Summary`].

use anyhow::Result;
use crossbeam_channel::{select, Receiver, RecvError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::Config;
use super::keep_audio::{ClipStats, Clips};
use super::processing::{Event, Processing};
use super::signals::{Control, SignalThread};
use super::sinks::{self, Sink};
use super::sources::microphone::{Capture, Pool, SourceStats};
use super::sources::Source;
use super::{describe_config, describe_head, load_config, load_head, load_word_model};
use super::{ListenOptions, Log, Summary};
use hark::assets::Assets;
use hark::pipeline::embedding::Embedder;
use hark::pipeline::word_check::SharedWordModel;
use hark::pipeline::Pipeline;

/// The running daemon: its parts and the main loop's state.
pub struct Daemon {
    opts: ListenOptions,
    /// The config in force (a reload changes the hook, the thresholds and the head).
    cfg: Config,
    log: Log,
    /// The base model's sha256, which every head loaded must have been trained on.
    base_sha: String,
    /// The word model, once a head with a word check has needed it.
    word_model: Option<SharedWordModel>,
    sinks: Vec<Box<dyn Sink>>,
    signals: SignalThread,
    control: Receiver<Control>,
    stats: Arc<SourceStats>,
    source: Source,
    processing: Processing,
    events: Receiver<Event>,
    /// Clips kept and dropped, with `--keep-audio`.
    clips: Option<Arc<ClipStats>>,
    started: Instant,
    summary: Summary,
    /// A stop signal has arrived: the source is stopped, the loop waits for the last events.
    stopping: bool,
    /// Dropped samples already reported as an overrun.
    reported_drops: u64,
    /// A reload swapped the head: the next tick (by then the processing thread has let the old
    /// one go) hands the freed heap back, so that reloads do not ratchet the resident memory.
    trim_pending: bool,
}

impl Daemon {
    /// Loads the config, the base model and the head, binds the sinks, installs the signal
    /// handlers, opens the source and starts the processing thread.
    pub fn start(opts: ListenOptions) -> Result<Daemon> {
        hark::util::one_malloc_arena();
        let cfg = load_config(&opts)?;
        let log = Log::new(&cfg.log_level);
        log.debug(&describe_config(&opts, &cfg));
        let embedder = load_base_model(&cfg, &log)?;
        let base_sha = embedder.model_sha256.clone();
        let (head, settings) = load_head(&cfg, &base_sha)?;
        log.debug(&describe_head(&cfg, &head, &settings));
        let sinks = sinks::open(&cfg, opts.stdout, log)?;
        let (signals, control) = SignalThread::spawn()?;
        let Pool {
            full_tx,
            full_rx,
            free_tx,
            free_rx,
        } = Pool::new();
        let stats = Arc::new(SourceStats::default());
        let (source, rate) = Source::open(
            opts.input.as_deref(),
            opts.realtime,
            &cfg.device,
            (full_tx, free_rx),
            &stats,
            &log,
        )?;
        for line in sinks.iter().filter_map(|s| s.describe()) {
            log.info(&line);
        }
        log.info(&format!("words: {}", head.labels.join(", ")));
        let word_model = load_word_model(&cfg, &head, None, false)?;
        if word_model.is_some() {
            log.info("the word check decides events (config `word_check`)");
        }
        // Loading parsed files and built sessions: hand the freed heap back before the long run.
        hark::util::trim_heap();
        let mut pipeline = Pipeline::new(embedder, head, rate, Some(settings))?;
        pipeline.set_gate(cfg.quiet_gate);
        pipeline.set_word_check(word_model.clone());
        let (clips, clip_stats) = start_clips(&cfg, log)?.unzip();
        let (processing, events) = Processing::spawn(pipeline, full_rx, free_tx, clips);
        Ok(Daemon {
            opts,
            cfg,
            log,
            base_sha,
            word_model,
            sinks,
            signals,
            control,
            stats,
            source,
            processing,
            events,
            clips: clip_stats,
            started: Instant::now(),
            summary: Summary::default(),
            stopping: false,
            reported_drops: 0,
            trim_pending: false,
        })
    }

    /// The main loop: runs until the processing thread ends (the end of a file, a stop signal,
    /// or a pipeline error).
    pub fn run(&mut self) {
        let tick = crossbeam_channel::tick(Duration::from_millis(100));
        let (events, control) = (self.events.clone(), self.control.clone());
        loop {
            let opening = match &self.source {
                Source::Microphone(r) => r.opening(),
                Source::File(_) => crossbeam_channel::never(),
            };
            select! {
                recv(events) -> msg => match msg {
                    Ok(d) => self.event(d),
                    Err(_) => break, // processing ended (end of input, or error)
                },
                recv(control) -> msg => match msg {
                    Ok(Control::Stop(sig)) if !self.stopping => self.stop(sig),
                    Ok(Control::Reload) => self.reload(),
                    _ => {}
                },
                recv(opening) -> msg => self.device_opened(msg),
                recv(tick) -> _ => self.tick(),
            }
        }
    }

    /// Hands one event to every sink.
    fn event(&mut self, ev: Event) {
        self.summary.events += 1;
        for sink in &mut self.sinks {
            if let Err(e) = sink.event(&ev.detection, &ev.json) {
                self.log.warn(&format!("{e:#}"));
            }
        }
    }

    /// A stop signal: stops the source and the processing thread; the loop ends once the
    /// processing thread has.
    fn stop(&mut self, sig: i32) {
        self.log.info(&format!("signal {sig}: stopping"));
        self.stopping = true;
        self.source.stop();
        self.processing.stop();
    }

    /// SIGHUP: reads the config and the head again and swaps the head in; keeps the running
    /// ones if either is invalid. Device, socket and quiet-gate changes wait for a restart.
    fn reload(&mut self) {
        let loaded = load_config(&self.opts).and_then(|c| {
            let (h, s) = load_head(&c, &self.base_sha)?;
            let m = load_word_model(&c, &h, self.word_model.as_ref(), false)?;
            Ok((c, (h, s, m)))
        });
        let (c, (h, s, m)) = match loaded {
            Ok(x) => x,
            Err(e) => {
                self.log.error(&format!(
                    "reload failed, keeping the running config and head: {e:#}"
                ));
                return;
            }
        };
        self.log
            .info(&format!("reloaded: words {}", h.labels.join(", ")));
        self.log.debug(&describe_config(&self.opts, &c));
        self.log.debug(&describe_head(&c, &h, &s));
        if m.is_some() {
            self.word_model.clone_from(&m);
        }
        self.processing.replace_head(h, s, m);
        self.trim_pending = true;
        let cfg = &self.cfg;
        if c.device != cfg.device
            || c.socket != cfg.socket
            || c.quiet_gate != cfg.quiet_gate
            || c.events != cfg.events
        {
            self.log
                .warn("device, socket, quiet_gate and events changes take effect on restart");
        }
        self.cfg.hook = c.hook.clone();
        self.cfg.thresholds = c.thresholds.clone();
        self.cfg.head = c.head.clone();
        for sink in &mut self.sinks {
            sink.reload(&self.cfg);
        }
    }

    /// The answer of a device reopening.
    fn device_opened(&mut self, answer: Result<Result<Capture>, RecvError>) {
        if let Source::Microphone(r) = &mut self.source {
            if let Some(rate) = r.opened(answer, self.stopping, &self.log) {
                self.processing.set_source_rate(rate);
            }
        }
    }

    /// Every 100 ms: sink housekeeping, overrun reports, and the microphone's recovery.
    fn tick(&mut self) {
        for sink in &mut self.sinks {
            sink.tick();
        }
        if std::mem::take(&mut self.trim_pending) {
            hark::util::trim_heap();
        }
        let dropped = self.stats.dropped.load(Ordering::Relaxed);
        if dropped > self.reported_drops {
            self.log.warn(&format!(
                "capture overrun: processing fell behind, {} samples dropped ({dropped} in all)",
                dropped - self.reported_drops
            ));
            self.reported_drops = dropped;
        }
        if let (false, Source::Microphone(r)) = (self.stopping, &mut self.source) {
            r.check(&self.log);
        }
    }

    /// Stops every part and says what the daemon did.
    pub fn shutdown(self) -> Result<Summary> {
        let Daemon {
            sinks,
            signals,
            stats,
            source,
            processing,
            clips,
            started,
            mut summary,
            ..
        } = self;
        let read = source.finish();
        let result = processing.join()?;
        signals.close();
        summary.seconds = started.elapsed().as_secs_f64();
        summary.dropped_samples = stats.dropped.load(Ordering::Relaxed);
        for mut sink in sinks {
            sink.finish(&mut summary);
            // dropping the socket closes its clients and removes the socket file
        }
        summary.peak_rss_kb = hark::util::peak_rss_kb();
        (summary.blocks, summary.gated_blocks) = result?;
        summary.kept_clips = clips.map(|c| {
            (
                c.kept.load(Ordering::Relaxed),
                c.dropped.load(Ordering::Relaxed),
            )
        });
        read?;
        Ok(summary)
    }
}

/// With `[events] keep_audio` (or `--keep-audio`): the clip keeper and its counts.
fn start_clips(cfg: &Config, log: Log) -> Result<Option<(Clips, Arc<ClipStats>)>> {
    if cfg.events.keep_audio.as_os_str().is_empty() {
        return Ok(None);
    }
    let kept = Clips::start(&cfg.events, log)?;
    let dir = cfg.events.keep_audio.display();
    log.info(&format!("keeping each event's audio in {dir}"));
    Ok(Some(kept))
}

/// Has a child process (`hark setup`) make the models' copies in ONNX Runtime's format that the
/// daemon maps, when one is missing (the first start after set-up or after a new runtime):
/// made in the daemon, they would leave its peak memory about 17 MB higher for as long as it
/// runs. If the child cannot make them, the daemon does, as it loads them.
fn make_runtime_copies(assets: &Assets, log: &Log) {
    // An error here (a missing model) is the load's to report, with its own words.
    let Ok(missing @ 1..) = hark::pipeline::runtime_copies(assets, false) else {
        return;
    };
    log.info(&format!(
        "making {missing} model {} in ONNX Runtime's format in {} (once)",
        if missing == 1 { "copy" } else { "copies" },
        assets.cache_dir().display()
    ));
    let child = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .arg("--models")
            .arg(&assets.dir)
            .args(["setup", "--to"])
            .arg(&assets.dir)
            .stdin(std::process::Stdio::null())
            .output()
    });
    let why = match child {
        Ok(o) if o.status.success() => return,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    log.warn(&format!(
        "hark setup could not make them ({why}): making them here"
    ));
}

/// The base model, from the configured models folder or the one found automatically.
fn load_base_model(cfg: &Config, log: &Log) -> Result<Embedder> {
    let assets = Assets::locate(
        (!cfg.models_dir.as_os_str().is_empty()).then_some(cfg.models_dir.as_path()),
    )?;
    make_runtime_copies(&assets, log);
    let embedder = Embedder::load(&assets)?;
    log.debug(&format!(
        "models from {}, base model sha256 {}",
        assets.dir.display(),
        embedder.model_sha256
    ));
    Ok(embedder)
}
