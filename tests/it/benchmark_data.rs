//! The accuracy benchmark on real recorded speech (`../shared/data`), in its quick mode: a
//! regression guard, not the figure of record (that is `hark eval`, see docs/benchmarks.md). Skips with a
//! clear message when the shared data is absent.

use crate::common;

#[test]
fn quick_benchmark_on_real_speech_hears_most_targets_and_few_others() {
    let Some(data) = common::shared_data() else {
        eprintln!("SKIPPED: ../shared/data is absent; the benchmark on real speech did not run");
        return;
    };
    let assets = common::assets();
    let opts = hark::eval::EvalOptions {
        data,
        seeds: vec![3, 4],
        takes: 5,
        train: hark::train::TrainOptions::default(),
        cross_speaker: false,
        same_speaker: true,
        sweep: vec![],
        write_streams: None,
        dump_candidates: None,
        targets_per_word: 8,
        nontargets: 40,
        explain: false,
        gate: true,
        cross_voices: hark::pipeline::head::Voices::Anyone,
        curve: vec![],
        crowd: 0,
        speech: None,
    };
    let res = hark::eval::run(&assets, &opts, &mut |l| eprintln!("{l}")).unwrap();
    for (scenario, rows) in &res {
        let s = &rows[0].1;
        eprintln!(
            "{scenario}: recall {:.3}, FA/non-target {:.3}",
            s.recall(),
            s.fa_per_word()
        );
        assert_eq!(s.targets, 2 * 3 * 8);
        assert!(s.recall() >= 0.75, "{scenario}: recall {:.3}", s.recall());
        assert!(
            s.fa_per_word() <= 0.15,
            "{scenario}: {:.3} false accepts per non-target word",
            s.fa_per_word()
        );
    }
}

#[test]
fn the_cost_benchmark_runs_in_quick_mode_and_prints_every_figure() {
    if common::shared_data().is_none() {
        eprintln!("SKIPPED: ../shared/data is absent; the cost benchmark did not run");
        return;
    }
    let (code, out, err) = common::hark(&["bench", "--quick"], &common::root());
    assert_eq!(code, 0, "{err}");
    for figure in [
        "1. streaming cost",
        "1b. the floor",
        "2. quiet-room cost",
        "3. offline",
        "4. peak RSS",
        "4b. the same with `word_check = false`",
        "4c. row 4 with those files out of the page cache",
        "4d. row 4b with those files out of the page cache",
        "5. training",
        "6. latency",
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(figure))
            .unwrap_or_else(|| panic!("no {figure:?} row in:\n{out}"));
        assert!(line.chars().any(|c| c.is_ascii_digit()), "{line}");
    }
}

#[test]
fn the_many_streams_benchmark_runs_in_quick_mode_and_detects_the_words() {
    if common::shared_data().is_none() {
        eprintln!("SKIPPED: ../shared/data is absent; the many-streams benchmark did not run");
        return;
    }
    let (code, out, err) = common::hark(&["bench", "--streams", "2", "--quick"], &common::root());
    assert_eq!(code, 0, "{err}");
    for heading in [
        "hark CPU per stream",
        "hark latency p50 / p95",
        "hark words detected",
        "hark peak RSS",
        "hark kept up",
        "openWakeWord CPU per stream",
    ] {
        assert!(out.contains(heading), "no {heading:?} column in:\n{out}");
    }
    let row = out
        .lines()
        .find(|l| l.starts_with("| 2 |"))
        .unwrap_or_else(|| panic!("no row for 2 streams in:\n{out}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // cells: "", streams, CPU, p50 / p95, detected, false, RSS, kept up, peer...
    assert!(cells[2].contains("% of a core"), "CPU: {row}");
    assert!(cells[3].matches(" ms").count() == 2, "latency: {row}");
    let (detected, targets) = cells[4]
        .split_once(" / ")
        .map(|(d, rest)| {
            (
                d.parse::<usize>().unwrap(),
                rest.split(' ').next().unwrap().parse::<usize>().unwrap(),
            )
        })
        .unwrap_or_else(|| panic!("detected: {row}"));
    assert!(targets >= 8, "{row}");
    assert!(detected * 4 >= targets * 3, "too few words detected: {row}");
    assert!(cells[6].ends_with(" MB"), "peak RSS: {row}");
    assert_eq!(
        cells[7], "yes",
        "did not keep up with 2 streams: {row}\n{err}"
    );
    assert!(out.contains("largest N that kept up: hark 2"), "{out}");
}

#[test]
fn the_soak_benchmark_on_six_minutes_of_audio_passes_every_check() {
    // `hark bench --soak` exits 1 when a check fails: VmRSS flat, no dropped sample, every event
    // read, as many file descriptors at the end as at the start, every SIGHUP reloaded, no
    // client dropped. In minutes a one-off plateau of about 2 MB may come after the first row
    // (the 24-hour run reaches it within its first hour): 3 MB of slack.
    let args = ["bench", "--soak", "--hours", "0.1", "--rss-slack", "3"];
    let (code, out, err) = common::hark(&args, &common::root());
    assert_eq!(code, 0, "{out}\n{err}");
    for row in [
        "| VmRSS peak, last row - first |",
        "| dropped samples | 0 |",
        "| events read by the client that stays / reported by the daemon |",
        "| open fds of the daemon, start / end |",
        "| SIGHUPs sent / reloads logged | 5 / 5 |",
        "| clients the daemon dropped as too slow (none is) | 0 | 0 |",
        "soak: every check passed",
    ] {
        assert!(out.contains(row), "no {row:?} in:\n{out}");
    }
    assert_eq!(out.matches("| 0:").count(), 4, "four rows of VmRSS:\n{out}");
}
