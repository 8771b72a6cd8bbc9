//! The `hark` binary: the command line ([`cli`]) and the daemon ([`daemon`]), built on the
//! `hark` library.

mod cli;
mod daemon;

fn main() {
    cli::main()
}
