//! The fast tier: pure and gcc-built fixtures, no root, Nix, qemu or network
//! (`cargo test`: about a minute on 2 cores). The planner's property test runs
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
mod ldd_fixtures;
mod ldd_json_schema;
mod libs;
mod nix_hook;
mod own_output;
mod plan_fixtures;
mod plan_props;
mod rpath_inheritance;
mod scan;
mod stub_driver;
