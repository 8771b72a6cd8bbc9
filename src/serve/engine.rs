//! The engine of `hark serve`: many streams of audio that clients send, one head.
//!
//! Each client stream is a [`Stream`]: feed it samples at any rate, get [`Detection`]s back.
//! The [`Engine`] holds what the streams share: the base model (one ONNX Runtime session per
//! worker of a fixed pool, since a session runs one call at a time), the head (swapped for
//! every stream at once by [`Engine::reload`]) and its words. A stream holds only its own
//! state: the front end, the base model's streaming state, the gate, the head's scorer and the
//! detector (a few tens of kilobytes). [`Stream::push`] runs the front end on the caller's
//! thread; when an 80 ms block is ready it hands the stream to the pool and waits. A free
//! worker takes the streams waiting once [`BATCH`] wait or the oldest has waited [`GATHER`]
//! (so batches fill when many streams are open, whether or not the machine is busy), runs their blocks through its session in one call
//! (`hark::pipeline::embedding::batch`; a stream's cold start runs alone), then each through
//! its head and detector, and hands the streams back. A stream is on one worker at a time, in
//! order.

use anyhow::{anyhow, Context, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::handoff::{Queue, Slot};
use hark::assets::Assets;
use hark::pipeline::detector::{Detection, DetectorSettings};
use hark::pipeline::embedding::batch::Batch;
use hark::pipeline::embedding::{BaseModel, StreamState};
use hark::pipeline::frontend::{BLOCK_FRAMES, N_MELS, SAMPLE_RATE};
use hark::pipeline::head::Head;
use hark::pipeline::word_check::SharedWordModel;
use hark::pipeline::Pipeline;

/// Most workers (sessions) a pool starts, whatever the number of cores.
const MAX_WORKERS: usize = 8;
/// Most streams whose blocks one call of the base model runs (docs/design.md, "Several
/// streams in one call": a block costs 0.75 of its cost alone in calls of 4, 0.70 in calls of 16).
const BATCH: usize = 16;
/// How long a block waits at most for others to batch with it (bounds the latency batching
/// adds).
const GATHER: Duration = Duration::from_millis(20);
/// Values in one block of log-mel frames.
const BLOCK_LEN: usize = BLOCK_FRAMES * N_MELS;

/// The head every stream takes up.
#[derive(Clone)]
struct Current {
    generation: u64,
    head: Arc<Head>,
    settings: DetectorSettings,
    word_model: Option<SharedWordModel>,
}

/// What the engine's streams run: a head, its settings and the word check's model (`None`:
/// no check).
pub type Loaded = (Arc<Head>, DetectorSettings, Option<SharedWordModel>);

/// What all streams share.
pub struct Engine {
    assets: Assets,
    /// The head, its detector settings and the word check's model, with a generation that
    /// grows on every reload.
    head: RwLock<Current>,
    /// The workers, started by the first [`Engine::open`] (loading the base model can fail,
    /// `new` cannot).
    pool: Mutex<Option<Arc<Pool>>>,
}

impl Engine {
    /// An engine for `head` with `settings` (the head's own, or the config's over them), with
    /// the base model from `assets` (loaded at the first open).
    /// (Tests; `hark serve` uses [`Engine::start`].)
    #[cfg(test)]
    pub fn new(assets: Assets, head: Arc<Head>, settings: DetectorSettings) -> Engine {
        Engine {
            assets,
            head: RwLock::new(Current {
                generation: 0,
                head,
                settings,
                word_model: None,
            }),
            pool: Mutex::new(None),
        }
    }

    /// An engine whose base model is loaded now (an error at start, not at the first client),
    /// with the head (and word model) `load_head` gives for the base model's sha256 (the file
    /// is read and hashed once).
    pub fn start(assets: Assets, load_head: impl FnOnce(&str) -> Result<Loaded>) -> Result<Engine> {
        let pool = Arc::new(Pool::start(&assets, workers())?);
        let (head, settings, word_model) = load_head(&pool.base_sha)?;
        let current = Current {
            generation: 0,
            head,
            settings,
            word_model,
        };
        Ok(Engine {
            assets,
            head: RwLock::new(current),
            pool: Mutex::new(Some(pool)),
        })
    }

    /// The sha256 of the base model the streams run (loading it if no stream has yet).
    pub fn base_sha(&self) -> Result<String> {
        Ok(self.pool()?.base_sha.clone())
    }

    /// The current head.
    pub fn head(&self) -> Arc<Head> {
        self.head.read().unwrap().head.clone()
    }

    /// The head's words, in its label order.
    pub fn words(&self) -> Vec<String> {
        self.head().labels.clone()
    }

    /// Swaps the head (and its settings) for every stream; each takes it up at its next push,
    /// from a fresh start.
    pub fn reload(&self, (head, settings, word_model): Loaded) {
        let mut h = self.head.write().unwrap();
        *h = Current {
            generation: h.generation + 1,
            head,
            settings,
            word_model,
        };
    }

    /// The word check's model in use, if any.
    pub fn word_model(&self) -> Option<SharedWordModel> {
        self.head.read().unwrap().word_model.clone()
    }

    /// A new stream with every word selected.
    pub fn open(self: &Arc<Self>) -> Result<Stream> {
        let pool = self.pool()?;
        let c = self.head.read().unwrap().clone();
        let (generation, head, settings) = (c.generation, c.head, Some(c.settings));
        let mut pipeline = Pipeline::with_state(pool.blank.clone(), head, SAMPLE_RATE, settings)?;
        pipeline.set_word_check(c.word_model);
        pool.open.fetch_add(1, Ordering::Relaxed);
        Ok(Stream {
            work: Some(Box::new(Work {
                pipeline,
                blocks: Vec::with_capacity(BLOCK_FRAMES * N_MELS * 4),
                out: Vec::new(),
                result: Ok(()),
            })),
            reply: Arc::new(Slot::new()),
            engine: self.clone(),
            pool,
            generation,
            rate: SAMPLE_RATE,
            selected: None,
        })
    }

    /// The pool, started on first use.
    fn pool(&self) -> Result<Arc<Pool>> {
        let mut pool = self.pool.lock().unwrap();
        if let Some(p) = &*pool {
            return Ok(p.clone());
        }
        let p = Arc::new(Pool::start(&self.assets, workers())?);
        *pool = Some(p.clone());
        Ok(p)
    }
}

/// How many workers (base-model sessions) the pool runs: one per core, at most [`MAX_WORKERS`].
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS)
}

/// A stream's state and its buffers, which go to a worker and back with each run (one box per
/// stream, moved, never allocated per block).
struct Work {
    pipeline: Pipeline,
    /// The front end's blocks waiting for the base model.
    blocks: Vec<f32>,
    /// The detections of the last run.
    out: Vec<Detection>,
    result: hark::Result<()>,
}

/// A piece of work for a worker: a stream's work, and where to hand it back (with false if
/// the run panicked: the stream's state is then lost).
struct Job {
    work: Box<Work>,
    reply: Arc<Slot<(Box<Work>, bool)>>,
}

/// Jobs the queue holds before it allocates (a stream has at most one queued).
const QUEUE: usize = 4096;

/// A fixed set of worker threads, each with its own session of the base model, taking jobs
/// from one queue.
struct Pool {
    jobs: Arc<Queue<Job>>,
    /// Streams open (the most one batch can hold).
    open: Arc<AtomicUsize>,
    /// A new stream's base-model state.
    blank: StreamState,
    /// The base model's sha256 (every head must have been trained on it).
    base_sha: String,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    /// Loads the base model once, makes `workers` sessions of it and starts their threads.
    fn start(assets: &Assets, workers: usize) -> Result<Pool> {
        // A few sessions for every stream: the faster graph is worth its memory here.
        let models = BaseModel::load_batched(assets, workers, None)?;
        let blank = models[0].new_state();
        let base_sha = models[0].model_sha256.clone();
        let jobs = Arc::new(Queue::with_capacity(QUEUE));
        let open = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::with_capacity(workers);
        for (i, model) in models.into_iter().enumerate() {
            let (queue, open) = (jobs.clone(), open.clone());
            let thread = std::thread::Builder::new()
                .name(format!("hark-engine-{i}"))
                .spawn(move || work(model, queue, open))
                .with_context(|| format!("cannot start engine worker {i}"))?;
            threads.push(thread);
        }
        Ok(Pool {
            jobs,
            open,
            blank,
            base_sha,
            threads,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends the workers once they are idle.
        self.jobs.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A worker's loop: batches of jobs until the queue closes. A batch that panics loses its
/// streams (their callers see the failure) but not the worker.
fn work(mut model: BaseModel, queue: Arc<Queue<Job>>, open: Arc<AtomicUsize>) {
    let mut batch = Batch::new(&model, BATCH);
    let mut jobs = Vec::with_capacity(BATCH);
    let mut places = Vec::with_capacity(BATCH);
    loop {
        // No stream waits for a batch that the open streams cannot fill.
        let most = open.load(Ordering::Relaxed).clamp(1, BATCH);
        if !queue.pop_batch(&mut jobs, most, GATHER) {
            return;
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_jobs(&mut model, &mut batch, &mut jobs, &mut places)
        }));
        for Job { work, reply } in jobs.drain(..) {
            reply.put((work, ran.is_ok()));
        }
    }
}

/// Runs every job's blocks: each round takes the next block of every job that has one
/// through the gate, runs the blocks the base model needs in one call, and scores them.
fn run_jobs(
    model: &mut BaseModel,
    batch: &mut Batch,
    jobs: &mut [Job],
    places: &mut Vec<(usize, usize)>,
) {
    for job in jobs.iter_mut() {
        job.work.out.clear();
        job.work.result = Ok(());
    }
    for round in 0.. {
        let mut any = false;
        batch.clear();
        places.clear();
        for (j, job) in jobs.iter_mut().enumerate() {
            let Work {
                pipeline,
                blocks,
                out,
                result,
            } = &mut *job.work;
            let Some(block) = blocks.chunks_exact(BLOCK_LEN).nth(round) else {
                continue;
            };
            any = true;
            if result.is_err() {
                continue;
            }
            match pipeline.begin_block(model, block, batch, &mut |d| out.push(d)) {
                Ok(Some(i)) => places.push((j, i)),
                Ok(None) => {}
                Err(e) => *result = Err(e),
            }
        }
        if !any {
            return;
        }
        let ran = batch.run(model);
        for &(j, i) in places.iter() {
            let Work {
                pipeline,
                out,
                result,
                ..
            } = &mut *jobs[j].work;
            match &ran {
                Ok(()) => pipeline.end_block(batch, i, &mut |d| out.push(d)),
                Err(e) => *result = Err(hark::Error::model(format!("{e}"))),
            }
        }
    }
}

/// One client's stream of audio.
pub struct Stream {
    engine: Arc<Engine>,
    pool: Arc<Pool>,
    /// The stream's own state; away (`None`) only if a worker failed while running it.
    work: Option<Box<Work>>,
    /// Where the workers hand the work back.
    reply: Arc<Slot<(Box<Work>, bool)>>,
    /// The head generation the pipeline runs.
    generation: u64,
    /// The rate of the samples being pushed.
    rate: u32,
    /// The words to report (`None`: all).
    selected: Option<Vec<String>>,
}

impl Stream {
    /// Reports only `words` from now on (`None`: all; names the head does not have are
    /// ignored), and starts the stream over.
    pub fn select(&mut self, words: Option<Vec<String>>) -> Result<()> {
        self.selected = words;
        self.restart(self.rate)
    }

    /// Starts the stream over (its time back to 0) with samples at `rate`.
    pub fn restart(&mut self, rate: u32) -> Result<()> {
        self.rate = rate;
        self.take_up_reload()?;
        Ok(self.pipeline()?.restart(rate)?)
    }

    /// Feeds mono samples at `rate` (int16 scale); returns the selected words' detections, with
    /// times in seconds of audio since the stream (re)started. A new rate restarts the stream.
    pub fn push(&mut self, samples: &[f32], rate: u32) -> Result<Vec<Detection>> {
        if rate != self.rate || self.take_up_reload()? {
            self.restart(rate)?;
        }
        let mut events = Vec::new();
        // A second at a time: the word check's ear keeps only a few seconds.
        for piece in samples.chunks(rate.max(1) as usize) {
            let work = self.work.as_deref_mut().ok_or_else(lost)?;
            work.blocks.clear();
            work.pipeline.push_frontend(piece, &mut work.blocks)?;
            if work.blocks.is_empty() {
                continue;
            }
            self.run()?;
            let work = self.work.as_deref_mut().ok_or_else(lost)?;
            std::mem::replace(&mut work.result, Ok(()))?;
            let selected = &self.selected;
            events.extend(
                work.out
                    .drain(..)
                    .filter(|d| selected.as_ref().is_none_or(|w| w.contains(&d.word))),
            );
        }
        Ok(events)
    }

    /// How many more samples at the stream's rate complete its next 80 ms block (1 if the
    /// stream was lost).
    pub fn samples_to_block(&self) -> usize {
        self.work
            .as_ref()
            .map_or(1, |w| w.pipeline.samples_to_block())
    }

    /// Runs the front end's blocks through the rest of the stream on a worker of the pool
    /// and waits for it.
    fn run(&mut self) -> Result<()> {
        let work = self.work.take().ok_or_else(lost)?;
        let job = Job {
            work,
            reply: self.reply.clone(),
        };
        if self.pool.jobs.push(job).is_err() {
            anyhow::bail!("the engine's workers have stopped");
        }
        match self.reply.take() {
            (work, true) => {
                self.work = Some(work);
                Ok(())
            }
            _ => Err(lost()),
        }
    }

    fn pipeline(&mut self) -> Result<&mut Pipeline> {
        Ok(&mut self.work.as_deref_mut().ok_or_else(lost)?.pipeline)
    }

    /// Switches to the engine's newest head if there is one; true if it did.
    fn take_up_reload(&mut self) -> Result<bool> {
        let c = {
            let current = self.engine.head.read().unwrap();
            // Checked on every push: clone the head and settings only when they changed.
            if current.generation == self.generation {
                return Ok(false);
            }
            current.clone()
        };
        self.generation = c.generation;
        let pipeline = self.pipeline()?;
        pipeline.replace_head(c.head, Some(c.settings));
        pipeline.set_word_check(c.word_model);
        Ok(true)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.pool.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The error of a stream whose state was lost with a failed worker.
fn lost() -> anyhow::Error {
    anyhow!("this stream was lost: an engine worker failed while running it")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hark::audio::synth;
    use std::path::PathBuf;

    fn assets() -> Assets {
        let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
        Assets::locate(Some(&models)).expect("models/ (run .ci/setup)")
    }

    /// A head trained on the demo's example recordings, a stream of speech (the demo's words
    /// and others) and how many of its words are the head's; made once for all tests.
    fn fixture() -> &'static (Arc<Head>, Vec<f32>, usize) {
        static FIXTURE: std::sync::OnceLock<(Arc<Head>, Vec<f32>, usize)> =
            std::sync::OnceLock::new();
        FIXTURE.get_or_init(|| {
            let head = demo_head(&assets());
            let (speech, said) = synth::stream(synth::VOICE, 1).unwrap();
            (head, speech, said.iter().filter(|s| s.target).count())
        })
    }

    /// The tests run one at a time: two measure the process (CPU, memory).
    static SERIAL: Mutex<()> = Mutex::new(());

    fn demo_head(assets: &Assets) -> Arc<Head> {
        let tmp = tempfile::tempdir().unwrap();
        let rec = tmp.path().join("recordings");
        synth::write_recordings(&rec, synth::VOICE).unwrap();
        let ds = hark::train::dataset::Dataset::load(&rec).unwrap();
        let mut emb = hark::Embedder::load(assets).unwrap();
        let opts = hark::train::TrainOptions {
            cross_validate: false,
            ..Default::default()
        };
        Arc::new(hark::train::train(&mut emb, &ds, None, &opts, &|_, _| {}).unwrap())
    }

    /// Stream `i`'s audio: the speech shifted, scaled, some at 8 kHz; its rate and chunk size.
    fn variant(speech: &[f32], i: usize) -> (Vec<f32>, u32, usize) {
        let mut x = vec![0.0; i * 1237];
        x.extend(speech.iter().map(|s| s * (0.7 + 0.05 * i as f32)));
        match i % 3 {
            0 => (x, 16000, 160),
            1 => (x, 16000, 1024),
            _ => (x.into_iter().step_by(2).collect(), 8000, 240),
        }
    }

    /// What a fresh pipeline of its own detects in `x`, pushed in the same chunks, and the CPU
    /// seconds its pushes took.
    fn alone(
        assets: &Assets,
        head: &Arc<Head>,
        (x, rate, chunk): &(Vec<f32>, u32, usize),
    ) -> (Vec<Detection>, f64) {
        // The engine's sessions run the fastest graph: so does this one.
        let model = BaseModel::load_copies_fastest(assets, 1).unwrap().remove(0);
        let embedder = hark::Embedder::from_model(model);
        let mut p = Pipeline::new(embedder, head.clone(), *rate, None).unwrap();
        let cpu = cpu_seconds();
        let mut out = Vec::new();
        for c in x.chunks(*chunk) {
            p.push(c, &mut |d| out.push(d)).unwrap();
        }
        (out, cpu_seconds() - cpu)
    }

    /// CPU seconds this process has used (user + system).
    fn cpu_seconds() -> f64 {
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }, 0);
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    }

    /// Resident memory of this process, in bytes.
    fn rss() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
    }

    #[test]
    fn concurrent_streams_detect_what_their_own_pipelines_detect_and_cost_little() {
        let (head, speech, targets) = fixture();
        let _serial = SERIAL.lock();
        let assets = assets();
        let n = 10;
        let inputs: Vec<_> = (0..n).map(|i| variant(speech, i)).collect();
        let (expected, alone_cpu): (Vec<_>, Vec<f64>) =
            inputs.iter().map(|v| alone(&assets, head, v)).unzip();
        assert!(expected[0].len() >= targets - 1, "{:?}", expected[0]);
        assert!(expected.iter().all(|e| !e.is_empty()), "{expected:?}");

        let engine = Arc::new(Engine::new(
            assets.clone(),
            head.clone(),
            head.detector.clone(),
        ));
        let streams: Vec<Stream> = (0..n).map(|_| engine.open().unwrap()).collect();
        let (cpu, wall) = (cpu_seconds(), std::time::Instant::now());
        let got: Vec<Vec<Detection>> = std::thread::scope(|s| {
            let threads: Vec<_> = streams
                .into_iter()
                .zip(&inputs)
                .map(|(mut stream, (x, rate, chunk))| {
                    s.spawn(move || {
                        let mut out = Vec::new();
                        for c in x.chunks(*chunk) {
                            out.extend(stream.push(c, *rate).unwrap());
                        }
                        out
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let (cpu, wall) = (cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(
                g, e,
                "stream {i}: the engine and a pipeline of its own differ"
            );
        }
        let audio = speech.len() as f64 / 16000.0;
        eprintln!(
            "engine: {n} streams x {audio:.1} s of speech in {wall:.2} s wall, {cpu:.2} s CPU: \
             {:.4} CPU s per audio s per stream ({:.2}% of a core)",
            cpu / (audio * n as f64),
            100.0 * cpu / (audio * n as f64)
        );
        let alone_cpu: f64 = alone_cpu.iter().sum();
        eprintln!(
            "engine: the same streams one after another, each with a pipeline of its own: \
             {alone_cpu:.2} s CPU, {:.4} CPU s per audio s",
            alone_cpu / (audio * n as f64)
        );
    }

    #[test]
    fn a_reload_restarts_each_stream_with_the_new_head_and_select_filters_words() {
        let (head, speech, _) = fixture();
        let _serial = SERIAL.lock();
        let engine = Arc::new(Engine::new(assets(), head.clone(), head.detector.clone()));
        let mut stream = engine.open().unwrap();
        let first = stream.push(speech, 16000).unwrap();
        assert!(!first.is_empty());
        engine.reload((head.clone(), head.detector.clone(), None));
        // The reload restarts the stream: the same audio again gives the same times.
        assert_eq!(stream.push(speech, 16000).unwrap(), first);
        let word = first[0].word.clone();
        stream
            .select(Some(vec![word.clone(), "no such word".into()]))
            .unwrap();
        let only: Vec<_> = first.iter().filter(|d| d.word == word).cloned().collect();
        assert_eq!(stream.push(speech, 16000).unwrap(), only);
        stream.select(Some(vec!["no such word".into()])).unwrap();
        assert_eq!(stream.push(speech, 16000).unwrap(), vec![]);
    }

    #[test]
    fn start_loads_the_base_model_once_and_gives_the_head_loader_its_sha() {
        let (head, _, _) = fixture();
        let _serial = SERIAL.lock();
        let mut seen = None;
        let engine = Engine::start(assets(), |sha| {
            seen = Some(sha.to_string());
            Ok((head.clone(), head.detector.clone(), None))
        })
        .unwrap();
        let sha = hark::util::sha256_hex(&assets().read_embedding_model().unwrap());
        assert_eq!(seen.as_deref(), Some(sha.as_str()));
        assert!(engine.pool.lock().unwrap().is_some(), "loaded at start");
        assert_eq!(engine.base_sha().unwrap(), sha);
    }

    #[test]
    fn a_new_stream_costs_well_under_a_megabyte() {
        let (head, speech, _) = fixture();
        let _serial = SERIAL.lock();
        let engine = Arc::new(Engine::new(assets(), head.clone(), head.detector.clone()));
        // Two seconds of speech: every stream runs the base model and fills its buffers.
        let two_seconds = &speech[..32000];
        let start = rss();
        let mut first = engine.open().unwrap();
        first.push(two_seconds, 16000).unwrap();
        let before = rss();
        eprintln!(
            "engine: the pool (base model loaded, {} sessions) and a first stream: {} kB",
            first.pool.threads.len(),
            before.saturating_sub(start) / 1024
        );
        // At 16 kHz, and at 48 kHz (each stream then has a resampler of its own).
        let at_48k: Vec<f32> = two_seconds.iter().flat_map(|&s| [s; 3]).collect();
        let mut kept = Vec::new();
        for (samples, rate) in [(two_seconds, 16000), (&at_48k[..], 48000)] {
            let before = rss();
            let mut streams: Vec<Stream> = (0..100).map(|_| engine.open().unwrap()).collect();
            for s in &mut streams {
                s.push(samples, rate).unwrap();
            }
            let per_stream = rss().saturating_sub(before) / streams.len();
            kept.push(streams);
            eprintln!("engine: {per_stream} bytes of resident memory per open stream at {rate} Hz");
            assert!(
                per_stream < 1 << 20,
                "{per_stream} bytes per stream at {rate} Hz"
            );
        }
    }
}
