//! `hark bench --soak [--hours H]`: a day of audio through the real `hark listen --input`,
//! faster than real time. The audio (espeak words, the trained ones among others, and, when
//! `../shared/data` is there, recorded digits, over noise) is generated here and streamed
//! through a FIFO, never written whole. Everything is paced by the audio written: a SIGHUP
//! every simulated minute, a socket client that connects every 4 simulated seconds (closing at
//! once, reading a little then closing, or staying a while without reading), one client that
//! reads every event throughout, and a hook (`[hook]`) that runs per event. It prints the
//! daemon's VmRSS peak per simulated hour, its dropped samples, the events the reading client
//! got against those the daemon reported, and its open file descriptors at the start and at
//! the end; it fails (exit 1) if any of those checks fails.

use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{tempfile_dir, BenchOptions, Hark};
use figures::{read_log, Figures};
use hark::audio::synth;
use hark::pipeline::frontend::SAMPLE_RATE;

/// The longest run: a WAV header's 32-bit data length holds 37 hours of 16-bit 16 kHz mono.
const MAX_HOURS: f64 = 37.0;
/// Seconds of audio that repeat: words, then digits, then noise.
const SEGMENT_S: usize = 120;
/// The most long-lived churn clients held at once (the daemon keeps 256).
const HELD: usize = 8;

mod figures;

/// `hark bench --soak`: runs the soak for `hours` of audio and prints its tables; an error if
/// a check failed.
pub fn report(o: &BenchOptions, assets: &hark::assets::Assets, hours: f64) -> Result<()> {
    if !(hours > 0.0 && hours <= MAX_HOURS) {
        bail!("--hours {hours}: must be more than 0 and at most {MAX_HOURS}");
    }
    let dir = tempfile_dir()?;
    let t0 = Instant::now();
    let res = run(o, assets, &dir, hours);
    let _ = std::fs::remove_dir_all(&dir);
    let f = res?;
    for line in f.table(hours, t0.elapsed().as_secs_f64(), o.soak_rss_slack_mb) {
        println!("{line}");
    }
    let failed = f.failures(o.soak_rss_slack_mb);
    if !failed.is_empty() {
        bail!("soak: {}", failed.join("; "));
    }
    println!("\nsoak: every check passed");
    Ok(())
}

/// Sets up the head, the config and the audio, runs the daemon on it and collects the figures.
fn run(o: &BenchOptions, assets: &hark::assets::Assets, dir: &Path, hours: f64) -> Result<Figures> {
    let hark = Hark {
        exe: o.hark.clone(),
        models: std::fs::canonicalize(&assets.dir)?,
        dir: dir.to_path_buf(),
    };
    let recordings = dir.join("recordings");
    synth::write_recordings(&recordings, synth::VOICE)?;
    let head = dir.join("soak.head");
    hark.train(&recordings, &head)?;
    let config = dir.join("soak.toml");
    let sock = dir.join("soak.sock");
    std::fs::write(&config, config_text(&head, &sock))?;
    let segment = segment(&o.data)?;
    let fifo = dir.join("audio.fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes())?;
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        bail!("{}: {}", fifo.display(), std::io::Error::last_os_error());
    }
    let child = Command::new(&hark.exe)
        .args(["listen", "--quiet", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(&fifo)
        .arg("--models")
        .arg(&hark.models)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", hark.exe.display()))?;
    let total = (hours * 3600.0 * SAMPLE_RATE as f64) as u64;
    let mut f = drive(child, &fifo, &sock, &segment, total)?;
    f.hook_runs =
        std::fs::read_to_string(dir.join("hooks.log")).map_or(0, |s| s.lines().count() as u64);
    Ok(f)
}

/// The daemon's config: the trained head, the socket in the soak's folder, and a hook that
/// appends the word to `hooks.log`.
fn config_text(head: &Path, sock: &Path) -> String {
    format!(
        "head = {:?}\nlog_level = \"info\"\n[socket]\npath = {:?}\n[hook]\n\
         command = [\"sh\", \"-c\", \"echo \\\"$HARK_WORD\\\" >> hooks.log\"]\ntimeout = 10.0\n",
        head.display().to_string(),
        sock.display().to_string()
    )
}

/// The audio that repeats, as 16-bit little-endian bytes: two rounds of espeak words (each
/// trained word and as many others, new takes, 1 s apart), recorded digits when the shared
/// data is there, then room noise to [`SEGMENT_S`] seconds.
fn segment(data: &Path) -> Result<Vec<u8>> {
    let (mut x, _) = synth::stream(synth::VOICE, 2)?;
    if data.join("fsdd").is_dir() {
        x.extend(hark::eval::speech_stream(data, 7, 20)?);
    }
    let n = SEGMENT_S * SAMPLE_RATE as usize;
    if x.len() < n {
        let rest = (n - x.len()) as f32 / SAMPLE_RATE as f32;
        x.extend(synth::noise(rest, 30.0, 5));
    }
    x.truncate(n);
    Ok(x.iter()
        .flat_map(|v| (v.clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect())
}

/// A 16 kHz mono 16-bit WAV header for `samples` samples.
fn wav_header(samples: u64) -> Vec<u8> {
    let data = (samples * 2).min(u32::MAX as u64 - 36) as u32;
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(data + 36).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    h.extend_from_slice(&(SAMPLE_RATE * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data.to_le_bytes());
    h
}

/// Streams `total` samples of `segment`, repeated, into the daemon's FIFO, with the signals,
/// clients and measurements paced by the audio written; then ends the stream and waits.
fn drive(
    mut child: Child,
    fifo: &Path,
    sock: &Path,
    segment: &[u8],
    total: u64,
) -> Result<Figures> {
    let pid = child.id() as i32;
    let stderr = child.stderr.take().context("no stderr")?;
    let reloads = Arc::new(AtomicU64::new(0));
    let log = {
        let reloads = reloads.clone();
        std::thread::spawn(move || read_log(stderr, &reloads))
    };
    let opened = open_fifo(fifo, &mut child);
    let mut w = match opened {
        Ok(w) => w,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let (_, _, s) = log.join().unwrap_or_default();
            bail!("{e:#}; hark listen said: {}", s.line);
        }
    };
    w.write_all(&wav_header(total))?;
    let read = Arc::new(AtomicU64::new(0));
    let reader = reading_client(sock, read.clone())?;
    let fds_start = settle(&w, pid, None)?;
    // The last second waits until the end's descriptors are counted: the daemon exits once
    // it has read the length its header promised.
    let mut s = Stream::new(total);
    let last = total.saturating_sub(SAMPLE_RATE as u64);
    s.run(&mut w, segment, (pid, sock, &read, &reloads), last)?;
    s.churn.held.clear();
    let fds_end = settle(&w, pid, Some(fds_start))?;
    s.run(&mut w, segment, (pid, sock, &read, &reloads), total)?;
    drop(w);
    let status = wait_exit(&mut child, Duration::from_secs(120))?;
    let (reloads, hook_skips, mut summary) = log.join().unwrap_or_default();
    summary.ok = status.success();
    Ok(Figures {
        rows: s.rows,
        fds_start,
        fds_end,
        read: reader.join().unwrap_or(0),
        summary,
        sighups: s.sighups,
        reloads,
        churn: s.churn,
        hook_runs: 0,
        hook_skips,
        audio_s: total as f64 / SAMPLE_RATE as f64,
    })
}

/// Opens the FIFO's write end once the daemon has opened its read end (it does so after
/// loading the model and binding the socket); an error if it exits first or takes a minute.
fn open_fifo(fifo: &Path, child: &mut Child) -> Result<std::fs::File> {
    let t0 = Instant::now();
    loop {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo);
        if let Ok(f) = f {
            use std::os::fd::AsRawFd;
            let fd = f.as_raw_fd();
            unsafe {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
            return Ok(f);
        }
        if let Some(st) = child.try_wait()? {
            bail!("hark listen exited ({st}) before opening its input");
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("hark listen did not open {} within 60 s", fifo.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The client that stays connected and reads every event; counts them in `read` and returns
/// the count when the daemon closes it.
fn reading_client(sock: &Path, read: Arc<AtomicU64>) -> Result<std::thread::JoinHandle<u64>> {
    let t0 = Instant::now();
    let s = loop {
        match UnixStream::connect(sock) {
            Ok(s) => break s,
            Err(e) if t0.elapsed() > Duration::from_secs(10) => {
                bail!("cannot connect to {}: {e}", sock.display())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Ok(std::thread::spawn(move || {
        for line in BufReader::new(s).lines() {
            match line {
                Ok(l) if l.contains("\"word\"") => {
                    read.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        read.load(Ordering::Relaxed)
    }))
}

/// Waits until the daemon has taken everything written (the FIFO is empty) and 1 s more (its
/// hooks end, hung-up clients are let go), then counts its open file descriptors; when that is
/// not `expect`, counts again every 100 ms for up to 10 s (a last hook may still run).
fn settle(w: &std::fs::File, pid: i32, expect: Option<usize>) -> Result<usize> {
    use std::os::fd::AsRawFd;
    let t0 = Instant::now();
    loop {
        let mut n: libc::c_int = 0;
        unsafe { libc::ioctl(w.as_raw_fd(), libc::FIONREAD, &mut n) };
        if n == 0 || t0.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    loop {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("cannot list the daemon's (pid {pid}) file descriptors"))?
            .count();
        if expect.is_none_or(|e| e == fds) || t0.elapsed() > Duration::from_secs(10) {
            return Ok(fds);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon's VmRSS, kB (0 once it is gone).
fn vm_rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            l.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// The socket clients that come and go.
#[derive(Default)]
pub(super) struct Churn {
    pub(super) connects: u64,
    /// Connections refused or failed: none may be.
    pub(super) failed: u64,
    pub(super) held: VecDeque<UnixStream>,
}

impl Churn {
    /// One more client: every third closes at once, every third reads a little and closes,
    /// every third stays, without reading, until [`HELD`] newer ones have come.
    fn step(&mut self, sock: &Path) {
        let Ok(mut s) = UnixStream::connect(sock) else {
            self.failed += 1;
            return;
        };
        self.connects += 1;
        match self.connects % 3 {
            0 => drop(s),
            1 => {
                let _ = s.set_read_timeout(Some(Duration::from_millis(2)));
                let _ = s.read(&mut [0u8; 256]);
            }
            _ => {
                self.held.push_back(s);
                if self.held.len() > HELD {
                    self.held.pop_front();
                }
            }
        }
    }
}

/// The audio being written and what is paced by it.
struct Stream {
    total: u64,
    /// Simulated seconds per row of the RSS table: an hour, or a quarter of a short run.
    row_s: u64,
    rows: Vec<(u64, u64, u64)>,
    sighups: u64,
    churn: Churn,
    /// Where the next write starts in the segment, samples written, and the VmRSS peak of the
    /// current row.
    at: usize,
    written: u64,
    peak: u64,
}

impl Stream {
    fn new(total: u64) -> Stream {
        let total_s = total.div_ceil(SAMPLE_RATE as u64);
        let row_s = if total_s >= 2 * 3600 {
            3600
        } else {
            total_s.div_ceil(4).max(1)
        };
        Stream {
            total,
            row_s,
            rows: Vec::new(),
            sighups: 0,
            churn: Churn::default(),
            at: 0,
            written: 0,
            peak: 0,
        }
    }

    /// Writes the audio up to sample `until`, one simulated second at a time: a SIGHUP every
    /// 60 s, a churn client every 4 s, a VmRSS sample every 2 s.
    fn run(
        &mut self,
        w: &mut std::fs::File,
        segment: &[u8],
        (pid, sock, read, reloads): (i32, &Path, &AtomicU64, &AtomicU64),
        until: u64,
    ) -> Result<()> {
        let sr = SAMPLE_RATE as u64;
        while self.written < until {
            let n = (until - self.written).min(sr - self.written % sr);
            let mut left = n as usize * 2;
            while left > 0 {
                let k = left.min(segment.len() - self.at);
                w.write_all(&segment[self.at..self.at + k])
                    .context("hark listen stopped reading its input")?;
                (self.at, left) = ((self.at + k) % segment.len(), left - k);
            }
            self.written += n;
            if !self.written.is_multiple_of(sr) && self.written < self.total {
                continue;
            }
            let sec = self.written.div_ceil(sr);
            let ending = self.written >= self.total;
            if sec.is_multiple_of(60) && !ending {
                self.sighup(pid, reloads);
            }
            if sec.is_multiple_of(4) {
                self.churn.step(sock);
            }
            if sec.is_multiple_of(2) && !ending {
                self.peak = self.peak.max(vm_rss_kb(pid));
            }
            if sec.is_multiple_of(self.row_s) || self.written >= self.total {
                self.rows
                    .push((sec, self.peak, read.load(Ordering::Relaxed)));
                self.peak = 0;
            }
        }
        Ok(())
    }

    /// Sends the next SIGHUP once the daemon has logged the reload of the one before (up to
    /// 10 s): signals that arrive together are delivered as one.
    fn sighup(&mut self, pid: i32, reloads: &AtomicU64) {
        let t0 = Instant::now();
        while reloads.load(Ordering::Relaxed) < self.sighups
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        unsafe { libc::kill(pid, libc::SIGHUP) };
        self.sighups += 1;
    }
}

/// Waits for the daemon to exit after the end of its input; kills it after `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> Result<std::process::ExitStatus> {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            bail!("hark listen did not exit within {limit:?} of the end of its input");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_says_16_bit_mono_16_khz_and_its_length() {
        let h = wav_header(16_000);
        assert_eq!(h.len(), 44);
        assert_eq!(&h[40..44], &32_000u32.to_le_bytes());
        let r = hound::WavReader::new(std::io::Cursor::new([h, vec![0; 32_000]].concat())).unwrap();
        assert_eq!(
            (r.spec().sample_rate, r.spec().channels, r.duration()),
            (16_000, 1, 16_000)
        );
    }
}
