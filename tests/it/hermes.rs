//! Rhasspy's Hermes protocol through the binary, with a real MQTT broker (Debian's mosquitto,
//! started here on a free loopback port; helpers in tests/it/mosquitto.rs): `hark listen`
//! publishing its own detections, and `hark serve --mqtt` hearing a site's audio frames sent
//! with `mosquitto_pub`, obeying toggleOff/toggleOn and reconnecting after the broker is killed
//! and restarted.

use crate::common::{free_port, root, write_wav};
use crate::mosquitto::{publish, Mosquitto, Sub};
use crate::wyoming::{heads, Serve};
use hark::audio::synth;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[test]
fn listen_publishes_its_detections_as_hermes_hotword_events_for_its_site() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let _broker = Mosquitto::start(dir, port);
    let head = &heads().0;
    let wav = crate::common::stream_wav(dir);
    let sub = Sub::start(port, &["hermes/hotword/#"]);
    let cfg = dir.join("hark.toml");
    std::fs::write(
        &cfg,
        format!("[socket]\nenabled = false\n[mqtt]\nuri = \"mqtt://127.0.0.1:{port}\"\nsite_id = \"kitchen\"\n"),
    )
    .unwrap();
    let out = crate::common::listen_realtime(&cfg, head, &wav);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!events.is_empty(), "the stream fires: {stderr}");
    let mut lines = Vec::new();
    while let Some(d) = sub.detection(Duration::from_millis(1500)) {
        lines.push(d);
    }
    assert_eq!(
        lines.len(),
        events.len(),
        "one hotword message per event: {lines:?}"
    );
    for ((topic_word, payload), e) in lines.iter().zip(&events) {
        let word = e["word"].as_str().unwrap();
        assert_eq!(topic_word, word);
        let p: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(p["siteId"], "kitchen");
        assert_eq!(p["modelId"], word);
        assert_eq!(p["modelType"], "personal");
        assert!(p["sessionId"].is_null());
    }
}

/// "lantern" between a second and a second and a half of faint noise, as WAV files of 1024
/// samples each (Hermes audio frames) in `dir`.
fn lantern_frames(dir: &Path) -> Vec<PathBuf> {
    let mut x = synth::noise(1.0, 60.0, 5);
    x.extend(crate::common::say("lantern", synth::VOICE, 150, 45));
    x.extend(synth::noise(1.5, 60.0, 6));
    x.chunks(1024)
        .enumerate()
        .map(|(i, c)| {
            let f = dir.join(format!("frame-{i:03}.wav"));
            write_wav(&f, c);
            f
        })
        .collect()
}

/// `hark serve --mqtt` and what the test sends it.
struct Rhasspy {
    dir: tempfile::TempDir,
    port: u16,
    frames: Vec<PathBuf>,
}

const WAIT: Duration = Duration::from_secs(6);

impl Rhasspy {
    /// Publishes `frames` for `site` with mosquitto_pub, one process per frame.
    fn send(&self, site: &str, frames: &[PathBuf]) {
        let topic = format!("hermes/audioServer/{site}/audioFrame");
        for f in frames {
            publish(self.port, &topic, "", Some(f));
        }
    }

    /// Says "lantern" at `site`; returns the detection that `sub` hears within `wait`.
    fn say(&self, sub: &Sub, site: &str, wait: Duration) -> Option<(String, Value)> {
        self.send(site, &self.frames);
        let (word, p) = sub.detection(wait)?;
        Some((word, serde_json::from_str(&p).unwrap()))
    }

    fn toggle(&self, on: bool, site: &str, reason: &str) {
        let topic = format!("hermes/hotword/toggle{}", if on { "On" } else { "Off" });
        let body = format!(r#"{{"siteId":"{site}","reason":"{reason}"}}"#);
        publish(self.port, &topic, &body, None);
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until hark's log says it connected to the broker `n` times.
fn wait_connected(log: &Path, n: usize, within: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches("MQTT: connected to").count() >= n {
            return t.elapsed();
        }
        assert!(t.elapsed() < within, "not connected {n} time(s): {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts a Hermes hotword payload for lantern at kitchen, with every field Rhasspy reads.
fn assert_hotword(d: Option<(String, Value)>, what: &str) {
    let (word, p) = d.unwrap_or_else(|| panic!("no detection: {what}"));
    assert_eq!(word, "lantern", "{p}");
    assert_eq!(
        (&p["modelId"], &p["siteId"], &p["modelType"]),
        (&"lantern".into(), &"kitchen".into(), &"personal".into()),
        "{p}"
    );
    assert!(
        p["modelVersion"].is_string() && p["currentSensitivity"].is_number(),
        "{p}"
    );
    for k in ["sessionId", "sendAudioCaptured", "lang", "customEntities"] {
        assert!(p.get(k).is_some_and(Value::is_null), "{k}: {p}");
    }
}

#[test]
fn serve_hears_a_sites_frames_obeys_toggles_and_reconnects_after_the_broker_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = Mosquitto::start(dir.path(), port);
    let frames = lantern_frames(dir.path());
    let r = Rhasspy { dir, port, frames };
    let uri = format!("mqtt://127.0.0.1:{port}");
    let s = Serve::start_with(
        "hermes",
        &heads().0,
        "",
        &["--mqtt", &uri, "--site", "kitchen"],
    );
    wait_connected(&s.log, 1, Duration::from_secs(20));
    let sub = Sub::start(port, &["hermes/hotword/+/detected"]);
    assert_hotword(r.say(&sub, "kitchen", WAIT), "kitchen");
    let attic = r.say(&sub, "attic", Duration::from_secs(2));
    assert!(attic.is_none(), "attic is not heard: {attic:?}");
    r.toggle(false, "kitchen", "dialogueSession");
    let quiet = r.say(&sub, "kitchen", Duration::from_secs(3));
    assert!(quiet.is_none(), "toggled off: {quiet:?}");
    r.toggle(true, "kitchen", "");
    assert_hotword(r.say(&sub, "kitchen", WAIT), "toggled on again");
    // Killed (SIGKILL) mid-stream: a third of the word's frames sent, then the broker vanishes.
    r.send("kitchen", &r.frames[..r.frames.len() / 3]);
    drop(sub);
    drop(broker);
    std::thread::sleep(Duration::from_secs(2));
    let _broker = Mosquitto::start(r.dir.path(), port);
    let back = wait_connected(&s.log, 2, Duration::from_secs(40));
    let sub = Sub::start(port, &["hermes/hotword/+/detected"]);
    assert_hotword(r.say(&sub, "kitchen", WAIT), "after the broker restarted");
    eprintln!(
        "hark reconnected {:.1} s after the broker restarted",
        back.as_secs_f32()
    );
    let log = s.stop();
    assert!(log.contains("retrying in"), "{log}");
}

#[test]
fn serve_with_no_wyoming_serves_hermes_alone_and_refuses_to_serve_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(dir.path(), port);
    // The Wyoming port is taken: a Hermes-only server must not try to bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = dir.path().join("hermes-only.toml");
    let wyoming = format!("tcp://{}", taken.local_addr().unwrap());
    std::fs::write(&cfg, format!("[wyoming]\nuri = \"{wyoming}\"\n")).unwrap();
    let head = heads().0.to_str().unwrap();
    let base = ["serve", "--config", cfg.to_str().unwrap(), "--head", head];
    let (code, _, err) = crate::common::hark(&[&base[..], &["--no-wyoming"]].concat(), &root());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nothing to serve"), "{err}");
    let log = dir.path().join("serve.log");
    let uri = format!("mqtt://127.0.0.1:{port}");
    let mut child = std::process::Command::new(crate::common::hark_bin())
        .args(base)
        .args(["--no-wyoming", "--mqtt", &uri, "--site", "kitchen"])
        .current_dir(root())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_connected(&log, 1, Duration::from_secs(20));
    let frames = lantern_frames(dir.path());
    let r = Rhasspy { dir, port, frames };
    let sub = Sub::start(port, &["hermes/hotword/+/detected"]);
    assert_hotword(r.say(&sub, "kitchen", WAIT), "Hermes alone");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "SIGTERM exits 0: {text}");
    assert!(!text.contains("wyoming: listening"), "{text}");
}
