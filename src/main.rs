//! The `hark` binary: the command line ([`cli`]), the microphone daemon ([`daemon`]) and the
//! server for audio that clients send ([`serve`]), built on the `hark` library.

mod cli;
mod daemon;
mod serve;

fn main() {
    cli::main()
}
