//! The integration tests, one binary (as ripgrep does): each module drives hark as a user or a
//! Rust caller would. `common` holds the helpers they share.

mod bad_input;
mod benchmark_data;
mod capture;
mod common;
mod daemon;
mod end_to_end;
mod frontend_reference;
mod hermes;
mod library;
mod synth;
mod wyoming;
