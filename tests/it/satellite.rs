//! `hark serve` as the wake-word service of the real wyoming-satellite 1.0.0 program (PyPI,
//! installed by `.ci/setup` into target/venv-satellite with the `wyoming` 1.4.1 it pins), its
//! microphone a command that plays raw audio, and tests/it/satellite_server.py (PyPI `wyoming`
//! 1.10.2) as the Home Assistant it talks to.

use crate::common::{free_port, root};
use crate::wyoming::{heads, scratch, speech, Serve};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A program run in its own process group, which is killed (with the microphone command the
/// satellite started) when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// A venv's program, or a panic that says to run .ci/setup.
fn venv_bin(venv: &str, name: &str) -> PathBuf {
    let p = root().join("target").join(venv).join("bin").join(name);
    assert!(p.is_file(), "{} missing: run .ci/setup", p.display());
    p
}

/// The microphone: waits for `go`, plays `first`, waits for `again`, plays `second`, then
/// stays open (a real microphone never ends).
fn mic_command(go: &Path, first: &Path, again: &Path, second: &Path) -> String {
    let wait = |f: &Path| format!("while [ ! -e {} ]; do sleep 0.1; done", f.display());
    let script = format!(
        "{}; cat {}; {}; cat {}; sleep 120",
        wait(go),
        first.display(),
        wait(again),
        second.display()
    );
    format!("sh -c '{script}'")
}

/// Starts wyoming-satellite on `port`, its wake service hark on `hark_port`, listening for
/// lantern and violin; its detect and detection commands append lines to `events`
/// ("detect", "detection WORD"; each with one write, as the two may run at once).
fn satellite(port: u16, hark_port: u16, mic: &str, events: &Path, log: &Path) -> Group {
    let events = events.display();
    // `python -m`, as the project's own script/run does: the 1.0.0 wheel's `wyoming-satellite`
    // entry point names a `run` function that its __main__ lacks.
    let child = Command::new(venv_bin("venv-satellite", "python"))
        .args(["-m", "wyoming_satellite"])
        .args(["--uri", &format!("tcp://127.0.0.1:{port}"), "--no-zeroconf"])
        .args(["--mic-command", mic])
        .args(["--mic-command-rate", "16000", "--mic-command-width", "2"])
        .args(["--mic-command-channels", "1"])
        .args(["--wake-uri", &format!("tcp://127.0.0.1:{hark_port}")])
        .args(["--wake-word-name", "lantern", "--wake-word-name", "violin"])
        .args([
            "--detect-command",
            &format!("sh -c 'echo detect >> {events}'"),
        ])
        .args([
            "--detection-command",
            &format!("sh -c 'w=$(cat); echo \"detection $w\" >> {events}'"),
        ])
        .arg("--debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .process_group(0)
        .spawn()
        .expect("start wyoming-satellite");
    Group(child)
}

#[test]
fn wyoming_satellite_runs_its_detection_command_and_detects_again_on_one_connection() {
    let d = scratch().join("satellite-program");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let s = Serve::start("satellite-program", &heads().0, "");
    let (first, _) = speech("satellite-first", &["lantern"]);
    let (second, _) = speech("satellite-second", &["violin"]);
    let (go, again, events) = (d.join("go"), d.join("again"), d.join("events.txt"));
    let port = free_port();
    let mic = mic_command(&go, &first, &again, &second);
    let log = d.join("satellite.log");
    let sat = satellite(port, s.port, &mic, &events, &log);
    let out = Command::new(venv_bin("venv-wyoming", "python"))
        .arg(root().join("tests/it/satellite_server.py"))
        .args([
            &port.to_string(),
            go.to_str().unwrap(),
            again.to_str().unwrap(),
        ])
        .arg("2")
        .output()
        .unwrap();
    drop(sat);
    let satellite_log = std::fs::read_to_string(&log).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{satellite_log}");
    let server: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pipelines = server
        .iter()
        .filter(|e| e["type"] == "run-pipeline")
        .count();
    assert_eq!(pipelines, 2, "{server:?}\n{satellite_log}");
    // What the satellite's own commands saw, in order.
    let seen = std::fs::read_to_string(&events).unwrap_or_default();
    let lines: Vec<&str> = seen.lines().collect();
    let detections: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("detection "))
        .collect();
    assert_eq!(detections, ["lantern", "violin"], "{seen}\n{satellite_log}");
    // `detect` when it connected to hark, on run-satellite, and after the first pipeline.
    let detects = lines.iter().filter(|l| **l == "detect").count();
    assert_eq!(detects, 3, "detect again after a detection: {seen}");
    // hark saw one connection from the satellite (besides the start-up probe) and two words.
    let hark_log = s.stop();
    assert!(
        hark_log.contains("2 connection(s), 2 detection(s)"),
        "{hark_log}"
    );
}
