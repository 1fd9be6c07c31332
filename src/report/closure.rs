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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::scan::{Context, Hit};

    fn cost(before: u64, after: u64) -> PlanCost {
        PlanCost {
            roots: Vec::new(),
            before,
            after,
            saved: before as i64 - after as i64,
            removed_refs: Vec::new(),
            added_refs: Vec::new(),
        }
    }

    #[test]
    fn the_closure_line_says_saves_or_adds() {
        assert_eq!(
            closure_line(&cost(3 << 20, 1 << 20)),
            "closure: 3.0 MiB -> 1.0 MiB (saves 2.0 MiB; 3145728 -> 1048576 bytes)"
        );
        assert_eq!(
            closure_line(&cost(1000, 1500)),
            "closure: 1000 B -> 1.5 KiB (adds 500 B; 1000 -> 1500 bytes)"
        );
    }

    #[test]
    fn the_closure_table_says_what_it_left_out() {
        let p = |path: &str, own, added| PathCost {
            path: path.into(),
            nar_size: own,
            added_size: added,
        };
        let r = ClosureReport {
            roots: vec!["/s/a".into()],
            total_size: 3072,
            paths: vec![p("/s/a", 1024, 3072), p("/s/b", 2048, 2048)],
            count: 4,
        };
        assert_eq!(
            render_closure(&r),
            "closure: 4 paths, 3.0 KiB (3072 bytes)\n     added         own  path\n   3.0 KiB     1.0 KiB  /s/a\n   2.0 KiB     2.0 KiB  /s/b\n... 2 more\n"
        );
    }

    #[test]
    fn why_chains_show_hits_farms_and_bare_references() {
        let (a, f, d) = (
            PathBuf::from("/s/a"),
            PathBuf::from("/s/f"),
            PathBuf::from("/s/d"),
        );
        let hit = |off| Hit {
            hash: [b'a'; 32],
            file: a.join("lib/x.so"),
            offset: off,
            context: Context::Binary {
                text: "…/s/f/lib…".into(),
            },
        };
        let hop = |from: &PathBuf, to: &PathBuf, hits| WhyHop {
            from: from.clone(),
            to: to.clone(),
            from_is_farm: false,
            to_is_farm: false,
            hits,
        };
        let r = WhyReport {
            from: a.clone(),
            to: d.clone(),
            chains: vec![vec![a.clone(), f.clone(), d.clone()]],
            truncated: false,
            hops: vec![
                hop(&a, &f, vec![hit(16), hit(32), hit(48)]),
                hop(&f, &d, Vec::new()),
            ],
            depends: true,
            farms: [f.clone()].into(),
        };
        assert_eq!(
            render_why(&r, 2),
            "/s/a\n└─> /s/f  [farm]\n      lib/x.so @0x10: binary: …/s/f/lib…\n      lib/x.so @0x20: binary: …/s/f/lib…\n      ... 1 more\n    └─> /s/d\n          (reference recorded, but the hash was not found in the files)\n"
        );
        let none = WhyReport {
            depends: false,
            chains: Vec::new(),
            hops: Vec::new(),
            ..r
        };
        assert_eq!(render_why(&none, 2), "/s/a does not depend on /s/d\n");
    }
}
