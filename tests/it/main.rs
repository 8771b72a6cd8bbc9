//! The integration tests, one binary (as ripgrep does): each module drives hark as a user or a
//! Rust caller would. `common` holds the helpers they share.

mod bad_input;
mod benchmark_data;
mod capture;
mod common;
mod daemon;
mod docs;
mod end_to_end;
mod eval_report;
mod feedback;
mod frontend_reference;
mod hermes;
mod library;
mod long_files;
mod module_cycles;
mod mosquitto;
mod package;
mod recipe;
mod satellite;
mod synth;
mod synth_cache;
mod version;
mod wyoming;
mod zeroconf;
