//! Continuous speech for the benchmarks: a folder of 16 kHz WAV files of read speech or
//! conversation (`hark eval --speech DIR`, `bash .ci/corpus` prepares one from LibriSpeech), laid end to end as every benchmark stream is,
//! embedded once per run. Every detection in it is a false accept; they are counted per hour
//! of speech (the silence between files excluded).

use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::eval::curve::decide_at;
use crate::eval::streams::{Stream, StreamEmbedder, StreamItem};
use crate::eval::word_check::{Heard, Memo};
use crate::eval::{decide, score, Evaluation, Score, Timeline, Truth};
use crate::pipeline::head::Head;
use crate::pipeline::word_check::SharedWordModel;
use crate::{Error, Result};

/// The order of the gaps between the files: the same stream in every run.
const SPEECH_SEED: u64 = 0x5bee_c400;

/// The continuous speech, embedded.
pub(crate) struct Speech {
    pub dir: PathBuf,
    samples: Vec<f32>,
    embs: Timeline,
    pub truth: Vec<Truth>,
    seconds: f64,
    /// What the heads so far heard of it (the same candidate times recur).
    memo: Mutex<Memo>,
}

impl Speech {
    /// Every `*.wav` of `dir` (sorted by name), over the benchmark's noise bed from `data`.
    pub fn build(
        dir: &Path,
        data: &Path,
        model: &mut StreamEmbedder,
        gate: bool,
    ) -> Result<Speech> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(Error::io(dir, "cannot read the continuous speech"))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::invalid(
                dir,
                "holds no .wav files of continuous speech",
            ));
        }
        let items: Vec<StreamItem> = files.into_iter().map(|p| (p, None)).collect();
        let stream = Stream::build(data, &items, &mut SmallRng::seed_from_u64(SPEECH_SEED))?;
        let key = format!("speech-{}", items.len());
        Ok(Speech {
            dir: dir.to_path_buf(),
            embs: model.embed(&stream.samples, gate, Some(&key))?,
            seconds: stream.seconds(),
            samples: stream.samples,
            truth: stream.truth,
            memo: Mutex::default(),
        })
    }

    /// Hours of speech: each file's span between its first and last loud frame.
    pub fn speech_hours(&self) -> f64 {
        self.truth.iter().map(|t| t.speech).sum::<f64>() / 3600.0
    }

    /// The head's detections in the speech, every one a false accept: at its own thresholds,
    /// then at each of `sweep`.
    pub fn score(
        &self,
        head: &Arc<Head>,
        word_model: Option<&SharedWordModel>,
        sweep: &[f32],
    ) -> (Score, Vec<Score>) {
        let memo = std::mem::take(&mut *self.memo.lock().unwrap());
        let mut heard = Heard::with_memo(word_model, &self.samples, memo);
        let dets = decide(head.clone(), &self.embs, &mut heard);
        let swept = match sweep.is_empty() {
            true => Vec::new(),
            false => decide_at(head, &self.embs, sweep, Some(&mut heard)),
        };
        *self.memo.lock().unwrap() = heard.into_memo();
        let at = |d: &[crate::pipeline::detector::Detection]| score(d, &self.truth, self.seconds);
        (at(&dets), swept.iter().map(|d| at(d)).collect())
    }
}

/// The continuous speech of `opts.speech`, embedded, when it names a folder.
pub(super) fn load(
    opts: &crate::eval::EvalOptions,
    model: &mut StreamEmbedder,
    log: &mut dyn FnMut(&str),
) -> Result<Option<Speech>> {
    let Some(dir) = &opts.speech else {
        return Ok(None);
    };
    let s = Speech::build(dir, &opts.data, model, opts.gate)?;
    log(&format!(
        "continuous speech {}: {} files, {:.2} h of speech",
        s.dir.display(),
        s.truth.len(),
        s.speech_hours()
    ));
    Ok(Some(s))
}

impl Evaluation<'_> {
    /// With continuous speech: the head's false accepts in it, as the row "continuous speech
    /// (`scenario`)".
    pub(super) fn speech_row(&mut self, seed: u64, scenario: &str, head: &Arc<Head>) {
        let Some(sp) = &self.speech else {
            return;
        };
        let (s, swept) = sp.score(head, self.word_model.as_ref(), &self.opts.sweep);
        (self.log)(&format!(
            "seed {seed:>3} {:<9} {:<50} {} false accepts in {:.2} h of speech: {:.1} per hour",
            head.labels.join(","),
            format!("continuous speech ({scenario})"),
            s.false_accepts,
            s.speech_seconds / 3600.0,
            s.fa_per_speech_hour()
        ));
        let row = format!("continuous speech ({scenario})");
        self.record(&row, "default", &s);
        for (t, s) in self.opts.sweep.iter().zip(&swept) {
            self.record(&row, &format!("threshold {t}"), s);
        }
    }
}
