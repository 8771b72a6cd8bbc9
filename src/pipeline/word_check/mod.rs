//! The word check: a second pretrained model (EfficientWord-Net's word embedding, a ResNet-50
//! trained with an ArcFace loss so that one word said by different people lands close) that
//! embeds 1.5 s of audio into 2048 values. Comparing a detection's audio with the enrolled
//! takes this way adds what the base model's embeddings miss (docs/research/word-check.md). `.ci/setup` fetches its 8-bit file into `models/base/word_check.onnx`.

pub mod check;
pub mod fbank;

use ort::value::TensorRef;
use std::sync::{Arc, Mutex};

use crate::assets::Assets;
use crate::pipeline::head::Head;
use crate::{Error, Result};

/// A word model that streams share: the check runs it at most once per candidate.
pub type SharedWordModel = Arc<Mutex<WordModel>>;

/// The word model `head`'s check needs, loaded (`None` if the head has no check). Refuses a
/// head whose takes were embedded by another word model.
pub fn model_for(assets: &Assets, head: &Head) -> Result<Option<SharedWordModel>> {
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
    Ok(Some(Arc::new(Mutex::new(WordModel::load(assets)?))))
}

/// Samples of audio the model hears (1.5 s at 16 kHz).
pub const WINDOW: usize = 24_000;
/// Values of one embedding.
pub const DIM: usize = 2048;

/// A session of the word model.
pub struct WordModel {
    session: ort::session::Session,
    fbank: fbank::Fbank,
}

impl WordModel {
    /// Loads `models/base/word_check.onnx`, checking it is the expected file (ONNX Runtime
    /// then reads it again, so that it is not held twice while the session is built: 74 MB
    /// peak for `hark listen` with the check instead of 92 MB. A file swapped between the
    /// two reads would go unnoticed, as with any file a user can write.)
    pub fn load(assets: &Assets) -> Result<WordModel> {
        let path = assets.word_check_model();
        let sha = crate::assets::WORD_CHECK_SHA256;
        assets.check_file(&path, sha, "the word check's model")?;
        Ok(WordModel {
            session: crate::assets::session(assets, &path)?,
            fbank: fbank::Fbank::default(),
        })
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
        let input = TensorRef::from_array_view((shape, &features[..]))?;
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(|e| Error::Model {
                message: "the word check's model failed".into(),
                source: Some(e.into()),
            })?;
        let (_, e) = outputs[0].try_extract_tensor::<f32>()?;
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
}
