//! The `hark` command line: parses flags once into settings and dispatches.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod bench;
mod record;

use hark::assets::Assets;
use hark::pipeline::embedding::Embedder;
use hark::pipeline::head::Head;
use hark::pipeline::Pipeline;
use hark::train::dataset::Dataset;
use hark::train::TrainOptions;

/// Default place of the trained head.
const DEFAULT_HEAD: &str = "models/hark.head";

#[derive(Parser)]
#[command(
    name = "hark",
    version,
    about = "A voice-trigger daemon: learns your custom words from a few takes and announces each one it hears."
)]
struct Cli {
    /// The models folder (base model and ONNX Runtime); found automatically from the repository.
    #[arg(long, global = true, value_name = "DIR")]
    models: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit the transfer-learned head on recordings/<word>/*.wav.
    Train {
        /// Recordings: one folder per word, plus optional _background_ and _unknown_.
        #[arg(long, default_value = "recordings")]
        data: PathBuf,
        /// Where to write the head.
        #[arg(long, default_value = DEFAULT_HEAD)]
        out: PathBuf,
        /// Skip cross-validation (faster; no fit figures).
        #[arg(long)]
        no_cv: bool,
        #[command(flatten)]
        knobs: Knobs,
    },
    /// Run WAV files through the detection pipeline and report every detection.
    Detect {
        #[arg(long, default_value = DEFAULT_HEAD)]
        head: PathBuf,
        /// Override every word's threshold.
        #[arg(long)]
        threshold: Option<f32>,
        /// One JSON object per line and detection.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Make example recordings with espeak-ng, train on them, and replay a stream through the
    /// detector: hark working end to end, with nothing to record.
    Demo {
        /// Where the example recordings, head and stream go.
        #[arg(long, default_value = "target/demo")]
        dir: PathBuf,
    },
    /// The daemon: listen on the microphone (or a WAV file) and announce each word heard, on
    /// stdout, a Unix socket and an optional command hook.
    Listen {
        /// Config file [default: config/hark.toml when it exists].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The trained head (overrides `head`).
        #[arg(long)]
        head: Option<PathBuf>,
        /// Capture device name or part of it (overrides `device`; see `hark devices`).
        #[arg(long)]
        device: Option<String>,
        /// Unix socket path (overrides `socket.path`).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Listen to a WAV file instead of the microphone.
        #[arg(long, value_name = "FILE.wav")]
        input: Option<PathBuf>,
        /// With --input: pace the file like a microphone.
        #[arg(long, requires = "input")]
        realtime: bool,
        /// Do not print events on stdout.
        #[arg(long)]
        quiet: bool,
    },
    /// Record takes of a word from the microphone into recordings/<word>/ (guided, with a
    /// countdown and level meter). `hark record _background_ --seconds 10` records room noise.
    Record {
        word: String,
        /// Number of takes.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Seconds of room noise, for _background_.
        #[arg(long, default_value_t = 10.0)]
        seconds: f32,
        /// Capture device name or part of it.
        #[arg(long, default_value = "")]
        device: String,
        #[arg(long, default_value = "recordings")]
        data: PathBuf,
    },
    /// List the capture devices with their default rates and formats.
    Devices,
    /// The cost benchmark: hark against openWakeWord 0.5.1 and the base model's floor.
    Bench {
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        /// Minutes of audio for the streaming figures.
        #[arg(long, default_value_t = 4.0)]
        minutes: f32,
        /// Minutes of audio for the offline figure.
        #[arg(long, default_value_t = 60.0)]
        offline_minutes: f32,
        /// Skip openWakeWord.
        #[arg(long)]
        no_peer: bool,
        /// A quick check that the benchmark works (short audio, no peer, one latency seed).
        #[arg(long)]
        quick: bool,
    },
    /// Build the synthetic negative bank now (once; `train` would otherwise build it on first use).
    Bank,
    /// The accuracy benchmark on ../shared/data (spoken digits and noise).
    Eval {
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        /// Number of seeds (streams) to average over.
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        first_seed: u64,
        #[arg(long, default_value_t = 5)]
        takes: usize,
        /// Skip the cross-speaker case.
        #[arg(long)]
        no_cross: bool,
        /// Smaller streams (5 targets per word, 30 non-targets): a quick check that it works.
        #[arg(long)]
        quick: bool,
        /// Also report these thresholds (comma-separated).
        #[arg(long, value_delimiter = ',')]
        sweep: Vec<f32>,
        /// Print every false accept and where it landed.
        #[arg(long)]
        explain: bool,
        /// Run without the quiet-room gate (to show it costs no recall).
        #[arg(long)]
        no_gate: bool,
        /// Write each stream and its truth (JSON) to DIR.
        #[arg(long, value_name = "DIR")]
        write_streams: Option<PathBuf>,
        #[command(flatten)]
        knobs: Knobs,
    },
}

/// Training knobs (defaults are the benchmark's choice).
#[derive(clap::Args, Clone)]
#[command(next_help_heading = "Design knobs (defaults are the benchmark's choice; see README)")]
struct Knobs {
    /// Consecutive embeddings per feature.
    #[arg(long)]
    context: Option<usize>,
    /// Hidden units (0 = linear softmax).
    #[arg(long)]
    hidden: Option<usize>,
    /// Augmented copies per take.
    #[arg(long)]
    augment: Option<usize>,
    #[arg(long)]
    epochs: Option<usize>,
    /// Default detection threshold written into the head.
    #[arg(long = "default-threshold")]
    default_threshold: Option<f32>,
    #[arg(long)]
    smoothing: Option<usize>,
    /// "none" weights per source: take halves, altered takes, background, bank, unknown.
    #[arg(long, value_delimiter = ',')]
    source_weights: Option<Vec<f32>>,
    #[arg(long)]
    l2: Option<f32>,
    /// Template check slack (negative disables).
    #[arg(long)]
    template_slack: Option<f32>,
    /// Do not use reversed takes as negatives.
    #[arg(long)]
    no_reversed: bool,
    /// Do not use the synthetic negative bank.
    #[arg(long)]
    no_bank: bool,
    #[arg(long)]
    bank_max: Option<usize>,
    /// Quantile of held-out similarities for the template gate.
    #[arg(long)]
    template_quantile: Option<f32>,
    /// Templates from clean takes only.
    #[arg(long)]
    clean_templates: bool,
    /// Speed perturbation range for augmented takes (e.g. 0.1 = +-10%).
    #[arg(long)]
    speed: Option<f32>,
    #[arg(long)]
    gain_db: Option<f32>,
    /// Windows a passed template check holds for.
    #[arg(long)]
    template_hold: Option<usize>,
    /// Hard-negative mining: keep this many hardest bank windows (and as many random).
    #[arg(long)]
    mine: Option<usize>,
    /// Spliced half-take negatives per take.
    #[arg(long)]
    chimeras: Option<usize>,
}

impl Knobs {
    fn apply(&self, mut o: TrainOptions) -> TrainOptions {
        macro_rules! set {
            ($($f:ident => $g:ident),*) => { $(if let Some(v) = self.$f { o.$g = v; })* };
        }
        set!(context => context, hidden => hidden, augment => augment, epochs => epochs,
             default_threshold => threshold, smoothing => smoothing,
             l2 => l2, template_slack => template_slack, bank_max => bank_max, chimeras => chimeras, template_quantile => template_quantile, speed => speed, gain_db => gain_db, mine => mine, template_hold => template_hold);
        if self.clean_templates {
            o.template_augmented = false;
        }
        if let Some(w) = self.source_weights.as_ref().filter(|w| w.len() == 5) {
            o.source_weights.copy_from_slice(w);
        }
        if self.no_bank {
            o.use_bank = false;
        }
        if self.no_reversed {
            o.reversed = false;
        }
        o
    }
}

fn bar(len: u64, msg: &'static str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap()
            .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}

pub fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("hark: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            data,
            out,
            no_cv,
            knobs,
        } => {
            let assets = Assets::locate(cli.models.as_deref())?;
            let ds = Dataset::load(&data)?;
            let mut emb = Embedder::load(&assets)?;
            let mut opts = knobs.apply(TrainOptions::default());
            opts.cross_validate = !no_cv;
            let t0 = std::time::Instant::now();
            let bank = load_bank(&assets, &mut emb, !opts.use_bank)?;
            let bank_w = bank.as_ref().map(|b| b.without(&ds.labels()));
            let pb = bar(1, "embedding");
            let head = hark::train::train(&mut emb, &ds, bank_w.as_deref(), &opts, &|p, n| {
                pb.set_length(n);
                pb.set_position(p);
            })?;
            pb.finish_and_clear();
            head.save(&out)?;
            println!(
                "trained {} word(s) in {:.1} s -> {}",
                head.labels.len(),
                t0.elapsed().as_secs_f64(),
                out.display()
            );
            for ((w, takes), th) in ds.words.iter().zip(&head.detector.thresholds) {
                println!("  {w:<16} {} takes  threshold {th:.2}", takes.len());
            }
            println!(
                "  background clips: {}, unknown takes: {}, synthetic negatives: {}",
                ds.background.len(),
                ds.unknown.len(),
                bank_w
                    .as_ref()
                    .map_or("none (espeak-ng not found)".to_string(), |b| format!(
                        "{} windows",
                        b.len() / hark::pipeline::embedding::DIM
                    ))
            );
            for (name, v) in &head.report.figures {
                println!("  {name}: {v:.3}");
            }
            Ok(())
        }
        Command::Detect {
            head,
            threshold,
            json,
            files,
        } => {
            let assets = Assets::locate(cli.models.as_deref())?;
            let mut emb = Some(Embedder::load(&assets)?);
            let head = Arc::new(Head::load(&head, &emb.as_ref().unwrap().model_sha256)?);
            let settings = threshold.map(|t| head.detector.clone().with_threshold(t));
            for f in &files {
                let audio = hark::audio::wav::read(f)?;
                let mut p = Pipeline::new(
                    emb.take().unwrap(),
                    head.clone(),
                    audio.rate,
                    settings.clone(),
                )?;
                let dets = hark::pipeline::detect_signal(&mut p, &audio.samples, audio.rate)?;
                for d in &dets {
                    if json {
                        println!("{}", crate::daemon::sinks::event_json(d, Some(f), None));
                    } else {
                        println!(
                            "{}: {} at {:.2} s (score {:.3})",
                            f.display(),
                            d.word,
                            d.time,
                            d.score
                        );
                    }
                }
                emb = Some(p.into_embedder());
            }
            Ok(())
        }
        Command::Listen {
            config,
            head,
            device,
            socket,
            input,
            realtime,
            quiet,
        } => {
            let config_path = match config {
                Some(p) => Some(p),
                None => Some(PathBuf::from("config/hark.toml")).filter(|p| p.is_file()),
            };
            let opts = crate::daemon::ListenOptions {
                config_path,
                overrides: crate::daemon::Overrides {
                    head,
                    device,
                    socket,
                    models: cli.models.clone(),
                },
                input,
                realtime,
                stdout: !quiet,
            };
            let s = crate::daemon::listen(opts)?;
            let peak = s.peak_rss_kb.map_or(String::new(), |kb| {
                format!(", peak memory {:.1} MB", kb as f64 / 1024.0)
            });
            let skipped = if s.blocks > 0 {
                format!(
                    ", base model skipped for {:.0}% of blocks",
                    100.0 * s.gated_blocks as f64 / s.blocks as f64
                )
            } else {
                String::new()
            };
            eprintln!(
                "hark: stopped after {:.1} s: {} event(s), {} dropped sample(s), {} dropped client(s){skipped}{peak}",
                s.seconds, s.events, s.dropped_samples, s.dropped_clients
            );
            Ok(())
        }
        Command::Record {
            word,
            count,
            seconds,
            device,
            data,
        } => crate::cli::record::record(&data, &word, count, seconds, &device),
        Command::Devices => {
            let devs = crate::daemon::sources::microphone::devices()?;
            if devs.is_empty() {
                println!(
                    "no capture devices (use `hark listen --input FILE.wav` to run on a file)"
                );
            }
            for d in devs {
                println!(
                    "{} {}  [{}]",
                    if d.is_default { "*" } else { " " },
                    d.name,
                    d.default_config.as_deref().unwrap_or("no default config")
                );
            }
            Ok(())
        }
        Command::Bench {
            data,
            minutes,
            offline_minutes,
            no_peer,
            quick,
        } => {
            let assets = Assets::locate(cli.models.as_deref())?;
            let o = crate::cli::bench::BenchOptions {
                data,
                minutes: if quick { 0.3 } else { minutes },
                offline_minutes: if quick { 1.0 } else { offline_minutes },
                peer: !no_peer && !quick,
                latency_seeds: if quick { 1 } else { 4 },
                hark: std::env::current_exe()?,
            };
            let t0 = std::time::Instant::now();
            for line in crate::cli::bench::run(&assets, &o)? {
                println!("{line}");
            }
            println!(
                "\n(measured in {:.0} s; CPU times by wait4 per process; peak RSS is each process's own VmHWM)",
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Bank => {
            let assets = Assets::locate(cli.models.as_deref())?;
            let mut emb = Embedder::load(&assets)?;
            let t0 = std::time::Instant::now();
            match load_bank(&assets, &mut emb, false)? {
                Some(b) => println!(
                    "negative bank ready: {} windows ({:.0} s)",
                    b.window_words.len(),
                    t0.elapsed().as_secs_f64()
                ),
                None => println!("no negative bank: espeak-ng is not installed"),
            }
            Ok(())
        }
        Command::Demo { dir } => demo(cli.models.as_deref(), &dir),
        Command::Eval {
            data,
            seeds,
            first_seed,
            takes,
            no_cross,
            quick,
            sweep,
            explain,
            no_gate,
            write_streams,
            knobs,
        } => {
            let assets = Assets::locate(cli.models.as_deref())?;
            let opts = hark::eval::EvalOptions {
                data,
                seeds: (first_seed..first_seed + seeds).collect(),
                takes,
                train: knobs.apply(TrainOptions::default()),
                cross_speaker: !no_cross,
                sweep,
                write_streams,
                targets_per_word: if quick { 5 } else { 20 },
                nontargets: if quick { 30 } else { 120 },
                explain,
                gate: !no_gate,
            };
            let t0 = std::time::Instant::now();
            let res = hark::eval::run(&assets, &opts, &mut |l| println!("{l}"))?;
            println!(
                "\n{} seed(s), {:.0} s",
                opts.seeds.len(),
                t0.elapsed().as_secs_f64()
            );
            println!("| scenario | threshold | recall | false accepts per non-target word | false accepts per hour | latency median / p95 (ms) |");
            println!("| --- | --- | --- | --- | --- | --- |");
            for (scenario, rows) in &res {
                for (label, s) in rows {
                    println!(
                        "| {scenario} | {label} | {:.3} | {:.3} | {:.1} | {:.0} / {:.0} |",
                        s.recall(),
                        s.fa_per_word(),
                        s.fa_per_hour(),
                        s.latency(0.5) * 1000.0,
                        s.latency(0.95) * 1000.0
                    );
                }
            }
            Ok(())
        }
    }
}

fn demo(models: Option<&Path>, dir: &Path) -> Result<()> {
    use hark::audio::synth;
    let assets = Assets::locate(models)?;
    if !hark::audio::synth::espeak_available() {
        anyhow::bail!("the demo makes its speech with espeak-ng, which is not installed (Debian: apt-get install espeak-ng)");
    }
    let rec = dir.join("recordings");
    println!(
        "1. example recordings of {:?} by espeak-ng voice {} -> {}",
        synth::WORDS,
        synth::VOICE,
        rec.display()
    );
    synth::write_recordings(&rec, synth::VOICE)?;
    let ds = Dataset::load(&rec)?;
    let mut emb = Embedder::load(&assets)?;
    let bank = load_bank(&assets, &mut emb, false)?;
    let bank_w = bank.as_ref().map(|b| b.without(&ds.labels()));
    let t0 = std::time::Instant::now();
    let pb = bar(1, "training");
    let head = hark::train::train(
        &mut emb,
        &ds,
        bank_w.as_deref(),
        &TrainOptions::default(),
        &|p, n| {
            pb.set_length(n);
            pb.set_position(p);
        },
    )?;
    pb.finish_and_clear();
    let head_path = dir.join("demo.head");
    head.save(&head_path)?;
    println!(
        "2. trained in {:.1} s -> {}",
        t0.elapsed().as_secs_f64(),
        head_path.display()
    );
    for (name, v) in &head.report.figures {
        println!("     {name}: {v:.3}");
    }
    let (stream, said) = synth::stream(synth::VOICE, 3)?;
    let wav = dir.join("stream.wav");
    hark::audio::wav::write_16k(&wav, &stream)?;
    println!(
        "3. replaying {} ({:.0} s: each word 3 times, other words between) through the detector:",
        wav.display(),
        stream.len() as f64 / 16000.0
    );
    let audio = hark::audio::wav::read(&wav)?;
    let mut p = Pipeline::new(emb, Arc::new(head), audio.rate, None)?;
    let dets = hark::pipeline::detect_signal(&mut p, &audio.samples, audio.rate)?;
    let mut heard = 0;
    for s in &said {
        let d = dets
            .iter()
            .find(|d| hark::eval::hits(d.time, s.start, s.end));
        let mark = match (s.target, d) {
            (true, Some(d)) if d.word == s.text => {
                heard += 1;
                format!(
                    "heard  {:<10} at {:6.2} s  score {:.2}",
                    d.word, d.time, d.score
                )
            }
            (true, _) => "missed".to_string(),
            (false, Some(d)) => format!(
                "FALSE  {:<10} at {:6.2} s  score {:.2}",
                d.word, d.time, d.score
            ),
            (false, None) => "quiet (right)".to_string(),
        };
        println!("   {:6.2} s  said {:<10} -> {mark}", s.start, s.text);
    }
    let targets = said.iter().filter(|s| s.target).count();
    println!(
        "heard {heard} of {targets} custom words; {} detection(s) in all",
        dets.len()
    );
    println!("Next: `hark detect --head {} --json {}`, or record your own words with `hark record <word>`.", head_path.display(), wav.display());
    Ok(())
}

fn load_bank(
    assets: &Assets,
    emb: &mut Embedder,
    disabled: bool,
) -> Result<Option<hark::train::negatives::Bank>> {
    if disabled {
        return Ok(None);
    }
    if !hark::audio::synth::espeak_available() {
        eprintln!("hark: note: espeak-ng not found; training without synthetic negatives (install espeak-ng for a head that rejects other speech better)");
        return Ok(None);
    }
    let pb = bar(1, "negatives");
    let b = hark::train::negatives::load_or_build(&assets.dir, emb, &|p, n| {
        pb.set_length(n);
        pb.set_position(p);
    })
    .context("cannot build the synthetic negative bank")?;
    pb.finish_and_clear();
    Ok(Some(b))
}
