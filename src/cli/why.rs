//! `unfarm why PATH DEP`: the reference chains from PATH to DEP, each hop
//! with the file, offset and context of every occurrence of the next hash.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use rayon::prelude::*;
use serde::Serialize;
use unfarm::closure::{is_farm, to_store_path};
use unfarm::scan::{Candidates, Hit, Scanner, hash_of};

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

#[derive(Serialize)]
struct Hop {
    from: PathBuf,
    to: PathBuf,
    /// `from` is a symlink farm.
    from_is_farm: bool,
    /// `to` is a symlink farm.
    to_is_farm: bool,
    hits: Vec<Hit>,
}

#[derive(Serialize)]
struct Report {
    from: PathBuf,
    to: PathBuf,
    chains: Vec<Vec<PathBuf>>,
    truncated: bool,
    hops: Vec<Hop>,
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let sd = &g.store_dir;
    let from = to_store_path(sd, &a.path)?;
    let to = to_store_path(sd, &a.dep)?;
    let source = a.source.source(sd);
    let graph = source.load(sd, std::slice::from_ref(&from))?;
    let (Some(f), Some(t)) = (graph.id(&from), graph.id(&to)) else {
        if !a.json {
            println!("{} does not depend on {}", from.display(), to.display());
        } else {
            let r = Report {
                from,
                to,
                chains: vec![],
                truncated: false,
                hops: vec![],
            };
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        return Ok(ExitCode::from(1));
    };
    let (chains, truncated) = if a.all {
        graph.all_chains(f, t, a.max_chains.max(1))
    } else {
        (graph.shortest_chain(f, t).into_iter().collect(), false)
    };
    // Unique hops, scanned in parallel.
    let edges: BTreeSet<(usize, usize)> = chains
        .iter()
        .flat_map(|c| c.windows(2).map(|w| (w[0], w[1])))
        .collect();
    let nodes: BTreeSet<usize> = chains.iter().flatten().copied().collect();
    let farms: BTreeMap<usize, bool> = nodes
        .par_iter()
        .map(|&n| Ok((n, is_farm(sd, &graph.node(n).path)?)))
        .collect::<Result<_, unfarm::scan::ScanError>>()?;
    let hops: Vec<Hop> = edges
        .par_iter()
        .map(|&(x, y)| {
            let (xp, yp) = (&graph.node(x).path, &graph.node(y).path);
            let Some(sp) = sd.store_path_of(yp) else {
                bail!("{}: not a store path", yp.display())
            };
            let Some(h) = hash_of(&sp.hash) else {
                bail!("{}: bad hash part", yp.display())
            };
            let scanner = Scanner::new(sd, Candidates::Hashes([h].into_iter().collect()));
            let hits = scanner.hits(xp)?;
            Ok(Hop {
                from: xp.clone(),
                to: yp.clone(),
                from_is_farm: farms[&x],
                to_is_farm: farms[&y],
                hits,
            })
        })
        .collect::<Result<_>>()?;
    let chains_p: Vec<Vec<PathBuf>> = chains
        .iter()
        .map(|c| c.iter().map(|&n| graph.node(n).path.clone()).collect())
        .collect();
    if a.json {
        let r = Report {
            from,
            to,
            chains: chains_p,
            truncated,
            hops,
        };
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    let hop_of = |x: &PathBuf, y: &PathBuf| hops.iter().find(|h| &h.from == x && &h.to == y);
    for (k, chain) in chains_p.iter().enumerate() {
        if chains_p.len() > 1 {
            println!("chain {}:", k + 1);
        }
        println!(
            "{}{}",
            chain[0].display(),
            if farms[&chains[k][0]] { "  [farm]" } else { "" }
        );
        for (i, w) in chain.windows(2).enumerate() {
            let indent = "    ".repeat(i);
            let farm = if farms[&chains[k][i + 1]] {
                "  [farm]"
            } else {
                ""
            };
            println!("{indent}└─> {}{farm}", w[1].display());
            if let Some(h) = hop_of(&w[0], &w[1]) {
                for hit in h.hits.iter().take(a.hits) {
                    let rel = hit.file.strip_prefix(&w[0]).unwrap_or(&hit.file);
                    let rel = if rel.as_os_str().is_empty() {
                        ".".into()
                    } else {
                        rel.display().to_string()
                    };
                    println!("{indent}      {rel} @{:#x}: {}", hit.offset, hit.context);
                }
                if h.hits.len() > a.hits {
                    println!("{indent}      ... {} more", h.hits.len() - a.hits);
                }
                if h.hits.is_empty() {
                    println!(
                        "{indent}      (reference recorded, but the hash was not found in the files)"
                    );
                }
            }
        }
    }
    if truncated {
        println!(
            "(stopped after {} chains; raise --max-chains)",
            chains_p.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
