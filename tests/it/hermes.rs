//! `hark listen` publishing its own detections to a real MQTT broker (Debian's mosquitto,
//! started here on a free loopback port) as Rhasspy's Hermes hotword events.

use crate::common::{hark_bin, root, write_wav};
use hark::audio::synth;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A broker of our own, killed on drop.
struct Mosquitto(Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mosquitto(dir: &std::path::Path) -> (Mosquitto, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (run .ci/setup)");
    let m = Mosquitto(child);
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "mosquitto did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (m, port)
}

#[test]
fn listen_publishes_its_detections_as_hermes_hotword_events_for_its_site() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_broker, port) = mosquitto(dir);
    let rec = dir.join("rec");
    synth::write_recordings(&rec, synth::VOICE).unwrap();
    let head = dir.join("h.head");
    crate::common::train_head(&rec, &head, &[]);
    let (stream, _) = synth::stream(synth::VOICE, 1).unwrap();
    let wav = dir.join("stream.wav");
    write_wav(&wav, &stream);
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-v",
            "-t",
            "hermes/hotword/#",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    std::thread::sleep(Duration::from_millis(300));
    let cfg = dir.join("hark.toml");
    std::fs::write(
        &cfg,
        format!("[socket]\nenabled = false\n[mqtt]\nuri = \"mqtt://127.0.0.1:{port}\"\nsite_id = \"kitchen\"\n"),
    )
    .unwrap();
    let out = Command::new(hark_bin())
        .args(["listen", "--config", cfg.to_str().unwrap()])
        .args(["--head", head.to_str().unwrap()])
        .args(["--input", wav.to_str().unwrap(), "--realtime"])
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!events.is_empty(), "the stream fires: {stderr}");
    std::thread::sleep(Duration::from_millis(500));
    let _ = sub.kill();
    let _ = sub.wait();
    let lines: Vec<String> = BufReader::new(sub.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    assert_eq!(
        lines.len(),
        events.len(),
        "one hotword message per event: {lines:?}"
    );
    for (line, e) in lines.iter().zip(&events) {
        let (topic, payload) = line.split_once(' ').unwrap();
        let word = e["word"].as_str().unwrap();
        assert_eq!(topic, format!("hermes/hotword/{word}/detected"));
        let p: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(p["siteId"], "kitchen");
        assert_eq!(p["modelId"], word);
        assert_eq!(p["modelType"], "personal");
        assert!(p["sessionId"].is_null());
    }
}
