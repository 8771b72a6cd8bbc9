//! `hark eval`: the accuracy benchmark (in the library's [`hark::eval`]), its table and, with
//! `--plot`, its picture.

use anyhow::Result;
use std::time::Instant;

use hark::assets::Assets;
use hark::eval::{is_curve_label, Results, Score};

use super::flags::EvalFlags;

/// `hark eval`: a line per seed as it runs, then the figures as a Markdown table, and the
/// curve when `--plot` names a file (checked before the run).
pub fn run(flags: EvalFlags, assets: &Assets) -> Result<()> {
    let plot = flags.plot.clone();
    if let Some(p) = &plot {
        hark::eval::plot::check_path(p)?;
    }
    let people = flags.people();
    let o = flags.options()?;
    let t0 = Instant::now();
    let res = match &people {
        Some(p) => hark::eval::people::run(assets, &o, p, &mut |l| println!("{l}"))?,
        None => hark::eval::run(assets, &o, &mut |l| println!("{l}"))?,
    };
    println!(
        "\n{} seed(s), {:.0} s",
        o.seeds.len(),
        t0.elapsed().as_secs_f64()
    );
    print_table(&res);
    if let Some(p) = &plot {
        hark::eval::plot::write(p, &res, &o.curve)?;
        println!("\nwrote the curve to {}", p.display());
    }
    Ok(())
}

/// One row per scenario and threshold (the curve's points left out).
fn print_table(res: &[(String, Results)]) {
    println!("| scenario | threshold | recall | non-target words | false accepts per non-target word | false accepts per hour of speech (gaps excluded) | false accepts per hour of stream (gaps included) | latency median / p95 (ms) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (scenario, rows) in res {
        for (label, s) in rows.iter().filter(|(l, _)| !is_curve_label(l)) {
            println!(
                "| {scenario} | {label} | {} | {} | {:.4} | {:.1} | {:.1} | {} |",
                or_dash(s, format!("{:.3}", s.recall())),
                s.nontargets,
                s.fa_per_word(),
                s.fa_per_speech_hour(),
                s.fa_per_hour(),
                or_dash(
                    s,
                    format!(
                        "{:.0} / {:.0}",
                        s.latency(0.5) * 1000.0,
                        s.latency(0.95) * 1000.0
                    )
                ),
            );
        }
    }
}

/// The figure, or a dash for a row without targets (the crowd).
fn or_dash(s: &Score, figure: String) -> String {
    if s.targets == 0 {
        "–".to_string()
    } else {
        figure
    }
}
