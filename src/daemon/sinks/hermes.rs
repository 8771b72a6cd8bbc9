//! The Hermes sink: `hark listen` publishes each detection of its own microphone as
//! `hermes/hotword/<word>/detected` for its site (`[mqtt] site_id`), as Rhasspy's wake-word
//! services do. The broker connection runs on its own thread and reconnects with back-off; an
//! event that cannot be queued for the broker is dropped and counted, never waited for.

use anyhow::Result;
use rumqttc::{Client, Connection, QoS, RecvTimeoutError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::Sink;
use crate::daemon::recovery::{backoff_wait, sleep_unless};
use crate::daemon::{Log, Summary};
use crate::hermes::messages::{detected, Detected};
use crate::hermes::{client_options, Broker};
use hark::pipeline::detector::Detection;

/// Publishes detections to an MQTT broker.
pub struct Hermes {
    client: Client,
    site: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Events handed to the client, and those it could not queue.
    sent: u64,
    dropped: u64,
}

impl Hermes {
    /// Starts the broker connection for `site`.
    pub fn start(broker: &Broker, site: &str, log: Log) -> Result<Hermes> {
        let (client, connection) = Client::new(client_options(broker, ""), 64);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let address = broker.address();
        let thread = std::thread::Builder::new()
            .name("hark-mqtt".into())
            .spawn(move || drive(connection, &flag, &address, log))?;
        Ok(Hermes {
            client,
            site: site.to_string(),
            stop,
            thread: Some(thread),
            sent: 0,
            dropped: 0,
        })
    }
}

/// Drives the connection until `stop`: rumqttc reconnects on the next poll after an error,
/// which this spaces out 1, 2, 4 ... 30 s.
fn drive(mut connection: Connection, stop: &AtomicBool, address: &str, log: Log) {
    let mut failures = 0;
    while !stop.load(Ordering::SeqCst) {
        match connection.recv_timeout(Duration::from_millis(300)) {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))) => {
                log.info(&format!("mqtt: connected to {address}"));
                failures = 0;
            }
            Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
            Ok(Err(e)) => {
                failures += 1;
                let wait = backoff_wait(failures);
                log.warn(&format!(
                    "mqtt: {address}: {e}; retrying in {} s",
                    wait.as_secs()
                ));
                sleep_unless(stop, wait);
            }
        }
    }
}

impl Sink for Hermes {
    fn event(&mut self, d: &Detection, _json: &str) -> Result<()> {
        let payload = serde_json::to_vec(&Detected::new(&d.word, d.threshold, &self.site))?;
        self.sent += 1;
        if self
            .client
            .try_publish(detected(&d.word), QoS::AtMostOnce, false, payload)
            .is_err()
        {
            self.dropped += 1;
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(format!("hotword events on MQTT for site {}", self.site))
    }

    fn finish(&mut self, _summary: &mut Summary) {
        // Give queued events a moment to reach the broker, then close.
        if self.sent > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.client.try_disconnect();
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.dropped > 0 {
            eprintln!(
                "hark: warning: mqtt: {} event(s) could not be queued for the broker",
                self.dropped
            );
        }
    }
}
