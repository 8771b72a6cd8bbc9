//! Stage 4: the transfer-learned head. It reads the newest few embeddings, scores each custom
//! word with a small network trained by `hark train`, and checks the window against templates
//! from the enrolled takes. The head file (JSON) records its labels, the base model's sha256, the
//! front-end parameters and the detector defaults, and is refused if any of them does not match.

use serde::{Deserialize, Serialize};
use std::path::Path;

pub(crate) mod packed;
mod scorer;

pub(crate) use scorer::dot;
pub use scorer::{softmax_into, Scorer};

use crate::pipeline::detector::DetectorSettings;
use crate::pipeline::embedding::DIM;
use crate::{Error, Result};

/// Format tag of head files written by this version.
pub const FORMAT: &str = "hark-head/1";

/// One dense layer: `out = W x + b`, `W` stored row-major as `outputs x inputs`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub inputs: usize,
    pub outputs: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Layer {
    fn forward(&self, x: &[f32], y: &mut [f32]) {
        for (o, yo) in y.iter_mut().enumerate().take(self.outputs) {
            let row = &self.weights[o * self.inputs..(o + 1) * self.inputs];
            *yo = self.bias[o] + scorer::dot(row, x);
        }
    }
}

/// One more network of an ensemble: its own standardisation and layers, its probabilities
/// averaged with the head's own.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
    pub layers: Vec<Layer>,
}

/// Are `layers` a network from `inputs` features to `outputs` classes?
fn chains(layers: &[Layer], inputs: usize, outputs: usize) -> std::result::Result<(), String> {
    let mut n = inputs;
    for (i, l) in layers.iter().enumerate() {
        if l.inputs != n || l.weights.len() != l.inputs * l.outputs || l.bias.len() != l.outputs {
            return Err(format!("head layer {i} has inconsistent dimensions"));
        }
        n = l.outputs;
    }
    if layers.is_empty() || n != outputs {
        return Err(format!(
            "head's last layer has {n} outputs, expected {outputs} (labels + none)"
        ));
    }
    Ok(())
}

/// Consecutive embeddings per feature, at most.
pub const MAX_CONTEXT: usize = 16;

/// Labels must be distinct, non-empty and printable.
fn check_labels(labels: &[String]) -> std::result::Result<(), String> {
    for (i, l) in labels.iter().enumerate() {
        if l.is_empty() || l.chars().any(char::is_control) {
            return Err(format!(
                "head label {l:?} is empty or holds a control character"
            ));
        }
        if labels[..i].contains(l) {
            return Err(format!("head has the label {l:?} twice"));
        }
    }
    Ok(())
}

/// What training measured (takes per word, cross-validation figures): `hark train` and `hark
/// demo` print the figures, and the head file keeps them as a record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainReport {
    pub takes: Vec<usize>,
    pub figures: Vec<(String, f32)>,
}

/// Who may say a word: only the voices that enrolled it (`mine`, the default) or anyone.
/// `anyone` words are trained with the takes' voices varied (vocal-tract length, pitch, speed)
/// and a looser template check, so other people's voices are heard too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Voices {
    #[default]
    Mine,
    Anyone,
}

impl std::str::FromStr for Voices {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mine" => Ok(Voices::Mine),
            "anyone" => Ok(Voices::Anyone),
            _ => Err(format!("voices must be \"mine\" or \"anyone\", not {s:?}")),
        }
    }
}

impl std::fmt::Display for Voices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Voices::Mine => "mine",
            Voices::Anyone => "anyone",
        })
    }
}

/// A trained head.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub format: String,
    /// The custom words, in output order (class 0 of the network is "none of them").
    pub labels: Vec<String>,
    pub base_model_sha256: String,
    pub frontend: String,
    /// How many consecutive embeddings (80 ms apart) form one feature vector.
    pub context: usize,
    /// Feature standardisation.
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
    /// Dense layers with ReLU between them; the last has `labels.len() + 1` outputs (softmax).
    pub layers: Vec<Layer>,
    /// Per word: unit-norm standardised feature vectors from the enrolled takes.
    #[serde(with = "packed::groups")]
    pub templates: Vec<Vec<Vec<f32>>>,
    /// Per word: minimum cosine similarity to its nearest template for the word to score at all.
    pub template_min: Vec<f32>,
    pub detector: DetectorSettings,
    /// A window also passes the template check if one of the previous `template_hold`
    /// windows did (the check then spans the detector's smoothing).
    #[serde(default)]
    pub template_hold: usize,
    #[serde(default)]
    pub report: TrainReport,
    /// Per word: who may say it (empty in heads written before it was recorded: all `mine`).
    #[serde(default)]
    pub voices: Vec<Voices>,
    /// Per word: the power its network score is raised to before the detector sees it, set by
    /// calibration on the negative bank (empty: no calibration, every power 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub score_power: Vec<f32>,
    /// More networks whose probabilities are averaged with `layers`' (an ensemble; empty: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    /// The word check's takes and rule (none: the detector decides alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_check: Option<crate::pipeline::word_check::check::Enrolled>,
}

impl Head {
    /// Where `word` is in the head's labels (and its detector settings).
    pub fn word_index(&self, word: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == word)
    }

    /// Who may say word `w`.
    pub fn voices_of(&self, w: usize) -> Voices {
        self.voices.get(w).copied().unwrap_or_default()
    }

    /// Feature dimension.
    pub fn feature_dim(&self) -> usize {
        self.context * DIM
    }

    /// Checks internal consistency (dimensions, label count) so a damaged file is refused.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Data(what));
        if self.format != FORMAT {
            return bad(format!(
                "head format is {:?}, this hark reads {FORMAT:?}",
                self.format
            ));
        }
        let n = self.labels.len();
        if n == 0 {
            return bad("head has no labels".into());
        }
        check_labels(&self.labels).map_err(Error::Data)?;
        if !(1..=MAX_CONTEXT).contains(&self.context) {
            return bad(format!(
                "head context {} is not between 1 and {MAX_CONTEXT}",
                self.context
            ));
        }
        if !self.all_finite() {
            return bad("head holds a number that is not finite (NaN or infinite)".into());
        }
        let d = self.feature_dim();
        if self.mean.len() != d || self.inv_std.len() != d {
            return bad("head feature standardisation has the wrong size".into());
        }
        chains(&self.layers, d, n + 1).map_err(Error::Data)?;
        for (k, m) in self.members.iter().enumerate() {
            if m.mean.len() != d || m.inv_std.len() != d {
                return bad(format!(
                    "head ensemble member {k} has a standardisation of the wrong size"
                ));
            }
            chains(&m.layers, d, n + 1)
                .map_err(|e| Error::Data(format!("ensemble member {k}: {e}")))?;
        }
        self.detector.check(n).map_err(Error::Data)?;
        if self.templates.len() != n
            || self.template_min.len() != n
            || !(self.voices.is_empty() || self.voices.len() == n)
            || !(self.score_power.is_empty() || self.score_power.len() == n)
            || self.detector.thresholds.len() != n
        {
            return bad(format!("head's templates, template thresholds, detector thresholds, voices or score powers do not match its {n} labels"));
        }
        if let Some(p) = self.score_power.iter().find(|p| **p <= 0.0) {
            return bad(format!("head has a score power {p} that is not above 0"));
        }
        if self.templates.iter().flatten().any(|t| t.len() != d) {
            return bad("head has a template of the wrong dimension".into());
        }
        if let Some(wc) = &self.word_check {
            wc.check(n).map_err(Error::Data)?;
        }
        Ok(())
    }

    /// Are all the head's numbers finite?
    fn all_finite(&self) -> bool {
        let layers = self
            .layers
            .iter()
            .flat_map(|l| l.weights.iter().chain(&l.bias));
        let templates = self.templates.iter().flatten().flatten();
        let members = self.members.iter().flat_map(|m| {
            let layers = m
                .layers
                .iter()
                .flat_map(|l| l.weights.iter().chain(&l.bias));
            m.mean.iter().chain(&m.inv_std).chain(layers)
        });
        self.mean
            .iter()
            .chain(&self.inv_std)
            .chain(&self.template_min)
            .chain(&self.score_power)
            .chain(layers)
            .chain(templates)
            .chain(members)
            .all(|v| v.is_finite())
    }

    /// Parses a head's JSON from `reader` and validates it (not against a base model or front
    /// end: [`Head::load`] does that); `path` names it in errors.
    pub fn parse(reader: impl std::io::Read, path: &Path) -> Result<Head> {
        let refused = |reason: &str, source: crate::error::Cause| Error::Invalid {
            path: path.into(),
            reason: reason.into(),
            source: Some(source),
        };
        let head: Head = serde_json::from_reader(reader)
            .map_err(|e| refused("not a valid hark head file", e.into()))?;
        head.validate()
            .map_err(|e| refused("invalid head", e.into()))?;
        Ok(head)
    }

    /// Reads a head file, refusing it with a clear error if it is damaged or was made for another
    /// base model or front end.
    pub fn load(path: &Path, base_model_sha256: &str) -> Result<Head> {
        // Parsed from a buffered reader: the file's text never sits in memory whole.
        let file = std::fs::File::open(path).map_err(Error::io(path, "cannot read head file"))?;
        let head = Head::parse(std::io::BufReader::new(file), path)?;
        let refused = |reason: String, source: Option<crate::error::Cause>| Error::Invalid {
            path: path.into(),
            reason,
            source,
        };
        if head.base_model_sha256 != base_model_sha256 {
            return Err(refused(format!(
                "head was trained on base model sha256 {}, but the loaded base model is {}; retrain with `hark train`",
                head.base_model_sha256, base_model_sha256
            ), None));
        }
        if head.frontend != crate::pipeline::frontend::parameters() {
            return Err(refused(format!(
                "head was trained with front end {:?}, this hark computes {:?}; retrain with `hark train`",
                head.frontend, crate::pipeline::frontend::parameters()
            ), None));
        }
        Ok(head)
    }

    /// Writes the head atomically (temporary file, then rename); a head that would not load is
    /// refused, so a bad one never replaces a good one.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate().map_err(|e| Error::Invalid {
            path: path.into(),
            reason: "refusing to write an invalid head".into(),
            source: Some(e.into()),
        })?;
        let json = serde_json::to_vec(self).map_err(|e| Error::Data(e.to_string()))?;
        crate::util::write_atomic(path, &json)
    }

    /// Class probabilities (index 0 = none) for a raw feature vector; allocates (training use).
    pub fn probabilities(&self, feature: &[f32]) -> Vec<f32> {
        self.probabilities_with(&mut Scorer::new(self), feature)
            .to_vec()
    }

    /// [`Head::probabilities`] in the buffers of `s` (a scorer of this head), for many features
    /// in a row without allocating.
    pub fn probabilities_with<'s>(&self, s: &'s mut Scorer, feature: &[f32]) -> &'s [f32] {
        s.x.copy_from_slice(feature);
        s.forward(self);
        &s.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A consistent head: 2 words, a context of 2 embeddings, one hidden layer of 4.
    fn head() -> Head {
        let d = 2 * DIM;
        let layer = |inputs: usize, outputs: usize| Layer {
            inputs,
            outputs,
            weights: vec![0.01; inputs * outputs],
            bias: vec![0.0; outputs],
        };
        Head {
            format: FORMAT.into(),
            labels: vec!["lantern".into(), "violin".into()],
            base_model_sha256: "base".into(),
            frontend: crate::pipeline::frontend::parameters(),
            context: 2,
            mean: vec![0.0; d],
            inv_std: vec![1.0; d],
            layers: vec![layer(d, 4), layer(4, 3)],
            templates: vec![vec![vec![0.1; d]; 2], vec![vec![0.2; d]]],
            template_min: vec![0.5, 0.5],
            detector: DetectorSettings {
                thresholds: vec![0.5, 0.6],
                smoothing: 2,
                refractory: 1.0,
            },
            template_hold: 0,
            voices: vec![],
            score_power: vec![],
            members: vec![],
            word_check: None,
            report: TrainReport::default(),
        }
    }

    /// The message `validate` refuses `h` with.
    fn refused(h: Head) -> String {
        match h.validate() {
            Ok(()) => panic!("a damaged head was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_consistent_head_is_accepted() {
        head().validate().unwrap();
    }

    #[test]
    fn another_format_or_no_labels_is_refused() {
        let mut h = head();
        h.format = "hark-head/0".into();
        assert!(refused(h).contains("\"hark-head/0\""));
        let mut h = head();
        h.labels.clear();
        assert_eq!(refused(h), "head has no labels");
    }

    #[test]
    fn wrong_dimensions_are_refused() {
        let mut h = head();
        h.context = 3;
        assert!(refused(h).contains("standardisation"));
        let mut h = head();
        h.inv_std.pop();
        assert!(refused(h).contains("standardisation"));
        let mut h = head();
        h.layers[1].inputs = 5;
        assert!(refused(h).contains("layer 1 has inconsistent dimensions"));
        let mut h = head();
        h.layers[0].bias.push(0.0);
        assert!(refused(h).contains("layer 0 has inconsistent dimensions"));
        let mut h = head();
        h.layers.truncate(1);
        assert!(refused(h).contains("last layer has 4 outputs, expected 3"));
        let mut h = head();
        h.templates[1][0].pop();
        assert!(refused(h).contains("template of the wrong dimension"));
    }

    #[test]
    fn counts_that_do_not_match_the_labels_are_refused() {
        let mismatch = "do not match its 2 labels";
        let mut h = head();
        h.detector.thresholds.push(0.5);
        assert!(refused(h).contains("3 thresholds for 2 words"));
        let mut h = head();
        h.template_min.pop();
        assert!(refused(h).contains(mismatch));
        let mut h = head();
        h.templates.pop();
        assert!(refused(h).contains(mismatch));
        // A third label without a third output.
        let mut h = head();
        h.labels.push("pumpkin".into());
        assert!(refused(h).contains("expected 4 (labels + none)"));
    }

    /// An error and its sources on one line, as the binary prints them.
    fn with_sources(e: &dyn std::error::Error) -> String {
        let mut line = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            line = format!("{line}: {s}");
            source = s.source();
        }
        line
    }

    #[test]
    fn load_names_the_file_and_refuses_another_base_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.head");
        head().save(&path).unwrap();
        let back = Head::load(&path, "base").unwrap();
        assert_eq!(back.labels, head().labels);
        let e = with_sources(&Head::load(&path, "other").unwrap_err());
        assert!(
            e.starts_with(&format!("{}: head was trained", path.display())),
            "{e}"
        );
        let mut damaged = head();
        damaged.template_min.pop();
        let e = damaged.save(&path).unwrap_err().to_string();
        assert!(e.contains("refusing to write an invalid head"), "{e}");
        std::fs::write(&path, serde_json::to_vec(&damaged).unwrap()).unwrap();
        let e = with_sources(&Head::load(&path, "base").unwrap_err());
        assert!(e.contains("h.head: invalid head: head's templates"), "{e}");
    }

    #[test]
    fn values_that_make_no_sense_are_refused() {
        type Damage = fn(&mut Head);
        let cases: [(Damage, &str); 8] = [
            (|h| h.detector.smoothing = 1_000_000_000_000, "smoothing"),
            (|h| h.detector.smoothing = 0, "smoothing"),
            (|h| h.detector.thresholds[0] = 1.5, "threshold 1.5"),
            (|h| h.detector.thresholds[1] = -0.1, "threshold -0.1"),
            (|h| h.detector.refractory = -1.0, "refractory"),
            (|h| h.labels[1] = "lantern".into(), "twice"),
            (|h| h.labels[0] = "a\u{1b}[31m".into(), "control"),
            (|h| h.context = usize::MAX / 2, "context"),
        ];
        for (damage, needle) in cases {
            let mut h = head();
            damage(&mut h);
            let e = refused(h);
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let mut h = head();
        h.mean[3] = f32::NAN;
        assert!(refused(h).contains("not finite"));
        let mut h = head();
        h.score_power = vec![1.0];
        assert!(refused(h).contains("score powers do not match"));
        let mut h = head();
        h.score_power = vec![1.0, 0.0];
        assert!(refused(h).contains("score power 0 that is not above 0"));
    }

    #[test]
    fn an_ensemble_averages_its_members_probabilities() {
        let d = 2 * DIM;
        let linear = |bias: [f32; 3], w: f32| Layer {
            inputs: d,
            outputs: 3,
            weights: vec![w; 3 * d],
            bias: bias.to_vec(),
        };
        let mut h = head();
        h.layers = vec![linear([0.0, 1.0, 1.0], 0.0)];
        let alone = h.probabilities(&[0.5; 2 * DIM]);
        let member = Member {
            mean: vec![0.5; d],
            inv_std: vec![2.0; d],
            layers: vec![linear([0.0, 0.0, 3.0], 1.0)],
        };
        let mut other = h.clone();
        other.mean = member.mean.clone();
        other.inv_std = member.inv_std.clone();
        other.layers = member.layers.clone();
        let theirs = other.probabilities(&[0.5; 2 * DIM]);
        h.members = vec![member];
        h.validate().unwrap();
        let both = h.probabilities(&[0.5; 2 * DIM]);
        for k in 0..3 {
            assert!(
                (both[k] - (alone[k] + theirs[k]) / 2.0).abs() < 1e-6,
                "{both:?}"
            );
        }
        h.members[0].inv_std.pop();
        assert!(refused(h.clone()).contains("member 0 has a standardisation"));
        h.members[0].inv_std.push(1.0);
        h.members[0].layers[0].bias.push(0.0);
        assert!(refused(h).contains("ensemble member 0: head layer 0"));
    }

    #[test]
    fn score_powers_reshape_each_words_score_and_gated_scores_check_templates() {
        let mut h = head();
        h.layers = vec![Layer {
            inputs: 2 * DIM,
            outputs: 3,
            weights: vec![0.0; 6 * DIM],
            bias: vec![0.0, 1.0, 1.0],
        }];
        h.template_min = vec![-1.0, -1.0];
        let mut s = Scorer::new(&h);
        s.push(&h, &[0.5; DIM]);
        assert!(s.push(&h, &[0.5; DIM]));
        let p = s.scores[0];
        assert!((p - s.scores[1]).abs() < 1e-6 && p > 0.3, "{:?}", s.scores);
        h.score_power = vec![2.0, 0.5];
        let mut s = Scorer::new(&h);
        s.push(&h, &[0.5; DIM]);
        s.push(&h, &[0.5; DIM]);
        assert!((s.scores[0] - p * p).abs() < 1e-6, "{:?}", s.scores);
        assert!((s.scores[1] - p.sqrt()).abs() < 1e-6, "{:?}", s.scores);
        assert_eq!(s.raw, [p, p], "raw scores are not calibrated");
        // Word 2's templates are out of reach: its gated score is 0, but not below the floor.
        h.template_min = vec![-1.0, 3.0];
        let g = s.gated_scores(&h, &[0.5; 2 * DIM], 0.01).to_vec();
        assert_eq!(g, [p, 0.0]);
        let g = s.gated_scores(&h, &[0.5; 2 * DIM], 0.9).to_vec();
        assert_eq!(g, [p, p]);
    }
}
