//! `hark eval --feedback`: the feedback loop over the benchmark's seeds (in the library's
//! [`hark::eval::feedback`]) and its table.

use anyhow::Result;
use std::time::Instant;

use hark::assets::Assets;
use hark::eval::feedback::Outcome;
use hark::eval::EvalOptions;

/// A line per seed as it runs, then the sums as a Markdown table.
pub fn run(o: &EvalOptions, assets: &Assets) -> Result<()> {
    let t0 = Instant::now();
    let res = hark::eval::feedback::run(assets, o, &mut |l| println!("{l}"))?;
    println!(
        "\n{} seed(s), {:.0} s",
        o.seeds.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut sum = Outcome::default();
    for (_, s) in &res {
        sum.before.add(&s.before);
        sum.after.add(&s.after);
        sum.gone += s.gone;
    }
    let (b, a) = (&sum.before, &sum.after);
    println!("| | false triggers | false accepts per non-target word | recall |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| before (each rejected with its clip) | {} | {:.3} | {:.3} |",
        b.false_accepts,
        b.fa_per_word(),
        b.recall()
    );
    println!(
        "| after retraining, same streams | {} ({} of the rejected gone: {:.0}%) | {:.3} | {:.3} ({:+.3}) |",
        a.false_accepts,
        sum.gone,
        100.0 * sum.gone as f64 / b.false_accepts.max(1) as f64,
        a.fa_per_word(),
        a.recall(),
        a.recall() - b.recall()
    );
    let worst = res
        .iter()
        .map(|(_, s)| s.after.recall() - s.before.recall())
        .fold(0.0f64, f64::min);
    println!("\nworst recall change of one seed: {worst:+.3}");
    Ok(())
}
