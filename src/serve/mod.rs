//! `hark serve`: the detection pipeline for audio that clients send (Home Assistant and
//! wyoming-satellite over Wyoming, Rhasspy over Hermes/MQTT), many streams in one process.
//!
//! - [`engine`]: the streams and what they share (the base model, the head);
//! - [`wyoming`]: the Wyoming server;
//! - [`hermes`]: the Hermes (MQTT) front end, for Rhasspy: a stream per site;
//! - [`zeroconf`]: the optional mDNS announcement of the Wyoming server.
//!
//! [`serve`] loads the config and the head, starts the servers and waits for signals (from
//! [`crate::daemon::signals`]): SIGHUP reloads the head for every stream (keeping the old one if
//! the new one is invalid), SIGINT/SIGTERM close every connection and end with a [`Summary`].

pub mod engine;
mod handoff;
pub mod hermes;
pub mod wyoming;
pub mod zeroconf;

use anyhow::{Context, Result};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::daemon::config::{tcp_address, Config};
use crate::daemon::signals::{Control, SignalThread};
use crate::daemon::{Log, Overrides};
use engine::Engine;
use hark::assets::Assets;
use wyoming::frame::Limits;
use wyoming::server::{Counts, Server, ServerOptions};

/// What to serve and with which settings.
pub struct ServeOptions {
    /// The config file (re-read on SIGHUP), or None for the defaults.
    pub config_path: Option<PathBuf>,
    /// `--head` and `--models`.
    pub overrides: Overrides,
    /// `--wyoming tcp://HOST:PORT` (overrides `wyoming.uri`).
    pub wyoming: Option<String>,
    /// `--no-wyoming` (overrides `wyoming.enabled`).
    pub no_wyoming: bool,
    /// `--mqtt mqtt://...` (overrides `mqtt.uri`).
    pub mqtt: Option<String>,
    /// `--site ID`... (overrides `mqtt.sites` when given).
    pub sites: Vec<String>,
}

/// What the server did, printed when it stops.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub seconds: f64,
    pub counts: Counts,
    /// The process's peak resident memory (kB), where the system reports it.
    pub peak_rss_kb: Option<u64>,
}

/// Runs `hark serve` until SIGINT/SIGTERM.
pub fn serve(opts: &ServeOptions) -> Result<Summary> {
    hark::util::one_malloc_arena();
    let started = Instant::now();
    let cfg = load_config(opts)?;
    let log = Log::new(&cfg.log_level);
    let assets = Assets::locate(
        (!cfg.models_dir.as_os_str().is_empty()).then_some(cfg.models_dir.as_path()),
    )?;
    // The base model is read, hashed and loaded once, now: an error at start, not per client.
    let engine = Arc::new(Engine::start(assets, |sha| load(&cfg, sha, None))?);
    // Loading parsed files and built sessions: hand the freed heap back before the long run.
    hark::util::trim_heap();
    // The word check's runs take their buffers from the heap and leave them there for the next.
    hark::util::keep_large_blocks(8 << 20);
    let base_sha = engine.base_sha()?;
    let listener = bind_wyoming(&cfg)?;
    let (signals, control) = SignalThread::spawn()?;
    let hermes = start_hermes(&cfg, &engine, log)?;
    let wyoming = match listener {
        Some(l) => Some(start_wyoming(&cfg, &engine, l, log)?),
        None => None,
    };
    for msg in control.iter() {
        match msg {
            Control::Stop(sig) => {
                log.info(&format!("signal {sig}: stopping"));
                break;
            }
            Control::Reload => reload(opts, &engine, &base_sha, &log),
        }
    }
    let counts = match wyoming {
        Some((server, announced)) => {
            if let Some(a) = announced {
                a.stop();
            }
            server.stop()
        }
        None => Counts::default(),
    };
    if let Some(h) = hermes {
        h.stop();
        h.join();
    }
    signals.close();
    Ok(Summary {
        seconds: started.elapsed().as_secs_f64(),
        counts,
        peak_rss_kb: hark::util::peak_rss_kb(),
    })
}

/// The config file (or the defaults) with the command line's overrides.
fn load_config(opts: &ServeOptions) -> Result<Config> {
    let base = match &opts.config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let mut c = opts.overrides.apply(base);
    if let Some(uri) = &opts.wyoming {
        tcp_address(uri, "--wyoming")?;
        c.wyoming.uri = uri.clone();
    }
    if let Some(uri) = &opts.mqtt {
        c.mqtt.uri = uri.clone();
    }
    if !opts.sites.is_empty() {
        c.mqtt.sites = opts.sites.clone();
    }
    if opts.no_wyoming {
        c.wyoming.enabled = false;
    }
    c.validate()?;
    if !c.wyoming.enabled && c.mqtt.uri.is_empty() {
        anyhow::bail!(
            "nothing to serve: Wyoming is off (`wyoming.enabled = false` or --no-wyoming) and no \
             MQTT broker is set (`mqtt.uri` or --mqtt)"
        );
    }
    Ok(c)
}

/// The Wyoming server's socket, bound before anything else starts (a taken port is an error
/// at start), or None when Wyoming is off.
fn bind_wyoming(cfg: &Config) -> Result<Option<TcpListener>> {
    if !cfg.wyoming.enabled {
        return Ok(None);
    }
    let addr = tcp_address(&cfg.wyoming.uri, "wyoming uri")?;
    let listener = TcpListener::bind(&addr)
        .with_context(|| format!("cannot listen on {}", cfg.wyoming.uri))?;
    Ok(Some(listener))
}

/// The Wyoming server on its bound socket, and its zeroconf announcement when configured.
fn start_wyoming(
    cfg: &Config,
    engine: &Arc<Engine>,
    listener: TcpListener,
    log: Log,
) -> Result<(Server, Option<zeroconf::Announcement>)> {
    let server = Server::start(engine.clone(), listener, server_options(cfg), log)?;
    log.info(&format!(
        "wyoming: listening on tcp://{} (no authentication), words: {}",
        server.local_addr(),
        engine.words().join(", ")
    ));
    let announced = match cfg.wyoming.zeroconf {
        true => announce(server.local_addr(), &log),
        false => None,
    };
    Ok((server, announced))
}

/// The Hermes (MQTT) front end, when a broker is configured.
fn start_hermes(cfg: &Config, engine: &Arc<Engine>, log: Log) -> Result<Option<hermes::Hermes>> {
    let Some(opts) = cfg.mqtt.hermes()? else {
        return Ok(None);
    };
    log.info(&format!(
        "mqtt: hearing {} on {}",
        match opts.sites.is_empty() {
            true => "every site".to_string(),
            false => format!("sites {}", opts.sites.join(", ")),
        },
        opts.broker.address()
    ));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    Ok(Some(hermes::start(engine.clone(), opts, stop, log)?))
}

/// `[wyoming] zeroconf`: announces the server; a failure is logged (clients can still be
/// pointed at the host and port by hand).
fn announce(addr: std::net::SocketAddr, log: &Log) -> Option<zeroconf::Announcement> {
    match zeroconf::announce(addr) {
        Ok(a) => {
            log.info(&format!("zeroconf: announcing {}", a.fullname()));
            Some(a)
        }
        Err(e) => {
            log.warn(&format!("{e:#}"));
            None
        }
    }
}

/// The server's settings from the config.
fn server_options(cfg: &Config) -> ServerOptions {
    ServerOptions {
        max_connections: cfg.wyoming.max_connections,
        idle_timeout: Duration::from_secs_f32(cfg.wyoming.idle_timeout),
        limits: Limits::default(),
    }
}

/// The config's head (for base model `base_sha`) with its settings, and the word model its
/// check needs (`in_use` if one is loaded already).
fn load(
    cfg: &Config,
    base_sha: &str,
    in_use: Option<&hark::pipeline::word_check::SharedWordModel>,
) -> Result<engine::Loaded> {
    let (head, settings) = crate::daemon::load_head(cfg, base_sha)?;
    let model = crate::daemon::load_word_model(cfg, &head, in_use, true)?;
    Ok((head, settings, model))
}

/// SIGHUP: reads the config and the head again and swaps the head in for every stream; keeps
/// the running head if either is invalid.
fn reload(opts: &ServeOptions, engine: &Engine, base_sha: &str, log: &Log) {
    let in_use = engine.word_model();
    let loaded = load_config(opts).and_then(|c| load(&c, base_sha, in_use.as_ref()));
    match loaded {
        Ok(loaded) => {
            log.info(&format!("reloaded: words {}", loaded.0.labels.join(", ")));
            engine.reload(loaded);
        }
        Err(e) => log.error(&format!("reload failed, keeping the running head: {e:#}")),
    }
}
