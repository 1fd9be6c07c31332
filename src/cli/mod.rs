//! Subcommands: each parses its own flags and prints; `anyhow` lives here only.

pub mod ldd;
pub mod loader;
