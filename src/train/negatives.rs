//! The negative bank: synthetic speech that is not any custom word, so the head learns to stay
//! quiet while people talk. espeak-ng (and the other engines of `TrainOptions::bank_engines`,
//! taking turns) says a few hundred everyday words in many voices, speeds and pitches; the
//! words are laid out as a stream with pauses over faint noise and embedded by the base model
//! once. The result is cached in `models/` (keyed by everything that shapes it) and reused by
//! every `hark train`. Windows that overlap a word equal to a custom word's name are left out
//! when training that head.

use crate::Result;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::audio::synth::{Engine, Voice};
use crate::audio::synth_cache::SynthCache;
use crate::pipeline::embedding::{Embedder, DIM};
use crate::pipeline::frontend::SAMPLE_RATE;

/// Everyday English words. Number words and their homophones are left out on purpose, so that
/// the project's digit benchmark measures words the bank has never said.
pub const WORDS: &str = "\
about above across action after again against air alarm almost alone along already also always \
amazing among angry animal answer apple april area arm around arrive art ask asleep autumn away \
baby back bad bag ball banana band bank basket bath beach bear beautiful because bed bedroom \
before begin behind believe bell below best better between bicycle big bird birthday black blanket \
blue board boat body book bottle bottom box boy bread break breakfast bridge bright bring brother \
brown build burn bus busy butter button buy cake call camera candle car card careful carry castle \
cat catch center chair change cheap cheese chicken child chocolate choose church circle city class \
clean clear clever climb clock close cloud coat coffee cold color come computer cook cool corner \
correct cotton could country cousin cover cow crazy cream cross cup curtain dance danger dark \
daughter day dear decide deep desk dinner dirty doctor dog dollar door down dragon draw dream dress \
drink drive dry duck during early earth east easy eat egg elephant empty end enough evening every \
example face fact fall family famous far farm fast father favorite feel few field fill find finger \
finish fire first fish flag floor flower fly follow food foot forest forget fork free fresh friend \
frog front fruit full funny garden gate gentle get giant gift girl give glass go gold good grape \
grass gray great green ground group grow guess guitar hair half hand happy hard hat have head hear \
heart heavy hello help here high hill history hold holiday home honey hope horse hospital hot hour \
house how hungry hurry ice idea important inside island jacket jelly job join juice jump jungle \
just keep kettle key kind king kitchen kite knife know lady lake lamp language large last late \
laugh lazy learn leave left lemon letter library light like lion listen little live long look loud \
love lucky lunch machine magic make many map market matter maybe meat medicine meet message middle \
milk minute mirror mistake money monkey month moon morning mother mountain mouse mouth move music \
name narrow near neck need never new next nice night noise noon north nose nothing notice now \
ocean office often okay old open orange other outside over page paint paper parent park party pass \
pen pencil people pepper perfect person piano picture pillow pink place plane plant play please \
pocket point police pool poor potato pretty problem pull purple push queen question quick quiet \
rabbit radio rain read ready really red remember rice rich right river road robot rock room round \
rule run sad salt same sand say school science sea season second secret see sell send shadow shape \
share sharp sheep shirt shoe shop short shoulder show sick side silver simple sing sister sit sky \
sleep slow small smell smile snake snow soft some song soon sorry sound soup south space speak \
special spoon spring square stairs star start station stay stone stop story strange street strong \
student study sugar summer sun supper surprise sweet swim table tail take talk tall taxi tea \
teacher team telephone tell thank there thing think thirsty through ticket tiger time tired today \
together tomato tomorrow tonight tooth top towel town toy train travel tree trouble truck true try \
turn turtle umbrella uncle under until up use vacation valley very village visit voice wait wake \
walk wall want warm wash watch water way weather week welcome west wet what wheel when where which \
white whisper who why wide wind window winter wish with without woman wonder wood word work world \
worry write wrong yard year yellow yes yesterday young zebra zoo";

/// Voices and variants espeak-ng ships that the bank cycles through.
const VOICES: &[&str] = &[
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-gb-x-gbclan",
    "en-us-nyc",
    "en-gb-x-gbcwmd",
];
const VARIANTS: &[&str] = &[
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
    "klatt4", "Andy", "Lee", "linda", "max", "paul",
];

/// Bank size: each word is said this many times, in different voices.
const REPEATS: usize = 6;
/// Bump when the bank's recipe changes, so old caches are not reused.
const RECIPE: u32 = 3;
/// Made-up words added to the bank.
const PSEUDO: usize = 4000;

/// The bank: embeddings of a synthetic speech stream, and per window the words it overlaps.
#[derive(Clone)]
pub struct Bank {
    pub embeddings: Vec<f32>,
    /// Per window: indices into `words()` of the words audible in it.
    pub window_words: Vec<Vec<u16>>,
}

pub fn words() -> Vec<&'static str> {
    WORDS.split_whitespace().collect()
}

/// The bank's speech engines when nothing says otherwise (see docs/research/anyone-words.md, "Synthetic voices").
pub const ENGINES: &[Engine] = &[Engine::Espeak];

/// The cache file of the bank made with `engines` (espeak-ng alone keeps the key it always had).
fn cache_path(models: &Path, base_sha: &str, engines: &[Engine]) -> PathBuf {
    let others: String = engines
        .iter()
        .filter(|e| **e != Engine::Espeak)
        .map(|e| format!("|{e}:{:?}", e.voices()))
        .collect();
    let key = crate::util::sha256_hex(
        format!(
            "{RECIPE}|{WORDS}|{VOICES:?}|{VARIANTS:?}|{REPEATS}|{PSEUDO}|{base_sha}|{}|{}{others}",
            crate::pipeline::frontend::parameters(),
            crate::assets::INFERENCE_SETTINGS,
        )
        .as_bytes(),
    );
    models.join(format!("negatives-{}.bin", &key[..16]))
}

/// Loads the cached bank, or builds and caches it (about a minute, once), with the installed
/// ones of `engines`.
pub fn load_or_build(
    models: &Path,
    emb: &mut Embedder,
    engines: &[Engine],
    progress: &dyn Fn(u64, u64),
) -> Result<Bank> {
    let engines = crate::audio::synth::installed(engines);
    let path = cache_path(models, &emb.model_sha256, &engines);
    if let Some(bank) = read_cached(&path) {
        return Ok(bank);
    }
    let bank = build(emb, &engines, progress)?;
    crate::util::write_atomic(&path, &encode(&bank))?;
    // Banks of other recipes or settings are stale: remove them (40 MB each).
    if let Ok(entries) = std::fs::read_dir(models) {
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p != path && name.starts_with("negatives-") && name.ends_with(".bin") {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    Ok(bank)
}

/// A made-up pronounceable word (1-3 syllables), for phonetic variety beyond the word list.
fn pseudo_word(rng: &mut SmallRng) -> String {
    const ONSETS: &[&str] = &[
        "", "b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "y", "z",
        "ch", "sh", "th", "st", "tr", "pl", "br", "gr", "sl", "sp", "cl", "fr", "sk", "dr",
    ];
    const VOWELS: &[&str] = &[
        "a", "e", "i", "o", "u", "ee", "oo", "ai", "oa", "ou", "ay", "ie", "ea", "ow", "er",
    ];
    const CODAS: &[&str] = &[
        "", "", "n", "t", "s", "k", "m", "l", "r", "d", "p", "x", "ng", "st", "nt", "ks", "ft", "v",
    ];
    let syllables = rng.random_range(1..=3);
    (0..syllables)
        .map(|_| {
            format!(
                "{}{}{}",
                ONSETS[rng.random_range(0..ONSETS.len())],
                VOWELS[rng.random_range(0..VOWELS.len())],
                CODAS[rng.random_range(0..CODAS.len())]
            )
        })
        .collect()
}

/// One utterance of the bank: text, id (index into `words()`, or beyond it for made-up words)
/// and voice.
#[derive(Clone)]
struct Utterance {
    text: String,
    id: u16,
    voice: Voice,
}

/// A random voice of `engine`: for espeak-ng "language+variant" at 110-220 words per minute;
/// for the others one of their speakers at 130-210; pitch 15-85.
fn random_voice(engine: Engine, rng: &mut SmallRng) -> Voice {
    if engine == Engine::Espeak {
        let name = format!(
            "{}+{}",
            VOICES[rng.random_range(0..VOICES.len())],
            VARIANTS[rng.random_range(0..VARIANTS.len())]
        );
        let speed = rng.random_range(110..220);
        return Voice::new(engine, &name, speed, rng.random_range(15..85));
    }
    let names = engine.voices();
    let name = names[rng.random_range(0..names.len())];
    let speed = rng.random_range(130..210);
    Voice::new(engine, name, speed, rng.random_range(15..85))
}

/// The engine of the `i`th utterance: `engines` take turns (espeak-ng when it is empty).
fn engine_of(i: usize, engines: &[Engine]) -> Engine {
    let n = engines.len().max(1);
    engines.get(i % n).copied().unwrap_or(Engine::Espeak)
}

/// Every word `REPEATS` times and `PSEUDO` made-up words, each in a random voice of one of
/// `engines` (in turn), shuffled.
fn utterances(words: &[&str], engines: &[Engine], rng: &mut SmallRng) -> Vec<Utterance> {
    let mut utterances: Vec<Utterance> = Vec::new();
    for _ in 0..REPEATS {
        for (i, w) in words.iter().enumerate() {
            let voice = random_voice(engine_of(utterances.len(), engines), rng);
            utterances.push(Utterance {
                text: w.to_string(),
                id: i as u16,
                voice,
            });
        }
    }
    for k in 0..PSEUDO {
        // The voice is drawn before the made-up word.
        let voice = random_voice(engine_of(utterances.len(), engines), rng);
        utterances.push(Utterance {
            text: pseudo_word(rng),
            id: (words.len() + k) as u16,
            voice,
        });
    }
    rand::seq::SliceRandom::shuffle(&mut utterances[..], rng);
    utterances
}

/// `text` said `n` times, each time in a random voice, speed and pitch drawn from `seed` (the
/// bank's voices), the engines of `engines` that are installed taking turns; on every core.
/// With a `cache`, takes found there are read back and the others are stored there.
pub fn say_in_voices(
    text: &str,
    n: usize,
    seed: u64,
    engines: &[Engine],
    cache: Option<&SynthCache>,
) -> Result<Vec<Vec<f32>>> {
    say_each_in_voices(&[text], n, seed, engines, cache)
}

/// [`say_in_voices`] for each of `texts` in turn (one random stream): `n` takes of the first,
/// then of the next, and so on.
pub fn say_each_in_voices(
    texts: &[&str],
    n: usize,
    seed: u64,
    engines: &[Engine],
    cache: Option<&SynthCache>,
) -> Result<Vec<Vec<f32>>> {
    let engines = crate::audio::synth::installed(engines);
    if engines.is_empty() {
        return Ok(vec![]);
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let utterances: Vec<Utterance> = texts
        .iter()
        .flat_map(|t| (0..n).map(move |i| (*t, i)))
        .map(|(text, i)| Utterance {
            text: text.to_string(),
            id: 0,
            voice: random_voice(engine_of(i, &engines), &mut rng),
        })
        .collect();
    let key = |u: &Utterance| (u.voice.clone(), u.text.clone());
    SynthCache::through(cache, utterances, key, |todo| synthesise(&todo, &|_, _| {}))
}

/// Says every utterance, on every core; results in the utterances' order.
/// Reports progress as the first half of `total * 2`.
fn synthesise(utterances: &[Utterance], progress: &dyn Fn(u64, u64)) -> Vec<Result<Vec<f32>>> {
    let total = utterances.len() as u64;
    let done = AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = utterances.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = utterances
            .chunks(per.max(1))
            .map(|chunk| {
                let done = &done;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|u| {
                            let r = u.voice.say(&u.text);
                            done.fetch_add(1, Ordering::Relaxed);
                            r
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            while !h.is_finished() {
                progress(done.load(Ordering::Relaxed), total * 2);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            out.extend(h.join().expect("synthesis thread"));
        }
        out
    })
}

/// Where an utterance sits in the stream: sample range and id.
type Span = (usize, usize, u16);

/// Lays the trimmed utterances out as one stream with random pauses (0.15-0.9 s) and levels
/// (log-uniform over 26 dB); silent ones are skipped. The first synthesis error is returned.
fn lay_out(
    utterances: &[Utterance],
    audio: Vec<Result<Vec<f32>>>,
    rng: &mut SmallRng,
) -> Result<(Vec<f32>, Vec<Span>)> {
    let sr = SAMPLE_RATE as f32;
    let mut stream: Vec<f32> = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    for (u, a) in utterances.iter().zip(audio) {
        let Some(word) = crate::train::dataset::trim(&a?) else {
            continue;
        };
        let gap = (rng.random_range(0.15..0.9) * sr) as usize;
        stream.extend(std::iter::repeat_n(0.0, gap));
        let gain = 10f32.powf(rng.random_range(-1.3..0.0));
        let start = stream.len();
        stream.extend(word.iter().map(|v| v * gain));
        spans.push((start, stream.len(), u.id));
    }
    Ok((stream, spans))
}

/// Adds noise so silence is not digital zero, its level changing every 4 seconds.
fn add_noise(stream: &mut [f32], rng: &mut SmallRng) {
    for seg in stream.chunks_mut(4 * SAMPLE_RATE as usize) {
        let level = 10f32.powf(rng.random_range(1.0..2.3));
        for v in seg.iter_mut() {
            *v += (rng.random::<f32>() - 0.5) * 2.0 * level;
        }
    }
}

/// Per embedding window (of `n`), the ids of the `spans` it hears (any overlap with the 0.775 s
/// before the window's end). `spans` are in stream order.
fn window_words(n: usize, spans: &[Span]) -> Vec<Vec<u16>> {
    let sr = SAMPLE_RATE as f32;
    let mut first = 0;
    (0..n)
        .map(|b| {
            let end = (crate::pipeline::embedding::block_end_time(b) * sr as f64) as usize;
            let start = end.saturating_sub((0.775 * sr) as usize);
            while first < spans.len() && spans[first].1 <= start {
                first += 1;
            }
            spans[first..]
                .iter()
                .take_while(|s| s.0 < end)
                .map(|s| s.2)
                .collect()
        })
        .collect()
}

/// Synthesises the stream with `engines` taking turns and embeds it.
pub fn build(emb: &mut Embedder, engines: &[Engine], progress: &dyn Fn(u64, u64)) -> Result<Bank> {
    let mut rng = SmallRng::seed_from_u64(0xba4c);
    let utterances = utterances(&words(), engines, &mut rng);
    let total = utterances.len() as u64;
    let audio = synthesise(&utterances, progress);
    let (mut stream, spans) = lay_out(&utterances, audio, &mut rng)?;
    add_noise(&mut stream, &mut rng);
    progress(total, total * 2);
    let embeddings = crate::pipeline::embedding::embed_signal(emb, &stream)?;
    progress(total * 2, total * 2);
    let window_words = window_words(embeddings.len() / DIM, &spans);
    Ok(Bank {
        embeddings,
        window_words,
    })
}

fn encode(b: &Bank) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"HARKNEG1");
    v.extend_from_slice(&(b.window_words.len() as u32).to_le_bytes());
    for f in &b.embeddings {
        v.extend_from_slice(&f.to_le_bytes());
    }
    for ws in &b.window_words {
        v.push(ws.len() as u8);
        for w in ws {
            v.extend_from_slice(&w.to_le_bytes());
        }
    }
    v
}

/// The cached bank at `path`, read as a stream (the file is never held whole beside the bank);
/// None if it is missing, truncated or corrupt.
fn read_cached(path: &Path) -> Option<Bank> {
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len() as usize;
    decode_from(&mut std::io::BufReader::new(file), len)
}

#[cfg(test)]
fn decode(bytes: &[u8]) -> Option<Bank> {
    decode_from(&mut &bytes[..], bytes.len())
}

/// Decodes [`encode`]'s format from `r`, which holds `len` bytes.
fn decode_from(r: &mut impl std::io::Read, len: usize) -> Option<Bank> {
    let mut head = [0u8; 12];
    r.read_exact(&mut head).ok()?;
    if &head[..8] != b"HARKNEG1" {
        return None;
    }
    let n = u32::from_le_bytes(head[8..12].try_into().ok()?) as usize;
    // Every window takes at least its embedding and a count byte: a bigger n is a lie.
    if n.checked_mul(DIM * 4 + 1)? > len - 12 {
        return None;
    }
    let mut embeddings = Vec::with_capacity(n * DIM);
    let mut buf = [0u8; 4 * DIM];
    for _ in 0..n {
        r.read_exact(&mut buf).ok()?;
        embeddings.extend(
            buf.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    let mut window_words = Vec::with_capacity(n);
    for _ in 0..n {
        let mut k = [0u8; 1];
        r.read_exact(&mut k).ok()?;
        let mut ws = [0u8; 2 * 255];
        let ws = &mut ws[..2 * k[0] as usize];
        r.read_exact(ws).ok()?;
        window_words.push(
            ws.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        );
    }
    let at_end = r.read(&mut [0u8; 1]).ok()? == 0;
    at_end.then_some(Bank {
        embeddings,
        window_words,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank() -> Bank {
        Bank {
            embeddings: (0..3 * DIM).map(|i| i as f32 * 0.5 - 7.0).collect(),
            window_words: vec![vec![], vec![3, 500], vec![65535]],
        }
    }

    #[test]
    fn the_cache_decodes_what_it_encoded() {
        let b = bank();
        let d = decode(&encode(&b)).unwrap();
        assert_eq!(d.embeddings, b.embeddings);
        assert_eq!(d.window_words, b.window_words);
        let empty = Bank {
            embeddings: vec![],
            window_words: vec![],
        };
        assert!(decode(&encode(&empty)).unwrap().window_words.is_empty());
    }

    #[test]
    fn a_truncated_or_corrupt_cache_is_refused() {
        let bytes = encode(&bank());
        for cut in [0, 7, 11, 12, 12 + 3 * DIM * 4, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_none(), "trailing byte");
        let mut magic = bytes.clone();
        magic[7] = b'2';
        assert!(decode(&magic).is_none(), "other format");
        let mut count = bytes.clone();
        count[8] = 4;
        assert!(decode(&count).is_none(), "more windows than stored");
        let mut words = bytes;
        let last_count = 12 + 3 * DIM * 4 + 1 + 1 + 4;
        assert_eq!(words[last_count], 1);
        words[last_count] = 2;
        assert!(decode(&words).is_none(), "more words than stored");
    }

    #[test]
    fn windows_hear_the_spans_that_overlap_them() {
        let sr = SAMPLE_RATE as f64;
        let end = |b: usize| (crate::pipeline::embedding::block_end_time(b) * sr) as usize;
        // Window 20 hears from end(20) - 0.775 s to end(20).
        let (from, to) = (end(20) - 12400, end(20));
        let spans = [
            (0, from, 1),
            (from - 10, from + 10, 2),
            (to - 5, to + 100, 3),
            (to, to + 9, 4),
        ];
        let ww = window_words(40, &spans);
        assert_eq!(ww.len(), 40);
        assert_eq!(ww[20], vec![2, 3]);
        assert_eq!(ww[0], vec![1]);
        assert_eq!(ww[21], vec![3, 4]);
        assert!(ww[39].is_empty());
    }

    #[test]
    fn engines_take_turns_with_their_own_voices() {
        let words = words();
        let both = [Engine::Espeak, Engine::Flite];
        let u = utterances(&words, &both, &mut SmallRng::seed_from_u64(1));
        let flite: Vec<&Voice> = u
            .iter()
            .map(|u| &u.voice)
            .filter(|v| v.engine == Engine::Flite)
            .collect();
        assert_eq!(flite.len(), u.len() / 2);
        assert!(flite
            .iter()
            .all(|v| Engine::Flite.voices().contains(&v.name.as_str())
                && (130..210).contains(&v.speed)
                && (15..85).contains(&v.pitch)));
        for name in Engine::Flite.voices() {
            assert!(flite.iter().any(|v| v.name == *name), "{name} never speaks");
        }
        assert_eq!(engine_of(3, &[]), Engine::Espeak);
        assert_eq!(engine_of(3, &both), Engine::Flite);
    }

    #[test]
    fn the_cache_key_names_the_engines_other_than_espeak() {
        let m = Path::new("m");
        let espeak = cache_path(m, "sha", &[Engine::Espeak]);
        assert_eq!(
            espeak,
            cache_path(m, "sha", &[]),
            "espeak-ng alone keeps its old key"
        );
        let flite = cache_path(m, "sha", &[Engine::Espeak, Engine::Flite]);
        assert_ne!(flite, espeak);
        assert_ne!(
            flite,
            cache_path(m, "sha", &[Engine::Espeak, Engine::Festival])
        );
        assert_ne!(espeak, cache_path(m, "other", &[Engine::Espeak]));
    }

    #[test]
    fn utterances_say_each_word_repeats_times_plus_made_up_words() {
        let words = words();
        let u = utterances(&words, &[Engine::Espeak], &mut SmallRng::seed_from_u64(1));
        assert_eq!(u.len(), words.len() * REPEATS + PSEUDO);
        let mut ids: Vec<u16> = u.iter().map(|u| u.id).collect();
        assert_ne!(ids[..10], (0..10).collect::<Vec<u16>>()[..], "shuffled");
        ids.sort_unstable();
        assert!(ids[..words.len() * REPEATS]
            .chunks(REPEATS)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&id| id as usize == i)));
        assert!(u
            .iter()
            .all(|u| (110..220).contains(&u.voice.speed) && u.voice.name.contains('+')));
        let made_up = u.iter().filter(|u| u.id as usize >= words.len());
        assert!(made_up
            .into_iter()
            .all(|u| !u.text.is_empty() && u.text.chars().all(|c| c.is_ascii_lowercase())));
        assert_eq!(
            utterances(&words, &[], &mut SmallRng::seed_from_u64(1))[5].text,
            u[5].text
        );
    }
}
