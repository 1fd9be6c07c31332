//! The layers of `src/` run one way: every `crate::` path (and every
//! `super::` that leaves its top-level module) in a file of one top-level
//! module names a module of a lower layer. The layer table is the numbered
//! list in `src/lib.rs`'s docs, read here, so the docs and the check cannot
//! disagree. Two modules on the same layer are independent of each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `N. ... [`name`] ...: ...` lines of `src/lib.rs`'s `//!` docs: module ->
/// layer. Names are the backticked words before the first `: `.
fn layer_table(lib_rs: &str) -> BTreeMap<String, u32> {
    let mut t = BTreeMap::new();
    for line in lib_rs.lines() {
        let Some(doc) = line.strip_prefix("//! ") else {
            continue;
        };
        let Some((num, rest)) = doc.split_once(". ") else {
            continue;
        };
        let Ok(n) = num.parse::<u32>() else {
            continue;
        };
        // Names sit before the description of each `[`name`]: what` part.
        for part in rest.split("; ") {
            let head = part.split(": ").next().unwrap();
            for name in head.split('`').skip(1).step_by(2) {
                t.insert(name.to_owned(), n);
            }
        }
    }
    t
}

/// The code of a file without its comments: lines that are comments
/// (docs, `//`) and the ` // ...` tail of a line (doc links to other layers
/// are not imports). Block comments are not used in `src/`.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap());
        out.push('\n');
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a file's code names: `crate::x`, `crate::{x, y::z}`
/// and `super::` chains that climb above the file's top-level module
/// (`depth`: how many modules deep the file is; `x/y.rs` below `src/` is 2).
fn named_modules(code: &str, depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        // `$crate::` in macros and `unfarm_crate::` are not this crate.
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split at depth-0 commas.
            let (mut lvl, mut start) = (0, 0);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => lvl += 1,
                    '}' if lvl == 0 => {
                        out.push(ident_at(group[start..].trim_start()).to_owned());
                        break;
                    }
                    '}' => lvl -= 1,
                    ',' if lvl == 0 => {
                        out.push(ident_at(group[start..].trim_start()).to_owned());
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident_at(rest).to_owned());
        }
    }
    for (i, _) in code.match_indices("super::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut rest = &code[i..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        if ups >= depth {
            out.push(ident_at(rest).to_owned());
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module of a file under `src/` and how deep its module is.
fn module_of(rel: &Path) -> (String, usize) {
    let parts: Vec<&str> = rel.iter().map(|c| c.to_str().unwrap()).collect();
    let top = parts[0].trim_end_matches(".rs").to_owned();
    let last = *parts.last().unwrap();
    let depth = match last {
        "mod.rs" => parts.len() - 1,
        _ => parts.len(),
    };
    match top.as_str() {
        // The binary's root holds `mod cli`: it is the top layer.
        "main" => ("cli".to_owned(), 1),
        "lib" => ("lib".to_owned(), 0),
        _ => (top, depth),
    }
}

/// Every upward or sideways import in `src/`, as `file: a (layer) -> b
/// (layer)` lines.
fn violations(root: &Path) -> Vec<String> {
    let table = layer_table(&std::fs::read_to_string(root.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(root, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root).unwrap();
        let (module, depth) = module_of(rel);
        if module == "lib" {
            continue;
        }
        let Some(&from) = table.get(&module) else {
            bad.push(format!(
                "{}: module `{module}` is not in src/lib.rs's layer list",
                rel.display()
            ));
            continue;
        };
        let code = strip_comments(&std::fs::read_to_string(f).unwrap());
        for to_mod in named_modules(&code, depth) {
            if to_mod == module {
                continue;
            }
            // Items of the crate root (macros, re-exports) are not layers.
            let Some(&to) = table.get(&to_mod) else {
                continue;
            };
            if to >= from {
                bad.push(format!(
                    "{}: {module} (layer {from}) uses {to_mod} (layer {to})",
                    rel.display()
                ));
            }
        }
    }
    bad.dedup();
    bad
}

#[test]
fn no_import_runs_upward_or_sideways() {
    let root = src();
    let table = layer_table(&std::fs::read_to_string(root.join("lib.rs")).unwrap());
    assert!(
        table.len() >= 10,
        "layer list not found in src/lib.rs: {table:?}"
    );
    let bad = violations(&root);
    assert!(
        bad.is_empty(),
        "imports against the layers:\n{}",
        bad.join("\n")
    );
}

/// The checker itself catches each form of import it claims to.
#[test]
fn checker_sees_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path();
    std::fs::create_dir_all(s.join("low")).unwrap();
    std::fs::create_dir_all(s.join("high/deep")).unwrap();
    std::fs::write(
        s.join("lib.rs"),
        "//! Layers:\n//!\n//! 0. [`low`]: below; [`side`]: beside it.\n//! 1. [`high`]: above.\n",
    )
    .unwrap();
    let cases = [
        ("low/mod.rs", "use crate::high::X;"),
        ("low/a.rs", "use crate::{side, high::{X, Y}};"),
        ("low/b.rs", "fn f() { crate::high::g() }"),
        ("low/c.rs", "use super::super::high::X;"),
        ("low/mod.rs", "use super::high::X;"),
    ];
    for (file, code) in cases {
        std::fs::write(s.join("high/mod.rs"), "use crate::low::X; // crate::high\n").unwrap();
        std::fs::write(s.join("high/deep/x.rs"), "use super::super::low::Y;").unwrap();
        for f in ["low/mod.rs", "low/a.rs", "low/b.rs", "low/c.rs"] {
            std::fs::write(
                s.join(f),
                "// crate::high\nuse super::a::X; // crate::high\n",
            )
            .unwrap();
        }
        assert!(violations(s).is_empty(), "{:?}", violations(s));
        std::fs::write(s.join(file), code).unwrap();
        let v = violations(s);
        assert!(!v.is_empty(), "{file}: `{code}` not caught");
    }
}
