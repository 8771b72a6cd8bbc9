//! `hark listen`: the daemon, made of parts that each run on their own and talk over channels.
//!
//! - [`sources`]: where samples come from, the microphone ([`sources::microphone`], kept open
//!   through device loss by [`recovery`]) or a WAV file ([`sources::file`]);
//! - [`processing`]: the thread that runs the pipeline on those samples;
//! - [`sinks`]: where events go (stdout, the Unix socket, the hook, MQTT), one [`sinks::Sink`]
//!   each;
//! - [`signals`]: SIGINT/SIGTERM stop cleanly, SIGHUP reloads the config and the head without
//!   stopping capture (keeping the old ones if the new ones are invalid);
//! - [`run`]: the [`run::Daemon`] that starts the parts, runs the main loop (events, signals,
//!   reload, device recovery) and stops them into a [`Summary`].
//!
//! The channels between the parts (crossbeam), from -> to: what flows.
//!
//! - pool `full` (bounded, 64): source (audio callback or file thread) -> processing: chunks of
//!   mono samples at the source's rate;
//! - pool `free` (bounded, 64): processing -> source: emptied chunks, to be filled again;
//! - events: processing -> main loop: each [`Detection`](hark::pipeline::detector::Detection),
//!   which the main loop turns into a JSON line and hands to every sink;
//! - reload: main loop (on SIGHUP) -> processing: the new head and its detector settings;
//! - rate: main loop (a device reopened) -> processing: the new device's sample rate;
//! - stop (bounded, 1): main loop (on a stop signal) -> processing: end now, even if a stalled
//!   stream still holds a `full` sender;
//! - control: signal thread -> main loop: a [`signals::Control`], stop or reload;
//! - opening (bounded, 1): device opener thread -> main loop ([`recovery`]): the reopened
//!   capture, or why it could not open.
//!
//! The pool holds 64 buffers of 2048 samples (about 2.7 s at 48 kHz). When the processing falls
//! behind, the microphone (and a file paced in real time) drops samples and counts them rather
//! than block; a file read as fast as it goes waits instead.

pub mod config;
pub mod keep_audio;
pub mod processing;
pub mod recovery;
pub mod run;
pub mod signals;
pub mod sinks;
pub mod sources;

use anyhow::{bail, Result};
use std::path::PathBuf;
use std::sync::Arc;

use crate::daemon::config::Config;
use hark::assets::Assets;
use hark::pipeline::detector::DetectorSettings;
use hark::pipeline::head::Head;
use hark::pipeline::word_check::SharedWordModel;

/// Runs the daemon until SIGINT/SIGTERM (or the end of `--input`).
pub fn listen(opts: ListenOptions) -> Result<Summary> {
    let mut daemon = run::Daemon::start(opts)?;
    daemon.run();
    daemon.shutdown()
}

/// Flags of `hark listen` that override the config.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub head: Option<PathBuf>,
    pub device: Option<String>,
    pub socket: Option<PathBuf>,
    pub models: Option<PathBuf>,
    /// `--keep-audio DIR`.
    pub keep_audio: Option<PathBuf>,
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
        if let Some(k) = &self.keep_audio {
            c.events.keep_audio = k.clone();
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
    /// Event lines stdout could not take (nobody read it) and that were dropped.
    pub dropped_stdout: u64,
    /// The process's peak resident memory (kB), where the system reports it.
    pub peak_rss_kb: Option<u64>,
    /// 80 ms blocks processed, and how many of them the quiet-room gate skipped.
    pub blocks: u64,
    pub gated_blocks: u64,
    /// `--keep-audio`: clips saved, and clips dropped (the writer fell behind, or a write failed).
    pub kept_clips: Option<(u64, u64)>,
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
    pub fn debug(&self, m: &str) {
        if self.0 >= 3 {
            eprintln!("hark: debug: {m}");
        }
    }
}

/// The config file (or the defaults) with the command line's overrides.
fn load_config(opts: &ListenOptions) -> Result<Config> {
    let base = match &opts.config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let c = opts.overrides.apply(base);
    c.validate()?;
    Ok(c)
}

/// The debug line saying where the config came from.
fn describe_config(opts: &ListenOptions, cfg: &Config) -> String {
    let from = match &opts.config_path {
        Some(p) => p.display().to_string(),
        None => "the defaults (no config file)".to_string(),
    };
    format!(
        "config from {from}: head {}, device {:?}, log_level {}, quiet_gate {}, hook {:?}",
        cfg.head.display(),
        cfg.device,
        cfg.log_level,
        cfg.quiet_gate,
        cfg.hook.command
    )
}

/// The debug line for a loaded head: its words with their thresholds, and the smoothing and
/// refractory period in force.
fn describe_head(cfg: &Config, head: &Head, s: &DetectorSettings) -> String {
    let words: Vec<String> = head
        .labels
        .iter()
        .zip(&s.thresholds)
        .map(|(w, t)| format!("{w} {t}"))
        .collect();
    format!(
        "head {}: thresholds {}; smoothing {}, refractory {} s",
        cfg.head.display(),
        words.join(", "),
        s.smoothing,
        s.refractory
    )
}

/// The head and detector settings a config asks for (its `thresholds` and `refractory` over the
/// head's own).
/// The word model the head's check needs, when the config lets the check run (`word_check`);
/// `loaded` is used when there is one already; `many_streams` (`hark serve`) asks for the
/// prepacked sessions, faster per check, rather than the lean ones, smaller.
pub(crate) fn load_word_model(
    cfg: &Config,
    head: &Head,
    loaded: Option<&SharedWordModel>,
    many_streams: bool,
) -> Result<Option<SharedWordModel>> {
    if !cfg.word_check || head.word_check.is_none() {
        return Ok(None);
    }
    if let Some(m) = loaded {
        return Ok(Some(m.clone()));
    }
    let assets = Assets::locate(
        (!cfg.models_dir.as_os_str().is_empty()).then_some(cfg.models_dir.as_path()),
    )?;
    Ok(match many_streams {
        true => hark::pipeline::word_check::model_for_many(&assets, head)?,
        false => hark::pipeline::word_check::model_for(&assets, head)?,
    })
}

pub(crate) fn load_head(cfg: &Config, base_sha: &str) -> Result<(Arc<Head>, DetectorSettings)> {
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
