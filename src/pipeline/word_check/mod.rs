//! The word check: a second pretrained model (EfficientWord-Net's word embedding, a ResNet-50
//! trained with an ArcFace loss so that one word said by different people lands close) that
//! embeds 1.5 s of audio into 2048 values. Comparing a detection's audio with the enrolled
//! takes this way adds what the base model's embeddings miss (docs/research/word-check.md). `.ci/setup` fetches its 8-bit file into `models/base/word_check.onnx`
//! and cuts it into the five stages `word_check.stage-N.onnx` that `hark listen` runs.

pub mod check;
pub mod fbank;

use ort::value::TensorRef;
use std::sync::{Arc, Mutex};

use crate::assets::{Assets, InPlace};
use crate::pipeline::head::Head;
use crate::{Error, Result};

/// A word model that streams share: the check runs it at most once per candidate.
pub type SharedWordModel = Arc<Mutex<WordModel>>;

/// The word model `head`'s check needs, loaded (`None` if the head has no check). Refuses a
/// head whose takes were embedded by another word model.
pub fn model_for(assets: &Assets, head: &Head) -> Result<Option<SharedWordModel>> {
    model_for_with(assets, head, WordModel::load)
}

/// [`model_for`] for a server of many streams, whose checks come several a second: the
/// session [`WordModel::load_prepacked`] makes.
pub fn model_for_many(assets: &Assets, head: &Head) -> Result<Option<SharedWordModel>> {
    model_for_with(assets, head, WordModel::load_prepacked)
}

fn model_for_with(
    assets: &Assets,
    head: &Head,
    load: fn(&Assets) -> Result<WordModel>,
) -> Result<Option<SharedWordModel>> {
    let Some(wc) = &head.word_check else {
        return Ok(None);
    };
    if wc.model_sha256 != crate::assets::WORD_CHECK_SHA256 {
        return Err(Error::Data(format!(
            "the head's word check was made with word model sha256 {}, this hark has {}; retrain with `hark train`",
            wc.model_sha256,
            crate::assets::WORD_CHECK_SHA256
        )));
    }
    Ok(Some(Arc::new(Mutex::new(load(assets)?))))
}

/// Samples of audio the model hears (1.5 s at 16 kHz).
pub const WINDOW: usize = 24_000;
/// Values of one embedding.
pub const DIM: usize = 2048;

/// One session of the word model, or of one of its stages.
struct Stage {
    /// Declared before `bytes`, so dropped before the mapping it reads.
    session: ort::session::Session,
    /// The stage in ONNX Runtime's format, mapped: the session's weights that are not
    /// prepacked are these pages.
    bytes: memmap2::Mmap,
}

/// The word model: its sessions, run one after another.
pub struct WordModel {
    stages: Vec<Stage>,
    fbank: fbank::Fbank,
    /// A candidate's audio, cut by whichever stream is checking one ([`WordModel::take_cut`]).
    cut: Vec<f32>,
}

impl WordModel {
    /// Loads `models/base/word_check.onnx`'s five stages (`word_check.stage-N.onnx`, cut by
    /// `.ci/setup` where one tensor alone crosses; together they give the whole model's
    /// embedding to the bit), checking each is the expected file, by way of each one's copy in
    /// ONNX Runtime's format (made once, in the cache folder) mapped and used in place
    /// ([`InPlace::Lean`]): the weights are the files' pages, not a copy on the heap, and each
    /// stage's leave the resident set as soon as it has run, so at most one stage's are
    /// resident (5.7 of 22 MB; docs/research/cost.md).
    pub fn load(assets: &Assets) -> Result<WordModel> {
        Self::load_as(assets, InPlace::Lean)
    }

    /// The same stages with their convolutions' weights prepacked for the CPU's kernels (a
    /// copy on the heap, about 20 MB), without the CPU arena ([`InPlace::PackedWithoutArena`]):
    /// more memory than [`WordModel::load`]'s, a check about twice as fast. For `hark serve`,
    /// where many streams share one model and checks come several a second.
    pub fn load_prepacked(assets: &Assets) -> Result<WordModel> {
        Self::load_as(assets, InPlace::PackedWithoutArena)
    }

    fn load_as(assets: &Assets, how: InPlace) -> Result<WordModel> {
        let mut stages = Vec::new();
        for (k, sha) in crate::assets::WORD_CHECK_STAGE_SHA256.iter().enumerate() {
            let path = checked_stage(assets, k)?;
            let m =
                crate::assets::mapped_session(assets, &ort_copy_path(assets, sha)?, how, |to| {
                    crate::assets::save_ort_format(assets, &path, to)
                })?;
            stages.push(Stage {
                session: m.session,
                bytes: m.bytes,
            });
        }
        Ok(WordModel {
            stages,
            fbank: fbank::Fbank::default(),
            cut: Vec::with_capacity(WINDOW),
        })
    }

    /// The buffer a stream cuts a candidate's audio into, shared by every stream of the
    /// model (allocated once): hand it back with [`WordModel::put_cut`].
    pub fn take_cut(&mut self) -> Vec<f32> {
        std::mem::take(&mut self.cut)
    }

    /// Hands back the buffer [`WordModel::take_cut`] gave.
    pub fn put_cut(&mut self, cut: Vec<f32>) {
        self.cut = cut;
    }

    /// The unit-length embedding of `samples` (16 kHz, int16 scale): its first 1.5 s, or all
    /// of it centred in 1.5 s of silence.
    pub fn embed(&mut self, samples: &[f32]) -> Result<Vec<f32>> {
        let x = &samples[..samples.len().min(WINDOW)];
        let lead = (WINDOW - x.len()) / 2;
        let mut window = vec![0.0f32; WINDOW];
        for (o, v) in window[lead..].iter_mut().zip(x) {
            *o = v / 32768.0;
        }
        let rows = self.fbank.log_fbank(&window);
        let features: Vec<f32> = rows.iter().flatten().copied().collect();
        let shape = [1, 1, fbank::FRAMES, fbank::FILTERS];
        let mut value: Option<ort::value::DynValue> = None;
        for stage in &mut self.stages {
            let outputs = match &value {
                None => {
                    let input = TensorRef::from_array_view((shape, &features[..]))?;
                    stage.session.run(ort::inputs![input])
                }
                Some(v) => stage.session.run(ort::inputs![v]),
            }
            .map_err(|e| Error::Model {
                message: "the word check's model failed".into(),
                source: Some(e.into()),
            })?;
            // Each stage has one output: the next stage's input, or the embedding.
            value = outputs.into_iter().next().map(|(_, v)| v);
            crate::pages::release_mapped(&stage.bytes);
        }
        let value = value.ok_or_else(|| Error::model("the word check's model gave nothing"))?;
        let (_, e) = value.try_extract_tensor::<f32>()?;
        if e.len() != DIM {
            return Err(Error::model(format!(
                "the word check's model gave {} values, expected {DIM}",
                e.len()
            )));
        }
        let norm = e
            .iter()
            .map(|v| v * v)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        Ok(e.iter().map(|v| v / norm).collect())
    }
}

/// Stage `k` (from 0) of the word model, checked against its sha256.
fn checked_stage(assets: &Assets, k: usize) -> Result<std::path::PathBuf> {
    let path = assets.word_check_stage(k + 1);
    let sha = crate::assets::WORD_CHECK_STAGE_SHA256[k];
    let what = format!("the word check's model, stage {}", k + 1);
    assets.check_file(&path, sha, &what)?;
    Ok(path)
}

/// Where the copy in ONNX Runtime's format of the stage of sha256 `sha` lies.
fn ort_copy_path(assets: &Assets, sha: &str) -> Result<std::path::PathBuf> {
    crate::assets::ort_copy_path(assets, "word_check", sha)
}

/// The stages' copies in ONNX Runtime's format that [`WordModel::load`] maps: how many are
/// missing (`make` false), or how many were made, each stage checked first (`make` true).
pub fn runtime_copies(assets: &Assets, make: bool) -> Result<usize> {
    let mut n = 0;
    for (k, sha) in crate::assets::WORD_CHECK_STAGE_SHA256.iter().enumerate() {
        let copy = ort_copy_path(assets, sha)?;
        if copy.exists() {
            continue;
        }
        if make {
            let path = checked_stage(assets, k)?;
            crate::assets::ort_copy(&copy, |to| {
                crate::assets::save_ort_format(assets, &path, to)
            })?;
            // Each copy's session is built and dropped: hand its heap back before the next.
            crate::util::trim_heap();
        }
        n += 1;
    }
    Ok(n)
}

/// The largest cosine between unit embedding `e` and the unit embeddings `takes`.
pub fn best_similarity(e: &[f32], takes: &[Vec<f32>]) -> f32 {
    takes
        .iter()
        .map(|t| crate::pipeline::head::dot(e, t))
        .fold(-1.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assets() -> Assets {
        let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
        Assets::locate(Some(&models)).expect("models/ (run .ci/setup)")
    }

    #[test]
    fn the_word_model_embeds_as_its_python_reference_does() {
        let mut m = WordModel::load(&assets()).unwrap();
        // The front end's test signal, its first 0.6 s centred; reference from
        // tests/probes/word_check.py with the same file (ONNX Runtime 1.32 in Python). The model is
        // 8-bit and ONNX Runtime's integer kernels round by CPU: on an AVX2-only EPYC the values
        // differ from the reference's machine by up to 2.3e-3 (at [2]), hence the tolerance; the
        // largest dimension and the similarities below hold on both.
        let x: Vec<f32> = fbank::tests::signal()[..9600]
            .iter()
            .map(|v| v * 32768.0)
            .collect();
        let e = m.embed(&x).unwrap();
        assert_eq!(e.len(), DIM);
        let want = [
            (0, 0.001214),
            (1, -0.013427),
            (2, 0.032384),
            (3, 0.004251),
            (1000, -0.018581),
        ];
        for (i, v) in want {
            assert!((e[i] - v).abs() < 3e-3, "[{i}] {} != {v}", e[i]);
        }
        let best = (0..DIM).max_by(|&a, &b| e[a].total_cmp(&e[b])).unwrap();
        assert_eq!(best, 1847);
        // Unit length; a take is most like itself.
        assert!((best_similarity(&e, std::slice::from_ref(&e)) - 1.0).abs() < 1e-5);
        let other = m.embed(&vec![100.0; 8000]).unwrap();
        assert!(best_similarity(&e, std::slice::from_ref(&other)) < 0.99);
        assert_eq!(
            best_similarity(&e, &[other, e.clone()]),
            best_similarity(&e, std::slice::from_ref(&e))
        );
    }

    #[test]
    fn a_damaged_copy_in_the_runtimes_format_is_made_again() {
        // The models folder's files, with a cache of its own.
        let dir = tempfile::tempdir().unwrap();
        let models = assets().dir;
        std::fs::create_dir(dir.path().join("base")).unwrap();
        for k in 1..=5 {
            let f = format!("base/word_check.stage-{k}.onnx");
            std::os::unix::fs::symlink(models.join(&f), dir.path().join(&f)).unwrap();
        }
        std::os::unix::fs::symlink(models.join("runtime"), dir.path().join("runtime")).unwrap();
        let a = Assets::locate(Some(dir.path())).unwrap();
        let x: Vec<f32> = (0..8000)
            .map(|i| ((i as f32) * 0.05).sin() * 3000.0)
            .collect();
        let want = WordModel::load(&a).unwrap().embed(&x).unwrap();
        let sha = crate::assets::WORD_CHECK_STAGE_SHA256[0];
        let copy = ort_copy_path(&a, sha).unwrap();
        assert!(copy.starts_with(dir.path()), "{}", copy.display());
        let made = std::fs::metadata(&copy).unwrap().modified().unwrap();
        // Loaded again: the copy is reused as it is.
        let again = WordModel::load(&a).unwrap().embed(&x).unwrap();
        assert_eq!(std::fs::metadata(&copy).unwrap().modified().unwrap(), made);
        assert_eq!(again, want);
        // Damaged: made again, and the embeddings are the same.
        std::fs::write(&copy, b"not a model").unwrap();
        assert_eq!(WordModel::load(&a).unwrap().embed(&x).unwrap(), want);
        assert!(std::fs::metadata(&copy).unwrap().len() > 1_000_000);
    }
}
