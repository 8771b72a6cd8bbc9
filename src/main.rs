//! The `hark` binary: the command line ([`cli`]), the microphone daemon ([`daemon`]) and the
//! server for audio that clients send ([`serve`]), built on the `hark` library. Both the daemon
//! and the server speak Hermes over MQTT ([`hermes`]), which stands below them.

mod cli;
mod daemon;
mod hermes;
mod serve;

fn main() {
    cli::main()
}
