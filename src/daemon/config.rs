//! The daemon's configuration: `config/hark.toml` (every key documented there with its
//! default), overridden by command-line flags. Built once; the stages receive it.
//! An unknown key, a wrong type or a bad value is an error naming the key, the line and what was
//! expected.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything `hark listen` runs with.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Capture device: a name, or part of one (see `hark devices`); empty = system default.
    pub device: String,
    /// The trained head.
    pub head: PathBuf,
    /// The models folder (base model, runtime); empty = found automatically.
    pub models_dir: PathBuf,
    /// Per-word thresholds overriding the head's own.
    pub thresholds: BTreeMap<String, f32>,
    /// Seconds after an event during which no other event fires; 0 = the head's default.
    pub refractory: f32,
    pub socket: SocketConfig,
    pub hook: HookConfig,
    pub mqtt: MqttConfig,
    /// One of error, warn, info, debug.
    pub log_level: String,
    /// Skip the base model while the room is quiet (the quiet-room gate).
    pub quiet_gate: bool,
    /// Let the word check decide, when the head has one (a second model hears each candidate).
    pub word_check: bool,
    pub wyoming: WyomingConfig,
    pub events: EventsConfig,
}

/// What `hark listen` keeps of each event.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Folder where each event's audio is saved as `<id>.wav` (with `<id>.json`); empty = none.
    pub keep_audio: PathBuf,
    /// Clips kept at most; the oldest are deleted first.
    pub keep_audio_max_files: usize,
    /// Bytes of clips (WAV and JSON) kept at most; the oldest are deleted first.
    pub keep_audio_max_bytes: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            keep_audio: PathBuf::new(),
            keep_audio_max_files: 1000,
            keep_audio_max_bytes: 100_000_000,
        }
    }
}

impl EventsConfig {
    /// Checks the caps.
    fn validate(&self) -> Result<()> {
        if !(1..=1_000_000).contains(&self.keep_audio_max_files) {
            bail!(
                "key `events.keep_audio_max_files`: {} is not between 1 and 1000000",
                self.keep_audio_max_files
            );
        }
        if !(100_000..=1 << 40).contains(&self.keep_audio_max_bytes) {
            bail!(
                "key `events.keep_audio_max_bytes`: {} is not between 100000 and 1099511627776",
                self.keep_audio_max_bytes
            );
        }
        Ok(())
    }
}

/// `hark serve`'s Wyoming server (Home Assistant, wyoming-satellite).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WyomingConfig {
    /// Run the Wyoming server (`false` for a Hermes-only `hark serve`).
    pub enabled: bool,
    /// Where to listen: `tcp://HOST:PORT`.
    pub uri: String,
    /// Connections served at once; more are refused with an `error` event.
    pub max_connections: usize,
    /// Seconds a client may send nothing before it is closed.
    pub idle_timeout: f32,
    /// Announce the server over zeroconf (mDNS) as `_wyoming._tcp`.
    pub zeroconf: bool,
}

impl Default for WyomingConfig {
    fn default() -> Self {
        WyomingConfig {
            enabled: true,
            uri: "tcp://127.0.0.1:10400".into(),
            max_connections: 64,
            idle_timeout: 60.0,
            zeroconf: false,
        }
    }
}

/// The `HOST:PORT` of a `tcp://HOST:PORT` URI (`key` names where it came from in the error).
pub fn tcp_address(uri: &str, key: &str) -> Result<String> {
    let hostport = uri.strip_prefix("tcp://").unwrap_or_default();
    let port = hostport
        .rsplit_once(':')
        .map(|(h, p)| (h, p.parse::<u16>()));
    match port {
        Some((host, Ok(_))) if !host.is_empty() && !hostport.contains('/') => Ok(hostport.into()),
        _ => bail!("{key}: {uri:?} is not a URI like tcp://127.0.0.1:10400"),
    }
}

/// The Unix socket that clients read events from.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SocketConfig {
    /// Socket path; empty = `$XDG_RUNTIME_DIR/hark.sock`, else `/tmp/hark-<uid>.sock`.
    pub path: PathBuf,
    /// File mode of the socket, octal as a string.
    pub mode: String,
    /// Set false to run without a socket.
    pub enabled: bool,
}

/// A command run for each event, without a shell.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HookConfig {
    /// Program and arguments, e.g. `["notify-send", "hark"]`; empty = no hook. The event is in
    /// the environment: HARK_WORD, HARK_SCORE, HARK_TIME, HARK_EVENT (the JSON line).
    pub command: Vec<String>,
    /// Seconds a hook may run before it (and what it started) is killed.
    pub timeout: f32,
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            command: Vec::new(),
            timeout: 30.0,
        }
    }
}

/// The MQTT broker that Hermes (Rhasspy) audio and hotword events go through.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://[USER:PASS@]HOST:PORT`; empty = no MQTT.
    pub uri: String,
    /// The site ids heard; empty = every site (up to `max_sites`).
    pub sites: Vec<String>,
    /// The most sites heard at once when `sites` is empty.
    pub max_sites: usize,
    /// User name and password, when the URI has none.
    pub username: String,
    pub password: String,
    /// `hark listen`: the site id its own microphone's detections are published for.
    pub site_id: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            uri: String::new(),
            sites: Vec::new(),
            max_sites: crate::hermes::MAX_SITES,
            username: String::new(),
            password: String::new(),
            site_id: "default".into(),
        }
    }
}

/// Can `s` be a Hermes site id (and so part of a topic)?
fn is_site_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.contains(['/', '+', '#']) && !s.contains(char::is_control)
}

impl MqttConfig {
    /// The Hermes front end's options; `None` when no broker is configured.
    pub fn hermes(&self) -> Result<Option<crate::hermes::HermesOptions>> {
        use crate::hermes::{Broker, HermesOptions};
        if self.uri.is_empty() {
            if !self.username.is_empty() || !self.sites.is_empty() {
                bail!("key `mqtt.uri`: empty, but other `mqtt` keys are set (give the broker)");
            }
            return Ok(None);
        }
        let broker =
            Broker::parse(&self.uri, &self.username, &self.password).context("key `mqtt.uri`")?;
        if !(1..=4096).contains(&self.max_sites) {
            bail!(
                "key `mqtt.max_sites`: {} is not between 1 and 4096",
                self.max_sites
            );
        }
        for s in &self.sites {
            if !is_site_id(s) {
                bail!("key `mqtt.sites`: {s:?} is not a site id (1-128 characters, no / + #)");
            }
        }
        if !is_site_id(&self.site_id) {
            bail!(
                "key `mqtt.site_id`: {:?} is not a site id (1-128 characters, no / + #)",
                self.site_id
            );
        }
        let mut o = HermesOptions::new(broker);
        o.sites = self.sites.clone();
        o.max_sites = self.max_sites;
        Ok(Some(o))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            device: String::new(),
            head: PathBuf::from("models/hark.head"),
            models_dir: PathBuf::new(),
            thresholds: BTreeMap::new(),
            refractory: 0.0,
            socket: SocketConfig::default(),
            hook: HookConfig::default(),
            mqtt: MqttConfig::default(),
            log_level: "info".into(),
            quiet_gate: true,
            word_check: true,
            wyoming: WyomingConfig::default(),
            events: EventsConfig::default(),
        }
    }
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            path: PathBuf::new(),
            mode: "0600".into(),
            enabled: true,
        }
    }
}

impl Config {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("{origin}: {}", printable(&format!("{e:#}"))))?;
        Ok(cfg)
    }

    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Checks values that the types alone do not.
    pub fn validate(&self) -> Result<()> {
        for (w, t) in &self.thresholds {
            if w.is_empty() || w.contains(char::is_control) {
                bail!("key `thresholds`: {w:?} is not a word (empty, or control characters)");
            }
            if !(0.0..=1.0).contains(t) {
                bail!("key `thresholds.{w}`: {t} is not a score between 0 and 1");
            }
        }
        if !(0.0..=60.0).contains(&self.refractory) {
            bail!(
                "key `refractory`: {} is not between 0 and 60 seconds",
                self.refractory
            );
        }
        self.socket_mode()?;
        self.mqtt.hermes()?;
        if !["error", "warn", "info", "debug"].contains(&self.log_level.as_str()) {
            bail!(
                "key `log_level`: {:?} is not one of error, warn, info, debug",
                self.log_level
            );
        }
        if self.hook.command.first().is_some_and(|c| c.is_empty()) {
            bail!("key `hook.command`: the program name is empty");
        }
        if !(self.hook.timeout > 0.0 && self.hook.timeout <= 3600.0) {
            bail!(
                "key `hook.timeout`: {} is not between 0 and 3600 seconds",
                self.hook.timeout
            );
        }
        self.events.validate()?;
        self.validate_wyoming()
    }

    /// Checks the `[wyoming]` section.
    fn validate_wyoming(&self) -> Result<()> {
        let w = &self.wyoming;
        tcp_address(&w.uri, "key `wyoming.uri`")?;
        if !(1..=100_000).contains(&w.max_connections) {
            bail!(
                "key `wyoming.max_connections`: {} is not between 1 and 100000",
                w.max_connections
            );
        }
        if !(1.0..=86_400.0).contains(&w.idle_timeout) {
            bail!(
                "key `wyoming.idle_timeout`: {} is not between 1 and 86400 seconds",
                w.idle_timeout
            );
        }
        Ok(())
    }

    /// The socket's file mode.
    pub fn socket_mode(&self) -> Result<u32> {
        let m = u32::from_str_radix(self.socket.mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .with_context(|| {
                format!(
                    "key `socket.mode`: {:?} is not an octal file mode like \"0600\"",
                    self.socket.mode
                )
            })?;
        Ok(m)
    }

    /// The socket path, with the default filled in.
    pub fn socket_path(&self) -> PathBuf {
        if !self.socket.path.as_os_str().is_empty() {
            return self.socket.path.clone();
        }
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d).join("hark.sock"),
            _ => PathBuf::from(format!("/tmp/hark-{}.sock", unsafe { libc::getuid() })),
        }
    }
}

/// A TOML error as one line (see [`hark::util::toml_error_line`]).
fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let line = hark::util::toml_error_line(origin, text, e);
    anyhow::anyhow!("{}", printable(&line))
}

/// `s` with every control character (a lone `\r`, an escape sequence...) written as its Rust
/// escape, so that an error stays one line and sends nothing raw to the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_config_file_parses_to_the_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/hark.toml"))
                .unwrap();
        assert_eq!(
            Config::parse(&text, "config/hark.toml").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_keys_wrong_types_and_bad_values_name_the_key_and_line() {
        let e = Config::parse("device = \"\"\nthreshold = 0.5\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f.toml") && e.contains("line 2") && e.contains("threshold"),
            "{e}"
        );
        let e = Config::parse("refractory = \"long\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 1") && e.contains("refractory") && e.contains("f32"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            Config::parse("[socket]\nmode = \"rw\"\n", "f.toml").unwrap_err()
        );
        assert!(e.contains("socket.mode") && e.contains("octal"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[thresholds]\nlantern = 1.5\n", "f.toml").unwrap_err()
        );
        assert!(e.contains("thresholds.lantern") && e.contains("1.5"), "{e}");
    }

    #[test]
    fn the_mqtt_section_gives_the_broker_and_its_login() {
        let c = Config::parse(
            "[mqtt]\nuri = \"mqtt://rhasspy:s3cret@10.0.0.2:1884\"\nsites = [\"kitchen\"]\n",
            "f.toml",
        )
        .unwrap();
        let o = c.mqtt.hermes().unwrap().unwrap();
        assert_eq!(o.broker.address(), "10.0.0.2:1884");
        assert_eq!(o.broker.username.as_deref(), Some("rhasspy"));
        assert_eq!(o.broker.password.as_deref(), Some("s3cret"));
        assert_eq!(o.sites, ["kitchen"]);
        let c = Config::parse(
            "[mqtt]\nuri = \"mqtt://broker\"\nusername = \"u\"\npassword = \"p\"\n",
            "f.toml",
        )
        .unwrap();
        let b = c.mqtt.hermes().unwrap().unwrap().broker;
        assert_eq!(
            (b.port, b.username, b.password),
            (1883, Some("u".into()), Some("p".into()))
        );
        for (text, says) in [
            ("uri = \"http://broker\"", "must start with mqtt://"),
            ("uri = \"mqtt://broker:99999\"", "port \"99999\""),
            ("uri = \"mqtt://:1883\"", "no valid host"),
            ("uri = \"mqtt://a:b@h\"\nusername = \"u\"", "both here"),
            ("uri = \"mqtt://h\"\nsites = [\"a/b\"]", "mqtt.sites"),
            ("sites = [\"a\"]", "mqtt.uri"),
        ] {
            let e = format!(
                "{:#}",
                Config::parse(&format!("[mqtt]\n{text}\n"), "f.toml").unwrap_err()
            );
            assert!(e.contains("f.toml") && e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn the_wyoming_section_is_checked() {
        for (text, key) in [
            ("uri = \"http://x:1\"", "wyoming.uri"),
            ("uri = \"tcp://x\"", "wyoming.uri"),
            ("uri = \"tcp://:10400\"", "wyoming.uri"),
            ("uri = \"tcp://x:70000\"", "wyoming.uri"),
            ("max_connections = 0", "wyoming.max_connections"),
            ("idle_timeout = 0.5", "wyoming.idle_timeout"),
        ] {
            let e = format!(
                "{:#}",
                Config::parse(&format!("[wyoming]\n{text}\n"), "f.toml").unwrap_err()
            );
            assert!(e.contains(key) && e.contains("f.toml"), "{text}: {e}");
        }
        let c = Config::parse("[wyoming]\nuri = \"tcp://[::1]:10500\"\n", "f.toml").unwrap();
        assert_eq!(tcp_address(&c.wyoming.uri, "k").unwrap(), "[::1]:10500");
    }

    #[test]
    fn toml_errors_are_one_line_with_the_file_line_and_source() {
        for text in [
            "device = 3\n",
            "[socket]\nmode = 600\nbogus = 1\n",
            "x = \n",
            // Found by the config fuzz target: a lone carriage return inside the quoted line.
            "[socket]\npatte that\rsends audio\n",
            "\"\\u001b[31mred\" = 1\n",
        ] {
            let e = format!("{:#}", Config::parse(text, "h.toml").unwrap_err());
            assert!(
                !e.contains(char::is_control),
                "one line, nothing raw: {e:?}"
            );
            assert!(e.starts_with("h.toml: line ") && e.contains("(`"), "{e}");
        }
    }

    #[test]
    fn values_with_control_characters_give_one_line_errors_that_escape_them() {
        for (text, says) in [
            ("[thresholds]\n\"a\\nb\" = 0.5\n", "\"a\\nb\" is not a word"),
            ("[thresholds]\n\"\" = 0.5\n", "\"\" is not a word"),
            (
                "log_level = \"\\u001b[2J\"\n",
                "\"\\u{1b}[2J\" is not one of",
            ),
            ("[socket]\nmode = \"6\\r0\"\n", "socket.mode"),
        ] {
            let e = format!("{:#}", Config::parse(text, "h.toml").unwrap_err());
            assert!(
                !e.contains(char::is_control),
                "one line, nothing raw: {e:?}"
            );
            assert!(
                e.starts_with("h.toml: key `") && e.contains(says),
                "{text:?}: {e}"
            );
        }
    }
}
