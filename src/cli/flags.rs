//! What the user types: the clap definitions of every command and flag (their doc comments are
//! the `--help` text), and each command's conversion of its flags into the settings it runs on.
//! Conversions run once, before anything else, and reject bad values with a one-line error.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use super::bench::BenchOptions;
use super::choices::Choices;
use super::train::Train;
use crate::daemon::{ListenOptions, Overrides};
use crate::serve::ServeOptions;
use hark::eval::EvalOptions;

/// Default place of the trained head.
const DEFAULT_HEAD: &str = "models/hark.head";

/// The config file `hark listen` reads when `--config` is not given and the file exists.
const DEFAULT_CONFIG: &str = "config/hark.toml";

/// What `hark --version` prints after the name: the release, and the models and runtime it runs
/// on, as `.ci/setup` fetches them (the openwakeword and efficientword-net wheels, `ORT_VERSION`;
/// the models are pinned by their sha256 in `assets.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (base model openWakeWord 0.5.1 embedding, word check EfficientWord-Net 1.0.5, ",
    "ONNX Runtime 1.32.0)"
);

#[derive(Parser)]
#[command(
    name = "hark",
    version = VERSION,
    about = "A voice-trigger daemon: learns your custom words from a few takes and announces each one it hears."
)]
pub struct Cli {
    /// The models folder (base model and ONNX Runtime); found automatically from the repository.
    #[arg(long, global = true, value_name = "DIR")]
    pub models: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Fit the transfer-learned head on recordings/<word>/*.wav.
    Train(TrainFlags),
    /// Run WAV files through the detection pipeline and report every detection.
    Detect(DetectFlags),
    /// Make example recordings with espeak-ng, train on them, and replay a stream through the
    /// detector: hark working end to end, with nothing to record.
    Demo(DemoFlags),
    /// The daemon: listen on the microphone (or a WAV file) and announce each word heard, on
    /// stdout, a Unix socket and an optional command hook.
    Listen(ListenFlags),
    /// Serve wake words to clients that send their own audio: Home Assistant and
    /// wyoming-satellite over the Wyoming protocol, Rhasspy over Hermes (MQTT). Opens no
    /// microphone.
    Serve(ServeFlags),
    /// Record takes of a word from the microphone into recordings/<word>/ (guided, with a
    /// countdown and level meter). `hark record _background_ --seconds 10` records room noise.
    Record(RecordFlags),
    /// A false trigger: move an event's kept clip (`listen --keep-audio`), by its id or path,
    /// into recordings/_unknown_/ so the next `hark train` learns not to fire on it.
    Reject(super::reject::ClipFlags),
    /// A right detection: move an event's kept clip into its word's folder as a new take.
    Confirm(super::reject::ConfirmFlags),
    /// List the capture devices with their default rates and formats.
    Devices,
    /// The cost benchmark: hark against openWakeWord 0.5.1 and the base model's floor.
    Bench(BenchFlags),
    /// Copy the models (base model, word check, ONNX Runtime) into ~/.local/share/hark/models,
    /// checked by sha256, so that an installed hark finds them wherever it runs.
    Setup {
        /// Where to copy them instead.
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
    },
    /// Build the synthetic negative bank now (once; `train` would otherwise build it on first use).
    Bank,
    /// The accuracy benchmark on ../shared/data (spoken digits and noise).
    Eval(EvalFlags),
    /// Print a shell completion script: `hark completions bash > ~/.local/share/bash-completion/completions/hark`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

// `hark train`.
#[derive(Args)]
pub struct TrainFlags {
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
    choices: Choices,
    /// Print the recipe (the built-in one, or that of --recipe with its defaults filled in)
    /// and exit.
    #[arg(long)]
    pub print_recipe: bool,
}

impl TrainFlags {
    /// The recipe `hark train --print-recipe` prints, as TOML.
    pub fn recipe_toml(&self) -> Result<String> {
        Ok(self.choices.recipe()?.to_toml())
    }

    /// The settings `hark train` runs on.
    pub fn settings(self) -> Result<Train> {
        let mut options = self.choices.train_options()?;
        options.cross_validate = !self.no_cv;
        Ok(Train {
            data: self.data,
            out: self.out,
            options,
        })
    }
}

// `hark detect`: its flags are its settings.
#[derive(Args)]
pub struct DetectFlags {
    #[arg(long, default_value = DEFAULT_HEAD)]
    pub head: PathBuf,
    /// Override every word's threshold.
    #[arg(long, value_parser = super::choices::score)]
    pub threshold: Option<f32>,
    /// One JSON object per line and detection.
    #[arg(long)]
    pub json: bool,
    /// The detector alone decides, even if the head has a word check.
    #[arg(long)]
    pub no_word_check: bool,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

// `hark demo`.
#[derive(Args)]
pub struct DemoFlags {
    /// Where the example recordings, head and stream go.
    #[arg(long, default_value = "target/demo")]
    pub dir: PathBuf,
}

// `hark listen`.
#[derive(Args)]
pub struct ListenFlags {
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
    /// Save each event's audio into DIR as <id>.wav (overrides `events.keep_audio`), for
    /// `hark reject` and `hark confirm`.
    #[arg(long, value_name = "DIR")]
    keep_audio: Option<PathBuf>,
}

impl ListenFlags {
    /// The daemon's options; `models` is the global `--models` flag.
    pub fn options(self, models: Option<PathBuf>) -> ListenOptions {
        let config_path = match self.config {
            Some(p) => Some(p),
            None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.is_file()),
        };
        ListenOptions {
            config_path,
            overrides: Overrides {
                head: self.head,
                device: self.device,
                socket: self.socket,
                models,
                keep_audio: self.keep_audio,
            },
            input: self.input,
            realtime: self.realtime,
            stdout: !self.quiet,
        }
    }
}

// `hark serve`.
#[derive(Args)]
pub struct ServeFlags {
    /// Config file [default: config/hark.toml when it exists].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The trained head (overrides `head`).
    #[arg(long)]
    head: Option<PathBuf>,
    /// Where the Wyoming server listens (overrides `wyoming.uri`; default tcp://127.0.0.1:10400).
    #[arg(long, value_name = "tcp://HOST:PORT")]
    wyoming: Option<String>,
    /// No Wyoming server: serve Hermes (MQTT) alone (overrides `wyoming.enabled`).
    #[arg(long, conflicts_with = "wyoming")]
    no_wyoming: bool,
    /// The MQTT broker of a Rhasspy (Hermes) setup (overrides `mqtt.uri`).
    #[arg(long, value_name = "mqtt://[USER:PASS@]HOST:PORT")]
    mqtt: Option<String>,
    /// A Hermes site to hear (repeatable; overrides `mqtt.sites`; default: every site).
    #[arg(long = "site", value_name = "ID")]
    sites: Vec<String>,
}

impl ServeFlags {
    /// The server's options; `models` is the global `--models` flag.
    pub fn options(self, models: Option<PathBuf>) -> ServeOptions {
        ServeOptions {
            config_path: self.config.or_else(default_config),
            overrides: Overrides {
                head: self.head,
                models,
                ..Overrides::default()
            },
            wyoming: self.wyoming,
            no_wyoming: self.no_wyoming,
            mqtt: self.mqtt,
            sites: self.sites,
        }
    }
}

/// The default config file, when it exists.
fn default_config() -> Option<PathBuf> {
    Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.is_file())
}

// `hark record`: its flags are its settings.
#[derive(Args)]
pub struct RecordFlags {
    pub word: String,
    /// Number of takes.
    #[arg(long, default_value_t = 5)]
    pub count: usize,
    /// Seconds of one recording: room noise for _background_ [default: 10], or a stream of
    /// other speech for _unknown_ (`hark record _unknown_ --seconds 300`; without it, takes).
    #[arg(long)]
    pub seconds: Option<f32>,
    /// Capture device name or part of it.
    #[arg(long, default_value = "")]
    pub device: String,
    #[arg(long, default_value = "recordings")]
    pub data: PathBuf,
}

// `hark bench`.
#[derive(Args)]
pub struct BenchFlags {
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
    /// A quick check that the benchmark works (short audio, no peer, one latency seed; with
    /// --streams: 2 streams of 20 s, no peer).
    #[arg(long)]
    quick: bool,
    /// Many satellites on one `hark serve`: for each N, N Wyoming clients streaming in real
    /// time (e.g. --streams 1,10,100,300), beside openWakeWord with N models.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=5000))]
    streams: Vec<u16>,
    /// A day of audio through `hark listen --input` with socket churn, SIGHUPs and a hook:
    /// memory, drops, events and file descriptors over time.
    #[arg(long)]
    soak: bool,
    /// Hours of audio for --soak.
    #[arg(long, default_value_t = 24.0, requires = "soak")]
    hours: f64,
    /// --soak: how far (MB) the last hour's VmRSS peak may be from the first hour's. A run of
    /// minutes needs more than 1: a one-off plateau of about 2 MB can come in its first rows.
    #[arg(long, default_value_t = 1.0, requires = "soak")]
    rss_slack: f64,
}

impl BenchFlags {
    /// The cost benchmark's options (`--quick` replaces the sizes and drops the peer).
    pub fn options(self) -> Result<BenchOptions> {
        let quick = self.quick;
        Ok(BenchOptions {
            data: self.data,
            minutes: if quick { 0.3 } else { self.minutes },
            offline_minutes: if quick { 1.0 } else { self.offline_minutes },
            peer: !self.no_peer && !quick,
            latency_seeds: if quick { 1 } else { 4 },
            hark: std::env::current_exe()?,
            streams: match (quick, self.streams.is_empty()) {
                (_, true) => vec![],
                (true, false) => vec![2],
                (false, false) => self.streams.iter().map(|&n| n as usize).collect(),
            },
            quick,
            soak_hours: self.soak.then_some(self.hours),
            soak_rss_slack_mb: self.rss_slack,
        })
    }
}

// `hark eval`.
#[derive(Args)]
pub struct EvalFlags {
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
    /// Skip the cross-speaker cases.
    #[arg(long)]
    no_cross: bool,
    /// Skip the same-speaker cases (run only the cross-speaker ones).
    #[arg(long, conflicts_with = "no_cross")]
    no_same: bool,
    /// Smaller streams (5 targets per word, 30 non-targets, a crowd of 200 takes): a quick
    /// check that it works.
    #[arg(long)]
    quick: bool,
    /// Also report these thresholds (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = super::choices::score)]
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
    /// Write each scenario's stream, enrolled takes and the detections at every threshold
    /// (with their peak score and whether they hit) to DIR, for the study of a second stage;
    /// with the word check, also what it sees of each candidate (`checks.json`, read by
    /// `tests/probes/fusion.py`).
    #[arg(long, value_name = "DIR")]
    dump_candidates: Option<PathBuf>,
    /// Who may say the word in the cross-speaker cases.
    #[arg(long, default_value = "anyone")]
    cross_voices: hark::pipeline::head::Voices,
    /// Skip the crowd rows (every speaker's non-target words through each same-speaker head).
    #[arg(long)]
    no_crowd: bool,
    /// Draw recall against false accepts per non-target word over thresholds (a DET-style
    /// curve, one line per scenario) into FILE.png.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// The feedback loop instead: reject every false trigger into `_unknown_`, train again,
    /// listen to the same stream again; how many are gone and what recall it costs.
    #[arg(long)]
    pub feedback: bool,
    /// The benchmark on many people instead: a Speech Commands-style corpus of words
    /// (DIR/<word>/<speaker>_nohash_<n>.wav).
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// A folder of WAV files of continuous speech (`bash .ci/corpus` prepares LibriSpeech's):
    /// every head's false accepts in it, per hour of speech.
    #[arg(long, value_name = "DIR")]
    speech: Option<PathBuf>,
    /// With --corpus: draw from the corpus's held-out speakers (its validation split), not
    /// the ones the benchmark is tuned on.
    #[arg(long, requires = "corpus")]
    held_out: bool,
    #[command(flatten)]
    choices: Choices,
}

impl EvalFlags {
    /// The people benchmark's options, when `--corpus` names one.
    pub fn people(&self) -> Option<hark::eval::people::PeopleOptions> {
        use hark::eval::people::corpus::Split;
        Some(hark::eval::people::PeopleOptions {
            corpus: self.corpus.clone()?,
            split: if self.held_out {
                Split::Check
            } else {
                Split::Tune
            },
            targets: if self.quick { 10 } else { 40 },
            nontargets: if self.quick { 100 } else { 600 },
        })
    }

    /// The accuracy benchmark's options (`--quick` makes the streams smaller).
    pub fn options(self) -> Result<EvalOptions> {
        Ok(EvalOptions {
            train: self.choices.train_options()?,
            data: self.data,
            seeds: (self.first_seed..self.first_seed + self.seeds).collect(),
            takes: self.takes,
            cross_speaker: !self.no_cross,
            same_speaker: !self.no_same,
            sweep: self.sweep,
            write_streams: self.write_streams,
            dump_candidates: self.dump_candidates,
            targets_per_word: if self.quick { 5 } else { 20 },
            nontargets: if self.quick { 30 } else { 120 },
            explain: self.explain,
            gate: !self.no_gate,
            cross_voices: self.cross_voices,
            curve: match self.plot {
                Some(_) => hark::eval::curve_thresholds(),
                None => vec![],
            },
            crowd: match (self.no_crowd, self.quick) {
                (true, _) => 0,
                (false, true) => 200,
                (false, false) => 2000,
            },
            speech: self.speech,
        })
    }
}
