//! Walking outputs: every file, symlink and directory below the given roots,
//! in a stable order, never following symlinks.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// What marks the name of a temporary file of `fix`
/// (`.NAME.unfarm-tmp-PID-RAND`). Defined here, not with the writer, so that
/// the walker, which skips such files, needs nothing from the write side.
pub const TMP_MARK: &str = ".unfarm-tmp-";

/// True for the name of one of our temporary files (`.NAME.unfarm-tmp-…`).
pub fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    n.starts_with('.') && n.contains(TMP_MARK)
}

/// What a walked entry is (from `lstat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    File,
    Symlink,
    Dir,
    /// FIFO, socket, device node: never read.
    Special,
}

#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Size in bytes (regular files).
    pub size: u64,
    /// Number of hard links (regular files).
    pub nlink: u64,
    /// Device and inode, to see one file reached twice.
    #[serde(skip)]
    pub dev_ino: (u64, u64),
}

/// An entry that could not be read, with a one-line reason.
#[derive(Clone, Debug, Serialize, thiserror::Error)]
#[error("{path}: {message}")]
pub struct WalkError {
    pub path: PathBuf,
    pub message: String,
}

/// The root to walk for a path given on the command line: a symlink is
/// followed to what it names, as `nix` and `ldd` do with `./result`, so the
/// walk sees the store path itself (links met inside are never followed).
/// Only the argument's own links are resolved, not its parent dirs'.
pub fn argument_root(arg: &Path) -> Result<PathBuf, WalkError> {
    let fail = |message: String| WalkError {
        path: arg.to_owned(),
        message,
    };
    let mut p = arg.to_owned();
    for _ in 0..crate::loader::farm::MAX_HOPS {
        let meta = std::fs::symlink_metadata(&p).map_err(|e| fail(io_message(&e)))?;
        if !meta.file_type().is_symlink() {
            return Ok(p);
        }
        let target = std::fs::read_link(&p).map_err(|e| fail(io_message(&e)))?;
        p = match p.parent() {
            _ if target.is_absolute() => target,
            Some(dir) => dir.join(target),
            None => target,
        };
        // `..` after a link is only right on the real path.
        if p.components().any(|c| c == std::path::Component::ParentDir) {
            return std::fs::canonicalize(&p).map_err(|e| fail(io_message(&e)));
        }
    }
    Err(fail("too many levels of symbolic links".into()))
}

/// An I/O error as one plain phrase: "No such file or directory", without
/// Rust's " (os error 2)" tail.
pub fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_owned(),
        _ => s,
    }
}

/// Walk `roots` (files or directories). A root that is a symlink is reported
/// as a symlink and not followed.
pub fn walk(roots: &[PathBuf]) -> (Vec<Entry>, Vec<WalkError>) {
    let (mut entries, mut errors) = (Vec::new(), Vec::new());
    visit_all(roots, &mut entries, &mut errors);
    // Nested or repeated roots (`fix out out/lib`), or one dir reached under
    // two spellings, must not yield a file twice: two edits of one file race.
    // (Several names of one inode are hard links, for `--hard-links`.)
    let mut paths = std::collections::HashSet::new();
    let mut single_links = std::collections::HashSet::new();
    entries.retain(|e| {
        paths.insert(e.path.clone())
            && (e.kind == EntryKind::Dir || e.nlink > 1 || single_links.insert(e.dev_ino))
    });
    let mut failed = std::collections::HashSet::new();
    errors.retain(|e| failed.insert(e.path.clone()));
    (entries, errors)
}

fn visit(path: &Path, entries: &mut Vec<Entry>, errors: &mut Vec<WalkError>) {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            errors.push(WalkError {
                path: path.to_owned(),
                message: io_message(&e),
            });
            return;
        }
    };
    let ft = meta.file_type();
    let kind = if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else {
        EntryKind::Special
    };
    entries.push(Entry {
        path: path.to_owned(),
        kind,
        size: if kind == EntryKind::File {
            meta.len()
        } else {
            0
        },
        nlink: meta.nlink(),
        dev_ino: (meta.dev(), meta.ino()),
    });
    if kind != EntryKind::Dir {
        return;
    }
    let rd = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) => {
            errors.push(WalkError {
                path: path.to_owned(),
                message: format!("cannot list directory: {}", io_message(&e)),
            });
            return;
        }
    };
    let mut children: Vec<PathBuf> = Vec::new();
    for de in rd {
        match de {
            // A temp file of `fix` (`.NAME.unfarm-tmp-PID-RAND`, maybe left by
            // a killed run) is not part of the output: `fix` removes it.
            Ok(de) if is_temp_name(&de.file_name()) => {}
            Ok(de) => children.push(de.path()),
            Err(e) => errors.push(WalkError {
                path: path.to_owned(),
                message: format!("cannot list directory: {e}"),
            }),
        }
    }
    children.sort();
    visit_all(&children, entries, errors);
}

/// Visit `paths` in parallel (roots, or siblings: a store output is wide,
/// thousands of files in a few dirs); the results keep the order of `paths`.
fn visit_all(paths: &[PathBuf], entries: &mut Vec<Entry>, errors: &mut Vec<WalkError>) {
    use rayon::prelude::*;
    let each: Vec<(Vec<Entry>, Vec<WalkError>)> = paths
        .par_iter()
        .map(|p| {
            let (mut e, mut er) = (Vec::new(), Vec::new());
            visit(p, &mut e, &mut er);
            (e, er)
        })
        .collect();
    for (e, er) in each {
        entries.extend(e);
        errors.extend(er);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_without_following_links() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/b/f"), b"123").unwrap();
        std::os::unix::fs::symlink(r.join("a"), r.join("a/b/up")).unwrap();
        let (e, err) = walk(&[r.join("a")]);
        assert!(err.is_empty());
        let kinds: Vec<_> = e
            .iter()
            .map(|e| (e.path.strip_prefix(r).unwrap().to_owned(), e.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("a".into(), EntryKind::Dir),
                ("a/b".into(), EntryKind::Dir),
                ("a/b/f".into(), EntryKind::File),
                ("a/b/up".into(), EntryKind::Symlink),
            ]
        );
        assert_eq!(e[2].size, 3);
        let (_, err) = walk(&[r.join("missing")]);
        assert_eq!(err.len(), 1);
    }

    /// Nested and repeated roots, and a dir reached under a second spelling
    /// (through a symlinked parent), yield each file and symlink once.
    #[test]
    fn a_file_reached_twice_is_walked_once() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("out/lib")).unwrap();
        std::fs::write(r.join("out/lib/libx.so"), b"x").unwrap();
        std::fs::write(r.join("out/lib/liby.so"), b"y").unwrap();
        std::os::unix::fs::symlink("libx.so", r.join("out/lib/libx.so.1")).unwrap();
        std::os::unix::fs::symlink(r.join("out"), r.join("alias")).unwrap();
        let (e, err) = walk(&[
            r.join("out"),
            r.join("out/lib"),
            r.join("out"),
            r.join("alias/lib"),
            r.join("missing"),
            r.join("missing"),
        ]);
        assert_eq!(err.len(), 1, "{err:?}");
        let files: Vec<_> = e
            .iter()
            .filter(|e| e.kind != EntryKind::Dir)
            .map(|e| e.path.strip_prefix(r).unwrap().to_owned())
            .collect();
        assert_eq!(
            files,
            vec![
                PathBuf::from("out/lib/libx.so"),
                "out/lib/libx.so.1".into(),
                "out/lib/liby.so".into()
            ]
        );
    }
}
