//! `hark bench --streams N[,N...]`: many satellites on one `hark serve`. For each N, the real
//! binary serves N Wyoming clients of this process (see [`super::wyoming_load`]), each
//! streaming the custom words and other speech over the benchmark's speech-in-noise bed in real
//! time; then openWakeWord 0.5.1 with one `Model` per stream in one Python process (see
//! [`super::peer_streams`]) on the same audio. The server's CPU time comes from
//! `/proc/<pid>/stat` over the streaming alone, its peak RSS from its `VmHWM`.

use anyhow::{bail, Context, Result};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::peer_streams::{self, PeerRow};
use super::stream_audio::StreamAudio;
use super::wyoming_load::{self, Feed, LoadResult};
use super::{BenchOptions, Hark};

/// The latency (p95) above which a row did not keep up, seconds.
const KEEP_UP_P95: f64 = 1.0;

/// One row of hark's side.
struct HarkRow {
    n: usize,
    /// Server CPU seconds per second of audio per stream.
    cpu: f64,
    /// Latencies of the words detected, seconds, sorted.
    latencies: Vec<f64>,
    targets: usize,
    /// Detections that match no word said.
    false_alarms: usize,
    peak_mb: f64,
    /// Clients that failed, and the first failure.
    failed: usize,
    first_error: Option<String>,
    /// The load generator's own worst lateness, seconds.
    max_lag: f64,
}

impl HarkRow {
    fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.latencies.len();
        (n > 0).then(|| self.latencies[((n - 1) as f64 * q).round() as usize])
    }

    /// Did the server keep up: every client served, detections arriving, p95 under 1 s?
    fn kept_up(&self) -> bool {
        self.failed == 0
            && self.latencies.len() * 2 >= self.targets
            && self.quantile(0.95).is_some_and(|p| p <= KEEP_UP_P95)
    }
}

/// Runs the benchmark for every N in `o.streams` and prints its table.
pub fn report(o: &BenchOptions, dir: &Path, hark: &Hark) -> Result<()> {
    let t0 = Instant::now();
    let seconds = if o.quick { 20.0 } else { 60.0 };
    let audio = StreamAudio::prepare(&o.data, seconds)?;
    let head = dir.join("bench.head");
    hark.train(&dir.join("recordings"), &head)?;
    let mut rows = Vec::new();
    let mut peers: Vec<Option<PeerRow>> = Vec::new();
    for &n in &o.streams {
        eprintln!(
            "bench: {n} stream(s) on hark serve, {:.0} s of audio each",
            audio.seconds()
        );
        let row = run_hark(hark, &head, &audio, n)?;
        eprintln!("bench: {}", summary(&row));
        rows.push(row);
        let peer_ok = peers
            .iter()
            .all(|p| p.as_ref().is_some_and(|p| p.kept_up()));
        peers.push(if o.peer && peer_ok {
            eprintln!("bench: {n} openWakeWord Model(s) in one Python process");
            Some(peer_streams::run(&hark.models, dir, &audio, n)?)
        } else {
            None
        });
    }
    for line in table(&rows, &peers, o.peer) {
        println!("{line}");
    }
    println!(
        "\n({:.0} s of audio per stream in 10 ms chunks for hark, 80 ms for openWakeWord; measured in {:.0} s)",
        audio.seconds(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A `hark serve` child on a free loopback port, killed if dropped while running.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts `hark serve` with room for `n` connections; waits until it listens.
    fn start(hark: &Hark, head: &Path, n: usize) -> Result<Server> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let cfg = hark.dir.join(format!("serve-{n}.toml"));
        let text = format!(
            "[wyoming]\nuri = \"tcp://127.0.0.1:{port}\"\nmax_connections = {}\n",
            n + 8
        );
        std::fs::write(&cfg, text).with_context(|| format!("cannot write {}", cfg.display()))?;
        let log = hark.dir.join(format!("serve-{n}.log"));
        let child = Command::new(&hark.exe)
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .arg("--head")
            .arg(head)
            .arg("--models")
            .arg(&hark.models)
            .current_dir(&hark.dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot run {}", hark.exe.display()))?;
        let mut s = Server { child, port, log };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if s.child.try_wait()?.is_some() || t.elapsed() > Duration::from_secs(60) {
                bail!("hark serve did not listen on port {port}: {}", s.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(s)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and the exit status must be 0.
    fn stop(mut self) -> Result<()> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait()?;
        if !status.success() {
            bail!("hark serve exited with {status}: {}", self.log_text());
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's user + system CPU seconds so far, from `/proc/<pid>/stat`.
pub(super) fn proc_cpu(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let s = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let after = s.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command's `)`.
    let (Some(u), Some(st)) = (ticks(11), ticks(12)) else {
        bail!("{path}: no utime/stime fields");
    };
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((u + st) / hz)
}

/// A process's peak resident set (`VmHWM`), MB.
pub(super) fn proc_hwm_mb(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/status");
    let s = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .with_context(|| format!("{path}: no VmHWM line"))
}

/// Serves `n` real-time clients from one `hark serve` and measures it.
fn run_hark(hark: &Hark, head: &Path, audio: &StreamAudio, n: usize) -> Result<HarkRow> {
    let server = Server::start(hark, head, n)?;
    let pid = server.child.id();
    let offsets = audio.offsets(n);
    let cpu0 = proc_cpu(pid)?;
    let feed = Feed {
        samples: &audio.doubled,
        offsets: &offsets,
        len: audio.len,
    };
    let load = wyoming_load::run(server.port, &feed)?;
    let cpu = proc_cpu(pid)? - cpu0;
    let peak_mb = proc_hwm_mb(pid)?;
    server.stop()?;
    Ok(score(n, audio, &offsets, &load, cpu, peak_mb))
}

/// Matches each client's detections to the words it was sent.
fn score(
    n: usize,
    audio: &StreamAudio,
    offsets: &[usize],
    load: &LoadResult,
    cpu: f64,
    peak_mb: f64,
) -> HarkRow {
    let mut latencies = Vec::new();
    let (mut targets, mut matched) = (0, 0);
    for (i, heard) in load.heard.iter().enumerate() {
        let words = audio.words_from(offsets[i]);
        targets += words.len();
        for (w, s, e) in &words {
            let hit = heard
                .iter()
                .find(|h| &h.word == w && hark::eval::hits(h.audio_time, *s, *e));
            if let Some(h) = hit {
                matched += 1;
                latencies.push(h.arrived - (load.starts[i] + e));
            }
        }
    }
    let total: usize = load.heard.iter().map(Vec::len).sum();
    latencies.sort_by(f64::total_cmp);
    let failed = load.errors.iter().flatten().count();
    HarkRow {
        n,
        cpu: cpu / audio.seconds() / n as f64,
        latencies,
        targets,
        false_alarms: total.saturating_sub(matched),
        peak_mb,
        failed,
        first_error: load.errors.iter().flatten().next().cloned(),
        max_lag: load.max_lag,
    }
}

/// One line on a hark row, for the progress log.
fn summary(r: &HarkRow) -> String {
    format!(
        "{} stream(s): {} of {} words detected, CPU {:.4} per stream, peak RSS {:.1} MB, load generator lag {:.0} ms{}",
        r.n,
        r.latencies.len(),
        r.targets,
        r.cpu,
        r.peak_mb,
        r.max_lag * 1000.0,
        r.first_error.as_ref().map_or(String::new(), |e| format!("; {} client(s) failed, first: {e}", r.failed))
    )
}

/// Milliseconds, or `-`.
fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{:.0} ms", v * 1000.0))
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// One row of the table: hark's cells, then openWakeWord's (`p`; `peer`: was it asked for).
fn row_line(r: &HarkRow, p: Option<&PeerRow>, peer: bool) -> String {
    let pct = 100.0 * r.latencies.len() as f64 / r.targets.max(1) as f64;
    let peer_cells = match p {
        Some(p) => format!(
            "{:.4} ({:.2}% of a core) | {} | {:.1} MB | {}",
            p.cpu,
            p.cpu * 100.0,
            ms(Some(p.delay_p95)),
            p.peak_mb,
            yes(p.kept_up())
        ),
        None if peer => "- | - | - | not run (a smaller N did not keep up)".to_string(),
        None => "- | - | - | not run (--quick or --no-peer)".to_string(),
    };
    format!(
        "| {} | {:.4} ({:.2}% of a core) | {} / {} | {} / {} ({pct:.0}%) | {} | {:.1} MB | {} | {peer_cells} |",
        r.n,
        r.cpu,
        r.cpu * 100.0,
        ms(r.quantile(0.5)),
        ms(r.quantile(0.95)),
        r.latencies.len(),
        r.targets,
        r.false_alarms,
        r.peak_mb,
        yes(r.kept_up()),
    )
}

/// hark's memory per stream beyond the fewest, from the (streams, peak MB) of the smallest and
/// largest runs.
fn per_extra_stream(sizes: &[(usize, f64)]) -> String {
    let least = sizes.iter().min_by_key(|s| s.0);
    let most = sizes.iter().max_by_key(|s| s.0);
    match (least, most) {
        (Some(&(a, ma)), Some(&(b, mb))) if b > a => format!(
            "hark memory per extra stream: {:.2} MB ({a} streams {ma:.1} MB, {b} streams {mb:.1} MB)",
            (mb - ma) / (b - a) as f64
        ),
        _ => "hark memory per extra stream: needs two numbers of streams (e.g. --streams 1,100)"
            .to_string(),
    }
}

/// The table: one row per N, hark beside openWakeWord, then the targets and the largest N
/// that kept up.
fn table(rows: &[HarkRow], peers: &[Option<PeerRow>], peer: bool) -> Vec<String> {
    let mut t = vec![
        "| streams | hark CPU per stream | hark latency p50 / p95 | hark words detected | hark false detections | hark peak RSS | hark kept up | openWakeWord CPU per stream | openWakeWord delay p95 | openWakeWord peak RSS | openWakeWord kept up |".to_string(),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    for (r, p) in rows.iter().zip(peers) {
        t.push(row_line(r, p.as_ref(), peer));
    }
    t.push("| target (100 streams) | <= 0.0050 (0.5% of a core) | p95 <= 300 ms | all | | <= 100 MB | | | | | |".to_string());
    let largest = |v: Vec<usize>| v.last().map_or("none".to_string(), |n| n.to_string());
    let hark_n = rows.iter().filter(|r| r.kept_up()).map(|r| r.n).collect();
    let peer_n = peers
        .iter()
        .flatten()
        .filter(|p| p.kept_up())
        .map(|p| p.n)
        .collect();
    let peer_largest = if peer {
        largest(peer_n)
    } else {
        "not run".to_string()
    };
    t.push(String::new());
    let sizes: Vec<(usize, f64)> = rows.iter().map(|r| (r.n, r.peak_mb)).collect();
    t.push(per_extra_stream(&sizes));
    t.push(format!(
        "largest N that kept up: hark {}, openWakeWord {peer_largest}",
        largest(hark_n)
    ));
    if let Some(r) = rows.iter().find(|r| r.max_lag > 0.1) {
        t.push(format!(
            "note: at {} streams this benchmark's own clients ran up to {:.0} ms late",
            r.n,
            r.max_lag * 1000.0
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::per_extra_stream;

    #[test]
    fn memory_per_extra_stream_is_the_slope_between_the_fewest_and_the_most() {
        let line = per_extra_stream(&[(100, 128.9), (1, 40.7), (10, 45.0)]);
        assert!(line.contains("0.89 MB"), "{line}");
        assert!(
            line.contains("1 streams 40.7 MB, 100 streams 128.9 MB"),
            "{line}"
        );
        let one = per_extra_stream(&[(2, 50.0)]);
        assert!(one.contains("needs two numbers of streams"), "{one}");
    }
}
