//! The `hark` binary: the command line ([`cli`]), the microphone daemon ([`daemon`]) and the
//! server for audio that clients send ([`serve`]), built on the `hark` library.

mod cli;
mod daemon;
// The engine of `hark serve`, whose front ends (Wyoming, MQTT) are being built (issue 9).
#[allow(dead_code)]
mod serve;

fn main() {
    cli::main()
}
