//! `unfarm ldd`'s tree: each file, then its needs as ld.so maps them, with
//! the search entry that served each, the farm hops, and every path tried
//! for what was not found.

use std::fmt::Write as _;
use std::path::Path;

use crate::elf;
use crate::loader::ldd::{LddReport, NeedReport, NeedStatus};
use crate::loader::resolve::{SearchDir, Source};

use super::words::plural;

/// The report as a tree (errors are the caller's to print). With `color`,
/// `NOT FOUND` is painted red (the caller's stream strips colour where it
/// must).
pub fn render_tree(report: &LddReport, color: bool) -> String {
    let mut s = String::new();
    for f in &report.files {
        let class = match f.class {
            elf::Class::Elf32 => "32-bit",
            elf::Class::Elf64 => "64-bit",
        };
        let list = match (&f.runpath, &f.rpath) {
            (Some(r), _) => format!(", RUNPATH {r}"),
            (None, Some(r)) => format!(", RPATH {r}"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            s,
            "{} [{} {class}, {} loader{list}]",
            f.path.display(),
            f.machine,
            f.loader
        );
        // glibc's ldd says so for an object it has nothing to map for
        // (a static-pie, a library without NEEDED).
        if f.needs.is_empty() && f.interpreter.is_none() {
            let _ = writeln!(s, "    statically linked (no needs, no interpreter)");
        }
        render_needs(&f.needs, "", color, &mut s);
        for c in &f.computed {
            let _ = writeln!(
                s,
                "  computed ({}: {}): {}",
                c.recogniser,
                c.evidence,
                need_line(&c.need, color)
            );
        }
    }
    s
}

/// One level of needs, each with its farm hops, the paths tried when not
/// found, and (recursive) its own needs one level deeper.
fn render_needs(needs: &[NeedReport], indent: &str, color: bool, s: &mut String) {
    for (i, n) in needs.iter().enumerate() {
        let (branch, cont) = if i + 1 == needs.len() {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let _ = writeln!(s, "{indent}{branch}{}", need_line(n, color));
        let sub = format!("{indent}{cont}");
        // Links inside one store path are noise here; farm hops are the story
        // (every hop is in the JSON).
        for h in n.hops.iter().filter(|h| h.cross_path) {
            let _ = writeln!(
                s,
                "{sub}  ⇢ farm hop {} -> {}",
                h.link.display(),
                h.target.display()
            );
        }
        if n.status == NeedStatus::NotFound {
            for t in &n.tried {
                let _ = writeln!(s, "{sub}  tried {} ({})", t.path.display(), t.outcome);
            }
        }
        render_needs(&n.needs, &sub, color, s);
    }
}

/// `libfoo.so.1 => /nix/store/…/libfoo.so.1 (RUNPATH[0] …) [via farm]`, or
/// what went wrong.
fn need_line(n: &NeedReport, color: bool) -> String {
    match n.status {
        NeedStatus::Found => {
            let farm = if n.hops.iter().any(|h| h.cross_path) {
                " [via farm]"
            } else {
                ""
            };
            format!(
                "{} => {} ({}){farm}",
                n.name,
                n.real.as_deref().unwrap_or(Path::new("?")).display(),
                found_by(n.entry.as_ref())
            )
        }
        NeedStatus::AlreadyLoaded => format!("{} (already loaded)", n.name),
        NeedStatus::FromProcessGlibc => format!(
            "{} => the loading program's glibc (not on this library's search path)",
            n.name
        ),
        NeedStatus::Error => format!("{} ERROR: {}", n.name, n.error.as_deref().unwrap_or("")),
        NeedStatus::NotFound => {
            let red = if color {
                anstyle::AnsiColor::Red.on_default().bold()
            } else {
                anstyle::Style::new()
            };
            format!(
                "{} {red}NOT FOUND{red:#} (tried {})",
                n.name,
                plural(n.tried.len(), "path")
            )
        }
    }
}

/// Where the loader found a need: `RUNPATH[1] $ORIGIN/../lib`, `RPATH[0]
/// of loader 2 up …`, `ld.so.cache`, … (no entry: a path, opened as is).
fn found_by(e: Option<&SearchDir>) -> String {
    let Some(e) = e else {
        return "direct path".into();
    };
    match &e.source {
        Source::Runpath => format!("RUNPATH[{}] {}", e.index, e.text),
        Source::Rpath { depth, .. } if *depth > 0 => {
            format!("RPATH[{}] of loader {depth} up {}", e.index, e.text)
        }
        Source::Rpath { .. } => format!("RPATH[{}] {}", e.index, e.text),
        Source::LdLibraryPath => "LD_LIBRARY_PATH".into(),
        Source::LdSoCache => "ld.so.cache".into(),
        Source::Default => "default path".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::resolve::{Tried, TriedOutcome};
    use std::path::PathBuf;

    fn dir(source: Source, index: usize, text: &str) -> SearchDir {
        SearchDir {
            source,
            index,
            text: text.into(),
            dir: text.into(),
        }
    }

    #[test]
    fn where_a_need_was_found_in_words() {
        let rpath = |depth| Source::Rpath {
            owner: PathBuf::from("/o/bin/app"),
            depth,
        };
        assert_eq!(
            found_by(Some(&dir(Source::Runpath, 1, "$ORIGIN/../lib"))),
            "RUNPATH[1] $ORIGIN/../lib"
        );
        assert_eq!(found_by(Some(&dir(rpath(0), 0, "/r"))), "RPATH[0] /r");
        assert_eq!(
            found_by(Some(&dir(rpath(2), 3, "/r"))),
            "RPATH[3] of loader 2 up /r"
        );
        assert_eq!(
            found_by(Some(&dir(Source::LdSoCache, 0, ""))),
            "ld.so.cache"
        );
        assert_eq!(found_by(None), "direct path");
    }

    #[test]
    fn a_missing_need_says_how_many_paths_were_tried_and_which() {
        let tried = |p: &str| Tried {
            path: p.into(),
            source: Source::Runpath,
            index: 0,
            outcome: TriedOutcome::Missing,
        };
        let n = NeedReport {
            name: "libgone.so.1".into(),
            status: NeedStatus::NotFound,
            entry: None,
            path: None,
            hops: Vec::new(),
            real: None,
            error: None,
            tried: vec![tried("/a/libgone.so.1"), tried("/b/libgone.so.1")],
            needs: Vec::new(),
        };
        let mut s = String::new();
        render_needs(std::slice::from_ref(&n), "", true, &mut s);
        let red = anstyle::AnsiColor::Red.on_default().bold();
        let tried =
            "      tried /a/libgone.so.1 (missing)\n      tried /b/libgone.so.1 (missing)\n";
        assert_eq!(
            s,
            format!("└── libgone.so.1 {red}NOT FOUND{red:#} (tried 2 paths)\n{tried}")
        );
        let mut plain = String::new();
        render_needs(std::slice::from_ref(&n), "", false, &mut plain);
        assert_eq!(
            plain,
            format!("└── libgone.so.1 NOT FOUND (tried 2 paths)\n{tried}")
        );
    }
}
