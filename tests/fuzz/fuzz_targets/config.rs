//! The daemon's config parser (src/daemon/config.rs, in the binary crate, included here by
//! path with the broker-URI parser it checks `[mqtt]` with) on arbitrary UTF-8 text, as
//! `Config::load` reads it: parse and validate. An error must be one line (the README promises
//! it); a config that passes must give its socket mode, socket path, broker and Wyoming address
//! without panicking.
#![no_main]

mod cap;

#[allow(dead_code)]
#[path = "../../../src/hermes/broker.rs"]
mod broker;

/// Where config.rs looks for the broker parser (`crate::hermes`).
mod hermes {
    pub use crate::broker::*;
}

#[allow(dead_code)]
#[path = "../../../src/daemon/config.rs"]
mod config;

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: cap::Capped = cap::Capped;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::Config::parse(text, "fuzz.toml") {
        Err(e) => {
            let line = format!("{e:#}");
            assert!(
                !line.contains(['\n', '\r']),
                "error over several lines: {line:?}"
            );
            assert!(
                line.starts_with("fuzz.toml"),
                "error without the file: {line:?}"
            );
        }
        Ok(c) => {
            assert!(c.socket_mode().is_ok_and(|m| m <= 0o777));
            let _ = c.socket_path();
            assert!(c.mqtt.hermes().is_ok());
            assert!(config::tcp_address(&c.wyoming.uri, "k").is_ok());
        }
    }
});
