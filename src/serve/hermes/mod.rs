//! The Hermes (MQTT) front end of `hark serve`: Rhasspy's satellites stream audio frames to an
//! MQTT broker; hark hears each site with its own stream and publishes a hotword event for each
//! word it detects there.
//!
//! - [`crate::hermes`] (below this front end and the daemon's Hermes sink alike): the broker's
//!   address and login, the front end's options, the topics and their JSON payloads, the audio
//!   frames, the client's options;
//! - [`sites`]: a stream and a worker thread per site, toggles, the caps.
//!
//! One thread runs the MQTT connection (rumqttc's synchronous client): it subscribes on every
//! (re)connection, answers `getHotwords`, applies toggles and hands frames to the sites'
//! bounded queues without waiting. When the broker goes away it retries after 1, 2, 4 ... 30 s.

pub mod sites;

#[cfg(test)]
mod tests;

use anyhow::{Context, Result};
use rumqttc::{Client, Connection, Event, MqttOptions, Packet, Publish, QoS, RecvTimeoutError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::daemon::recovery::{backoff_wait, sleep_unless};
use crate::daemon::Log;
use crate::hermes::{client_options, messages, HermesOptions};
use crate::serve::engine::Engine;
use messages::{GetHotwords, Hotwords, Toggle};
use sites::{Shared, Sites};

/// The running front end.
pub struct Hermes {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Hermes {
    /// Asks it to stop (as setting the `stop` flag given to [`start`] does).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits until it has stopped: the broker connection closed, every site's worker done.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Starts the Hermes front end on its own thread: it connects to the broker (retrying while it
/// cannot) and serves until `stop` is set. It stops within a second while connected; while
/// a connection attempt is under way, within that attempt's timeout (rumqttc's 5 s).
pub fn start(
    engine: Arc<Engine>,
    opts: HermesOptions,
    stop: Arc<AtomicBool>,
    log: Log,
) -> Result<Hermes> {
    let (client, connection) = Client::new(mqtt_options(&opts), 128);
    log.info(&format!(
        "MQTT: connecting to {} for sites {}",
        opts.broker.address(),
        if opts.sites.is_empty() {
            "all".to_string()
        } else {
            opts.sites.join(", ")
        }
    ));
    let shared = Shared {
        engine,
        client,
        log,
    };
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("hark-mqtt".into())
        .spawn(move || EventLoop::new(shared, opts, flag).run(connection))
        .context("MQTT: cannot start its thread")?;
    Ok(Hermes { stop, thread })
}

/// rumqttc's options for `opts`.
fn mqtt_options(opts: &HermesOptions) -> MqttOptions {
    client_options(&opts.broker, &opts.client_id)
}

/// The MQTT connection's thread.
struct EventLoop {
    shared: Shared,
    opts: HermesOptions,
    stop: Arc<AtomicBool>,
    sites: Sites,
    /// Failed connection attempts in a row (for the back-off).
    failures: u32,
    /// Is the broker connection up?
    connected: bool,
}

impl EventLoop {
    fn new(shared: Shared, opts: HermesOptions, stop: Arc<AtomicBool>) -> EventLoop {
        let sites = Sites::new(shared.clone(), opts.sites.clone(), opts.max_sites);
        EventLoop {
            shared,
            opts,
            stop,
            sites,
            failures: 0,
            connected: false,
        }
    }

    /// Drives the connection until `stop`, then closes the sites.
    fn run(mut self, mut connection: Connection) {
        let log = self.shared.log;
        while !self.stop.load(Ordering::SeqCst) {
            // Connecting is not cut short (a slow broker would never be reached): it ends by
            // itself within the connection timeout. Once connected, wake up to check `stop`.
            let event = if self.connected {
                connection.recv_timeout(Duration::from_millis(500))
            } else {
                connection
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected)
            };
            match event {
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => self.connected(),
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => self.publish(p),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.connected = false;
                    self.failures += 1;
                    let wait = backoff_wait(self.failures);
                    log.warn(&format!(
                        "MQTT broker {}: {e}; retrying in {} s",
                        self.opts.broker.address(),
                        wait.as_secs()
                    ));
                    sleep_unless(&self.stop, wait);
                }
            }
        }
        let _ = self.shared.client.try_disconnect();
        // One more turn sends the DISCONNECT.
        let _ = connection.recv_timeout(Duration::from_millis(200));
        self.sites.close();
        log.info("MQTT: stopped");
    }

    /// (Re)connected: subscribe (the session is clean each time).
    fn connected(&mut self) {
        self.connected = true;
        self.failures = 0;
        let mut topics: Vec<String> = if self.opts.sites.is_empty() {
            vec![messages::AUDIO_FRAME_ALL.to_string()]
        } else {
            self.opts
                .sites
                .iter()
                .map(|s| messages::audio_frame(s))
                .collect()
        };
        topics.extend(
            [
                messages::TOGGLE_OFF,
                messages::TOGGLE_ON,
                messages::GET_HOTWORDS,
            ]
            .map(String::from),
        );
        let filters = topics
            .into_iter()
            .map(|t| rumqttc::SubscribeFilter::new(t, QoS::AtMostOnce));
        match self.shared.client.try_subscribe_many(filters) {
            Ok(()) => self.shared.log.info(&format!(
                "MQTT: connected to {}",
                self.opts.broker.address()
            )),
            Err(e) => self
                .shared
                .log
                .error(&format!("MQTT: cannot subscribe: {e}")),
        }
    }

    /// One incoming message.
    fn publish(&mut self, p: Publish) {
        let topic = p.topic.as_str();
        if let Some(site) = messages::site_of_audio_frame(topic) {
            let site = site.to_string();
            self.sites.frame(&site, p.payload.to_vec());
            return;
        }
        let handled = match topic {
            messages::TOGGLE_OFF | messages::TOGGLE_ON => {
                messages::parse_control(topic, &p.payload).map(|t| self.toggle(topic, t))
            }
            messages::GET_HOTWORDS => {
                messages::parse_control(topic, &p.payload).map(|g| self.hotwords(g))
            }
            _ => Ok(()),
        };
        if let Err(e) = handled {
            self.shared.log.warn(&e);
        }
    }

    /// `toggleOn` / `toggleOff` for a site hark hears (others are ignored).
    fn toggle(&mut self, topic: &str, t: Toggle) {
        let Some(state) = self.sites.state(&t.site_id) else {
            return;
        };
        let what = if topic == messages::TOGGLE_OFF {
            state.off(&t.reason);
            "off"
        } else {
            state.on(&t.reason);
            "on"
        };
        self.shared.log.debug(&format!(
            "MQTT site {:?}: toggle {what} ({:?}); now {}",
            t.site_id,
            t.reason,
            if state.is_off() { "off" } else { "on" }
        ));
    }

    /// Answers `getHotwords` with the head's words.
    fn hotwords(&self, g: GetHotwords) {
        if !self.sites.serves(&g.site_id) {
            return;
        }
        let body = serde_json::to_vec(&Hotwords::new(&self.shared.engine.words(), g)).unwrap();
        if let Err(e) =
            self.shared
                .client
                .try_publish(messages::HOTWORDS, QoS::AtMostOnce, false, body)
        {
            self.shared
                .log
                .warn(&format!("MQTT: hotwords answer not sent: {e}"));
        }
    }
}
