//! `unfarm why PATH DEP`: the reference chains from PATH to DEP, each hop
//! with the file, offset and context of every occurrence of the next hash.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use unfarm::closure::{to_store_path, why};
use unfarm::report::closure::render_why;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// The referrer: a store path (or a file inside one, or a link like ./result)
    pub path: PathBuf,
    /// The dependency to explain
    pub dep: PathBuf,
    /// Show all chains, not only the shortest
    #[arg(long)]
    pub all: bool,
    /// With --all, stop after this many chains
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_chains: usize,
    /// Hits shown per hop in human output (JSON has all)
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub hits: usize,
    #[command(flatten)]
    pub source: super::SourceArgs,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let sd = &g.store_dir;
    let from = to_store_path(sd, &a.path)?;
    let to = to_store_path(sd, &a.dep)?;
    let source = a.source.source(sd);
    let graph = source.load(sd, std::slice::from_ref(&from))?;
    let r = why(sd, &graph, &from, &to, a.all.then_some(a.max_chains))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", render_why(&r, a.hits));
    }
    Ok(if r.depends {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
