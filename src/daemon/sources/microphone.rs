//! Stage 0, the microphone: capture devices through cpal, and the pool of chunk buffers every
//! source fills. A source hands mono chunks (int16 scale) to the processing thread on a bounded
//! channel, from a pool of buffers allocated up front: the audio callback only converts and
//! copies, never allocates, locks or blocks. When the processing thread falls behind, the
//! callback drops samples and counts them (an overrun).

use anyhow::{bail, Context, Result};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Samples per chunk buffer.
pub const CHUNK: usize = 2048;
/// Buffers in the pool (about 2.7 s at 48 kHz).
pub const POOL: usize = 64;

/// A chunk of mono samples at the source rate.
pub struct Chunk {
    pub data: Box<[f32; CHUNK]>,
    pub len: usize,
}

impl Chunk {
    pub fn samples(&self) -> &[f32] {
        &self.data[..self.len]
    }
}

/// The pool: full chunks flow source -> processing on `full`; empty ones come back on `free`.
pub struct Pool {
    pub full_tx: Sender<Chunk>,
    pub full_rx: Receiver<Chunk>,
    pub free_tx: Sender<Chunk>,
    pub free_rx: Receiver<Chunk>,
}

impl Pool {
    pub fn new() -> Pool {
        let (full_tx, full_rx) = crossbeam_channel::bounded(POOL);
        let (free_tx, free_rx) = crossbeam_channel::bounded(POOL);
        for _ in 0..POOL {
            free_tx
                .send(Chunk {
                    data: Box::new([0.0; CHUNK]),
                    len: 0,
                })
                .unwrap();
        }
        Pool {
            full_tx,
            full_rx,
            free_tx,
            free_rx,
        }
    }
}

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters shared with the source.
#[derive(Default)]
pub struct SourceStats {
    /// Samples dropped because the processing thread fell behind.
    pub dropped: AtomicU64,
    /// Samples delivered.
    pub delivered: AtomicU64,
    /// Set by the stream's error callback when the device is gone.
    pub device_lost: AtomicBool,
    /// The stream's latest error, for the log (set outside the audio callback).
    pub last_error: std::sync::Mutex<Option<String>>,
}

/// Fills chunks from the pool one sample at a time and hands them on. Allocation-free.
pub(super) struct Filler {
    full_tx: Sender<Chunk>,
    free_rx: Receiver<Chunk>,
    current: Option<Chunk>,
    stats: Arc<SourceStats>,
}

impl Filler {
    pub(super) fn new(
        full_tx: Sender<Chunk>,
        free_rx: Receiver<Chunk>,
        stats: Arc<SourceStats>,
    ) -> Filler {
        Filler {
            full_tx,
            free_rx,
            current: None,
            stats,
        }
    }

    /// Adds one sample; drops it (and counts it) when the pool has no free buffer.
    pub(super) fn push_frame(&mut self, v: f32) {
        if self.current.is_none() {
            match self.free_rx.try_recv() {
                Ok(mut c) => {
                    c.len = 0;
                    self.current = Some(c);
                }
                Err(_) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let c = self.current.as_mut().unwrap();
        c.data[c.len] = v;
        c.len += 1;
        if c.len == CHUNK {
            self.flush();
        }
    }

    /// Copies samples in, waiting for free buffers instead of dropping (file input as fast as
    /// it goes). Returns false when the processing side is gone.
    pub(super) fn push_blocking(&mut self, samples: &[f32]) -> bool {
        for &v in samples {
            if self.current.is_none() {
                match self.free_rx.recv() {
                    Ok(mut b) => {
                        b.len = 0;
                        self.current = Some(b);
                    }
                    Err(_) => return false,
                }
            }
            let b = self.current.as_mut().unwrap();
            b.data[b.len] = v;
            b.len += 1;
            if b.len == CHUNK {
                let b = self.current.take().unwrap();
                let n = b.len as u64;
                if self.full_tx.send(b).is_err() {
                    return false;
                }
                self.stats.delivered.fetch_add(n, Ordering::Relaxed);
            }
        }
        true
    }

    /// Hands the chunk being filled on, or drops its samples (and counts them) when the
    /// processing side has no room.
    pub(super) fn flush(&mut self) {
        if let Some(c) = self.current.take() {
            let n = c.len as u64;
            match self.full_tx.try_send(c) {
                Ok(()) => {
                    self.stats.delivered.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                    // Give the buffer back to the pool.
                    let c = e.into_inner();
                    self.current = Some(Chunk { len: 0, ..c });
                }
            }
        }
    }

    /// Sends the last, partly filled chunk, waiting for room (the end of a file).
    pub(super) fn send_rest(&mut self) {
        if let Some(b) = self.current.take() {
            let n = b.len as u64;
            if n > 0 && self.full_tx.send(b).is_ok() {
                self.stats.delivered.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// A capture device as cpal sees it.
pub struct DeviceInfo {
    pub name: String,
    pub is_default: bool,
    pub default_config: Option<String>,
}

/// Lists capture devices with their default rate and format.
pub fn devices() -> Result<Vec<DeviceInfo>> {
    let host = cpal::default_host();
    let default_name = host
        .default_input_device()
        .and_then(|d| d.description().ok())
        .map(|d| d.to_string());
    let mut out = Vec::new();
    for d in host
        .input_devices()
        .context("cannot list capture devices")?
    {
        let name = d
            .description()
            .map(|d| d.to_string())
            .unwrap_or_else(|_| "(unnamed)".into());
        let default_config = d.default_input_config().ok().map(|c| {
            format!(
                "{} Hz, {} channel(s), {}",
                c.sample_rate(),
                c.channels(),
                c.sample_format()
            )
        });
        out.push(DeviceInfo {
            is_default: Some(&name) == default_name.as_ref(),
            name,
            default_config,
        });
    }
    Ok(out)
}

/// Stops a capture without waiting for it. A stream whose sound server died can hang in its
/// own teardown (seen with ALSA's PulseAudio plugin: its worker deadlocks inside libpulse, and
/// dropping the stream joins that worker), so the stream is dropped on a thread of its own.
/// Returns the thread, which has finished once the stream has stopped.
pub fn release(capture: Option<Capture>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("hark-capture-stop".into())
        .spawn(move || drop(capture))
        .expect("cannot start a thread")
}

/// A running microphone capture. Dropping it stops the stream.
pub struct Capture {
    _stream: cpal::Stream,
    pub rate: u32,
    pub channels: u16,
    pub format: cpal::SampleFormat,
    pub device: String,
}

/// Opens the named device (empty = system default) at its default config and starts capturing
/// into the pool.
pub fn start(
    device: &str,
    full_tx: Sender<Chunk>,
    free_rx: Receiver<Chunk>,
    stats: Arc<SourceStats>,
) -> Result<Capture> {
    let dev = find_device(device)?;
    let name = dev
        .description()
        .map(|d| d.to_string())
        .unwrap_or_else(|_| "(unnamed)".into());
    let cfg = dev
        .default_input_config()
        .with_context(|| format!("capture device {name:?}: no usable input configuration"))?;
    let (rate, channels, format) = (cfg.sample_rate(), cfg.channels(), cfg.sample_format());
    let err_fn = stream_error_handler(stats.clone());
    let filler = Filler::new(full_tx, free_rx, stats);
    let stream_cfg: cpal::StreamConfig = cfg.into();
    let ch = channels as usize;
    let stream = match format {
        cpal::SampleFormat::F32 => build::<f32>(&dev, stream_cfg, filler, ch, err_fn),
        cpal::SampleFormat::I16 => build::<i16>(&dev, stream_cfg, filler, ch, err_fn),
        cpal::SampleFormat::I32 => build::<i32>(&dev, stream_cfg, filler, ch, err_fn),
        cpal::SampleFormat::U16 => build::<u16>(&dev, stream_cfg, filler, ch, err_fn),
        cpal::SampleFormat::I8 => build::<i8>(&dev, stream_cfg, filler, ch, err_fn),
        cpal::SampleFormat::U8 => build::<u8>(&dev, stream_cfg, filler, ch, err_fn),
        cpal::SampleFormat::F64 => build::<f64>(&dev, stream_cfg, filler, ch, err_fn),
        other => bail!("capture device {name:?}: sample format {other} is not supported"),
    }
    .with_context(|| format!("capture device {name:?}: cannot open an input stream"))?;
    stream
        .play()
        .with_context(|| format!("capture device {name:?}: cannot start the stream"))?;
    Ok(Capture {
        _stream: stream,
        rate,
        channels,
        format,
        device: name,
    })
}

/// The capture device whose name contains `device` (case-insensitive); empty = the default.
fn find_device(device: &str) -> Result<cpal::Device> {
    let host = cpal::default_host();
    if device.is_empty() {
        return host.default_input_device().context("no capture device: the system has no default input (see `hark devices`, or use --input FILE.wav)");
    }
    let want = device.to_lowercase();
    host.input_devices()
        .context("cannot list capture devices")?
        .find(|d| {
            d.description()
                .is_ok_and(|n| n.to_string().to_lowercase().contains(&want))
        })
        .with_context(|| {
            format!("capture device {device:?} not found (see `hark devices` for the names)")
        })
}

/// The stream's error callback: flags a vanished device and keeps the latest error for the log.
fn stream_error_handler(stats: Arc<SourceStats>) -> impl FnMut(cpal::Error) + Send + 'static {
    move |e: cpal::Error| {
        if matches!(
            e.kind(),
            cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::HostUnavailable
        ) {
            stats.device_lost.store(true, Ordering::Relaxed);
        }
        if let Ok(mut last) = stats.last_error.lock() {
            *last = Some(e.to_string());
        }
    }
}

/// Builds an input stream of sample type `T` whose callback mixes each frame to mono (int16
/// scale) into the filler.
fn build<T>(
    dev: &cpal::Device,
    cfg: cpal::StreamConfig,
    mut f: Filler,
    channels: usize,
    err: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream>
where
    T: cpal::SizedSample,
    f32: cpal::FromSample<T>,
{
    let s = dev.build_input_stream::<T, _, _>(
        cfg,
        move |data: &[T], _| {
            for frame in data.chunks_exact(channels) {
                let sum: f32 = frame
                    .iter()
                    .map(|s| cpal::Sample::to_sample::<f32>(*s))
                    .sum();
                f.push_frame(sum / channels as f32 * 32768.0);
            }
            f.flush();
        },
        err,
        None,
    )?;
    Ok(s)
}
