//! `hark listen`: the daemon fed from a file paced like a microphone, with socket clients,
//! SIGHUP reloads and SIGTERM; and its errors for bad configuration.

use crate::common;

use crate::common::{hark, hark_bin, root, write_wav};
use hark::audio::synth;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Trains a head at `out` on the words `keep` of the recordings (plus their background).
fn train(rec: &Path, out: &Path, keep: &[&str]) {
    let dir = rec.parent().unwrap().join(format!(
        "rec-{}",
        out.file_stem().unwrap().to_string_lossy()
    ));
    for w in keep.iter().chain(&[hark::train::dataset::BACKGROUND]) {
        copy_dir(&rec.join(w), &dir.join(w));
    }
    common::train_head(&dir, out, &[]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn wait_for(path: &Path, secs: u64) {
    let t = Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: i32) {
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Reads JSON event lines from a socket client on a thread.
fn client(path: &Path) -> std::thread::JoinHandle<Vec<serde_json::Value>> {
    let s = UnixStream::connect(path).expect("connect to the daemon's socket");
    std::thread::spawn(move || {
        BufReader::new(s)
            .lines()
            .map_while(Result::ok)
            .map(|l| serde_json::from_str(&l).expect("one JSON object per line"))
            .collect()
    })
}

/// Runs `hark listen --quiet` on a WAV file with a config and a head; asserts it exits 0 and
/// returns (stdout, stderr).
fn listen_file(cfg: &Path, head: &Path, wav: &Path) -> (String, String) {
    crate::common::listen_input(cfg, head, wav, &["--quiet"])
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    rec: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let rec = dir.join("recordings");
    synth::write_recordings(&rec, synth::VOICE).unwrap();
    Setup {
        _tmp: tmp,
        dir,
        rec,
    }
}

#[test]
fn sighup_swaps_the_head_keeps_it_on_a_broken_one_and_sigterm_exits_cleanly() {
    let s = setup();
    // Head A knows lantern and pumpkin; head B knows only violin.
    let head = s.dir.join("live.head");
    let head_b = s.dir.join("b.head");
    train(&s.rec, &head, &synth::WORDS[..2]);
    train(&s.rec, &head_b, &synth::WORDS[2..]);
    let (stream, _) = synth::stream(synth::VOICE, 4).unwrap();
    let wav = s.dir.join("stream.wav");
    write_wav(&wav, &stream);
    let sock = s.dir.join("hark.sock");
    let child = Command::new(hark_bin())
        .args([
            "listen",
            "--head",
            head.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
            "--input",
            wav.to_str().unwrap(),
            "--realtime",
        ])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&sock, 30);
    let mode = std::fs::metadata(&sock)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode, 0o600, "socket mode");
    let reader = client(&sock);
    // A client that connects and never reads must not stop the other one.
    let _idle = UnixStream::connect(&sock).unwrap();

    std::thread::sleep(Duration::from_secs(12));
    std::fs::copy(&head_b, &head).unwrap();
    signal(&child, libc::SIGHUP);
    std::thread::sleep(Duration::from_secs(8));
    std::fs::write(&head, b"{ broken").unwrap();
    signal(&child, libc::SIGHUP);
    std::thread::sleep(Duration::from_secs(4));
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SIGTERM exits 0: {stderr}");
    assert!(!sock.exists(), "socket removed at exit");
    assert!(
        stderr.contains("reload failed") && stderr.contains("live.head"),
        "broken head is reported: {stderr}"
    );
    assert!(
        stderr.contains("stopped after"),
        "one-line summary: {stderr}"
    );
    assert!(
        stderr.contains(" 0 dropped sample(s)"),
        "stopping drops nothing that was due: {stderr}"
    );
    let peak_mb: f64 = stderr
        .split("peak memory ")
        .nth(1)
        .and_then(|v| v.split(" MB").next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the summary gives the peak memory: {stderr}"));
    assert!(peak_mb > 5.0 && peak_mb < 500.0, "peak memory {peak_mb} MB");

    let events = reader.join().unwrap();
    let words: Vec<(&str, f64)> = events
        .iter()
        .map(|e| (e["word"].as_str().unwrap(), e["time"].as_f64().unwrap()))
        .collect();
    eprintln!("{words:?}");
    for e in &events {
        assert!(
            e["wall_time"].as_str().is_some_and(|t| t.contains('T')),
            "RFC 3339 wall_time: {e}"
        );
    }
    let before: Vec<&str> = words.iter().filter(|w| w.1 < 11.0).map(|w| w.0).collect();
    let after: Vec<&str> = words.iter().filter(|w| w.1 > 14.0).map(|w| w.0).collect();
    assert!(
        before.contains(&synth::WORDS[0]) && !before.contains(&synth::WORDS[2]),
        "head A before the reload: {before:?}"
    );
    assert!(
        after.contains(&synth::WORDS[2]) && !after.contains(&synth::WORDS[0]),
        "head B after the reload, kept after the broken one: {after:?}"
    );
    let stdout_lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(
        stdout_lines,
        events.len(),
        "stdout and the socket carry the same events"
    );
}

#[test]
fn bad_configuration_is_refused_with_the_key_line_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = d.join("bad.toml");
    std::fs::write(
        &cfg,
        "device = \"\"\nrefractory = 1.0\nsocket_path = \"/tmp/x\"\n",
    )
    .unwrap();
    let (code, _, err) = hark(
        &[
            "listen",
            "--config",
            cfg.to_str().unwrap(),
            "--input",
            "x.wav",
        ],
        &root(),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("bad.toml") && err.contains("line 3") && err.contains("socket_path"),
        "{err}"
    );

    std::fs::write(&cfg, "[socket]\nmode = 600\n").unwrap();
    let (code, _, err) = hark(
        &[
            "listen",
            "--config",
            cfg.to_str().unwrap(),
            "--input",
            "x.wav",
        ],
        &root(),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("line 2") && err.contains("mode") && err.contains("string"),
        "{err}"
    );

    // A head that exists is needed for the socket checks below.
    let s = setup();
    let head = s.dir.join("h.head");
    train(&s.rec, &head, &synth::WORDS);
    let wav = d.join("quiet.wav");
    write_wav(&wav, &synth::noise(1.0, 50.0, 1));
    let h = head.to_str().unwrap();

    std::fs::write(&cfg, "[thresholds]\nbanjo = 0.7\n").unwrap();
    let (code, _, err) = hark(
        &[
            "listen",
            "--config",
            cfg.to_str().unwrap(),
            "--head",
            h,
            "--input",
            wav.to_str().unwrap(),
        ],
        &root(),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("thresholds.banjo") && err.contains("lantern"),
        "{err}"
    );

    let (code, _, err) = hark(
        &[
            "listen",
            "--head",
            h,
            "--socket",
            "/nonexistent/dir/hark.sock",
            "--input",
            wav.to_str().unwrap(),
        ],
        &root(),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("/nonexistent/dir") && err.contains("does not exist"),
        "{err}"
    );

    let (code, _, err) = hark(
        &[
            "listen",
            "--head",
            h,
            "--device",
            "no such microphone 12345",
            "--socket",
            d.join("s.sock").to_str().unwrap(),
        ],
        &root(),
    );
    assert_ne!(code, 0);
    assert!(err.contains("no such microphone 12345"), "{err}");

    // A socket held by a live daemon is refused; a stale one is replaced.
    let held = d.join("held.sock");
    let _live = std::os::unix::net::UnixListener::bind(&held).unwrap();
    let (code, _, err) = hark(
        &[
            "listen",
            "--head",
            h,
            "--socket",
            held.to_str().unwrap(),
            "--input",
            wav.to_str().unwrap(),
        ],
        &root(),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("held.sock") && err.contains("another running hark"),
        "{err}"
    );
    let stale = d.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let (code, _, err) = hark(
        &[
            "listen",
            "--head",
            h,
            "--socket",
            stale.to_str().unwrap(),
            "--input",
            wav.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(code, 0, "a stale socket file is replaced: {err}");
}

#[test]
fn the_hook_runs_without_a_shell_with_the_event_in_its_environment() {
    let s = setup();
    let head = s.dir.join("h.head");
    train(&s.rec, &head, &synth::WORDS);
    let wav = common::stream_wav(&s.dir);
    let log = s.dir.join("hook.log");
    // hark runs the program directly, with no shell of its own. Here the program happens to be
    // sh, which reads the environment; its last argument "$HARK_WORD" must arrive literally,
    // because hark never interpolates into a command line.
    let cfg = s.dir.join("hook.toml");
    let script = format!(
        "echo \\\"$HARK_WORD $HARK_SCORE $1\\\" >> {}",
        log.display()
    );
    std::fs::write(
        &cfg,
        format!("[socket]\nenabled = false\n[hook]\ncommand = [\"/bin/sh\", \"-c\", \"{script}\", \"hook\", \"$HARK_WORD\"]\n"),
    )
    .unwrap();
    let (out, err) = listen_file(&cfg, &head, &wav);
    assert!(out.is_empty(), "--quiet prints no events");
    std::thread::sleep(Duration::from_millis(500));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() >= 2,
        "hook ran once per event: {text:?} ({err})"
    );
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert!(
            synth::WORDS.contains(&f[0]),
            "HARK_WORD in the environment: {l}"
        );
        assert!(f[1].parse::<f32>().is_ok(), "HARK_SCORE: {l}");
        assert_eq!(
            f[2], "$HARK_WORD",
            "arguments are passed literally, not expanded: {l}"
        );
    }
}

#[test]
fn the_quiet_gate_key_turns_the_gate_off_and_the_summary_says_how_much_it_skipped() {
    let s = setup();
    let head = s.dir.join("h.head");
    train(&s.rec, &head, &synth::WORDS);
    let quiet = s.dir.join("quiet.wav");
    write_wav(&quiet, &synth::noise(20.0, 8.0, 6));
    let skipped = |config: &str| -> f64 {
        let cfg = s.dir.join("gate.toml");
        std::fs::write(&cfg, format!("{config}[socket]\nenabled = false\n")).unwrap();
        let (_, err) = listen_file(&cfg, &head, &quiet);
        err.split("base model skipped for ")
            .nth(1)
            .and_then(|v| v.split('%').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("the summary gives the share skipped: {err}"))
    };
    let on = skipped("");
    let off = skipped("quiet_gate = false\n");
    assert!(on >= 80.0, "a quiet room with the gate: {on}% skipped");
    assert_eq!(off, 0.0, "with quiet_gate = false nothing is skipped");
}

#[test]
fn the_socket_is_hark_s_own_and_client_churn_cannot_starve_a_new_client() {
    use std::os::unix::process::CommandExt;
    let s = setup();
    let head = s.dir.join("h.head");
    train(&s.rec, &head, &synth::WORDS);
    let wav = common::stream_wav(&s.dir);
    let sock = s.dir.join("hark.sock");
    let mut cmd = Command::new(hark_bin());
    cmd.args(["listen", "--head", head.to_str().unwrap()])
        .args(["--socket", sock.to_str().unwrap()])
        .args(["--input", wav.to_str().unwrap(), "--realtime"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Few file descriptors, so clients that pile up would exhaust them.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 48,
                rlim_max: 48,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    wait_for(&sock, 30);
    for _ in 0..200 {
        drop(UnixStream::connect(&sock).expect("the daemon accepts while clients churn"));
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(300));
    let reader = client(&sock);
    // Another file takes the socket's name while hark runs: hark must leave it at exit.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(&sock).unwrap();
    std::fs::write(&sock, b"not hark's").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events = reader.join().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(printed >= 2, "the stream fires: {printed} events; {stderr}");
    assert_eq!(
        events.len(),
        printed,
        "the client that came after the churn hears every event"
    );
    assert_eq!(
        std::fs::read(&sock).unwrap(),
        b"not hark's",
        "hark removes only the socket it created"
    );
}

#[test]
fn hooks_are_capped_timed_out_kept_off_stdout_and_never_outlive_hark() {
    let s = setup();
    let head = s.dir.join("h.head");
    train(&s.rec, &head, &synth::WORDS);
    let wav = common::stream_wav(&s.dir);
    let marker = "987.654321";
    let cfg = s.dir.join("hook.toml");
    std::fs::write(
        &cfg,
        format!("[socket]\nenabled = false\n[hook]\ncommand = [\"/bin/sh\", \"-c\", \"echo hook-output; sleep {marker}\"]\ntimeout = 1.5\n"),
    )
    .unwrap();
    let out = common::listen_realtime(&cfg, &head, &wav);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 2, "events: {stdout}");
    for l in &lines {
        assert!(
            l.starts_with('{'),
            "only events on stdout, not hook output: {l:?}"
        );
    }
    assert!(
        stderr.contains("hook-output"),
        "hook output in the log: {stderr}"
    );
    assert!(
        stderr.contains("killed"),
        "a hook past its time is killed: {stderr}"
    );
    let left = Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "hooks outlived hark: pids {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[test]
fn a_stdout_nobody_reads_does_not_stall_the_daemon_or_its_socket_clients() {
    use std::io::Write;
    use std::os::fd::{FromRawFd, OwnedFd};
    let s = setup();
    let head = s.dir.join("h.head");
    train(&s.rec, &head, &synth::WORDS);
    let wav = common::stream_wav(&s.dir);
    // A pipe that nobody reads, full before hark starts: its first event line would block.
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let size = unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 4096) };
    assert!(size >= 4096, "pipe size {size}");
    let mut filler = std::fs::File::from(write_end.try_clone().unwrap());
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) };
    while filler.write(&[b'x'; 512]).is_ok() {}
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, 0) };
    drop(filler);
    let sock = s.dir.join("hark.sock");
    let mut child = Command::new(hark_bin())
        .args(["listen", "--head", head.to_str().unwrap()])
        .args(["--socket", sock.to_str().unwrap()])
        .args(["--input", wav.to_str().unwrap(), "--realtime"])
        .current_dir(root())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&sock, 30);
    let reader = client(&sock);
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(60) {
            signal(&child, libc::SIGKILL);
            panic!("hark did not finish the stream: a full stdout stalled it");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    drop(read_end);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events = reader.join().unwrap();
    let summary = stderr
        .lines()
        .find(|l| l.contains("stopped after"))
        .unwrap_or_else(|| panic!("a summary line: {stderr}"));
    let count = |what: &str| -> usize {
        summary
            .split(what)
            .next()
            .and_then(|t| t.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{what} in {summary}"))
    };
    let total = count(" event(s),");
    assert!(total >= 2, "the stream fires: {summary}");
    assert_eq!(events.len(), total, "the socket client hears every event");
    assert_eq!(
        count(" event(s) not written"),
        total,
        "the summary counts what stdout could not take: {summary}"
    );
}

/// The events of `hark listen`'s stdout without their ids and wall times.
fn decisions(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let mut e: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = e.as_object_mut().unwrap();
            o.remove("id");
            o.remove("wall_time");
            e
        })
        .collect()
}

#[test]
fn the_first_start_has_a_child_make_the_runtime_copies_and_later_starts_map_them() {
    let s = setup();
    let head = s.dir.join("h.head");
    train(&s.rec, &head, &synth::WORDS[..2]);
    let wav = common::stream_wav(&s.dir);
    let cfg = s.dir.join("c.toml");
    std::fs::write(&cfg, "word_check = true\n[socket]\nenabled = false\n").unwrap();
    // A models folder of the same files with no copies yet.
    let models = s.dir.join("models");
    for sub in ["base", "runtime"] {
        std::fs::create_dir_all(models.join(sub)).unwrap();
        for e in std::fs::read_dir(root().join("models").join(sub)).unwrap() {
            let e = e.unwrap();
            std::os::unix::fs::symlink(e.path(), models.join(sub).join(e.file_name())).unwrap();
        }
    }
    // `--models` is global: it may follow the subcommand.
    let run = || {
        let (out, err) =
            common::listen_input(&cfg, &head, &wav, &["--models", models.to_str().unwrap()]);
        (decisions(&out), err)
    };
    let (first, err) = run();
    assert!(err.contains("making 6 model copies"), "{err}");
    assert!(!err.contains("making them here"), "{err}");
    let copies: Vec<_> = std::fs::read_dir(models.join(".cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ort"))
        .collect();
    assert_eq!(copies.len(), 6, "{copies:?}");
    let (second, err) = run();
    assert!(!err.contains("making"), "{err}");
    assert!(!first.is_empty());
    assert_eq!(first, second);
}
