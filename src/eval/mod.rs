//! `hark eval`: the project's accuracy benchmark on real recorded speech (`../shared/data`).
//!
//! Same-speaker few-shot: pick a speaker and 3 digits, enrol `takes` takes of each plus 10
//! two-second room-noise clips (white, pink, running tap) as `_background_`; then stream up to 20
//! of that speaker's other takes of each target digit and 120 takes of other digits by all four
//! speakers, in random order, 0.6-1.6 s apart, over a bed of dishes, bike and cat-imitation noise
//! at 5% of full-scale peak. A hit is the right word firing between a take's start and 0.8 s
//! after its end; a second detection of the same take, and every other detection, is a false
//! accept. Run with and without 30 `_unknown_` takes (other digits by the same speaker).
//! Cross-speaker: enrol one digit from two speakers, detect it spoken by the other two.

use anyhow::{bail, Result};
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pipeline::detector::{Detection, DetectorSettings};
use crate::pipeline::embedding::{Embedder, DIM};
use crate::pipeline::frontend::SAMPLE_RATE;
use crate::pipeline::{Decision, Features};
use crate::train::dataset::{Dataset, Take};
use crate::train::TrainOptions;

pub const SPEAKERS: [&str; 4] = ["george", "jackson", "nicolas", "theo"];
pub const DIGITS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];
/// Seconds after a take's end within which its detection counts.
pub const HIT_WINDOW: f64 = 0.8;

/// Does an event at `time` count for a word said from `start` to `end` (seconds)? The one hit
/// test of the project: eval, the demo and the tests all use it.
pub fn hits(time: f64, start: f64, end: f64) -> bool {
    time >= start && time <= end + HIT_WINDOW
}

#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub data: PathBuf,
    pub seeds: Vec<u64>,
    pub takes: usize,
    pub train: TrainOptions,
    /// Also run the cross-speaker case.
    pub cross_speaker: bool,
    /// Extra thresholds to report (the head's default is always reported).
    pub sweep: Vec<f32>,
    /// Write each seed's stream and its truth here, for replay with `hark detect`.
    pub write_streams: Option<PathBuf>,
    /// Number of stream takes per target digit and of non-target takes (smaller for quick runs).
    pub targets_per_word: usize,
    pub nontargets: usize,
    /// Print every false accept with the take it landed on.
    pub explain: bool,
    /// Run the quiet-room gate, as `listen` does.
    pub gate: bool,
}

/// For each missed target: the best raw score and template similarity the head gave it.
fn trace_misses(
    head: &crate::pipeline::head::Head,
    dets: &[Detection],
    truth: &[Truth],
    embs: &Timeline,
    log: &mut dyn FnMut(&str),
) {
    let mut sc = crate::pipeline::head::Scorer::new(head);
    let trace: Vec<(f64, Vec<f32>, Vec<f32>)> = embs
        .iter()
        .map(|(t, e)| {
            match e {
                Some(e) => {
                    sc.push(head, e);
                }
                None => {
                    sc.reset();
                    sc.raw.fill(0.0);
                }
            }
            (*t, sc.raw.clone(), sc.similarity.clone())
        })
        .collect();
    for t in truth.iter().filter(|t| t.word.is_some()) {
        let w = head
            .labels
            .iter()
            .position(|l| Some(l) == t.word.as_ref())
            .unwrap();
        if dets
            .iter()
            .any(|d| hits(d.time, t.start, t.end) && d.word == head.labels[w])
        {
            continue;
        }
        let (mut bp, mut bs) = (0.0f32, -1.0f32);
        for (tt, p, s) in &trace {
            if hits(*tt, t.start, t.end) {
                bp = bp.max(p[w]);
                bs = bs.max(s[w]);
            }
        }
        log(&format!(
            "    miss {} best p {bp:.3} best sim {bs:.3} (needs {:.3})",
            t.file.rsplit('/').next().unwrap_or(""),
            head.template_min[w]
        ));
    }
}

/// Prints each false accept with the nearest take, for diagnosis.
fn explain(dets: &[Detection], truth: &[Truth], log: &mut dyn FnMut(&str)) {
    let mut hit = vec![false; truth.len()];
    for d in dets {
        let i = truth.iter().position(|t| hits(d.time, t.start, t.end));
        if let Some(i) = i {
            if !hit[i] && truth[i].word.as_deref() == Some(d.word.as_str()) {
                hit[i] = true;
                log(&format!(
                    "    hit {:>5} at {:>7.2}s score {:.3} sim {:.3} | ends {:+.2}s",
                    d.word,
                    d.time,
                    d.score,
                    d.similarity,
                    d.time - truth[i].end
                ));
                continue;
            }
        }
        let near = truth
            .iter()
            .min_by(|a, b| {
                (a.end - d.time)
                    .abs()
                    .partial_cmp(&(b.end - d.time).abs())
                    .unwrap()
            })
            .unwrap();
        log(&format!(
            "    FA {:>5} at {:>7.2}s score {:.3} sim {:.3} | nearest {} ({:?}) ends {:+.2}s",
            d.word,
            d.time,
            d.score,
            d.similarity,
            near.file.rsplit('/').next().unwrap_or(""),
            near.word,
            d.time - near.end
        ));
    }
    for (t, h) in truth.iter().zip(&hit) {
        if t.word.is_some() && !h {
            log(&format!(
                "    miss {} ({:?}) at {:.2}s",
                t.file.rsplit('/').next().unwrap_or(""),
                t.word,
                t.end
            ));
        }
    }
}

/// Where a spoken take lies in the stream.
#[derive(Clone, Debug)]
pub struct Truth {
    pub word: Option<String>,
    pub start: f64,
    pub end: f64,
    pub file: String,
}

/// Counts of one run.
#[derive(Clone, Debug, Default)]
pub struct Score {
    pub targets: usize,
    pub hits: usize,
    pub nontargets: usize,
    pub false_accepts: usize,
    pub seconds: f64,
    /// Per hit: detection time minus the true end of the word (seconds).
    pub latencies: Vec<f64>,
}

impl Score {
    pub fn recall(&self) -> f64 {
        self.hits as f64 / self.targets.max(1) as f64
    }
    pub fn fa_per_word(&self) -> f64 {
        self.false_accepts as f64 / self.nontargets.max(1) as f64
    }
    pub fn fa_per_hour(&self) -> f64 {
        self.false_accepts as f64 / (self.seconds / 3600.0).max(1e-9)
    }
    fn add(&mut self, o: &Score) {
        self.targets += o.targets;
        self.hits += o.hits;
        self.nontargets += o.nontargets;
        self.false_accepts += o.false_accepts;
        self.seconds += o.seconds;
        self.latencies.extend_from_slice(&o.latencies);
    }

    /// The `q` quantile (0..1) of the latencies, in seconds.
    pub fn latency(&self, q: f64) -> f64 {
        let mut v = self.latencies.clone();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
}

/// Scores detections against the truth.
pub fn score(dets: &[Detection], truth: &[Truth], seconds: f64) -> Score {
    let mut hit = vec![false; truth.len()];
    let mut s = Score {
        targets: truth.iter().filter(|t| t.word.is_some()).count(),
        nontargets: truth.iter().filter(|t| t.word.is_none()).count(),
        seconds,
        ..Default::default()
    };
    for d in dets {
        let i = truth.iter().position(|t| hits(d.time, t.start, t.end));
        match i {
            Some(i) if !hit[i] && truth[i].word.as_deref() == Some(d.word.as_str()) => {
                hit[i] = true;
                s.hits += 1;
                s.latencies.push(d.time - truth[i].end);
            }
            _ => s.false_accepts += 1,
        }
    }
    s
}

fn fsdd(data: &Path, digit: usize, speaker: &str, take: usize) -> PathBuf {
    data.join("fsdd")
        .join(format!("{digit}_{speaker}_{take}.wav"))
}

/// Checks that the shared data is there; the message says what is missing.
pub fn check_data(data: &Path) -> Result<()> {
    for p in [
        data.join("fsdd/0_george_0.wav"),
        data.join("noise/white_noise.wav"),
    ] {
        if !p.is_file() {
            bail!("{}: benchmark data not found (expected ../shared/data with fsdd/ and noise/; pass --data DIR)", p.display());
        }
    }
    Ok(())
}

fn noise(data: &Path, name: &str) -> Result<Vec<f32>> {
    Ok(crate::audio::wav::read_16k(&data.join("noise").join(name))?)
}

fn peak_normalise(x: &mut [f32], peak: f32) {
    let m = x.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1.0);
    x.iter_mut().for_each(|v| *v *= peak / m);
}

/// Ten 2-second clips from white, pink and running-tap noise.
fn background(data: &Path, rng: &mut SmallRng) -> Result<Vec<Vec<f32>>> {
    let files = [
        noise(data, "white_noise.wav")?,
        noise(data, "pink_noise.wav")?,
        noise(data, "running_tap.wav")?,
    ];
    let len = 2 * SAMPLE_RATE as usize;
    Ok((0..10)
        .map(|i| {
            let f = &files[i % 3];
            let start = rng.random_range(0..f.len() - len);
            f[start..start + len].to_vec()
        })
        .collect())
}

/// Builds a stream of takes with gaps over a noise bed; returns samples and truth.
fn make_stream(
    data: &Path,
    items: &[(PathBuf, Option<String>)],
    rng: &mut SmallRng,
) -> Result<(Vec<f32>, Vec<Truth>)> {
    let sr = SAMPLE_RATE as f64;
    let mut out: Vec<f32> = Vec::new();
    let mut truth = Vec::new();
    for (path, word) in items {
        let gap = rng.random_range(0.6..1.6);
        out.extend(std::iter::repeat_n(0.0, (gap * sr) as usize));
        let x = crate::audio::wav::read_16k(path)?;
        let start = out.len() as f64 / sr;
        out.extend_from_slice(&x);
        truth.push(Truth {
            word: word.clone(),
            start,
            end: out.len() as f64 / sr,
            file: path.display().to_string(),
        });
    }
    out.extend(std::iter::repeat_n(0.0, (1.5 * sr) as usize));
    let mut bed: Vec<f32> = Vec::new();
    for n in [
        "doing_the_dishes.wav",
        "exercise_bike.wav",
        "dude_miaowing.wav",
    ] {
        let mut x = noise(data, n)?;
        peak_normalise(&mut x, 0.05 * 32767.0);
        bed.extend(x);
    }
    let off = rng.random_range(0..bed.len());
    for (i, v) in out.iter_mut().enumerate() {
        *v += bed[(off + i) % bed.len()];
    }
    Ok((out, truth))
}

/// A stream's embeddings with the stream time at which each became available.
pub type Timeline = Vec<(f64, Option<Vec<f32>>)>;

/// Embeds a 16 kHz stream through the streaming feature pipeline in 80 ms chunks.
fn stream_embeddings(emb: Embedder, samples: &[f32], gate: bool) -> Result<(Embedder, Timeline)> {
    let mut f = Features::new(emb, SAMPLE_RATE)?;
    f.set_gate(gate);
    let mut out = Vec::new();
    for c in samples.chunks(1280) {
        f.push(c, &mut |t, e| out.push((t, e.map(|e| e.to_vec()))))?;
    }
    f.finish(&mut |t, e| out.push((t, e.map(|e| e.to_vec()))))?;
    Ok((f.into_embedder(), out))
}

/// Stream embeddings, cached under `$HARK_EVAL_CACHE` when set (speeds up design sweeps).
fn cached_stream_embeddings(
    emb: Embedder,
    samples: &[f32],
    key: &str,
    gate: bool,
) -> Result<(Embedder, Timeline)> {
    let Some(dir) = std::env::var_os("HARK_EVAL_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
    else {
        return stream_embeddings(emb, samples, gate);
    };
    let key = format!("{key}-g{}", gate as u8);
    let path = dir.join(format!(
        "{key}-{}.bin",
        &crate::util::sha256_hex(bytemuck_f32(samples))[..12]
    ));
    if let Ok(b) = std::fs::read(&path) {
        let v: Vec<f32> = b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let out = v
            .chunks_exact(DIM + 1)
            .map(|c| (c[0] as f64, (!c[1].is_nan()).then(|| c[1..].to_vec())))
            .collect();
        return Ok((emb, out));
    }
    let (emb, out) = stream_embeddings(emb, samples, gate)?;
    let mut b = Vec::with_capacity(out.len() * (DIM + 1) * 4);
    for (t, e) in &out {
        b.extend_from_slice(&(*t as f32).to_le_bytes());
        match e {
            Some(e) => e.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes())),
            None => (0..DIM).for_each(|_| b.extend_from_slice(&f32::NAN.to_le_bytes())),
        }
    }
    std::fs::create_dir_all(&dir)?;
    crate::util::write_atomic(&path, &b)?;
    Ok((emb, out))
}

fn bytemuck_f32(x: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding; any byte view of it is valid.
    unsafe { std::slice::from_raw_parts(x.as_ptr() as *const u8, std::mem::size_of_val(x)) }
}

fn decide(
    head: Arc<crate::pipeline::head::Head>,
    settings: Option<DetectorSettings>,
    embs: &Timeline,
) -> Vec<Detection> {
    let mut d = Decision::new(head, settings);
    embs.iter()
        .filter_map(|(t, e)| d.push(*t, e.as_deref()))
        .collect()
}

fn take(path: PathBuf) -> Result<Take> {
    crate::train::dataset::load_take(&path)
}

/// One scenario's results: per threshold label -> summed score.
pub type Results = Vec<(String, Score)>;

fn accumulate(into: &mut Results, label: &str, s: &Score) {
    match into.iter_mut().find(|(l, _)| l == label) {
        Some((_, acc)) => acc.add(s),
        None => into.push((label.to_string(), s.clone())),
    }
}

/// Runs the benchmark; prints a line per seed and returns summed results per scenario.
pub fn run(
    assets: &crate::assets::Assets,
    opts: &EvalOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<(String, Results)>> {
    check_data(&opts.data)?;
    let data = &opts.data;
    let mut emb = Embedder::load(assets)?;
    let bank = if !opts.train.use_bank {
        None
    } else if crate::audio::synth::espeak_available() {
        Some(crate::train::negatives::load_or_build(
            &assets.dir,
            &mut emb,
            &|_, _| {},
        )?)
    } else {
        log("note: espeak-ng not found; training without the synthetic negative bank");
        None
    };
    let mut all: Vec<(String, Results)> = Vec::new();
    let mut record = |scenario: &str, label: &str, s: &Score| {
        if !all.iter().any(|(n, _)| n == scenario) {
            all.push((scenario.to_string(), Vec::new()));
        }
        let r = &mut all.iter_mut().find(|(n, _)| n == scenario).unwrap().1;
        accumulate(r, label, s);
    };
    for &seed in &opts.seeds {
        let mut rng = SmallRng::seed_from_u64(seed);
        let speaker = *SPEAKERS.choose(&mut rng).unwrap();
        let mut digits: Vec<usize> = (0..10).collect();
        digits.shuffle(&mut rng);
        let targets: Vec<usize> = digits[..3].to_vec();
        let others: Vec<usize> = digits[3..].to_vec();
        let mut ds = Dataset::default();
        let mut items: Vec<(PathBuf, Option<String>)> = Vec::new();
        for &d in &targets {
            let mut idx: Vec<usize> = (0..50).collect();
            idx.shuffle(&mut rng);
            let takes = idx[..opts.takes]
                .iter()
                .map(|&i| take(fsdd(data, d, speaker, i)))
                .collect::<Result<Vec<_>>>()?;
            ds.words.push((DIGITS[d].to_string(), takes));
            for &i in idx[opts.takes..].iter().take(opts.targets_per_word) {
                items.push((fsdd(data, d, speaker, i), Some(DIGITS[d].to_string())));
            }
        }
        ds.words.sort_by(|a, b| a.0.cmp(&b.0));
        ds.background = background(data, &mut rng)?;
        // Non-targets: other digits by all speakers; _unknown_: other digits by this speaker, disjoint.
        let mut pool: Vec<(usize, &str, usize)> = others
            .iter()
            .flat_map(|&d| {
                SPEAKERS
                    .iter()
                    .flat_map(move |&s| (0..50).map(move |i| (d, s, i)))
            })
            .collect();
        pool.shuffle(&mut rng);
        let nontarget: Vec<_> = pool[..opts.nontargets].to_vec();
        for &(d, s, i) in &nontarget {
            items.push((fsdd(data, d, s, i), None));
        }
        let unknown: Vec<Take> = pool[opts.nontargets..]
            .iter()
            .filter(|(_, s, _)| *s == speaker)
            .take(30)
            .map(|&(d, s, i)| take(fsdd(data, d, s, i)))
            .collect::<Result<_>>()?;
        items.shuffle(&mut rng);
        let (stream, truth) = make_stream(data, &items, &mut rng)?;
        let seconds = stream.len() as f64 / SAMPLE_RATE as f64;
        if let Some(dir) = &opts.write_streams {
            std::fs::create_dir_all(dir)?;
            crate::audio::wav::write_16k(&dir.join(format!("stream-{seed}.wav")), &stream)?;
            let t: Vec<serde_json::Value> = truth
                .iter()
                .map(|t| serde_json::json!({"word": t.word, "start": t.start, "end": t.end, "file": t.file}))
                .collect();
            crate::util::write_atomic(
                &dir.join(format!("stream-{seed}.json")),
                serde_json::to_string_pretty(&t)?.as_bytes(),
            )?;
        }
        let (e, embs) = cached_stream_embeddings(
            emb,
            &stream,
            &format!(
                "s{seed}-{}-{}-{}",
                opts.takes, opts.targets_per_word, opts.nontargets
            ),
            opts.gate,
        )?;
        emb = e;
        for with_unknown in [false, true] {
            let mut ds = ds.clone();
            if with_unknown {
                ds.unknown = unknown.clone();
            }
            let scenario = if with_unknown {
                "same speaker, 5 takes + 30 _unknown_"
            } else {
                "same speaker, 5 takes"
            };
            let scenario = scenario.replace("5 takes", &format!("{} takes", opts.takes));
            let bank_w = bank.as_ref().map(|b| b.without(&ds.labels()));
            let mut topts = opts.train.clone();
            topts.seed = seed;
            topts.cross_validate = false;
            let t0 = std::time::Instant::now();
            let head = Arc::new(crate::train::train(
                &mut emb,
                &ds,
                bank_w.as_deref(),
                &topts,
                &|_, _| {},
            )?);
            let train_s = t0.elapsed().as_secs_f64();
            let dets = decide(head.clone(), None, &embs);
            let s = score(&dets, &truth, seconds);
            log(&format!(
                "seed {seed:>3} {speaker:<8} {:<22} {scenario:<38} recall {:.3}  FA/non-target {:.3}  FA/h {:>6.1}  (train {train_s:.1} s)",
                targets.iter().map(|&d| DIGITS[d]).collect::<Vec<_>>().join(","),
                s.recall(), s.fa_per_word(), s.fa_per_hour()
            ));
            record(&scenario, "default", &s);
            if opts.explain {
                explain(&dets, &truth, log);
                trace_misses(&head, &dets, &truth, &embs, log);
            }
            for &th in &opts.sweep {
                let set = head.detector.clone().with_threshold(th);
                let s = score(&decide(head.clone(), Some(set), &embs), &truth, seconds);
                record(&scenario, &format!("threshold {th}"), &s);
            }
        }
        if opts.cross_speaker {
            let d = targets[0];
            let mut sp: Vec<&str> = SPEAKERS.to_vec();
            sp.shuffle(&mut rng);
            let mut idx: Vec<usize> = (0..50).collect();
            idx.shuffle(&mut rng);
            let mut takes = Vec::new();
            for s in &sp[..2] {
                for &i in &idx[..opts.takes] {
                    takes.push(take(fsdd(data, d, s, i))?);
                }
            }
            let mut cds = Dataset {
                words: vec![(DIGITS[d].to_string(), takes)],
                background: ds.background.clone(),
                unknown: vec![],
            };
            cds.words.sort_by(|a, b| a.0.cmp(&b.0));
            let mut citems: Vec<(PathBuf, Option<String>)> = Vec::new();
            for s in &sp[2..] {
                for &i in idx[opts.takes..].iter().take(opts.targets_per_word) {
                    citems.push((fsdd(data, d, s, i), Some(DIGITS[d].to_string())));
                }
            }
            let mut pool: Vec<(usize, &str, usize)> = (0..10)
                .filter(|&x| x != d)
                .flat_map(|x| {
                    SPEAKERS
                        .iter()
                        .flat_map(move |&s| (0..50).map(move |i| (x, s, i)))
                })
                .collect();
            pool.shuffle(&mut rng);
            for &(x, s, i) in &pool[..opts.nontargets] {
                citems.push((fsdd(data, x, s, i), None));
            }
            citems.shuffle(&mut rng);
            let (cstream, ctruth) = make_stream(data, &citems, &mut rng)?;
            let (e, cembs) = stream_embeddings(emb, &cstream, opts.gate)?;
            emb = e;
            let bank_w = bank.as_ref().map(|b| b.without(&cds.labels()));
            let mut topts = opts.train.clone();
            topts.seed = seed;
            topts.cross_validate = false;
            let head = Arc::new(crate::train::train(
                &mut emb,
                &cds,
                bank_w.as_deref(),
                &topts,
                &|_, _| {},
            )?);
            let s = score(
                &decide(head, None, &cembs),
                &ctruth,
                cstream.len() as f64 / SAMPLE_RATE as f64,
            );
            log(&format!(
                "seed {seed:>3} {:<31} cross-speaker ({} from {}+{} -> {}+{})       recall {:.3}  FA/non-target {:.3}  FA/h {:>6.1}",
                "", DIGITS[d], sp[0], sp[1], sp[2], sp[3], s.recall(), s.fa_per_word(), s.fa_per_hour()
            ));
            record("cross-speaker, 1 digit, 2 enrolled speakers", "default", &s);
        }
    }
    Ok(all)
}

/// A stream of `n` random digit takes by all four speakers over the benchmark's noise bed:
/// speech mixed with noise, for cost benchmarks.
pub fn speech_stream(data: &Path, seed: u64, n: usize) -> Result<Vec<f32>> {
    check_data(data)?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let items: Vec<(PathBuf, Option<String>)> = (0..n)
        .map(|_| {
            (
                fsdd(
                    data,
                    rng.random_range(0..10),
                    SPEAKERS[rng.random_range(0..4)],
                    rng.random_range(0..50),
                ),
                None,
            )
        })
        .collect();
    Ok(make_stream(data, &items, &mut rng)?.0)
}
