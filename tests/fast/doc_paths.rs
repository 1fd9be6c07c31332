//! Every file the docs, the Nix files, the scripts and the code's comments
//! name exists: a path from the repository root (`tests/fast/cli.rs`,
//! `docs/*.md`: a glob must match something), a relative path in a Nix file
//! (`./unfarm-hook.sh`) or in a Markdown link, and the heading a Markdown
//! link's `#anchor` names. A moved file fails here, not in a new user's hands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Where a path from the repository root starts.
const ROOTED: [&str; 9] = [
    "src/",
    "tests/",
    "nix/",
    "docs/",
    "bench/",
    "scripts/",
    "fuzz/",
    "examples/",
    ".ci/",
];
const TOP_FILES: [&str; 6] = [
    "README.md",
    "ARCHITECTURE.md",
    "LICENSE-MIT",
    "LICENSE-APACHE",
    "Cargo.toml",
    "Cargo.lock",
];

/// The files whose text is checked.
fn checked_files() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "Cargo.toml", ".ci/run"]
        .iter()
        .map(|f| root.join(f))
        .collect();
    for (dir, exts) in [
        ("docs", &["md"][..]),
        ("nix", &["md", "nix", "sh"][..]),
        ("bench", &["md", "sh"][..]),
        ("scripts", &["sh"][..]),
        ("src", &["rs"][..]),
        ("tests", &["rs", "nix", "sh"][..]),
        ("fuzz", &["rs", "toml"][..]),
        ("examples", &["rs"][..]),
    ] {
        walk(&root.join(dir), exts, &mut files);
    }
    files
}

fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            // Build output (fuzz/target) is not ours to check.
            if !p.ends_with("target") {
                walk(&p, exts, out);
            }
        } else if p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)) {
            out.push(p);
        }
    }
}

fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_./*-".contains(c)
}

/// Path-like words of `text`: maximal runs of path characters, each with
/// the character before it (a path inside a longer one, `$ORIGIN/..`, an
/// absolute `/tmp/x` or a URL is not a repository path).
fn words(text: &str) -> Vec<(Option<char>, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut prev = None;
    for (i, c) in text.char_indices() {
        match (path_char(c), start) {
            (true, None) => start = Some((i, prev)),
            (false, Some((s, before))) => {
                out.push((before, &text[s..i]));
                start = None;
            }
            _ => {}
        }
        prev = Some(c);
    }
    if let Some((s, before)) = start {
        out.push((before, &text[s..]));
    }
    out
}

/// Does `pattern` (a path, maybe with `*` in its components) name something
/// under `base`?
fn exists(base: &Path, pattern: &str) -> bool {
    if !pattern.contains('*') {
        return base.join(pattern).exists();
    }
    let mut dirs = vec![base.to_path_buf()];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for d in &dirs {
            if !comp.contains('*') {
                let p = d.join(comp);
                if p.exists() {
                    next.push(p);
                }
                continue;
            }
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            for e in rd.flatten() {
                if glob(comp, &e.file_name().to_string_lossy()) {
                    next.push(e.path());
                }
            }
        }
        dirs = next;
    }
    !dirs.is_empty()
}

fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && glob(tail, &rest[i..]))
        }
    }
}

/// Repository paths named in `text` that do not exist.
fn missing_rooted(text: &str) -> BTreeSet<String> {
    let root = Path::new(ROOT);
    let mut missing = BTreeSet::new();
    for (before, word) in words(text) {
        // `$ORIGIN/../lib`, `/nix/store/...`, `https://...`, `x.y/src/`.
        if before.is_some_and(|c| c == '$' || c == '/' || c == ':' || c == '@') {
            continue;
        }
        let word = word.trim_end_matches(['.', ',']);
        let rooted = ROOTED.iter().any(|p| word.starts_with(p)) || TOP_FILES.contains(&word);
        if rooted && !exists(root, word) {
            missing.insert(word.to_string());
        }
    }
    missing
}

/// Relative paths in a Nix file's code (`./x`, `../x`), from the file's
/// dir; comments show commands run elsewhere (`callPackage ./nix/...`).
fn missing_nix_relative(file: &Path, text: &str) -> BTreeSet<String> {
    let dir = file.parent().unwrap();
    let code: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    words(&code)
        .into_iter()
        .filter(|(before, w)| {
            (w.starts_with("./") || w.starts_with("../"))
                && !before.is_some_and(|c| c == '$' || c == '/')
        })
        .map(|(_, w)| w.trim_end_matches(['.', ',', ';']))
        .filter(|w| !exists(dir, w))
        .map(str::to_string)
        .collect()
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, other
/// punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(md: &str) -> BTreeSet<String> {
    md.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// Markdown links `](target)` whose file or `#anchor` does not exist.
fn missing_links(file: &Path, text: &str) -> BTreeSet<String> {
    let dir = file.parent().unwrap();
    let mut missing = BTreeSet::new();
    for piece in text.split("](").skip(1) {
        let Some(target) = piece.split(')').next() else {
            continue;
        };
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target, None),
        };
        let linked = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        if !linked.exists() {
            missing.insert(target.to_string());
            continue;
        }
        if let Some(a) = anchor {
            let md = std::fs::read_to_string(&linked).unwrap_or_default();
            if !anchors(&md).contains(a) {
                missing.insert(target.to_string());
            }
        }
    }
    missing
}

#[test]
fn every_path_the_docs_and_comments_name_exists() {
    let mut problems = Vec::new();
    let files = checked_files();
    assert!(files.len() > 50, "walked only {} files", files.len());
    // This file's own examples name missing paths on purpose.
    let this = Path::new(ROOT).join(file!());
    assert!(this.is_file(), "{}", this.display());
    for f in files.iter().filter(|f| **f != this) {
        let text = std::fs::read_to_string(f).unwrap();
        let mut missing = missing_rooted(&text);
        if f.extension().is_some_and(|x| x == "nix") {
            missing.extend(missing_nix_relative(f, &text));
        }
        if f.extension().is_some_and(|x| x == "md") {
            missing.extend(missing_links(f, &text));
        }
        let rel = f.strip_prefix(ROOT).unwrap().display().to_string();
        problems.extend(missing.into_iter().map(|m| format!("{rel}: {m}")));
    }
    assert!(
        problems.is_empty(),
        "paths named but missing:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_catches_what_it_is_for() {
    let f = Path::new(ROOT).join("README.md");
    assert_eq!(
        missing_rooted("see `tests/nix_e2e.rs` and tests/fast/nix_hook.rs, src/"),
        BTreeSet::from(["tests/nix_e2e.rs".to_string()])
    );
    assert!(missing_rooted("bench/RESULTS-*.md docs/*.md").is_empty());
    assert_eq!(missing_rooted("tests/nix_*.rs").len(), 1);
    assert!(missing_rooted("$ORIGIN/../src/x /nix/store/src/y").is_empty());
    assert_eq!(
        missing_links(
            &f,
            "[a](ARCHITECTURE.md) [b](#no-such-heading) [c](nope.md)"
        ),
        BTreeSet::from(["#no-such-heading".to_string(), "nope.md".to_string()])
    );
    let nix = Path::new(ROOT).join("nix/hook.nix");
    assert_eq!(
        missing_nix_relative(
            &nix,
            "./unfarm-hook.sh ../Cargo.lock ./gone.sh # ./comment.nix"
        ),
        BTreeSet::from(["./gone.sh".to_string()])
    );
    assert_eq!(slug(" What the costs mean"), "what-the-costs-mean");
}
