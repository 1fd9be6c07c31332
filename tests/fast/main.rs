//! The fast tier: pure and gcc-built fixtures, no root, Nix, qemu, patchelf,
//! cross compiler or network: `cargo test` passes with Rust, gcc and
//! binutils alone (scripts/test.sh checks it with the other tools hidden;
//! about a minute on 2 cores). The planner's property test runs
//! `PLAN_PROP_CASES` worlds per seed (default 500; the full run sets 20,000).

#[path = "../common/mod.rs"]
mod common;
#[path = "../world/mod.rs"]
mod world;

mod check_json_schema;
mod cli;
mod closure;
mod computed;
mod cost;
mod demo;
mod doc_paths;
mod farm_anywhere;
mod fix_interpreter;
mod layers;
mod ldd_fixtures;
mod ldd_json_schema;
mod libs;
// stdenv's fixup runs patchelf, which a machine with only Rust and gcc lacks:
// the hook's tests run with the full tier's tools (`--features full-tests`).
#[cfg(feature = "full-tests")]
mod nix_hook;
mod own_output;
mod plan_fixtures;
mod plan_props;
mod rpath_inheritance;
mod scan;
mod stub_driver;
