//! The signal thread: turns SIGINT/SIGTERM into [`Control::Stop`] and SIGHUP into
//! [`Control::Reload`] for the main loop.

use anyhow::{Context, Result};
use crossbeam_channel::Receiver;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use std::thread::JoinHandle;

/// What a signal asks of the daemon.
pub enum Control {
    /// Stop cleanly (the signal's number, for the log).
    Stop(i32),
    /// Reload the config and the head.
    Reload,
}

/// The thread that listens for signals.
pub struct SignalThread {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalThread {
    /// Installs the handlers; each signal then arrives as a [`Control`] on the returned channel.
    pub fn spawn() -> Result<(SignalThread, Receiver<Control>)> {
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<Control>();
        let mut signals =
            Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install signal handlers")?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for s in signals.forever() {
                let msg = if s == SIGHUP {
                    Control::Reload
                } else {
                    Control::Stop(s)
                };
                if ctl_tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Ok((SignalThread { handle, thread }, ctl_rx))
    }

    /// Stops listening and waits for the thread.
    pub fn close(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}
