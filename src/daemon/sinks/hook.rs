//! The hook sink: a command run for each event, without a shell.

use anyhow::{Context, Result};

use super::Sink;
use crate::daemon::config::Config;
use hark::pipeline::detector::Detection;

/// Runs the configured command (`hook.command`) for each event; none if it is empty.
pub struct Hook {
    command: Vec<String>,
}

impl Hook {
    pub fn new(command: &[String]) -> Hook {
        Hook {
            command: command.to_vec(),
        }
    }
}

impl Sink for Hook {
    fn event(&mut self, d: &Detection, json: &str) -> Result<()> {
        run_hook(&self.command, d, json)
    }

    fn reload(&mut self, cfg: &Config) {
        self.command = cfg.hook.command.clone();
    }
}

/// Runs the hook program (no shell) with the event in its environment; does not wait for it.
pub fn run_hook(command: &[String], d: &Detection, json: &str) -> Result<()> {
    let Some((prog, args)) = command.split_first() else {
        return Ok(());
    };
    let mut child = std::process::Command::new(prog)
        .args(args)
        .env("HARK_WORD", &d.word)
        .env("HARK_SCORE", format!("{:.4}", d.score))
        .env("HARK_TIME", format!("{:.3}", d.time))
        .env("HARK_EVENT", json)
        .stdin(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("hook {prog:?}: cannot run"))?;
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}
