//! `[wyoming] zeroconf = true`: `hark serve` announces itself as `_wyoming._tcp.local.`, found
//! here by a browser on the loopback interface only, as Home Assistant finds a Wyoming service,
//! and then asked `describe` at the address and port it announced. Two browsers: the `mdns-sd`
//! crate, and the one Home Assistant itself uses, PyPI `zeroconf` 0.88.0
//! (tests/it/zeroconf_browse.py, in target/venv-zeroconf made by .ci/setup).

use crate::common::root;
use crate::wyoming::{described_words, heads, Serve};
use hark::audio::synth;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn serve_announces_wyoming_over_zeroconf_and_the_announced_port_answers() {
    let s = Serve::start("zeroconf", &heads().0, "zeroconf = true\n");
    let browser = ServiceDaemon::new().unwrap();
    browser.disable_interface(IfKind::All).unwrap();
    browser.enable_interface(IfKind::LoopbackV4).unwrap();
    let events = browser.browse("_wyoming._tcp.local.").unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let found = loop {
        match events.recv_deadline(end) {
            Ok(ServiceEvent::ServiceResolved(r)) if r.port == s.port => break r,
            Ok(_) => {}
            Err(e) => panic!("hark on port {} not resolved within 10 s: {e}", s.port),
        }
    };
    let _ = browser.shutdown();
    assert!(
        found.fullname.starts_with("hark-") && found.host.ends_with(".local."),
        "{found:?}"
    );
    let ips: Vec<_> = found.addresses.iter().map(|a| a.to_ip_addr()).collect();
    assert_eq!(ips, ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(described_words(found.port), synth::WORDS);
    let log = s.stop();
    assert!(log.contains("zeroconf: announcing hark-"), "{log}");
}

#[test]
fn home_assistants_zeroconf_browser_finds_serve_and_the_announced_port_answers() {
    let python = root().join("target/venv-zeroconf/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run `bash .ci/setup`",
        python.display()
    );
    let s = Serve::start("zeroconf-py", &heads().0, "zeroconf = true\n");
    let out = Command::new(&python)
        .arg(root().join("tests/it/zeroconf_browse.py"))
        .args(["15", &s.port.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
    assert!(
        out.status.success(),
        "zeroconf browser did not resolve hark on port {}: {stderr}\n{log}",
        s.port
    );
    let services: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Other hark instances may announce on this machine too: pick ours by its port.
    let found = services
        .iter()
        .find(|v| v["port"] == s.port)
        .unwrap_or_else(|| panic!("no service on port {}: {services:?}", s.port));
    let name = found["name"].as_str().unwrap();
    assert!(
        name.starts_with("hark-") && name.ends_with("._wyoming._tcp.local."),
        "{found}"
    );
    assert_eq!(found["type"], "_wyoming._tcp.local.", "{found}");
    assert!(
        found["server"].as_str().unwrap().ends_with(".local."),
        "{found}"
    );
    assert_eq!(
        found["addresses"],
        serde_json::json!(["127.0.0.1"]),
        "{found}"
    );
    // async_request's answer: the TXT record came too, so HA does not wait out its 3 s.
    assert_eq!(found["complete"], true, "{found}");
    let port = found["port"].as_u64().unwrap() as u16;
    assert_eq!(described_words(port), synth::WORDS);
    let log = s.stop();
    assert!(log.contains("zeroconf: announcing hark-"), "{log}");
}
