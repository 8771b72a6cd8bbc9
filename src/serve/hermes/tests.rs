//! The Hermes front end end to end, with Debian's mosquitto started here on a free loopback
//! port, `mosquitto_sub`/`mosquitto_pub` as Rhasspy's side and a second rumqttc client as the
//! satellite's audio server. A unit test: it drives the front end in this process, so it can
//! kill and restart the broker under it and check each rule on its own.

use super::*;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Instant;

use crate::hermes::{wav, Broker};
use hark::audio::synth;
use messages::Detected;

/// The broker and its clients, shared with the integration tests.
#[path = "../../../tests/it/mosquitto.rs"]
mod mosquitto;
use mosquitto::{publish, Mosquitto, Sub};

/// `mosquitto_sub` on hark's output topics.
fn subscribe(port: u16) -> Sub {
    let topics = [
        "hermes/hotword/+/detected",
        messages::HOTWORDS,
        messages::ERROR,
    ];
    Sub::start(port, &topics)
}

/// `mosquitto_pub` one message.
fn pub_(port: u16, topic: &str, message: &str) {
    publish(port, topic, message, None)
}

/// The next message on `topic` (others skipped), if one comes within `wait`.
fn next(sub: &Sub, topic: &str, wait: Duration) -> Option<String> {
    sub.next_where(|t| t == topic, wait).map(|(_, p)| p)
}

/// The next detection of any word, if one comes within `wait`.
fn detection(sub: &Sub, wait: Duration) -> Option<Detected> {
    let (word, p) = sub.detection(wait)?;
    let d: Detected = serde_json::from_str(&p).unwrap();
    assert_eq!(word, d.model_id);
    Some(d)
}

/// The satellite's audio server: a rumqttc client that keeps reconnecting.
fn audio_server(port: u16) -> Client {
    let (client, mut conn) = Client::new(MqttOptions::new("test-audio", "127.0.0.1", port), 256);
    std::thread::spawn(move || {
        for e in conn.iter() {
            if e.is_err() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    client
}

/// Sends `x` (16 kHz) as 512-sample WAV frames for `site`, at 4 times real time.
fn send(client: &Client, site: &str, x: &[f32]) {
    for c in x.chunks(512) {
        let s: Vec<i16> = c
            .iter()
            .map(|v| v.clamp(-32768.0, 32767.0) as i16)
            .collect();
        client
            .publish(
                messages::audio_frame(site),
                QoS::AtMostOnce,
                false,
                wav::encode_16(&s, 16000, 1),
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(8));
    }
}

/// An engine with a head trained on the demo's recordings.
fn engine() -> Arc<Engine> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let assets =
        hark::assets::Assets::locate(Some(&root.join("models"))).expect("models/ (run .ci/setup)");
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("recordings");
    synth::write_recordings(&rec, synth::VOICE).unwrap();
    let ds = hark::train::dataset::Dataset::load(&rec).unwrap();
    let mut emb = hark::pipeline::embedding::Embedder::load(&assets).unwrap();
    let opts = hark::train::TrainOptions {
        cross_validate: false,
        ..Default::default()
    };
    let head = hark::train::train(&mut emb, &ds, None, &opts, &|_, _| {}).unwrap();
    let settings = head.detector.clone();
    Arc::new(Engine::new(assets, Arc::new(head), settings))
}

/// "lantern" between a second and a half of faint noise.
fn lantern() -> Vec<f32> {
    let mut x = synth::noise(1.0, 60.0, 1);
    x.extend(synth::say("lantern", synth::VOICE, 150, 45).unwrap());
    x.extend(synth::noise(1.5, 60.0, 2));
    x
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Everything a phase of the test uses.
struct Fixture {
    dir: tempfile::TempDir,
    port: u16,
    broker: Option<Mosquitto>,
    sub: Option<Sub>,
    audio: Client,
    clip: Vec<f32>,
}

const WAIT: Duration = Duration::from_secs(5);

impl Fixture {
    fn sub(&self) -> &Sub {
        self.sub.as_ref().unwrap()
    }

    /// Sends the clip for `site`; returns the detection that follows, if any within `wait`.
    fn say(&self, site: &str, wait: Duration) -> Option<Detected> {
        send(&self.audio, site, &self.clip);
        detection(self.sub(), wait)
    }

    /// Publishes a toggle and gives hark a moment to take it in.
    fn toggle(&self, topic: &str, site: &str, reason: &str) {
        let body = format!(r#"{{"siteId":"{site}","reason":"{reason}"}}"#);
        pub_(self.port, topic, &body);
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn rhasspy_over_mosquitto_frames_toggles_hotwords_and_a_broker_restart() {
    if !mosquitto::installed() {
        eprintln!(
            "SKIPPED: Debian's mosquitto and mosquitto-clients are not installed (run .ci/setup)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = Some(Mosquitto::start(dir.path(), port));
    let sub = Some(subscribe(port));
    let stop = Arc::new(AtomicBool::new(false));
    let uri = format!("mqtt://127.0.0.1:{port}");
    let mut opts = HermesOptions::new(Broker::parse(&uri, "", "").unwrap());
    opts.sites = vec!["kitchen".into(), "porch".into()];
    let hermes = start(engine(), opts, stop.clone(), Log::new("debug")).unwrap();
    let mut f = Fixture {
        dir,
        port,
        broker,
        sub,
        audio: audio_server(port),
        clip: lantern(),
    };
    frames_for_a_site_are_detected_with_its_site_id(&f);
    hotwords_are_the_heads_words(&f);
    toggles_silence_and_restore_a_site(&f);
    a_bad_frame_is_reported(&f);
    a_broker_restart_is_survived(&mut f);
    stop.store(true, Ordering::SeqCst);
    let t = Instant::now();
    hermes.join();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stopping took {:?}",
        t.elapsed()
    );
}

fn frames_for_a_site_are_detected_with_its_site_id(f: &Fixture) {
    // Each site's first frame starts its stream: give that a moment, as a real-time sender does.
    for site in ["kitchen", "porch"] {
        send(&f.audio, site, &synth::noise(0.3, 60.0, 3));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        f.say("attic", Duration::from_secs(2)).is_none(),
        "attic is not served"
    );
    let d = f.say("kitchen", WAIT).expect("no detection for kitchen");
    assert_eq!(
        (
            d.model_id.as_str(),
            d.site_id.as_str(),
            d.model_type.as_str()
        ),
        ("lantern", "kitchen", "personal")
    );
    assert!(d.session_id.is_none() && d.lang.is_none());
    assert!(
        detection(f.sub(), Duration::from_secs(1)).is_none(),
        "one word, one detection"
    );
}

fn hotwords_are_the_heads_words(f: &Fixture) {
    pub_(
        f.port,
        messages::GET_HOTWORDS,
        r#"{"siteId":"kitchen","id":"q1"}"#,
    );
    let h = next(f.sub(), messages::HOTWORDS, WAIT).expect("no hotwords");
    let h: Hotwords = serde_json::from_str(&h).unwrap();
    let words: Vec<&str> = h.models.iter().map(|m| m.model_id.as_str()).collect();
    assert_eq!(words, synth::WORDS.to_vec());
    assert_eq!(
        (h.site_id.as_str(), h.id.as_deref()),
        ("kitchen", Some("q1"))
    );
}

fn toggles_silence_and_restore_a_site(f: &Fixture) {
    f.toggle(messages::TOGGLE_OFF, "kitchen", "dialogueSession");
    f.toggle(messages::TOGGLE_OFF, "kitchen", "ttsSay");
    f.toggle(messages::TOGGLE_ON, "porch", "");
    let quiet = Duration::from_secs(3);
    assert!(f.say("kitchen", quiet).is_none(), "kitchen is toggled off");
    f.toggle(messages::TOGGLE_ON, "kitchen", "ttsSay");
    assert!(
        f.say("kitchen", quiet).is_none(),
        "dialogueSession is still pending"
    );
    let d = f.say("porch", WAIT).expect("porch was never off");
    assert_eq!(d.site_id, "porch");
    f.toggle(messages::TOGGLE_ON, "kitchen", "dialogueSession");
    let d = f.say("kitchen", WAIT).expect("kitchen is back on");
    assert_eq!(d.site_id, "kitchen");
}

fn a_bad_frame_is_reported(f: &Fixture) {
    let topic = messages::audio_frame("kitchen");
    f.audio
        .publish(topic, QoS::AtMostOnce, false, b"RIFF\0\0".to_vec())
        .unwrap();
    let e = next(f.sub(), messages::ERROR, WAIT).expect("no error for a bad frame");
    assert!(
        e.contains("shorter than a RIFF header") && e.contains("kitchen"),
        "{e}"
    );
}

fn a_broker_restart_is_survived(f: &mut Fixture) {
    send(&f.audio, "kitchen", &f.clip[..f.clip.len() / 3]);
    f.sub = None;
    f.broker = None;
    f.broker = Some(Mosquitto::start(f.dir.path(), f.port));
    f.sub = Some(subscribe(f.port));
    let t = Instant::now();
    let d = loop {
        if let Some(d) = f.say("kitchen", Duration::from_secs(3)) {
            break d;
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "no detection after the broker restarted"
        );
    };
    assert_eq!(d.site_id, "kitchen");
    eprintln!(
        "detected again {:.1} s after the broker restarted",
        t.elapsed().as_secs_f32()
    );
}
