//! Whole-program behaviour: speech made with espeak-ng (two voices, several speeds and pitches),
//! `hark train` on it, `hark detect --json` on a replayed stream; other words must not fire.

use crate::common;

use crate::common::{hark, write_wav};
use hark::audio::synth::{self, Spoken};
use std::path::Path;

#[derive(Debug)]
struct Found {
    word: String,
    time: f64,
    score: f64,
}

fn parse_json_lines(out: &str) -> Vec<Found> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line: {l:?}: {e}"));
            Found {
                word: v["word"].as_str().expect("word").to_string(),
                time: v["time"].as_f64().expect("time"),
                score: v["score"].as_f64().expect("score"),
            }
        })
        .collect()
}

/// (hits, false accepts) of detections against what was said.
fn tally(found: &[Found], said: &[Spoken]) -> (usize, usize) {
    let mut used = vec![false; said.len()];
    let (mut hits, mut fa) = (0, 0);
    for f in found {
        match said
            .iter()
            .position(|s| hark::eval::hits(f.time, s.start, s.end))
        {
            Some(i) if said[i].target && said[i].text == f.word && !used[i] => {
                used[i] = true;
                hits += 1;
            }
            _ => fa += 1,
        }
    }
    (hits, fa)
}

fn train_and_detect(voice: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("recordings");
    synth::write_recordings(&rec, voice).unwrap();
    let head = tmp.path().join("words.head");
    let (code, out, err) = hark(
        &[
            "train",
            "--data",
            rec.to_str().unwrap(),
            "--out",
            head.to_str().unwrap(),
        ],
        &common::root(),
    );
    assert_eq!(code, 0, "train failed: {err}");
    assert!(
        out.contains("cross-validated recall"),
        "train reports how well it fits: {out}"
    );
    assert!(head.is_file());

    let (stream, said) = synth::stream(voice, 3).unwrap();
    let wav = tmp.path().join("stream.wav");
    write_wav(&wav, &stream);
    let out = detect_json(&head, &wav);
    let found = parse_json_lines(&out);
    let (hits, fa) = tally(&found, &said);
    let targets = said.iter().filter(|s| s.target).count();
    eprintln!("{voice}: {hits}/{targets} hits, {fa} false accepts: {found:?}");
    assert!(
        hits >= targets - 1,
        "{voice}: only {hits} of {targets} custom words detected: {found:?}"
    );
    assert!(
        fa <= 1,
        "{voice}: {fa} false accepts among {} other words: {found:?}",
        said.len() - targets
    );
    assert!(found.iter().all(|f| (0.0..=1.0).contains(&f.score)));
    check_the_word_check(&head, &wav, &out, (hits, &said));

    // The same stream at 44.1 kHz, stereo, 24-bit: resampled on the way in, same findings.
    if let Ok(st) = std::process::Command::new("sox")
        .args([
            wav.to_str().unwrap(),
            "-r",
            "44100",
            "-c",
            "2",
            "-b",
            "24",
            tmp.path().join("s44.wav").to_str().unwrap(),
        ])
        .status()
    {
        assert!(st.success());
        let (code, out, err) = hark(
            &[
                "detect",
                "--head",
                head.to_str().unwrap(),
                "--json",
                tmp.path().join("s44.wav").to_str().unwrap(),
            ],
            &common::root(),
        );
        assert_eq!(code, 0, "{err}");
        let found44 = parse_json_lines(&out);
        let (hits44, fa44) = tally(&found44, &said);
        assert!(
            hits44 + 1 >= hits && fa44 <= fa + 1,
            "44.1 kHz stereo: {hits44} hits, {fa44} FA vs {hits}, {fa} at 16 kHz"
        );
    }
}

#[test]
fn a_male_us_voice_learns_its_words_and_ignores_others() {
    train_and_detect("en-us+m3");
}

#[test]
fn a_female_british_voice_learns_its_words_and_ignores_others() {
    train_and_detect("en-gb+f2");
}

#[test]
fn a_head_only_fires_for_its_own_words() {
    // Train on two of the three words; the third, said as often, must not fire.
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("recordings");
    synth::write_recordings(&rec, synth::VOICE).unwrap();
    std::fs::remove_dir_all(rec.join(synth::WORDS[2])).unwrap();
    let head = tmp.path().join("two.head");
    common::train_head(&rec, &head, &[]);
    let (stream, said) = synth::stream(synth::VOICE, 3).unwrap();
    let wav = tmp.path().join("stream.wav");
    write_wav(&wav, &stream);
    let out = detect_json(&head, &wav);
    let found = parse_json_lines(&out);
    let untrained: Vec<&Spoken> = said.iter().filter(|s| s.text == synth::WORDS[2]).collect();
    let fired_on_untrained = found
        .iter()
        .filter(|f| {
            untrained
                .iter()
                .any(|s| hark::eval::hits(f.time, s.start, s.end))
        })
        .count();
    assert!(
        fired_on_untrained <= 1,
        "untrained word fired {fired_on_untrained} times: {found:?}"
    );
    assert!(found.iter().all(|f| f.word != synth::WORDS[2]));
    let _ = Path::new("");
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = hark(&["completions", shell], &crate::common::root());
        assert_eq!(code, 0, "{shell}: {err}");
        for word in ["train", "listen", "serve", "wyoming", "completions"] {
            assert!(out.contains(word), "{shell} completion lacks {word}");
        }
    }
    let (code, _, err) = hark(&["completions", "tcsh"], &crate::common::root());
    assert_eq!(code, 2);
    assert!(
        err.starts_with("hark: error:") && err.contains("tcsh"),
        "{err}"
    );
}

/// `hark detect --head HEAD --json WAV`'s output, asserting it succeeds.
fn detect_json(head: &Path, wav: &Path) -> String {
    detect_json_with(head, wav, &[])
}

/// The same with `extra` flags.
fn detect_json_with(head: &Path, wav: &Path, extra: &[&str]) -> String {
    let mut args = vec!["detect", "--head", head.to_str().unwrap(), "--json"];
    args.extend(extra);
    args.push(wav.to_str().unwrap());
    let (code, out, err) = hark(&args, &common::root());
    assert_eq!(code, 0, "detect failed: {err}");
    out
}

/// The word check decides `hark detect`'s events (`out`, with `hits` of `said`): each carries
/// its cosine; `--no-word-check` leaves it to the detector, which hears the words too; and the
/// check's rule, changed in the head, can silence every event or let every candidate through.
fn check_the_word_check(head: &Path, wav: &Path, out: &str, (hits, said): (usize, &[Spoken])) {
    // Each event was heard (it carries its cosine) or was sure before it was heard: its peak
    // passed the word's threshold + weight * (centre - floor).
    let h: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(head).unwrap()).unwrap();
    let rule = &h["word_check"]["rule"];
    let value = |k: &str| rule[k].as_f64().unwrap();
    let lift = value("weight") * (value("centre") - value("floor"));
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for v in &events {
        match v["word_check"].as_f64() {
            Some(c) => assert!((-1.0..=1.0).contains(&c), "{v}"),
            None => assert!(
                v["score"].as_f64().unwrap() >= v["threshold"].as_f64().unwrap() + lift - 1e-6,
                "neither heard nor sure: {v}"
            ),
        }
    }
    let alone = detect_json_with(head, wav, &["--no-word-check"]);
    assert!(!alone.contains("word_check"), "{alone}");
    let (alone_hits, _) = tally(&parse_json_lines(&alone), said);
    assert!(alone_hits + 1 >= hits, "{alone_hits} vs {hits}: {alone}");
    let with_rule = |weight: f64, centre: f64| {
        let mut h: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(head).unwrap()).unwrap();
        h["word_check"]["rule"]["weight"] = weight.into();
        h["word_check"]["rule"]["centre"] = centre.into();
        let changed = head.with_extension("rule.head");
        std::fs::write(&changed, h.to_string()).unwrap();
        parse_json_lines(&detect_json_with(&changed, wav, &[])).len()
    };
    // No audio is that like the takes, and no peak is sure unheard (it would need the
    // threshold + 10): nothing fires.
    assert_eq!(with_rule(10.0, 1.0), 0);
    // Any audio is liked (and every candidate is sure at once): every candidate (at 0.2)
    // fires, at least the events the default rule let through.
    let all = with_rule(10.0, -1.0);
    assert!(all >= events.len(), "{all} < {}", events.len());
}

/// Hits of `word` in `out` (detect --json lines) against what was said.
fn hits_of(out: &str, said: &[Spoken], word: &str) -> usize {
    let found = parse_json_lines(out);
    said.iter()
        .filter(|s| s.text == word)
        .filter(|s| {
            found
                .iter()
                .any(|f| f.word == word && hark::eval::hits(f.time, s.start, s.end))
        })
        .count()
}

#[test]
fn a_word_for_anyone_is_recorded_in_the_head_and_heard_from_another_voice() {
    // One voice records; another says the words. The word marked `anyone` in its word.toml
    // must be heard from the other voice at least as often as when it is only "mine".
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("recordings");
    synth::write_recordings(&rec, synth::VOICE).unwrap();
    let word = synth::WORDS[0];
    let (stream, said) = synth::stream("en-gb+f3", 3).unwrap();
    let wav = tmp.path().join("other-voice.wav");
    write_wav(&wav, &stream);
    let mut heard = Vec::new();
    for anyone in [false, true] {
        if anyone {
            std::fs::write(rec.join(word).join("word.toml"), "voices = \"anyone\"\n").unwrap();
        }
        let head = tmp.path().join(format!("{anyone}.head"));
        let args = ["train", "--no-cv", "--data", rec.to_str().unwrap(), "--out"];
        let (code, out, err) = hark(
            &[&args[..], &[head.to_str().unwrap()]].concat(),
            &common::root(),
        );
        assert_eq!(code, 0, "{err}");
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(word))
            .unwrap();
        let expect = if anyone {
            "voices: anyone"
        } else {
            "voices: mine"
        };
        assert!(line.contains(expect), "{out}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&head).unwrap()).unwrap();
        let voices = json["voices"].as_array().unwrap();
        assert_eq!(voices[0], if anyone { "anyone" } else { "mine" });
        assert_eq!(voices[1], "mine");
        heard.push(hits_of(&detect_json(&head, &wav), &said, word));
    }
    let said_n = said.iter().filter(|s| s.text == word).count();
    eprintln!(
        "{word} from another voice: mine {}, anyone {} of {said_n}",
        heard[0], heard[1]
    );
    assert!(
        heard[1] >= heard[0] && 2 * heard[1] >= said_n,
        "{heard:?} of {said_n}"
    );
}
