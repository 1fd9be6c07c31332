//! `wrapper-library-path` findings: wrappers in the outputs that put a dir
//! into `LD_LIBRARY_PATH`, which the loader searches before every RUNPATH.
//! A dir there that offers a stub (cudart's `lib/libcuda.so ->
//! stubs/libcuda.so`) makes the program load the fake driver over
//! `/run/opengl-driver/lib`; a farm or a `-dev`/`-static` output keeps all it
//! holds in the closure.
//!
//! Read: shell scripts (a file starting with `#!`), in every form nixpkgs'
//! `makeWrapper` writes (`--set`, `--set-default`, `--prefix`, `--suffix`,
//! old and new) and any plain `LD_LIBRARY_PATH=` assignment at the start of
//! a line; and `makeBinaryWrapper` programs, through the `makeCWrapper`
//! command line it embeds as a docstring. Reported, never rewritten.

use std::path::{Path, PathBuf};

use super::{Finding, FindingKind, Location, Severity, WrapperAt};
use crate::farm;
use crate::plan::snapshot::{StubOffer, is_stub_location};
use crate::store::{StoreDir, normalize_lexically};
use crate::survey::Survey;

/// The variable whose dirs come before every RUNPATH.
const VAR: &str = "LD_LIBRARY_PATH";

/// Scripts and binary wrappers larger than this are not wrappers.
const MAX_WRAPPER: u64 = 1 << 20;

/// Where a dir was named, and the dir.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Named {
    /// A script's line, a binary wrapper's offset.
    pub(crate) at: WrapperAt,
    /// The dir as written.
    pub(crate) dir: String,
}

/// Every wrapper in the outputs naming a dir that offers a stub, a farm or a
/// `-dev`/`-static` output in `LD_LIBRARY_PATH`.
pub(crate) fn wrapper_findings(survey: &Survey, store: &StoreDir) -> Vec<Finding> {
    let mut out = Vec::new();
    let small = |p: &Path| {
        std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.len() <= MAX_WRAPPER)
    };
    for f in &survey.other_files {
        // Only scripts: the first two bytes decide before the rest is read.
        if !small(f) || !starts_with_shebang(f) {
            continue;
        }
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for n in script_dirs(&text) {
            out.extend(judge(f, &n, store));
        }
    }
    for o in &survey.objects {
        if o.facts.interpreter.is_none() || !small(&o.path) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&o.path) else {
            continue;
        };
        for n in binary_wrapper_dirs(&bytes) {
            out.extend(judge(&o.path, &n, store));
        }
    }
    out
}

fn starts_with_shebang(f: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    std::fs::File::open(f).is_ok_and(|mut h| h.read_exact(&mut head).is_ok() && &head == b"#!")
}

/// What a dir in `LD_LIBRARY_PATH` reaches that it must not, as findings.
fn judge(file: &Path, n: &Named, store: &StoreDir) -> Vec<Finding> {
    let dir = Path::new(&n.dir);
    if !dir.is_absolute() || !dir.is_dir() {
        return Vec::new();
    }
    let loc = Location::Wrapper {
        at: n.at,
        dir: n.dir.clone(),
    };
    let mk = |message: String, fix: String| {
        Finding::new(
            FindingKind::WrapperLibraryPath,
            Severity::Error,
            file,
            loc.clone(),
            message,
            Some(&fix),
        )
    };
    let mut out = Vec::new();
    let stubs = stubs_in(dir, store);
    if !stubs.is_empty() {
        out.push(mk(
            format!(
                "offers the stub {}: {VAR} comes before every RUNPATH, so the program loads the fake driver, not the driver dir's",
                super::stub_words(&stubs)
            ),
            "take the dir out of the wrapper (the libraries belong in the RUNPATH), or take the stub link out of that output".into(),
        ));
    }
    let paths = store_paths_of(dir, store);
    let farms: Vec<PathBuf> = paths
        .iter()
        .filter(|p| crate::farm::is_farm(store, p).unwrap_or(false))
        .cloned()
        .collect();
    if !farms.is_empty() {
        let real = real_dirs(dir, store);
        let fix = if real.is_empty() {
            "take the farm out of the wrapper".to_owned()
        } else {
            format!("name the real dirs instead: {}", real.join(":"))
        };
        out.push(
            mk(
                format!(
                    "names farm {}: it and everything it joins stay in the closure",
                    farms[0].display()
                ),
                fix,
            )
            .with_farms(farms),
        );
    }
    if let Some(p) = paths.iter().find(|p| {
        store
            .store_path_of(p)
            .is_some_and(|s| s.name.ends_with("-dev") || s.name.ends_with("-static"))
    }) {
        out.push(mk(
            format!(
                "names the build-time output {}: its headers and archives stay in the closure",
                p.display()
            ),
            "name the output holding the shared libraries (lib or out) instead".into(),
        ));
    }
    out
}

/// The store path the dir is in, as named and as reached through links.
fn store_paths_of(dir: &Path, store: &StoreDir) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = [
        Some(normalize_lexically(dir)),
        std::fs::canonicalize(dir).ok(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|d| store.store_path_of(&d).map(|s| s.path))
    .collect();
    v.dedup();
    v
}

/// The library names in `dir` that resolve to a stub (the dir itself in a
/// stub location: every library in it), each with the stub it reaches.
fn stubs_in(dir: &Path, store: &StoreDir) -> Vec<StubOffer> {
    lib_entries(dir, store)
        .into_iter()
        .filter(|(_, r)| is_stub_location(&r.real, store))
        .map(|(name, r)| StubOffer { name, stub: r.real })
        .collect()
}

/// The dirs outside any farm where the libraries `dir` offers live.
fn real_dirs(dir: &Path, store: &StoreDir) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for (name, r) in lib_entries(dir, store) {
        if is_stub_location(&r.real, store) {
            continue;
        }
        if let Some(d) = farm::real_dir(&r, &name, store).map(|d| d.display().to_string())
            && !v.contains(&d)
        {
            v.push(d);
        }
    }
    v
}

/// `lib*.so*` entries of `dir`, resolved hop by hop.
fn lib_entries(dir: &Path, store: &StoreDir) -> Vec<(String, farm::Resolved)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, farm::Resolved)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            if !name.contains(".so") {
                return None;
            }
            let r = farm::resolve(&e.path(), store).ok()?;
            r.real.is_file().then_some((name, r))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

// ---------------------------------------------------------------------------
// Reading the dirs out of shell text.

/// One piece of a shell word.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// Literal text (quotes removed).
    Lit(String),
    /// `$NAME` or `${NAME…}`: `op` is what follows the name (`:+`, `-`,
    /// `/`, …, empty for none), `word` the text after it, lexed.
    Var {
        name: String,
        op: String,
        word: Vec<Tok>,
    },
    /// Anything else that expands (`$(…)`, `$1`, backquotes): unknown text.
    Opaque,
}

/// Each `LD_LIBRARY_PATH=` / `+=` at the start of a line (after an
/// optional `export`), with the absolute dirs its value names literally.
pub(crate) fn script_dirs(text: &str) -> Vec<Named> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line.trim_start();
        if let Some(r) = rest.strip_prefix("export")
            && r.starts_with([' ', '\t'])
        {
            rest = r.trim_start();
        }
        let Some(value) = rest
            .strip_prefix(VAR)
            .and_then(|r| r.strip_prefix('=').or_else(|| r.strip_prefix("+=")))
        else {
            continue;
        };
        let (word, _) = lex_word(value, &[]);
        for dir in literal_dirs(&word, ':') {
            out.push(Named {
                at: WrapperAt::Line(i + 1),
                dir,
            });
        }
    }
    out
}

/// The dirs a `makeBinaryWrapper` program puts in `LD_LIBRARY_PATH`, read
/// from the `makeCWrapper` command line it embeds: `--prefix 'VAR' 'SEP'
/// 'VAL'`, `--suffix …`, `--set 'VAR' 'VAL'`, `--set-default …`, one per line.
pub(crate) fn binary_wrapper_dirs(bytes: &[u8]) -> Vec<Named> {
    const MARK: &[u8] = b"makeCWrapper ";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = find(&bytes[from..], MARK).map(|p| p + from) {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == 0)
            .map_or(bytes.len(), |e| pos + e);
        let mut off = pos;
        for line in bytes[pos..end].split(|&b| b == b'\n') {
            let text = String::from_utf8_lossy(line);
            let text = text.trim().trim_end_matches('\\').trim_end();
            let words = lex_words(text);
            let lit = |i: usize| words.get(i).and_then(|w| only_literal(w));
            let value = match (lit(0).as_deref(), lit(1).as_deref()) {
                (Some("--prefix" | "--suffix"), Some(VAR)) => {
                    lit(2).zip(words.get(3)).map(|(sep, w)| (w, sep))
                }
                (Some("--set" | "--set-default"), Some(VAR)) => {
                    words.get(2).map(|w| (w, ":".to_owned()))
                }
                _ => None,
            };
            if let Some((w, sep)) = value {
                let sep = sep.chars().next().unwrap_or(':');
                for dir in literal_dirs(w, sep) {
                    out.push(Named {
                        at: WrapperAt::Offset(off),
                        dir,
                    });
                }
            }
            off += line.len() + 1;
        }
        from = end.max(pos + MARK.len());
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The literal text of a word with no expansion in it.
fn only_literal(w: &[Tok]) -> Option<String> {
    w.iter()
        .map(|t| match t {
            Tok::Lit(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

/// The absolute dirs a list value names literally. The value is split at
/// `sep` in literal text and around expansions of the list variable itself
/// and conditional ones (`${X:+:}`: a separator or nothing); a field with any
/// other expansion in it (`$out/lib`) is not a literal dir. A default value
/// (`${X-'/a'}`, `--set-default`) is read as a list of its own.
fn literal_dirs(word: &[Tok], sep: char) -> Vec<String> {
    let mut dirs = Vec::new();
    let mut field = String::new();
    let mut tainted = false;
    let end = |field: &mut String, tainted: &mut bool, dirs: &mut Vec<String>| {
        if !*tainted && field.starts_with('/') {
            dirs.push(std::mem::take(field));
        }
        field.clear();
        *tainted = false;
    };
    for t in word {
        match t {
            Tok::Lit(s) => {
                let mut parts = s.split(sep);
                if let Some(first) = parts.next() {
                    field.push_str(first);
                }
                for p in parts {
                    end(&mut field, &mut tainted, &mut dirs);
                    field.push_str(p);
                }
            }
            Tok::Var { name, op, word } => {
                let list_or_sep = name == VAR || matches!(op.as_str(), ":+" | "+");
                if matches!(op.as_str(), "-" | ":-" | "=" | ":=" | "+" | ":+") {
                    dirs.extend(literal_dirs(word, sep));
                }
                if list_or_sep {
                    end(&mut field, &mut tainted, &mut dirs);
                } else {
                    tainted = true;
                }
            }
            Tok::Opaque => tainted = true,
        }
    }
    end(&mut field, &mut tainted, &mut dirs);
    dirs
}

/// A line split into shell words (unquoted blanks separate them).
fn lex_words(mut s: &str) -> Vec<Vec<Tok>> {
    let mut words = Vec::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return words;
        }
        let (w, used) = lex_word(s, &[]);
        words.push(w);
        if used == 0 {
            return words;
        }
        s = &s[used..];
    }
}

/// One shell word from the start of `s`, up to an unquoted blank or
/// operator (or one of `stop`, inside `${…}`): its pieces and the bytes used.
fn lex_word(s: &str, stop: &[char]) -> (Vec<Tok>, usize) {
    let mut toks: Vec<Tok> = Vec::new();
    let mut lit = String::new();
    let flush = |lit: &mut String, toks: &mut Vec<Tok>| {
        if !lit.is_empty() {
            toks.push(Tok::Lit(std::mem::take(lit)));
        }
    };
    let mut it = s.char_indices().peekable();
    while let Some(&(i, c)) = it.peek() {
        match c {
            c if stop.contains(&c) => return (finish(lit, toks), i),
            ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')' if stop.is_empty() => {
                return (finish(lit, toks), i);
            }
            '\'' => {
                it.next();
                for (_, c) in it.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    lit.push(c);
                }
            }
            '"' => {
                it.next();
                while let Some((j, c)) = it.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some((_, n)) = it.next() {
                                if !matches!(n, '$' | '`' | '"' | '\\') {
                                    lit.push('\\');
                                }
                                lit.push(n);
                            }
                        }
                        '$' => {
                            flush(&mut lit, &mut toks);
                            let (t, used) = dollar(&s[j..]);
                            toks.push(t);
                            skip_to(&mut it, j + used);
                        }
                        '`' => {
                            toks.push(Tok::Opaque);
                            for (_, c) in it.by_ref() {
                                if c == '`' {
                                    break;
                                }
                            }
                        }
                        c => lit.push(c),
                    }
                }
            }
            '\\' => {
                it.next();
                if let Some((_, n)) = it.next() {
                    lit.push(n);
                }
            }
            '$' if s[i..].starts_with("$'") => {
                // ANSI-C quoting, as bash's `${x@Q}` writes odd bytes.
                it.next();
                it.next();
                while let Some((_, c)) = it.next() {
                    match c {
                        '\'' => break,
                        '\\' => match it.next().map(|x| x.1) {
                            Some('n') => lit.push('\n'),
                            Some('t') => lit.push('\t'),
                            Some(n) => lit.push(n),
                            None => {}
                        },
                        c => lit.push(c),
                    }
                }
            }
            '$' => {
                flush(&mut lit, &mut toks);
                let (t, used) = dollar(&s[i..]);
                toks.push(t);
                skip_to(&mut it, i + used);
            }
            '`' => {
                flush(&mut lit, &mut toks);
                toks.push(Tok::Opaque);
                it.next();
                for (_, c) in it.by_ref() {
                    if c == '`' {
                        break;
                    }
                }
            }
            c => {
                lit.push(c);
                it.next();
            }
        }
    }
    (finish(lit, toks), s.len())
}

fn finish(lit: String, mut toks: Vec<Tok>) -> Vec<Tok> {
    if !lit.is_empty() {
        toks.push(Tok::Lit(lit));
    }
    toks
}

fn skip_to(it: &mut std::iter::Peekable<std::str::CharIndices>, to: usize) {
    while it.peek().is_some_and(|&(j, _)| j < to) {
        it.next();
    }
}

/// An expansion at the start of `s` (which starts with `$`), and its length.
fn dollar(s: &str) -> (Tok, usize) {
    let rest = &s[1..];
    if let Some(inner) = rest.strip_prefix('{') {
        let name_len = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let name = &inner[..name_len];
        let after = &inner[name_len..];
        let op_len = [
            "}", ":-", ":=", ":+", ":?", "-", "=", "+", "?", "//", "/", "##", "#", "%%", "%",
        ]
        .iter()
        .find(|o| after.starts_with(**o))
        .map_or(0, |o| o.len());
        let op = &after[..op_len];
        if op == "}" {
            return (
                Tok::Var {
                    name: name.into(),
                    op: String::new(),
                    word: Vec::new(),
                },
                2 + name_len + 1,
            );
        }
        let (word, used) = lex_word(&after[op_len..], &['}']);
        let close = after[op_len + used..].starts_with('}') as usize;
        let len = 2 + name_len + op_len + used + close;
        if name.is_empty() || op_len == 0 {
            return (Tok::Opaque, len);
        }
        return (
            Tok::Var {
                name: name.into(),
                op: op.into(),
                word,
            },
            len,
        );
    }
    if rest.starts_with('(') {
        // `$(…)`: skip to the matching parenthesis.
        let mut depth = 0usize;
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return (Tok::Opaque, 1 + i + 1);
                    }
                }
                _ => {}
            }
        }
        return (Tok::Opaque, s.len());
    }
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if name_len == 0 {
        // `$1`, `$@`, a lone `$`.
        let special = rest.chars().next().map_or(0, char::len_utf8);
        return (Tok::Opaque, 1 + special);
    }
    (
        Tok::Var {
            name: rest[..name_len].into(),
            op: String::new(),
            word: Vec::new(),
        },
        1 + name_len,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(text: &str) -> Vec<(String, String)> {
        script_dirs(text)
            .into_iter()
            .map(|n| (n.at.to_string(), n.dir))
            .collect()
    }

    fn one(dir: &str) -> Vec<(String, String)> {
        vec![("line 1".into(), dir.into())]
    }

    /// Every form nixpkgs' makeWrapper has written for `--prefix`,
    /// `--suffix`, `--set`, `--set-default` (bash's `${x@Q}` quoting), and
    /// hand-written assignments.
    #[test]
    fn shell_wrapper_forms() {
        let a = "/nix/store/aaaa-cudart/lib";
        for line in [
            // makeWrapper before addValue: prefix, suffix (two spellings).
            format!("export LD_LIBRARY_PATH='{a}'${{LD_LIBRARY_PATH:+':'}}$LD_LIBRARY_PATH"),
            format!("export LD_LIBRARY_PATH=$LD_LIBRARY_PATH${{LD_LIBRARY_PATH:+':'}}'{a}'"),
            format!("export LD_LIBRARY_PATH+=${{LD_LIBRARY_PATH:+':'}}'{a}'"),
            // The brief's unquoted spelling, and a hand-written one.
            format!("export LD_LIBRARY_PATH={a}${{LD_LIBRARY_PATH:+:}}$LD_LIBRARY_PATH"),
            format!("LD_LIBRARY_PATH=\"{a}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\""),
            // addValue: prefix, then suffix's assignment (indented in its `if`).
            format!("LD_LIBRARY_PATH='{a}'$LD_LIBRARY_PATH"),
            format!("    LD_LIBRARY_PATH=$LD_LIBRARY_PATH'{a}'"),
            // --set, --set-default.
            format!("export LD_LIBRARY_PATH='{a}'"),
            format!("export LD_LIBRARY_PATH=${{LD_LIBRARY_PATH-'{a}'}}"),
        ] {
            assert_eq!(dirs(&line), one(a), "{line}");
        }
        // addValue's other lines name the dir only in a pattern, or not at all.
        for line in [
            "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+':'$LD_LIBRARY_PATH':'}".to_owned(),
            format!("LD_LIBRARY_PATH=${{LD_LIBRARY_PATH/':''{a}'':'/':'}}"),
            format!("if [[ $LD_LIBRARY_PATH != *':''{a}'':'* ]]; then"),
            "LD_LIBRARY_PATH=${LD_LIBRARY_PATH#':'}".to_owned(),
            "export LD_LIBRARY_PATH".to_owned(),
            // Not literal dirs: relative to an expansion.
            "export LD_LIBRARY_PATH=\"$out/lib:${cuda}/lib\"".to_owned(),
            "LD_LIBRARY_PATH=$(dirname $0)/../lib".to_owned(),
            format!("# LD_LIBRARY_PATH={a}"),
            format!("export PATH={a}"),
        ] {
            assert_eq!(dirs(&line), vec![], "{line}");
        }
        // Several dirs in one value, each with the line it is on.
        let text = format!("#! /bin/sh -e\nexport LD_LIBRARY_PATH='/x/lib:{a}':$LD_LIBRARY_PATH\n");
        assert_eq!(
            dirs(&text),
            vec![
                ("line 2".into(), "/x/lib".into()),
                ("line 2".into(), a.into())
            ]
        );
    }

    /// makeBinaryWrapper's docstring, as its `formatArgs` writes it.
    #[test]
    fn binary_wrapper_docstring() {
        let doc = b"\x7fELF....\0\n\n# ---\n# The C-code for this binary wrapper has been generated using the following command:\n\n\nmakeCWrapper '/nix/store/bbbb-app/bin/.app-wrapped' \\\n    --prefix 'LD_LIBRARY_PATH' ':' '/nix/store/aaaa-cudart/lib:/nix/store/cccc-x/lib' \\\n    --set 'FOO' '/nix/store/dddd/lib' \\\n    --suffix 'LD_LIBRARY_PATH' ':' '/nix/store/eeee-y/lib' \\\n    --set-default LD_LIBRARY_PATH '/nix/store/ffff-z/lib' \\\n    --inherit-argv0\n\n\0tail";
        let got: Vec<String> = binary_wrapper_dirs(doc)
            .into_iter()
            .map(|n| n.dir)
            .collect();
        assert_eq!(
            got,
            [
                "/nix/store/aaaa-cudart/lib",
                "/nix/store/cccc-x/lib",
                "/nix/store/eeee-y/lib",
                "/nix/store/ffff-z/lib"
            ]
        );
        let n = &binary_wrapper_dirs(doc)[0];
        let WrapperAt::Offset(at) = n.at else {
            panic!("{n:?}")
        };
        assert!(doc[at..].starts_with(b"    --prefix"), "{n:?}");
        assert!(binary_wrapper_dirs(b"no docstring here").is_empty());
    }
}
