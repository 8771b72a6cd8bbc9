//! The training data on disk: `DIR/<word>/*.wav` takes, plus optional `_background_` (room
//! noise) and `_unknown_` (other speech). Loading validates every file and says which is wrong.

use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::pipeline::head::Voices;
use crate::train::recording::Recording;

use crate::pipeline::frontend::SAMPLE_RATE;

/// Folder of room-noise recordings.
pub const BACKGROUND: &str = "_background_";
/// Folder of other speech (words that must not fire).
pub const UNKNOWN: &str = "_unknown_";
/// Fewest takes a word needs.
pub const MIN_TAKES: usize = 3;
/// A sound span longer than this, seconds, is taken for a word in steady noise (see
/// `sound_span`).
const NOISY_SPAN_SECONDS: f32 = 1.5;

/// Longest take (after trimming silence), seconds.
pub const MAX_TAKE_SECONDS: f32 = 3.0;

/// One recorded take, 16 kHz mono, trimmed to the word with a little margin.
#[derive(Clone)]
pub struct Take {
    pub path: PathBuf,
    pub samples: Vec<f32>,
}

/// Everything `hark train` learns from.
#[derive(Default, Clone)]
pub struct Dataset {
    /// (word, takes), sorted by word.
    pub words: Vec<(String, Vec<Take>)>,
    /// Room noise, 16 kHz (a long clip on disk, see [`Recording`]).
    pub background: Vec<Recording>,
    pub unknown: Vec<Take>,
    /// Long `_unknown_` recordings (minutes of TV, radio, conversation), 16 kHz, each used
    /// window by window as "none" (up to [`MAX_BACKGROUND_SECONDS`] each), not as one take.
    pub unknown_streams: Vec<Recording>,
    /// What loading left out, for the user (a background clip cut at its limit, say).
    pub notes: Vec<String>,
    /// Words whose `word.toml` says who may say them (the others take the training default).
    pub voices: BTreeMap<String, Voices>,
}

/// A word folder's own settings file.
pub const WORD_SETTINGS: &str = "word.toml";

/// What `<word>/word.toml` may say.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WordSettings {
    /// `"mine"` or `"anyone"`.
    voices: Option<Voices>,
}

/// Reads `folder/word.toml` if there is one: who may say the word.
fn word_settings(folder: &Path) -> Result<Option<Voices>> {
    let path = folder.join(WORD_SETTINGS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, "cannot read")(e)),
    };
    let settings: WordSettings = toml::from_str(&text).map_err(|e| {
        Error::Data(crate::util::toml_error_line(
            &path.display().to_string(),
            &text,
            &e,
        ))
    })?;
    Ok(settings.voices)
}

/// Seconds of each background clip used (a longer one is cut there, with a note).
pub const MAX_BACKGROUND_SECONDS: f32 = 600.0;
/// The longest take file read, silence included (a take holds one word).
pub const MAX_TAKE_FILE_SECONDS: f32 = 60.0;

fn wav_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io(dir, "cannot list directory"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")))
        .collect();
    v.sort();
    Ok(v)
}

/// Frame energies (dB, 10 ms frames).
fn frame_db(x: &[f32]) -> Vec<f32> {
    x.chunks(160)
        .map(|c| 10.0 * (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32 + 1e-3).log10())
        .collect()
}

/// Where the sound is: from the first to the last 10 ms frame within 30 dB of the loudest one
/// (and above an absolute floor), plus 30 ms either side. A span longer than
/// [`NOISY_SPAN_SECONDS`] is a word in steady noise less than 30 dB below it (a phone's take in
/// a busy room): it is cut again at 6 dB above the noise, the level of its quietest tenth of
/// frames, so the take is the word rather than the room. None when nothing rises above the
/// floor (silence).
fn sound_span(x: &[f32]) -> Option<std::ops::Range<usize>> {
    span_of(&frame_db(x), x.len())
}

/// [`sound_span`] of a signal of `len` samples from its frame energies `db`.
fn span_of(db: &[f32], len: usize) -> Option<std::ops::Range<usize>> {
    let max = db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // -60 dBFS RMS in int16 scale is about 20*log10(32768) - 60 = 30 dB.
    if max < 30.0 {
        return None;
    }
    let thr = (max - 30.0).max(30.0);
    let span = |thr: f32| -> Option<(usize, usize)> {
        Some((
            db.iter().position(|v| *v >= thr)?,
            db.iter().rposition(|v| *v >= thr)?,
        ))
    };
    let (mut first, mut last) = span(thr)?;
    if (last + 1 - first) as f32 * 0.01 > NOISY_SPAN_SECONDS {
        let mut sorted = db.to_vec();
        sorted.sort_by(f32::total_cmp);
        let noise = sorted[sorted.len() / 10];
        let above_noise = (noise + 6.0).min(max - 6.0);
        if above_noise > thr {
            (first, last) = span(above_noise)?;
        }
    }
    let (first, last) = (first, last);
    let start = (first * 160).saturating_sub(480);
    let end = ((last + 1) * 160 + 480).min(len);
    Some(start..end)
}

/// Trims leading and trailing silence (see [`sound_span`]). Returns None for a silent take.
pub fn trim(x: &[f32]) -> Option<Vec<f32>> {
    sound_span(x).map(|r| x[r].to_vec())
}

/// Reads one take: 16 kHz, trimmed, and checked (not silent, not too short or long).
pub fn load_take(path: &Path) -> Result<Take> {
    let head = crate::audio::wav::WavStream::open(path)?;
    let file_seconds = head.frames as f32 / head.rate as f32;
    if file_seconds > MAX_TAKE_FILE_SECONDS {
        return Err(Error::invalid(
            path,
            format!("take file is {file_seconds:.0} s long; a take should hold one word (at most {MAX_TAKE_FILE_SECONDS} s of file)"),
        ));
    }
    drop(head);
    let samples = crate::audio::wav::read_16k(path)?;
    let trimmed = trim(&samples)
        .ok_or_else(|| Error::invalid(path, "take is silent (nothing above -60 dBFS)"))?;
    let secs = trimmed.len() as f32 / SAMPLE_RATE as f32;
    if secs > MAX_TAKE_SECONDS {
        return Err(Error::invalid(path, format!("take is {secs:.1} s long after trimming silence; a take should hold one word (at most {MAX_TAKE_SECONDS} s)")));
    }
    if secs < 0.1 {
        return Err(Error::invalid(
            path,
            format!("take is too short ({:.0} ms of sound)", secs * 1000.0),
        ));
    }
    Ok(Take {
        path: path.to_path_buf(),
        samples: trimmed,
    })
}

/// A word folder's name, which becomes a label: it must be UTF-8 and printable (a name with
/// control characters would reach terminals raw; two names that are not UTF-8 would collapse
/// into one label). The error shows the name escaped.
fn word_name(folder: &Path) -> Result<String> {
    let raw = folder.file_name().unwrap_or_default();
    let Some(name) = raw.to_str() else {
        return Err(Error::Data(format!(
            "{folder:?}: a word folder's name must be UTF-8 text; rename it"
        )));
    };
    if name.chars().any(char::is_control) {
        return Err(Error::Data(format!(
            "{folder:?}: a word folder's name must not hold control characters; rename it"
        )));
    }
    Ok(name.to_string())
}

impl Dataset {
    /// Loads and validates `dir`.
    pub fn load(dir: &Path) -> Result<Dataset> {
        if !dir.is_dir() {
            return Err(Error::invalid(dir, "recordings directory does not exist"));
        }
        let mut ds = Dataset::default();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(Error::io(dir, "cannot list directory"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        entries.sort();
        for sub in entries {
            let name = word_name(&sub)?;
            if name.starts_with('.') {
                continue;
            }
            ds.add_folder(&sub, name)?;
        }
        if ds.words.is_empty() {
            return Err(Error::invalid(
                dir,
                format!(
                    "no word folders with takes (expected {}/<word>/*.wav)",
                    dir.display()
                ),
            ));
        }
        Ok(ds)
    }

    /// Adds the recordings in folder `sub` (named `name`): room noise, other speech or a word.
    fn add_folder(&mut self, sub: &Path, name: String) -> Result<()> {
        let files = wav_files(sub)?;
        match name.as_str() {
            BACKGROUND => {
                for f in files {
                    let (s, cut) = Recording::read_16k_at_most(&f, MAX_BACKGROUND_SECONDS)?;
                    if cut {
                        self.notes.push(format!(
                            "{}: only its first {MAX_BACKGROUND_SECONDS:.0} s are used",
                            f.display()
                        ));
                    }
                    if s.len() < SAMPLE_RATE as usize / 4 {
                        return Err(Error::invalid(
                            f,
                            "background recording is shorter than 0.25 s",
                        ));
                    }
                    self.background.push(s);
                }
            }
            UNKNOWN => {
                for f in files {
                    self.add_unknown(&f)?;
                }
            }
            n if n.starts_with('_') => {
                return Err(Error::invalid(
                    sub,
                    format!(
                        "unknown special folder {n:?} (expected a word, {BACKGROUND} or {UNKNOWN})"
                    ),
                ));
            }
            _ => {
                if files.len() < MIN_TAKES {
                    return Err(Error::invalid(sub, format!("word {name:?} has {} take(s); it needs at least {MIN_TAKES} (record more with `hark record {name}`)", files.len())));
                }
                let takes = files
                    .iter()
                    .map(|f| load_take(f))
                    .collect::<Result<Vec<_>>>()?;
                if let Some(v) = word_settings(sub)? {
                    self.voices.insert(name.clone(), v);
                }
                self.words.push((name, takes));
            }
        }
        Ok(())
    }

    /// Who may say each word, in class order: its `word.toml`, else `default`.
    pub fn voices(&self, default: Voices) -> Vec<Voices> {
        self.words
            .iter()
            .map(|(w, _)| self.voices.get(w).copied().unwrap_or(default))
            .collect()
    }

    /// One `_unknown_` recording: a take when it holds at most [`MAX_TAKE_SECONDS`] of sound,
    /// otherwise a stream of "none" windows (cut at [`MAX_BACKGROUND_SECONDS`], with a note).
    fn add_unknown(&mut self, f: &Path) -> Result<()> {
        let (s, cut) = Recording::read_16k_at_most(f, MAX_BACKGROUND_SECONDS)?;
        // Frame energies piece by piece (whole 10 ms frames each), as `frame_db` of the whole.
        let mut db = Vec::new();
        s.for_each_piece(160 * 400, |piece| {
            db.extend(frame_db(piece));
            Ok(())
        })?;
        let sound = span_of(&db, s.len()).map_or(0, |r| r.len());
        if sound <= (MAX_TAKE_SECONDS * SAMPLE_RATE as f32) as usize {
            self.unknown.push(load_take(f)?);
            return Ok(());
        }
        if cut {
            self.notes.push(format!(
                "{}: only its first {MAX_BACKGROUND_SECONDS:.0} s are used",
                f.display()
            ));
        }
        self.unknown_streams.push(s);
        Ok(())
    }

    /// The words, in class order (class k + 1 is `labels()[k]`).
    pub fn labels(&self) -> Vec<String> {
        self.words.iter().map(|(w, _)| w.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_finds_the_word_and_rejects_silence() {
        let mut x = vec![0.0f32; 16000];
        for (i, v) in x.iter_mut().enumerate().skip(6000).take(3200) {
            *v = (i as f32 * 0.3).sin() * 8000.0;
        }
        let t = trim(&x).unwrap();
        assert!((3200..=3200 + 960 + 320).contains(&t.len()), "{}", t.len());
        assert!(trim(&vec![0.0; 16000]).is_none());
        assert!(trim(&vec![3.0; 16000]).is_none(), "tiny hiss is silence");
    }

    #[test]
    fn a_word_in_steady_noise_is_cut_at_the_noise_and_a_clean_long_one_is_kept() {
        // 3 s of noise 20 dB below a 0.5 s tone from 1.2 s: within 30 dB of the peak, the
        // noise would make the whole file the take.
        let mut rng = 0x1234_5678u32;
        let mut noise = || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            (rng as f32 / u32::MAX as f32 - 0.5) * 1600.0
        };
        let mut x: Vec<f32> = (0..48000).map(|_| noise()).collect();
        for (i, v) in x.iter_mut().enumerate().skip(19200).take(8000) {
            *v += (i as f32 * 0.3).sin() * 8000.0;
        }
        let t = trim(&x).unwrap();
        assert!((8000..=8000 + 960 + 320).contains(&t.len()), "{}", t.len());
        // A clean 2 s sound with quiet stretches keeps its length.
        let mut y = vec![0.0f32; 40000];
        for (i, v) in y.iter_mut().enumerate().skip(4000).take(32000) {
            let loud = if (i / 4000) % 2 == 0 { 8000.0 } else { 400.0 };
            *v = (i as f32 * 0.3).sin() * loud;
        }
        assert_eq!(trim(&y).unwrap().len(), 32000 + 960);
    }

    #[test]
    fn folder_names_with_control_characters_or_not_utf8_are_refused_escaped() {
        use std::os::unix::ffi::OsStrExt;
        let names: [&std::ffi::OsStr; 2] = [
            std::ffi::OsStr::new("red\u{1b}[31mword"),
            std::ffi::OsStr::from_bytes(b"caf\xe9"),
        ];
        for name in names {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join(name)).unwrap();
            let Err(e) = Dataset::load(dir.path()) else {
                panic!("a bad folder name was accepted");
            };
            let e = e.to_string();
            assert!(e.contains("rename it"), "{e}");
            assert!(
                !e.contains('\u{1b}') && !e.contains('\u{fffd}'),
                "escaped: {e:?}"
            );
        }
    }

    /// A 8 kHz 16-bit WAV of `seconds` of a quiet tone.
    fn long_wav(path: &Path, seconds: f32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..(8000.0 * seconds) as usize {
            w.write_sample(((i as f32 * 0.1).sin() * 3000.0) as i16)
                .unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn long_unknown_recordings_become_streams_and_short_ones_takes() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..MIN_TAKES {
            long_wav(&dir.path().join("w").join(format!("{i}.wav")), 1.0);
        }
        long_wav(&dir.path().join(UNKNOWN).join("tv.wav"), 700.0);
        long_wav(&dir.path().join(UNKNOWN).join("say.wav"), 1.0);
        let Ok(ds) = Dataset::load(dir.path()) else {
            panic!("the dataset loads");
        };
        assert_eq!((ds.unknown.len(), ds.unknown_streams.len()), (1, 1));
        let cap = (MAX_BACKGROUND_SECONDS * SAMPLE_RATE as f32) as usize;
        assert!(ds.unknown_streams[0].len().abs_diff(cap) < 100);
        assert!(
            ds.unknown_streams[0].is_spilled(),
            "600 s are not held in memory"
        );
        assert!(ds.notes[0].contains("tv.wav") && ds.notes[0].contains("600 s"));
    }

    #[test]
    fn long_background_clips_are_cut_with_a_note_and_long_take_files_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        long_wav(&dir.path().join(BACKGROUND).join("tv.wav"), 700.0);
        for i in 0..MIN_TAKES {
            long_wav(&dir.path().join("w").join(format!("{i}.wav")), 1.0);
        }
        let Ok(ds) = Dataset::load(dir.path()) else {
            panic!("the dataset loads");
        };
        let cap = (MAX_BACKGROUND_SECONDS * SAMPLE_RATE as f32) as usize;
        assert!(
            ds.background[0].len().abs_diff(cap) < 100,
            "{}",
            ds.background[0].len()
        );
        assert!(ds.notes[0].contains("tv.wav") && ds.notes[0].contains("600 s"));
        assert!(
            ds.background[0].is_spilled(),
            "600 s are not held in memory"
        );
        long_wav(&dir.path().join("w").join("long.wav"), 90.0);
        let Err(e) = Dataset::load(dir.path()) else {
            panic!("a 90 s take file was accepted");
        };
        assert!(e.to_string().contains("take file is 90 s long"), "{e}");
    }

    #[test]
    fn word_toml_says_who_may_say_the_word_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for w in ["a", "b"] {
            for i in 0..MIN_TAKES {
                long_wav(&dir.path().join(w).join(format!("{i}.wav")), 1.0);
            }
        }
        let settings = dir.path().join("b").join(WORD_SETTINGS);
        std::fs::write(&settings, "voices = \"anyone\"\n").unwrap();
        let ds = Dataset::load(dir.path()).unwrap();
        assert_eq!(ds.voices(Voices::Mine), vec![Voices::Mine, Voices::Anyone]);
        assert_eq!(
            ds.voices(Voices::Anyone),
            vec![Voices::Anyone, Voices::Anyone]
        );
        for (text, says) in [
            ("voices = \"everyone\"\n", "everyone"),
            ("voice = \"anyone\"\n", "voice"),
        ] {
            std::fs::write(&settings, text).unwrap();
            let Err(e) = Dataset::load(dir.path()) else {
                panic!("{text:?} was accepted");
            };
            let e = e.to_string();
            assert!(
                e.contains("word.toml")
                    && e.contains("line 1")
                    && e.contains(says)
                    && !e.contains('\n'),
                "{e}"
            );
        }
    }
}
