//! The broker's address and login (`mqtt://[USER[:PASS]@]HOST[:PORT]`) and the Hermes front
//! end's options: what the config's `[mqtt]` section is checked against. It needs only std and
//! anyhow, so the config parser's fuzz target (tests/fuzz) includes it by path.

use anyhow::{bail, Context, Result};

/// The default cap on how many sites one process hears.
pub const MAX_SITES: usize = 64;

/// Where the broker is and how to log in.
#[derive(Clone, Debug, PartialEq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Broker {
    /// Parses `mqtt://[USER[:PASS]@]HOST[:PORT]` (port 1883 by default; `tcp://` is accepted too).
    /// `username`/`password` (the config keys) apply when the URI has no user.
    pub fn parse(uri: &str, username: &str, password: &str) -> Result<Broker> {
        let rest = uri
            .strip_prefix("mqtt://")
            .or_else(|| uri.strip_prefix("tcp://"))
            .with_context(|| {
                format!("MQTT URI {uri:?}: must start with mqtt:// (TLS is not supported)")
            })?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = split_host_port(uri, hostport)?;
        let (username, password) = match user {
            Some(u) if !username.is_empty() => {
                bail!("MQTT URI {uri:?}: a user is given both here ({u:?}) and in `mqtt.username`")
            }
            Some(u) => match u.split_once(':') {
                Some((n, p)) => (Some(n.to_string()), Some(p.to_string())),
                None => (Some(u.to_string()), None),
            },
            None if username.is_empty() => (None, None),
            None => (Some(username.to_string()), Some(password.to_string())),
        };
        Ok(Broker {
            host,
            port,
            username,
            password,
        })
    }

    /// `host:port`, for messages (never the password).
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// `HOST[:PORT]`, with `[v6]` brackets.
fn split_host_port(uri: &str, s: &str) -> Result<(String, u16)> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => {
            let port = p.parse::<u16>().ok().filter(|p| *p > 0).with_context(|| {
                format!("MQTT URI {uri:?}: port {p:?} is not a number 1..65535")
            })?;
            (h, port)
        }
        _ => (s, 1883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        bail!("MQTT URI {uri:?}: no valid host name (expected mqtt://HOST:PORT)");
    }
    Ok((host.to_string(), port))
}

/// How the Hermes front end runs.
#[derive(Clone, Debug)]
pub struct HermesOptions {
    pub broker: Broker,
    /// The sites to hear (empty: every site, up to `max_sites`).
    pub sites: Vec<String>,
    pub max_sites: usize,
    /// The MQTT client id; empty = `hark-` and a random number.
    pub client_id: String,
}

impl HermesOptions {
    /// Options for `broker`, every site, the default cap.
    pub fn new(broker: Broker) -> HermesOptions {
        HermesOptions {
            broker,
            sites: Vec::new(),
            max_sites: MAX_SITES,
            client_id: String::new(),
        }
    }
}
