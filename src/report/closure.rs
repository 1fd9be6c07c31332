//! The explain pipeline's output: `unfarm closure`'s table, the
//! `closure: X -> Y` line of `check` and `fix --dry-run`, and `unfarm why`'s
//! chains.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::closure::cost::PlanCost;
use crate::closure::{PathCost, WhyHop, WhyReport};

use super::words::human_size;

/// `unfarm closure`'s result: the closure's size and each path's own and
/// added size, largest added size first (the JSON of `--json`).
#[derive(Serialize)]
pub struct ClosureReport {
    /// The store paths asked about.
    pub roots: Vec<PathBuf>,
    /// The closure's size: the NAR sizes of every path in it.
    pub total_size: u64,
    /// The paths shown (all, or the first `--limit`).
    pub paths: Vec<PathCost>,
    /// How many paths the closure holds (`paths` may show fewer).
    #[serde(skip)]
    pub count: usize,
}

/// The table: a total line, then added and own size per path.
pub fn render_closure(r: &ClosureReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "closure: {} paths, {} ({} bytes)",
        r.count,
        human_size(r.total_size),
        r.total_size
    );
    let _ = writeln!(s, "{:>10}  {:>10}  path", "added", "own");
    for p in &r.paths {
        let _ = writeln!(
            s,
            "{:>10}  {:>10}  {}",
            human_size(p.added_size),
            human_size(p.nar_size),
            p.path.display()
        );
    }
    if r.paths.len() < r.count {
        let _ = writeln!(s, "... {} more", r.count - r.paths.len());
    }
    s
}

/// `closure: X -> Y (saves Z; A -> B bytes)`: the outputs' closure before
/// and after `fix`.
pub fn closure_line(c: &PlanCost) -> String {
    let delta = if c.saved >= 0 {
        format!("saves {}", human_size(c.saved.unsigned_abs()))
    } else {
        format!("adds {}", human_size(c.saved.unsigned_abs()))
    };
    format!(
        "closure: {} -> {} ({delta}; {} -> {} bytes)",
        human_size(c.before),
        human_size(c.after),
        c.before,
        c.after
    )
}

/// `unfarm why`: each chain as a tree, `hits` occurrences shown per hop, or
/// the one line saying there is no dependency.
pub fn render_why(r: &WhyReport, hits: usize) -> String {
    let mut s = String::new();
    if !r.depends {
        let _ = writeln!(
            s,
            "{} does not depend on {}",
            r.from.display(),
            r.to.display()
        );
        return s;
    }
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
                why_hits(&mut s, &indent, &w[0], h, hits);
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

/// A hop's occurrences (file relative to the referrer, offset, context),
/// at most `hits` of them.
fn why_hits(s: &mut String, indent: &str, from: &Path, h: &WhyHop, hits: usize) {
    for hit in h.hits.iter().take(hits) {
        let rel = hit.file.strip_prefix(from).unwrap_or(&hit.file);
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
