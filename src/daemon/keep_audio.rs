//! `hark listen --keep-audio DIR` (`[events] keep_audio`): each event's audio, from
//! [`clip::BEFORE_SECONDS`] before it to [`clip::AFTER_SECONDS`] after, saved as
//! `DIR/<id>.wav` (16 kHz mono 16-bit) beside `DIR/<id>.json` (the event's JSON line), so that
//! `hark reject ID` / `hark confirm ID` can file it into the recordings.
//!
//! - [`Ring`]: the processing thread's ring buffer of the recent 16 kHz samples, allocated once;
//!   pushing into it never allocates.
//! - [`Clips`]: events waiting for their last 0.5 s (a fixed number of slots), a pool of
//!   preallocated clip buffers, and the bounded queue to the writer thread. A clip is cut from
//!   the ring once the stream has gone 0.5 s past its event; when no slot or buffer is free (the
//!   writer fell behind) the clip is dropped and counted, never waited for.
//! - the writer thread: writes each clip and its sidecar without ever replacing a file
//!   ([`hark::util::AtomicFile::commit_new`]), then holds the folder to
//!   `keep_audio_max_files` and `keep_audio_max_bytes` by deleting the **oldest** clips (by
//!   their time-ordered names; only files named like hark's clips are counted or deleted).

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::daemon::config::EventsConfig;
use crate::daemon::Log;
use hark::audio::clip::{self, CLIP_SAMPLES};
pub use hark::audio::ring::Ring;

/// Events that may wait for their last 0.5 s at once, and clip buffers in the pool.
const SLOTS: usize = 8;
/// Ring capacity: a whole clip plus 2 s for the chunk that completes it.
pub const RING_SAMPLES: usize = CLIP_SAMPLES + 32_000;

/// A clip to write: its samples (a pool buffer), where, and the event's JSON line.
struct Job {
    samples: Vec<f32>,
    wav: PathBuf,
    json: String,
}

/// An event waiting for the end of its clip.
struct Pending {
    start: u64,
    end: u64,
    wav: PathBuf,
    json: String,
}

/// Clips kept and dropped, for the summary.
#[derive(Default)]
pub struct ClipStats {
    pub kept: AtomicU64,
    pub dropped: AtomicU64,
}

/// The processing thread's side of keeping clips (see the module's documentation).
pub struct Clips {
    dir: PathBuf,
    pending: Vec<Pending>,
    free: Receiver<Vec<f32>>,
    jobs: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    stats: Arc<ClipStats>,
}

impl Clips {
    /// Creates the folder, reads which clips it already holds, and starts the writer thread.
    pub fn start(cfg: &EventsConfig, log: Log) -> Result<(Clips, Arc<ClipStats>)> {
        let dir = cfg.keep_audio.clone();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("key `events.keep_audio`: cannot create {}", dir.display()))?;
        let store = Store::scan(&dir, cfg.keep_audio_max_files, cfg.keep_audio_max_bytes)?;
        let (free_tx, free) = crossbeam_channel::bounded(SLOTS);
        for _ in 0..SLOTS {
            let _ = free_tx.send(Vec::with_capacity(CLIP_SAMPLES));
        }
        let (jobs, jobs_rx) = crossbeam_channel::bounded::<Job>(SLOTS);
        let stats = Arc::new(ClipStats::default());
        let counts = stats.clone();
        let writer = std::thread::Builder::new()
            .name("keep-audio".into())
            .spawn(move || write_clips(jobs_rx, free_tx, store, &counts, log))
            .context("cannot start the keep-audio writer thread")?;
        let clips = Clips {
            dir,
            pending: Vec::with_capacity(SLOTS),
            free,
            jobs: Some(jobs),
            writer: Some(writer),
            stats: stats.clone(),
        };
        Ok((clips, stats))
    }

    /// Where the clip of event `id` goes.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.wav"))
    }

    /// Is a slot free for another event's clip?
    pub fn has_room(&self) -> bool {
        self.pending.len() < SLOTS
    }

    /// Counts a clip that could not be kept.
    pub fn count_dropped(&self) {
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the event at stream time `time` (its clip goes to `wav`, `json` beside it), or
    /// counts it dropped and returns false when every slot is taken.
    pub fn schedule(&mut self, time: f64, wav: PathBuf, json: String) -> bool {
        if self.pending.len() == SLOTS {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let (start, end) = clip::range(time);
        self.pending.push(Pending {
            start,
            end,
            wav,
            json,
        });
        true
    }

    /// Hands every clip whose end the ring has reached (all of them `at_end` of the stream) to
    /// the writer. Nothing allocates: the samples go into a pool buffer.
    pub fn service(&mut self, ring: &Ring, at_end: bool) {
        let mut i = 0;
        while i < self.pending.len() {
            if !(at_end || self.pending[i].end <= ring.total()) {
                i += 1;
                continue;
            }
            let p = self.pending.swap_remove(i);
            let (Ok(mut samples), Some(jobs)) = (self.free.try_recv(), &self.jobs) else {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            ring.copy_out(p.start, p.end, &mut samples);
            let job = Job {
                samples,
                wav: p.wav,
                json: p.json,
            };
            if jobs.try_send(job).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The end of the stream: the waiting clips are cut short and written, and the writer
    /// finishes before this returns.
    pub fn finish(&mut self, ring: &Ring) {
        self.service(ring, true);
        drop(self.jobs.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The writer thread: each clip, then the caps.
fn write_clips(
    jobs: Receiver<Job>,
    free: Sender<Vec<f32>>,
    mut store: Store,
    stats: &ClipStats,
    log: Log,
) {
    for job in jobs {
        match write_clip(&job) {
            Ok(bytes) => {
                stats.kept.fetch_add(1, Ordering::Relaxed);
                store.added(&job.wav, bytes, log);
            }
            Err(e) => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                log.warn(&format!("keep-audio: {e:#}"));
            }
        }
        let _ = free.send(job.samples);
    }
}

/// Writes the WAV and its JSON sidecar, neither replacing any file; returns their size.
fn write_clip(job: &Job) -> Result<u64> {
    use std::io::Write;
    let json = job.wav.with_extension("json");
    let side = hark::util::AtomicFile::create(&json)?;
    side.file()
        .write_all(format!("{}\n", job.json).as_bytes())
        .with_context(|| format!("{}: cannot write", side.temp_path().display()))?;
    side.commit_new()?;
    if let Err(e) = hark::audio::wav::write_16k_new(&job.wav, &job.samples) {
        let _ = std::fs::remove_file(&json);
        return Err(e.into());
    }
    Ok(44 + 2 * job.samples.len() as u64 + job.json.len() as u64 + 1)
}

/// Is `stem` an event id as [`event_id`] makes them (`20261129T122818.123Z-7`)?
pub fn is_event_id(stem: &str) -> bool {
    let b = stem.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    b.len() >= 22
        && digits(0..8)
        && b[8] == b'T'
        && digits(9..15)
        && b[15] == b'.'
        && digits(16..19)
        && &b[19..21] == b"Z-"
        && digits(21..b.len())
}

/// A unique, time-ordered event id safe as a file name: the wall time in UTC to the millisecond
/// and the event's number in this run, e.g. `20261129T122818.123Z-7`.
pub fn event_id(wall: std::time::SystemTime, n: u64) -> String {
    let t = humantime::format_rfc3339_millis(wall).to_string();
    let compact: String = t.chars().filter(|c| *c != '-' && *c != ':').collect();
    format!("{compact}-{n}")
}

/// The clips in the folder, oldest first, and the caps they are held to.
struct Store {
    clips: VecDeque<(PathBuf, u64)>,
    bytes: u64,
    max_files: usize,
    max_bytes: u64,
}

impl Store {
    /// The clips already in `dir` (files named like hark's clips), oldest first.
    fn scan(dir: &Path, max_files: usize, max_bytes: u64) -> Result<Store> {
        let mut clips: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
            .with_context(|| format!("key `events.keep_audio`: cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "wav")
                    && p.file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(is_event_id)
            })
            .map(|p| {
                let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
                let bytes = size(&p) + size(&p.with_extension("json"));
                (p, bytes)
            })
            .collect();
        clips.sort_by_key(|(p, _)| sort_key(p));
        let bytes = clips.iter().map(|c| c.1).sum();
        Ok(Store {
            clips: clips.into(),
            bytes,
            max_files,
            max_bytes,
        })
    }

    /// A new clip: deletes the oldest while the folder is over a cap.
    fn added(&mut self, wav: &Path, bytes: u64, log: Log) {
        self.clips.push_back((wav.to_path_buf(), bytes));
        self.bytes += bytes;
        while self.clips.len() > self.max_files || self.bytes > self.max_bytes {
            let Some((old, b)) = self.clips.pop_front() else {
                break;
            };
            self.bytes -= b;
            for p in [old.clone(), old.with_extension("json")] {
                match std::fs::remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        log.warn(&format!("keep-audio: cannot delete {}: {e}", p.display()))
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Time order of clip names: the time, then the event's number as a number.
fn sort_key(p: &Path) -> (String, u64) {
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let (time, n) = stem.rsplit_once('-').unwrap_or((stem, "0"));
    (time.to_string(), n.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_file_names() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let id = event_id(t, 7);
        assert_eq!(id, "20231114T221320.123Z-7");
        assert!(is_event_id(&id));
        for bad in [
            "take-1",
            "20231114T221320.123Z-",
            "20231114T221320.123Z-x",
            "../x",
        ] {
            assert!(!is_event_id(bad), "{bad}");
        }
        let a = Path::new("20231114T221320.123Z-9.wav");
        let b = Path::new("20231114T221320.123Z-10.wav");
        assert!(sort_key(a) < sort_key(b));
    }

    #[test]
    fn clips_are_written_once_and_the_oldest_deleted_past_the_caps() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = EventsConfig {
            keep_audio: dir.path().to_path_buf(),
            keep_audio_max_files: 2,
            keep_audio_max_bytes: 1 << 30,
        };
        let (mut clips, stats) = Clips::start(&cfg, Log::new("error")).unwrap();
        let mut ring = Ring::with_capacity(RING_SAMPLES);
        ring.push(&vec![100.0; 16_000 * 5]);
        let t0 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        for n in 1..=3 {
            let id = event_id(t0, n);
            assert!(clips.schedule(
                2.0 + n as f64,
                clips.path(&id),
                format!("{{\"id\":\"{id}\"}}")
            ));
        }
        clips.service(&ring, false); // events 1 and 2 have their 0.5 s after; 3 does not yet
        assert_eq!(clips.pending.len(), 1);
        clips.finish(&ring);
        assert_eq!(stats.kept.load(Ordering::Relaxed), 3);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let id = |n| event_id(t0, n);
        assert_eq!(
            names,
            [
                format!("{}.json", id(2)),
                format!("{}.wav", id(2)),
                format!("{}.json", id(3)),
                format!("{}.wav", id(3))
            ]
        );
        let w = hark::audio::wav::read_16k(&dir.path().join(format!("{}.wav", id(2)))).unwrap();
        assert_eq!(w.len(), CLIP_SAMPLES);
        // Event 3 at 5 s: the stream ended at 5 s, so its clip stops there.
        let w = hark::audio::wav::read_16k(&dir.path().join(format!("{}.wav", id(3)))).unwrap();
        assert_eq!(w.len(), 24_000);
        // Never overwritten: the same id again is refused and counted.
        let (mut again, stats) = Clips::start(&cfg, Log::new("error")).unwrap();
        again.schedule(4.0, again.path(&id(3)), "{}".into());
        again.finish(&ring);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 1);
        let side = std::fs::read_to_string(dir.path().join(format!("{}.json", id(3)))).unwrap();
        assert!(side.contains(&id(3)), "{side}");
    }
}
