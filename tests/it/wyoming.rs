//! `hark serve` over Wyoming, driven by the real PyPI `wyoming` 1.10.2 client (installed by
//! `.ci/setup` into target/venv-wyoming; the script is tests/it/wyoming_client.py) as Home
//! Assistant and wyoming-satellite drive it, and by raw sockets that misbehave.

use crate::common::{self, hark_bin, root};
use hark::audio::synth;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// This module's scratch folder.
pub(crate) fn scratch() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wyoming");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A head on all three demo words, and one on violin alone; trained once for the module.
pub(crate) fn heads() -> &'static (PathBuf, PathBuf) {
    static HEADS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    HEADS.get_or_init(|| {
        let d = scratch();
        let rec = d.join("recordings");
        synth::write_recordings(&rec, synth::VOICE).unwrap();
        let all = d.join("all.head");
        common::train_head(&rec, &all, &[]);
        let only = d.join("rec-violin");
        for w in ["violin", hark::train::dataset::BACKGROUND] {
            std::fs::create_dir_all(only.join(w)).unwrap();
            for e in std::fs::read_dir(rec.join(w)).unwrap() {
                let p = e.unwrap().path();
                std::fs::copy(&p, only.join(w).join(p.file_name().unwrap())).unwrap();
            }
        }
        let violin = d.join("violin.head");
        common::train_head(&only, &violin, &[]);
        (all, violin)
    })
}

/// Speech of `words` over faint noise (1 s before, 1.5 s after each), as 16 kHz s16le in a raw
/// file; returns it and each word's (start, end) in ms.
pub(crate) fn speech(name: &str, words: &[&str]) -> (PathBuf, Vec<(u64, u64)>) {
    let mut x = synth::noise(1.0, 60.0, 3);
    let mut spans = Vec::new();
    for w in words {
        let s = common::say(w, synth::VOICE, 152, 47);
        let s = hark::train::dataset::trim(&s).unwrap_or(s);
        let start = x.len() as u64 / 16;
        x.extend_from_slice(&s);
        spans.push((start, x.len() as u64 / 16));
        x.extend(synth::noise(1.5, 60.0, 4));
    }
    let bytes: Vec<u8> = x
        .iter()
        .flat_map(|v| (v.clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect();
    let path = scratch().join(format!("{name}.raw"));
    std::fs::write(&path, bytes).unwrap();
    (path, spans)
}

/// A running `hark serve` on a free loopback port, killed when dropped.
pub(crate) struct Serve {
    child: Child,
    pub(crate) port: u16,
    pub(crate) log: PathBuf,
}

impl Serve {
    /// Starts `hark serve --head head` with `[wyoming]` keys `extra`; waits until it listens.
    pub(crate) fn start(name: &str, head: &Path, extra: &str) -> Serve {
        Serve::start_with(name, head, extra, &[])
    }

    /// As [`Serve::start`], with more command-line arguments.
    pub(crate) fn start_with(name: &str, head: &Path, extra: &str, args: &[&str]) -> Serve {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = scratch();
        let cfg = d.join(format!("{name}.toml"));
        let uri = format!("tcp://127.0.0.1:{port}");
        std::fs::write(&cfg, format!("[wyoming]\nuri = \"{uri}\"\n{extra}")).unwrap();
        let log = d.join(format!("{name}.log"));
        let child = Command::new(hark_bin())
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .args(["--head", head.to_str().unwrap()])
            .args(args)
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "hark serve did not listen: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Serve { child, port, log }
    }

    pub(crate) fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM; asserts it exits 0; returns its stderr.
    pub(crate) fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        let text = std::fs::read_to_string(&self.log).unwrap();
        assert!(status.success(), "SIGTERM exits 0: {text}");
        text
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the Python client; returns the JSON lines it printed.
fn client(args: &[&str]) -> Vec<Value> {
    let python = root().join("target/venv-wyoming/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run .ci/setup",
        python.display()
    );
    let out = Command::new(python)
        .arg(root().join("tests/it/wyoming_client.py"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wyoming client {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The words an `info` lists, through `Info.from_event`.
pub(crate) fn described_words(port: u16) -> Vec<String> {
    let info = &client(&["describe", &port.to_string()])[0];
    assert_eq!(info["program"], "hark");
    assert_eq!(info["installed"], true, "{info}");
    assert_eq!(info["words"], info["phrases"], "stable phrases: {info}");
    serde_json::from_value(info["words"].clone()).unwrap()
}

/// The (name, timestamp) of each detection among `events`.
fn detections(events: &[Value]) -> Vec<(String, u64)> {
    events
        .iter()
        .filter(|e| e["type"] == "detection")
        .map(|e| {
            let d = &e["data"];
            (
                d["name"].as_str().unwrap().to_string(),
                d["timestamp"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Asserts one detection of `word` within the span (at most 1.5 s after its end).
fn assert_detected(events: &[Value], word: &str, span: (u64, u64)) {
    let d = detections(events);
    assert_eq!(d.len(), 1, "one detection: {events:?}");
    assert_eq!(d[0].0, word, "{events:?}");
    assert!(
        d[0].1 > span.0 && d[0].1 < span.1 + 1500,
        "timestamp {} ms for the word at {span:?} ms",
        d[0].1
    );
}

#[test]
fn describe_and_home_assistant_runs_detect_the_asked_word_or_say_not_detected() {
    let s = Serve::start("ha", &heads().0, "");
    let port = s.port.to_string();
    assert_eq!(described_words(s.port), synth::WORDS);
    let (lantern, spans) = speech("lantern", &["lantern"]);
    let events = client(&["ha", &port, lantern.to_str().unwrap(), "lantern", "4"]);
    assert_detected(&events, "lantern", spans[0]);
    // The same at 48 kHz, 32-bit, stereo: converted to 16 kHz mono.
    let args = [
        "ha",
        &port,
        lantern.to_str().unwrap(),
        "lantern",
        "4",
        "48000x4x2",
    ];
    assert_detected(&client(&args), "lantern", spans[0]);
    // Another word asked for: the same audio gives nothing, and audio-stop -> not-detected.
    let events = client(&["stop", &port, lantern.to_str().unwrap(), "violin", "4"]);
    assert!(detections(&events).is_empty(), "{events:?}");
    assert_eq!(events[0]["type"], "not-detected", "{events:?}");
    let (other, _) = speech("other", &["pancake", "helicopter"]);
    let events = client(&["stop", &port, other.to_str().unwrap(), "-", "4"]);
    assert_eq!(events[0]["type"], "not-detected", "{events:?}");
    let log = s.stop();
    assert!(
        log.contains("stopped after") && log.contains("2 detection(s)"),
        "{log}"
    );
}

#[test]
fn twenty_home_assistant_connections_at_once_all_get_their_detection() {
    let s = Serve::start("twenty", &heads().0, "");
    let port = s.port.to_string();
    let (lantern, spans) = speech("twenty", &["lantern"]);
    let runs: Vec<_> = (0..20)
        .map(|_| {
            let (port, audio) = (port.clone(), lantern.clone());
            std::thread::spawn(move || client(&["ha", &port, audio.to_str().unwrap(), "lantern"]))
        })
        .collect();
    for r in runs {
        assert_detected(&r.join().unwrap(), "lantern", spans[0]);
    }
    let log = s.stop();
    // 21 connections: the 20 clients and the probe that waited for the port
    assert!(log.contains("21 connection(s), 20 detection(s)"), "{log}");
}

#[test]
fn wyoming_satellite_style_one_connection_two_detections_without_audio_start() {
    let s = Serve::start("satellite", &heads().0, "");
    let port = s.port.to_string();
    let (audio, _) = speech("satellite", &["lantern", "pancake", "violin"]);
    let events = client(&["satellite", &port, audio.to_str().unwrap(), "-", "3"]);
    let words: Vec<String> = detections(&events).into_iter().map(|d| d.0).collect();
    assert!(
        words.len() >= 2 && words[0] == "lantern" && words.contains(&"violin".to_string()),
        "lantern then violin on one connection: {events:?}"
    );
    s.stop();
}

/// Sends `bytes` on a new connection; returns the first event's header and data (or None if
/// the server closed without one), and whether the server closed the connection after it.
fn raw(port: u16, bytes: &[u8]) -> (Option<Value>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut r = BufReader::new(s);
    let event = read_one(&mut r);
    let mut rest = Vec::new();
    let closed = r.read_to_end(&mut rest).is_ok();
    (event, closed)
}

/// One event from a raw connection: its header with the data block as `data`.
fn read_one(r: &mut impl BufRead) -> Option<Value> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut header: Value = serde_json::from_str(&line).unwrap();
    let n = header["data_length"].as_u64().unwrap_or(0) as usize;
    let mut data = vec![0; n];
    r.read_exact(&mut data).unwrap();
    header["data"] = serde_json::from_slice(&data).unwrap_or(Value::Null);
    Some(header)
}

#[test]
fn bad_frames_get_an_error_and_close_while_a_good_client_still_detects() {
    let s = Serve::start("bad", &heads().0, "idle_timeout = 2.0\n");
    let port = s.port;
    let (lantern, spans) = speech("bad", &["lantern"]);
    let p = port.to_string();
    let good =
        std::thread::spawn(move || client(&["ha", &p, lantern.to_str().unwrap(), "lantern"]));
    // A client that stalls inside a frame, and one that vanishes mid-chunk.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stalled
        .write_all(b"{\"type\":\"audio-chunk\",\"payload_length\":")
        .unwrap();
    let mut vanished = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let chunk = b"{\"type\":\"audio-chunk\",\"data\":{\"rate\":16000,\"width\":2,\"channels\":1},\"payload_length\":3200}\n";
    vanished.write_all(chunk).unwrap();
    vanished.write_all(&[0; 100]).unwrap();
    drop(vanished);
    for (bytes, code) in [
        (vec![b'x'; 70_000], "header-too-long"),
        (
            b"{\"type\":\"a\",\"data_length\":1000000}\n".to_vec(),
            "data-too-long",
        ),
        (
            b"{\"type\":\"a\",\"payload_length\":5000000}\n".to_vec(),
            "payload-too-long",
        ),
        (b"this is not json\n".to_vec(), "bad-header"),
        (
            b"{\"type\":\"a\",\"data_length\":3}\n[1]".to_vec(),
            "bad-data",
        ),
    ] {
        let (event, closed) = raw(port, &bytes);
        let e = event.unwrap_or_else(|| panic!("no error event for {code}"));
        assert_eq!(
            (e["type"].as_str(), e["data"]["code"].as_str()),
            (Some("error"), Some(code))
        );
        assert!(
            e["data"]["text"].as_str().is_some_and(|t| t.len() > 10),
            "{e}"
        );
        assert!(closed, "{code}: the connection closes");
    }
    // Bad content in a good frame: an error, and the connection goes on.
    let mut ok = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ok.write_all(b"{\"type\":\"audio-chunk\",\"data\":{\"rate\":16000,\"width\":7,\"channels\":1},\"payload_length\":7}\n1234567{\"type\":\"ping\",\"data\":{\"text\":\"still\"}}\n").unwrap();
    let mut r = BufReader::new(ok.try_clone().unwrap());
    assert_eq!(read_one(&mut r).unwrap()["type"], "error");
    let pong = read_one(&mut r).unwrap();
    assert_eq!(
        (pong["type"].as_str(), pong["data"]["text"].as_str()),
        (Some("pong"), Some("still"))
    );
    assert_detected(&good.join().unwrap(), "lantern", spans[0]);
    // The stalled client is closed after the idle timeout (2 s).
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    assert!(
        matches!(stalled.read(&mut [0; 64]), Ok(0)),
        "idle client closed"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    let log = s.stop();
    assert!(
        log.contains("idle for 2 s") && log.contains("header line longer"),
        "{log}"
    );
}

#[test]
fn beyond_the_maximum_of_connections_a_client_gets_an_error() {
    let s = Serve::start("max", &heads().0, "max_connections = 2\n");
    let ping = b"{\"type\":\"ping\",\"data\":{\"text\":\"a\"}}\n";
    let held: Vec<BufReader<TcpStream>> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
            c.write_all(ping).unwrap();
            let mut r = BufReader::new(c);
            assert_eq!(read_one(&mut r).unwrap()["type"], "pong");
            r
        })
        .collect();
    let (e, closed) = raw(s.port, b"");
    assert_eq!(e.unwrap()["data"]["code"], "too-many-connections");
    assert!(closed);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let (e, _) = raw(s.port, ping);
    assert_eq!(
        e.unwrap()["type"],
        "pong",
        "room again once the others closed"
    );
    let log = s.stop();
    assert!(log.contains("1 refused"), "{log}");
}

#[test]
fn sighup_reloads_the_words_and_keeps_them_on_a_broken_head() {
    let d = scratch();
    let live = d.join("live.head");
    std::fs::copy(&heads().0, &live).unwrap();
    let s = Serve::start("reload", &live, "");
    assert_eq!(described_words(s.port), synth::WORDS);
    std::fs::copy(&heads().1, &live).unwrap();
    s.signal(libc::SIGHUP);
    let t = Instant::now();
    while described_words(s.port) != ["violin"] {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "SIGHUP did not reload"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&live, b"{ broken").unwrap();
    s.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        described_words(s.port),
        ["violin"],
        "a broken head keeps the old one"
    );
    let log = s.stop();
    assert!(
        log.contains("reload failed") && log.contains("live.head"),
        "{log}"
    );
}

#[test]
fn a_client_that_does_not_read_its_answers_is_dropped() {
    let s = Serve::start("deaf", &heads().0, "");
    let mut deaf = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let handle = deaf.try_clone().unwrap();
    // The client's receive buffer stays as the kernel makes it (about 128 kB while nothing is
    // read). Shrunk to 4 kB after the connection was made, it made the test's own side of
    // TCP stall: the server's pongs (which carry its window updates) were dropped, the pings
    // stopped coming, and the server, with its pongs still fitting in its send buffer, waited
    // for input (its idle timeout) instead of timing out a write.
    // Pings (4 kB pongs) and never a read: once the buffers are full the server's write times
    // out (10 s) and the client is dropped.
    let text = "x".repeat(4000);
    let ping = format!("{{\"type\":\"ping\",\"data\":{{\"text\":\"{text}\"}}}}\n").repeat(100);
    let writer = std::thread::spawn(move || while deaf.write_all(ping.as_bytes()).is_ok() {});
    let t = Instant::now();
    while !std::fs::read_to_string(&s.log)
        .unwrap()
        .contains("cannot write")
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the deaf client was not dropped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Others are served all along.
    assert_eq!(described_words(s.port), synth::WORDS);
    let _ = handle.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    let log = s.stop();
    assert!(log.contains("1 dropped"), "{log}");
}

#[test]
fn the_config_thresholds_apply_to_serve_and_a_word_the_head_lacks_is_refused() {
    let d = scratch();
    let cfg = d.join("thresholds.toml");
    std::fs::write(&cfg, "[thresholds]\nmarmalade = 0.5\n").unwrap();
    let head = &heads().0;
    let (code, _, err) = common::hark(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--head",
            head.to_str().unwrap(),
            "--wyoming",
            "tcp://127.0.0.1:1",
        ],
        &root(),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("thresholds.marmalade") && err.contains("has no word"),
        "{err}"
    );
}
