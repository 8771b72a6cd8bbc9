//! `hark eval`: the accuracy benchmark (in the library's [`hark::eval`]) and its table.

use anyhow::Result;
use std::time::Instant;

use hark::assets::Assets;
use hark::eval::{EvalOptions, Results};

/// `hark eval`: a line per seed as it runs, then the figures as a Markdown table.
pub fn run(o: &EvalOptions, assets: &Assets) -> Result<()> {
    let t0 = Instant::now();
    let res = hark::eval::run(assets, o, &mut |l| println!("{l}"))?;
    println!(
        "\n{} seed(s), {:.0} s",
        o.seeds.len(),
        t0.elapsed().as_secs_f64()
    );
    print_table(&res);
    Ok(())
}

/// One row per scenario and threshold.
fn print_table(res: &[(String, Results)]) {
    println!("| scenario | threshold | recall | false accepts per non-target word | false accepts per hour | latency median / p95 (ms) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (scenario, rows) in res {
        for (label, s) in rows {
            println!(
                "| {scenario} | {label} | {:.3} | {:.3} | {:.1} | {:.0} / {:.0} |",
                s.recall(),
                s.fa_per_word(),
                s.fa_per_hour(),
                s.latency(0.5) * 1000.0,
                s.latency(0.95) * 1000.0
            );
        }
    }
}
