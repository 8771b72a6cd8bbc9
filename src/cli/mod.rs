//! The `hark` command line. [`flags`] defines what the user types; [`run`] turns the chosen
//! command's flags into its settings once (bad values are rejected before anything runs),
//! locates the models folder where the command needs it, and hands both to the command's file.

use anyhow::Result;
use clap::Parser;

mod bank;
mod bench;
mod choices;
mod demo;
mod detect;
mod devices;
mod eval;
mod eval_feedback;
mod flags;
mod listen;
mod progress;
mod record;
mod reject;
mod serve;
mod setup;
mod train;

use flags::{Cli, Command};
use hark::assets::Assets;

pub fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            eprintln!("hark: error: {}", one_line(&e.to_string()));
            std::process::exit(2);
        }
        Err(e) => e.exit(), // --help, --version
    };
    if let Err(e) = run(cli) {
        eprintln!("hark: error: {e:#}");
        std::process::exit(1);
    }
}

/// Runs one command. Its settings come first, so a bad flag is reported before the models
/// folder is looked for.
fn run(cli: Cli) -> Result<()> {
    let assets = || Assets::locate(cli.models.as_deref());
    match cli.command {
        Command::Train(f) if f.print_recipe => {
            print!("{}", f.recipe_toml()?);
            Ok(())
        }
        Command::Train(f) => train::run(&f.settings()?, &assets()?),
        Command::Detect(f) => detect::run(&f, &assets()?),
        Command::Demo(f) => demo::run(&f.dir, &assets()?),
        Command::Listen(f) => listen::run(f.options(cli.models.clone())),
        Command::Serve(f) => serve::run(&f.options(cli.models.clone())),
        Command::Record(f) => record::record(&f.data, &f.word, f.count, f.seconds, &f.device),
        Command::Reject(f) => reject::reject(&f),
        Command::Confirm(f) => reject::confirm(&f),
        Command::Devices => devices::run(),
        Command::Setup { to } => setup::run(&assets()?, to.as_deref()),
        Command::Bench(f) => bench::report(&f.options()?, &assets()?),
        Command::Bank => bank::run(&assets()?),
        Command::Eval(f) if f.feedback => eval_feedback::run(f, &assets()?),
        Command::Eval(f) => eval::run(f, &assets()?),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "hark", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// A clap error as one line: its text up to the usage, without the `error: ` prefix.
fn one_line(clap_error: &str) -> String {
    clap_error
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_string()
}
