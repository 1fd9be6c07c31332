//! `unfarm why PATH DEP`: the reference chains from PATH to DEP, each hop
//! with the file, offset and context of every occurrence of the next hash.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use unfarm::closure::{WhyReport, to_store_path, why};

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
    } else if !r.depends {
        println!("{} does not depend on {}", from.display(), to.display());
    } else {
        print!("{}", render(&r, a.hits));
    }
    Ok(if r.depends {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Each chain as a tree, `hits` occurrences shown per hop.
fn render(r: &WhyReport, hits: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let farm = |p: &PathBuf| if r.farms.contains(p) { "  [farm]" } else { "" };
    for (k, chain) in r.chains.iter().enumerate() {
        if r.chains.len() > 1 {
            let _ = writeln!(s, "chain {}:", k + 1);
        }
        let _ = writeln!(s, "{}{}", chain[0].display(), farm(&chain[0]));
        for (i, w) in chain.windows(2).enumerate() {
            let indent = "    ".repeat(i);
            let _ = writeln!(s, "{indent}└─> {}{}", w[1].display(), farm(&w[1]));
            if let Some(h) = r.hop(&w[0], &w[1]) {
                for hit in h.hits.iter().take(hits) {
                    let rel = hit.file.strip_prefix(&w[0]).unwrap_or(&hit.file);
                    let rel = if rel.as_os_str().is_empty() {
                        ".".into()
                    } else {
                        rel.display().to_string()
                    };
                    let _ = writeln!(s, "{indent}      {rel} @{:#x}: {}", hit.offset, hit.context);
                }
                if h.hits.len() > hits {
                    let _ = writeln!(s, "{indent}      ... {} more", h.hits.len() - hits);
                }
                if h.hits.is_empty() {
                    let _ = writeln!(
                        s,
                        "{indent}      (reference recorded, but the hash was not found in the files)"
                    );
                }
            }
        }
    }
    if r.truncated {
        let _ = writeln!(
            s,
            "(stopped after {} chains; raise --max-chains)",
            r.chains.len()
        );
    }
    s
}
