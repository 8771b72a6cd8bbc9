//! `[wyoming] zeroconf = true`: `hark serve` announces itself as `_wyoming._tcp.local.`, found
//! here by a browser (the `mdns-sd` crate) on the loopback interface only, as Home Assistant
//! finds a Wyoming service, and then asked `describe` at the address and port it announced.

use crate::wyoming::{described_words, heads, Serve};
use hark::audio::synth;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent};
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
