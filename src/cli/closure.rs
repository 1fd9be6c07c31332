//! `unfarm closure PATH...`: closure size, each path's own and added size.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use unfarm::closure::{PathCost, to_store_path};

use super::{Global, human_size};

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

#[derive(Serialize)]
struct Report {
    roots: Vec<PathBuf>,
    total_size: u64,
    paths: Vec<PathCost>,
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
    if a.json {
        let r = Report {
            roots,
            total_size: total,
            paths,
        };
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "closure: {count} paths, {} ({total} bytes)",
            human_size(total)
        );
        println!("{:>10}  {:>10}  path", "added", "own");
        for p in &paths {
            println!(
                "{:>10}  {:>10}  {}",
                human_size(p.added_size),
                human_size(p.nar_size),
                p.path.display()
            );
        }
        if paths.len() < count {
            println!("... {} more", count - paths.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
