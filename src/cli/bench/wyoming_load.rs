//! The load of `hark bench --streams`: N Wyoming clients in this process, each sending
//! `detect` and `audio-start`, then its audio in 10 ms chunks paced by the clock, as Home
//! Assistant does. Two writer threads pace the chunks (the clients' phases spread over one
//! chunk period); one reader thread polls every socket and stamps each `detection` with the
//! time it arrived.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Samples per chunk: 10 ms at 16 kHz.
pub const CHUNK: usize = 160;
/// Threads that write the chunks.
const WRITERS: usize = 2;
/// How long the reader waits for late detections after the last chunk.
const DRAIN: Duration = Duration::from_millis(1500);
/// Cap on one event's header line or data block from the server.
const MAX_EVENT: usize = 64 * 1024;

/// One `detection` event as a client received it.
#[derive(Clone, Debug)]
pub struct Heard {
    pub word: String,
    /// The event's `timestamp`: seconds of audio since `audio-start`.
    pub audio_time: f64,
    /// When it arrived, seconds after the load's time zero.
    pub arrived: f64,
}

/// What the clients saw.
pub struct LoadResult {
    /// Per client: when its audio time zero fell, seconds after the load's time zero.
    pub starts: Vec<f64>,
    /// Per client: the detections it received.
    pub heard: Vec<Vec<Heard>>,
    /// Per client: the first error (connection refused, write failed, `error` event), if any.
    pub errors: Vec<Option<String>>,
    /// The worst lateness of a chunk write against its clock time, seconds.
    pub max_lag: f64,
}

/// The audio the clients send: client `i` sends `samples[offsets[i]..offsets[i] + len]` (16 kHz
/// int16), so that N clients share one buffer.
pub struct Feed<'a> {
    pub samples: &'a [i16],
    pub offsets: &'a [usize],
    pub len: usize,
}

impl Feed<'_> {
    /// Client `i`'s chunk `k`.
    fn chunk(&self, i: usize, k: usize) -> &[i16] {
        let o = self.offsets[i] + k * CHUNK;
        &self.samples[o..o + CHUNK]
    }
}

/// Runs `feed.offsets.len()` clients against `127.0.0.1:port`, each sending its audio in real
/// time.
pub fn run(port: u16, feed: &Feed) -> Result<LoadResult> {
    let n = feed.offsets.len();
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        let s = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("client {i}: cannot connect to 127.0.0.1:{port}"))?;
        s.set_nodelay(true)?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut w = &s;
        write_event(&mut w, "detect", &json!({"names": null}), &[])?;
        let fmt = json!({"rate": 16000, "width": 2, "channels": 1});
        write_event(&mut w, "audio-start", &fmt, &[])?;
        socks.push(s);
    }
    let period = CHUNK as f64 / 16000.0;
    let t0 = Instant::now();
    let starts: Vec<f64> = (0..n).map(|i| 0.2 + period * i as f64 / n as f64).collect();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<TcpStream> = socks
        .iter()
        .map(|s| s.try_clone())
        .collect::<Result<_, _>>()?;
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || read_all(&readers, t0, &done))
    };
    let (errors, max_lag) = write_all(&socks, feed, &starts, t0)?;
    std::thread::sleep(DRAIN);
    done.store(true, Ordering::Relaxed);
    let (heard, read_errors) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    let errors = errors
        .into_iter()
        .zip(read_errors)
        .map(|(w, r)| w.or(r))
        .collect();
    Ok(LoadResult {
        starts,
        heard,
        errors,
        max_lag,
    })
}

/// Writes every client's chunks on [`WRITERS`] threads, client `i`'s chunk `k` when its
/// 10 ms have passed (at `starts[i] + (k + 1) * period`). Returns each client's write error
/// and the worst lag.
fn write_all(
    socks: &[TcpStream],
    feed: &Feed,
    starts: &[f64],
    t0: Instant,
) -> Result<(Vec<Option<String>>, f64)> {
    let n = socks.len();
    let mut errors = vec![None; n];
    let mut max_lag = 0.0f64;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS.min(n))
            .map(|w| {
                let mine: Vec<usize> = (w..n).step_by(WRITERS).collect();
                scope.spawn(move || write_some(&mine, socks, feed, starts, t0))
            })
            .collect();
        for h in handles {
            let (errs, lag) = h.join().unwrap_or_default();
            max_lag = max_lag.max(lag);
            for (i, e) in errs {
                errors[i] = Some(e);
            }
        }
    });
    Ok((errors, max_lag))
}

/// One writer thread's clients (`mine`, in order of phase): the errors by client, and the
/// worst lag.
fn write_some(
    mine: &[usize],
    socks: &[TcpStream],
    feed: &Feed,
    starts: &[f64],
    t0: Instant,
) -> (Vec<(usize, String)>, f64) {
    let period = CHUNK as f64 / 16000.0;
    let chunks = feed.len / CHUNK;
    let mut failed = vec![false; socks.len()];
    let mut errors = Vec::new();
    let mut max_lag = 0.0f64;
    let mut bytes = Vec::with_capacity(CHUNK * 2);
    let header = format!(
        "{}\n",
        json!({"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1},
               "payload_length": CHUNK * 2, "version": "1.10.2"})
    );
    for k in 0..chunks {
        for &i in mine {
            if failed[i] {
                continue;
            }
            let due = starts[i] + (k + 1) as f64 * period;
            let now = t0.elapsed().as_secs_f64();
            if now < due {
                std::thread::sleep(Duration::from_secs_f64(due - now));
            } else {
                max_lag = max_lag.max(now - due);
            }
            bytes.clear();
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend(feed.chunk(i, k).iter().flat_map(|v| v.to_le_bytes()));
            if let Err(e) = (&socks[i]).write_all(&bytes) {
                failed[i] = true;
                errors.push((i, format!("client {i}: write failed at chunk {k}: {e}")));
            }
        }
    }
    (errors, max_lag)
}

/// Writes one event: header line with inline data, then the payload.
fn write_event(w: &mut impl Write, kind: &str, data: &Value, payload: &[u8]) -> Result<()> {
    let h =
        json!({"type": kind, "data": data, "payload_length": payload.len(), "version": "1.10.2"});
    w.write_all(format!("{h}\n").as_bytes())?;
    w.write_all(payload)?;
    Ok(())
}

/// Per client: the bytes received and not yet parsed, and what they held.
#[derive(Default)]
struct Inbox {
    buf: Vec<u8>,
    heard: Vec<Heard>,
    error: Option<String>,
    closed: bool,
}

/// The reader thread: polls every socket until `done`, parsing events as they come.
fn read_all(
    socks: &[TcpStream],
    t0: Instant,
    done: &AtomicBool,
) -> (Vec<Vec<Heard>>, Vec<Option<String>>) {
    let mut inboxes: Vec<Inbox> = socks.iter().map(|_| Inbox::default()).collect();
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut chunk = vec![0u8; 64 * 1024];
    while !done.load(Ordering::Relaxed) {
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        if r <= 0 {
            continue;
        }
        let now = t0.elapsed().as_secs_f64();
        for (i, pfd) in fds.iter_mut().enumerate() {
            if pfd.revents == 0 || inboxes[i].closed {
                continue;
            }
            let got = std::io::Read::read(&mut &socks[i], &mut chunk);
            let inbox = &mut inboxes[i];
            match got {
                Ok(0) | Err(_) => {
                    inbox.closed = true;
                    pfd.fd = -1;
                    inbox
                        .error
                        .get_or_insert(format!("client {i}: the server closed the connection"));
                }
                Ok(m) => {
                    inbox.buf.extend_from_slice(&chunk[..m]);
                    if let Err(e) = parse(inbox, now) {
                        inbox.error.get_or_insert(format!("client {i}: {e}"));
                        inbox.closed = true;
                        pfd.fd = -1;
                    }
                }
            }
        }
    }
    inboxes.into_iter().map(|b| (b.heard, b.error)).unzip()
}

/// Takes every complete event out of `inbox.buf`; keeps detections and the first `error`.
fn parse(inbox: &mut Inbox, now: f64) -> Result<()> {
    loop {
        let Some(nl) = inbox.buf.iter().position(|&b| b == b'\n') else {
            if inbox.buf.len() > MAX_EVENT {
                bail!("a header line over {MAX_EVENT} bytes");
            }
            return Ok(());
        };
        let header: Value = serde_json::from_slice(&inbox.buf[..nl]).context("bad header")?;
        let len = |k: &str| header.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
        let (dl, pl) = (len("data_length"), len("payload_length"));
        if dl > MAX_EVENT || pl > MAX_EVENT {
            bail!("an event over {MAX_EVENT} bytes");
        }
        if inbox.buf.len() < nl + 1 + dl + pl {
            return Ok(());
        }
        let mut data = header.get("data").cloned().unwrap_or(json!({}));
        if dl > 0 {
            let block: Value = serde_json::from_slice(&inbox.buf[nl + 1..nl + 1 + dl])?;
            if let (Some(d), Value::Object(b)) = (data.as_object_mut(), block) {
                d.extend(b);
            }
        }
        inbox.buf.drain(..nl + 1 + dl + pl);
        match header.get("type").and_then(Value::as_str) {
            Some("detection") => inbox.heard.push(Heard {
                word: data["name"].as_str().unwrap_or("").to_string(),
                audio_time: data["timestamp"].as_f64().unwrap_or(-1.0) / 1000.0,
                arrived: now,
            }),
            Some("error") => {
                inbox.error.get_or_insert(format!("error event: {data}"));
            }
            _ => {}
        }
    }
}
