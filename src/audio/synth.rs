//! Synthetic speech. The speech engines hark can drive ([`Engine`]: espeak-ng, flite, festival,
//! espeak-ng with MBROLA voices) and their speakers ([`Voice`]: engine, voice, speed, pitch),
//! each run as a command whose WAV output is read back at 16 kHz; engines that are not
//! installed are skipped. With espeak-ng: example recordings the project makes for itself and a
//! demo stream, what `hark demo` trains on and replays and what the integration tests use.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::pipeline::frontend::SAMPLE_RATE;
use crate::{Error, Result};

/// The demo's custom words (none of them is in the negative bank's word list).
pub const WORDS: [&str; 3] = ["lantern", "pumpkin", "violin"];
/// Other speech in the demo stream, which must not fire (none of it is in the negative bank).
pub const OTHER: [&str; 8] = [
    "pancake",
    "saxophone",
    "cucumber",
    "blueberry",
    "helicopter",
    "spaghetti",
    "kangaroo",
    "lavender",
];

/// The demo's speaker (an espeak-ng voice).
pub const VOICE: &str = "en-us+m3";
/// Speed and pitch of the example takes: one speaker's takes vary a little.
pub const TAKES: [(u32, u32); 5] = [(150, 45), (165, 50), (140, 42), (158, 55), (172, 48)];

/// Pink-ish noise (white noise through a one-pole low-pass), deterministic.
pub fn noise(seconds: f32, rms: f32, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut y = 0.0f32;
    let mut out: Vec<f32> = (0..(seconds * SAMPLE_RATE as f32) as usize)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let w = ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5;
            y = 0.9 * y + w;
            y
        })
        .collect();
    let cur = (out.iter().map(|v| v * v).sum::<f32>() / out.len().max(1) as f32)
        .sqrt()
        .max(1e-9);
    out.iter_mut().for_each(|v| *v *= rms / cur);
    out
}

/// Writes example recordings of `voice`: `dir/<word>/take-N.wav` (5 takes each) and
/// `dir/_background_/`.
pub fn write_recordings(dir: &Path, voice: &str) -> Result<()> {
    for w in WORDS {
        let d = dir.join(w);
        std::fs::create_dir_all(&d).map_err(Error::io(&d, "cannot create"))?;
        for (i, (speed, pitch)) in TAKES.iter().enumerate() {
            let x = say(w, voice, *speed, *pitch)?;
            crate::audio::wav::write_16k(&d.join(format!("take-{}.wav", i + 1)), &x)?;
        }
    }
    let bg = dir.join(crate::train::dataset::BACKGROUND);
    std::fs::create_dir_all(&bg).map_err(Error::io(&bg, "cannot create"))?;
    for i in 0..3 {
        crate::audio::wav::write_16k(
            &bg.join(format!("room-{}.wav", i + 1)),
            &noise(2.0, 60.0, i),
        )?;
    }
    Ok(())
}

/// One spoken item in a demo stream.
#[derive(Clone, Debug)]
pub struct Spoken {
    pub text: String,
    /// True if it is one of the custom words.
    pub target: bool,
    pub start: f64,
    pub end: f64,
}

/// A stream of the custom words (new takes: other speeds and pitches than the recordings) and
/// other words, 1 s apart, over faint noise. Returns samples and what was said when.
pub fn stream(voice: &str, rounds: usize) -> Result<(Vec<f32>, Vec<Spoken>)> {
    let sr = SAMPLE_RATE as f64;
    let mut out = noise(1.0, 60.0, 99);
    let mut said = Vec::new();
    let mut k = 0;
    for r in 0..rounds {
        for (i, w) in WORDS.iter().enumerate() {
            for (text, target) in [(*w, true), (OTHER[(k) % OTHER.len()], false)] {
                k += 1;
                let speed = 145 + ((r * 7 + i * 11) % 30) as u32;
                let pitch = 40 + ((r * 5 + i * 3) % 20) as u32;
                let x = say(text, voice, speed, pitch)?;
                let x = crate::train::dataset::trim(&x).unwrap_or(x);
                let start = out.len() as f64 / sr;
                out.extend_from_slice(&x);
                said.push(Spoken {
                    text: text.to_string(),
                    target,
                    start,
                    end: out.len() as f64 / sr,
                });
                out.extend(std::iter::repeat_n(0.0, SAMPLE_RATE as usize));
            }
        }
    }
    let bed = noise(out.len() as f32 / SAMPLE_RATE as f32 + 0.1, 60.0, 7);
    out.iter_mut().zip(bed).for_each(|(a, b)| *a += b);
    Ok((out, said))
}

/// Is espeak-ng on PATH?
pub fn espeak_available() -> bool {
    Engine::Espeak.available()
}

/// Synthesises `text` with espeak-ng, returning 16 kHz samples (int16 scale).
pub fn say(text: &str, voice: &str, speed: u32, pitch: u32) -> Result<Vec<f32>> {
    Voice::new(Engine::Espeak, voice, speed, pitch).say(text)
}

/// A speech synthesiser hark can run (each a Debian package; see `.ci/setup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Engine {
    /// espeak-ng, formant synthesis: many voices and variants, robotic.
    Espeak,
    /// CMU flite: a few natural English voices (statistical parametric).
    Flite,
    /// Festival's `text2wave`: diphone and HTS English voices.
    Festival,
    /// espeak-ng driving MBROLA diphone voices (`-v mb-us1`).
    Mbrola,
}

impl Engine {
    /// Every engine, in a fixed order.
    pub const ALL: [Engine; 4] = [
        Engine::Espeak,
        Engine::Flite,
        Engine::Festival,
        Engine::Mbrola,
    ];

    /// The engine's name on the command line and in caches.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Espeak => "espeak",
            Engine::Flite => "flite",
            Engine::Festival => "festival",
            Engine::Mbrola => "mbrola",
        }
    }

    /// The Debian package to install for it.
    pub fn package(self) -> &'static str {
        match self {
            Engine::Espeak => "espeak-ng",
            Engine::Flite => "flite",
            Engine::Festival => "festival and festvox-* voices",
            Engine::Mbrola => "mbrola and mbrola-us1 (Debian contrib/non-free)",
        }
    }

    /// The English voices hark uses, distinct speakers, male and female. espeak-ng's are
    /// languages that take a `+variant` (see `train::negatives`).
    pub fn voices(self) -> &'static [&'static str] {
        match self {
            Engine::Espeak => &["en-us", "en-gb"],
            Engine::Flite => &["slt", "rms", "awb", "kal16"],
            Engine::Festival => &["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"],
            Engine::Mbrola => &["us1", "us2", "us3", "en1"],
        }
    }

    /// Whether the engine is installed and speaks (probed once per process and engine, by
    /// synthesising one short word with its first voice).
    pub fn available(self) -> bool {
        static PROBED: [OnceLock<bool>; 4] = [const { OnceLock::new() }; 4];
        *PROBED[self as usize].get_or_init(|| {
            let v = Voice::new(self, self.voices()[0], 175, 50);
            v.say("yes")
                .is_ok_and(|x| x.iter().any(|s| s.abs() > 100.0))
        })
    }
}

/// The engines of `wanted` that are installed, in order; a note on stderr (once per process)
/// for each that is not.
pub fn installed(wanted: &[Engine]) -> Vec<Engine> {
    static NOTED: [std::sync::atomic::AtomicBool; 4] =
        [const { std::sync::atomic::AtomicBool::new(false) }; 4];
    let mut out: Vec<Engine> = Vec::new();
    for &e in wanted {
        if out.contains(&e) {
            continue;
        }
        if e.available() {
            out.push(e);
        } else if !NOTED[e as usize].swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!(
                "hark: note: {e} is not installed (Debian: {}); its voices are skipped",
                e.package()
            );
        }
    }
    out
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        Engine::ALL
            .into_iter()
            .find(|e| e.name() == s || (s == "espeak-ng" && *e == Engine::Espeak))
            .ok_or_else(|| format!("unknown speech engine {s:?} (espeak, flite, festival, mbrola)"))
    }
}

/// An engine in a recipe: its name, as on the command line.
impl<'de> serde::Deserialize<'de> for Engine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = <String as serde::Deserialize>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One synthetic speaker: an engine's voice at a speed and pitch.
#[derive(Clone, Debug, PartialEq)]
pub struct Voice {
    pub engine: Engine,
    /// The engine's voice name (espeak-ng: `language+variant`; mbrola: `us1`).
    pub name: String,
    /// Words per minute (175 is every engine's normal pace).
    pub speed: u32,
    /// 0-99, 50 the voice's own. espeak-ng and mbrola take it as it is; flite and festival
    /// shift pitch and formants together by `tape_factor` (a smaller or larger speaker).
    pub pitch: u32,
}

/// The factor flite and festival output is sped up by (resampled, like a tape) for `pitch`:
/// 2^((pitch-50)/200), i.e. +-3 semitones over 15..85, in steps that keep the resampler fast.
pub fn tape_factor(pitch: u32) -> f32 {
    let f = 2f32.powf((pitch.min(99) as f32 - 50.0) / 200.0);
    (f * 40.0).round() / 40.0
}

impl Voice {
    /// A voice of `engine`.
    pub fn new(engine: Engine, name: &str, speed: u32, pitch: u32) -> Voice {
        Voice {
            engine,
            name: name.to_string(),
            speed: speed.max(20),
            pitch,
        }
    }

    /// How long flite or festival stretch durations: the speed, less what the tape takes off.
    fn stretch(&self) -> String {
        format!("{:.3}", 175.0 / self.speed as f32 * tape_factor(self.pitch))
    }

    /// The command that says `text` as a WAV on stdout, and what to write to its stdin.
    pub fn command(&self, text: &str) -> (Command, Option<String>) {
        let mut c;
        let mut stdin = None;
        match self.engine {
            Engine::Espeak | Engine::Mbrola => {
                c = Command::new("espeak-ng");
                let name = match self.engine {
                    Engine::Mbrola => format!("mb-{}", self.name),
                    _ => self.name.clone(),
                };
                let (s, p) = (self.speed.to_string(), self.pitch.to_string());
                c.args(["-v", &name, "-s", &s, "-p", &p, "--stdout", text]);
            }
            Engine::Flite => {
                c = Command::new("flite");
                let stretch = format!("duration_stretch={}", self.stretch());
                c.args(["-voice", &self.name, "--setf", &stretch]);
                c.args(["-t", text, "-o", "/dev/stdout"]);
            }
            Engine::Festival => {
                c = Command::new("text2wave");
                let voice = format!("(voice_{})", self.name);
                let stretch = format!("(Parameter.set 'Duration_Stretch {})", self.stretch());
                c.args(["-eval", &voice, "-eval", &stretch, "-o", "/dev/stdout"]);
                // Festival reads the text as text from stdin, with no quoting to get wrong.
                stdin = Some(text.to_string());
            }
        }
        (c, stdin)
    }

    /// Synthesises `text`, returning 16 kHz samples (int16 scale).
    pub fn say(&self, text: &str) -> Result<Vec<f32>> {
        let (mut cmd, stdin) = self.command(text);
        let out = run(&mut cmd, stdin).map_err(|e| Error::Tool {
            message: format!(
                "cannot run {} for {} (install the Debian package {})",
                self.engine,
                self.name,
                self.engine.package()
            ),
            source: Some(e),
        })?;
        let parsed = out.status.success().then(|| parse_wav(&out.stdout));
        let Some(Ok((rate, pcm))) = parsed else {
            let why = match parsed {
                Some(Err(e)) => e,
                _ => String::from_utf8_lossy(&out.stderr).trim().to_string(),
            };
            return Err(Error::Tool {
                message: format!("{} failed for voice {}: {why}", self.engine, self.name),
                source: None,
            });
        };
        let rate = match self.engine {
            Engine::Flite | Engine::Festival => {
                (rate as f32 * tape_factor(self.pitch) / 400.0).round() as u32 * 400
            }
            _ => rate,
        };
        crate::pipeline::resample::to_16k(&pcm, rate)
    }
}

/// Runs `cmd`, feeding it `stdin`, and collects its output.
fn run(cmd: &mut Command, stdin: Option<String>) -> std::io::Result<std::process::Output> {
    let Some(text) = stdin else {
        return cmd.stdin(Stdio::null()).output();
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut pipe) = child.stdin.take() {
        use std::io::Write;
        pipe.write_all(text.as_bytes())?;
    }
    child.wait_with_output()
}

/// Reads a 16-bit mono PCM WAV as the engines write it to a pipe: the sizes in its header may
/// be placeholders (0 or too large), in which case the data runs to the end. Returns the rate
/// and the samples (int16 scale), or what is wrong with it.
pub fn parse_wav(bytes: &[u8]) -> std::result::Result<(u32, Vec<f32>), String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(format!("not a WAV ({} bytes of output)", bytes.len()));
    }
    let u16_at = |p: usize| u16::from_le_bytes([bytes[p], bytes[p + 1]]);
    let u32_at =
        |p: usize| u32::from_le_bytes([bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]]);
    let (mut p, mut rate) = (12, None);
    while p + 8 <= bytes.len() {
        let (id, size) = (&bytes[p..p + 4], u32_at(p + 4) as usize);
        let body = p + 8;
        if id == b"fmt " && body + 16 <= bytes.len() {
            let (format, channels, bits) = (u16_at(body), u16_at(body + 2), u16_at(body + 14));
            if (format, channels, bits) != (1, 1, 16) {
                return Err(format!(
                    "WAV format {format}, {channels} channels, {bits} bits: expected 16-bit mono PCM"
                ));
            }
            rate = Some(u32_at(body + 4));
        } else if id == b"data" {
            let rate = rate.ok_or("WAV data before its fmt chunk")?;
            let end = match size {
                0 => bytes.len(),
                s => body.saturating_add(s).min(bytes.len()),
            };
            let pcm = bytes[body..end]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
                .collect();
            return Ok((rate, pcm));
        }
        p = body.saturating_add(size + (size & 1));
    }
    Err("WAV without a data chunk".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &Voice, text: &str) -> (String, Vec<String>, Option<String>) {
        let (c, stdin) = v.command(text);
        let a = c.get_args().map(|a| a.to_string_lossy().into_owned());
        (
            c.get_program().to_string_lossy().into_owned(),
            a.collect(),
            stdin,
        )
    }

    #[test]
    fn commands_say_the_text_with_the_voice_speed_and_pitch() {
        let (p, a, stdin) = args(&Voice::new(Engine::Espeak, "en-gb+f3", 140, 60), "-x");
        assert_eq!(p, "espeak-ng");
        assert_eq!(
            a,
            ["-v", "en-gb+f3", "-s", "140", "-p", "60", "--stdout", "-x"]
        );
        assert!(stdin.is_none());
        let (p, a, _) = args(&Voice::new(Engine::Mbrola, "us1", 175, 50), "hi");
        assert_eq!(
            (p.as_str(), &a[..2]),
            ("espeak-ng", &["-v".to_string(), "mb-us1".into()][..])
        );
        // flite: 175 wpm at pitch 50 is the voice as it is.
        let (p, a, _) = args(&Voice::new(Engine::Flite, "slt", 175, 50), "go home");
        assert_eq!(p, "flite");
        let want = [
            "-voice",
            "slt",
            "--setf",
            "duration_stretch=1.000",
            "-t",
            "go home",
        ];
        assert_eq!(a[..6], want);
        assert_eq!(a[6..], ["-o", "/dev/stdout"]);
        // Half the speed doubles durations; a higher pitch is a faster tape, so longer durations.
        let (_, a, _) = args(&Voice::new(Engine::Flite, "awb", 350, 50), "x");
        assert_eq!(a[3], "duration_stretch=0.500");
        let (_, a, _) = args(&Voice::new(Engine::Flite, "awb", 175, 90), "x");
        assert_eq!(a[3], format!("duration_stretch={:.3}", tape_factor(90)));
        let (p, a, stdin) = args(
            &Voice::new(Engine::Festival, "ked_diphone", 175, 50),
            "a \"b\"",
        );
        assert_eq!(p, "text2wave");
        assert_eq!(a[..2], ["-eval", "(voice_ked_diphone)"]);
        assert_eq!(a[3], "(Parameter.set 'Duration_Stretch 1.000)");
        assert_eq!(
            stdin.as_deref(),
            Some("a \"b\""),
            "festival reads the text from stdin"
        );
    }

    #[test]
    fn the_tape_factor_is_one_at_50_and_rises_with_pitch_in_resampler_friendly_steps() {
        assert_eq!(tape_factor(50), 1.0);
        assert!(tape_factor(15) < 0.9 && tape_factor(85) > 1.1);
        assert!(tape_factor(20) < tape_factor(40) && tape_factor(60) < tape_factor(80));
        for p in 0..120 {
            let rate = 16000.0 * tape_factor(p);
            assert_eq!(rate % 400.0, 0.0, "pitch {p}: {rate} Hz");
        }
    }

    fn wav(rate: u32, fmt: (u16, u16, u16), data_size: u32, samples: &[i16]) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        for x in [fmt.0, fmt.1] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * 2).to_le_bytes());
        v.extend_from_slice(&[2, 0]);
        v.extend_from_slice(&fmt.2.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_size.to_le_bytes());
        samples
            .iter()
            .for_each(|s| v.extend_from_slice(&s.to_le_bytes()));
        v
    }

    #[test]
    fn wavs_from_a_pipe_are_read_whatever_sizes_their_header_claims() {
        let pcm = [1i16, -2, 300, i16::MIN];
        let want: Vec<f32> = pcm.iter().map(|&s| s as f32).collect();
        for size in [8, 0, 0x7fff_ffff, u32::MAX] {
            assert_eq!(
                parse_wav(&wav(22050, (1, 1, 16), size, &pcm)),
                Ok((22050, want.clone()))
            );
        }
        // A true size shorter than the file stops there (a chunk may follow).
        assert_eq!(
            parse_wav(&wav(16000, (1, 1, 16), 4, &pcm)).unwrap().1,
            want[..2]
        );
        // Another chunk before the data is skipped.
        let mut v = wav(16000, (1, 1, 16), 8, &pcm);
        let list = b"LIST\x03\0\0\0abc\0";
        v.splice(36..36, list.iter().copied());
        assert_eq!(parse_wav(&v).unwrap().1, want);
    }

    #[test]
    fn what_is_not_16_bit_mono_pcm_is_refused_with_the_reason() {
        let e = parse_wav(&wav(16000, (1, 2, 16), 0, &[0, 0])).unwrap_err();
        assert!(e.contains("2 channels"), "{e}");
        let e = parse_wav(&wav(16000, (3, 1, 32), 0, &[0, 0])).unwrap_err();
        assert!(e.contains("format 3"), "{e}");
        assert!(parse_wav(b"").unwrap_err().contains("not a WAV"));
        assert!(parse_wav(b"RIFF\0\0\0\0WAVEjunk")
            .unwrap_err()
            .contains("without a data chunk"));
        let no_fmt = b"RIFF\0\0\0\0WAVEdata\x02\0\0\0\x01\0";
        assert!(parse_wav(no_fmt).unwrap_err().contains("before its fmt"));
    }

    #[test]
    fn engines_are_named_as_on_the_command_line() {
        for e in Engine::ALL {
            assert_eq!(e.name().parse::<Engine>(), Ok(e));
            assert_eq!(e.to_string(), e.name());
            assert!(!e.voices().is_empty());
        }
        assert_eq!(" Espeak-NG".parse::<Engine>(), Ok(Engine::Espeak));
        assert!("sam".parse::<Engine>().unwrap_err().contains("\"sam\""));
    }
}
