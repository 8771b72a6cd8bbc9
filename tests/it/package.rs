//! The packages: `cargo install --path .` into a scratch root finds its models from another
//! folder and runs `hark demo`, and `hark setup` copies them; the Debian package (`cargo deb`)
//! installs under a real systemd (booted in namespaces of its own whose /etc, /usr and /var are
//! throw-away overlays: tests/it/deb_systemd.sh), its service starts and answers Wyoming's
//! `describe`, scores "OK" in `systemd-analyze security`, and goes with `dpkg --purge`.

use crate::common;
use crate::wyoming::{described_words, heads};
use hark::audio::synth;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("package")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `cargo` with `args` in the repository; panics with its stderr if it fails.
fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("run cargo");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo {args:?} failed:\n{err}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &err
}

/// Whether a finished command succeeded, and its stdout then stderr.
fn outcome(out: &std::process::Output) -> (bool, String) {
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs the installed `hark` in `cwd` with `home` as its home and nothing else to find models
/// by; returns (success, stdout + stderr).
fn installed(bin: &Path, args: &[&str], cwd: &Path, home: &Path) -> (bool, String) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("HARK_MODELS")
        .output()
        .expect("run the installed hark");
    outcome(&out)
}

#[test]
fn cargo_install_finds_its_models_from_another_folder_and_setup_copies_them() {
    // Outside the repository, so that the models are not found beside the executable.
    let d = std::env::temp_dir().join(format!("hark-install-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let root = d.join("root");
    cargo(&[
        "install",
        "--locked",
        "--offline",
        "--path",
        ".",
        "--root",
        root.to_str().unwrap(),
    ]);
    let bin = root.join("bin/hark");
    let (work, home) = (d.join("elsewhere"), d.join("home"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&home).unwrap();

    let (ok, out) = installed(&bin, &["demo"], &work, &home);
    assert!(
        ok && out.contains("heard "),
        "hark demo from {}:\n{out}",
        work.display()
    );
    assert!(work.join("target/demo/demo.head").is_file(), "{out}");

    let (ok, out) = installed(&bin, &["setup"], &work, &home);
    assert!(ok && out.contains("9 file(s) copied"), "{out}");
    assert!(
        out.contains("6 copies in ONNX Runtime's format made"),
        "{out}"
    );
    let models = home.join(".local/share/hark/models");
    for f in [
        "base/embedding_model.onnx",
        "base/melspectrogram.onnx",
        "base/word_check.onnx",
        "base/word_check.stage-1.onnx",
        "base/word_check.stage-5.onnx",
    ] {
        assert_eq!(
            std::fs::read(models.join(f)).unwrap(),
            std::fs::read(common::root().join("models").join(f)).unwrap(),
            "{f}"
        );
    }
    // Now found first: a second setup has nothing to do, and detect runs on the copy.
    let (ok, out) = installed(&bin, &["setup"], &work, &home);
    assert!(
        ok && out.contains("already in") && !out.contains("made"),
        "{out}"
    );
    let head = work.join("target/demo/demo.head");
    let stream = work.join("target/demo/stream.wav");
    let (ok, out) = installed(
        &bin,
        &[
            "detect",
            "--head",
            head.to_str().unwrap(),
            stream.to_str().unwrap(),
        ],
        &work,
        &home,
    );
    assert!(ok && out.contains("violin"), "{out}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A systemd of its own (tests/it/deb_systemd.sh), ended when dropped.
struct System {
    pidfile: PathBuf,
}

impl System {
    fn script() -> PathBuf {
        common::root().join("tests/it/deb_systemd.sh")
    }

    /// Boots it with `stage` seen inside as /mnt/stage.
    fn boot(dir: &Path, stage: &Path) -> System {
        let pidfile = dir.join("systemd.pid");
        let out = Command::new("bash")
            .arg(Self::script())
            .arg("boot")
            .arg(&pidfile)
            .arg(stage)
            .output()
            .unwrap();
        let sys = System { pidfile };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        sys
    }

    /// Runs `sh -c cmd` inside; returns (success, stdout + stderr).
    fn run(&self, cmd: &str) -> (bool, String) {
        let out = Command::new("bash")
            .arg(Self::script())
            .arg("run")
            .arg(&self.pidfile)
            .arg(cmd)
            .output()
            .unwrap();
        outcome(&out)
    }
}

impl Drop for System {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .arg(&self.pidfile)
            .status();
    }
}

/// Waits up to 30 s for `port` on loopback to accept a connection.
fn wait_for_port(port: u16) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < end {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}

#[test]
fn deb_installs_and_its_service_starts_and_answers_wyoming_describe() {
    let d = scratch("deb");
    let stage = d.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    let deb = stage.join("hark.deb");
    cargo(&[
        "deb",
        "--no-build",
        "--fast",
        "--output",
        deb.to_str().unwrap(),
    ]);
    let head = stage.join("hark.head");
    std::fs::copy(&heads().0, &head).unwrap();
    let port = common::free_port();
    let sys = System::boot(&d, &stage);
    // The image's policy-rc.d forbids starting services (as Docker's do); a real machine has none.
    let (ok, out) = sys.run(&format!(
        "rm -f /usr/sbin/policy-rc.d && \
         echo 'HARK_ARGS=\"--wyoming tcp://127.0.0.1:{port}\"' > /etc/default/hark && \
         dpkg -i /mnt/stage/hark.deb && systemctl is-enabled hark-serve && \
         install -o hark -g hark -m 0640 /mnt/stage/hark.head /var/lib/hark/hark.head && \
         systemctl restart hark-serve"
    ));
    assert!(ok, "installing the package:\n{out}");
    assert!(wait_for_port(port), "hark-serve never listened on {port}:\n{}", sys.run("systemctl status hark-serve --no-pager; journalctl -u hark-serve --no-pager | tail -20").1);
    assert_eq!(described_words(port), synth::WORDS);
    let (_, status) = sys.run("systemctl is-active hark-serve; id -un $(systemctl show -p MainPID --value hark-serve | xargs ps -o user= -p)");
    assert!(status.starts_with("active\nhark"), "{status}");

    let (_, security) = sys.run("systemd-analyze security hark-serve --no-pager");
    let score: f64 = security
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for hark-serve.service: ")
                .nth(1)
        })
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    assert!(score <= 2.0, "exposure {score}:\n{security}");

    let (ok, out) =
        sys.run("dpkg --purge hark && ! test -e /usr/bin/hark && ! systemctl is-active hark-serve");
    assert!(ok, "purging:\n{out}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after purge"
    );
    assert!(
        !Path::new("/etc/hark/hark.toml").exists(),
        "the package reached the machine itself, not only the overlay"
    );
}
