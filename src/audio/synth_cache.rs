//! Synthetic takes kept on disk, so that `hark train` speaks the synthetic takes of an `anyone`
//! word once and reads them back afterwards (flite takes 0.07-0.18 s a word).
//!
//! One file per take, `synth-<engine>-<sha256>.take`, the sha256 of everything that shapes the
//! take: a recipe number, the engine, voice, speed and pitch, the output rate and the text. A
//! file holds a magic line, the sample count, the samples (f32, little-endian, exactly as
//! synthesised) and the hex sha256 of all that; one that is short, altered or of another
//! format is not trusted: the take is spoken again and the file replaced, atomically.

use std::path::{Path, PathBuf};

use super::synth::Voice;
use crate::pipeline::frontend::SAMPLE_RATE;
use crate::util::{sha256_hex, write_atomic};
use crate::Result;

/// The first bytes of a cached take.
const MAGIC: &[u8; 8] = b"HARKSYN1";
/// Bump when what a cached take holds changes, so old files are not reused.
const RECIPE: u32 = 1;
/// Length of the hex digest that ends a file.
const DIGEST: usize = 64;

/// A folder of cached synthetic takes (created on first write).
#[derive(Clone, Debug)]
pub struct SynthCache {
    dir: PathBuf,
}

impl SynthCache {
    /// The cache in `dir` (e.g. `models/.cache`).
    pub fn new(dir: &Path) -> SynthCache {
        SynthCache {
            dir: dir.to_path_buf(),
        }
    }

    /// The file that holds (or will hold) `text` said by `voice`.
    pub fn path(&self, voice: &Voice, text: &str) -> PathBuf {
        let key = format!(
            "recipe {RECIPE}\nengine {}\nvoice {}\nspeed {}\npitch {}\nrate {SAMPLE_RATE}\ntext {text}",
            voice.engine, voice.name, voice.speed, voice.pitch
        );
        let name = format!("synth-{}-{}.take", voice.engine, sha256_hex(key.as_bytes()));
        self.dir.join(name)
    }

    /// The cached take, or None when there is none or it is not intact.
    pub fn get(&self, voice: &Voice, text: &str) -> Option<Vec<f32>> {
        decode(&std::fs::read(self.path(voice, text)).ok()?)
    }

    /// Stores a take, atomically (a reader never sees half a file).
    pub fn put(&self, voice: &Voice, text: &str, samples: &[f32]) -> Result<()> {
        write_atomic(&self.path(voice, text), &encode(samples))
    }
}

impl SynthCache {
    /// The take of each item (its voice and text by `key`): read from `cache` when it holds an
    /// intact one, else said by `say` (given the items missing, in order, and returning their
    /// takes in that order) and stored there. Without a cache every item is said. The first
    /// error of `say` is returned; a take that cannot be stored is used all the same (a note).
    pub fn through<T: Clone>(
        cache: Option<&SynthCache>,
        items: Vec<T>,
        key: impl Fn(&T) -> (Voice, String),
        say: impl FnOnce(Vec<T>) -> Vec<Result<Vec<f32>>>,
    ) -> Result<Vec<Vec<f32>>> {
        let mut out: Vec<Option<Vec<f32>>> = items
            .iter()
            .map(|it| {
                let (voice, text) = key(it);
                cache.and_then(|c| c.get(&voice, &text))
            })
            .collect();
        let missing: Vec<usize> = (0..items.len()).filter(|&i| out[i].is_none()).collect();
        let todo: Vec<T> = missing.iter().map(|&i| items[i].clone()).collect();
        for (i, said) in missing.into_iter().zip(say(todo)) {
            let said = said?;
            if let Some(c) = cache {
                let (voice, text) = key(&items[i]);
                if let Err(e) = c.put(&voice, &text, &said) {
                    eprintln!("hark: note: synthetic take not cached: {e}");
                }
            }
            out[i] = Some(said);
        }
        Ok(out.into_iter().flatten().collect())
    }
}

/// A cached take's bytes.
fn encode(samples: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + samples.len() * 4 + DIGEST);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(samples.len() as u64).to_le_bytes());
    samples
        .iter()
        .for_each(|s| out.extend_from_slice(&s.to_le_bytes()));
    let digest = sha256_hex(&out);
    out.extend_from_slice(digest.as_bytes());
    out
}

/// The samples of a cached take, or None when the bytes are not one, whole and unaltered.
fn decode(bytes: &[u8]) -> Option<Vec<f32>> {
    let body_len = bytes.len().checked_sub(DIGEST)?;
    let (body, digest) = bytes.split_at(body_len);
    if body.len() < 16 || &body[..8] != MAGIC || sha256_hex(body).as_bytes() != digest {
        return None;
    }
    let n = u64::from_le_bytes(body[8..16].try_into().ok()?);
    let pcm = &body[16..];
    if n.checked_mul(4)? != pcm.len() as u64 {
        return None;
    }
    Some(crate::util::f32s_from_le_bytes(pcm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::synth::Engine;

    #[test]
    fn a_take_reads_back_bit_for_bit_and_an_altered_file_is_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = SynthCache::new(&tmp.path().join("cache"));
        let v = Voice::new(Engine::Flite, "slt", 160, 40);
        assert_eq!(cache.get(&v, "lantern"), None);
        let take = [0.0, -1.5, 32767.0, f32::MIN_POSITIVE, -0.0];
        cache.put(&v, "lantern", &take).unwrap();
        let back = cache.get(&v, "lantern").unwrap();
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            take.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        let path = cache.path(&v, "lantern");
        let good = std::fs::read(&path).unwrap();
        // One flipped bit anywhere, a cut, an empty file: none of them is a take.
        for i in [0, 9, 20, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 1;
            assert_eq!(decode(&bad), None, "bit flipped at byte {i}");
        }
        assert_eq!(decode(&good[..good.len() - 4]), None);
        assert_eq!(decode(&[]), None);
        std::fs::write(&path, b"junk").unwrap();
        assert_eq!(cache.get(&v, "lantern"), None);
        cache.put(&v, "lantern", &take).unwrap();
        assert_eq!(cache.get(&v, "lantern").unwrap().len(), take.len());
    }

    #[test]
    fn through_says_only_what_the_cache_lacks_and_keeps_the_order() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = SynthCache::new(tmp.path());
        let items: Vec<u32> = vec![150, 160, 170];
        let key = |s: &u32| {
            (
                Voice::new(Engine::Espeak, "en-us", *s, 50),
                "go".to_string(),
            )
        };
        let said = std::cell::RefCell::new(Vec::new());
        let say = |todo: Vec<u32>| {
            said.borrow_mut().extend(todo.iter().copied());
            todo.iter().map(|&s| Ok(vec![s as f32; 3])).collect()
        };
        let want: Vec<Vec<f32>> = items.iter().map(|&s| vec![s as f32; 3]).collect();
        let first = SynthCache::through(Some(&cache), items.clone(), key, say).unwrap();
        assert_eq!((first, said.take()), (want.clone(), items.clone()));
        std::fs::remove_file(cache.path(&key(&160).0, "go")).unwrap();
        let again = SynthCache::through(Some(&cache), items.clone(), key, say).unwrap();
        assert_eq!((again, said.take()), (want.clone(), vec![160]));
        let none = SynthCache::through(None, items.clone(), key, say).unwrap();
        assert_eq!((none, said.take()), (want, items));
        let failed = SynthCache::through(None, vec![1], key, |_| {
            vec![Err(crate::Error::invalid(Path::new("x"), "bad"))]
        });
        assert!(failed.is_err());
    }

    #[test]
    fn the_key_names_every_thing_that_shapes_the_take() {
        let cache = SynthCache::new(Path::new("c"));
        let v = Voice::new(Engine::Flite, "slt", 160, 40);
        let p = cache.path(&v, "lantern");
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("synth-flite-") && name.ends_with(".take"),
            "{name}"
        );
        assert_eq!(name.len(), "synth-flite-".len() + 64 + ".take".len());
        let others = [
            cache.path(&Voice::new(Engine::Espeak, "slt", 160, 40), "lantern"),
            cache.path(&Voice::new(Engine::Flite, "rms", 160, 40), "lantern"),
            cache.path(&Voice::new(Engine::Flite, "slt", 161, 40), "lantern"),
            cache.path(&Voice::new(Engine::Flite, "slt", 160, 41), "lantern"),
            cache.path(&v, "lanterns"),
        ];
        for o in &others {
            assert_ne!(&p, o);
        }
        assert_eq!(p, cache.path(&v.clone(), "lantern"));
    }
}
