//! The hook sink: a command run for each event, without a shell.
//!
//! Each hook runs in a process group of its own, with its output sent to hark's log (stderr)
//! rather than among the events on stdout. At most [`MAX_RUNNING`] run at once; the events that
//! find them all busy wait in a queue of [`MAX_WAITING`], and an event beyond that skips its
//! hook, with a warning. A hook that outlives `hook.timeout` is killed with everything it
//! started. When hark stops it gives the running and waiting hooks up to [`GRACE`] to finish,
//! then kills the rest (and if hark itself dies, the kernel sends them SIGTERM): none is left
//! behind.

use anyhow::{Context, Result};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Sink;
use crate::daemon::config::{Config, HookConfig};
use hark::pipeline::detector::Detection;

/// Hooks running at once, at most.
pub const MAX_RUNNING: usize = 4;
/// Events waiting for a hook to finish, at most.
pub const MAX_WAITING: usize = 16;
/// How long hooks may still run when hark stops.
pub const GRACE: Duration = Duration::from_secs(5);

/// Runs the configured command (`hook.command`) for each event; none if it is empty.
pub struct Hook {
    config: HookConfig,
    /// The hooks still running, with when each started.
    running: Vec<(Child, Instant)>,
    /// Events waiting for a free slot: the detection and its JSON line.
    waiting: std::collections::VecDeque<(Detection, String)>,
}

impl Hook {
    pub fn new(config: &HookConfig) -> Hook {
        Hook {
            config: config.clone(),
            running: Vec::new(),
            waiting: std::collections::VecDeque::new(),
        }
    }

    /// Starts waiting hooks while there are free slots.
    fn start_waiting(&mut self) -> Result<()> {
        while self.running.len() < MAX_RUNNING {
            let Some((d, json)) = self.waiting.pop_front() else {
                break;
            };
            let child = spawn_hook(&self.config.command, &d, &json)?;
            self.running.push((child, Instant::now()));
        }
        Ok(())
    }

    /// Reaps the hooks that ended and kills those past their time.
    fn reap(&mut self) {
        let timeout = Duration::from_secs_f32(self.config.timeout);
        self.running.retain_mut(|(child, started)| {
            if !matches!(child.try_wait(), Ok(None)) {
                return false;
            }
            if started.elapsed() < timeout {
                return true;
            }
            eprintln!(
                "hark: warning: hook (pid {}) still running after {} s: killed",
                child.id(),
                timeout.as_secs_f32()
            );
            kill_group(child);
            false
        });
    }
}

impl Sink for Hook {
    fn event(&mut self, d: &Detection, json: &str) -> Result<()> {
        if self.config.command.is_empty() {
            return Ok(());
        }
        self.reap();
        if self.waiting.len() >= MAX_WAITING {
            anyhow::bail!(
                "hook: {MAX_RUNNING} hooks are running and {MAX_WAITING} events waiting; skipped for this {} event",
                d.word
            );
        }
        self.waiting.push_back((d.clone(), json.to_string()));
        self.start_waiting()
    }

    fn tick(&mut self) {
        self.reap();
        if let Err(e) = self.start_waiting() {
            eprintln!("hark: warning: {e:#}");
        }
    }

    fn reload(&mut self, cfg: &Config) {
        self.config = cfg.hook.clone();
    }

    fn finish(&mut self, _summary: &mut crate::daemon::Summary) {
        let end = Instant::now() + GRACE;
        while !(self.running.is_empty() && self.waiting.is_empty()) && Instant::now() < end {
            self.tick();
            std::thread::sleep(Duration::from_millis(20));
        }
        for (child, _) in &mut self.running {
            kill_group(child);
        }
        self.running.clear();
        self.waiting.clear();
    }
}

/// Starts the hook program (no shell) with the event in its environment, in a process group
/// of its own, its output on stderr, and SIGTERM as its signal should hark die.
fn spawn_hook(command: &[String], d: &Detection, json: &str) -> Result<Child> {
    let (prog, args) = command.split_first().expect("a hook command");
    let log = std::io::stderr().as_fd().try_clone_to_owned()?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env("HARK_WORD", &d.word)
        .env("HARK_SCORE", format!("{:.4}", d.score))
        .env("HARK_TIME", format!("{:.3}", d.time))
        .env("HARK_EVENT", json)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("hook {prog:?}: cannot run"))
}

/// Kills a hook's whole process group and reaps the hook.
fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) with a negative pid signals the group the hook leads.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}
