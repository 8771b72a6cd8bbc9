//! Debian's mosquitto and its clients for the Hermes tests: a broker started on a loopback port
//! (killed on drop), `mosquitto_sub` as a line channel, `mosquitto_pub`. Shared by
//! tests/it/hermes.rs and, through `#[path]`, the unit test src/serve/hermes/tests.rs.

use crossbeam_channel::{unbounded, Receiver};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Whether the broker and its clients are installed (`.ci/setup` installs them); the unit test
/// skips without them, the integration tests fail.
#[allow(dead_code)]
pub fn installed() -> bool {
    Path::new(MOSQUITTO).exists() && Command::new("mosquitto_sub").arg("--help").output().is_ok()
}

/// A mosquitto broker of our own, killed on drop.
pub struct Mosquitto(Child);

impl Mosquitto {
    /// Starts a broker on 127.0.0.1:`port` (anonymous), its config in `dir`; returns once the
    /// port accepts connections.
    pub fn start(dir: &Path, port: u16) -> Mosquitto {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
        )
        .unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (run .ci/setup)");
        let m = Mosquitto(child);
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "mosquitto did not open port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }
}

impl Drop for Mosquitto {
    /// SIGKILL: the broker vanishes as in a crash, without closing its clients cleanly.
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mosquitto_pub` one message; `file` sends a file's bytes instead of `message`.
pub fn publish(port: u16, topic: &str, message: &str, file: Option<&Path>) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic]);
    match file {
        Some(f) => cmd.arg("-f").arg(f),
        None => cmd.args(["-m", message]),
    };
    let ok = cmd.status().expect("run mosquitto_pub").success();
    assert!(ok, "mosquitto_pub {topic} failed");
}

/// `mosquitto_sub -v` on some topics: (topic, payload) lines on a channel. Killed on drop.
pub struct Sub {
    child: Child,
    lines: Receiver<(String, String)>,
}

impl Sub {
    /// Subscribes to `topics` (and a topic of its own, to know when it is subscribed); returns
    /// once it hears what it publishes.
    pub fn start(port: u16, topics: &[&str]) -> Sub {
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v"]);
        for t in topics.iter().chain(&["test/ready"]) {
            cmd.args(["-t", t]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("start mosquitto_sub");
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = unbounded();
        std::thread::spawn(move || {
            for l in out.lines().map_while(|l| l.ok()) {
                let (t, p) = l.split_once(' ').unwrap_or((&l, ""));
                let _ = tx.send((t.to_string(), p.to_string()));
            }
        });
        let sub = Sub { child, lines };
        let t = Instant::now();
        loop {
            publish(port, "test/ready", "1", None);
            if sub.lines.recv_timeout(Duration::from_millis(300)).is_ok() {
                return sub;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "mosquitto_sub never subscribed"
            );
        }
    }

    /// The next message whose topic passes `want` (others skipped), if one comes in `wait`.
    pub fn next_where(
        &self,
        want: impl Fn(&str) -> bool,
        wait: Duration,
    ) -> Option<(String, String)> {
        let end = Instant::now() + wait;
        while let Ok((t, p)) = self.lines.recv_deadline(end) {
            if want(&t) {
                return Some((t, p));
            }
        }
        None
    }

    /// The next `hermes/hotword/<word>/detected`, as (word, payload), if one comes in `wait`.
    pub fn detection(&self, wait: Duration) -> Option<(String, String)> {
        let word = |t: &str| {
            t.strip_prefix("hermes/hotword/")
                .and_then(|r| r.strip_suffix("/detected"))
                .map(str::to_string)
        };
        let (t, p) = self.next_where(|t| word(t).is_some(), wait)?;
        Some((word(&t)?, p))
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
