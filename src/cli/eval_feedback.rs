//! `hark eval --feedback`: the feedback loop over the benchmark's seeds (in the library's
//! [`hark::eval::feedback`]) and its table.

use anyhow::Result;
use std::time::Instant;

use hark::assets::Assets;
use hark::eval::feedback::Outcome;
use hark::eval::Score;

use super::flags::EvalFlags;

/// A line per seed as it runs, then the sums as a Markdown table.
pub fn run(flags: EvalFlags, assets: &Assets) -> Result<()> {
    let t0 = Instant::now();
    let people = flags.people();
    let o = &flags.options()?;
    let log = &mut |l: &str| println!("{l}");
    let res = match &people {
        Some(p) => hark::eval::people::feedback::run(assets, o, p, log)?,
        None => hark::eval::feedback::run(assets, o, log)?,
    };
    println!(
        "\n{} seed(s), {:.0} s",
        o.seeds.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut sum = Outcome::default();
    for (_, s) in &res {
        sum.add(s);
    }
    table("the corrected streams", &sum);
    if let Some(others) = &sum.others {
        println!();
        table("streams of other people, not corrected on", others);
    }
    if let Some((b, a)) = sum.unseen {
        println!(
            "\ncontinuous speech of other voices, not corrected on ({}): {b} -> {a} false accepts ({:.0}% fewer)",
            o.speech.as_deref().map_or(String::new(), |p| p.display().to_string()),
            100.0 * (b as f64 - a as f64) / b.max(1) as f64
        );
    }
    let worst = res
        .iter()
        .map(|(_, s)| s.after.recall() - s.before.recall())
        .fold(0.0f64, f64::min);
    println!(
        "\nworst recall change of one seed: {worst:+.3}; rejected clips holding some of a target word: {} of {}",
        sum.with_target, sum.before.false_accepts
    );
    Ok(())
}

/// One stream's rows: before, after the rejections, and the control.
fn table(streams: &str, sum: &Outcome) {
    let (b, a) = (&sum.before, &sum.after);
    println!("| {streams} | false triggers | false accepts per non-target word | recall |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| before (each rejected with its clip) | {} | {:.3} | {:.3} |",
        b.false_accepts,
        b.fa_per_word(),
        b.recall()
    );
    let row = |label: &str, s: &Score, gone: usize, how: &str| {
        println!(
            "| {label} | {} ({gone} of the first gone{how}: {:.0}%) | {:.3} | {:.3} ({:+.3}) |",
            s.false_accepts,
            100.0 * gone as f64 / b.false_accepts.max(1) as f64,
            s.fa_per_word(),
            s.recall(),
            s.recall() - b.recall()
        )
    };
    row("after retraining", a, sum.gone, "");
    row(
        "control: retrained without the clips, another training seed",
        &sum.control,
        sum.control_gone,
        " by chance",
    );
}
