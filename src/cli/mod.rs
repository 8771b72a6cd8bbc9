//! The `hark` command line. [`flags`] defines what the user types; [`run`] turns the chosen
//! command's flags into its settings once (bad values are rejected before anything runs),
//! locates the models folder where the command needs it, and hands both to the command's file.

use anyhow::Result;
use clap::Parser;

mod bank;
mod bench;
mod demo;
mod detect;
mod devices;
mod eval;
mod flags;
mod knobs;
mod listen;
mod progress;
mod record;
mod serve;
mod train;

use flags::{Cli, Command};
use hark::assets::Assets;

pub fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("hark: error: {e:#}");
        std::process::exit(1);
    }
}

/// Runs one command. Its settings come first, so a bad flag is reported before the models
/// folder is looked for.
fn run(cli: Cli) -> Result<()> {
    let assets = || Assets::locate(cli.models.as_deref());
    match cli.command {
        Command::Train(f) => train::run(&f.settings()?, &assets()?),
        Command::Detect(f) => detect::run(&f, &assets()?),
        Command::Demo(f) => demo::run(&f.dir, &assets()?),
        Command::Listen(f) => listen::run(f.options(cli.models.clone())),
        Command::Serve(f) => serve::run(&f.options(cli.models.clone())),
        Command::Record(f) => record::record(&f.data, &f.word, f.count, f.seconds, &f.device),
        Command::Devices => devices::run(),
        Command::Bench(f) => bench::report(&f.options()?, &assets()?),
        Command::Bank => bank::run(&assets()?),
        Command::Eval(f) => eval::run(&f.options()?, &assets()?),
    }
}
