//! Subcommands: each parses its own flags and prints; `anyhow` lives here only.

pub mod check;
pub mod fix;
pub mod ldd;
pub mod loader;
pub mod planning;
