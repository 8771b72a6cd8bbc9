//! Stage 6: where events go. Each event is one JSON object (the same one `hark detect --json`
//! prints, plus `wall_time` in the daemon), handed to every sink in turn: stdout, the clients of
//! a Unix socket, the command hook. A new sink is a file here with a type implementing [`Sink`],
//! added in [`open`].

pub mod hermes;
pub mod hook;
pub mod socket;
pub mod stdout;

use anyhow::Result;
use std::path::Path;

use crate::daemon::config::Config;
use crate::daemon::Summary;
use hark::pipeline::detector::Detection;

pub use socket::SocketServer;

/// Somewhere events go. The daemon's main thread calls every method; a sink must not block it
/// (the hook runs its program without waiting, the socket drops clients that do not keep up).
pub trait Sink {
    /// Hands one event on: the detection and its JSON line ([`event_json`]). An error is
    /// logged as a warning and the daemon carries on.
    fn event(&mut self, d: &Detection, json: &str) -> Result<()>;

    /// A line for the start-up log saying where events go, if there is more to say than the
    /// sink's kind.
    fn describe(&self) -> Option<String> {
        None
    }

    /// Called about every 100 ms (the socket accepts waiting clients here).
    fn tick(&mut self) {}

    /// Takes the settings a SIGHUP reload may change.
    fn reload(&mut self, _cfg: &Config) {}

    /// Adds what the sink counted to the summary when the daemon stops.
    fn finish(&mut self, _summary: &mut Summary) {}
}

/// The sinks the config asks for, in the order each event reaches them: stdout (if `stdout`),
/// the socket (if enabled; bound now), the hook, MQTT (if `[mqtt] uri` is set).
pub fn open(cfg: &Config, stdout: bool, log: crate::daemon::Log) -> Result<Vec<Box<dyn Sink>>> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if stdout {
        sinks.push(Box::new(stdout::Stdout::start()));
    }
    if cfg.socket.enabled {
        sinks.push(Box::new(SocketServer::bind(
            &cfg.socket_path(),
            cfg.socket_mode()?,
        )?));
    }
    sinks.push(Box::new(hook::Hook::new(&cfg.hook)));
    if let Some(opts) = cfg.mqtt.hermes()? {
        sinks.push(Box::new(hermes::Hermes::start(
            &opts.broker,
            &cfg.mqtt.site_id,
            log,
        )?));
    }
    Ok(sinks)
}

/// The JSON line for a detection. `file` is set by `detect`; `wall_time` by the daemon.
pub fn event_json(
    d: &Detection,
    file: Option<&Path>,
    wall_time: Option<std::time::SystemTime>,
) -> String {
    event_value(d, file, wall_time).to_string()
}

/// The daemon's JSON line for a detection: with its `wall_time`, its `id`, and the `audio`
/// clip's path when `--keep-audio` keeps it.
pub fn event_json_kept(
    d: &Detection,
    id: &str,
    audio: Option<&Path>,
    wall_time: std::time::SystemTime,
) -> String {
    let mut v = event_value(d, None, Some(wall_time));
    v["id"] = serde_json::json!(id);
    if let Some(a) = audio {
        v["audio"] = serde_json::json!(a.display().to_string());
    }
    v.to_string()
}

/// The event's fields as a JSON object.
fn event_value(
    d: &Detection,
    file: Option<&Path>,
    wall_time: Option<std::time::SystemTime>,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "word": d.word,
        "time": (d.time * 1000.0).round() / 1000.0,
        "score": d.score,
        "threshold": d.threshold,
        "raw_score": d.raw_score,
    });
    if d.similarity.is_finite() {
        v["similarity"] = serde_json::json!(d.similarity);
    }
    if let Some((w, s)) = &d.runner_up {
        v["runner_up"] = serde_json::json!({"word": w, "score": s});
    }
    if let Some(c) = d.word_check {
        v["word_check"] = serde_json::json!(c);
    }
    if let Some(f) = file {
        v["file"] = serde_json::json!(f.display().to_string());
    }
    if let Some(t) = wall_time {
        v["wall_time"] = serde_json::json!(humantime::format_rfc3339_millis(t).to_string());
    }
    v
}
