//! Hermes, Rhasspy's protocol over MQTT, as both of hark's sides speak it: `hark serve`'s front
//! end ([`crate::serve::hermes`]: audio frames in, hotword events out) and `hark listen`'s sink
//! ([`crate::daemon::sinks::hermes`]: its own microphone's hotword events out). It needs nothing
//! else of the binary, so both stand on it.
//!
//! - `broker`: the broker's address and login, and the front end's options (what
//!   `config.rs` checks; std only, so the config fuzz target includes it);
//! - [`messages`]: the topics and their JSON payloads;
//! - [`wav`]: the audio frames (a small WAV file each);
//! - [`client_options`]: rumqttc's options for a client of the broker.

mod broker;
pub mod messages;
pub mod wav;

pub use broker::{Broker, HermesOptions, MAX_SITES};

use rumqttc::MqttOptions;
use std::time::Duration;

/// rumqttc's options for a client of `broker` (a random client id when `client_id` is empty).
pub fn client_options(broker: &Broker, client_id: &str) -> MqttOptions {
    let id = if client_id.is_empty() {
        format!("hark-{:08x}", rand::random::<u32>())
    } else {
        client_id.to_string()
    };
    let mut o = MqttOptions::new(id, broker.host.clone(), broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    // Frames over the cap still arrive, to be refused with a clear message by `wav::parse`.
    o.set_max_packet_size(2 * wav::MAX_FRAME_BYTES, messages::MAX_CONTROL_BYTES);
    if let Some(u) = &broker.username {
        o.set_credentials(u.clone(), broker.password.clone().unwrap_or_default());
    }
    o
}
