//! `unfarm closure PATH...`: closure size, each path's own and added size.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use unfarm::closure::to_store_path;
use unfarm::report::closure::{ClosureReport, render_closure};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Store paths (or files inside them, or links like ./result)
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub source: super::SourceArgs,
    /// Show at most N paths (0: all)
    #[arg(long, short = 'n', default_value_t = 0)]
    pub limit: usize,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let roots: Vec<PathBuf> = a
        .paths
        .iter()
        .map(|p| to_store_path(&g.store_dir, p))
        .collect::<Result<_, _>>()?;
    let source = a.source.source(&g.store_dir);
    let graph = source.load(&g.store_dir, &roots)?;
    let ids: Vec<usize> = roots.iter().filter_map(|r| graph.id(r)).collect();
    let total = graph.closure_size(&ids);
    let mut paths = graph.added_sizes(&ids);
    let count = paths.len();
    if a.limit > 0 {
        paths.truncate(a.limit);
    }
    let r = ClosureReport {
        roots,
        total_size: total,
        paths,
        count,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", render_closure(&r));
    }
    Ok(ExitCode::SUCCESS)
}
