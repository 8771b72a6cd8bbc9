//! Zeroconf (mDNS / DNS-SD) announcement of the Wyoming server as `_wyoming._tcp.local.`, as
//! wyoming-openwakeword does, so that Home Assistant discovers hark without a host and port
//! typed in (`[wyoming] zeroconf = true`). Uses the pure-Rust `mdns-sd` crate, whose daemon runs
//! on a thread of its own.
//!
//! The announcement follows the bind address: a loopback bind is announced on the loopback
//! interface only (only this machine can connect anyway), an address on its interface, and
//! `0.0.0.0` on every IPv4 interface with that interface's addresses.

use anyhow::{Context, Result};
use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The DNS-SD service type Home Assistant browses for.
pub const SERVICE: &str = "_wyoming._tcp.local.";

/// A running announcement; [`Announcement::stop`] withdraws it.
pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
}

/// The instance name: `hark-<hostname>`.
pub fn instance_name() -> String {
    format!("hark-{}", hostname())
}

/// This machine's host name, reduced to letters, digits and '-' (DNS label rules), or "hark".
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name: String = String::from_utf8_lossy(&buf[..end])
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(50)
        .collect();
    match ok && !name.is_empty() {
        true => name,
        false => "hark".into(),
    }
}

/// Announces the Wyoming server listening on `addr` (its bound address and port).
pub fn announce(addr: SocketAddr) -> Result<Announcement> {
    let what = format!("zeroconf: cannot announce {SERVICE} for {addr}");
    let daemon = ServiceDaemon::new().with_context(|| what.clone())?;
    let ip = addr.ip();
    let (only, address): (IfKind, Option<IpAddr>) = if ip.is_loopback() {
        (IfKind::LoopbackV4, Some(ip))
    } else if ip.is_unspecified() {
        (IfKind::IPv4, None)
    } else {
        (IfKind::Addr(ip), Some(ip))
    };
    daemon
        .disable_interface(IfKind::All)
        .and_then(|()| daemon.enable_interface(only))
        .with_context(|| what.clone())?;
    let name = instance_name();
    let host = format!("{}.local.", hostname());
    let properties: Option<HashMap<String, String>> = None;
    let info = match address {
        Some(a) => ServiceInfo::new(SERVICE, &name, &host, a, addr.port(), properties),
        None => ServiceInfo::new(SERVICE, &name, &host, (), addr.port(), properties)
            .map(ServiceInfo::enable_addr_auto),
    }
    .with_context(|| what.clone())?;
    let fullname = info.get_fullname().to_string();
    daemon.register(info).with_context(|| what.clone())?;
    Ok(Announcement { daemon, fullname })
}

impl Announcement {
    /// The announced instance's full name (`hark-<host>._wyoming._tcp.local.`).
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// Withdraws the announcement (a goodbye packet) and stops the mDNS daemon, within a second.
    pub fn stop(self) {
        let wait = Duration::from_millis(500);
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(wait);
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = done.recv_timeout(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdns_sd::ServiceEvent;
    use std::time::Instant;

    #[test]
    fn the_instance_name_is_a_dns_label() {
        let n = instance_name();
        assert!(n.starts_with("hark-") && n.len() <= 55, "{n}");
        assert!(
            n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{n}"
        );
    }

    /// Browses with a second mdns-sd daemon on the loopback interface only (nothing leaves the
    /// machine): the announcement resolves to the bound address and port, and goes on stop.
    #[test]
    fn a_loopback_announcement_is_found_by_a_browser_on_loopback() {
        let addr: SocketAddr = "127.0.0.1:10499".parse().unwrap();
        let a = announce(addr).unwrap();
        let browser = ServiceDaemon::new().unwrap();
        browser.disable_interface(IfKind::All).unwrap();
        browser.enable_interface(IfKind::LoopbackV4).unwrap();
        let events = browser.browse(SERVICE).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        let found = loop {
            match events.recv_deadline(end) {
                Ok(ServiceEvent::ServiceResolved(s)) if s.fullname == a.fullname() => break s,
                Ok(_) => {}
                Err(e) => panic!("{} not resolved within 10 s: {e}", a.fullname()),
            }
        };
        assert_eq!(found.port, 10499);
        let ips: Vec<IpAddr> = found.addresses.iter().map(|s| s.to_ip_addr()).collect();
        assert_eq!(ips, vec![addr.ip()], "{found:?}");
        let fullname = a.fullname().to_string();
        a.stop();
        let removed = loop {
            match events.recv_deadline(Instant::now() + Duration::from_secs(5)) {
                Ok(ServiceEvent::ServiceRemoved(_, n)) if n == fullname => break true,
                Ok(_) => {}
                Err(_) => break false,
            }
        };
        assert!(removed, "the goodbye reached the browser");
        let _ = browser.shutdown();
    }
}
