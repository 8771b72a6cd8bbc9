//! The soak's figures: what it measured, the daemon's log read for its reloads and summary,
//! the checks, and the tables.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Churn, HELD};

/// What the soak measured.
pub(super) struct Figures {
    /// (end of the row in simulated seconds, VmRSS peak kB in it, events read by then).
    pub(super) rows: Vec<(u64, u64, u64)>,
    pub(super) fds_start: usize,
    pub(super) fds_end: usize,
    /// Events the reading client got.
    pub(super) read: u64,
    /// From the daemon's summary line.
    pub(super) summary: Summary,
    /// SIGHUPs sent, and reloads the daemon logged.
    pub(super) sighups: u64,
    pub(super) reloads: u64,
    pub(super) churn: Churn,
    /// Lines the hook wrote (one per run).
    pub(super) hook_runs: u64,
    pub(super) hook_skips: u64,
    /// Seconds of audio streamed.
    pub(super) audio_s: f64,
}

/// The counts of `hark listen`'s summary line.
#[derive(Default)]
pub(super) struct Summary {
    pub(super) ok: bool,
    pub(super) line: String,
    pub(super) events: u64,
    pub(super) dropped_samples: u64,
    pub(super) dropped_clients: u64,
}

/// Reads the daemon's log: the reloads it logged, the hooks it skipped, and its summary.
pub(super) fn read_log(
    stderr: std::process::ChildStderr,
    reloads: &AtomicU64,
) -> (u64, u64, Summary) {
    let (mut skips, mut s) = (0, Summary::default());
    for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
        if line.starts_with("hark: reloaded") {
            reloads.fetch_add(1, Ordering::Relaxed);
        } else if line.contains("hooks are running") {
            skips += 1;
        } else if line.starts_with("hark: stopped after") {
            s.events = count_before(&line, " event(s)");
            s.dropped_samples = count_before(&line, " dropped sample(s)");
            s.dropped_clients = count_before(&line, " dropped client(s)");
            s.line = line;
        } else if line.contains("error") && s.line.is_empty() {
            s.line = line;
        }
    }
    (reloads.load(Ordering::Relaxed), skips, s)
}

/// The number just before `what` in `line` (`u64::MAX` when there is none: a check fails).
fn count_before(line: &str, what: &str) -> u64 {
    line.split(what)
        .next()
        .and_then(|head| head.rsplit([' ', ',']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

impl Figures {
    /// The last row's VmRSS peak minus the first's, kB.
    fn rss_growth_kb(&self) -> i64 {
        let first = self.rows.first().map_or(0, |r| r.1 as i64);
        let last = self.rows.last().map_or(0, |r| r.1 as i64);
        last - first
    }

    /// Each check that failed, as a phrase.
    pub(super) fn failures(&self, rss_slack_mb: f64) -> Vec<String> {
        let s = &self.summary;
        let mut f = Vec::new();
        if !s.ok {
            f.push(format!("hark listen failed: {}", s.line));
        }
        if self.rss_growth_kb().abs() as f64 > rss_slack_mb * 1024.0 {
            f.push(format!("VmRSS peak moved {} kB", self.rss_growth_kb()));
        }
        if s.dropped_samples != 0 {
            f.push(format!("{} dropped samples", s.dropped_samples));
        }
        if s.events == 0 || self.read != s.events {
            f.push(format!("{} of {} events read", self.read, s.events));
        }
        if self.fds_end != self.fds_start {
            f.push(format!(
                "{} fds at the start, {} at the end",
                self.fds_start, self.fds_end
            ));
        }
        if self.reloads != self.sighups {
            f.push(format!(
                "{} of {} SIGHUPs reloaded",
                self.reloads, self.sighups
            ));
        }
        if s.dropped_clients != 0 {
            f.push(format!("{} clients dropped", s.dropped_clients));
        }
        if self.churn.failed > 0 {
            f.push(format!("{} client connections failed", self.churn.failed));
        }
        f
    }

    /// The two tables: VmRSS over time, then the checks.
    pub(super) fn table(&self, hours: f64, wall: f64, rss_slack_mb: f64) -> Vec<String> {
        let mut t = vec![
            format!("| simulated time | VmRSS peak | events read by then |"),
            "| --- | --- | --- |".to_string(),
        ];
        let mut from = 0;
        for &(end, peak, read) in &self.rows {
            t.push(format!(
                "| {} - {} | {:.2} MB | {read} |",
                clock(from),
                clock(end),
                peak as f64 / 1024.0
            ));
            from = end;
        }
        let s = &self.summary;
        let c = &self.churn;
        t.push(String::new());
        t.push("| check | measured | must be |".to_string());
        t.push("| --- | --- | --- |".to_string());
        t.push(format!(
            "| VmRSS peak, last row - first | {:+.2} MB | within {rss_slack_mb} MB |",
            self.rss_growth_kb() as f64 / 1024.0
        ));
        t.push(format!("| dropped samples | {} | 0 |", s.dropped_samples));
        t.push(format!(
            "| events read by the client that stays / reported by the daemon | {} / {} | all |",
            self.read, s.events
        ));
        t.push(format!(
            "| open fds of the daemon, start / end | {} / {} | the same |",
            self.fds_start, self.fds_end
        ));
        t.push(format!(
            "| SIGHUPs sent / reloads logged | {} / {} | all |",
            self.sighups, self.reloads
        ));
        t.push(format!(
            "| churn clients connected (failed), held at most {HELD} | {} ({}) | 0 failed |",
            c.connects, c.failed
        ));
        t.push(format!(
            "| hook runs / events (skipped: busy) | {} / {} ({}) | |",
            self.hook_runs, s.events, self.hook_skips
        ));
        t.push(format!(
            "| clients the daemon dropped as too slow (none is) | {} | 0 |",
            s.dropped_clients
        ));
        t.push(format!(
            "\n({hours} h of audio, {:.0} s, in {wall:.0} s wall: {:.0}x real time; {})",
            self.audio_s,
            self.audio_s / wall.max(1e-9),
            s.line.trim_start_matches("hark: ")
        ));
        t
    }
}

/// Simulated seconds as h:mm:ss.
fn clock(s: u64) -> String {
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_are_parsed() {
        let l = "hark: stopped after 3.0 s: 12 event(s), 0 dropped sample(s), 1 dropped client(s), peak memory 30.1 MB";
        assert_eq!(count_before(l, " event(s)"), 12);
        assert_eq!(count_before(l, " dropped sample(s)"), 0);
        assert_eq!(count_before(l, " dropped client(s)"), 1);
        assert_eq!(count_before("nothing", " event(s)"), u64::MAX);
    }
}
