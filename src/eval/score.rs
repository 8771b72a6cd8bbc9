//! Scoring detections against where the words really were: the one hit test of the project
//! ([`hits`]), the counts of a run ([`Score`]) and the diagnostics `hark eval --explain` prints.

use crate::pipeline::detector::Detection;
use crate::pipeline::head::{Head, Scorer};

use super::streams::Timeline;

/// Seconds after a take's end within which its detection counts.
pub const HIT_WINDOW: f64 = 0.8;

/// Does an event at `time` count for a word said from `start` to `end` (seconds)? The one hit
/// test of the project: eval, the demo and the tests all use it.
pub fn hits(time: f64, start: f64, end: f64) -> bool {
    time >= start && time <= end + HIT_WINDOW
}

/// Frames of 10 ms at 16 kHz, for [`speech_seconds`].
const SPEECH_FRAME: usize = 160;
/// A frame is speech when its RMS is within this factor (-30 dB) of the take's loudest frame.
const SPEECH_FLOOR: f32 = 0.0316;

/// Seconds of speech in one take (16 kHz): from the first to the last 10 ms frame whose RMS is
/// within 30 dB of the loudest frame's. The silence the take file holds before and after the
/// word is not speech; pauses inside the word are.
pub(super) fn speech_seconds(x: &[f32]) -> f64 {
    let rms: Vec<f32> = x
        .chunks(SPEECH_FRAME)
        .map(|c| (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt())
        .collect();
    let peak = rms.iter().fold(0.0f32, |a, &v| a.max(v));
    if peak <= 0.0 {
        return 0.0;
    }
    let loud = |v: &f32| *v >= peak * SPEECH_FLOOR;
    let first = rms.iter().position(loud).unwrap_or(0);
    let last = rms.iter().rposition(loud).unwrap_or(0);
    let samples = ((last + 1) * SPEECH_FRAME).min(x.len()) - first * SPEECH_FRAME;
    samples as f64 / 16_000.0
}

/// Where a spoken take lies in the stream.
#[derive(Clone, Debug)]
pub struct Truth {
    /// The target word said, or `None` for a non-target take.
    pub word: Option<String>,
    pub start: f64,
    pub end: f64,
    pub file: String,
    /// Seconds of speech in the take: its span between the first and last loud frame (see
    /// [`speech_seconds`]), the file's silence trimmed.
    pub speech: f64,
}

impl Truth {
    /// The take's file name, without its folder.
    fn file_name(&self) -> &str {
        self.file.rsplit('/').next().unwrap_or("")
    }
}

/// Counts of one run.
#[derive(Clone, Debug, Default)]
pub struct Score {
    pub targets: usize,
    pub hits: usize,
    pub nontargets: usize,
    pub false_accepts: usize,
    /// Length of the stream, gaps between the takes included.
    pub seconds: f64,
    /// Summed speech of every take in the stream, targets and non-targets: gaps and the
    /// silence in the take files excluded.
    pub speech_seconds: f64,
    /// Per hit: detection time minus the true end of the word (seconds).
    pub latencies: Vec<f64>,
}

impl Score {
    pub fn recall(&self) -> f64 {
        self.hits as f64 / self.targets.max(1) as f64
    }
    pub fn fa_per_word(&self) -> f64 {
        self.false_accepts as f64 / self.nontargets.max(1) as f64
    }
    /// False accepts per hour of stream, gaps between the takes included.
    pub fn fa_per_hour(&self) -> f64 {
        self.false_accepts as f64 / (self.seconds / 3600.0).max(1e-9)
    }
    /// False accepts per hour of speech: per hour of the takes' trimmed speech, gaps excluded.
    pub fn fa_per_speech_hour(&self) -> f64 {
        self.false_accepts as f64 / (self.speech_seconds / 3600.0).max(1e-9)
    }

    /// Adds another run's counts to these.
    pub fn add(&mut self, o: &Score) {
        self.targets += o.targets;
        self.hits += o.hits;
        self.nontargets += o.nontargets;
        self.false_accepts += o.false_accepts;
        self.seconds += o.seconds;
        self.speech_seconds += o.speech_seconds;
        self.latencies.extend_from_slice(&o.latencies);
    }

    /// The `q` quantile (0..1) of the latencies, in seconds.
    pub fn latency(&self, q: f64) -> f64 {
        let mut v = self.latencies.clone();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
}

/// Matches detections to takes, in detection order: a detection hits the first take whose
/// window holds it if that take says the detected word and has no hit yet. Per detection, the
/// index of the take it hits, or `None` for a false accept.
pub(super) fn match_detections(dets: &[Detection], truth: &[Truth]) -> Vec<Option<usize>> {
    let mut hit = vec![false; truth.len()];
    dets.iter()
        .map(
            |d| match truth.iter().position(|t| hits(d.time, t.start, t.end)) {
                Some(i) if !hit[i] && truth[i].word.as_deref() == Some(d.word.as_str()) => {
                    hit[i] = true;
                    Some(i)
                }
                _ => None,
            },
        )
        .collect()
}

/// Scores detections against the truth.
pub fn score(dets: &[Detection], truth: &[Truth], seconds: f64) -> Score {
    let mut s = Score {
        targets: truth.iter().filter(|t| t.word.is_some()).count(),
        nontargets: truth.iter().filter(|t| t.word.is_none()).count(),
        seconds,
        speech_seconds: truth.iter().map(|t| t.speech).sum(),
        ..Default::default()
    };
    for (d, m) in dets.iter().zip(match_detections(dets, truth)) {
        match m {
            Some(i) => {
                s.hits += 1;
                s.latencies.push(d.time - truth[i].end);
            }
            None => s.false_accepts += 1,
        }
    }
    s
}

/// Prints each hit, each false accept with the nearest take, and each missed target, for
/// diagnosis.
pub(super) fn explain(dets: &[Detection], truth: &[Truth], log: &mut dyn FnMut(&str)) {
    let matches = match_detections(dets, truth);
    for (d, m) in dets.iter().zip(&matches) {
        let line = match *m {
            Some(i) => format!(
                "    hit {:>5} at {:>7.2}s score {:.3} sim {:.3} | ends {:+.2}s",
                d.word,
                d.time,
                d.score,
                d.similarity,
                d.time - truth[i].end
            ),
            None => {
                let near = nearest_take(truth, d.time);
                format!(
                    "    FA {:>5} at {:>7.2}s score {:.3} sim {:.3} | nearest {} ({:?}) ends {:+.2}s",
                    d.word,
                    d.time,
                    d.score,
                    d.similarity,
                    near.file_name(),
                    near.word,
                    d.time - near.end
                )
            }
        };
        log(&line);
    }
    for (i, t) in truth.iter().enumerate() {
        if t.word.is_some() && !matches.contains(&Some(i)) {
            log(&format!(
                "    miss {} ({:?}) at {:.2}s",
                t.file_name(),
                t.word,
                t.end
            ));
        }
    }
}

/// The take whose end is nearest to `time`.
fn nearest_take(truth: &[Truth], time: f64) -> &Truth {
    truth
        .iter()
        .min_by(|a, b| {
            (a.end - time)
                .abs()
                .partial_cmp(&(b.end - time).abs())
                .unwrap()
        })
        .unwrap()
}

/// For each missed target: the best raw score and template similarity the head gave it.
pub(super) fn trace_misses(
    head: &Head,
    dets: &[Detection],
    truth: &[Truth],
    embs: &Timeline,
    log: &mut dyn FnMut(&str),
) {
    let trace = score_trace(head, embs);
    for t in truth.iter().filter(|t| t.word.is_some()) {
        let w = head
            .labels
            .iter()
            .position(|l| Some(l) == t.word.as_ref())
            .unwrap();
        if dets
            .iter()
            .any(|d| hits(d.time, t.start, t.end) && d.word == head.labels[w])
        {
            continue;
        }
        let (mut bp, mut bs) = (0.0f32, -1.0f32);
        for (tt, p, s) in &trace {
            if hits(*tt, t.start, t.end) {
                bp = bp.max(p[w]);
                bs = bs.max(s[w]);
            }
        }
        log(&format!(
            "    miss {} best p {bp:.3} best sim {bs:.3} (needs {:.3})",
            t.file_name(),
            head.template_min[w]
        ));
    }
}

/// The head's raw scores and template similarities per word at each step of the timeline.
fn score_trace(head: &Head, embs: &Timeline) -> Vec<(f64, Vec<f32>, Vec<f32>)> {
    let mut sc = Scorer::new(head);
    embs.iter()
        .map(|(t, e)| {
            match e {
                Some(e) => {
                    sc.push(head, e);
                }
                None => {
                    sc.reset();
                    sc.raw.fill(0.0);
                }
            }
            (*t, sc.raw.clone(), sc.similarity.clone())
        })
        .collect()
}

/// A detection of `word` at `time`, for tests.
#[cfg(test)]
pub(super) fn det(word: &str, time: f64) -> Detection {
    Detection {
        word: word.to_string(),
        score: 0.9,
        time,
        threshold: 0.5,
        raw_score: 0.9,
        similarity: 0.9,
        runner_up: None,
        word_check: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(word: Option<&str>, start: f64, end: f64) -> Truth {
        Truth {
            word: word.map(str::to_string),
            start,
            end,
            file: format!("data/{start}.wav"),
            speech: (end - start) / 2.0,
        }
    }

    #[test]
    fn hits_spans_the_word_and_the_window_after_it() {
        assert!(hits(1.0, 1.0, 1.5));
        assert!(hits(1.5 + HIT_WINDOW - 1e-9, 1.0, 1.5));
        assert!(!hits(1.5 + HIT_WINDOW + 1e-9, 1.0, 1.5));
        assert!(!hits(1.0 - 1e-9, 1.0, 1.5));
    }

    #[test]
    fn a_detection_just_inside_the_window_hits() {
        let truth = [said(Some("one"), 1.0, 1.5)];
        let s = score(&[det("one", 1.5 + HIT_WINDOW - 0.01)], &truth, 10.0);
        assert_eq!((s.hits, s.false_accepts), (1, 0));
        assert!((s.latencies[0] - (HIT_WINDOW - 0.01)).abs() < 1e-9);
        assert_eq!(s.recall(), 1.0);
    }

    #[test]
    fn a_detection_just_outside_the_window_is_a_false_accept() {
        let truth = [said(Some("one"), 1.0, 1.5)];
        let s = score(&[det("one", 1.5 + HIT_WINDOW + 0.01)], &truth, 10.0);
        assert_eq!((s.hits, s.false_accepts), (0, 1));
        assert!(s.latencies.is_empty());
        assert_eq!(s.recall(), 0.0);
    }

    #[test]
    fn the_wrong_word_is_a_false_accept_and_no_hit() {
        let truth = [said(Some("one"), 1.0, 1.5), said(None, 3.0, 3.5)];
        let s = score(&[det("two", 1.6), det("one", 3.2)], &truth, 3600.0);
        assert_eq!((s.targets, s.nontargets), (1, 1));
        assert_eq!((s.hits, s.false_accepts), (0, 2));
        assert_eq!(s.fa_per_word(), 2.0);
        assert!((s.fa_per_hour() - 2.0).abs() < 1e-9);
        // Two takes of 0.25 s of speech each: 0.5 s, so 2 false accepts are 14400 an hour.
        assert!((s.speech_seconds - 0.5).abs() < 1e-9);
        assert!((s.fa_per_speech_hour() - 14400.0).abs() < 1e-6);
    }

    #[test]
    fn a_second_detection_of_one_word_is_a_false_accept() {
        let truth = [said(Some("one"), 1.0, 1.5)];
        let s = score(&[det("one", 1.4), det("one", 1.9)], &truth, 10.0);
        assert_eq!((s.hits, s.false_accepts), (1, 1));
        assert_eq!(s.latencies.len(), 1);
    }

    #[test]
    fn speech_is_the_loud_span_of_a_take_without_its_silence() {
        // 0.2 s of faint hiss, 0.5 s of tone with a quiet 0.1 s dip inside, 0.3 s of hiss.
        let sr = 16_000.0;
        let x: Vec<f32> = (0..16_000)
            .map(|i| {
                let t = i as f32 / sr;
                let hiss = if i % 2 == 0 { 5.0 } else { -5.0 };
                let amp = match t {
                    t if (0.2..0.4).contains(&t) || (0.5..0.7).contains(&t) => 8000.0,
                    t if (0.4..0.5).contains(&t) => 400.0,
                    _ => 0.0,
                };
                hiss + amp * (t * 440.0 * std::f32::consts::TAU).sin()
            })
            .collect();
        let s = speech_seconds(&x);
        assert!((s - 0.5).abs() <= 0.011, "{s}");
        assert_eq!(speech_seconds(&[0.0; 800]), 0.0);
        assert_eq!(speech_seconds(&[]), 0.0);
    }

    #[test]
    fn latency_quantiles_and_sums() {
        let mut a = Score {
            latencies: vec![0.3, 0.1, 0.2],
            ..Default::default()
        };
        assert_eq!(a.latency(0.5), 0.2);
        assert_eq!(a.latency(1.0), 0.3);
        a.add(&Score {
            hits: 2,
            latencies: vec![0.0],
            ..Default::default()
        });
        assert_eq!((a.hits, a.latency(0.0)), (2, 0.0));
        assert!(Score::default().latency(0.5).is_nan());
    }
}
